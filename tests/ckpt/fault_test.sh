#!/usr/bin/env bash
# Faults that must never lose a good run (docs/errors.md):
#   1. divergence: a run resumed with lr 1e8 stops with exit status 1 at the first non-finite
#      step, naming it and the last good checkpoint, writes no checkpoint, leaves `latest` and
#      every earlier checkpoint in place; with nonfinite_skip the bad steps are skipped, counted;
#   2. a full disk (a tmpfs of a few MiB) at the second save, at 1 and 2 ranks: exit status 1 (not
#      a crash, not a hang), no partial file, the earlier checkpoint intact and named by
#      `latest`, and `--resume auto` continues from it once there is room;
#   3. a high logit scale (1024) stays finite.
# usage: fault_test.sh MPIEXEC FFC
MPIEXEC=$1 FFC=$2
source "$(dirname "$0")/common.sh"

# 1. Divergence after two good checkpoints.
run=$tmp/diverge
train 2 "$run" --set method=fc --set max_steps=4 --set save_every=2 --set save_keep=0
[ "$rc" -eq 0 ] || { show_log; fail "the healthy run exited with $rc"; }
before=$(ls "$run/checkpoints")
train 2 "$run" --set method=fc --set max_steps=12 --set save_every=2 --set save_keep=1 \
  --set lr=1e8 --resume auto
show_log 4
[ "$rc" -eq 1 ] && echo "divergence: exit status 1" || fail "divergence: exit status $rc, not 1"
grep -q "training diverged at step [0-9]* (loss)" "$tmp/last.log" ||
  fail "divergence: no message naming the step and the phase"
grep -q "last good checkpoint: .*step_000000004.h5" "$tmp/last.log" ||
  fail "divergence: the message does not name the last good checkpoint"
[ "$(ls "$run/checkpoints")" = "$before" ] ||
  fail "divergence: the checkpoints changed: $(ls "$run/checkpoints" | tr '\n' ' ')"
"$FFC" ckpt verify "$run/checkpoints/step_000000004.h5" >/dev/null ||
  fail "divergence: the last good checkpoint does not verify"
grep -q "step_000000004.h5" "$run/checkpoints/latest" || fail "divergence: latest moved"
# Skipping: 3 bad steps in a row are tolerated, then the run stops all the same.
train 1 "$tmp/skip" --set method=fc --set max_steps=6 --set lr=1e8 --set nonfinite_skip=3 \
  --set save_last=false
[ "$rc" -eq 1 ] || fail "nonfinite_skip: exit status $rc, not 1"
[ "$(grep -c "the step is skipped" "$tmp/last.log")" -eq 3 ] ||
  fail "nonfinite_skip: not 3 skipped steps before the stop"

# 2. A full disk during the second save.
mnt=$tmp/fs
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=10m tmpfs "$mnt" 2>/dev/null; then
  echo "SKIPPED: cannot mount a tmpfs here (not root?); the full-disk part did not run"
  finish
  exit 77
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
for np in 1 2; do
  run=$mnt/run$np
  rm -rf "$run"
  # A 6.7 MiB first checkpoint fits in the 10 MiB filesystem; the second does not.
  train "$np" "$run" --set method=fc --set num_classes=16000 --set max_steps=4 \
    --set save_every=2 --set save_keep=0
  show_log 3
  [ "$rc" -eq 1 ] && echo "full disk at $np rank(s): exit status 1" ||
    fail "full disk at $np rank(s): exit status $rc, not 1"
  grep -q "checkpoint at step 4 could not be written" "$tmp/last.log" ||
    fail "full disk at $np rank(s): no message saying which save failed"
  ls "$run/checkpoints" | grep -q partial && fail "full disk at $np rank(s): a partial file is left"
  "$FFC" ckpt verify "$run/checkpoints/step_000000002.h5" >/dev/null ||
    fail "full disk at $np rank(s): the earlier checkpoint does not verify"
  grep -q "step_000000002.h5" "$run/checkpoints/latest" ||
    fail "full disk at $np rank(s): latest does not name the earlier checkpoint"
  # With room again, the run resumes from that checkpoint.
  mount -o remount,size=64m "$mnt"
  train "$np" "$run" --set method=fc --set num_classes=16000 --set max_steps=4 \
    --set save_every=2 --set save_keep=0 --resume auto
  [ "$rc" -eq 0 ] || { show_log; fail "full disk at $np rank(s): the resume exited with $rc"; }
  grep -q "resume: .*step_000000002.h5 at step 2" "$tmp/last.log" ||
    fail "full disk at $np rank(s): did not resume from step 2"
  rm -rf "$run"
  mount -o remount,size=10m "$mnt"
done
umount "$mnt"

# 3. Scale 1024: no exponential overflows in rows without a CE term.
train 1 "$tmp/scale" --set method=ffc --set scale=1024 --set max_steps=6 --set save_last=false
[ "$rc" -eq 0 ] && echo "scale 1024: trained" || { show_log; fail "scale 1024: exit status $rc"; }
finish
