#!/usr/bin/env bash
# Runs rbsde on the seven posteriordb examples with configs/posteriordb.yaml (only target.dim
# and target.module differ) for each seed, and compares each run with the reference draws
# (python3 -m postprocess compare-posteriordb: means within 0.1 reference sds, sds within 10 %).
# Usage (from the repository root, after the build):
#   bash examples/posteriordb/run.sh [RESULTS_DIR [SEED ...]]     defaults: results/posteriordb, 1 2 3
# Environment: RBSDE (default build/rbsde), RANKS (default 2), POSTERIORS (default all seven,
# separated by spaces), and any extra --set options in RBSDE_SET (e.g.
# RBSDE_SET="--set train.iterations=200").
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
results=${1:-results/posteriordb}
shift || true
seeds=("$@")
((${#seeds[@]})) || seeds=(1 2 3)
rbsde=${RBSDE:-$root/build/rbsde}
ranks=${RANKS:-2}
mkdir -p "$results"
declare -A dims=(
  [kidiq-kidscore_momiq]=3 [sblrc-blr]=6 [mesquite-logmesquite_logvas]=8 [nes2000-nes]=10
  [garch-garch11]=4 [low_dim_gauss_mix-low_dim_gauss_mix]=5 [gp_pois_regr-gp_pois_regr]=13
)
failures=0
posteriors=${POSTERIORS:-kidiq-kidscore_momiq sblrc-blr mesquite-logmesquite_logvas nes2000-nes
  garch-garch11 low_dim_gauss_mix-low_dim_gauss_mix gp_pois_regr-gp_pois_regr}
for posterior in $posteriors; do
  if [[ -z ${dims[$posterior]:-} ]]; then
    echo "run.sh: unknown posterior '$posterior' in POSTERIORS (known: ${!dims[*]})" >&2
    exit 2
  fi
  module=$results/$posterior.pt
  /usr/bin/python3 "$root/examples/posteriordb/$posterior.py" "$module" > /dev/null || exit 1
  for seed in "${seeds[@]}"; do
    run=$results/$posterior-seed$seed
    start=$(date +%s)
    # shellcheck disable=SC2086  # RBSDE_SET holds several words on purpose
    if ! mpirun -np "$ranks" --oversubscribe --bind-to none "$rbsde" run "$root/configs/posteriordb.yaml" \
      --set target.module="$module" --set target.dim="${dims[$posterior]}" \
      --set train.seed="$seed" --set sample.seed="$((seed + 100))" \
      --set output.path="$run.h5" ${RBSDE_SET:-} > "$run.log" 2>&1; then
      echo "$posterior seed $seed: rbsde failed, see $run.log"
      failures=$((failures + 1))
      continue
    fi
    verdict=$(PYTHONPATH="$root" /usr/bin/python3 -m postprocess compare-posteriordb "$run.h5" "$posterior" \
      | tee "$run.compare" | tail -1)
    [[ $verdict == *PASS ]] || failures=$((failures + 1))
    echo "$posterior seed $seed ($(($(date +%s) - start)) s): $verdict"
  done
done
echo "posteriordb: $failures failed"
((failures == 0))
