#!/usr/bin/env bash
# `ffc model list | info | export`: output, JSON, exit statuses and messages.
# usage: model_cli_test.sh FFC
set -u
ffc=$1
# shellcheck source=../support/harness.sh
source "$(dirname "$0")/../support/harness.sh"
harness_start model_cli_test

run list 0 "$ffc" model list
for name in r18 r34 r50 r100 r200 mbf mbf_large tiny small; do has list.out "^$name "; done

run info 0 "$ffc" model info tiny
has info.out "parameters                572,272"
has info.out "trainable parameters      571,760"
has info.out "image_size                32"
has info.out "GFLOPs per image          0.0183"

run json 0 "$ffc" model info small --embedding-size 128 --image-size 32 --json
/usr/bin/python3 - "$tmp/json.out" <<'PY' || fail "info --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["network"] == "small" and j["embedding_size"] == 128 and j["image_size"] == 32, j
assert j["parameters"] > j["trainable_parameters"] > 0, j
assert j["flops_per_image"] > 0 and abs(j["gflops_per_image"] - j["flops_per_image"] / 1e9) < 1e-9
assert j["activation_bytes_per_image"] > 0
PY

run unknown 2 "$ffc" model info r51
has unknown.err "unknown network 'r51'"
has unknown.err "r18, r34, r50, r100, r200, mbf, mbf_large, tiny, small"
run badsize 2 "$ffc" model info mbf --image-size 64
has badsize.err "image_size 112"
run noname 2 "$ffc" model info

run export 0 "$ffc" model export tiny --out "$tmp/tiny.h5" --seed 9 --embedding-size 64
has export.out "network tiny, embedding_size 64, image_size 32, seed 9"
run export2 0 "$ffc" model export tiny --out "$tmp/tiny2.h5" --seed 9 --embedding-size 64
cmp -s <(h5dump -d fc.weight "$tmp/tiny.h5" | tail -n +3) \
  <(h5dump -d fc.weight "$tmp/tiny2.h5" | tail -n +3) || fail "same seed, different weights"
run nodir 1 "$ffc" model export tiny --out "$tmp/no/such/dir/x.h5"
has nodir.err "does not exist"

harness_finish
