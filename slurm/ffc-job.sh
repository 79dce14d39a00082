# shellcheck shell=bash disable=SC2154  # job_name and restarts are the sourcing script's
# The job scripts' shared part (train.sbatch, train-gpu.sbatch, sweep.sbatch source it): finding
# ffc, the thread settings, launching `ffc train` with signals forwarded, requeueing, the check
# that every node still answers, and what each exit status of ffc means for the job. Not a job
# script itself. Every function's messages start with $job_name (the script's name).

# ffc_job_find_bin: sets `ffc` to FFC_BIN, else build/bin/ffc of the submit folder, else ffc on
# PATH; exits with status 2 when there is none.
ffc_job_find_bin() {
  ffc=${FFC_BIN:-}
  if [ -z "$ffc" ]; then
    if [ -x "${SLURM_SUBMIT_DIR:-.}/build/bin/ffc" ]; then
      ffc=${SLURM_SUBMIT_DIR:-.}/build/bin/ffc
    else
      ffc=$(command -v ffc || true)
    fi
  fi
  if [ -z "$ffc" ] || [ ! -x "$ffc" ]; then
    echo "$job_name: no ffc executable; set FFC_BIN or put ffc on PATH" >&2
    exit 2
  fi
}

# ffc_job_threads: sets `cpus`. One compute thread per CPU of the task: ffc's num_threads 0 (the
# default) takes OMP_NUM_THREADS first, then SLURM_CPUS_PER_TASK (docs/config.md). srun does not
# pass the job's --cpus-per-task to its steps by itself (Slurm >= 22.05): SRUN_CPUS_PER_TASK does.
# Parallel file systems often refuse HDF5's file locks; the checkpoints do not need them.
ffc_job_threads() {
  cpus=${SLURM_CPUS_PER_TASK:-1}
  export OMP_NUM_THREADS=$cpus
  export SRUN_CPUS_PER_TASK=$cpus
  export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-FALSE}
}

# ffc_job_requeue: requeues the job, only while it is still running: a job cancelled by its user
# (scancel: SIGTERM, after which the ranks save too), timed out, or preempted by Slurm (which
# requeues it itself under PreemptMode=REQUEUE) must not be brought back by the script. Status 1
# when it did not requeue (and says why).
ffc_job_requeue() {
  local state
  state=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  if [ "$state" != RUNNING ]; then
    echo "$job_name: not requeueing: the job is ${state:-unknown} (cancelled, timed out or" \
      "preempted); submit the same command again to continue from the checkpoint"
    return 1
  fi
  if [ "$restarts" -ge "${FFC_MAX_RESTARTS:-50}" ]; then
    echo "$job_name: not requeueing after $restarts restarts (FFC_MAX_RESTARTS); submit" \
      "the same command again to continue"
    return 1
  fi
  echo "$job_name: $(date -u '+%F %T UTC') requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID" && return 0
  echo "$job_name: scontrol requeue failed; submit the same command again to continue"
  return 1
}

# ffc_job_nodes_answer: after a failure, does every node of the job still run a task within a
# minute? A node that died, or whose link is down, fails this check (ffc's watchdog has ended the
# ranks that waited for it).
ffc_job_nodes_answer() {
  timeout 60 srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 --cpus-per-task=1 \
    --kill-on-bad-exit=1 true >/dev/null 2>&1
}

# ffc_job_train COMMAND...: runs the launch of `ffc train` and ends the job script by what its
# exit status means (docs/errors.md): 0 finished; 3 saved on a signal -> requeue; 2 a usage error;
# killed by the forwarded signal during start-up -> requeue; another failure with a node that no
# longer answers -> requeue (where the job may be requeued), else stop. Needs `restarts`.
# The launcher runs in the background so that a signal to this shell is forwarded at once (bash
# runs traps only between commands, and waiting on a background job is interruptible).
ffc_job_train() {
  local rc
  _ffc_signalled=0
  _ffc_forwarded=0
  "$@" &
  _ffc_launcher=$!
  trap '_ffc_forward USR1' USR1
  trap '_ffc_forward TERM' TERM
  while :; do
    _ffc_signalled=0
    wait "$_ffc_launcher"
    rc=$?
    [ "$_ffc_signalled" -eq 1 ] || break # else the wait was interrupted by the signal: wait again
  done
  trap - USR1 TERM
  case "$rc" in
    0)
      echo "$job_name: $(date -u '+%F %T UTC') ffc train finished (restarts: $restarts)"
      exit 0
      ;;
    3)
      # Every rank saved and stopped on a signal: continue in a new allocation.
      echo "$job_name: $(date -u '+%F %T UTC') ffc saved a checkpoint on a signal" \
        "(exit status 3)"
      ffc_job_requeue && exit 0 # Slurm ends this run of the job and queues it again
      exit 3
      ;;
    138 | 143)
      if [ "$_ffc_forwarded" -eq 1 ]; then
        # Killed by the forwarded SIGUSR1/SIGTERM itself: it came before ffc could catch it
        # (within the first moments of start-up), so nothing was lost since the last checkpoint.
        echo "$job_name: the ranks were stopped by the signal during start-up, before they" \
          "could save"
        ffc_job_requeue && exit 0
      else
        # srun ended the step because a task failed (--kill-on-bad-exit): the others were killed.
        echo "$job_name: a task failed and srun ended the step (exit status $rc; the task's own" \
          "status and ffc's message are above); not requeueing (a resubmission resumes from the" \
          "last checkpoint)"
      fi
      exit "$rc"
      ;;
    2)
      echo "$job_name: configuration or usage error (exit status 2); not requeueing"
      exit 2
      ;;
    *)
      # A node lost: requeue where the job may be (--requeue); the next run resumes from the last
      # checkpoint on nodes that answer (Slurm marks a node that stopped answering down).
      if [ "$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null |
        sed -n 's/.*Requeue=\([0-9]\).*/\1/p')" = 1 ] && ! ffc_job_nodes_answer; then
        echo "$job_name: $(date -u '+%F %T UTC') ffc train failed with exit status $rc and a" \
          "node of the job does not answer (lost, or cut off)"
        ffc_job_requeue && exit 0
      fi
      echo "$job_name: ffc train failed with exit status $rc; not requeueing (a resubmission" \
        "resumes from the last checkpoint)"
      exit "$rc"
      ;;
  esac
}

_ffc_forward() {
  _ffc_signalled=1
  _ffc_forwarded=1
  echo "$job_name: $(date -u '+%F %T UTC') SIG$1 received; forwarding it to the ranks"
  kill -s "$1" "$_ffc_launcher" 2>/dev/null
}
