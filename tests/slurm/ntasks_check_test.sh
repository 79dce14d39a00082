#!/usr/bin/env bash
# Under Slurm, ffc refuses to start a world whose size differs from the job's tasks (a launch
# without PMI starts SLURM_NTASKS separate single-rank runs): the Slurm variables are set by hand,
# so no Slurm is needed. Commands that start no world (config, plan, ckpt) are not checked, and
# ranks started by mpirun are not either.
# usage: ntasks_check_test.sh FFC MPIEXEC
set -u
ffc=$1 mpiexec=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# Whatever Slurm job this test itself may run in is not the point here.
for v in $(compgen -e | grep '^SLURM_'); do unset "$v"; done
# run NAME EXPECTED_STATUS [VAR=VALUE...] -- CMD...: output in $tmp/NAME.log
run() {
  local name=$1 want=$2 vars=()
  shift 2
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  env "${vars[@]}" "$@" >"$tmp/$name.log" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit status $rc, expected $want"
    sed 's/^/  | /' "$tmp/$name.log" | tail -n 8
  fi
}
has() { grep -qF -- "$2" "$tmp/$1.log" || { fail "$1: no '$2' in its output"; sed 's/^/  | /' "$tmp/$1.log" | tail -n 5; }; }

# In a batch script, outside srun: 3 tasks allocated, 1 process.
run batch 2 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$ffc" env
has batch "Slurm job 1 has 3 task(s) (SLURM_NTASKS=3) but this MPI world has 1 rank(s)"
has batch "srun --mpi=pmix"
# srun without PMI: each of the 3 tasks is a world of 1.
run nopmi 2 SLURM_JOB_ID=1 SLURM_NTASKS=3 SLURM_STEP_NUM_TASKS=3 SLURM_PROCID=0 -- "$ffc" env
has nopmi "(SLURM_STEP_NUM_TASKS=3) but this MPI world has 1 rank(s)"
has nopmi "without wiring them into one MPI job"
run single 2 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$ffc" env --backend single
# ffc train stops before it writes anything.
run train 2 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$ffc" train --set rec=synthetic \
  --set num_classes=100 --set network=tiny --set image_size=16 --set output="$tmp/run"
has train "but this MPI world has 1 rank(s)"
[ ! -e "$tmp/run/checkpoints" ] || fail "train: wrote an output folder before the check"
# Only the launcher's rank 0 reports, not every one of the single-rank worlds.
run rank1 2 SLURM_JOB_ID=1 SLURM_NTASKS=3 SLURM_STEP_NUM_TASKS=3 SLURM_PROCID=1 -- "$ffc" env
[ "$(grep -c "MPI world has" "$tmp/rank1.log")" -eq 0 ] || fail "rank1: a rank other than 0 reported"

# Consistent or not applicable: no error.
run match 0 SLURM_JOB_ID=1 SLURM_NTASKS=1 -- "$ffc" env
has match "collectives: ok"
run nojob 0 SLURM_NTASKS=3 -- "$ffc" env
run mpirun 0 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$mpiexec" -n 2 "$ffc" env
has mpirun "world: 2 rank(s)"
run config 0 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$ffc" config --set num_classes=10
run plan 0 SLURM_JOB_ID=1 SLURM_NTASKS=3 -- "$ffc" plan --method ffc --num-classes 1000 --ranks 2

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "ok: a world of 1 rank under SLURM_NTASKS=3 is refused (exit 2) for env and train; mpirun, matching counts and world-less commands pass"
