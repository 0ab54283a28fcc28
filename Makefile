# The two commands a new user needs: `make demo` and `make test`. Both set up the environment first.
# ROS_WHEELS=jazzy make setup: the PyPI ROS 2 Jazzy wheels instead of Kilted (after `make clean`).
SHELL := /bin/bash
RUN := scripts/run
STAMP := .venv/.setup-stamp
SETUP_INPUTS := requirements.txt requirements-ros.txt requirements-ros-jazzy.txt setup.py package.xml scripts/setup.sh \
	$(wildcard emotion_msgs/msg/*.msg) emotion_msgs/CMakeLists.txt emotion_msgs/package.xml \
	$(wildcard ../shared/ros2-tools/install.sh) \
	$(wildcard ../shared/ros2-interfaces/hri_msgs/package.xml ../shared/ros2-interfaces/hri_msgs/msg/*.msg)
DEMO_ARGS ?=
TEST_ARGS ?=

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	@scripts/setup.sh
	@touch $@

demo: setup
	$(RUN) python -m emotion_recognition_ros.tools.demo $(DEMO_ARGS)

test: setup
	$(RUN) ruff check .
	$(RUN) python -m pytest $(TEST_ARGS)

bench: setup
	$(RUN) python -m benchmarks.bench $(BENCH_ARGS)

clean:
	rm -rf build install log .venv .pytest_cache
