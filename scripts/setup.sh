#!/usr/bin/env bash
# Builds the project environment: .venv (pinned Python deps), ROS 2 (PyPI wheels unless a system
# ROS 2 is sourced), and emotion_msgs built with colcon into install/. Idempotent: `make setup` calls it
# only when an input changed. Every failure says which prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}

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
  if [ -z "${ROS_DISTRO:-}" ]; then
    # The ros-python-wheels (Kilted) are built for CPython 3.11 only.
    local ver; ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$ver" = "3.11" ] || die "without a system ROS 2, the ROS 2 Kilted wheels from PyPI need Python 3.11, but $PYTHON is $ver. Set PYTHON=python3.11, or source a system ROS 2 (setup.bash) first."
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
  if [ -z "${ROS_DISTRO:-}" ]; then
    reqs+=(-r requirements-ros.txt)
    step "installing Python ML deps + ROS 2 Kilted wheels (no system ROS 2 sourced)"
  else
    step "installing Python ML deps (using the sourced system ROS 2 $ROS_DISTRO)"
  fi
  "$VENV/bin/python" -m pip install -q "${reqs[@]}" \
    || die "a wheel failed to install (see pip's message above). Check that PyPI is reachable and that Python is 3.11."
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

build_msgs() {
  step "building emotion_msgs with colcon into install/"
  (
    if [ -z "${ROS_DISTRO:-}" ]; then
      export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
      export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
    fi
    command -v colcon >/dev/null || die "colcon not found (system ROS 2: apt-get install python3-colcon-common-extensions)."
    colcon --log-base build/log build --base-paths emotion_msgs --build-base build --install-base install \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
      > build/colcon.log 2>&1 \
      || { tail -40 build/colcon.log >&2; die "colcon could not build emotion_msgs (full log: build/colcon.log)."; }
  )
}

install_package() {
  step "installing emotion_recognition_ros (editable) and training"
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . \
    || die "pip could not install this package in editable mode."
}

start=$(date +%s)
check_prerequisites
make_venv
install_requirements
patch_ros_cmake_paths
mkdir -p build
build_msgs
install_package
step "done in $(( $(date +%s) - start )) s"
