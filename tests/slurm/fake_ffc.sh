#!/usr/bin/env bash
# Stands in for ffc in the job script tests.
# - `bench scaling ...` (sweep.sbatch): records its arguments in <out>/args.txt, runs `hostname`
#   through the launcher it was given (with {ranks} replaced by the first rank count), and writes
#   a one-row scaling.csv.
# - `train ...` (train-gpu.sbatch): says where this task runs, its node-local rank and which GPUs
#   it sees, then runs $FFC_REAL train ....
set -eu
if [ "$1" = train ]; then
  echo "task ${SLURM_PROCID:-?} on $(hostname) local ${SLURM_LOCALID:-?} sees GPUs" \
    "${CUDA_VISIBLE_DEVICES-unset}"
  exec "$FFC_REAL" "$@"
fi
[ "$1 $2" = "bench scaling" ] || { echo "fake ffc: unexpected command $*" >&2; exit 2; }
shift 2
args=("$@")
methods='' classes='' ranks='' launcher='' out=''
while [ $# -gt 0 ]; do
  case "$1" in
    --methods) methods=$2; shift 2 ;;
    --classes) classes=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --launcher) launcher=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) shift ;;
  esac
done
mkdir -p "$out"
printf '%s\n' "${args[@]}" >"$out/args.txt"
r=${ranks%%,*}
${launcher//\{ranks\}/$r} hostname >"$out/launched.txt"
printf 'method,classes,ranks,status,images_per_s,peak_rss_mib\n%s,%s,%s,ok,100,10\n' \
  "$methods" "$classes" "$r" >"$out/scaling.csv"
