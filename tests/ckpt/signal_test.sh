#!/usr/bin/env bash
# Preemption: SIGUSR1 to the launcher, or SIGTERM to one rank (then a second one to the other
# rank during the save), makes every rank stop at the same
# step, save and exit with status 3, and --resume auto continues. SIGKILL of one rank in the
# middle of a save leaves the previous checkpoint intact, and --resume auto continues from it.
# usage: signal_test.sh MPIEXEC FFC
MPIEXEC=$1 FFC=$2
source "$(dirname "$0")/common.sh"

# start_bg OUTPUT [--set ...]: ffc train in the background; its launcher's PID in $bg.
start_bg() {
  local out=$1
  shift
  "$MPIEXEC" --bind-to none -n 2 "$FFC" train --set rec=synthetic --set num_classes=1200 \
    --set network=tiny --set image_size=16 --set embedding_size=32 --set batch_size=8 \
    --set num_epoch=50 --set frequent=5 --set val_pairs=0 --set val_identities=0 \
    --set num_workers=1 --set output="$out" "$@" >"$tmp/bg.log" 2>&1 &
  bg=$!
}
# wait_for TEST SECONDS: polls every 0.05 s.
wait_for() {
  local i
  for ((i = 0; i < $2 * 20; ++i)); do
    eval "$1" && return 0
    sleep 0.05
  done
  return 1
}
step_of() { basename "$1" .h5 | sed 's/step_0*//'; }

for how in usr1-launcher term-one-rank; do
  out="$tmp/$how"
  start_bg "$out"
  wait_for "[ -s '$out/metrics.jsonl' ]" 120 || { fail "$how: training did not start"; kill "$bg"; wait "$bg"; continue; }
  if [ "$how" = usr1-launcher ]; then
    kill -USR1 "$bg"
  else
    # And a second signal, to the other rank, while the first is being handled or saved.
    kill -TERM "$(pgrep -P "$bg" | head -n 1)"
    sleep 0.2
    kill -TERM "$(pgrep -P "$bg" | tail -n 1)" 2>/dev/null
  fi
  wait "$bg"
  rc=$?
  [ "$rc" -eq 3 ] || { fail "$how: exit status $rc, expected 3"; sed 's/^/  | /' "$tmp/bg.log" | tail; continue; }
  grep -q "stop requested by signal" "$tmp/bg.log" || fail "$how: no stop message"
  latest="$out/checkpoints/$(cat "$out/checkpoints/latest")"
  "$FFC" ckpt verify "$latest" >/dev/null 2>&1 || fail "$how: the checkpoint written on the signal does not verify"
  step=$(step_of "$latest")
  train 2 "$out" --set max_steps=$((step + 3)) --resume auto
  [ "$rc" -eq 0 ] || { fail "$how: resume exited $rc"; show_log; continue; }
  grep -q "at step $step" "$tmp/last.log" || fail "$how: did not resume at step $step"
  echo "$how: exit status 3 at step $step, checkpoint verified, resumed and finished"
done

# SIGKILL of one rank in the middle of a save: a big FC head makes saves last long enough.
out="$tmp/kill"
start_bg "$out" --set method=fc --set num_classes=400000 --set save_every=3 --set save_keep=0
wait_for "[ -f '$out/checkpoints/latest' ]" 300 || { fail "kill: no first checkpoint"; sed 's/^/  | /' "$tmp/bg.log" | tail; }
first="$out/checkpoints/$(cat "$out/checkpoints/latest")"
if wait_for "ls -A '$out/checkpoints/' | grep -q partial" 300; then
  victim=$(pgrep -P "$bg" | tail -n 1)
  kill -KILL "$victim"
  wait "$bg"
  rc=$?
  [ "$rc" -ne 0 ] || fail "kill: the job exited 0 after a rank was killed"
  latest="$out/checkpoints/$(cat "$out/checkpoints/latest")"
  "$FFC" ckpt verify "$latest" >/dev/null 2>&1 || fail "kill: the last committed checkpoint does not verify"
  ls -A "$out/checkpoints" | grep -q partial || fail "kill: no half-written file was left to ignore"
  step=$(step_of "$latest")
  train 2 "$out" --set method=fc --set num_classes=400000 --set max_steps=$((step + 2)) --resume auto
  [ "$rc" -eq 0 ] || { fail "kill: resume exited $rc"; show_log; }
  grep -q "resume: .*$(basename "$latest") at step $step" "$tmp/last.log" || { fail "kill: did not resume from $latest"; show_log 5; }
  echo "kill: rank killed during a save; $(basename "$first") .. $(basename "$latest") intact, resumed from step $step"
else
  fail "kill: never saw a save in progress"
  kill "$bg"
  wait "$bg"
fi
finish
