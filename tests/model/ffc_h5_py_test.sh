#!/usr/bin/env bash
# `ffc model export` + tools/ffc_h5.py: an exported r18 has insightface's keys, order and shapes
# as seen from Python (h5py), and loads as a torch state dict where torch is installed.
# usage: ffc_h5_py_test.sh FFC SOURCE_DIR
set -u
ffc=$1 src=$2
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "ffc_h5_py_test: FAIL: $*"; failures=$((failures + 1)); }

"$ffc" model export r18 --out "$tmp/r18.h5" --seed 3 >"$tmp/export.out" 2>&1 ||
  { cat "$tmp/export.out"; fail "ffc model export r18"; }
[ -f "$tmp/r18.h5" ] || fail "no r18.h5 written"
ls "$tmp" | grep -q tmp && fail "temporary file left behind"

"$py" "$src/tools/ffc_h5.py" "$tmp/r18.h5" >"$tmp/summary.out" 2>&1 || fail "summary"
grep -q "network r18, embedding_size 512, image_size 112, 187 tensors, 24025600 parameters" \
  "$tmp/summary.out" || { cat "$tmp/summary.out"; fail "summary line"; }

"$py" "$src/tools/ffc_h5.py" "$tmp/r18.h5" \
  --check-names "$src/tests/model/data/iresnet18_state_dict.txt" >"$tmp/check.out" 2>&1 ||
  { cat "$tmp/check.out"; fail "r18 keys differ from insightface's listing"; }

"$py" "$src/tools/ffc_h5.py" "$tmp/r18.h5" --list >"$tmp/list.out" 2>&1 || fail "--list"
diff -q "$tmp/list.out" "$src/tests/model/data/iresnet18_state_dict.txt" >/dev/null ||
  fail "--list output differs from the reference listing"

# The check must be able to fail: r18 against the r50 listing.
if "$py" "$src/tools/ffc_h5.py" "$tmp/r18.h5" \
  --check-names "$src/tests/model/data/iresnet50_state_dict.txt" >"$tmp/bad.out" 2>&1; then
  fail "r18 passed the r50 listing check"
fi
grep -q "missing in file: layer3.13.bn1.weight" "$tmp/bad.out" || fail "r50 check output"

# A file that is not a backbone.
printf 'no\n' >"$tmp/text.h5"
"$py" "$src/tools/ffc_h5.py" "$tmp/text.h5" >/dev/null 2>&1 && fail "accepted a text file"

if "$py" -c 'import torch' >/dev/null 2>&1; then
  "$py" - "$src/tools" "$tmp/r18.h5" >"$tmp/torch.out" 2>&1 <<'PY' || { cat "$tmp/torch.out"; fail "torch state dict"; }
import sys
sys.path.insert(0, sys.argv[1])
import torch, ffc_h5
sd = ffc_h5.load_state_dict(sys.argv[2])
assert len(sd) == 187, len(sd)
assert sd["bn1.num_batches_tracked"].dtype == torch.int64 and sd["bn1.num_batches_tracked"].dim() == 0
assert sd["fc.weight"].dtype == torch.float32 and tuple(sd["fc.weight"].shape) == (512, 25088)
assert torch.all(sd["features.weight"] == 1)
print("torch ok")
PY
else
  echo "ffc_h5_py_test: python3-torch not installed; the torch part is skipped"
fi

[ "$failures" -eq 0 ] && echo "ffc_h5_py_test: all checks passed"
exit $((failures > 0))
