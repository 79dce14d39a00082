#!/usr/bin/env bash
# Exact resume (K steps, save, resume, K more == 2K uninterrupted, bitwise) for each method, and
# resume on another number of ranks (2->1, 1->2, 2->4): the head state re-shards exactly and
# training continues.
# usage: resume_test.sh MPIEXEC FFC
MPIEXEC=$1 FFC=$2
source "$(dirname "$0")/common.sh"

for method in ffc fc pfc vfc; do
  extra=(--set method=$method)
  [ "$method" = pfc ] && extra+=(--set sample_rate=0.3)
  [ "$method" = vfc ] && extra+=(--set images_per_identity=4 --set vfc_rows=64)
  train 2 "$tmp/$method-full" "${extra[@]}" --set max_steps=24
  [ "$rc" -eq 0 ] || { fail "$method: uninterrupted run exited $rc"; show_log; continue; }
  train 2 "$tmp/$method-half" "${extra[@]}" --set max_steps=12
  [ "$rc" -eq 0 ] || { fail "$method: first half exited $rc"; show_log; continue; }
  train 2 "$tmp/$method-half" "${extra[@]}" --set max_steps=24 --resume auto
  [ "$rc" -eq 0 ] || { fail "$method: resumed half exited $rc"; show_log; continue; }
  grep -q "resume: .*step_000000012.h5 at step 12" "$tmp/last.log" || fail "$method: did not resume at 12"
  a="$tmp/$method-full/checkpoints/step_000000024.h5"
  b="$tmp/$method-half/checkpoints/step_000000024.h5"
  if "$FFC" ckpt diff "$a" "$b" >"$tmp/diff.txt" 2>&1; then
    echo "$method exact resume: $(tail -n 1 "$tmp/diff.txt")"
  else
    fail "$method: resumed run differs from the uninterrupted one"
    sed 's/^/  | /' "$tmp/diff.txt" | tail -n 8
  fi
done

# Re-sharding: save at P, load at P' and save again at once (max_steps = the remapped step), then
# the state must equal the saved one; then train on.
reshard() {
  local method=$1 from=$2 to=$3 remapped=$4
  shift 4
  local out="$tmp/reshard-$method-$from-$to"
  train "$from" "$out" --set method=$method "$@" --set max_steps=16
  [ "$rc" -eq 0 ] || { fail "reshard $method: run at $from ranks exited $rc"; show_log; return; }
  cp "$out/checkpoints/step_000000016.h5" "$tmp/saved.h5"
  train "$to" "$out" --set method=$method "$@" --set max_steps="$remapped" --resume auto
  [ "$rc" -eq 0 ] || { fail "reshard $method $from->$to: resume exited $rc"; show_log; return; }
  grep -q "continuing at step $remapped with $to rank" "$tmp/last.log" ||
    { fail "reshard $method $from->$to: no remap to step $remapped"; show_log 5; }
  local again
  again=$(printf '%s/checkpoints/step_%09d.h5' "$out" "$remapped")
  if "$FFC" ckpt diff "$tmp/saved.h5" "$again" >"$tmp/diff.txt" 2>&1; then
    echo "reshard $method $from->$to ranks: $(tail -n 1 "$tmp/diff.txt")"
  else
    fail "reshard $method $from->$to: re-sharded state differs from the saved one"
    sed 's/^/  | /' "$tmp/diff.txt" | tail -n 8
  fi
  train "$to" "$out" --set method=$method "$@" --set max_steps=$((remapped + 6)) --resume auto
  [ "$rc" -eq 0 ] || { fail "reshard $method $from->$to: training on exited $rc"; show_log; }
}
# The same batch per rank: the global batch scales with the ranks, so the step scales back.
# 2->1 with the automatic pool size (the resumed run keeps the checkpoint's 24 slots, where a new
# run at 1 rank would take 12); growing the ranks needs a pool that holds the larger gallery batch.
reshard ffc 2 1 32
reshard ffc 1 2 8 --set pool_size=64
reshard ffc 2 4 8 --set pool_size=64
reshard fc 2 1 32
reshard fc 2 4 8 --set pool_size=0
finish
