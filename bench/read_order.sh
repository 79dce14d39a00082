#!/usr/bin/env bash
# Loader throughput with random against block-shuffled reading on a cold page cache
# (docs/benchmarks.md, "Data"): packs a set of 112x112 JPEGs (CLASSES procedural identities, about
# 2.3 images of 6 KB each per identity; deleted at the end), then for each repeat and order drops
# the set's pages from the page cache (`ffc data read --cold`: posix_fadvise, no root needed) and
# reads STEPS batches of 128 with 2 workers through the FC/Partial FC loader (instance sampler)
# and FFC's dual loader. Prints each run, then the median and range per order and loader, and
# the load average before and after.
# usage: bench/read_order.sh FFC [CLASSES] [REPEATS] [STEPS]
set -euo pipefail
ffc=$1 classes=${2:-100000} repeats=${3:-5} steps=${4:-200}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$ffc" pack --synthetic --set num_classes="$classes" --set image_size=112 --out "$dir/set" |
  tail -n 2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$repeats"); do
  for method in fc ffc; do
    for order in random block; do
      line=$("$ffc" data read "$dir/set" --cold --steps "$steps" --set batch_size=128 \
        --set num_workers=2 --set method="$method" --set read_order="$order" 2>/dev/null | tail -n 1)
      echo "$line"
      echo "$method $order $(sed 's/.*s: \([0-9]*\) images\/s.*/\1/' <<<"$line")" >>"$dir/runs"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$dir/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    method, order, rate = line.split()
    runs[(method, order)].append(int(rate))
print("| loader | read_order | images/s, cold cache (median) | range | runs |")
print("|---|---|---|---|---|")
for (method, order), r in runs.items():
    print(f"| {method} | {order} | {statistics.median(r):,.0f} | {min(r):,}–{max(r):,} | {len(r)} |")
PY
