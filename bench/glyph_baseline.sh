#!/usr/bin/env bash
# FC and FFC trained once on a glyph set (tools/ffc_glyphs.py) with the schedule of
# `ffc bench accuracy` (8 epochs of the images at 32 per rank on 2 ranks, warm-up 1 epoch, poly
# decay to 0, lr 0.1, SGD momentum 0.9, weight decay 5e-4, the tiny net, embedding 128, each
# method's default loss), evaluated every epoch on the set's held-out pairs and long-tail file,
# without flips. Prints the last evaluation of each run. A measured starting point, not the
# equal-cost comparison (docs/benchmarks.md).
# usage: bench/glyph_baseline.sh GLYPH_SET OUT [METHOD[@POOL]...]   (default: fc ffc@10)
#   FFC_BIN (default build/bin/ffc), MPIEXEC (default mpiexec), SEED (default 2048)
set -euo pipefail
set_dir=$1 out=$2
shift 2
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(fc ffc@10)
ffc=${FFC_BIN:-build/bin/ffc}
mpiexec=${MPIEXEC:-mpiexec}
seed=${SEED:-2048}
classes=$(cut -d, -f1 "$set_dir/property")
mkdir -p "$out"
for spec in "${runs[@]}"; do
  method=${spec%@*}
  extra=()
  name=$method
  if [ "$spec" != "$method" ]; then
    pct=${spec#*@}
    extra+=(--set pool_size=$((classes * pct / 100)))
    name="$method-${pct}pct"
  fi
  echo "glyph_baseline: $name on $set_dir ($classes identities), seed $seed"
  start=$(date +%s)
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    "$mpiexec" --bind-to none -n 2 "$ffc" train --set rec="$set_dir" --set flip=false \
    --set method="$method" --set network=tiny --set image_size=32 --set embedding_size=128 \
    --set batch_size=32 --set sample_rate=0.1 --set images_per_identity=4 --set num_workers=1 \
    --set seed="$seed" --set epoch_basis=images --set num_epoch=8 --set warmup_epoch=1 \
    --set lr_schedule=poly --set lr=0.1 --set momentum=0.9 --set weight_decay=5e-4 \
    --set eval_every_epoch=true --set frequent=200 --set save_every=0 --set save_last=false \
    --set "val_targets=[$set_dir/glyph_heldout.h5, $set_dir/glyph_longtail.h5]" \
    --set output="$out/$name" "${extra[@]}" >"$out/$name.log" 2>&1
  echo "glyph_baseline: $name took $(($(date +%s) - start)) s"
  grep -E "\[glyph_heldout\]\[[0-9]+\] (Accuracy|TAR)" "$out/$name.log" | tail -n 6
  grep -E "\[glyph_longtail\]\[[0-9]+\]" "$out/$name.log" | tail -n 7
done
