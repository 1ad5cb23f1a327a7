#!/usr/bin/env bash
# Peak memory and time per training iteration against the dimension d and the number of time
# steps N, with the recorded gradient pass and with train.constant_memory (method.md §4).
# Target: N(0.3, 0.8 I) in d dimensions (diagonal, so the target itself is O(d)); network
# width 256 x 2, M = 256 paths, one rank, 1 thread per run.
#
#   bench/memory.sh [BUILD_DIR]      (default: build; writes a table to stdout)
#
# Environment: DIMS (default "1000 3000 10000"), STEPS (default "25 50 100"), ITER (timed
# training iterations per run, default 6), MODES (default "recorded constant"), NETWORK (extra
# --set pairs for the network, e.g. "network.blocks=100"). precondition.kind is none, so that
# above d = 1000 the figures are training alone, without the Laplace map's set-up.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../build}
rbsde=$build/rbsde
[[ -x $rbsde ]] || { echo "memory.sh: $rbsde not found: build first" >&2; exit 1; }
dims=${DIMS:-1000 3000 10000}
steps=${STEPS:-25 50 100}
iter=${ITER:-6}
modes=${MODES:-recorded constant}
network=()
for pair in ${NETWORK:-}; do network+=(--set "$pair"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/config.yaml" <<YAML
target: {name: gaussian, dim: 2, mean: 0.3, covariance: 0.8}
network: {width: 256, depth: 2}
train: {paths: 256, checkpoint_every: 0}
parallel: {threads: 1}
precondition: {kind: none}
YAML
printf '| d | N | gradient | peak RSS (MB) | s/iteration |\n|---|---|---|---|---|\n'
for d in $dims; do
  for n in $steps; do
    for mode in $modes; do
      constant=false; [[ $mode == constant ]] && constant=true
      /usr/bin/time -f '%M' -o "$work/rss" "$rbsde" train "$work/config.yaml" \
        --set target.dim=$d --set sde.steps=$n --set train.iterations=$iter \
        --set train.constant_memory=$constant --set output.path="$work/out.h5" "${network[@]}" \
        >"$work/log"
      rss_mb=$(( $(cat "$work/rss") / 1024 ))
      train_s=$(grep -o 'train_s=[0-9.]*' "$work/log" | cut -d= -f2)
      printf '| %s | %s | %s | %s | %.3f |\n' "$d" "$n" "$mode" "$rss_mb" \
        "$(echo "$train_s / $iter" | bc -l)"
    done
  done
done
