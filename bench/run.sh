#!/usr/bin/env bash
# Training benchmarks (issue: throughput, all-reduce share, GFLOP/s against the sgemm peak;
# C++ against the same step in PyTorch-Python). Builds nothing: configure with the benchmarks
# on and build rbsde_bench_train first,
#   cmake -S . -B build -DRBSDE_BUILD_BENCH=ON && cmake --build build --target rbsde_bench_train
# and install python3-torch (Debian, the same libtorch) for the Python step.
#
#   bench/run.sh [BUILD_DIR]          (default: build)
#
# Environment: ITER_LARGE / ITER_SMALL (timed iterations), ROUNDS (repetitions of the
# interleaved small-case comparison), QUIET_WAIT (seconds to wait before each measurement
# for the cores to fall idle; 0 = do not wait). A few minutes on 2 cores.
#
# Cases:
#  (a) d = 100, width 256, depth 2, 1,024 paths, N = 50: C++ at np = 1 x 2 threads,
#      np = 2 x 1 thread, np = 1 x 1 thread; the Python step at 1 and 2 threads beside it.
#  (b) d = 2, width 64, depth 2, 512 paths, N = 50: C++ and Python interleaved at 1 and at
#      2 threads, with the ratio of Python's time per iteration to C++'s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../build}
bench=$build/bench/rbsde_bench_train
python=/usr/bin/python3
iter_large=${ITER_LARGE:-8}
iter_small=${ITER_SMALL:-150}
rounds=${ROUNDS:-2}
quiet_wait=${QUIET_WAIT:-60}

[[ -x $bench ]] || { echo "run.sh: $bench not found: configure with -DRBSDE_BUILD_BENCH=ON and build the rbsde_bench_train target" >&2; exit 1; }
"$python" -c 'import torch' 2>/dev/null ||
  { echo "run.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 1; }

source "$here/lib.sh"

large=(--dim 100 --width 256 --depth 2 --paths 1024 --steps 50)
small=(--dim 2 --width 64 --depth 2 --paths 512 --steps 50)

echo "# $(date -u +%FT%TZ)  $(nproc) cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# (a) d=100 width=256 depth=2 paths=1024 steps=50, $iter_large timed iterations"
for layout in "1 2" "2 1" "1 1"; do
  cpp ${layout% *} ${layout#* } "${large[@]}" --iterations "$iter_large" --warmup 2
done
for threads in 1 2; do
  py "$threads" "${large[@]}" --iterations $((iter_large / 2 > 2 ? iter_large / 2 : 2)) --warmup 1
done

echo "# (b) d=2 width=64 depth=2 paths=512 steps=50, $iter_small timed iterations, interleaved"
for round in $(seq "$rounds"); do
  for threads in 1 2; do
    c=$(cpp 1 "$threads" "${small[@]}" --iterations "$iter_small" --warmup 20 --gemm-repetitions 0)
    p=$(py "$threads" "${small[@]}" --iterations "$iter_small" --warmup 20 --no-peak)
    echo "$c"
    echo "$p"
    awk -v t="$threads" -v r="$round" -v cm="$(field s_per_iter "$c")" \
        -v pm="$(field s_per_iter "$p")" -v cb="$(field s_min_iter "$c")" \
        -v pb="$(field s_min_iter "$p")" \
        'BEGIN { printf "bench-ratio case=small threads=%s round=%s python_over_cpp=%.2f python_over_cpp_min_iter=%.2f\n", t, r, pm / cm, pb / cb }'
  done
done
