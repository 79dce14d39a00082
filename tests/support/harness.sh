# shellcheck shell=bash
# The shell tests' harness (source it after `set -u`): a temporary folder removed at exit, failures
# counted by name, commands run with their expected exit status, and the summary line.
#   source "$(dirname "$0")/../support/harness.sh"; harness_start NAME
#   run NAME STATUS CMD...   runs CMD, its stdout/stderr in $tmp/NAME.{out,err}; shown on a wrong status
#   has FILE PATTERN         FILE (under $tmp) matches the grep pattern
#   fail MESSAGE             counts a failure
#   harness_finish           "NAME: all checks passed" or the count; exits 0 or 1

harness_start() {
  harness_name=$1
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  failures=0
}

fail() {
  echo "$harness_name: FAIL: $*"
  failures=$((failures + 1))
}

run() {
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit status $rc, expected $want"
    sed 's/^/  | /' "$tmp/$name.out" "$tmp/$name.err"
  fi
}

has() { grep -q -- "$2" "$tmp/$1" || fail "$1 lacks '$2'"; }

harness_finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$harness_name: $failures failure(s)"
    exit 1
  fi
  echo "$harness_name: all checks passed"
  exit 0
}
