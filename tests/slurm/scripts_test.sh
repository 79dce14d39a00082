#!/usr/bin/env bash
# The other job scripts on a real (single-node) Slurm:
# - slurm/sweep.sbatch as a job array over 4 methods x 2 class counts, with a stand-in for
#   `ffc bench scaling` (tests/slurm/fake_ffc.sh): each array task gets its own point, the
#   launcher it passes starts the requested number of tasks, an index beyond the grid fails;
# - slurm/train-gpu.sbatch on a node announcing 2 GPUs (no devices; the mpi backend instead of
#   nccl): --ntasks-per-node = --gpus-per-node trains and finishes, --gpus-per-task is refused.
# usage: scripts_test.sh FFC SOURCE_DIR
FFC=$1 SRC=$2
source "$(dirname "$0")/common.sh"
SLURM_FIXTURE_GPUS=2
slurm_start || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- sweep.sbatch
sweep=$SLURM_DIR/sweep
id=$(cd "$SRC" && FFC_BIN="$SRC/tests/slurm/fake_ffc.sh" FFC_SWEEP_CLASSES="1000 20000" \
  FFC_SWEEP_OUT="$sweep" sbatch --parsable --array=0-8 -N 1 -n 2 -c 1 -t 5 \
  --output="$SLURM_DIR/sweep-%a.out" slurm/sweep.sbatch --batch 8) || { fail "sbatch sweep"; finish; }
wait_until "[ -z \"\$(squeue -h -j $id 2>/dev/null)\" ]" 240 || fail "sweep array $id still queued after 4 minutes"
i=0
for n in 1000 20000; do
  for m in fc pfc vfc ffc; do
    d=$sweep/$m-$n
    if [ ! -f "$d/args.txt" ]; then
      fail "array task $i: no $d/args.txt"
    else
      tr '\n' ' ' <"$d/args.txt" | grep -q -- "--methods $m --classes $n --ranks 2 --launcher srun --mpi=pmix --cpus-per-task=1 -n {ranks} --out $d --batch 8" ||
        fail "array task $i: arguments $(tr '\n' ' ' <"$d/args.txt")"
      [ "$(wc -l <"$d/launched.txt")" -eq 2 ] || fail "array task $i: the launcher did not start 2 tasks"
    fi
    i=$((i + 1))
  done
done
grep -q "array index 8 is beyond the grid of 8 point(s)" "$SLURM_DIR/sweep-8.out" ||
  fail "array task 8 (beyond the grid) did not fail with a message"
[ "$failures" -eq 0 ] && echo "sweep.sbatch: 8 array tasks, one (method, classes) point each; index 8 refused"

# One real point: ffc bench scaling itself, its runs launched by srun inside the array task, and
# the chart of the sweep folder.
real=$SLURM_DIR/sweep-real
id=$(cd "$SRC" && FFC_BIN=$FFC FFC_SWEEP_METHODS=ffc FFC_SWEEP_CLASSES=2000 FFC_SWEEP_OUT="$real" \
  sbatch --parsable --array=0 -N 1 -n 2 -c 1 -t 10 --output="$SLURM_DIR/sweep-real.out" \
  slurm/sweep.sbatch --window 2 --repeats 1 --pool 64 --network tiny --image-size 16 \
  --embedding 32 --batch 16) || fail "sbatch sweep (real)"
wait_until "[ -z \"\$(squeue -h -j $id 2>/dev/null)\" ]" 300 || fail "sweep job $id still queued"
csv=$real/ffc-2000/scaling.csv
if grep -q "^ffc,2000,2,ok," "$csv" 2>/dev/null &&
  /usr/bin/python3 "$SRC/tools/ffc_plot.py" scaling "$real" --out "$SLURM_DIR/scaling.png" >/dev/null &&
  [ -s "$SLURM_DIR/scaling.png" ]; then
  echo "sweep.sbatch with ffc bench scaling: $(grep '^ffc,2000,2,ok,' "$csv" | cut -d, -f1-5); charted"
else
  fail "sweep.sbatch with the real benchmark: no 'ffc,2000,2,ok' point or no chart"
  show "$SLURM_DIR/sweep-real.out" 30
  show "$csv" 5
fi

# --- train-gpu.sbatch, the mpi backend on pretend GPUs
gpu() { # gpu NAME [sbatch options]
  local name=$1
  shift
  jobid=$(cd "$SRC" && FFC_BIN="$SRC/tests/slurm/fake_ffc.sh" FFC_REAL=$FFC FFC_BACKEND=mpi sbatch --parsable -N 1 -c 1 -t 10 \
    --output="$SLURM_DIR/$name.out" "$@" slurm/train-gpu.sbatch inputs/demo.yaml \
    "${TRAIN_ARGS[@]}" --set max_steps=20 --set output="$SLURM_DIR/$name") || fail "sbatch $name"
}
gpu gpu-ok --gpus-per-node=2 --ntasks-per-node=2
ok=$jobid
gpu gpu-per-task --gpus-per-node=2 --gpus-per-task=1 --ntasks-per-node=2
per_task=$jobid
slurm_wait_job "$ok" 300 || fail "train-gpu job $ok still $job_state after 5 minutes"
[ "$job_state" = COMPLETED ] || fail "train-gpu job $ok ended $job_state ($job_exit)"
for t in 0 1; do
  grep -q "task $t on .* local $t sees GPUs 0,1" "$SLURM_DIR/gpu-ok.out" || fail "train-gpu.sbatch: rank $t does not see both GPUs"
done
grep -q -- "srun --mpi=pmix --cpus-per-task=1 .* train --config inputs/demo.yaml --backend mpi --resume auto" \
  "$SLURM_DIR/gpu-ok.out" || fail "train-gpu.sbatch: unexpected launch line"
grep -q "1 node(s) x 2 GPU(s), 2 rank(s)" "$SLURM_DIR/gpu-ok.out" || fail "train-gpu.sbatch: no 2 GPUs x 2 ranks line"
grep -q "ffc train finished" "$SLURM_DIR/gpu-ok.out" || fail "train-gpu.sbatch: training did not finish"
slurm_wait_job "$per_task" 120 || fail "train-gpu job $per_task still $job_state"
[ "$job_state" = FAILED ] && grep -q "gpus-per-task hides the other GPUs" "$SLURM_DIR/gpu-per-task.out" ||
  fail "train-gpu.sbatch accepted --gpus-per-task ($job_state)"
[ "$failures" -eq 0 ] && echo "train-gpu.sbatch: 2 ranks on 2 GPUs trained and finished; --gpus-per-task refused"

# --- a plain scancel: the ranks save on SIGTERM, but a cancelled job is not requeued
jobid=$(cd "$SRC" && FFC_BIN=$FFC sbatch --parsable -N 1 -n 2 -c 1 -t 10 \
  --output="$SLURM_DIR/cancelled.out" slurm/train.sbatch inputs/demo.yaml "${TRAIN_ARGS[@]}" \
  --set output="$SLURM_DIR/cancelled") || fail "sbatch cancelled"
wait_until "[ -s '$SLURM_DIR/cancelled/metrics.jsonl' ]" 180 || fail "job $jobid: no metrics"
scancel "$jobid"
slurm_wait_job "$jobid" 120 || fail "cancelled job $jobid still $job_state"
sleep 2 # a requeue would show now
restarts=$(job_field "$jobid" Restarts)
state=$(job_field "$jobid" JobState)
out=$SLURM_DIR/cancelled.out
if [ "$state" != CANCELLED ] || [ "$restarts" != 0 ] ||
  ! grep -q "not requeueing: the job is" "$out" ||
  ! grep -q "stop requested by signal 15" "$out"; then
  fail "scancel: job $jobid is $state after $restarts restart(s), expected CANCELLED, not requeued"
  show "$out" 30
else
  echo "scancel: the ranks saved on SIGTERM, the job stayed CANCELLED (not requeued)"
fi

# --- ffc's start-up check in a real job: started in the batch script of a 2-task job without a
# launcher it is a world of 1 and refuses to run; under srun --mpi=pmix the 2 tasks are one world.
# (Open MPI itself refuses srun --mpi=none; other MPIs start single-rank worlds there, which the
# same check catches: tests/slurm/ntasks_check_test.sh.)
id=$(sbatch --parsable -N 1 -n 2 -c 1 -t 5 --output="$SLURM_DIR/nolauncher.out" \
  --wrap "$FFC env; srun --mpi=pmix $FFC env") || fail "sbatch --wrap ffc env"
slurm_wait_job "$id" 120 || fail "job $id (ffc env) still $job_state"
out=$SLURM_DIR/nolauncher.out
grep -q "Slurm job $id has 2 task(s) (SLURM_NTASKS=2) but this MPI world has 1 rank(s)" "$out" ||
  fail "ffc env in a batch script of 2 tasks was not refused"
grep -q "world: 2 rank(s)" "$out" || fail "srun --mpi=pmix ffc env: no world of 2"
[ "$failures" -eq 0 ] && echo "ffc env: refused in the batch shell ($(grep -o 'configuration error: .*rank(s)' "$out")); one world of 2 under srun --mpi=pmix"
finish
