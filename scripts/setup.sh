#!/usr/bin/env bash
# Builds the project environment: .venv (pinned Python deps), ROS 2 (PyPI wheels unless a system
# ROS 2 is sourced; ROS_WHEELS=kilted (default) or jazzy), both packages (emotion_msgs, then this
# ament_python package with --symlink-install) built with colcon into install/, hri_msgs (REP-155, for
# ros4hri:=true) from ../shared/ros2-interfaces/hri_msgs when that folder exists and no ROS 2 provides it, and,
# without a system ROS 2, launch/launch_ros/launch_testing/ros2cli from ../shared/ros2-tools when that folder exists.
# Idempotent: `make setup` calls it only when an input changed. Every failure says which prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}
# Unset: the distribution this venv was built with (so a later plain `make test` keeps it), else Kilted.
ROS_WHEELS=${ROS_WHEELS:-$(cat "$VENV/.ros-wheels" 2>/dev/null || echo kilted)}
ROS2_TOOLS=$ROOT/../shared/ros2-tools
HRI_MSGS=$ROOT/../shared/ros2-interfaces/hri_msgs

trap 'printf "\n[setup] ERROR: step failed at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
die() { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }
step() { printf '[setup] %s\n' "$*"; }

check_prerequisites() {
  local tool
  for tool in "$PYTHON" cmake make gcc g++; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed. Install it (Debian/Ubuntu: apt-get install python3 python3-venv cmake make gcc g++) and run 'make setup' again."
  done
  "$PYTHON" -c 'pass' >/dev/null 2>&1 || die "'$PYTHON' is not a working Python interpreter (set PYTHON=/path/to/python3.11)."
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON has no venv/ensurepip module (Debian/Ubuntu: apt-get install python3-venv)."
  case "$ROS_WHEELS" in
    kilted|jazzy) ;;
    *) die "ROS_WHEELS=$ROS_WHEELS: choose kilted (default) or jazzy." ;;
  esac
  if [ -z "${ROS_DISTRO:-}" ] && [ -f "$VENV/.ros-wheels" ] && [ "$(cat "$VENV/.ros-wheels")" != "$ROS_WHEELS" ]; then
    die ".venv holds the ROS 2 $(cat "$VENV/.ros-wheels") wheels, not $ROS_WHEELS: run 'make clean' first to switch."
  fi
  if [ -z "${ROS_DISTRO:-}" ]; then
    # The ros-python-wheels (Kilted, Jazzy) are built for CPython 3.11 only.
    local ver; ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$ver" = "3.11" ] || die "without a system ROS 2, the ROS 2 $ROS_WHEELS wheels from PyPI need Python 3.11, but $PYTHON is $ver. Set PYTHON=python3.11, or source a system ROS 2 (setup.bash) first."
  fi
}

make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    local flags=()
    # A system ROS 2 installs rclpy into the system Python: the venv must see it.
    [ -n "${ROS_DISTRO:-}" ] && flags+=(--system-site-packages)
    "$PYTHON" -m venv "${flags[@]}" "$VENV" || die "could not create a virtual environment with $PYTHON."
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel || die "pip could not upgrade itself (no package index reachable?)."
}

install_requirements() {
  local reqs=(-r requirements.txt)
  if [ -z "${ROS_DISTRO:-}" ] && [ "$ROS_WHEELS" = jazzy ]; then
    # requirements.lock pins Kilted's ros-* wheels: keep every other pin, drop those.
    grep -v '^ros-' requirements.lock > build/constraints-jazzy.txt
    grep -v '^-c ' requirements.txt > build/requirements-jazzy.txt
    reqs=(-c build/constraints-jazzy.txt -r build/requirements-jazzy.txt -r requirements-ros-jazzy.txt)
    step "installing Python ML deps + ROS 2 Jazzy wheels (ROS_WHEELS=jazzy, no system ROS 2 sourced)"
  elif [ -z "${ROS_DISTRO:-}" ]; then
    reqs+=(-r requirements-ros.txt)
    step "installing Python ML deps + ROS 2 Kilted wheels (no system ROS 2 sourced)"
  else
    step "installing Python ML deps (using the sourced system ROS 2 $ROS_DISTRO)"
  fi
  "$VENV/bin/python" -m pip install -q "${reqs[@]}" \
    || die "a wheel failed to install (see pip's message above). Check that PyPI is reachable and that Python is 3.11."
  [ -n "${ROS_DISTRO:-}" ] || echo "$ROS_WHEELS" > "$VENV/.ros-wheels"
}

# The ROS wheels were built in a manylinux container: their CMake configs point at that container's Python.
patch_ros_cmake_paths() {
  [ -n "${ROS_DISTRO:-}" ] && return 0
  local inc site
  inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [ -f "$inc/Python.h" ] || die "Python headers not found at $inc (Debian/Ubuntu: apt-get install python3-dev)."
  grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null \
    | xargs -0 -r sed -i \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$inc#g" \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$site#g" || true
}

# Runs colcon in the environment the packages build in (the PyPI ROS 2 on the prefix paths, or the system's).
colcon_build() {
  (
    if [ -z "${ROS_DISTRO:-}" ]; then
      export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
      export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
    fi
    command -v colcon >/dev/null || die "colcon not found (system ROS 2: apt-get install python3-colcon-common-extensions)."
    colcon --log-base build/log build --build-base build --install-base install "$@"
  )
}

# emotion_msgs is a plain build (its Python is generated, a source edit needs a rebuild anyway); this
# package is built with --symlink-install, so edits to its Python, launch and config files take effect at
# once (a new file, or a new console script in setup.py, needs `make setup` again).
build_packages() {
  step "building emotion_msgs and emotion_recognition_ros with colcon into install/"
  colcon_build --base-paths emotion_msgs \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" > build/colcon.log 2>&1 \
    || { tail -40 build/colcon.log >&2; die "colcon could not build emotion_msgs (full log: build/colcon.log)."; }
  # Older setups also installed `training`; colcon leaves the link of a package setup.py no longer lists.
  rm -f build/emotion_recognition_ros/training
  colcon_build --symlink-install --base-paths . emotion_msgs --packages-skip emotion_msgs >> build/colcon.log 2>&1 \
    || { tail -40 build/colcon.log >&2; die "colcon could not build emotion_recognition_ros (full log: build/colcon.log)."; }
  # An older setup installed the package into the venv with `pip install -e .`; install/ has it now.
  if "$VENV/bin/python" -m pip show -q emotion_recognition_ros >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y emotion_recognition_ros >/dev/null
  fi
}

# hri_msgs (REP-155) is optional: only the node's ros4hri output needs it, and the node names the apt package
# when it is missing. A sourced ROS 2 that has it wins; otherwise it is built from ../shared when there.
build_hri_msgs() {
  if [ -n "${ROS_DISTRO:-}" ] && "$VENV/bin/python" -c 'import hri_msgs.msg' 2>/dev/null; then
    step "hri_msgs: from the sourced ROS 2 $ROS_DISTRO"
  elif [ -f "$HRI_MSGS/package.xml" ]; then
    step "building hri_msgs (REP-155) from ../shared/ros2-interfaces/hri_msgs into install/ (log: build/hri_msgs.log)"
    colcon_build --base-paths "$HRI_MSGS" \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" > build/hri_msgs.log 2>&1 \
      || { tail -40 build/hri_msgs.log >&2; die "colcon could not build hri_msgs (full log: build/hri_msgs.log)."; }
  else
    step "no hri_msgs: ros4hri:=true will be refused (apt-get install ros-${ROS_DISTRO:-\$ROS_DISTRO}-hri-msgs, or ../shared/ros2-interfaces/hri_msgs)"
  fi
}

# ros2 launch, launch_ros, launch_testing and the ros2 CLI: a system ROS 2 has them; for the PyPI wheels
# they come from ../shared/ros2-tools (not on PyPI), which also builds composition_interfaces into install/.
install_ros2_tools() {
  if [ -n "${ROS_DISTRO:-}" ]; then
    step "ros2 launch, launch_testing: from the sourced ROS 2 $ROS_DISTRO (apt-get install ros-$ROS_DISTRO-ros2launch ros-$ROS_DISTRO-launch-testing-ros if missing)"
  elif [ -f "$ROS2_TOOLS/install.sh" ]; then
    step "installing launch, launch_ros, launch_testing and the ros2 CLI from ../shared/ros2-tools (log: build/ros2-tools.log)"
    scripts/run bash "$ROS2_TOOLS/install.sh" "$VENV" "$ROOT/install" > build/ros2-tools.log 2>&1 \
      || { tail -20 build/ros2-tools.log >&2; die "../shared/ros2-tools/install.sh failed (full log: build/ros2-tools.log)."; }
  else
    step "no ../shared/ros2-tools beside the checkout: no ros2 launch / launch_testing (the launch tests will skip)"
  fi
}

start=$(date +%s)
check_prerequisites
mkdir -p build
make_venv
install_requirements
patch_ros_cmake_paths
build_packages
build_hri_msgs
install_ros2_tools
step "done in $(( $(date +%s) - start )) s"
