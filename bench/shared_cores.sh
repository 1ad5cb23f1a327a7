#!/usr/bin/env bash
# Training speed on cores shared with another job (issue: shared machines). The run under test
# is the small case (d = 2, width 64 x 3, 512 paths, N = 50; one rank), with
#   default   threads chosen by rbsde (no parallel.threads, no OMP_NUM_THREADS)
#   one       parallel.threads: 1
#   all       parallel.threads: all cores (what the default was before it measured the load)
# first on the quiet machine, then while another job (a 2-rank rbsde training, one thread a
# rank: as many busy processes as this machine has cores) runs beside it. Rounds interleave the
# variants, so that a drift in the machine's speed reaches them alike.
#
#   bench/shared_cores.sh [BUILD_DIR]      (default: build; a table and JSON on stdout)
#
# Environment: ROUNDS (default 3), ITER (timed training iterations a run, default 200; under
# load the `all` variant runs ITER/10, it is that slow), LOAD_RANKS (default: the core count).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../build}
rbsde=$build/rbsde
[[ -x $rbsde ]] || { echo "shared_cores.sh: $rbsde not found: build first" >&2; exit 1; }
rounds=${ROUNDS:-3}
iter=${ITER:-200}
cores=$(getconf _NPROCESSORS_ONLN)
load_ranks=${LOAD_RANKS:-$cores}
[[ $(id -u) == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OMP_NUM_THREADS SLURM_CPUS_PER_TASK
work=$(mktemp -d)
load_pid=
cleanup() {
  [[ -n $load_pid ]] && kill "$load_pid" 2> /dev/null && wait "$load_pid" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/run.yaml" << YAML
target: {name: gaussian, dim: 2, mean: [1, -1], covariance: 0.5}
network: {width: 64, depth: 3}
train: {paths: 512, log_every: 1000000, checkpoint_every: 0}
YAML
cat > "$work/load.yaml" << YAML
target: {name: gaussian, dim: 2}
network: {width: 64, depth: 3}
train: {iterations: 1000000000, paths: 512, log_every: 1000000000, checkpoint_every: 0}
YAML

# measure VARIANT ITERATIONS: seconds per training iteration of one run (from its summary
# line's train_s), and the threads it chose.
measure() {
  local variant=$1 iterations=$2 threads=()
  case $variant in
    one) threads=(--set parallel.threads=1) ;;
    all) threads=(--set "parallel.threads=$cores") ;;
  esac
  "$rbsde" train "$work/run.yaml" --set output.path="$work/out/$variant.h5" \
    --set train.iterations="$iterations" "${threads[@]}" > "$work/$variant.log" 2>&1
  local train_s chosen
  train_s=$(sed -n 's/.* train_s=\([0-9.]*\).*/\1/p' "$work/$variant.log")
  chosen=$(sed -n 's/.*threads\/rank \([0-9]*\) (\([^)]*\)).*/\1 (\2)/p' "$work/$variant.log")
  echo "$(awk -v s="$train_s" -v n="$iterations" 'BEGIN { printf "%.5f", s / n }') $chosen"
}

declare -A per_iteration=() chosen=()
# run_rounds SITUATION: all variants, ROUNDS times, interleaved; keeps the median.
run_rounds() {
  local situation=$1 variant round iterations result
  for variant in default one all; do per_iteration[$situation.$variant]=""; done
  for ((round = 0; round < rounds; round++)); do
    for variant in default one all; do
      iterations=$iter
      [[ $situation == loaded && $variant == all ]] && iterations=$((iter / 10))
      result=$(measure "$variant" "$iterations")
      per_iteration[$situation.$variant]+="${result%% *} "
      chosen[$situation.$variant]=${result#* }
    done
  done
}
median() { tr ' ' '\n' <<< "$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run_rounds quiet
mpirun -np "$load_ranks" --oversubscribe --bind-to none "$rbsde" train "$work/load.yaml" \
  --set output.path="$work/load/mpi.h5" --set parallel.threads=1 > "$work/load.log" 2>&1 &
load_pid=$!
sleep 5  # the load job's start-up
run_rounds loaded

printf '%-8s %-8s %14s %8s  %s\n' situation threads "s/iteration" "vs one" "threads chosen"
json="["
for situation in quiet loaded; do
  one=$(median "${per_iteration[$situation.one]}")
  for variant in default one all; do
    value=$(median "${per_iteration[$situation.$variant]}")
    ratio=$(awk -v a="$value" -v b="$one" 'BEGIN { printf "%.2f", a / b }')
    printf '%-8s %-8s %14s %8s  %s\n' "$situation" "$variant" "$value" "$ratio" "${chosen[$situation.$variant]}"
    json+="{\"situation\": \"$situation\", \"threads\": \"$variant\", \"seconds_per_iteration\": $value, \"ratio_to_one\": $ratio, \"chosen\": \"${chosen[$situation.$variant]}\"},"
  done
done
echo "${json%,}]"
