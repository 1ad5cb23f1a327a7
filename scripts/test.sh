#!/usr/bin/env bash
# Installs, builds (warnings as errors) and runs the whole test suite: unit, statistical,
# command-line, fuzz, fault injection, MPI at 1-3 ranks, the layer and format checks.
# Then builds the Kokkos variant of the path kernels with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs the unit, MPI and command-line tests under them (a
# finding aborts the test) with a comparison of its runs against the first
# build's. The statistical tests, slow under the sanitizers, and the fuzz and fault tests run
# in the first build only; the kernels are all the Kokkos variant changes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/build.sh" -DRBSDE_WERROR=ON
# Tests run one at a time: each statistical test uses both cores of a CI machine.
status=0
(cd "$root/build" && ctest --output-on-failure --timeout 900) || status=$?
# ctest keeps a passing test's output in its log only: show the SLURM test's jobs (ids, states).
grep '^slurm: ' "$root/build/Testing/Temporary/LastTest.log" || true
((status == 0)) || exit "$status"

# Warnings are the first build's to check: -O3 with the sanitizers adds false ones.
cmake -S "$root" -B "$root/build-kokkos" -DCMAKE_BUILD_TYPE=Release -DRBSDE_KOKKOS=ON \
  -DRBSDE_SANITIZE=address,undefined -DRBSDE_REFERENCE_BINARY="$root/build/rbsde"
cmake --build "$root/build-kokkos" -j "$(nproc)" --target rbsde rbsde_unit_tests rbsde_mpi_tests
(cd "$root/build-kokkos" && ctest --output-on-failure --timeout 900 -L 'unit|mpi|cli|kokkos')
