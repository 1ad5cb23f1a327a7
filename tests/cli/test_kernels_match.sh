#!/usr/bin/env bash
# The Kokkos and OpenMP builds of the path kernels give identical runs: same samples and
# training history, bit for bit (each path's kernels depend on that path alone), and the same
# log weights to rounding: their sums over coordinates are SIMD reductions whose order the
# compiler chooses, and it chooses differently under sanitizer instrumentation (two builds
# with the same flags agree bit for bit).
# Usage: test_kernels_match.sh KOKKOS_BINARY OPENMP_BINARY
set -euo pipefail
kokkos=$1
openmp=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
cat > "$work/run.yaml" <<YAML
target: {name: gmm, dim: 3, means: [[2, 0, 0], [-2, 1, 0]], covariances: [0.5, 0.8]}
sde: {steps: 20}
network: {width: 32, depth: 2}
train: {iterations: 50, paths: 128}
sample: {count: 3000, batch: 1000}
YAML
"$kokkos" run "$work/run.yaml" --set output.path="$work/kokkos.h5" > "$work/kokkos.log"
"$openmp" run "$work/run.yaml" --set output.path="$work/openmp.h5" > "$work/openmp.log"
grep -q "kernels Kokkos" "$work/kokkos.log"
grep -q "kernels OpenMP" "$work/openmp.log"
/usr/bin/python3 - "$work/kokkos.h5" "$work/openmp.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for name in ("samples", "training/loss", "training/log_z"):
        assert np.array_equal(a[name][:], b[name][:]), name
    u, v = a["log_weights"][:], b["log_weights"][:]
    assert np.allclose(u, v, rtol=1e-12, atol=1e-12), ("log_weights", np.abs(u - v).max())
print("Kokkos and OpenMP runs are identical")
PY
