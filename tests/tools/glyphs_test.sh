#!/usr/bin/env bash
# The glyph set (tools/ffc_glyphs.py, docs/data.md "Glyph identities") from the small CI font set
# (tools/bootstrap --glyphs=ci): a few hundred identities are built, packed and verified; the same
# seed builds the same files; the set says it must not be mirrored and training with flips is
# refused; FFC trains a few steps on 2 ranks and evaluates its held-out pairs and its long-tail
# file during training and with `ffc eval`, without the flip test; the .bin converts to the same
# pairs; a contact sheet is drawn. Fonts with empty or missing glyphs are left out
# (glyphs_font_test.py, run here too).
# usage: glyphs_test.sh FFC MPIEXEC SOURCE_DIR
set -u
ffc=$1 mpiexec=$2 src=$3
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
show() { tail -n "${2:-15}" "$1" | sed 's/^/  | /'; }

"$py" "$src/tests/tools/glyphs_font_test.py" "$src/tools" >"$tmp/font.log" 2>&1 ||
  { fail "glyphs_font_test.py"; show "$tmp/font.log"; }

build() { # build OUT: a CI-sized set
  "$py" "$src/tools/ffc_glyphs.py" build --font-set ci --blocks uro --classes 300 --heldout 60 \
    --impostors 200 --longtail-per-bucket 50 --ffc "$ffc" --out "$1" >"$1.log" 2>&1
}
build "$tmp/g" || { fail "ffc_glyphs.py build"; show "$tmp/g.log" 30; }
for f in train.rec train.idx property train.ffcidx dataset.json glyph_heldout.bin \
  glyph_heldout.h5 glyph_longtail.h5 glyphs.json identities.tsv; do
  [ -s "$tmp/g/$f" ] || fail "build wrote no $f"
done
[ ! -e "$tmp/g/images.partial" ] || fail "the image folder was left behind"
grep -q "training images per identity:" "$tmp/g.log" || fail "no histogram printed"
grep -q "held-out pairs: 200 genuine, 200 impostor (100 hard" "$tmp/g.log" ||
  { fail "held-out pairs"; grep "held-out" "$tmp/g.log"; }

# Reproducible from the seed; another seed gives another set.
build "$tmp/again" || fail "second build"
for f in train.rec train.idx identities.tsv glyph_heldout.bin; do
  cmp -s "$tmp/g/$f" "$tmp/again/$f" || fail "$f differs between two builds with one seed"
done
"$py" "$src/tools/ffc_glyphs.py" build --font-set ci --blocks uro --classes 300 --heldout 60 \
  --impostors 200 --longtail-per-bucket 50 --ffc "$ffc" --seed 7 --out "$tmp/other" \
  >"$tmp/other.log" 2>&1 || fail "build --seed 7"
cmp -s "$tmp/g/train.rec" "$tmp/other/train.rec" && fail "another seed gave the same set"
# A set already there is not overwritten without --force.
"$py" "$src/tools/ffc_glyphs.py" build --font-set ci --blocks uro --classes 300 --ffc "$ffc" \
  --out "$tmp/g" >"$tmp/again2.log" 2>&1 && fail "an existing set was overwritten"
grep -q -- "--force" "$tmp/again2.log" || fail "no --force hint"

# What the files hold.
"$py" - "$tmp/g" "$src/tools" <<'PY' >"$tmp/files.log" 2>&1 || { fail "set files"; show "$tmp/files.log"; }
import json, pickle, sys
import h5py
d, tools = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/glyphs.json"))
assert m["identities"] == 300 and m["flip"] is False, m
assert sum(m["histogram_images"].values()) == 300, m["histogram_images"]
assert m["verification"] == {"pairs": 400, "genuine": 200, "impostor": 200, "hard": 100,
                             "hard_same_radical": m["verification"]["hard_same_radical"]}, m
assert all(f["package"].startswith("fonts-") for f in m["fonts"]), m["fonts"]
rows = [l.rstrip("\n").split("\t") for l in open(f"{d}/identities.tsv", encoding="utf-8")][1:]
assert len(rows) == 300 and sorted(int(r[0]) for r in rows) == list(range(300))
assert sum(int(r[5]) for r in rows) == m["images"]
assert all(int(r[5]) >= 2 for r in rows), "min 2 images"
assert all(int(r[4]) >= 1 for r in rows)
bins, issame = pickle.load(open(f"{d}/glyph_heldout.bin", "rb"))
assert len(bins) == 800 and len(issame) == 400 and sum(issame) == 200
with h5py.File(f"{d}/glyph_heldout.h5") as f:
    assert f.attrs["format"] == "ffc-verification-set" and f.attrs["flip"] == 0
    assert f.attrs["image_size"] == 32 and f.attrs["pairs"] == 400
    assert [bool(x) for x in f["issame"][()]] == issame
with h5py.File(f"{d}/glyph_longtail.h5") as f:
    assert f.attrs["format"] == "ffc-longtail-set" and f.attrs["flip"] == 0
    n = len(f["labels"])
    assert len(f["offsets"]) == 2 * n + 1 and len(f["train_images"]) == n
    pop = f["population"][()].tolist()
    assert pop[0] == 0 and sum(pop) == 300, pop
    labels = f["labels"][()]
    assert len(set(labels.tolist())) == n, "labels must be unique"
    assert (labels[f["train_images"][()] == 0] >= 300).all(), "unseen identities are >= N"
PY

# ffc sees a no-flip set.
"$ffc" data verify "$tmp/g" >"$tmp/verify.log" 2>&1 || { fail "ffc data verify"; show "$tmp/verify.log"; }
grep -q "verified [0-9]* images: 0 bad" "$tmp/verify.log" || fail "verify: not 0 bad"
"$ffc" data stat "$tmp/g" >"$tmp/stat.log" 2>&1 || fail "ffc data stat"
grep -q '"flip": false' "$tmp/stat.log" || { fail "stat does not say flip: false"; show "$tmp/stat.log"; }
grep -q '"identities": 300' "$tmp/stat.log" || fail "stat: identities"

common=(--set rec="$tmp/g" --set network=tiny --set image_size=32 --set embedding_size=32
  --set batch_size=16 --set num_workers=1 --set num_epoch=2 --set val_pairs=0
  --set val_identities=0 --set save_keep=0)
"$ffc" train "${common[@]}" --set max_steps=2 --set output="$tmp/flip" >"$tmp/flip.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "training with flip: true exited $rc, expected 2 (configuration error)"
grep -q "set flip: false" "$tmp/flip.log" || { fail "no hint to set flip: false"; show "$tmp/flip.log"; }

"$mpiexec" --bind-to none -n 2 "$ffc" train "${common[@]}" --set flip=false --set max_steps=12 \
  --set frequent=6 --set output="$tmp/run" \
  --set "val_targets=[$tmp/g/glyph_heldout.h5, $tmp/g/glyph_longtail.h5]" >"$tmp/train.log" 2>&1 ||
  { fail "ffc train on the glyph set"; show "$tmp/train.log" 20; }
grep -q "no mirroring (dataset.json)" "$tmp/train.log" || fail "the data line does not say no mirroring"
grep -q "\[glyph_heldout\]\[12\] Pairs: 400 (200 genuine, 200 impostor)" "$tmp/train.log" ||
  { fail "no held-out evaluation at step 12"; show "$tmp/train.log" 25; }
grep -q "\[glyph_heldout\]\[12\] Accuracy: " "$tmp/train.log" || fail "no accuracy line"
grep -q "Accuracy-Flip" "$tmp/train.log" && fail "a glyph set was scored with the flip test"
grep -q "\[glyph_longtail\]\[12\] 6-20 " "$tmp/train.log" || fail "no long-tail rows"
grep -q '"target":"glyph_longtail"' "$tmp/run/metrics.jsonl" || fail "no long-tail record"

ckpt=$tmp/run/checkpoints/step_000000012.h5
"$mpiexec" --bind-to none -n 2 "$ffc" eval --checkpoint "$ckpt" --set-file "$tmp/g/glyph_heldout.h5" \
  --set-file "$tmp/g/glyph_longtail.h5" --json >"$tmp/eval.json" 2>"$tmp/eval.err" ||
  { fail "ffc eval"; show "$tmp/eval.err"; }
"$py" - "$tmp/eval.json" "$tmp/train.log" <<'PY' >"$tmp/evalcheck.log" 2>&1 || { fail "eval output"; show "$tmp/evalcheck.log"; }
import json, re, sys
doc = json.load(open(sys.argv[1]))
t = doc["targets"][0]
assert t["target"] == "glyph_heldout" and t["flip"] is False and t["pairs"] == 400, t
assert "accuracy_noflip" not in t
lt = doc["longtail_sets"][0]
assert lt["target"] == "glyph_longtail" and lt["flip"] is False, lt
assert [b["bucket"] for b in lt["buckets"]][-1] == "trained"
# The same figures as the evaluation the run made at its end (same network, same pairs).
log = open(sys.argv[2]).read()
acc = float(re.search(r"\[glyph_heldout\]\[12\] Accuracy: ([0-9.]+)", log).group(1))
assert abs(acc - t["accuracy"]) < 1e-5, (acc, t["accuracy"])
PY

# insightface's .bin converts to the same pairs (marked no-flip on request).
"$py" "$src/tools/bin2ffc.py" "$tmp/g/glyph_heldout.bin" --no-flip --out "$tmp/conv.h5" \
  >"$tmp/conv.log" 2>&1 || { fail "bin2ffc"; show "$tmp/conv.log"; }
"$py" - "$tmp/conv.h5" "$tmp/g/glyph_heldout.h5" <<'PY' || fail "converted .bin differs from the set file"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    for k in ("images", "offsets", "issame"):
        assert np.array_equal(a[k][()], b[k][()]), k
    assert a.attrs["flip"] == 0
PY

"$py" "$src/tools/ffc_plot.py" sheet "$tmp/g" --identities 6 --images 8 --out "$tmp/sheet.png" \
  >"$tmp/sheet.log" 2>&1 || { fail "ffc_plot.py sheet"; show "$tmp/sheet.log"; }
[ "$(head -c 8 "$tmp/sheet.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "no contact sheet PNG"

if [ "$failures" -ne 0 ]; then
  echo "glyphs_test: $failures failure(s)"
  exit 1
fi
echo "glyphs_test: all checks passed"
