#!/usr/bin/env bash
# Installs, builds and runs the whole test suite (unit, statistical, command-line, MPI).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/build.sh"
# Tests run one at a time: each statistical test uses both cores of a CI machine.
cd "$root/build" && ctest --output-on-failure --timeout 600
