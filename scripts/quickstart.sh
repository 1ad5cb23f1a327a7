#!/usr/bin/env bash
# Installs, builds and runs the built-in example on 2 MPI ranks through jobs/rbsde.sbatch
# (under mpirun): trains on a four-mode 2-D mixture, writes the run directory
# runs/rbsde-quickstart-DATE/ (log, config.yaml, output.h5), prints a summary with the timing
# table and draws the samples and the training curves (output_samples.png, output_training.png).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/build.sh"
cd "$root"
export RBSDE_JOB_ID=quickstart-$(date +%Y%m%d-%H%M%S)
RBSDE_RANKS=${RBSDE_RANKS:-2} bash jobs/rbsde.sbatch configs/quickstart.yaml
dir=runs/rbsde-$RBSDE_JOB_ID
for command in summary samples training; do
  /usr/bin/python3 -m postprocess "$command" "$dir"
done
