#!/usr/bin/env bash
# The layer check of docs/architecture.md: a file in include/rbsde/LAYER/ or src/LAYER/ may
# include the headers of its own layer and of the layers below it, never of one above, and
# only the layers named below may include MPI, HDF5 or yaml-cpp directly.
#   parallel < core < bsde < io < app        (rbsde/error.hpp and rbsde/version.hpp: any)
# Prints every violation with its file and line; exit status 1 if there is one.
set -euo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
layers=(parallel core bsde io app)
rank_of() {
  local i
  for i in "${!layers[@]}"; do [[ ${layers[$i]} == "$1" ]] && { echo "$i"; return; }; done
  echo -1
}
# Which layers may include each system header directly. The core layer also may not include
# the communicator: its maths is the same on one rank or many.
declare -A system_allowed=(
  ["mpi.h"]="parallel io app"
  ["hdf5.h"]="io"
  ["yaml-cpp/yaml.h"]="io"
)
violations=0
checked=0
report() { echo "check_layers: $1" >&2; violations=$((violations + 1)); }
while IFS= read -r file; do
  rel=${file#"$root"/}
  case $rel in
    include/rbsde/error.hpp | include/rbsde/version.hpp.in) continue ;;  # the base: any layer
    include/rbsde/*/*) layer=${rel#include/rbsde/} ;;
    src/*/*) layer=${rel#src/} ;;
    include/rbsde/* | src/*)
      report "$rel: every source lives in a layer folder (${layers[*]})"; continue ;;
    *) continue ;;
  esac
  layer=${layer%%/*}
  rank=$(rank_of "$layer")
  if ((rank < 0)); then report "$rel: '$layer' is not a layer (${layers[*]})"; continue; fi
  checked=$((checked + 1))
  while IFS=: read -r line text; do
    if [[ $text =~ \#include\ \"rbsde/([a-z_]+)/ ]]; then
      used=${BASH_REMATCH[1]}
      used_rank=$(rank_of "$used")
      if ((used_rank < 0 || used_rank > rank)); then
        report "$rel:$line: the $layer layer includes rbsde/$used/ (allowed: ${layers[*]:0:rank+1})"
      elif [[ $layer == core && $text == *'"rbsde/parallel/communicator.hpp"'* ]]; then
        report "$rel:$line: the core layer knows nothing of MPI (communicator.hpp)"
      fi
    elif [[ $text =~ \#include\ \<([A-Za-z0-9_/.+-]+)\> ]]; then
      header=${BASH_REMATCH[1]}
      if [[ -n ${system_allowed[$header]+x} && " ${system_allowed[$header]} " != *" $layer "* ]]; then
        report "$rel:$line: the $layer layer includes <$header> (only: ${system_allowed[$header]})"
      fi
    fi
  done < <(grep -n '#include' "$file" || true)
done < <(find "$root/include/rbsde" "$root/src" -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.in' \) | sort)
if ((violations)); then
  echo "check_layers: $violations violation(s); see docs/architecture.md" >&2
  exit 1
fi
echo "check_layers: $checked files, no layer violation"
