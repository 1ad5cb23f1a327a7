#!/usr/bin/env bash
# Runs rbsde on the hierarchical test set with only the target keys (target.name, dim and
# module: every other setting is the default) for each seed, and compares each run with the
# model's NUTS reference (python3 -m postprocess compare-posteriordb: means within 0.1
# reference sds, sds within 10 %).
# Usage (from the repository root, after the build):
#   bash examples/hierarchical/run.sh [RESULTS_DIR [SEED ...]]    defaults: results/hierarchical, 1 2 3
# Environment: RBSDE (default build/rbsde), RANKS (default 2), MODELS (default all six,
# separated by spaces), and extra --set options in RBSDE_SET.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
results=${1:-results/hierarchical}
shift || true
seeds=("$@")
((${#seeds[@]})) || seeds=(1 2 3)
rbsde=${RBSDE:-$root/build/rbsde}
ranks=${RANKS:-2}
mkdir -p "$results"
declare -A dims=([eight_schools]=10 [local_level]=32 [gp_poisson]=42 [sv_100]=103 [rasch]=112
  [sv_2000]=2003)
models=${MODELS:-eight_schools local_level gp_poisson sv_100 rasch sv_2000}
failures=0
for model in $models; do
  if [[ -z ${dims[$model]:-} ]]; then
    echo "run.sh: unknown model '$model' in MODELS (known: ${!dims[*]})" >&2
    exit 2
  fi
  module=$results/$model.pt
  /usr/bin/python3 "$root/examples/hierarchical/models.py" "$model" "$module" > /dev/null || exit 1
  for seed in "${seeds[@]}"; do
    run=$results/$model-seed$seed
    rm -f "$run.h5" "$run.pt" "$run.ckpt"
    start=$(date +%s)
    cat > "$run.yaml" <<YAML
target: {name: torchscript, dim: ${dims[$model]}, module: $module}
output: {path: $run.h5}
YAML
    # shellcheck disable=SC2086  # RBSDE_SET holds several words on purpose
    if ! mpirun -np "$ranks" --oversubscribe --bind-to none "$rbsde" run "$run.yaml" \
      --set train.seed="$seed" --set sample.seed="$((seed + 100))" ${RBSDE_SET:-} \
      > "$run.log" 2>&1; then
      echo "$model seed $seed: rbsde failed, see $run.log"
      failures=$((failures + 1))
      continue
    fi
    verdict=$(PYTHONPATH="$root" /usr/bin/python3 -m postprocess compare-posteriordb "$run.h5" \
      "$root/examples/hierarchical/$model" | tee "$run.compare" | tail -1)
    [[ $verdict == *PASS ]] || failures=$((failures + 1))
    refined=$(grep -h "^HMC refinement" "$run.log" | sed 's/.*split R^/split R^/')
    echo "$model seed $seed ($(($(date +%s) - start)) s): $verdict ${refined:+[refinement: $refined]}"
  done
done
echo "hierarchical: $failures failed"
((failures == 0))
