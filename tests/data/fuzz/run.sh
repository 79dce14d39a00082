#!/usr/bin/env bash
# Configures, builds and runs the sanitizer fuzz build. usage: run.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
cmake -S "$src/tests/data/fuzz" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build"
rm -rf "$build/work"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$build/recordio_fuzz" "$build/work" 1200
