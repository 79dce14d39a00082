#!/usr/bin/env bash
# Faults that must never lose a good run (docs/errors.md):
#   1. divergence: a run resumed with lr 1e8 stops with exit status 1 at the first non-finite
#      step, naming it and the last good checkpoint, writes no checkpoint, leaves `latest` and
#      every earlier checkpoint in place; with nonfinite_skip the bad steps are skipped, counted;
#   2. a full disk (a tmpfs of a few MiB) at the second save, at 1 and 2 ranks: exit status 1 (not
#      a crash, not a hang), no partial file, the earlier checkpoint intact and named by
#      `latest`, and `--resume auto` continues from it once there is room;
#   3. the disk fills *during* a save, at 2 and 4 ranks (a filler process writes the tmpfs full as
#      soon as the partial checkpoint file appears): no hang; exit status 1 with a message naming
#      the save, no partial file, `latest` and its checkpoint intact, and the resume continues
#      once the filler is gone;
#   4. a high logit scale (1024) stays finite;
#   5. a disk just above one checkpoint (FFC and FC, 2 ranks): the first save fits, since the save
#      reserves within 3% of what the file takes, and the second is refused before it starts with
#      the real figures (what it needs, within 3% of the first file's size, and what is free).
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

# 3. The disk fills while a save is under way. The save reserves the disk it needs before its
# first collective write, so a disk filled before the reservation fails the save while the ranks
# can still agree, and one filled after it fails the next save's room check; HDF5's collective
# writes never meet a full disk (where they could wait forever). save_timeout bounds what is
# left. Either way: status 1, no partial file, `latest` intact.
mount -o remount,size=24m "$mnt"
for np in 2 4; do
  run=$mnt/fill$np
  rm -rf "$run" "$mnt/filler"
  # Fill the filesystem as soon as the step-4 save has created its file.
  (
    for ((i = 0; i < 3000; ++i)); do
      [ -e "$run/checkpoints/.step_000000004.h5.partial" ] && break
      sleep 0.01
    done
    dd if=/dev/zero of="$mnt/filler" bs=64k status=none 2>/dev/null
  ) &
  filler=$!
  start=$(date +%s)
  train "$np" "$run" --set method=fc --set num_classes=16000 --set max_steps=8 \
    --set save_every=2 --set save_keep=0 --set save_timeout=60
  took=$(($(date +%s) - start))
  wait "$filler"
  show_log 3
  [ "$rc" -eq 1 ] && echo "disk filled during a save at $np ranks: exit status 1 after $took s" ||
    fail "disk filled during a save at $np ranks: exit status $rc, not 1"
  # The save the filler struck (step 4) fails when it came before the reservation, else the next.
  if grep -qE "checkpoint at step (4|6) could not be written \(.*(no room|No space)" "$tmp/last.log"; then
    echo "  $(grep -oE "checkpoint at step [0-9]+ could not be written \([^;]*" "$tmp/last.log" | head -n 1 | cut -c1-160)"
  elif grep -qE "checkpoint save at step (4|6) did not complete within" "$tmp/last.log"; then
    echo "  $(grep -oE "checkpoint save at step [0-9]+ did not complete within [^(]*" "$tmp/last.log" | head -n 1)"
  else
    fail "disk filled at $np ranks: no message naming the save and the full disk"
  fi
  ls -a "$run/checkpoints" | grep -q partial && fail "disk filled at $np ranks: a partial file is left"
  latest=$(cat "$run/checkpoints/latest")
  "$FFC" ckpt verify "$run/checkpoints/$latest" >/dev/null ||
    fail "disk filled at $np ranks: $latest (latest) does not verify"
  rm -f "$mnt/filler"
  train "$np" "$run" --set method=fc --set num_classes=16000 --set max_steps=8 \
    --set save_every=2 --set save_keep=1 --resume auto
  [ "$rc" -eq 0 ] || { show_log; fail "disk filled at $np ranks: the resume exited with $rc"; }
  grep -q "resume: .*$latest at step" "$tmp/last.log" &&
    echo "disk filled at $np ranks: resumed from $latest once there was room, and finished" ||
    fail "disk filled at $np ranks: did not resume from $latest"
  rm -rf "$run"
done

# 5. A disk just above one checkpoint.
for method in ffc fc; do
  mount -o remount,size=64m "$mnt"
  run=$mnt/exact-$method
  rm -rf "$run"
  # The file's size and everything else the run writes, on a roomy disk first.
  train 2 "$run" --set method=$method --set num_classes=16000 --set max_steps=2 \
    --set save_every=2 --set save_keep=0
  [ "$rc" -eq 0 ] || { show_log; fail "exact disk ($method): the measuring run exited with $rc"; }
  size=$(stat -c %s "$run/checkpoints/step_000000002.h5")
  used=$(du -sB1 "$run" | cut -f1)
  rm -rf "$run"
  room=$((used + size * 3 / 100 + 262144))
  mount -o remount,size=$(((room + 4095) / 4096 * 4096)) "$mnt"
  train 2 "$run" --set method=$method --set num_classes=16000 --set max_steps=4 \
    --set save_every=2 --set save_keep=0
  [ -f "$run/checkpoints/step_000000002.h5" ] ||
    { show_log 4; fail "exact disk ($method): the first save did not fit a disk 3% above it"; }
  [ "$rc" -eq 1 ] || fail "exact disk ($method): exit status $rc, not 1 (the second save fits?)"
  line=$(grep -oE "no room for the checkpoint: [0-9.]+ MiB needed [^;]*" "$tmp/last.log" | head -n 1)
  need=$(echo "$line" | sed -E 's/.*: ([0-9.]+) MiB needed.*/\1/')
  free=$(echo "$line" | sed -E 's/.*, ([0-9.]+) MiB free.*/\1/')
  echo "exact disk ($method): file $size B; second save refused: $line"
  /usr/bin/python3 - "$size" "$need" "$free" <<'PY' || fail "exact disk ($method): the figures are not the real ones ($line)"
import sys
size, need, free = int(sys.argv[1]) / 2**20, float(sys.argv[2]), float(sys.argv[3])
assert size <= need <= size * 1.03, (size, need)  # what the file takes, within 3% above
assert free < need, (free, need)
PY
  ls -a "$run/checkpoints" | grep -q partial && fail "exact disk ($method): a partial file is left"
  rm -rf "$run"
done
umount "$mnt"

# 4. Scale 1024: no exponential overflows in rows without a CE term.
train 1 "$tmp/scale" --set method=ffc --set scale=1024 --set max_steps=6 --set save_last=false
[ "$rc" -eq 0 ] && echo "scale 1024: trained" || { show_log; fail "scale 1024: exit status $rc"; }
finish
