#!/usr/bin/env bash
# ffc bench scaling and accuracy on a tiny grid: every point either runs (status ok, positive
# images/s, a peak RSS, FFC's two image counts) or is recorded as "does not fit" when ffc plan
# says so, and nothing that does not fit is launched; the accuracy benchmark reports held-out
# verification for each run, once an epoch over one warm-up and poly schedule, seeds as mean
# and range, the loader ablation.
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

# The accuracy benchmark: every run to the end of one schedule (3 epochs, 1 of warm-up), one
# evaluation per epoch, the same steps for every method (epoch_basis images).
"$ffc" bench accuracy --runs fc,ffc@40%,ffc@40%:instance --classes 600 --ranks 2 --epochs 3 \
  --warmup-epochs 1 --seeds 7,8 --ablation-seeds 7 --val-pairs 200 --val-identities 20 \
  --network tiny --image-size 16 --embedding 32 --batch 16 --set frequent=10 \
  --launcher "$mpiexec --bind-to none -n {ranks}" --out "$tmp/a" >"$tmp/a.log" 2>&1 ||
  { tail -n 20 "$tmp/a.log"; fail "bench accuracy exited $?"; }
/usr/bin/python3 - "$tmp/a" <<'PY' || { tail -n 20 "$tmp/a.log"; exit 1; }
import csv, json, os, sys
out = sys.argv[1]
report = json.load(open(os.path.join(out, "accuracy.json")))
runs = report["runs"]
assert [(r["config"], r["seed"]) for r in runs] == [
    ("fc", 7), ("fc", 8), ("ffc@40%", 7), ("ffc@40%", 8), ("ffc@40%:instance", 7)], runs
assert report["setup"]["epochs"] == 3 and "warmed up" in report["setup"]["schedule"]
steps = None
for r in runs:
    assert r["status"] == "ok", r
    ev = r["evals"]
    # One evaluation after every epoch, at the same steps for every method, in training order.
    assert [round(e["epoch"], 6) for e in ev] == [1, 2, 3], [e["epoch"] for e in ev]
    assert steps in (None, [e["step"] for e in ev]), (steps, r["run"])
    steps = [e["step"] for e in ev]
    assert steps[1] == 2 * steps[0] and steps[2] == 3 * steps[0], steps
    assert 0 < ev[0]["train_s"] < ev[1]["train_s"] < ev[2]["train_s"], ev
    for e in ev:
        assert 0.5 <= e["heldout"]["accuracy"] <= 1, e["heldout"]
        names = [b["bucket"] for b in e["longtail"]["buckets"]]
        assert "trained" in names and "unseen" in names, names
    # Convergence judged on the last two evaluations, with the move it saw.
    moved = abs(ev[2]["heldout"]["accuracy"] - ev[1]["heldout"]["accuracy"])
    assert abs(r["last_move"] - moved) < 1e-12 and r["converged"] == (moved < 0.005), r
    assert 1 <= r["epoch_99"] <= 3 and r["images_per_s"] > 0 and r["peak_rss_mib"] > 0, r
    # The schedule: linear warm-up over the first epoch, then down to 0 at the end.
    lrs = [(m["step"], m["lr"]) for m in map(json.loads, open(
        os.path.join(out, "runs", r["run"], "metrics.jsonl"))) if "lr" in m]
    warm, total = steps[0], steps[2]
    def expected(step):  # the lr of the step's 0-based index s = step - 1
        s = step - 1
        return 0.1 * step / warm if s < warm else 0.1 * max(0.0, 1 - (s - warm) / (total - warm))
    assert any(step <= warm for step, _ in lrs) and lrs[-1][0] == total, lrs
    for step, lr in lrs:
        assert abs(lr - expected(step)) < 1e-9, (step, lr, expected(step))
rows = list(csv.DictReader(open(os.path.join(out, "accuracy.csv"))))
assert len(rows) == 15 and {r["config"] for r in rows} == {"fc", "ffc@40%", "ffc@40%:instance"}
md = open(os.path.join(out, "accuracy.md")).read()
for text in ("| fc | ", "| ffc@40% | ", "ffc@40% against fc, seed by seed:", "against ffc@40%:instance",
             "Held-out accuracy after each epoch"):
    assert text in md, text
print("bench_test: accuracy over", len(runs), "runs x 3 epochs:",
      [(r["run"], round(r["evals"][-1]["heldout"]["accuracy"], 3)) for r in runs])
PY
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 "$(dirname "$0")/../../tools/ffc_plot.py" accuracy "$tmp/a" --out "$tmp/a.png" >/dev/null ||
    fail "ffc_plot.py accuracy failed"
  [ -s "$tmp/a.png" ] || fail "no accuracy curves"
fi
echo "bench_test: ok"
