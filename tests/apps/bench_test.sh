#!/usr/bin/env bash
# ffc bench scaling and accuracy on a tiny grid: every point either runs (status ok, positive
# images/s, a peak RSS, FFC's two image counts) or is recorded as "does not fit" when ffc plan
# says so, and nothing that does not fit is launched; the accuracy benchmark reports held-out
# verification for each run.
# usage: bench_test.sh FFC MPIEXEC
set -u
ffc=$1 mpiexec=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "bench_test: FAIL: $*"; exit 1; }
# N = 10^9 FC needs TiB per rank: "does not fit"; the others run (FFC with a fixed pool).
"$ffc" bench scaling --methods fc,ffc --classes 2000,1000000000 --ranks 1,2 --window 2 --repeats 1 --pool 64 \
  --network tiny --image-size 16 --embedding 32 --batch 16 \
  --launcher "$mpiexec --bind-to none -n {ranks}" --out "$tmp/s" >"$tmp/s.log" 2>&1 ||
  { tail -n 20 "$tmp/s.log"; fail "bench scaling exited $?"; }
/usr/bin/python3 - "$tmp/s/scaling.csv" <<'PY' || { tail -n 20 "$tmp/s.log"; exit 1; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 8, rows
for r in rows:
    key = (r["method"], int(r["classes"]), int(r["ranks"]))
    if r["method"] == "fc" and int(r["classes"]) == 10**9:
        assert r["status"] == "does not fit", (key, r["status"])
        continue
    assert r["status"] == "ok", (key, r["status"])
    assert float(r["images_per_s"]) > 0 and float(r["peak_rss_mib"]) > 50, (key, r)
    assert 0 < float(r["head_share"]) < 1, (key, r)
    # The windows' range around the median, the load before the launch, 1 or 2 launches.
    assert float(r["images_per_s_min"]) <= float(r["images_per_s"]) <= float(r["images_per_s_max"]), (key, r)
    assert float(r["load_before"]) >= 0 and r["tries"] in ("1", "2"), (key, r)
    if r["method"] == "ffc":  # probe + gallery images, twice the probe count
        assert abs(float(r["images_per_s"]) - 2 * float(r["probe_images_per_s"])) < 1, (key, r)
print("bench_test: scaling grid of", len(rows), "points as expected")
PY
[ ! -e "$tmp/s/runs/fc-1000000000-p1" ] || fail "a point that does not fit was launched"
grep -q "| ffc | 2000 | 2 |" "$tmp/s/scaling.md" || fail "no Markdown row for ffc N=2000 P=2"

"$ffc" bench accuracy --runs fc,ffc:instance --classes 500 --ranks 2 --steps 20 --val-pairs 200 \
  --val-identities 20 --network tiny --image-size 16 --embedding 32 --batch 16 \
  --launcher "$mpiexec --bind-to none -n {ranks}" --out "$tmp/a" >"$tmp/a.log" 2>&1 ||
  { tail -n 20 "$tmp/a.log"; fail "bench accuracy exited $?"; }
/usr/bin/python3 - "$tmp/a/accuracy.json" <<'PY' || { tail -n 20 "$tmp/a.log"; exit 1; }
import json, sys
runs = json.load(open(sys.argv[1]))
assert [r["run"] for r in runs] == ["fc", "ffc-instance"], runs
for r in runs:
    assert r["status"] == "ok", r
    assert 0.5 <= r["heldout"]["accuracy"] <= 1, r["heldout"]
    assert r["longtail"]["buckets"], r["longtail"]
print("bench_test: accuracy of", [(r["run"], round(r["heldout"]["accuracy"], 3)) for r in runs])
PY
echo "bench_test: ok"
