#!/usr/bin/env bash
# The `ffc` command line: help, version, exit statuses, config errors, dump round trip, env.
# usage: cli_test.sh FFC MPIEXEC SOURCE_DIR
set -u
ffc=$1 mpiexec=$2 src=$3
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"
harness_start cli_test

run help 0 "$ffc" --help
has help.out "config"
has help.out "env"

run version 0 "$ffc" --version
for word in "ffc 0.1.0" "git " "LibTorch" "MPI:" "HDF5" "(parallel)" "NCCL/CUDA:"; do
  has version.out "$word"
done

run nocommand 2 "$ffc"
run badflag 2 "$ffc" config --no-such-flag

printf 'network: r50\nlrr: 0.1\n' >"$tmp/unknown.yaml"
run unknown 2 "$ffc" config --config "$tmp/unknown.yaml"
has unknown.err "unknown.yaml:2"
has unknown.err "unknown key 'lrr'"
has unknown.err "did you mean 'lr'"

run wrongtype 2 "$ffc" config --set batch_size=many
has wrongtype.err "batch_size"
has wrongtype.err "not an integer"

run range 2 "$ffc" config --set momentum=2
has range.err "momentum"
has range.err "out of range"

run missing 2 "$ffc" config --config "$tmp/nope.yaml"
has missing.err "nope.yaml"

# --dump-config round trip: the dump, loaded again, dumps identically.
run dump1 0 "$ffc" config --config "$src/tests/common/data/good.yaml" --set lr=0.3 --dump-config
cp "$tmp/dump1.out" "$tmp/dumped.yaml"
has dumped.yaml "lr: 0.3"
has dumped.yaml "network: \"r100\""
run dump2 0 "$ffc" config --config "$tmp/dumped.yaml"
cmp -s "$tmp/dump1.out" "$tmp/dump2.out" || fail "dump round trip differs"

# The ready configs in inputs/ are valid.
for f in "$src"/inputs/*.yaml; do
  run "input-$(basename "$f" .yaml)" 0 "$ffc" config --config "$f"
done

run keys 0 "$ffc" config --keys
has keys.out "margin_list"

# A config error under mpiexec: status 2, reported once (by rank 0), not once per rank.
run mpiconfig 2 "$mpiexec" -n 2 "$ffc" env --set lrr=1
n=$(grep -c "unknown key 'lrr'" "$tmp/mpiconfig.err")
[ "$n" -eq 1 ] || fail "config error under 2 ranks reported $n times"

run env2 0 "$mpiexec" -n 2 "$ffc" env
has env2.out "world: 2 rank(s), backend mpi"
has env2.out "collectives: ok"

run env1 0 "$ffc" env --backend single
has env1.out "world: 1 rank(s), backend single"

# Data: pack procedural identities, inspect them, verify them, break one record, verify again.
run pack 0 "$ffc" pack --synthetic --set num_classes=50 --set image_size=24 --out "$tmp/ds"
has pack.out "packed"
run stat 0 "$ffc" data stat "$tmp/ds" --set image_size=24
has stat.out '"identities": 50'
has stat.out '"2-5"'
# The set as it is: its size from property, whatever the config's image_size.
run statsize 0 "$ffc" data stat "$tmp/ds"
has statsize.out '"identities": 50'
# Shards by a glob: one dataset, the labels of the second offset by the first's classes.
run pack2 0 "$ffc" pack --synthetic --set num_classes=7 --set image_size=24 --set seed=3 \
  --out "$tmp/ds-part2"
run statglob 0 "$ffc" data stat "$tmp/ds*"
has statglob.out '"identities": 57'
# The training loader over the sharded set: FC's in block order from a cold cache, FFC's (two
# views of 1.5 x 8 rows a step) in random order; a block larger than a rank's share is refused.
run readblock 0 "$ffc" data read "$tmp/ds*" --steps 3 --cold --set batch_size=8 --set method=fc \
  --set read_order=block --set read_block=8 --set read_window=2
has readblock.out "read 24 images in .* images/s, .* MiB/s; fc loader, read_order block (8 records x 2"
has readblock.out "cold page cache"
run readffc 0 "$ffc" data read "$tmp/ds*" --steps 3 --set batch_size=8
has readffc.out "read 72 images in .*; ffc loader, read_order random"
run readplan 0 "$ffc" data read "$tmp/ds*" --plan-only --steps 5 --set batch_size=8
has readplan.out "planned 120 images in .* images/s; ffc loader"
run readbig 2 "$ffc" data read "$tmp/ds*" --set read_order=block --set read_block=100000
has readbig.err "fewer than one per rank (1 ranks); lower read_block"
run statnoglob 2 "$ffc" data stat "$tmp/nothing-*"
has statnoglob.err "matches no dataset"
run synstat 0 "$ffc" data stat synthetic --set num_classes=100000000 --set image_size=24
has synstat.out '"identities": 100000000'
run verify 0 "$ffc" data verify "$tmp/ds" --set image_size=24
has verify.out "0 bad"
printf 'XXXX' | dd of="$tmp/ds/train.rec" bs=1 seek=300 conv=notrunc status=none
run verifybad 1 "$ffc" data verify "$tmp/ds" --set image_size=24
has verifybad.out "bad: image"
has verifybad.out "train.rec: record"
run packboth 2 "$ffc" pack --synthetic --from-folder "$tmp" --out "$tmp/x"

# method backbone (the benchmarks' ceiling): the backbone trains alone, with no head to plan for;
# the phases are on the host's clock on the CPU.
run backbone 0 "$ffc" train --backend single --set rec=synthetic --set method=backbone \
  --set num_classes=50 --set network=tiny --set image_size=32 --set embedding_size=16 \
  --set batch_size=8 --set max_steps=3 --set frequent=1 --set num_workers=1 --set val_pairs=0 \
  --set val_identities=0 --set output="$tmp/bb"
has backbone.err "head: none (method backbone"
python3 - "$tmp/bb/metrics.jsonl" <<'PY' || fail "backbone: metrics.jsonl"
import json, math, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"images_per_s"' in l]
assert [r["step"] for r in recs] == [1, 2, 3], recs
assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in recs), recs
assert all(r["phase_clock"] == "host" and r["phase_ms"]["fwd"] > 0 for r in recs), recs
PY
run planbackbone 0 "$ffc" plan --method backbone --num-classes 1000000 --json
has planbackbone.out '"head_flops_per_step": 0'
grep -q '"pool rows"\|head weights' "$tmp/planbackbone.out" && fail "planbackbone: a head in the plan"

harness_finish
