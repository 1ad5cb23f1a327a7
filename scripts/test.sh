#!/usr/bin/env bash
# Installs, builds (warnings as errors) and runs the whole test suite (unit, statistical,
# command-line, MPI, the layer and format checks), then
# builds the Kokkos variant of the path kernels and runs the suite again, including a
# bit-for-bit comparison of its runs with the OpenMP build's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/build.sh" -DRBSDE_WERROR=ON
# Tests run one at a time: each statistical test uses both cores of a CI machine.
(cd "$root/build" && ctest --output-on-failure --timeout 600)

cmake -S "$root" -B "$root/build-kokkos" -DCMAKE_BUILD_TYPE=Release -DRBSDE_KOKKOS=ON -DRBSDE_WERROR=ON \
  -DRBSDE_REFERENCE_BINARY="$root/build/rbsde"
cmake --build "$root/build-kokkos" -j "$(nproc)"
(cd "$root/build-kokkos" && ctest --output-on-failure --timeout 600)
