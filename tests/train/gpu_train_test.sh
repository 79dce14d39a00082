#!/usr/bin/env bash
# Training on a CUDA device (label gpu; exit 77, "skipped", where this ffc cannot use one).
# One rank, backend nccl, for every method (and the backbone alone):
#   1. the whole step runs on the device (the trainer checks after its first step that every
#      tensor it touches is on the communicator's device, and fails naming the one that is not);
#   2. it equals the same steps on the CPU (float32, TF32 off): the checkpoints agree within
#      float32 rounding of other summation orders;
#   3. checkpoints cross devices: the GPU checkpoint resumes on the CPU and the CPU one on the GPU,
#      and both continuations agree.
# Then mixed precision: bfloat16 (amp_dtype auto on a GPU that has it) trains with a finite
# falling loss; float16 with a planted infinite gradient skips that step and halves the loss
# scale, which the checkpoint keeps.
# usage: gpu_train_test.sh MPIEXEC FFC
set -u
mpiexec=$1 ffc=$2
if ! "$ffc" --version | grep -q "CUDA devices usable by LibTorch: [1-9]"; then
  "$ffc" --version | grep "LibTorch\|CUDA"
  echo "SKIPPED: no CUDA device usable by this ffc (a CPU-only LibTorch, or no GPU)"
  exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "gpu_train: FAIL: $*"; exit 1; }
common=(--set rec=synthetic --set num_classes=600 --set network=tiny --set image_size=32
        --set embedding_size=64 --set batch_size=16 --set num_epoch=1 --set num_workers=2
        --set frequent=1 --set val_pairs=0 --set val_identities=0 --set seed=7)
# run NAME BACKEND [--set ...]: one training run into $out/NAME.
run() {
  local name=$1 backend=$2
  shift 2
  "$mpiexec" --bind-to none -n 1 "$ffc" train --backend "$backend" "${common[@]}" "$@" \
    --set output="$out/$name" >"$out/$name.log" 2>&1
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$out/$name.log"
    fail "$name (backend $backend) exited with $rc"
  fi
}
ckpt() { echo "$out/$1/checkpoints/step_$(printf %09d "$2").h5"; }
same() {  # same A B WHAT: checkpoints equal within float32 rounding
  "$ffc" ckpt diff "$1" "$2" --atol 1e-4 --rtol 1e-3 >"$out/diff.txt" 2>&1 || {
    cat "$out/diff.txt"
    fail "$3"
  }
  echo "gpu_train: $3: $(tail -n 1 "$out/diff.txt")"
}

for method in ffc fc pfc vfc backbone; do
  extra=(--set method="$method" --set amp_dtype=float32 --set tf32=false)
  [ "$method" = pfc ] && extra+=(--set sample_rate=0.2)
  [ "$method" = vfc ] && extra+=(--set images_per_identity=4)
  run "$method-gpu" nccl "${extra[@]}" --set max_steps=4
  grep -q "rank(s) on .*cuda\|rank(s) on NVIDIA\|compute capability" "$out/$method-gpu.log" ||
    fail "$method: the run did not say it trained on a CUDA device"
  run "$method-cpu" mpi "${extra[@]}" --set max_steps=4
  same "$(ckpt "$method-gpu" 4)" "$(ckpt "$method-cpu" 4)" "$method: 4 steps on the GPU = on the CPU"
  # Across devices: each run's checkpoint continues on the other device for 2 more steps.
  mkdir -p "$out/$method-g2c" "$out/$method-c2g"
  cp -r "$out/$method-gpu/checkpoints" "$out/$method-g2c/"
  cp -r "$out/$method-cpu/checkpoints" "$out/$method-c2g/"
  run "$method-g2c" mpi "${extra[@]}" --set max_steps=6 --set resume=auto
  run "$method-c2g" nccl "${extra[@]}" --set max_steps=6 --set resume=auto
  grep -q "resume: .*step_000000004.h5 at step 4" "$out/$method-g2c.log" ||
    fail "$method: the CPU run did not resume from the GPU checkpoint"
  grep -q "resume: .*step_000000004.h5 at step 4" "$out/$method-c2g.log" ||
    fail "$method: the GPU run did not resume from the CPU checkpoint"
  same "$(ckpt "$method-g2c" 6)" "$(ckpt "$method-c2g" 6)" \
    "$method: GPU checkpoint resumed on the CPU = CPU checkpoint resumed on the GPU"
done

# bfloat16 where the GPU has it (amp_dtype auto): the trunk runs in it and the loss falls.
run bf16 nccl --set max_steps=30 --set frequent=5
grep -q "trunk in BFloat16" "$out/bf16.log" || fail "amp_dtype auto did not choose bfloat16"
python3 - "$out/bf16/metrics.jsonl" <<'PY' || fail "bfloat16: the loss did not fall"
import json, math, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
print(f"gpu_train: bfloat16 loss {losses[0]:.3f} -> {losses[-1]:.3f}")
sys.exit(0 if all(map(math.isfinite, losses)) and losses[-1] < 0.8 * losses[0] else 1)
PY
# Its phases are the device's, from events on its stream: every phase of a step has run there.
python3 - "$out/bf16/metrics.jsonl" <<'PY' || fail "bfloat16: phases on the device's clock"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"phase_ms"' in l]
for r in recs:
    ph = r["phase_ms"]
    print(f"gpu_train: step {r['step']} phases on the {r['phase_clock']} clock (ms): {ph}")
    assert r["phase_clock"] == "device", r
    assert all(ph[k] > 0 for k in ("fwd", "gallery", "head", "bwd", "opt")), ph
PY

# float16: the infinite gradient planted at step 3 is skipped and halves the scale.
export FFC_TEST_NONFINITE_GRAD_STEP=3
run fp16 nccl --set amp_dtype=float16 --set loss_scale=1024 --set max_steps=6
unset FFC_TEST_NONFINITE_GRAD_STEP
python3 - "$out/fp16/metrics.jsonl" <<'PY' || fail "float16: the planted overflow"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss_scale"' in l]
by_step = {r["step"]: r for r in recs}
scales = [by_step[s]["loss_scale"] for s in range(1, 7)]
skipped = [by_step[s]["skipped_steps"] for s in range(1, 7)]
print(f"gpu_train: float16 loss scale per step {scales}, skipped {skipped}")
ok = scales[:3] == [1024] * 3 and scales[3:] == [512] * 3 and skipped == [0, 0, 0, 1, 1, 1]
sys.exit(0 if ok else 1)
PY
"$ffc" ckpt info "$(ckpt fp16 6)" | grep -q "loss_scale 512" ||
  fail "float16: the checkpoint does not keep the loss scale"
echo "gpu_train: ok"
