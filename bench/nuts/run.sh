#!/usr/bin/env bash
# Time to an answer against Stan's NUTS (issue 33, docs/results.md): on the LGCP (d = 1,600)
# and the synthetic logistic regression (d = 1,001), NUTS with Stan's defaults (one chain per
# core) and rbsde with the shipped configuration, each on the machine's 2 cores, against the
# in-project SMC reference (`rbsde reference`, 4 runs of 4,096 particles); compared by
# bench/nuts/compare.py (worst posterior mean error in reference sds, wall time, evaluations).
#
#   bench/nuts/run.sh [OUT_DIR] [MODEL ...]   (default: runs/nuts-<UTC time>, lgcp logreg)
#
# rbsde trains and samples as configured, then samples SAMPLE_COUNT (default 100,000) more
# paths from the trained network (`rbsde sample`: the cost of sampling alone after training).
# Needs Debian's r-cran-rstan (Stan 2.21) and build/rbsde. Environment: CHAINS (NUTS, default
# 2), RANKS (rbsde, default 2). About 30 minutes a model on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-runs/nuts-$(date -u +%Y%m%dT%H%M%SZ)}")
shift || true
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(lgcp logreg)
chains=${CHAINS:-2}
ranks=${RANKS:-2}
sample_count=${SAMPLE_COUNT:-100000}
rbsde=$root/build/rbsde

command -v Rscript >/dev/null || { echo "run.sh: Rscript not found (apt-get install r-cran-rstan)" >&2; exit 1; }
[[ -x $rbsde ]] || { echo "run.sh: $rbsde not found: build first (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$out"
source "$here/../lib.sh"
synthetic_data "$root"
synthetic=$root/results/synthetic_1000.csv

for model in "${models[@]}"; do
  case $model in
    lgcp) data=$root/data/pines.csv config=configs/lgcp.yaml ;;
    logreg) data=$synthetic config=configs/logreg_synthetic.yaml ;;
    *) echo "run.sh: unknown model '$model' (lgcp, logreg)" >&2; exit 1 ;;
  esac
  [[ -f $out/$model-nuts.json ]] ||
    Rscript "$here/nuts.R" "$model" "$data" "$chains" 1000 1000 2 "$out/$model-nuts.json"
  if [[ ! -f $out/$model-reference.h5 ]]; then
    (cd "$root" && mpirun -np "$ranks" --bind-to none "$rbsde" reference "$config" \
       --set parallel.threads=1 --set reference.method=smc \
       --set output.path="$out/$model-reference.h5") > "$out/$model-reference.log" 2>&1 ||
      { echo "run.sh: rbsde reference on $model failed; see $out/$model-reference.log" >&2; exit 1; }
  fi
  if [[ ! -f $out/$model-rbsde.h5 ]]; then
    (cd "$root" && mpirun -np "$ranks" --bind-to none "$rbsde" run "$config" \
       --set parallel.threads=1 --set output.path="$out/$model-rbsde.h5") > "$out/$model-rbsde.log" 2>&1 ||
      { echo "run.sh: rbsde on $model failed; see $out/$model-rbsde.log" >&2; exit 1; }
  fi
  # Sampling alone after training: more samples from the same network (rbsde sample).
  if [[ ! -f $out/$model-rbsde-sample.h5 ]]; then
    (cd "$root" && mpirun -np "$ranks" --bind-to none "$rbsde" sample "$config" \
       --set parallel.threads=1 --set sample.model="$out/$model-rbsde.pt" \
       --set sample.count="$sample_count" --set output.path="$out/$model-rbsde-sample.h5") \
      > "$out/$model-rbsde-sample.log" 2>&1 ||
      { echo "run.sh: rbsde sample on $model failed; see $out/$model-rbsde-sample.log" >&2; exit 1; }
  fi
  /usr/bin/python3 "$here/compare.py" "$model" "$out/$model-reference.h5" \
    --nuts "$out/$model-nuts.json" --rbsde "$out/$model-rbsde.h5" "$out/$model-rbsde-sample.h5" |
    tee "$out/$model.md"
done
