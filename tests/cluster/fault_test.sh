#!/usr/bin/env bash
# Faults on the multi-node test cluster (tests/cluster/fixture.sh, 3 nodes). A 2-node training
# (slurm/train.sbatch, 2 ranks on each of n1 and n2, comm_timeout 10 s, save_timeout 15 s) is hit
# after its first checkpoint by
#   1. a node that dies: every process of n2 killed at once, its slurmd included;
#   2. a link that is cut: n2's veth goes down while the ranks train, and once while a
#      checkpoint is being written;
#   3. a rank that stops: SIGSTOP to rank 3 (and SIGCONT once the job ended);
#   4. a rank that dies in the middle of a collective on another node (SIGKILL to rank 3).
# Each time: the job's run ends within a bound (tens of seconds, never its time limit) with a
# message naming the fault; no rank is left running, also on the node that was cut off; the last
# good checkpoint verifies; Slurm's requeue (after a node was lost) or a resubmission resumes from
# it and finishes. The disk that fills during a save is tests/ckpt/fault_test.sh.
# usage: fault_test.sh FFC SOURCE_DIR
FFC=$1 SRC=$2
source "$(dirname "$0")/fixture.sh"
source "$(dirname "$0")/../slurm/common.sh"
# Slurm declares a node that stopped answering down after this (its default: 300 s).
SLURM_SLURMD_TIMEOUT=10
cluster_start 3 "$SRC" "$(dirname "$FFC")" || exit 1
OUT=$CLUSTER_SHARED
COMM_TIMEOUT=10
SAVE_TIMEOUT=15
BOUND=60 # seconds from the fault to the end of the job's run
ARGS=("${TRAIN_ARGS[@]}" --set max_steps=40 --set frequent=2 --set save_every=10 --set save_keep=0
  --set comm_timeout=$COMM_TIMEOUT --set save_timeout=$SAVE_TIMEOUT)
head_ns() { nsenter --target "$(cat "$SLURM_DIR/head.pid")" --net -- "$@"; }

# submit NAME: the 2-node job; its id in $jobid.
submit() {
  jobid=$(cd "$SRC" && FFC_BIN=$FFC sbatch --parsable --job-name="$1" -N 2 --ntasks-per-node=2 \
    -c 1 -t 10 --output="$OUT/$1.out" slurm/train.sbatch inputs/demo.yaml "${ARGS[@]}" \
    --set output="$OUT/$1") || { fail "sbatch $1"; finish; }
}
# start NAME: submits and waits until the job has saved its first checkpoint and trains on.
start() {
  submit "$1"
  wait_until "[ -s '$OUT/$1/checkpoints/latest' ]" 240 || { fail "$1: no checkpoint after 4 minutes"; return 1; }
  wait_until "grep -q '\"step\":12' '$OUT/$1/metrics.jsonl'" 120 || { fail "$1: no progress after the checkpoint"; return 1; }
  good=$(cat "$OUT/$1/checkpoints/latest")
}
# rank_pid NODE RANK: the PID of ffc's rank RANK on NODE.
rank_pid() {
  local p
  for p in $(cluster_pids "$1" ffc); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_PROCID=$2" && echo "$p" && return
  done
}
# ended JOBID: waits (BOUND at most) until the job's run is over (requeued, pending again, or
# ended); $took is the seconds since the fault ($t0).
ended() {
  local i s
  for ((i = 0; i < BOUND * 5; ++i)); do
    s=$(job_field "$1" JobState)
    case "$s" in
      RUNNING | COMPLETING | CONFIGURING) sleep 0.2 ;;
      *) break ;;
    esac
  done
  took=$(($(date +%s) - t0))
  [ "$took" -le "$BOUND" ] || fail "job $1 still ${s:-?} $took s after the fault"
}
# ranks_gone WHAT NODE...: no ffc process is left on these nodes (waits up to BOUND s after the
# fault); $gone is the seconds since the fault.
ranks_gone() {
  local what=$1 i
  shift
  for ((i = 0; i < BOUND * 5; ++i)); do
    [ -z "$(for n in "$@"; do cluster_pids "$n" ffc; done)" ] && break
    sleep 0.2
  done
  gone=$(($(date +%s) - t0))
  [ "$gone" -le "$BOUND" ] || fail "$what: ffc still runs on $* $gone s after the fault"
}
# message NAME PATTERN: the job's output names the fault; shows that line.
message() {
  local line
  line=$(grep -E "$2" "$OUT/$1.out" | head -n 1)
  if [ -n "$line" ]; then
    echo "   | $(cut -c1-330 <<<"$line")"
  else
    fail "$1: no message matching '$2'"
    show "$OUT/$1.out" 25
  fi
}
# verified NAME: the checkpoint that was good before the fault still verifies and is `latest`.
verified() {
  [ "$(cat "$OUT/$1/checkpoints/latest")" = "$good" ] ||
    fail "$1: latest names $(cat "$OUT/$1/checkpoints/latest"), not $good"
  "$FFC" ckpt verify "$OUT/$1/checkpoints/$good" >/dev/null 2>&1 ||
    fail "$1: $good does not verify"
  if ls -a "$OUT/$1/checkpoints" | grep -q partial; then
    fail "$1: a partial checkpoint is left"
    ls -la --full-time "$OUT/$1/checkpoints"
  fi
}
# finished NAME JOBID HOW: the run that resumed (Slurm's requeue of JOBID, or a resubmission)
# resumed from $good and finished.
finished() {
  slurm_wait_job "$2" 300 || { fail "$1: job $2 still $job_state"; return; }
  if [ "$job_state" = COMPLETED ] && grep -q "resume: .*$good at step" "$OUT/$1.out" &&
    grep -q "ffc train finished" "$OUT/$1.out"; then
    echo "   $3, resumed from $good and finished ($(job_field "$2" NodeList))"
  else
    fail "$1: job $2 ended $job_state without resuming from $good and finishing"
    show "$OUT/$1.out" 30
  fi
}
# continued NAME requeue|resubmit: after a lost node or link Slurm requeues the job (its node
# failed) or the script does (a node did not answer its check); after a fault of a rank the nodes
# are healthy and the job is submitted again. Either way it must resume and finish.
continued() {
  if [ "$2" = requeue ]; then
    if wait_until "[ \"\$(job_field $jobid Restarts)\" -ge 1 ] 2>/dev/null" 90; then
      local by="by the script: a node did not answer"
      grep -q "DUE TO NODE FAILURE" "$OUT/$1.out" && by="by Slurm: node failure"
      finished "$1" "$jobid" "requeued ($by)"
    else
      fail "$1: job $jobid was not requeued ($(job_field "$jobid" JobState))"
    fi
  else
    [ "$(job_field "$jobid" Restarts)" = 0 ] || fail "$1: job $jobid was requeued after a fault of a rank"
    submit "$1"
    finished "$1" "$jobid" "resubmitted"
  fi
}
back() { # back NODE: the node answers Slurm again and is idle
  wait_until "[ \"\$(sinfo -h -n $1 -o %T)\" = idle ]" 120 || fail "$1 did not come back: $(sinfo -h -n "$1" -o '%T %E')"
}

# --- 1. a node dies
start node || finish
t0=$(date +%s)
# shellcheck disable=SC2046
kill -KILL $(cluster_pids n2)
ranks_gone "node" n1
ended "$jobid"
echo "1. n2 died (every process killed): ranks on n1 gone after $gone s, the job's run ended after $took s"
message node "did not complete within|MPI_ERR|connection"
verified node
continued node requeue
cluster_on n2 /usr/sbin/slurmd -f "$SLURM_CONF" -N n2 || fail "slurmd of n2 did not start again"
back n2

# --- 2. the link of n2 is cut while training, then while a checkpoint is written
for when in training saving; do
  name=link-$when
  start "$name" || finish
  if [ "$when" = saving ]; then
    # The save takes about a second here: look every 10 ms for its file.
    for ((i = 0; i < 12000; ++i)); do
      [ -e "$OUT/$name/checkpoints/.step_000000020.h5.partial" ] && break
      sleep 0.01
    done
    [ -e "$OUT/$name/checkpoints/.step_000000020.h5.partial" ] ||
      { fail "$name: the step-20 save was not seen"; continue; }
  fi
  t0=$(date +%s)
  head_ns ip link set vn2 down
  ranks_gone "$name" n1 n2
  echo "2. n2's link cut while $when: ffc gone from n1 and from n2 (cut off) after $gone s"
  ended "$jobid"
  echo "   the job's run ended after $took s"
  if [ "$when" = saving ]; then
    message "$name" "checkpoint save at step 20 did not complete within $SAVE_TIMEOUT s"
    # The first rank whose watchdog gets there removes the partial file (verified below); here
    # that may be a rank of the cut-off node, whose log cannot reach srun any more.
    grep -q "removed the partial checkpoint" "$OUT/$name.out" &&
      message "$name" "removed the partial checkpoint"
  else
    message "$name" "did not complete within $COMM_TIMEOUT s \(comm_timeout\)"
  fi
  verified "$name"
  continued "$name" requeue
  head_ns ip link set vn2 up
  back n2
done

# --- 3. a rank stops
start stop || finish
victim=$(rank_pid n2 3)
[ -n "$victim" ] || { fail "stop: no rank 3 on n2"; finish; }
t0=$(date +%s)
kill -STOP "$victim"
ranks_gone "stop" n1 n2
ended "$jobid"
echo "3. rank 3 (PID $victim on n2) stopped: the other ranks left after $gone s, the run ended after $took s"
message stop "not arrived \(no report\): rank 3 on n2"
if kill -CONT "$victim" 2>/dev/null; then
  fail "stop: the stopped rank $victim was still there after the job ended"
else
  echo "   SIGCONT to $victim after the job: no such process; nothing was left waiting"
fi
verified stop
continued stop resubmit

# --- 4. a rank dies in the middle of a collective (on n2; the others wait on n1 and n2)
start kill || finish
victim=$(rank_pid n2 3)
t0=$(date +%s)
kill -KILL "$victim"
ranks_gone "kill" n1 n2
ended "$jobid"
echo "4. rank 3 killed on n2: the step ended after $gone s (srun --kill-on-bad-exit; comm_timeout is $COMM_TIMEOUT s)"
[ "$gone" -lt "$COMM_TIMEOUT" ] || fail "kill: the step did not end before comm_timeout"
message kill "n2: task 3: Killed"
verified kill
continued kill resubmit
finish
