#!/usr/bin/env bash
# Inputs of the scaling model (docs/scaling-model.md) and the model itself: each shipped
# configuration, and the Gaussian at d = 10^5, trains ITERATIONS iterations on one rank with
# one thread (its /timing gives the compute per iteration and the parameters all-reduced);
# then `python3 -m postprocess scaling-model` projects strong and weak efficiency from 1 to
# 1,024 nodes with the all-reduce fitted from bench/sweep.sh's sweep.json.
#
#   bench/scaling_model.sh SWEEP_JSON [OUT_DIR]   (default OUT_DIR: runs/scaling-model-<UTC time>)
#
# Environment: RBSDE (default build/rbsde), ITERATIONS (default 20). About 10 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
sweep=${1:?usage: bench/scaling_model.sh SWEEP_JSON [OUT_DIR]}
out=$(realpath -m "${2:-runs/scaling-model-$(date -u +%Y%m%dT%H%M%SZ)}")
rbsde=${RBSDE:-$root/build/rbsde}
iterations=${ITERATIONS:-20}

[[ -x $rbsde ]] || { echo "scaling_model.sh: $rbsde not found: build first (scripts/build.sh)" >&2; exit 1; }
[[ -f $sweep ]] || { echo "scaling_model.sh: $sweep not found: run bench/sweep.sh first" >&2; exit 1; }
[[ ! -e $out ]] || { echo "scaling_model.sh: $out exists: name another output folder" >&2; exit 1; }
mkdir -p "$out"
source "$here/lib.sh"
synthetic_data "$root"

# name config [--set options]
runs=(
  "quickstart configs/quickstart.yaml"
  "gaussian configs/gaussian.yaml"
  "gmm40 configs/gmm40.yaml"
  "funnel configs/funnel.yaml"
  "many_well configs/many_well.yaml"
  "logreg_sonar configs/logreg_sonar.yaml"
  "logreg_synthetic configs/logreg_synthetic.yaml"
  "lgcp configs/lgcp.yaml"
  "gaussian_10000 configs/gaussian_10000.yaml"
  "gaussian_100000 configs/gaussian_10000.yaml target.dim=100000"
)
for entry in "${runs[@]}"; do
  read -r name config extra <<<"$entry"
  echo "scaling_model.sh: $name ($iterations iterations, 1 rank x 1 thread)"
  settings=()
  for setting in train.iterations="$iterations" train.checkpoint_every=0 sample.count=64 \
                 sample.hmc_steps=0 parallel.threads=1 output.path="$out/$name.h5" $extra; do
    settings+=(--set "$setting")
  done
  (cd "$root" && OMP_NUM_THREADS=1 "$rbsde" run "$config" "${settings[@]}") > "$out/$name.log" 2>&1 ||
    { echo "scaling_model.sh: $name failed; see $out/$name.log" >&2; exit 1; }
done
cd "$root" && /usr/bin/python3 -m postprocess scaling-model "$out"/*.h5 --sweep "$sweep" \
  --out "$out/scaling_model"
