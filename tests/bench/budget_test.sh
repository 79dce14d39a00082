#!/usr/bin/env bash
# `ffc bench accuracy --budget` end to end, tiny: a few hundred glyph identities (the CI font set),
# FC and FFC (pool 4x the gallery batch) on 2 ranks, two seeds, budgets of seconds, a learning-rate
# sweep of two values. Checks what the equal-cost benchmark promises, not how fast anything ran:
# every configuration had the same budget; its schedule is the probe's speed times that budget
# (at least 10 steps); every run ended its schedule (its last evaluation at its last step, its
# learning rate decayed); the main runs use the sweep's best rate; the report compares seed by
# seed over the seeds both sides ran, and shows accuracy against training time.
# usage: budget_test.sh FFC MPIEXEC SOURCE_DIR
set -u
ffc=$1 mpiexec=$2 src=$3
py=/usr/bin/python3
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"
harness_start budget_test

g=$tmp/g
run glyphs 0 "$py" "$src/tools/ffc_glyphs.py" build --font-set ci --blocks uro --classes 300 \
  --heldout 60 --impostors 200 --longtail-per-bucket 50 --ffc "$ffc" --out "$g"
run bench 0 "$ffc" bench accuracy --rec "$g" \
  --val-targets "$g/glyph_heldout.h5,$g/glyph_longtail.h5" --set flip=false \
  --runs fc,ffc@4x --seeds 1,2 --ablation-seeds 1 --ranks 2 --budget 6 --evals 2 \
  --probe-steps 12 --lrs 0.05,0.2 --sweep-budget 3 --network tiny --image-size 32 \
  --embedding 32 --batch 16 --launcher "$mpiexec --bind-to none -n {ranks}" --out "$tmp/b"
[ -s "$tmp/b/accuracy.json" ] || { fail "no accuracy.json"; harness_finish; }

"$py" - "$tmp/b" >"$tmp/checks.out" 2>&1 <<'PY' || { fail "the budget runs"; sed 's/^/  | /' "$tmp/checks.out"; }
import json, math, sys
d = sys.argv[1]
j = json.load(open(f"{d}/accuracy.json"))
setup, runs, sweep = j["setup"], j["runs"], j["lr_sweep"]
assert setup["budget_s"] == 6 and setup["evals"] == 2, setup
by_config = {}
for r in runs:
    assert r["status"] == "ok", r["status"]
    by_config.setdefault(r["config"], []).append(r)
assert sorted(by_config) == ["fc", "ffc@4x"], sorted(by_config)
for config, rs in by_config.items():
    assert sorted(r["seed"] for r in rs) == [1, 2], (config, [r["seed"] for r in rs])
    rate = rs[0]["probe_steps_per_s"]
    assert rate > 0, (config, rate)
    assert 0 < rs[0]["probe_head_share"] < 1, (config, rs[0]["probe_head_share"])
    steps = max(10, math.floor(6 * rate))
    tried = [s for s in sweep if s["config"] == config]
    assert sorted(s["lr"] for s in tried) == [0.05, 0.2], tried
    best = max(tried, key=lambda s: (s["evals"][-1]["heldout"]["accuracy"], -s["lr"]))
    for s in tried:  # the sweep's runs had the sweep's budget
        assert s["schedule_steps"] == max(10, math.floor(3 * rate)), (config, s["schedule_steps"])
    for r in rs:
        assert r["schedule_steps"] == steps, (config, r["schedule_steps"], steps)
        assert r["lr"] == best["lr"], (config, r["lr"], best["lr"])
        assert len(r["evals"]) == 2, (config, len(r["evals"]))
        assert r["evals"][-1]["step"] == steps, (config, r["evals"][-1]["step"], steps)
        assert r["final_lr"] < 0.5 * r["lr"], (config, r["final_lr"], r["lr"])  # decayed
print("fitted:", {c: (rs[0]["schedule_steps"], round(rs[0]["probe_steps_per_s"], 2), rs[0]["lr"])
                  for c, rs in by_config.items()})
PY
md=$tmp/b/accuracy.md
grep -q "Equal cost: every run trains for 6 s" "$md" || fail "the report does not name the budget"
grep -q "| run | 1/2 | 2/2 |" "$md" || fail "no accuracy-against-time table"
grep -q "ffc@4x against fc, seed by seed: .* (seed 1: .*, 2: .*) points at the end" "$md" ||
  { fail "no seed-by-seed comparison"; grep "against fc" "$md"; }
grep -q "the best of 0.050 0.200" "$md" || fail "the report does not name the sweep"
run plot 0 "$py" "$src/tools/ffc_plot.py" accuracy "$tmp/b" --out "$tmp/b/curves.png"
[ -s "$tmp/b/curves.png" ] || fail "no accuracy-against-time plot"
cat "$tmp/checks.out"
harness_finish
