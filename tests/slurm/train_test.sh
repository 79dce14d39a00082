#!/usr/bin/env bash
# slurm/train.sbatch on a real (single-node) Slurm, with a small run of the demo's configuration
# at 2 tasks launched by srun --mpi=pmix:
# - preemption: once training is under way the job's batch shell gets SIGUSR1 (as
#   --signal=B:USR1@N sends it before the time limit); it forwards it to the ranks, which save and
#   exit with status 3; the script requeues the job; the job runs again (SLURM_RESTART_COUNT=1),
#   resumes from that checkpoint and finishes;
# - an uninterrupted job of the same configuration finishes and its final checkpoint verifies;
# - the preempted job's final checkpoint equals it, bitwise (`ffc ckpt diff`).
# usage: train_test.sh FFC SOURCE_DIR
FFC=$1 SRC=$2
source "$(dirname "$0")/common.sh"
slurm_start || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

submit_train preempted
preempted=$jobid
metrics=$SLURM_DIR/preempted/metrics.jsonl
wait_until "[ -s '$metrics' ]" 180 || { fail "job $preempted: no metrics after 3 minutes"; finish; }
scancel --batch --signal=USR1 "$preempted" || fail "scancel --batch --signal=USR1 $preempted"
echo "job $preempted: training under way ($(wc -l <"$metrics") metrics line(s)); sent SIGUSR1 to its batch shell"
# The uninterrupted job, queued behind it (2 CPUs: one job at a time); it runs while the
# preempted job waits to be started again.
submit_train plain
plain=$jobid

# --- the preempted job
slurm_wait_job "$preempted" 360 || { fail "job $preempted still $job_state after 6 minutes"; finish; }
out=$SLURM_DIR/preempted.out
[ "$job_state" = COMPLETED ] && [ "$job_exit" = "0:0" ] ||
  fail "job $preempted ended $job_state with exit code $job_exit"
restarts=$(job_field "$preempted" Restarts)
[ "$restarts" = 1 ] || fail "job $preempted: Restarts=$restarts, expected 1"
for want in "SLURM_RESTART_COUNT=0" "SIGUSR1 received; forwarding it to the ranks" \
  "stop requested by signal 10" "saved a checkpoint on a signal (exit status 3)" \
  "requeueing job $preempted" \
  "SLURM_RESTART_COUNT=1" "ffc train finished (restarts: 1)"; do
  grep -qF -- "$want" "$out" || fail "job $preempted: no '$want' in its output"
done
saved=$(sed -n 's/.*stop requested by signal 10 at step \([0-9]*\).*/\1/p' "$out" | head -n 1)
if [ -z "$saved" ] || [ "$saved" -ge "$TRAIN_STEPS" ]; then
  fail "job $preempted: not stopped in the middle of training (step '${saved}')"
else
  grep -q "resume: .*step_0*$saved.h5 at step $saved" "$out" ||
    fail "job $preempted: the requeued run did not resume at step $saved"
fi

# --- the uninterrupted job
slurm_wait_job "$plain" 360 || { fail "job $plain still $job_state after 6 minutes"; finish; }
out=$SLURM_DIR/plain.out
[ "$job_state" = COMPLETED ] && [ "$job_exit" = "0:0" ] ||
  fail "job $plain ended $job_state with exit code $job_exit"
for want in "SLURM_RESTART_COUNT=0" "srun --mpi=pmix --cpus-per-task=1" "world: 2 rank(s)" \
  "1 thread(s) per rank" "ffc train finished (restarts: 0)"; do
  grep -qF -- "$want" "$out" || fail "job $plain: no '$want' in its output"
done
a=$(latest_checkpoint preempted)
b=$(latest_checkpoint plain)
final=$(printf 'step_%09d.h5' "$TRAIN_STEPS")
for f in "$a" "$b"; do
  [ "$(basename "$f")" = "$final" ] || fail "latest checkpoint is $f, expected $final"
  "$FFC" ckpt verify "$f" >"$SLURM_DIR/verify.txt" 2>&1 || { fail "ffc ckpt verify $f"; show "$SLURM_DIR/verify.txt"; }
done
[ "$failures" -eq 0 ] && echo "job $plain: COMPLETED, exit 0:0; $final: $(tail -n 1 "$SLURM_DIR/verify.txt")"

# --- preempted == uninterrupted
if "$FFC" ckpt diff "$a" "$b" >"$SLURM_DIR/diff.txt" 2>&1; then
  echo "job $preempted: preempted at step $saved, requeued, resumed; its $final equals that of" \
    "the uninterrupted job: $(tail -n 1 "$SLURM_DIR/diff.txt")"
else
  fail "the preempted job's final checkpoint differs from the uninterrupted job's"
  show "$SLURM_DIR/diff.txt" 20
fi
echo "===== sbatch output of the preempted job $preempted"
sed 's/^/  | /' "$SLURM_DIR/preempted.out"
finish
