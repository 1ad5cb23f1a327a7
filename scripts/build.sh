#!/usr/bin/env bash
# Installs missing packages (scripts/setup.sh) and builds rbsde into build/ (Release).
# Extra arguments go to CMake's configure step, e.g. -DRBSDE_WERROR=ON.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$root/build" -j "$(nproc)"
