#!/usr/bin/env bash
# tools/ffc_h5.py on real checkpoints of tiny `ffc train` runs (Debian's python3-h5py): an FFC
# checkpoint loads into numpy (attributes, configuration, last metrics, probe and gallery state
# dicts, optimiser, pool) and its probe equals, key by key and bitwise, the backbone that
# `ffc ckpt export` writes; an FC checkpoint has its head in global layout and no gallery; the
# command line summarises both. Then tools/ffc_plot.py draws the run's curves and its pool.
# usage: ffc_h5_ckpt_test.sh FFC MPIEXEC SOURCE_DIR
set -u
ffc=$1 mpiexec=$2 src=$3
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
train() { # train OUTPUT [--set ...]
  local out=$1
  shift
  "$mpiexec" --bind-to none -n 2 "$ffc" train --set rec=synthetic --set num_classes=1200 \
    --set network=tiny --set image_size=16 --set embedding_size=32 --set batch_size=8 \
    --set frequent=5 --set val_pairs=200 --set val_identities=0 --set num_workers=1 \
    --set save_keep=0 --set output="$out" "$@" >"$tmp/train.log" 2>&1 ||
    { fail "ffc train $*"; tail -n 15 "$tmp/train.log" | sed 's/^/  | /'; }
}
train "$tmp/ffc" --set max_steps=20 --set save_every=10
train "$tmp/fc" --set method=fc --set max_steps=10
ckpt=$tmp/ffc/checkpoints/step_000000020.h5
"$ffc" ckpt export "$ckpt" --out "$tmp/probe.h5" >/dev/null 2>&1 || fail "ffc ckpt export"

"$py" - "$src/tools" "$ckpt" "$tmp/probe.h5" "$tmp/fc/checkpoints/step_000000010.h5" <<'PY' ||
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import ffc_h5

path, exported, fc_path = sys.argv[2:5]
c = ffc_h5.load_checkpoint(path)
a = c["attrs"]
assert a["format"] == "ffc-checkpoint" and a["step"] == 20 and a["method"] == "ffc", a
assert a["world_size"] == 2 and a["embedding_size"] == 32 and a["num_classes"] == 1200, a
assert "method:" in c["config"] and "ffc" in c["config"].split("method:")[1].split("\n")[0]
assert c["metrics"]["step"] == 20 and np.isfinite(c["metrics"]["loss"]), c["metrics"]
probe, gallery = c["probe"], c["gallery"]
assert list(probe) == list(gallery) and len(probe) > 10, (len(probe), len(gallery))
assert probe["fc.weight"].shape == (32, 128) and probe["fc.weight"].dtype == np.float32
assert probe["bn1.num_batches_tracked"].shape == () and probe["bn1.num_batches_tracked"].dtype == np.int64
m = c["optimizer"]["momentum"]
assert len(m) > 0 and len(c["optimizer"]["started"]) == len(m), (len(m), c["optimizer"]["started"])
q = a["pool_size"]
h = c["head"]
assert h["pool/rows"].shape == (q, 2, 32) and h["pool/labels"].shape == (q,), {k: v.shape for k, v in h.items()}
assert set(h) == {"pool/rows", "pool/labels", "pool/toggles", "pool/last_step", "pool/lru_order"}, list(h)
labels = h["pool/labels"]
assert ((labels >= -1) & (labels < 1200)).all()
# The LRU order lists the pooled identities, most recently used first.
assert sorted(h["pool/lru_order"].tolist()) == sorted(labels[labels >= 0].tolist())

# The probe of the checkpoint is what `ffc ckpt export` writes, key by key, bitwise.
arrays, attrs = ffc_h5.load_arrays(exported)
ck, _ = ffc_h5.load_arrays(path, net="probe")
assert list(arrays) == list(ck) == list(probe)
for k in arrays:
    assert arrays[k].dtype == ck[k].dtype and np.array_equal(arrays[k], ck[k]), k
g, _ = ffc_h5.load_arrays(path, net="gallery")
assert any(not np.array_equal(g[k], ck[k]) for k in g), "gallery equals probe"

fc = ffc_h5.load_checkpoint(fc_path)
assert fc["attrs"]["method"] == "fc" and not fc["gallery"]
assert fc["head"]["weight"].shape == (1200, 32) and fc["head"]["momentum"].shape == (1200, 32)
try:
    ffc_h5.load_arrays(fc_path, net="gallery")
    raise AssertionError("an FC checkpoint gave a gallery network")
except ValueError as e:
    assert "no gallery network" in str(e), e

try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    sd = ffc_h5.load_state_dict(path, net="gallery")
    assert len(sd) == len(gallery) and sd["fc.weight"].dtype == torch.float32
    print("torch state dict of the gallery: ok")
else:
    print("python3-torch not installed: the torch state dict part is skipped")
print(f"checkpoint step {a['step']}: {len(probe)} probe/gallery tensors, pool {q} x 2 x 32, "
      f"{len(m)} momentum buffers; probe == ffc ckpt export bitwise; FC head {fc['head']['weight'].shape}")
PY
  fail "loading the checkpoints with ffc_h5"

"$py" "$src/tools/ffc_h5.py" "$ckpt" >"$tmp/summary.txt" 2>&1 || fail "ffc_h5.py summary"
grep -q "ffc-checkpoint v1, step 20 (epoch 0), method ffc, 2 rank(s), network tiny" "$tmp/summary.txt" ||
  { fail "summary line"; cat "$tmp/summary.txt"; }
grep -q "head/pool/rows: \[.*, 2, 32\] float32" "$tmp/summary.txt" || fail "summary: no pool rows"
n=$("$py" "$src/tools/ffc_h5.py" "$ckpt" --list --net gallery | wc -l)
[ "$n" -gt 10 ] || fail "--list --net gallery listed $n tensors"
"$py" "$src/tools/ffc_h5.py" "$tmp/ffc/metrics.jsonl" >/dev/null 2>&1 && fail "accepted a text file"

# Charts of the same run: its curves, and its pool over both checkpoints (ffc ckpt pool-stats).
"$py" "$src/tools/ffc_plot.py" metrics "$tmp/ffc" --out "$tmp/curves.png" >/dev/null || fail "ffc_plot metrics"
"$py" "$src/tools/ffc_plot.py" pool "$tmp/ffc" --ffc "$ffc" --out "$tmp/pool.png" >/dev/null || fail "ffc_plot pool"
[ -s "$tmp/curves.png" ] && [ -s "$tmp/pool.png" ] || fail "no PNG"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "ok"
