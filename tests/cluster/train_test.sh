#!/usr/bin/env bash
# ffc on a real multi-node Slurm (tests/cluster/fixture.sh: 3 namespaced nodes of 2 pretend GPUs,
# slurmctld on a head node, the jobs' data, checkpoints and output in the shared folder):
# 1. `srun -N 2 --ntasks-per-node=2 ffc env`: 2 hosts, node-local ranks 0 and 1 on each, the
#    collectives checked across nodes; the MPI traffic goes through the nodes' veths (counted);
# 2. slurm/train.sbatch at --nodes=2 --ntasks-per-node=2 trains FFC, FC, Partial FC and Virtual FC
#    from a packed set in the shared folder; each final checkpoint equals that of the same 4 ranks
#    on one node, bitwise;
# 3. each checkpoint is one parallel-HDF5 file in the shared folder, written by the ranks of both
#    nodes; `ffc ckpt verify` accepts it; nothing of it is in a node's /tmp or /dev/shm;
# 4. the 2-node job is preempted (SIGUSR1 to its batch shell): every rank stops at the same step,
#    saves, exits 3, the job requeues itself and resumes; its final checkpoint equals the
#    uninterrupted job's; the checkpoint of the stop resumes on 1 node with 4 ranks (and ends
#    equal to the uninterrupted job) and on 3 nodes (re-sharded exactly, then trains on);
# 5. the binary dataset index in the shared folder is memory-mapped by the ranks of both nodes;
# 6. slurm/train-gpu.sbatch at --nodes=2 gives every rank its node's 2 GPUs and the node-local
#    rank that picks one (mpi backend: nothing runs on the pretend GPUs).
# usage: train_test.sh FFC SOURCE_DIR
FFC=$1 SRC=$2
source "$(dirname "$0")/fixture.sh"
source "$(dirname "$0")/../slurm/common.sh"
CLUSTER_FIXTURE_GPUS=2
CLUSTER_NODE_CPUS=4 # the 4 ranks of one node (pretend cores: the nodes share the machine's)
cluster_start 3 "$SRC" "$(dirname "$FFC")" || exit 1
OUT=$CLUSTER_SHARED
STEPS=24
# The demo's configuration cut down (tests/slurm/common.sh), from a packed set in the shared folder.
ARGS=("${TRAIN_ARGS[@]}" --set rec="$OUT/data" --set max_steps=$STEPS --set frequent=6)

# train NAME NODES TASKS_PER_NODE [sbatch options] [-- ffc train options]: slurm/train.sbatch,
# output folder $OUT/NAME, job output $OUT/NAME.out; the job id in $jobid.
train() {
  local name=$1 nodes=$2 tasks=$3 sb=() extra=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do sb+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  jobid=$(cd "$SRC" && FFC_BIN=$FFC sbatch --parsable --job-name="$name" -N "$nodes" \
    --ntasks-per-node="$tasks" -c 1 -t 10 --output="$OUT/$name.out" "${sb[@]}" \
    slurm/train.sbatch inputs/demo.yaml "${ARGS[@]}" --set output="$OUT/$name" "${extra[@]}") ||
    { fail "sbatch $name"; finish; }
}
# done_ok NAME JOBID SECONDS: the job completed with 0:0.
done_ok() {
  slurm_wait_job "$2" "$3" || { fail "job $2 ($1) still $job_state after $3 s"; return 1; }
  [ "$job_state" = COMPLETED ] && [ "$job_exit" = "0:0" ] && return 0
  fail "job $2 ($1) ended $job_state ($job_exit)"
  show "$OUT/$1.out" 30
  return 1
}
ckpt_of() { printf '%s/%s/checkpoints/step_%09d.h5' "$OUT" "$1" "${2:-$STEPS}"; }
same() { # same A B WHAT: ffc ckpt diff, bitwise
  if "$FFC" ckpt diff "$1" "$2" >"$OUT/diff.txt" 2>&1; then
    echo "$3: $(tail -n 1 "$OUT/diff.txt")"
  else
    fail "$3: the checkpoints differ"
    show "$OUT/diff.txt" 12
  fi
}

# --- 1. ffc env across 2 nodes; the traffic between them on the veths
before=$(cluster_net_bytes n2)
srun --mpi=pmix -N 2 --ntasks-per-node=2 -c 1 "$FFC" env >"$OUT/env.txt" 2>&1 ||
  fail "srun ffc env exited $?"
after=$(cluster_net_bytes n2)
grep -q "world: 4 rank(s), backend mpi" "$OUT/env.txt" || fail "ffc env: no world of 4"
for want in "0 n1 0/2" "1 n1 1/2" "2 n2 0/2" "3 n2 1/2"; do
  read -r r h l <<<"$want"
  grep -qE "^ +$r +$h +$l " "$OUT/env.txt" || fail "ffc env: rank $r is not local rank $l on $h"
done
grep -q "collectives: ok" "$OUT/env.txt" || fail "ffc env: the collectives across nodes failed"
sent=$(($(cut -d' ' -f1 <<<"$after") - $(cut -d' ' -f1 <<<"$before")))
[ "$sent" -gt 0 ] || fail "ffc env: nothing went through n2's eth0"
[ "$failures" -eq 0 ] && echo "1. ffc env: $(grep -c '^ *[0-9] *n[12] ' "$OUT/env.txt") ranks on n1 and n2," \
  "local ranks 0/2 and 1/2 on each, collectives ok; n2's eth0 sent $sent bytes" &&
  sed -n '/^world:/,/^collectives/p' "$OUT/env.txt" | sed 's/^/  | /'

# --- a packed set in the shared folder (its binary index, train.ffcidx, included)
"$FFC" pack --synthetic --config "$SRC/inputs/demo.yaml" --set num_classes=2000 --out "$OUT/data" \
  >"$OUT/pack.txt" 2>&1 || { fail "ffc pack"; show "$OUT/pack.txt"; finish; }

# --- 2. four methods on 2 nodes x 2 ranks and on 1 node x 4 ranks
declare -A method_args=([ffc]="" [fc]="" [pfc]="--set sample_rate=0.3"
  [vfc]="--set images_per_identity=4 --set vfc_rows=64")
declare -A two one
b0=$(cluster_net_bytes n1)
c0=$(cluster_net_bytes n3)
for m in ffc fc pfc vfc; do
  # shellcheck disable=SC2086
  train "$m-2n" 2 2 -- --set method=$m ${method_args[$m]}
  two[$m]=$jobid
  # shellcheck disable=SC2086
  train "$m-1n" 1 4 -w n3 -- --set method=$m ${method_args[$m]}
  one[$m]=$jobid
done

# --- 5. (while the FFC job runs) the index in the shared folder is mapped on both nodes
mapped=""
for ((i = 0; i < 600; ++i)); do
  for node in n1 n2; do
    case " $mapped " in *" $node "*) continue ;; esac
    for p in $(cluster_pids "$node" ffc); do
      grep -qF "$OUT/data/train.ffcidx" "/proc/$p/maps" 2>/dev/null && mapped="$mapped $node" && break
    done
  done
  [ "$(wc -w <<<"$mapped")" -eq 2 ] && break
  sleep 0.1
done
if [ "$(wc -w <<<"$mapped")" -eq 2 ]; then
  echo "5. $OUT/data/train.ffcidx is memory-mapped by the ranks on:$mapped"
else
  fail "the dataset index in the shared folder was not mapped on both nodes (only:$mapped)"
fi

for m in ffc fc pfc vfc; do
  done_ok "$m-2n" "${two[$m]}" 300 || continue
  done_ok "$m-1n" "${one[$m]}" 300 || continue
  grep -q "world: 4 rank(s) on 2 host(s) (n1:0-1 n2:2-3)" "$OUT/$m-2n.out" ||
    fail "$m-2n: not 4 ranks on n1 and n2"
  grep -q "world: 4 rank(s) on 1 host(s) (n3:0-3)" "$OUT/$m-1n.out" ||
    fail "$m-1n: not 4 ranks on n3"
  same "$(ckpt_of "$m-2n")" "$(ckpt_of "$m-1n")" "2. $m: 2 nodes x 2 ranks == 1 node x 4 ranks"
done
# Between nodes MPI goes over TCP through the veths; within n3 (the 1-node runs) through shared
# memory: its eth0 carries only Slurm's few messages.
b1=$(cluster_net_bytes n1)
c1=$(cluster_net_bytes n3)
sent1=$(($(cut -d' ' -f1 <<<"$b1") - $(cut -d' ' -f1 <<<"$b0")))
sent3=$(($(cut -d' ' -f1 <<<"$c1") - $(cut -d' ' -f1 <<<"$c0")))
echo "   eth0 sent during these jobs: n1 (2-node jobs) $sent1 bytes, n3 (1-node jobs) $sent3 bytes"
[ "$sent1" -gt $((20 * sent3)) ] ||
  fail "the 2-node jobs did not send their collectives through n1's eth0 ($sent1 vs $sent3 bytes)"

# --- 3. one file in the shared folder, written by both nodes; nothing node-local
f=$(ckpt_of ffc-2n)
if "$FFC" ckpt verify "$f" >"$OUT/verify.txt" 2>&1; then
  echo "3. $f: $(tail -n 1 "$OUT/verify.txt")"
else
  fail "ffc ckpt verify $f"
  show "$OUT/verify.txt"
fi
"$FFC" ckpt info "$f" >"$OUT/info.txt" 2>&1
grep -qE '"?world_size"?: 4' "$OUT/info.txt" && grep -qE '"?hosts"?: "?n1:0-1 n2:2-3' "$OUT/info.txt" ||
  { fail "ffc ckpt info: not written by 4 ranks on n1 and n2"; show "$OUT/info.txt" 20; }
echo "   ffc ckpt info: $(grep -E 'world_size|hosts' "$OUT/info.txt" | tr -s ' \n' ' ')"
for node in n1 n2 n3; do
  left=$(cluster_on "$node" find /tmp /dev/shm -name '*.h5*' -o -name 'latest' -o -name '*.jsonl' 2>/dev/null)
  [ -z "$left" ] || fail "$node: checkpoint files in node-local storage: $left"
done
[ "$failures" -eq 0 ] && echo "   no .h5, latest or metrics file in the /tmp or /dev/shm of n1, n2, n3"

# --- 4. preemption of the 2-node job, requeue, resume; the checkpoint of the stop elsewhere
train pre-2n 2 2 -- --set method=ffc
pre=$jobid
wait_until "[ -s '$OUT/pre-2n/metrics.jsonl' ]" 240 || { fail "job $pre: no metrics after 4 minutes"; finish; }
scancel --batch --signal=USR1 "$pre" || fail "scancel --batch --signal=USR1 $pre"
done_ok pre-2n "$pre" 400
out=$OUT/pre-2n.out
restarts=$(job_field "$pre" Restarts)
[ "$restarts" = 1 ] || fail "job $pre: Restarts=$restarts, expected 1"
for want in "SIGUSR1 received; forwarding it to the ranks" "stop requested by signal 10" \
  "saved a checkpoint on a signal (exit status 3)" "requeueing job $pre" \
  "SLURM_RESTART_COUNT=1" "ffc train finished (restarts: 1)"; do
  grep -qF -- "$want" "$out" || fail "job $pre: no '$want' in its output"
done
stop=$(sed -n 's/.*stop requested by signal 10 at step \([0-9]*\).*/\1/p' "$out" | head -n 1)
# Every rank of both nodes stopped at that step and ended with status 3 (srun names the tasks
# that did not end with 0, node by node).
for t in 0 1 2 3; do
  grep -qF "[r$t/4] stop requested by signal 10 at step $stop:" "$out" ||
    fail "job $pre: rank $t did not stop at step $stop"
done
grep -q "n1: tasks 0-1: Exited with exit code 3" "$out" && grep -q "n2: tasks 2-3: Exited with exit code 3" "$out" ||
  fail "job $pre: the tasks of n1 and n2 did not all exit with status 3"
if [ -z "$stop" ] || [ "$stop" -ge "$STEPS" ]; then
  fail "job $pre: not stopped in the middle of training (step '$stop')"
else
  grep -q "resume: .*step_0*$stop.h5 at step $stop" "$out" ||
    fail "job $pre: the requeued run did not resume at step $stop"
  same "$(ckpt_of pre-2n)" "$(ckpt_of ffc-2n)" \
    "4. preempted at step $stop on 2 nodes, requeued, resumed == uninterrupted"
  # The checkpoint of the stop, resumed on 1 node x 4 ranks and on 3 nodes x 1 rank.
  for where in 1n4 3n1; do
    mkdir -p "$OUT/pre-$where/checkpoints"
    cp "$(ckpt_of pre-2n "$stop")" "$OUT/pre-$where/checkpoints/"
    basename "$(ckpt_of pre-2n "$stop")" >"$OUT/pre-$where/checkpoints/latest"
  done
  train pre-1n4 1 4 -- --set method=ffc
  done_ok pre-1n4 "$jobid" 300 &&
    same "$(ckpt_of pre-1n4)" "$(ckpt_of ffc-2n)" \
      "   the step-$stop checkpoint resumed on 1 node x 4 ranks == uninterrupted"
  # At 3 ranks the same step is fewer images: the run continues at the remapped step. First it
  # only loads and saves (max_steps below the remapped step): the re-sharded state must equal
  # the saved one; then it trains on.
  train pre-3n1 3 1 -- --set method=ffc --set max_steps="$stop"
  if done_ok pre-3n1 "$jobid" 300; then
    remapped=$(sed -n 's/.*continuing at step \([0-9]*\) with 3 rank(s).*/\1/p' "$OUT/pre-3n1.out" | head -n 1)
    if [ -z "$remapped" ]; then
      fail "3 nodes: no 'continuing at step ... with 3 rank(s)'"
      show "$OUT/pre-3n1.out" 20
    else
      same "$(ckpt_of pre-2n "$stop")" "$(ckpt_of pre-3n1 "$remapped")" \
        "   the step-$stop checkpoint re-sharded on 3 nodes x 1 rank (step $remapped)"
      train pre-3n1 3 1 -- --set method=ffc --set max_steps=$((remapped + 6))
      if done_ok pre-3n1 "$jobid" 300; then
        grep -q "world: 3 rank(s) on 3 host(s) (n1:0 n2:1 n3:2)" "$OUT/pre-3n1.out" ||
          fail "3 nodes: not one rank on each of n1, n2, n3"
        grep -q "r0/3.*step $((remapped + 6))/$((remapped + 6)) " "$OUT/pre-3n1.out" &&
          echo "   and trained on at 3 nodes to step $((remapped + 6))" ||
          fail "3 nodes: did not train on to step $((remapped + 6))"
      fi
    fi
  fi
fi

# --- 6. train-gpu.sbatch at --nodes=2 on pretend GPUs (the mpi backend)
jobid=$(cd "$SRC" && FFC_BIN="$SRC/tests/slurm/fake_ffc.sh" FFC_REAL=$FFC FFC_BACKEND=mpi \
  sbatch --parsable -N 2 --gpus-per-node=2 --ntasks-per-node=2 -c 1 -t 10 \
  --output="$OUT/gpu-2n.out" slurm/train-gpu.sbatch inputs/demo.yaml "${ARGS[@]}" \
  --set max_steps=6 --set output="$OUT/gpu-2n") || fail "sbatch train-gpu.sbatch"
if done_ok gpu-2n "$jobid" 300; then
  out=$OUT/gpu-2n.out
  grep -q "2 node(s) x 2 GPU(s), 4 rank(s) x 1 CPU(s)" "$out" || fail "train-gpu.sbatch: no '2 node(s) x 2 GPU(s), 4 rank(s)'"
  for t in 0 1 2 3; do
    grep -q "task $t on n$((t / 2 + 1)) local $((t % 2)) sees GPUs 0,1" "$out" ||
      fail "train-gpu.sbatch: task $t is not local rank $((t % 2)) on n$((t / 2 + 1)) seeing GPUs 0,1"
  done
  grep -q "ffc train finished" "$out" || fail "train-gpu.sbatch: training did not finish"
  [ "$failures" -eq 0 ] && echo "6. train-gpu.sbatch -N 2: $(grep -c 'sees GPUs 0,1' "$out") tasks," \
    "each its node's GPUs 0,1 and local rank 0 or 1 (GPU = local rank)"
fi
finish
