#!/usr/bin/env bash
# Exact resume (K steps, save, resume, K more == 2K uninterrupted, bitwise) for each method, in
# random and block-shuffled reading order (at 1, 2 and 4 ranks), and
# resume on another number of ranks (2->1, 1->2, 2->4): the head state re-shards exactly and
# training continues.
# usage: resume_test.sh MPIEXEC FFC
MPIEXEC=$1 FFC=$2
source "$(dirname "$0")/common.sh"

# exact NP NAME ARGS...: 24 steps uninterrupted == 12 steps, save, resume, 12 more (bitwise).
exact() {
  local np=$1 name=$2
  shift 2
  train "$np" "$tmp/$name-full" "$@" --set max_steps=24
  [ "$rc" -eq 0 ] || { fail "$name: uninterrupted run exited $rc"; show_log; return; }
  train "$np" "$tmp/$name-half" "$@" --set max_steps=12
  [ "$rc" -eq 0 ] || { fail "$name: first half exited $rc"; show_log; return; }
  train "$np" "$tmp/$name-half" "$@" --set max_steps=24 --resume auto
  [ "$rc" -eq 0 ] || { fail "$name: resumed half exited $rc"; show_log; return; }
  grep -q "resume: .*step_000000012.h5 at step 12" "$tmp/last.log" || fail "$name: did not resume at 12"
  local a="$tmp/$name-full/checkpoints/step_000000024.h5"
  local b="$tmp/$name-half/checkpoints/step_000000024.h5"
  if "$FFC" ckpt diff "$a" "$b" >"$tmp/diff.txt" 2>&1; then
    echo "$name exact resume at $np rank(s): $(tail -n 1 "$tmp/diff.txt")"
  else
    fail "$name: resumed run differs from the uninterrupted one"
    sed 's/^/  | /' "$tmp/diff.txt" | tail -n 8
  fi
}
# Block-shuffled reading (read_order block): blocks of 16 records, 4 per shuffle window, so a
# resume at step 12 lands inside a window; at 1, 2 and 4 ranks.
block=(--set read_order=block --set read_block=16 --set read_window=4)
exact 2 ffc --set method=ffc
exact 2 fc-block --set method=fc "${block[@]}"
exact 2 pfc-block --set method=pfc --set sample_rate=0.3 "${block[@]}"
exact 2 vfc --set method=vfc --set images_per_identity=4 --set vfc_rows=64
exact 1 ffc-block-1 --set method=ffc "${block[@]}"
exact 4 fc-block-4 --set method=fc "${block[@]}"

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
  if [ -n "${expect:-}" ] && ! grep -q "$expect" "$tmp/last.log"; then
    fail "reshard $method $from->$to: the log does not say '$expect'"
    show_log 5
  fi
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
# Block order on another number of ranks: the state re-shards exactly and the log says the rest
# of the epoch is dealt afresh.
expect="rest of epoch 1 is dealt afresh over 4 rank" reshard fc 2 4 8 --set pool_size=0 "${block[@]}"
finish
