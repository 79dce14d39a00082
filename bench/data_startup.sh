#!/usr/bin/env bash
# Start-up cost of a dataset (docs/benchmarks.md, "Data"): trains 2 FFC steps of the tiny net on
# SET (16x16 images) on RANKS local ranks and prints the seconds from the run's first log line to
# its first step's progress line (opening the dataset, building the model and the first step) and
# the peak private (anonymous) and total resident memory of the largest rank.
# usage: bench/data_startup.sh FFC SET RANKS [TAG]
set -euo pipefail
ffc=$1 set=$2 np=$3 tag=${4:-$(basename "$2")-$3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np "$np" "$ffc" train \
  --set rec="$set" --set image_size=16 --set network=tiny --set embedding_size=32 \
  --set batch_size=8 --set max_steps=2 --set frequent=1 --set method=ffc --set val_pairs=0 \
  --set val_identities=0 --set save_last=false --set output="$out/run" >"$out/log" 2>&1
/usr/bin/python3 - "$out/run/metrics.jsonl" "$out/log" "$tag" <<'PY'
import datetime, json, re, sys
lines = open(sys.argv[2]).read().splitlines()
stamp = lambda l: datetime.datetime.strptime(re.match(r"\[([^]]*)\]", l).group(1),
                                             "%Y-%m-%d %H:%M:%S.%f")
first = next(l for l in lines if l.startswith("["))
step1 = next(l for l in lines if "step 1/" in l)
rec = [json.loads(l) for l in open(sys.argv[1]) if '"peak_private_mib"' in l][-1]
print(f"{sys.argv[3]}: start-up {(stamp(step1) - stamp(first)).total_seconds():.2f} s, "
      f"peak private {rec['peak_private_mib']:.0f} MiB, peak RSS {rec['peak_rss_mib']:.0f} MiB")
PY
