#!/usr/bin/env bash
# amp_dtype bf16 on the CPU: the trunk runs under CPU autocast in bfloat16 through the training
# step every device uses. A few steps at 1 rank: the log names the trunk's type, the losses are
# finite, and the first loss is that of the float32 run to bfloat16 precision (close, not equal).
# usage: bf16_cpu_test.sh MPIEXEC FFC
set -u
mpiexec=$1 ffc=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "bf16_cpu: FAIL: $*"; exit 1; }
for amp in bf16 float32; do
  "$mpiexec" --bind-to none -n 1 "$ffc" train --set rec=synthetic --set num_classes=600 \
    --set network=tiny --set image_size=32 --set embedding_size=64 --set batch_size=16 \
    --set num_epoch=1 --set max_steps=5 --set frequent=1 --set val_pairs=0 \
    --set val_identities=0 --set num_workers=1 --set amp_dtype=$amp \
    --set output="$out/$amp" >"$out/$amp.log" 2>&1 || { tail -n 20 "$out/$amp.log"; fail "$amp run"; }
done
grep -q "trunk in BFloat16" "$out/bf16.log" || fail "the log does not say the trunk ran in bfloat16"
grep -q "trunk in float32" "$out/float32.log" || fail "the float32 run's log"
/usr/bin/python3 - "$out/bf16/metrics.jsonl" "$out/float32/metrics.jsonl" <<'PY' || exit 1
import json, math, sys
bf, fp = ([json.loads(l)["loss"] for l in open(p) if '"loss"' in l] for p in sys.argv[1:3])
print(f"bf16_cpu: losses bfloat16 {[round(x, 3) for x in bf]}, float32 {[round(x, 3) for x in fp]}")
ok = len(bf) == 5 and all(map(math.isfinite, bf)) and bf[0] != fp[0] and abs(bf[0] - fp[0]) < 0.05 * abs(fp[0])
if not ok:
    print("bf16_cpu: FAIL: bfloat16 losses not finite, identical to float32, or too far from it")
    sys.exit(1)
PY
echo "bf16_cpu: ok"
