#!/usr/bin/env bash
# Installs the Debian packages rbsde needs that are missing on this machine.
# Run as root (or with sudo available). Idempotent: installs nothing when all are present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  clang-format git                       # the format check of the test suite
  libopenmpi-dev openmpi-bin
  libtorch-dev libopenblas0-openmp      # OpenBLAS: LibTorch on the reference BLAS is ~17x slower
  libhdf5-openmpi-dev hdf5-tools
  libeigen3-dev libyaml-cpp-dev
  libtrilinos-kokkos-dev                 # Kokkos build of the path kernels (serial on Debian)
  libgtest-dev googletest
  python3-h5py python3-numpy python3-matplotlib python3-yaml
  python3-pytest                         # the tests of postprocess/
  python3-torch                          # TorchScript user targets: the example and its test
  python3-xarray python3-h5netcdf        # the InferenceData groups of an output file, as users read them
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all required packages are installed"
fi

# LibTorch must resolve BLAS to the OpenMP OpenBLAS, not the reference BLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 resolves to '$blas', not OpenBLAS: matrix products will be slow" >&2 ;;
esac
