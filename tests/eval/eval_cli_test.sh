#!/usr/bin/env bash
# End to end: insightface-style .bin files built here with Python's pickle (Python 3 protocols 2
# and 4, a Python 2 pickle, numpy arrays), converted by tools/bin2ffc.py and back, then `ffc eval`
# of an exported tiny backbone on the converted set (JSON, text, ROC CSV, 1 and 2 ranks, without
# flip), `ffc eval --synthetic` with its long-tail breakdown, and the errors a user can make.
# usage: eval_cli_test.sh FFC SOURCE_DIR MPIEXEC
set -u
ffc=$1 src=$2 mpiexec=$3
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "eval_cli_test: FAIL: $*"; failures=$((failures + 1)); }
# Prints the command's output on failure.
run() {
  local out=$1
  shift
  "$@" >"$out" 2>"$out.err" || { cat "$out" "$out.err"; return 1; }
}

# JPEG pairs: procedural held-out identities written by ffc itself (no Python imaging needed).
run "$tmp/save.out" "$ffc" eval --synthetic --save-heldout "$tmp/pairs.h5" --set num_classes=100 \
  --set image_size=32 --set val_pairs=60 --backend single || fail "ffc eval --save-heldout"

# .bin files as insightface has them, and bad ones.
"$py" - "$tmp" <<'PY' || fail "building the .bin files"
import os, pickle, struct, sys
import h5py, numpy as np
tmp = sys.argv[1]
with h5py.File(os.path.join(tmp, "pairs.h5"), "r") as f:
    data = f["images"][()].tobytes()
    off = f["offsets"][()]
    issame = [bool(x) for x in f["issame"][()]]
bins = [data[off[i]:off[i + 1]] for i in range(len(off) - 1)]
assert len(bins) == 120 and len(issame) == 60 and all(b[:2] == b"\xff\xd8" for b in bins)
for name, proto in (("p2", 2), ("p4", 4)):
    with open(os.path.join(tmp, name + ".bin"), "wb") as f:
        pickle.dump((bins, issame), f, protocol=proto)
# Python 2: images as str (SHORT_BINSTRING / BINSTRING), bools NEWTRUE / NEWFALSE.
out = bytearray(b"\x80\x02]")
out += b"("
for b in bins:
    out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b
out += b"e]("
out += b"".join(b"\x88" if s else b"\x89" for s in issame)
out += b"e\x86."
with open(os.path.join(tmp, "py2.bin"), "wb") as f:
    f.write(bytes(out))
try:
    pickle.loads(bytes(out))
    sys.exit("the Python 2 pickle loaded without encoding='bytes'")
except UnicodeDecodeError:
    pass
with open(os.path.join(tmp, "np.bin"), "wb") as f:
    pickle.dump(([np.frombuffer(b, np.uint8) for b in bins], np.array(issame)), f, protocol=2)
png = [b"\x89PNG\r\n\x1a\n" + b"\0" * 20] + bins[1:]
with open(os.path.join(tmp, "png.bin"), "wb") as f:
    pickle.dump((png, issame), f, protocol=2)
with open(os.path.join(tmp, "short.bin"), "wb") as f:
    pickle.dump((bins[:100], issame), f, protocol=2)
with open(os.path.join(tmp, "evil.bin"), "wb") as f:
    f.write(b"cos\nsystem\n(S'touch " + tmp.encode() + b"/pwned'\ntR.")
PY

for name in p2 p4 py2 np; do
  run "$tmp/conv_$name.out" "$py" "$src/tools/bin2ffc.py" "$tmp/$name.bin" ||
    fail "bin2ffc.py $name.bin"
done
grep -q "wrote $tmp/p2.h5: set 'p2', 60 pairs (30 genuine, 30 impostor), 120 JPEG images of 32x32" \
  "$tmp/conv_p2.out" || { cat "$tmp/conv_p2.out"; fail "bin2ffc.py summary line"; }
"$py" - "$tmp" <<'PY' || fail "converted files differ from the source pairs"
import os, sys
import h5py, numpy as np
tmp = sys.argv[1]
with h5py.File(os.path.join(tmp, "pairs.h5"), "r") as f:
    want = {k: f[k][()] for k in ("images", "offsets", "issame")}
for name in ("p2", "p4", "py2", "np"):
    with h5py.File(os.path.join(tmp, name + ".h5"), "r") as f:
        for k, v in want.items():
            assert np.array_equal(f[k][()], v), (name, k)
        assert f["images"].dtype == np.uint8 and f["offsets"].dtype == np.int64
        assert f["issame"].dtype == np.uint8
        a = f.attrs
        assert a["format"] == "ffc-verification-set" and a["format_version"] == 1, dict(a)
        assert a["name"] == name and a["image_size"] == 32 and a["pairs"] == 60, dict(a)
print("converted sets equal the source")
PY

# Round trip back to a .bin: the same pickled content.
run "$tmp/back.out" "$py" "$src/tools/bin2ffc.py" --to-bin "$tmp/p2.h5" --out "$tmp/back.bin" ||
  fail "bin2ffc.py --to-bin"
"$py" - "$tmp" <<'PY' || fail ".bin -> .h5 -> .bin changed the content"
import os, pickle, sys
tmp = sys.argv[1]
a = pickle.load(open(os.path.join(tmp, "p2.bin"), "rb"))
b = pickle.load(open(os.path.join(tmp, "back.bin"), "rb"))
assert list(a[0]) == list(b[0]) and list(a[1]) == list(b[1])
PY

# Bad inputs: clear errors, no output file, and no code run from a pickle.
for name in png short evil; do
  if "$py" "$src/tools/bin2ffc.py" "$tmp/$name.bin" >"$tmp/bad_$name.out" 2>&1; then
    fail "bin2ffc.py accepted $name.bin"
  fi
  [ -e "$tmp/$name.h5" ] && fail "bin2ffc.py left $name.h5 behind"
done
grep -q "image 0 is a PNG" "$tmp/bad_png.out" || { cat "$tmp/bad_png.out"; fail "PNG message"; }
grep -q "60 pairs need 120 images, the file has 100" "$tmp/bad_short.out" ||
  { cat "$tmp/bad_short.out"; fail "short message"; }
grep -q "refusing" "$tmp/bad_evil.out" || { cat "$tmp/bad_evil.out"; fail "evil message"; }
[ -e "$tmp/pwned" ] && fail "unpickling ran a command"

# A tiny backbone, and `ffc eval` on the converted set.
run "$tmp/export.out" "$ffc" model export tiny --out "$tmp/tiny.h5" --embedding-size 64 \
  --seed 5 || fail "ffc model export tiny"
run "$tmp/eval1.json" "$ffc" eval --backbone "$tmp/tiny.h5" --set-file "$tmp/p2.h5" --json \
  --roc-csv "$tmp/roc_" --batch 32 --backend single || fail "ffc eval --set-file (1 rank)"
# 2 ranks: the converted sets, and the procedural held-out pairs with the long-tail breakdown.
run "$tmp/eval2.json" "$mpiexec" -n 2 "$ffc" eval --backbone "$tmp/tiny.h5" \
  --set-file "$tmp/p2.h5" --set-file "$tmp/py2.h5" --json --batch 32 --synthetic \
  --set num_classes=2000 --set val_pairs=200 --set val_identities=30 ||
  fail "ffc eval --set-file --synthetic (2 ranks)"
run "$tmp/noflip.json" "$ffc" eval --backbone "$tmp/tiny.h5" --set-file "$tmp/p2.h5" --json \
  --no-flip --backend single || fail "ffc eval --no-flip"
"$py" - "$tmp" <<'PY' || fail "ffc eval JSON"
import csv, json, os, sys
tmp = sys.argv[1]
one = json.load(open(os.path.join(tmp, "eval1.json")))
two = json.load(open(os.path.join(tmp, "eval2.json")))
nf = json.load(open(os.path.join(tmp, "noflip.json")))
assert one["network"]["network"] == "tiny" and one["network"]["image_size"] == 32, one["network"]
assert one["ranks"] == 1 and two["ranks"] == 2 and one["flip"] is True
t = one["targets"][0]
assert t["target"] == "p2" and t["pairs"] == 60 and t["positives"] == 30, t
for k in ("accuracy", "accuracy_std", "accuracy_noflip", "threshold", "xnorm", "auc", "tar@far=1e-01"):
    assert k in t, k
assert 0 <= t["accuracy"] <= 1 and 0 <= t["auc"] <= 1 and t["xnorm"] > 0
assert "tar@far=1e-02" not in t  # 30 impostor pairs measure FAR 1e-1 only
# Distributed equals single process; the Python 2 pickle gave the same set.
a, b, c = t, two["targets"][0], two["targets"][1]
assert b["target"] == "p2" and c["target"] == "py2"
for k in ("accuracy", "accuracy_noflip", "auc"):
    assert abs(a[k] - b[k]) < 1e-9 and abs(b[k] - c[k]) < 1e-9, (k, a[k], b[k], c[k])
assert abs(a["xnorm"] - b["xnorm"]) < 1e-4 * a["xnorm"]
# Without flip: the plain embeddings' accuracy, as the flip run's accuracy_noflip.
n = nf["targets"][0]
assert nf["flip"] is False and "accuracy_noflip" not in n
assert abs(n["accuracy"] - t["accuracy_noflip"]) < 1e-9, (n["accuracy"], t["accuracy_noflip"])
# The ROC: header, from (0, 0, inf) to (1, 1), monotone.
rows = list(csv.reader(open(t["roc_csv"])))
assert rows[0] == ["far", "tar", "threshold"] and rows[1] == ["0", "0", "inf"], rows[:2]
pts = [(float(f), float(r)) for f, r, _ in rows[1:]]
assert pts[-1] == (1.0, 1.0)
assert all(p[0] <= q[0] and p[1] <= q[1] for p, q in zip(pts, pts[1:]))
print(f"eval_cli_test: p2 accuracy-flip {t['accuracy']:.4f}, no flip {t['accuracy_noflip']:.4f}, "
      f"auc {t['auc']:.4f}, {len(pts)} ROC points")
PY

run "$tmp/text.out" "$ffc" eval --backbone "$tmp/tiny.h5" --set-file "$tmp/p2.h5" --synthetic \
  --set num_classes=2000 --set val_pairs=100 --set val_identities=10 --backend single ||
  fail "ffc eval (text)"
grep -Eq '^\[p2\]\[0\] Accuracy-Flip: [01]\.[0-9]{5}\+-0\.[0-9]{5}$' "$tmp/text.out" ||
  { cat "$tmp/text.out"; fail "Accuracy-Flip line"; }
grep -Eq '^\[p2\]\[0\] XNorm: [0-9.]+$' "$tmp/text.out" || fail "XNorm line"
grep -Eq '^\[p2\]\[0\] TAR@FAR=1e-01: [01]\.[0-9]{5}$' "$tmp/text.out" || fail "TAR@FAR line"

"$py" - "$tmp" <<'PY' || fail "ffc eval --synthetic JSON"
import json, os, sys
d = json.load(open(os.path.join(sys.argv[1], "eval2.json")))
assert [t["target"] for t in d["targets"]] == ["p2", "py2", "heldout"], d["targets"]
assert d["targets"][2]["pairs"] == 200 and d["targets"][2]["file"] == "synthetic"
lt = d["longtail"]
names = [b["bucket"] for b in lt["buckets"]]
assert names == ["unseen", "1", "2-5", "6-20", ">20", "trained"], names
for b in lt["buckets"]:
    assert 0 <= b["top1"] <= b["top5"] <= 1 and 0 <= b["accuracy"] <= 1, b
    assert b["identities"] <= 30 or b["bucket"] == "trained", b
assert sum(b["trained_identities"] for b in lt["buckets"][1:5]) == 2000
assert lt["buckets"][-1]["trained_identities"] == 2000
print("eval_cli_test: long-tail top-1 by bucket",
      {b["bucket"]: round(b["top1"], 3) for b in lt["buckets"]})
PY
grep -Eq '^\[longtail\]\[0\] >20 ' "$tmp/text.out" || { cat "$tmp/text.out"; fail "long-tail table"; }
grep -Eq '^\[heldout\]\[0\] Accuracy-Flip: ' "$tmp/text.out" || fail "heldout line"

# A checkpoint-layout file written by h5py (the backbone's tensors under /probe, spec in root
# attributes): `ffc eval --checkpoint` scores as the backbone does.
"$py" - "$tmp" <<'PY' || fail "writing a checkpoint-layout file"
import os, sys
import h5py
tmp = sys.argv[1]
with h5py.File(os.path.join(tmp, "tiny.h5"), "r") as src, \
        h5py.File(os.path.join(tmp, "ckpt.h5"), "w") as dst:
    for k in ("network", "embedding_size", "image_size"):
        dst.attrs[k] = src.attrs[k]
    dst.attrs["step"] = 777
    g = dst.create_group("probe")
    for name, ds in src.items():
        g.create_dataset(name, data=ds[()])
    dst.create_group("optimizer").create_dataset("lr", data=[0.1])
PY
run "$tmp/ckpt.json" "$ffc" eval --checkpoint "$tmp/ckpt.h5" --net probe --set-file "$tmp/p2.h5" \
  --json --batch 32 --backend single || fail "ffc eval --checkpoint"
"$py" - "$tmp" <<'PY' || fail "checkpoint and backbone disagree"
import json, os, sys
tmp = sys.argv[1]
c = json.load(open(os.path.join(tmp, "ckpt.json")))
b = json.load(open(os.path.join(tmp, "eval1.json")))
assert c["network"]["kind"] == "checkpoint" and c["network"]["step"] == 777, c["network"]
assert c["targets"][0]["accuracy"] == b["targets"][0]["accuracy"]
assert c["targets"][0]["xnorm"] == b["targets"][0]["xnorm"]
PY

# Errors: exit 2 for usage, 1 for a bad file, with a message naming the problem.
"$ffc" eval --set-file "$tmp/p2.h5" >"$tmp/e1" 2>&1
[ $? -eq 2 ] || fail "no network: expected exit 2"
grep -q -- "--backbone" "$tmp/e1" || { cat "$tmp/e1"; fail "no-network message"; }
"$ffc" eval --backbone "$tmp/tiny.h5" >"$tmp/e2" 2>&1
[ $? -eq 2 ] || fail "nothing to evaluate: expected exit 2"
"$ffc" eval --backbone "$tmp/tiny.h5" --set-file "$tmp/nothere.h5" >"$tmp/e3" 2>&1
[ $? -eq 1 ] || fail "missing set file: expected exit 1"
grep -q "nothere.h5" "$tmp/e3" || { cat "$tmp/e3"; fail "missing-file message"; }
"$ffc" eval --backbone "$tmp/tiny.h5" --set-file "$tmp/tiny.h5" >"$tmp/e4" 2>&1
[ $? -eq 1 ] || fail "a backbone as a set file: expected exit 1"
grep -q "bin2ffc" "$tmp/e4" || { cat "$tmp/e4"; fail "not-a-set message"; }
"$ffc" eval --checkpoint "$tmp/tiny.h5" --set-file "$tmp/p2.h5" --backend single >"$tmp/e5" 2>&1
[ $? -eq 1 ] || fail "a backbone as a checkpoint: expected exit 1"
"$ffc" eval --backbone "$tmp/tiny.h5" --synthetic --set num_classes=100 --set image_size=64 \
  --backend single >"$tmp/e6" 2>&1
[ $? -eq 2 ] || { cat "$tmp/e6"; fail "image size mismatch: expected exit 2"; }

[ "$failures" -eq 0 ] && echo "eval_cli_test: all checks passed"
exit $((failures > 0))
