#!/usr/bin/env bash
# Installs, builds and runs the built-in example on 2 MPI ranks: trains on a four-mode 2-D
# mixture, writes results/quickstart.h5, prints a summary and draws results/quickstart.png.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/build.sh"
cd "$root"
RBSDE_RANKS=${RBSDE_RANKS:-2} bash jobs/rbsde.sbatch configs/quickstart.yaml
/usr/bin/python3 postprocess/summary.py results/quickstart.h5 --truth-log-z 0
