#!/usr/bin/env bash
# Starts the test cluster of tests/cluster/fixture.sh by hand, to try a job script on several
# (namespaced) nodes before submitting it for real, and stops it (every daemon, namespace and
# mount) when the shell or the command ends.
#
#   tests/cluster/start.sh [--nodes N] [--gpus G] [--keep] [-- COMMAND...]
#
# Without a command: an interactive shell on the cluster's login node (its network and name;
# sbatch, srun, squeue, ... reach the cluster's controller), in this folder, with SLURM_CONF set
# and CLUSTER_SHARED naming the shared folder that every node sees at the same path. With a
# command: runs it there and stops the cluster. --gpus G: every node announces G pretend GPUs.
# --keep: keep the cluster's folder (logs, state, shared folder) after stopping.
# Needs root (namespaces, the daemons) and the slurm-wlm and munge packages (tools/bootstrap).
set -u
nodes=2
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --gpus) export CLUSTER_FIXTURE_GPUS=$2; shift 2 ;;
    --keep) export SLURM_KEEP=1; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "start.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/../.." && pwd)
source "$here/tests/cluster/fixture.sh"
cluster_start "$nodes" "$here" || exit 1
export CLUSTER_SHARED
if [ $# -eq 0 ]; then
  echo "cluster: $(cluster_nodes | tr '\n' ' ')up; shared folder $CLUSTER_SHARED; 'exit' stops it"
  cluster_login env PS1='[cluster \W]\$ ' bash --norc -i
else
  cluster_login "$@"
fi
