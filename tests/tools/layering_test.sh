#!/usr/bin/env bash
# The layering check (tools/ffc_layers.py): src/ keeps to the map that src/CMakeLists.txt draws,
# docs/CONTRIBUTING.md shows that map as it is, and the check fails, naming the file and the line,
# on includes a library must not use (planted in a copy of src/).
# usage: layering_test.sh SOURCE_DIR
set -u
src=$1
py=/usr/bin/python3
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"
harness_start layering_test

run real 0 "$py" "$src/tools/ffc_layers.py" check --src "$src/src"
has real.out "keeps to the map"

# The map in docs/CONTRIBUTING.md, between its markers, is the one the build files draw.
run map 0 "$py" "$src/tools/ffc_layers.py" map --src "$src/src"
sed -n '/<!-- layers:begin -->/,/<!-- layers:end -->/p' "$src/docs/CONTRIBUTING.md" |
  sed '1d;$d' >"$tmp/doc-map.md"
diff -u "$tmp/doc-map.md" "$tmp/map.out" >"$tmp/map.diff" ||
  { sed 's/^/  | /' "$tmp/map.diff"; fail "docs/CONTRIBUTING.md's map differs from src/CMakeLists.txt (tools/ffc_layers.py map)"; }

# Bad includes, planted in a copy: an upward arrow, HDF5 outside src/h5, a folder no library
# builds. Each is reported with its file and line, and the check fails.
cp -r "$src/src" "$tmp/src"
sed -i '2i #include "train/trainer.h"' "$tmp/src/common/error.cpp"
sed -i '2i #include <hdf5.h>' "$tmp/src/model/export.cpp"
mkdir -p "$tmp/src/stray" && echo '#include "common/error.h"' >"$tmp/src/stray/x.cpp"
run planted 1 "$py" "$src/tools/ffc_layers.py" check --src "$tmp/src"
has planted.out 'src/common/error.cpp:2: ffc_common includes "train/trainer.h" of ffc_train'
has planted.out 'src/model/export.cpp:2: includes <hdf5.h>, which only src/h5 may'
has planted.out 'src/stray: a folder that no library of src/CMakeLists.txt builds'
has planted.out '3 include(s) against the layering'
# Without the plants the copy passes again: the failures were the plants, not the copy.
sed -i '2d' "$tmp/src/common/error.cpp" "$tmp/src/model/export.cpp"
rm -r "$tmp/src/stray"
run unplanted 0 "$py" "$src/tools/ffc_layers.py" check --src "$tmp/src"

harness_finish
