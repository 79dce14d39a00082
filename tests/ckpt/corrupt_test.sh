#!/usr/bin/env bash
# Bad checkpoints: a flipped byte fails its checksum (ffc ckpt verify names the dataset) and
# --resume auto falls back to the previous checkpoint; a checkpoint of another model, another
# format version or a truncated file is refused with a message naming what differs. Also: h5py
# (Debian's python3-h5py) reads a checkpoint and finds the documented datasets; ffc ckpt info,
# pool-stats and export describe it.
# usage: corrupt_test.sh MPIEXEC FFC
MPIEXEC=$1 FFC=$2
source "$(dirname "$0")/common.sh"
out="$tmp/c"
train 2 "$out" --set max_steps=10 --set save_every=5
[ "$rc" -eq 0 ] || { fail "training exited $rc"; show_log; finish; }
good="$out/checkpoints/step_000000005.h5"
bad="$out/checkpoints/step_000000010.h5"

/usr/bin/python3 - "$bad" <<'PY' || fail "h5py does not find the documented layout"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
a = f.attrs
assert a["format"] == "ffc-checkpoint" and a["format_version"] == 1, dict(a)
for k in ("step", "epoch", "method", "world_size", "num_classes", "embedding_size", "network",
          "image_size", "pool_size", "complete"):
    assert k in a, k
assert a["step"] == 10 and a["world_size"] == 2 and a["method"] == "ffc"
assert f["probe/conv1.weight"].shape[0] > 0 and f["probe/conv1.weight"].fletcher32
q, d = int(a["pool_size"]), int(a["embedding_size"])
assert f["head/pool/rows"].shape == (q, 2, d), f["head/pool/rows"].shape
assert f["head/pool/labels"].shape == (q,)
assert "optimizer/momentum/conv1.weight" in f and "gallery/conv1.weight" in f
assert b"network:" in f["config"][()].tobytes()
print("h5py: layout as documented,", len(list(f["probe"])), "probe tensors")
PY

# The inspection commands, on the intact file.
"$FFC" ckpt info "$bad" >"$tmp/info.txt" 2>&1 || fail "ckpt info exited $?"
for want in "step: 10" "method: ffc" "world_size: 2" "/head/pool/rows  \[.*, 2, 32\] float32" \
  "/probe: 115 datasets"; do
  grep -q "$want" "$tmp/info.txt" || { fail "ckpt info lacks '$want'"; head -n 30 "$tmp/info.txt"; }
done
"$FFC" ckpt pool-stats --json "$bad" >"$tmp/pool.json" 2>&1 || fail "ckpt pool-stats exited $?"
/usr/bin/python3 - "$tmp/pool.json" <<'PY' || fail "pool-stats reports a wrong pool"
import json, sys
j = json.load(open(sys.argv[1]))
q = j["pool_size"]
assert 0 < j["filled"] <= q and sum(j["filled_per_rank"]) == j["filled"], j
assert sum(j["pooled_identities_by_training_images"].values()) == j["filled"], j
assert abs(j["row_norms"]["row0_mean"] - 1) < 1e-3, j  # pool rows are unit gallery features
PY
"$FFC" ckpt export "$bad" --out "$tmp/probe.h5" >/dev/null 2>&1 || fail "ckpt export exited $?"
/usr/bin/python3 - "$bad" "$tmp/probe.h5" <<'PY' || fail "the export differs from the checkpoint"
import sys, h5py, numpy as np
c, e = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
e.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert "conv1.weight" in names, names[:5]
for n in names:
    assert np.array_equal(e[n][()], c["probe/" + n][()]), n
PY

# Flip bytes inside the data of /probe/conv1.weight of the newest checkpoint.
/usr/bin/python3 - "$bad" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f["probe/conv1.weight"].id.get_chunk_info(0).byte_offset
with open(sys.argv[1], "r+b") as g:
    g.seek(off + 16)
    b = g.read(4)
    g.seek(off + 16)
    g.write(bytes(x ^ 0xFF for x in b))
PY
if "$FFC" ckpt verify "$bad" >"$tmp/v.txt" 2>&1; then
  fail "a corrupted checkpoint verified"
else
  grep -q "probe/conv1.weight" "$tmp/v.txt" && grep -q "checksum" "$tmp/v.txt" ||
    { fail "the verify error does not name the dataset and the checksum"; cat "$tmp/v.txt"; }
fi
train 2 "$out" --set max_steps=7 --resume auto
[ "$rc" -eq 0 ] || { fail "resume auto with a corrupt latest exited $rc"; show_log; }
grep -q "skipping .*step_000000010.h5" "$tmp/last.log" || fail "resume auto did not warn about the corrupt latest"
grep -q "resume: .*step_000000005.h5 at step 5" "$tmp/last.log" || { fail "resume auto did not fall back to step 5"; show_log 5; }

# Another model: exit status 2 naming the difference.
train 2 "$tmp/other" --set network=small --resume "$good"
[ "$rc" -eq 2 ] || fail "a checkpoint of another network: exit $rc, expected 2"
grep -q "network: checkpoint tiny, this run small" "$tmp/last.log" || { fail "the mismatch is not named"; show_log 5; }

# Another format version.
cp "$good" "$tmp/v99.h5"
/usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f.attrs['format_version']=99; f.close()" "$tmp/v99.h5"
train 2 "$tmp/other" --resume "$tmp/v99.h5"
[ "$rc" -ne 0 ] || fail "a checkpoint of format version 99 was accepted"
grep -q "format version 99" "$tmp/last.log" || { fail "the version is not named"; show_log 5; }

# A truncated file.
head -c 20000 "$good" >"$tmp/short.h5"
if "$FFC" ckpt verify "$tmp/short.h5" >"$tmp/v.txt" 2>&1; then
  fail "a truncated checkpoint verified"
else
  grep -q "short.h5" "$tmp/v.txt" || { fail "the truncation error does not name the file"; cat "$tmp/v.txt"; }
fi
finish
