#!/usr/bin/env bash
# The way in and out for insightface users, end to end (docs/models.md):
#   a PyTorch state dict (DDP-prefixed, without num_batches_tracked) --tools/ffc_h5.py --from-pt-->
#   an ffc backbone (input_norm insightface) --ffc eval--> XNorm and accuracy equal to a PyTorch
#   reference of insightface's verification (tests/eval/insightface_reference.py) to 1e-5;
#   --ffc embed--> EMB.h5 (folder input: labels, paths; 2 ranks = 1 rank);
#   --tools/ffc_onnx.py--> model.onnx, run by ONNX Runtime (onnxruntime-node), cosine >= 0.99999
#   with ffc embed; --ffc train init_backbone--> fine-tuning starts from the imported weights.
# usage: insightface_test.sh FFC SOURCE_DIR
set -u
ffc=$1 src=$2
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "insightface_test: FAIL: $*"; failures=$((failures + 1)); }
run() { # run NAME CMD...: runs CMD, output to $tmp/NAME.out, shown on failure
  local name=$1
  shift
  "$@" >"$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out"; fail "$name"; return 1; }
}
export OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2)

"$py" -c 'import torch, PIL, h5py' 2>/dev/null ||
  { echo "insightface_test: FAIL: /usr/bin/python3 lacks torch/PIL/h5py: run tools/bootstrap"; exit 1; }
[ -f "$src/tests/onnx/node_modules/onnxruntime-node/package.json" ] ||
  { echo "insightface_test: FAIL: onnxruntime-node missing in tests/onnx: run tools/bootstrap"; exit 1; }

# 1. Import: an insightface-style r18 state dict, as DDP saves it.
run make_pt "$py" "$src/tests/eval/make_pt.py" "$tmp/r18.pt" --network r18 --seed 5 --ddp \
  --no-num-batches-tracked
run import "$py" "$src/tools/ffc_h5.py" --from-pt "$tmp/r18.pt" --network r18 --out "$tmp/r18.h5"
"$py" "$src/tools/ffc_h5.py" "$tmp/r18.h5" | grep -q "input_norm insightface" ||
  fail "the imported file does not record input_norm insightface"
# Strict: the same weights as another network are refused, naming keys, and nothing is written.
if "$py" "$src/tools/ffc_h5.py" --from-pt "$tmp/r18.pt" --network r34 --out "$tmp/bad.h5" \
  >"$tmp/bad.out" 2>&1; then
  fail "an r18 state dict imported as r34"
fi
grep -q "layer1.2" "$tmp/bad.out" || { cat "$tmp/bad.out"; fail "the r34 refusal names no key"; }
[ -e "$tmp/bad.h5" ] && fail "a refused import wrote its output"

# 2. Verification parity with the PyTorch reference on an insightface .bin.
run make_bin "$py" "$src/tests/eval/make_bin.py" "$tmp/set.bin" --pairs 10 --size 112 --seed 3
run bin2ffc "$py" "$src/tools/bin2ffc.py" "$tmp/set.bin" --out "$tmp/set.h5"
run eval "$ffc" eval --backbone "$tmp/r18.h5" --set-file "$tmp/set.h5" --json --backend single
run reference "$py" "$src/tests/eval/insightface_reference.py" "$tmp/set.bin" "$tmp/r18.h5"
"$py" - "$tmp/eval.out" "$tmp/reference.out" <<'PY' || fail "ffc eval differs from the reference"
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index("{"):])
t = doc["targets"][0]
ref = dict(zip(*[iter(open(sys.argv[2]).read().split())] * 2))
pairs = [("xnorm", t["xnorm"], float(ref["xnorm"])),
         ("accuracy", t["accuracy"], float(ref["accuracy"])),
         ("std", t["accuracy_std"], float(ref["std"]))]
ok = True
for name, ffc, torch_ref in pairs:
    rel = abs(ffc - torch_ref) / max(abs(torch_ref), 1e-12)
    print(f"parity {name}: ffc {ffc:.10g} pytorch {torch_ref:.10g} relative {rel:.2e}")
    ok &= rel <= 1e-5 or abs(ffc - torch_ref) <= 1e-9
print("parity input_norm:", doc["network"]["input_norm"])
sys.exit(0 if ok and doc["network"]["input_norm"] == "insightface" else 1)
PY
# The same network evaluated with ffc's constant is measurably off: the check can fail.
run eval_ffc "$ffc" eval --backbone "$tmp/r18.h5" --set-file "$tmp/set.h5" --json \
  --backend single --input-norm ffc
"$py" - "$tmp/eval.out" "$tmp/eval_ffc.out" <<'PY' || fail "--input-norm ffc changed nothing"
import json, sys
x = [json.loads(open(p).read()[open(p).read().index("{"):])["targets"][0]["xnorm"] for p in sys.argv[1:]]
print(f"xnorm insightface {x[0]:.6f}, with ffc's constant {x[1]:.6f}")
sys.exit(0 if abs(x[0] - x[1]) / x[0] > 1e-4 else 1)
PY

# 3. ffc embed of an image folder (identity sub-folders): labels, paths, 1 rank = 2 ranks.
"$py" - "$tmp/set.bin" "$tmp/faces" <<'PY' || fail "writing the image folder"
import os, pickle, sys
bins, issame = pickle.load(open(sys.argv[1], "rb"), encoding="bytes")
for i, b in enumerate(bins[:12]):
    d = os.path.join(sys.argv[2], "id%02d" % (i // 3))
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "img%02d.jpg" % i), "wb").write(bytes(b))
PY
run embed "$ffc" embed --backbone "$tmp/r18.h5" --input "$tmp/faces" --out "$tmp/emb.h5" \
  --no-flip --backend single --batch 5
run embed2 "${mpirun[@]}" "$ffc" embed --backbone "$tmp/r18.h5" --input "$tmp/faces" \
  --out "$tmp/emb2.h5" --no-flip --chunk 2
"$py" - "$src/tools" "$tmp/emb.h5" "$tmp/emb2.h5" <<'PY' || fail "embeddings file"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, ffc_h5
a, b = ffc_h5.load_embeddings(sys.argv[2]), ffc_h5.load_embeddings(sys.argv[3])
assert a["embeddings"].shape == (12, 512) and a["embeddings"].dtype == np.float32
assert list(a["labels"]) == [i // 3 for i in range(12)], a["labels"]
assert a["paths"][0] == "id00/img00.jpg" and a["paths"][11] == "id03/img11.jpg", a["paths"]
assert a["attrs"]["input_norm"] == "insightface" and a["attrs"]["flip"] == 0
cos = (a["embeddings"] * b["embeddings"]).sum(1) / np.linalg.norm(a["embeddings"], axis=1) \
    / np.linalg.norm(b["embeddings"], axis=1)
assert (a["labels"] == b["labels"]).all() and list(a["paths"]) == list(b["paths"])
assert cos.min() > 0.99999, cos.min()
print("embed: 12 x 512, labels and paths; 2 ranks vs 1, min cosine %.8f" % cos.min())
PY
[ -e "$tmp/emb.h5.partial" ] && fail "a partial embeddings file was left behind"
# Bad input: a clear error naming the file, on every rank, and no output file at all.
cp -r "$tmp/faces" "$tmp/broken"
head -c 300 "$tmp/faces/id01/img04.jpg" >"$tmp/broken/id01/img04.jpg"
if "${mpirun[@]}" "$ffc" embed --backbone "$tmp/r18.h5" --input "$tmp/broken" \
  --out "$tmp/broken.h5" --chunk 2 >"$tmp/broken.out" 2>&1; then
  fail "a truncated JPEG was embedded"
fi
grep -q "broken/id01/img04.jpg" "$tmp/broken.out" || { cat "$tmp/broken.out"; fail "the error names no file"; }
ls "$tmp" | grep -q "^broken.h5" && fail "a failed ffc embed left an output file"
"$ffc" embed --backbone "$tmp/r18.h5" --input "$tmp/nowhere" --out "$tmp/x.h5" --backend single \
  >"$tmp/nowhere.out" 2>&1 && fail "a missing input was accepted"
grep -q "nowhere: no such file or folder" "$tmp/nowhere.out" || { cat "$tmp/nowhere.out"; fail "missing input message"; }

# 4. ONNX: the export run by ONNX Runtime against ffc embed of the same images.
run onnx "$py" "$src/tools/ffc_onnx.py" "$tmp/r18.h5" --out "$tmp/r18.onnx" --dynamic-batch
"$py" - "$tmp/faces" "$tmp/emb.h5" "$tmp/input.f32" "$src/tools" <<'PY' || fail "ONNX input"
import sys
sys.path.insert(0, sys.argv[4])
import numpy as np, ffc_h5
from PIL import Image
e = ffc_h5.load_embeddings(sys.argv[2])
mean, std = e["attrs"]["input_mean"], e["attrs"]["input_std"]
x = [(np.asarray(Image.open(sys.argv[1] + "/" + p).convert("RGB"), np.float32) - np.float32(mean))
     / np.float32(std) for p in e["paths"]]
np.ascontiguousarray(np.stack(x).transpose(0, 3, 1, 2), dtype="<f4").tofile(sys.argv[3])
PY
run ort node "$src/tests/onnx/run_onnx.js" "$tmp/r18.onnx" "$tmp/input.f32" 12 112 "$tmp/ort.f32"
"$py" - "$tmp/ort.f32" "$tmp/emb.h5" "$src/tools" <<'PY' || fail "ONNX Runtime differs from ffc embed"
import sys
sys.path.insert(0, sys.argv[3])
import numpy as np, ffc_h5
o = np.fromfile(sys.argv[1], "<f4").reshape(12, 512)
e = ffc_h5.load_embeddings(sys.argv[2])["embeddings"]
cos = (o * e).sum(1) / np.linalg.norm(o, axis=1) / np.linalg.norm(e, axis=1)
print("onnx: ONNX Runtime vs ffc embed, min cosine %.8f" % cos.min())
sys.exit(0 if cos.min() >= 0.99999 else 1)
PY

# 5. Fine-tuning from the imported file: after one step at a vanishing learning rate the
#    checkpoint's parameters are the file's (a fresh initialisation is far from them), and it
#    records the file's input normalisation.
run train "$ffc" train --backend single --set rec=synthetic --set num_classes=40 \
  --set network=r18 --set image_size=112 --set batch_size=4 --set max_steps=1 --set lr=1e-30 \
  --set weight_decay=0 --set val_pairs=0 --set val_identities=0 --set num_workers=1 \
  --set init_backbone="$tmp/r18.h5" --set method=pfc --set output="$tmp/run"
grep -q "starts from $tmp/r18.h5" "$tmp/train.out" || fail "the log does not name init_backbone"
grep -q "input insightface" "$tmp/train.out" || fail "the run did not take the file's input_norm"
run export "$ffc" ckpt export "$tmp/run/checkpoints/step_000000001.h5" --out "$tmp/tuned.h5"
run fresh "$ffc" model export r18 --out "$tmp/fresh.h5"
"$py" - "$src/tools" "$tmp/r18.h5" "$tmp/tuned.h5" "$tmp/fresh.h5" <<'PY' || fail "fine-tuning did not start from the file"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, ffc_h5
a, attrs_a = ffc_h5.load_arrays(sys.argv[2])
b, attrs_b = ffc_h5.load_arrays(sys.argv[3])
assert attrs_b["input_norm"] == "insightface", attrs_b
params = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
bad = [k for k in params if not np.allclose(a[k], b[k], rtol=0, atol=1e-20)]
assert not bad, bad[:5]
assert not np.allclose(a["conv1.weight"], ffc_h5.load_arrays(sys.argv[4])[0]["conv1.weight"])
print("fine-tune: %d parameters start equal to the imported file's" % len(params))
PY

# Resuming that run with another input normalisation is refused, naming both.
"$ffc" train --backend single --config "$tmp/run/config.yaml" --set input_norm=ffc --resume auto \
  >"$tmp/resume.out" 2>&1 && fail "resumed with another input_norm"
grep -q "input_norm: checkpoint insightface, this run ffc" "$tmp/resume.out" ||
  { cat "$tmp/resume.out"; fail "the refusal does not name input_norm"; }

[ "$failures" -eq 0 ] && echo "insightface_test: all checks passed"
exit $((failures > 0))
