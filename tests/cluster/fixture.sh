# shellcheck shell=bash
# A multi-node Slurm cluster on this one machine, for tests: every node is a set of Linux
# namespaces made by the test, with real Slurm daemons from Debian's packages inside.
#
#   head     its own network stack (UTS name "head") holding the cluster's bridge br0 at
#            $CLUSTER_NET.254: slurmctld runs there, and the test's Slurm commands (sbatch, srun,
#            squeue, ...) are run there by wrappers of the same names (a login node);
#   n1..nN   each its own hostname, network stack (a veth pair into the head's bridge, address
#            $CLUSTER_NET.i) and mount namespace with its own tmpfs /tmp and /dev/shm, so that
#            nothing node-local is shared by accident; one slurmd -N nI each.
#
# Every address exists only inside these namespaces: no interface, route or address of the
# machine's own network stack is touched, and no daemon listens in it. The cluster folder
# CLUSTER_DIR (configuration, state, logs, munge socket) and the shared filesystem of the jobs,
# CLUSTER_SHARED (data, checkpoints, job output), live under /var/tmp, which every node sees at
# the same path, as a cluster's shared filesystem. Paths under /tmp or /dev/shm that the test
# names to cluster_start (its build and source trees, when a clone lives there) are mounted back
# into every node at the same path.
#
# Built from the single-node fixture (tests/slurm/fixture.sh): the same folder, munge, watchdog,
# configuration lines, daemon stop by PID and log dump. cluster_stop (on exit, on failure, and
# from the watchdog when the test shell is killed) stops the daemons by PID, kills every process
# left in the namespaces the test made (they are its own: job steps, ranks), ends the namespaces'
# holders, and checks that no process, namespace or mount of the cluster remains.
#
#   source tests/cluster/fixture.sh
#   cluster_start 3 "$SRC" "$(dirname "$FFC")"   # 3 nodes (default CLUSTER_NODES, 2)
#   sbatch -N 2 ...                               # runs in the head's namespaces
#   cluster_on n1 CMD...                          # CMD on node n1 (its network, name, /tmp)
#   cluster_net_bytes n1                          # bytes sent and received on n1's eth0
#
# It exits the test with status 77 (skip) where it cannot run: no Slurm or munge, not root, or
# no permission to create namespaces. CLUSTER_FIXTURE_GPUS=G: every node announces G (pretend)
# GPUs, as SLURM_FIXTURE_GPUS does on one node. CLUSTER_NODE_CPUS=C: every node announces C CPUs
# (default: the machine's; a node then takes jobs of up to C tasks without --overcommit).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../slurm/fixture.sh"

# The cluster's network: a /24 that exists only inside the namespaces of one test.
CLUSTER_NET=10.77.0
SLURM_STOP_FUNCTION=cluster_stop
SLURM_PER_NODE_FILES=1

cluster_log() { echo "cluster-fixture: $*"; }

cluster_skip_unless_available() {
  slurm_skip_unless_available
  local c
  for c in unshare nsenter ip setsid; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || {
      echo "SKIP: no $c (util-linux, iproute2)"
      exit 77
    }
  done
  if ! unshare --net --uts --mount true 2>/dev/null; then
    echo "SKIP: cannot create network, UTS and mount namespaces here (needs CAP_SYS_ADMIN and" \
      "CAP_NET_ADMIN)"
    exit 77
  fi
}

# The Slurm commands of the test run on the login node (the head's network and name), where the
# controller is reachable; they see the machine's files (the head has no mount namespace).
cluster_login() { nsenter --target "$(cat "$SLURM_DIR/head.pid")" --net --uts -- "$@"; }
for _c in sbatch srun salloc squeue scontrol sinfo scancel sacct; do
  eval "$_c() { cluster_login $_c \"\$@\"; }"
done
unset _c

# cluster_node_pid NODE: the PID of the process that holds the node's namespaces.
cluster_node_pid() { cat "$SLURM_DIR/$1.pid"; }
# cluster_on NODE CMD...: CMD in the node's namespaces (network, hostname, mounts).
cluster_on() {
  local node=$1
  shift
  nsenter --target "$(cluster_node_pid "$node")" --net --uts --mount -- "$@"
}
# cluster_net_bytes NODE: "SENT RECEIVED", the bytes through the node's eth0 so far.
cluster_net_bytes() {
  awk -F'[: ]+' '$2 == "eth0" {print $11, $3}' "/proc/$(cluster_node_pid "$1")/net/dev"
}
# cluster_pids NODE [NAME]: PIDs of the processes on the node (in its network namespace), the
# holder excepted; with NAME only those whose executable is called NAME.
cluster_pids() {
  local ns holder p
  ns=$(cat "$SLURM_DIR/$1.netns")
  holder=$(cluster_node_pid "$1")
  find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
    awk -v ns="$ns" '$2 == ns {split($1, p, "/"); print p[3]}' | while read -r p; do
    [ "$p" = "$holder" ] && continue
    [ -z "${2:-}" ] || [ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = "$2" ] || continue
    echo "$p"
  done
}
# cluster_nodes: n1 ... nN.
cluster_nodes() { cat "$SLURM_DIR/nodes"; }

# A holder: a process in new namespaces that sets them up (hostname, lo up; for a node its own
# /tmp and /dev/shm) and then sleeps; everything of the node is started inside its namespaces
# with nsenter. Its PID goes to $SLURM_DIR/NAME.pid, its network namespace to NAME.netns.
# cluster_holder NAME MOUNTS [PATH...]: MOUNTS 1 for a node (a mount namespace with its own /tmp
# and /dev/shm; PATHs under them are mounted back at the same place), 0 for the head.
cluster_holder() {
  local name=$1 mounts=$2 flags="--net --uts" i pid
  shift 2
  [ "$mounts" = 1 ] && flags="$flags --mount --propagation private"
  # shellcheck disable=SC2086
  unshare $flags -- bash -c '
    set -e
    name=$1 mounts=$2 ready=$3
    shift 3
    hostname "$name"
    ip link set lo up
    if [ "$mounts" = 1 ]; then
      fds=() keep=()
      for p in "$@"; do
        case "$p" in
          /tmp/* | /dev/shm/*) exec {fd}<"$p"; fds+=("$fd"); keep+=("$p") ;;
        esac
      done
      mount -t tmpfs -o mode=1777,size=1g "tmp-$name" /tmp
      mount -t tmpfs -o mode=1777,size=1g "shm-$name" /dev/shm
      for i in "${!keep[@]}"; do
        mkdir -p "${keep[$i]}"
        mount --no-canonicalize --bind "/proc/self/fd/${fds[$i]}" "${keep[$i]}"
      done
    fi
    echo ok >"$ready"
    exec sleep infinity' holder "$name" "$mounts" "$SLURM_DIR/$name.ready" "$@" \
    </dev/null >>"$SLURM_DIR/$name.holder.log" 2>&1 &
  pid=$!
  disown "$pid" # killed by cluster_stop; no job notice from this shell
  echo "$pid" >"$SLURM_DIR/$name.pid"
  for ((i = 0; i < 100; ++i)); do
    if [ -s "$SLURM_DIR/$name.ready" ]; then
      # Never the machine's own network namespace: cluster_stop kills what is in these.
      if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/$$/ns/net)" ]; then
        cluster_log "$name is not in a network namespace of its own"
        return 1
      fi
      readlink "/proc/$pid/ns/net" >"$SLURM_DIR/$name.netns"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cluster_log "the namespaces of $name were not set up: $(cat "$SLURM_DIR/$name.holder.log")"
  return 1
}

# cluster_start [N] [PATH...]: N nodes (CLUSTER_NODES, default 2) and the head, Slurm up and every
# node idle. Exports SLURM_CONF; sets SLURM_DIR (= CLUSTER_DIR) and CLUSTER_SHARED.
cluster_start() {
  local n=${1:-${CLUSTER_NODES:-2}}
  shift || true
  cluster_skip_unless_available
  mkdir -p /var/tmp
  slurm_prepare /var/tmp "${BASH_SOURCE[0]}" || return 1
  CLUSTER_DIR=$SLURM_DIR
  CLUSTER_SHARED=$CLUSTER_DIR/shared
  mkdir -p "$CLUSTER_SHARED"
  local S=$SLURM_DIR i node head cpus mem_mib gres_types="" gres=""
  cluster_holder head 0 || return 1
  head=$(cat "$S/head.pid")
  nsenter --target "$head" --net -- sh -ec "
    ip link add br0 type bridge
    ip addr add $CLUSTER_NET.254/24 dev br0
    ip link set br0 up"
  : >"$S/nodes"
  for ((i = 1; i <= n; ++i)); do
    node=n$i
    cluster_holder "$node" 1 "$@" || return 1
    # Both ends are made inside the test's namespaces: vnI on the head's bridge, eth0 on the node.
    nsenter --target "$head" --net -- sh -ec "
      ip link add vn$i type veth peer name eth0 netns $(cluster_node_pid "$node")
      ip link set vn$i master br0
      ip link set vn$i up"
    nsenter --target "$(cluster_node_pid "$node")" --net -- sh -ec "
      ip addr add $CLUSTER_NET.$i/24 dev eth0
      ip link set eth0 up"
    echo "$node" >>"$S/nodes"
    mkdir -p "$S/spool/$node"
  done

  cpus=${CLUSTER_NODE_CPUS:-$(nproc)}
  mem_mib=$(awk -v n="$n" '/^MemTotal:/ {print int($2 / 1024 * 0.8 / n)}' /proc/meminfo)
  if [ "${CLUSTER_FIXTURE_GPUS:-0}" -gt 0 ]; then
    # slurmd drops GPUs without device files: each is a link to /dev/null; nothing runs on them.
    gres_types="GresTypes=gpu
"
    gres="Gres=gpu:$CLUSTER_FIXTURE_GPUS "
    echo "Name=gpu Count=$CLUSTER_FIXTURE_GPUS File=$S/gpu[0-$((CLUSTER_FIXTURE_GPUS - 1))]" >"$S/gres.conf"
    for ((i = 0; i < CLUSTER_FIXTURE_GPUS; ++i)); do ln -s /dev/null "$S/gpu$i"; done
  fi
  {
    slurm_conf_common head "$CLUSTER_NET.254" 6817 6818
    # The nodes share the machine's cores: each claims them all (or CLUSTER_NODE_CPUS, which
    # slurmd accepts above what it finds only with config_overrides).
    [ -z "${CLUSTER_NODE_CPUS:-}" ] || echo "SlurmdParameters=config_overrides"
    for ((i = 1; i <= n; ++i)); do
      echo "${gres_types}NodeName=n$i NodeAddr=$CLUSTER_NET.$i CPUs=$cpus RealMemory=$mem_mib ${gres}State=UNKNOWN"
      gres_types=""
    done
    echo "PartitionName=debug Nodes=n[1-$n] Default=YES MaxTime=INFINITE State=UP"
  } >"$S/slurm.conf"
  export SLURM_CONF=$S/slurm.conf
  # Jobs inherit this environment (sbatch exports it). Open MPI's ranks busy-poll while they wait;
  # the nodes of this cluster share the machine's cores, so a rank polling on one node takes the
  # core a rank of another node computes on (a 2-node step spent 280 ms in collectives instead
  # of 20, a 4.7 MiB save 40 s instead of 0.7). Ranks on a real node have their cores to
  # themselves; ffc sets this by itself where a node runs more ranks than it has cores
  # (docs/cluster.md).
  export OMPI_MCA_mpi_yield_when_idle=1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  nsenter --target "$head" --net --uts -- /usr/sbin/slurmctld -f "$SLURM_CONF" || {
    cluster_log "slurmctld did not start"
    slurm_dump_logs
    return 1
  }
  for node in $(cluster_nodes); do
    cluster_on "$node" /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node" || {
      cluster_log "slurmd of $node did not start"
      slurm_dump_logs
      return 1
    }
  done
  slurm_wait_idle "$n" || return 1
  cluster_log "Slurm $(sinfo -V | awk '{print $2}') up in $S: head $CLUSTER_NET.254," \
    "nodes $(cluster_nodes | tr '\n' ' ')($CLUSTER_NET.1-$n) with $cpus CPU(s) each;" \
    "shared folder $CLUSTER_SHARED"
}

# The network namespaces of the cluster (as "net:[inode]"), recorded when they were made.
cluster_namespaces() { cat "$SLURM_DIR"/*.netns 2>/dev/null; }

# PIDs of every process in the cluster's network namespaces (holders included).
cluster_processes() {
  local ns
  ns=$(cluster_namespaces | grep -vxF -- "$(readlink /proc/$$/ns/net)")
  [ -n "$ns" ] || return 0
  find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
    awk 'NR == FNR {keep[$0] = 1; next} $2 in keep {split($1, p, "/"); print p[3]}' \
      <(echo "$ns") -
}

# Stops everything the fixture started; returns 1 when something is left.
cluster_stop() {
  [ -n "${SLURM_DIR:-}" ] && [ -d "$SLURM_DIR" ] || return 0
  [ -s "$SLURM_DIR/head.pid" ] && slurm_stop
  local pids i
  # What is left in the namespaces is the test's own (job steps, ranks, holders): kill it.
  for ((i = 0; i < 50; ++i)); do
    pids=$(cluster_processes)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  if [ -n "$(cluster_processes)" ]; then
    cluster_log "FAIL: processes left in the cluster's namespaces: $(cluster_processes | tr '\n' ' ')"
    return 1
  fi
  # The namespaces (and with them the veths, the bridge and the nodes' mounts) are gone with
  # their last process; nothing of the cluster may be mounted in the machine's own namespace.
  if grep -qF -- "$SLURM_DIR" /proc/self/mountinfo; then
    cluster_log "FAIL: a mount of the cluster remains: $(grep -F -- "$SLURM_DIR" /proc/self/mountinfo)"
    return 1
  fi
  return 0
}
