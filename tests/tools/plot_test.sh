#!/usr/bin/env bash
# tools/ffc_plot.py on small hand-written inputs: a run's metrics.jsonl (resumed once, so with a
# step logged twice, and with evaluation records), a scaling CSV with a point that does not fit,
# and saved `ffc ckpt pool-stats --json` outputs; each must give a non-empty PNG. Bad inputs fail
# with a message.
# usage: plot_test.sh SOURCE_DIR
set -u
src=$1
py=/usr/bin/python3
plot="$src/tools/ffc_plot.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
is_png() { # is_png FILE: exists, PNG signature, more than a few bytes
  [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
    [ "$(stat -c %s "$1")" -gt 10000 ]
}
run() { # run NAME EXPECTED_STATUS ARGS...
  local name=$1 want=$2
  shift 2
  "$py" "$plot" "$@" >"$tmp/$name.log" 2>&1
  local rc=$?
  [ "$rc" -eq "$want" ] || { fail "$name: exit status $rc, expected $want"; sed 's/^/  | /' "$tmp/$name.log" | tail -n 8; }
}

mkdir -p "$tmp/run"
for s in 10 20 30 40; do
  printf '{"step":%d,"epoch":0,"loss":%s,"ce":%s,"lr":0.1,"images_per_s":500}\n' "$s" "$((60 - s / 2))" "$((58 - s / 2))"
done >"$tmp/run/metrics.jsonl"
# Resumed from step 30: step 40 again, then on.
for s in 40 50 60; do
  printf '{"step":%d,"epoch":1,"loss":%s,"ce":%s,"lr":0.05,"images_per_s":520}\n' "$s" "$((60 - s / 2))" "$((58 - s / 2))"
done >>"$tmp/run/metrics.jsonl"
printf '{"event":"eval","step":30,"target":"heldout","net":"probe","accuracy":0.8,"tar@far=1e-03":0.5}\n' >>"$tmp/run/metrics.jsonl"
printf '{"event":"eval","step":60,"target":"heldout","net":"probe","accuracy":0.9,"tar@far=1e-03":0.6}\n' >>"$tmp/run/metrics.jsonl"
run metrics 0 metrics "$tmp/run" --out "$tmp/curves.png"
is_png "$tmp/curves.png" || fail "metrics: no PNG"
cp -r "$tmp/run" "$tmp/run2"
run metrics2 0 metrics "$tmp/run" "$tmp/run2/metrics.jsonl" --out "$tmp/two.png"
is_png "$tmp/two.png" || fail "metrics of two runs: no PNG"
printf 'not json\n' >"$tmp/bad.jsonl"
run badjson 1 metrics "$tmp/bad.jsonl" --out "$tmp/bad.png"
grep -q "bad.jsonl:1: not JSON" "$tmp/badjson.log" || fail "badjson: no message naming the line"

cat >"$tmp/scaling.csv" <<'CSV'
method,classes,ranks,status,images_per_s,probe_images_per_s,peak_rss_mib,plan_mib
fc,10000,1,ok,900,,310,300
fc,100000,1,ok,300,,950,940
fc,1000000,1,does not fit,,,,9400
pfc,10000,1,ok,950,,300,290
pfc,100000,1,ok,700,,500,480
ffc,10000,1,ok,1200,600,250,240
ffc,100000,1,ok,1190,595,252,241
ffc,1000000,1,ok,1185,590,255,243
CSV
run scaling 0 scaling "$tmp/scaling.csv" --out "$tmp/scaling.png"
is_png "$tmp/scaling.png" || fail "scaling: no PNG"
mkdir -p "$tmp/sweep/a" "$tmp/sweep/b"
head -n 3 "$tmp/scaling.csv" >"$tmp/sweep/a/scaling.csv"
printf "a,b\n1,2\n" >"$tmp/sweep/a/other.csv" # not a benchmark result: ignored
{ head -n 1 "$tmp/scaling.csv"; tail -n 3 "$tmp/scaling.csv"; } >"$tmp/sweep/b/scaling.csv"
run sweep 0 scaling "$tmp/sweep" --out "$tmp/sweep.png"
is_png "$tmp/sweep.png" || fail "scaling of a sweep folder: no PNG"
printf 'method,classes\nfc,10\n' >"$tmp/short.csv"
run short 1 scaling "$tmp/short.csv" --out "$tmp/short.png"
grep -q "no column(s) images_per_s, peak_rss_mib, ranks" "$tmp/short.log" || fail "short: no message naming the missing columns"

for s in 100 200; do
  cat >"$tmp/pool-$s.json" <<JSON
{"path": "step_$s.h5", "step": $s, "pool_size": 1000, "filled": $((s * 4)), "fill": $(awk -v s="$s" 'BEGIN {printf "%.2f", s * 4 / 1000}'),
 "age_steps": {"min": 1, "median": 5, "mean": 6.5, "max": 12}, "ranks": 2, "filled_per_rank": [$((s * 2)), $((s * 2))],
 "pooled_identities_by_training_images": {"1": 300, "2-5": 80, "6-20": 10, "21-100": 2, ">100": 0}}
JSON
done
run pool 0 pool "$tmp/pool-100.json" "$tmp/pool-200.json" --out "$tmp/pool.png"
is_png "$tmp/pool.png" || fail "pool: no PNG"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "ok: metrics, scaling and pool charts written; bad inputs refused"
