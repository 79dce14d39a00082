# Shared by the checkpoint end-to-end tests: a tiny training configuration and helpers.
# Sourced with MPIEXEC and FFC set.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "ok"
}
# train NP OUTPUT [--set ...] [--resume ...]: runs ffc train at NP ranks; status in $rc, log in
# $tmp/last.log.
train() {
  local np=$1 out=$2
  shift 2
  "$MPIEXEC" --bind-to none -n "$np" "$FFC" train --set rec=synthetic --set num_classes=1200 \
    --set network=tiny --set image_size=16 --set embedding_size=32 --set batch_size=8 \
    --set num_epoch=2 --set frequent=10 --set val_pairs=0 --set val_identities=0 \
    --set num_workers=1 --set output="$out" "$@" >"$tmp/last.log" 2>&1
  rc=$?
}
show_log() { sed 's/^/  | /' "$tmp/last.log" | tail -n "${1:-15}"; }
