# shellcheck shell=bash
# A single-node Slurm for tests, from Debian's packages (munge, slurmctld, slurmd): its
# configuration, state, logs and munge socket live in a fresh temporary folder, on free ports, and
# its daemons are stopped by the PIDs in their pid files when the test exits, also on failure,
# also when the test shell is killed (a watchdog outside its process group does it then).
#
# Source it from a test, then call slurm_start. It exits the test with status 77 (ctest's
# SKIP_RETURN_CODE) when the Slurm or munge packages are missing or the test does not run as
# root (the daemons are started as root and munged as its own user).
#
#   source tests/slurm/fixture.sh
#   slurm_start                  # exports SLURM_CONF; sets SLURM_DIR (logs and state);
#                                # SLURM_FIXTURE_GPUS=G first: a node with G (pretend) GPUs
#   jobid=$(sbatch --parsable ...)
#   slurm_wait_job "$jobid" 600  # until it leaves the queue; its final state in $job_state
#   slurm_dump_logs              # the daemons' logs, for a failure report
#
# Tests that want something of their own on exit define slurm_on_exit before the exit.
# The multi-node fixture (tests/cluster/fixture.sh) is built from the same pieces: slurm_prepare,
# slurm_conf_common, slurm_wait_idle, slurm_stop_daemon, slurm_stop and slurm_dump_logs.
set -u

slurm_log() { echo "slurm-fixture: $*"; }

slurm_skip_unless_available() {
  local missing=() c
  for c in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo scancel srun runuser; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$c")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    echo "SKIP: the Slurm and munge packages are missing (no ${missing[*]});" \
      "tools/bootstrap installs them (slurm-wlm, munge)"
    exit 77
  fi
  if ! id munge >/dev/null 2>&1; then
    echo "SKIP: no 'munge' user (the munge package is not set up)"
    exit 77
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: starting slurmctld, slurmd and munged needs root"
    exit 77
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on.
slurm_free_port() {
  local p i
  for ((i = 0; i < 200; ++i)); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Stops one daemon by the PID in its pid file, if that PID still runs that program: TERM, up to
# 10 s, then KILL.
slurm_stop_daemon() {
  local pidfile=$1 exe=$2 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  # Debian installs the daemons through alternatives (slurmd -> slurmd-wlm): compare real paths.
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(realpath "$exe")" ] || {
    slurm_log "not stopping PID $pid from $pidfile: it is not $exe any more"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; ++i)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
}

# The pid files of the daemons: one slurmd per node (slurmd.pid, or slurmd-NODE.pid where several
# run on this machine), slurmctld, munged.
slurm_pid_files() {
  local f
  for f in "$SLURM_DIR"/slurmd*.pid; do [ -e "$f" ] && echo "$f"; done
  echo "$SLURM_DIR/slurmctld.pid"
  echo "$SLURM_DIR/munge/munged.pid"
}

# Cancels what is still queued or running (its processes are the job's, not the daemons'), waits
# for the queue to drain (bounded), then stops every slurmd, slurmctld and munged.
slurm_stop() {
  [ -n "${SLURM_DIR:-}" ] && [ -d "$SLURM_DIR" ] || return 0
  if [ -s "$SLURM_DIR/slurmctld.pid" ] && squeue -h >/dev/null 2>&1; then
    local jobs i
    jobs=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel --full $jobs 2>/dev/null
      for ((i = 0; i < 60; ++i)); do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  # Each daemon takes a second or two to stop: the slurmd together, then slurmctld with munged.
  local f stoppers=()
  for f in "$SLURM_DIR"/slurmd*.pid; do
    [ -e "$f" ] || continue
    slurm_stop_daemon "$f" /usr/sbin/slurmd &
    stoppers+=($!)
  done
  [ ${#stoppers[@]} -eq 0 ] || wait "${stoppers[@]}"
  slurm_stop_daemon "$SLURM_DIR/slurmctld.pid" /usr/sbin/slurmctld &
  stoppers=($!)
  slurm_stop_daemon "$SLURM_DIR/munge/munged.pid" /usr/sbin/munged
  wait "${stoppers[@]}"
  return 0
}

# True when none of the PIDs in the pid files still runs its daemon.
slurm_daemons_stopped() {
  local f pid
  while read -r f; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      */slurmd* | */slurmctld* | */munged*) return 1 ;;
    esac
  done < <(slurm_pid_files)
  return 0
}

slurm_dump_logs() {
  local f
  for f in "$SLURM_DIR/slurmctld.log" "$SLURM_DIR"/slurmd*.log "$SLURM_DIR/munge/munged.log"; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 60 lines)"
    tail -n 60 "$f" | sed 's/^/  | /'
  done
}

# What the EXIT trap and the watchdog stop: the daemons, by default; the multi-node fixture
# stops its namespaces too (SLURM_STOP_FUNCTION).
SLURM_STOP_FUNCTION=${SLURM_STOP_FUNCTION:-slurm_stop}

slurm_exit() {
  local rc=$?
  trap - EXIT
  if declare -F slurm_on_exit >/dev/null; then
    slurm_on_exit "$rc"
  fi
  "$SLURM_STOP_FUNCTION" || [ "$rc" -ne 0 ] || rc=1
  if ! slurm_daemons_stopped; then
    slurm_log "FAIL: a daemon is still running after stopping it"
    [ "$rc" -ne 0 ] || rc=1
  fi
  if [ -n "${SLURM_DIR:-}" ] && [ -d "$SLURM_DIR" ]; then
    if [ -n "${SLURM_KEEP:-}" ]; then
      touch "$SLURM_DIR/.kept" # the watchdog leaves it too
      slurm_log "kept $SLURM_DIR"
    else
      rm -rf "$SLURM_DIR"
    fi
  fi
  exit "$rc"
}

# slurm_prepare BASE FIXTURE_FILE: the temporary folder SLURM_DIR under BASE with its munge key,
# the EXIT trap, the watchdog (which sources FIXTURE_FILE and calls SLURM_STOP_FUNCTION when this
# shell dies without running its trap) and munged.
slurm_prepare() {
  local base=$1 fixture=$2
  slurm_skip_unless_available
  SLURM_DIR=$(mktemp -d "$base/ffc-slurm.XXXXXX")
  trap slurm_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  local S=$SLURM_DIR
  chmod 0755 "$S"
  mkdir -p "$S/state" "$S/spool" "$S/munge"
  chown munge:munge "$S/munge"
  chmod 0755 "$S/munge"
  # A key of our own, so nothing outside the temporary folder changes.
  mungekey --create --keyfile="$S/munge/munge.key" >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$S/munge/munge.key" bs=128 count=1 status=none
  chown munge:munge "$S/munge/munge.key"
  chmod 0400 "$S/munge/munge.key"

  # The watchdog: when this shell dies without running its EXIT trap (SIGKILL from a test
  # runner's timeout), it stops what the fixture started and removes the folder.
  setsid bash -c '
    while kill -0 '"$$"' 2>/dev/null; do sleep 2; done
    [ -d "$1" ] && [ ! -e "$1/.kept" ] || exit 0
    source "$2"; SLURM_DIR=$1; export SLURM_CONF=$1/slurm.conf
    "$SLURM_STOP_FUNCTION"; rm -rf "$1"' watchdog "$S" "$(realpath "$fixture")" </dev/null \
    >/dev/null 2>&1 &

  runuser -u munge -- /usr/sbin/munged --socket="$S/munge/munge.socket.2" \
    --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" \
    --seed-file="$S/munge/munged.seed" --key-file="$S/munge/munge.key" || {
    slurm_log "munged did not start"
    slurm_dump_logs
    return 1
  }
}

# slurm_conf_common CONTROLLER_HOST CONTROLLER_ADDR CTLD_PORT SLURMD_PORT: the slurm.conf lines
# every fixture shares, on stdout. Pid, log and spool paths carry %n (the node's name) where
# several slurmd run on this machine (SLURM_PER_NODE_FILES=1).
slurm_conf_common() {
  local S=$SLURM_DIR n=""
  [ "${SLURM_PER_NODE_FILES:-0}" = 1 ] && n="-%n"
  # cred_expire: a requeued job is held back this long (Slurm's default 120 s); 10 s keeps the
  # requeue tests short.
  cat <<CONF
ClusterName=ffctest
SlurmctldHost=$1($2)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.socket.2,cred_expire=10
SlurmctldPort=$3
SlurmdPort=$4
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool${n:+/%n}
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd$n.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd$n.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=${SLURM_SLURMD_TIMEOUT:-30}
InactiveLimit=0
KillWait=5
MinJobAge=300
CONF
}

# slurm_wait_idle N: until N nodes are idle (30 s at most).
slurm_wait_idle() {
  local want=$1 i
  for ((i = 0; i < 300; ++i)); do
    [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" -ge "$want" ] && return 0
    sleep 0.1
  done
  slurm_log "not $want idle node(s) after 30 s: $(sinfo -h -N -o '%N %T %E' 2>&1 | tr '\n' ';')"
  slurm_dump_logs
  return 1
}

slurm_start() {
  slurm_prepare "${TMPDIR:-/tmp}" "${BASH_SOURCE[0]}" || return 1
  local S=$SLURM_DIR host cpus mem_mib ctld_port d_port i
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  ctld_port=$(slurm_free_port)
  d_port=$(slurm_free_port)
  while [ "$d_port" = "$ctld_port" ]; do d_port=$(slurm_free_port); done
  # SLURM_FIXTURE_GPUS=G: the node announces G GPUs so that GPU job scripts can be submitted.
  # slurmd drops GPUs without device files, so each is a link to /dev/null; nothing runs on them.
  local gres_types="" gres=""
  if [ "${SLURM_FIXTURE_GPUS:-0}" -gt 0 ]; then
    gres_types="GresTypes=gpu
"
    gres="Gres=gpu:$SLURM_FIXTURE_GPUS "
    echo "NodeName=$host Name=gpu Count=$SLURM_FIXTURE_GPUS File=$S/gpu[0-$((SLURM_FIXTURE_GPUS - 1))]" >"$S/gres.conf"
    for ((i = 0; i < SLURM_FIXTURE_GPUS; ++i)); do ln -s /dev/null "$S/gpu$i"; done
  fi
  {
    slurm_conf_common "$host" 127.0.0.1 "$ctld_port" "$d_port"
    echo "${gres_types}NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib ${gres}State=UNKNOWN"
    echo "PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  } >"$S/slurm.conf"
  export SLURM_CONF=$S/slurm.conf
  /usr/sbin/slurmctld -f "$SLURM_CONF" || { slurm_log "slurmctld did not start"; slurm_dump_logs; return 1; }
  /usr/sbin/slurmd -f "$SLURM_CONF" || { slurm_log "slurmd did not start"; slurm_dump_logs; return 1; }
  slurm_wait_idle 1 || return 1
  slurm_log "Slurm $(sinfo -V | awk '{print $2}') up in $S: node $host, $cpus CPU(s), ports $ctld_port/$d_port"
}
# slurm_wait_job JOBID SECONDS: waits until the job has left the queue (not pending, running,
# requeued, completing, ...); sets job_state (e.g. COMPLETED, FAILED, TIMEOUT) and job_exit
# ("0:0"). Returns 1 when the time is up.
slurm_wait_job() {
  local id=$1 secs=$2 i line
  job_state='' job_exit=''
  for ((i = 0; i < secs * 2; ++i)); do
    line=$(scontrol -o show job "$id" 2>/dev/null)
    job_state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$line")
    job_exit=$(sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' <<<"$line")
    case "$job_state" in
      PENDING | RUNNING | REQUEUED | REQUEUE_HOLD | REQUEUE_FED | COMPLETING | CONFIGURING | \
        SUSPENDED | RESIZING | SIGNALING | STAGE_OUT | "") ;;
      *) return 0 ;;
    esac
    sleep 0.5
  done
  return 1
}
