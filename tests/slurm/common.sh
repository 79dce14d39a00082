# shellcheck shell=bash
# Shared by the Slurm tests: the fixture, a small training submitted through slurm/train.sbatch,
# and reporting. Sourced with FFC (the ffc executable) and SRC (the source folder) set.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/fixture.sh"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
show() { # show FILE [LINES]: the last lines of a file, indented
  echo "----- $1"
  if [ -f "$1" ]; then tail -n "${2:-60}" "$1" | sed 's/^/  | /'; else echo "  (no such file)"; fi
}
# Called by the fixture on exit: on failure, the jobs' output and the daemons' logs.
slurm_on_exit() {
  if [ "$1" -ne 0 ] || [ "$failures" -ne 0 ]; then
    local f
    for f in "$SLURM_DIR"/*.out; do [ -f "$f" ] && show "$f" 80; done
    slurm_dump_logs
  fi
}
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "ok"
  exit 0
}

# The demo's configuration (inputs/demo.yaml) cut down to about 20-30 s on two cores: fewer
# identities, a smaller pool, 60 steps, metrics every 10 steps, no evaluation. Fixed seed (the
# demo's), so two runs with the same number of ranks are the same run.
TRAIN_ARGS=(--set num_classes=2000 --set pool_size=200 --set max_steps=60 --set frequent=10
  --set val_pairs=0 --set val_identities=0 --set save_keep=0)
TRAIN_STEPS=60

# submit_train NAME [sbatch options]: submits slurm/train.sbatch with inputs/demo.yaml at 2 tasks
# x 1 CPU, output folder $SLURM_DIR/NAME, job output $SLURM_DIR/NAME.out; the job id in $jobid.
submit_train() {
  local name=$1
  shift
  jobid=$(cd "$SRC" && FFC_BIN=$FFC sbatch --parsable --job-name="$name" -N 1 -n 2 -c 1 -t 10 \
    --output="$SLURM_DIR/$name.out" "$@" slurm/train.sbatch inputs/demo.yaml "${TRAIN_ARGS[@]}" \
    --set output="$SLURM_DIR/$name") || {
    fail "sbatch of $name failed"
    finish
  }
  echo "submitted $name as job $jobid"
}

# wait_until TEST SECONDS: polls TEST every 0.2 s.
wait_until() {
  local i
  for ((i = 0; i < $2 * 5; ++i)); do
    eval "$1" && return 0
    sleep 0.2
  done
  return 1
}

latest_checkpoint() { echo "$SLURM_DIR/$1/checkpoints/$(cat "$SLURM_DIR/$1/checkpoints/latest" 2>/dev/null)"; }
job_field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
