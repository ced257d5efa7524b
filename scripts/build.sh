#!/usr/bin/env bash
# Installs dependencies (Debian packages) and builds dlsys into build/ (or $BUILD_DIR).
#   scripts/build.sh            build everything, including the libtorch runtime module
#   BUILD_TYPE=Release scripts/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
ninja -C "$BUILD_DIR"
echo "build: $BUILD_DIR/bin/dlsys"
