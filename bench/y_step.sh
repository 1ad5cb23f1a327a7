#!/usr/bin/env bash
# The exact Y step against the Euler one (train.y_step, step.hpp): each configuration trained
# and sampled with both, same seeds, and a table of the figures that decide which is better:
# log 𝒵 (IS) with its standard error and its error where the target has a closed form, the
# ELBO, ESS/M and Pareto k̂. Runs one after another on RANKS ranks x 1 thread.
#
#   bench/y_step.sh CONFIG.yaml... [-- --set key=value ...]   (settings apply to every run)
#
# Environment: RANKS (default 2), BUILD (default build), Y_STEPS (default "exact euler").
# Prints a Markdown table; each run's output goes to a scratch directory removed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rbsde=${BUILD:-$here/../build}/rbsde
ranks=${RANKS:-2}
[[ -x $rbsde ]] || { echo "y_step.sh: $rbsde not found: build first" >&2; exit 1; }
configs=()
while [[ $# -gt 0 && $1 != -- ]]; do configs+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
[[ ${#configs[@]} -gt 0 ]] || { echo "usage: bench/y_step.sh CONFIG.yaml... [-- --set k=v ...]" >&2; exit 2; }
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# field NAME LINE: the value of NAME=... in an rbsde-summary line.
field() { grep -o "$1=[^ ]*" <<<"$2" | cut -d= -f2; }

printf '| config | d | y_step | log Z (IS) | exact | error | ELBO | ESS/M | k̂ | train s |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for config in "${configs[@]}"; do
  for y_step in ${Y_STEPS:-exact euler}; do
    out=$work/$(basename "$config" .yaml)-$y_step.h5
    log=$out.log
    if ! OMP_NUM_THREADS=1 mpirun -np "$ranks" --bind-to none --oversubscribe "$rbsde" run \
        "$config" --set "train.y_step=$y_step" --set "output.path=$out" \
        --set parallel.threads=1 "$@" >"$log" 2>&1; then
      echo "| $(basename "$config") | | $y_step | failed: $(tail -1 "$log") | | | | | | |"
      continue
    fi
    line=$(grep '^rbsde-summary' "$log")
    elbo=$(/usr/bin/python3 -c "import h5py,sys; print('%.3f' % h5py.File(sys.argv[1])['estimates'].attrs['elbo'])" "$out")
    truth=$(field log_z_true "$line")
    error=$( [[ $truth == unknown ]] && echo "" || /usr/bin/python3 -c "import sys; print('%+.3f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$(field log_z_is "$line")" "$truth")
    printf '| %s | %s | %s | %.3f ± %.3f | %s | %s | %s | %.4f | %s | %s |\n' \
      "$(basename "$config")" "$(field dim "$line")" "$y_step" "$(field log_z_is "$line")" \
      "$(field log_z_is_stderr "$line")" "$truth" "$error" "$elbo" "$(field ess_fraction "$line")" \
      "$(field pareto_k "$line")" "$(field train_s "$line")"
  done
done
