#!/usr/bin/env bash
# The training and sampling sweep (issue 33): throughput, fraction of the sgemm peak measured
# in the same run, phase shares and sampling throughput of rbsde_bench_train, each case beside
# the same training step in PyTorch-Python (bench/python_step.py) on the same cores. Writes
# sweep.json (one record per case) and sweep.md (the table) into OUT_DIR.
#
#   bench/sweep.sh [BUILD_DIR] [OUT_DIR]   (defaults: build, runs/bench-sweep-<UTC time>)
#
# Builds nothing: configure with -DRBSDE_BUILD_BENCH=ON and build rbsde_bench_train first;
# python3-torch (Debian, the same libtorch) runs the Python step.
#
# The cases vary one factor at a time around d = 100, width 256, 1,024 paths (depth 2, N = 50):
# d in {2, 10, 100, 1000, 10000}, width in {64, 256, 1024}, paths in {256, 1024, 4096}; and
# the small network of the project's targets (d = 2, width 64, 512 paths). Ten cases, about
# 15 minutes on 2 cores. rbsde runs one rank per core with one thread each (the
# faster layout on one node, docs/results.md), Python one process with a thread per core.
# Environment: RANKS (default: the cores), QUIET_WAIT (seconds to wait for idle cores before
# each measurement, default 60; 0 = do not wait), CASES (a subset, e.g. "d=2 width=1024").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-$here/../build}
out=${2:-runs/bench-sweep-$(date -u +%Y%m%dT%H%M%SZ)}
bench=$build/bench/rbsde_bench_train
python=/usr/bin/python3
cores=$(getconf _NPROCESSORS_ONLN)
ranks=${RANKS:-$cores}
quiet_wait=${QUIET_WAIT:-60}

[[ -x $bench ]] || { echo "sweep.sh: $bench not found: configure with -DRBSDE_BUILD_BENCH=ON and build the rbsde_bench_train target" >&2; exit 1; }
"$python" -c 'import torch' 2>/dev/null ||
  { echo "sweep.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 1; }
[[ ! -e $out ]] || { echo "sweep.sh: $out exists: name another output folder" >&2; exit 1; }
mkdir -p "$out"

source "$here/lib.sh"

# name d width paths iterations: iterations keep each measurement at a few seconds or more.
cases=(
  "d=2 2 256 1024 6"
  "d=10 10 256 1024 6"
  "centre 100 256 1024 4"
  "d=1000 1000 256 1024 3"
  "d=10000 10000 256 1024 2"
  "width=64 100 64 1024 6"
  "width=1024 100 1024 1024 2"
  "paths=256 100 256 256 6"
  "paths=4096 100 256 4096 2"
  "small 2 64 512 30"
)

lines=$out/lines.txt
echo "# $(date -u +%FT%TZ)  $cores cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" |
  tee "$lines"
for entry in "${cases[@]}"; do
  read -r name d width paths iterations <<<"$entry"
  if [[ -n ${CASES:-} && " $CASES " != *" $name "* ]]; then continue; fi
  shape=(--dim "$d" --width "$width" --depth 2 --paths "$paths" --steps 50 --warmup 1
         --iterations "$iterations")
  echo "# case $name" | tee -a "$lines"
  { cpp "$ranks" 1 "${shape[@]}" | sed "s/^bench-train /bench-train case=$name /"
    py "$cores" "${shape[@]}" | sed "s/^bench-python /bench-python case=$name /"
  } | tee -a "$lines"
done
"$python" "$here/sweep_table.py" "$lines" --json "$out/sweep.json" --markdown "$out/sweep.md"
cat "$out/sweep.md"
echo "sweep.sh: wrote $out/sweep.json and $out/sweep.md"
