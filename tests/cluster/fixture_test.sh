#!/usr/bin/env bash
# The cluster fixture leaves nothing behind: a test that fails half-way and a test shell killed
# with SIGKILL (a test runner's timeout) while a 2-node job step runs. Afterwards no process is
# left in the cluster's namespaces (so its network stacks, veths, bridge and node mounts are gone
# too), no slurmctld, slurmd or munged of it runs, nothing of it is mounted, and its folder is
# removed.
# usage: fixture_test.sh
here=$(cd "$(dirname "$0")" && pwd)
source "$here/fixture.sh"
cluster_skip_unless_available
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# child HOW: a test shell that starts a 2-node cluster, records its folder and namespaces, starts
# a job step on both nodes and then fails (HOW=fail) or waits to be killed (HOW=kill).
child() {
  bash -c '
    source "$1/fixture.sh"
    cluster_start 2 >"$2/start.log" 2>&1 || exit 9
    cat "$SLURM_DIR"/*.netns >"$2/netns"
    echo "$SLURM_DIR" >"$2/dir"
    srun -N 2 sleep 600 >/dev/null 2>&1 &
    for ((i = 0; i < 100; ++i)); do
      [ "$(squeue -h -t R | wc -l)" -ge 1 ] && break
      sleep 0.2
    done
    echo running >"$2/ready"
    # Until the test has seen the running cluster: then fail (HOW=fail) or wait to be killed.
    for ((i = 0; i < 600; ++i)); do [ -e "$2/go" ] && break; sleep 0.1; done
    [ "$3" = fail ] && exit 1
    sleep 600' child "$here" "$tmp" "$1" </dev/null >"$tmp/child.log" 2>&1 &
  child_pid=$!
}

# left_behind: what of the cluster recorded in $tmp still exists, on stdout.
left_behind() {
  local dir ns
  dir=$(cat "$tmp/dir")
  ns=$(cat "$tmp/netns")
  find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
    awk 'NR == FNR {keep[$0] = 1; next} $2 in keep {print "process " $1}' <(echo "$ns") -
  local f cmd
  for f in /proc/[0-9]*/cmdline; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
    [[ "$cmd" == *"$dir"* ]] && [[ "$cmd" != *fixture_test* ]] && echo "daemon ${f%/cmdline}: $cmd"
  done
  grep -F -- "$dir" /proc/self/mountinfo | sed 's/^/mount /'
  [ -e "$dir" ] && echo "folder $dir"
  return 0
}

check() { # check WHAT SECONDS: nothing left within SECONDS
  local what=$1 i left
  for ((i = 0; i < $2 * 2; ++i)); do
    left=$(left_behind)
    [ -z "$left" ] && break
    sleep 0.5
  done
  if [ -n "$left" ]; then
    fail "$what: left behind: $left"
  else
    echo "$what: nothing left of $(cat "$tmp/dir") ($(wc -l <"$tmp/netns") namespaces) after $((i / 2)) s"
  fi
}

for how in fail kill; do
  rm -f "$tmp"/{dir,netns,ready,go}
  child "$how"
  for ((i = 0; i < 300; ++i)); do
    [ -s "$tmp/ready" ] && break
    kill -0 "$child_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ ! -s "$tmp/ready" ]; then
    fail "$how: the cluster did not start"
    cat "$tmp/child.log" "$tmp/start.log" 2>/dev/null | tail -n 20
    kill -KILL "$child_pid" 2>/dev/null
    continue
  fi
  if [ "$(left_behind | grep -c '^daemon')" -lt 4 ] || [ "$(left_behind | grep -c '^process')" -lt 3 ]; then
    fail "$how: the running cluster is not seen (the check would pass vacuously)"
    left_behind | head -n 5
  fi
  touch "$tmp/go"
  if [ "$how" = kill ]; then
    disown "$child_pid"
    kill -KILL "$child_pid"
    check "a test shell killed with SIGKILL during a 2-node job step" 60
  else
    wait "$child_pid"
    check "a test that failed (exit 1) during a 2-node job step" 30
  fi
done
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo ok
