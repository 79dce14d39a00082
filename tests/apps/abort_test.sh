#!/usr/bin/env bash
# One of 2 ranks throws; the job must exit non-zero within seconds (not hang), and the log must
# name the error, the rank and the host.
# usage: abort_test.sh MPIEXEC HELPER
set -u
mpiexec=$1 helper=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
timeout 60 "$mpiexec" -n 2 "$helper" 1 >"$out" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$out"
echo "abort_test: exit status $rc after ${elapsed_ms} ms"
fail() { echo "abort_test: FAIL: $*"; exit 1; }
[ "$rc" -ne 124 ] || fail "the job hung (killed by the 60 s timeout)"
[ "$rc" -ne 0 ] || fail "the job exited 0 although rank 1 failed"
grep -q "deliberate failure on rank 1" "$out" || fail "the error message is not in the output"
grep -q "rank 1/2" "$out" || fail "the message does not name the failing rank"
echo "abort_test: ok"
