#!/usr/bin/env bash
# A full file system, in each phase that writes: the checkpoint, the network file, the rows of
# /samples, /posterior and the output file's metadata (written when it is committed). Each run
# must end with one clear error and exit status 1 (no crash, no MPI_Abort), leave no temporary
# file and no output file, and keep what it wrote before (the network file). The file systems
# are small tmpfs mounts, sized from the files of this very configuration; where tmpfs cannot be
# mounted (not root, no CAP_SYS_ADMIN) the test is skipped with the reason.
# Usage: test_full_disk.sh RBSDE_BINARY
set -uo pipefail
rbsde=$1
work=$(mktemp -d)
mounted=()
cleanup() {
  for dir in "${mounted[@]}"; do umount "$dir" 2> /dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
failures=0
passes=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { passes=$((passes + 1)); }

mkdir -p "$work/probe"
if ! mount -t tmpfs -o size=64k tmpfs "$work/probe" 2> "$work/probe.err"; then
  echo "SKIPPED: cannot mount a tmpfs here ($(cat "$work/probe.err")); the full-disk test needs root"
  exit 77
fi
umount "$work/probe"

# d = 50, 20,000 draws: /samples 4 MB, /resampled 4 MB, /posterior 8 MB; a checkpoint of 62 kB
# and a network file of 21 kB.
cat > "$work/run.yaml" << YAML
target: {name: gaussian, dim: 50}
sde: {steps: 10}
network: {width: 32, depth: 1}
train: {iterations: 20, paths: 64, checkpoint_every: 0}
sample: {count: 20000, batch: 5000}
YAML

# mount_tmpfs NAME SIZE: a tmpfs of SIZE at $work/NAME.
mount_tmpfs() {
  mkdir -p "$work/$1"
  mount -t tmpfs -o "size=$2" tmpfs "$work/$1" || return 1
  mounted+=("$work/$1")
}
# run NAME RANKS [ARGS...]: rbsde run on RANKS ranks writing $work/NAME/out.h5; sets $status.
run() {
  local name=$1 ranks=$2
  shift 2
  mpirun -np "$ranks" --oversubscribe --bind-to none "$rbsde" run "$work/run.yaml" \
    --set output.path="$work/$name/out.h5" "$@" > "$work/$name.log" 2>&1
  status=$?
}
# check NAME MESSAGE KEPT...: the run failed with exit status 1 and MESSAGE, without a crash or
# an abort, left no temporary and no output file, and kept the files KEPT.
check() {
  local name=$1 message=$2
  shift 2
  local log="$work/$name.log" listing
  listing=$(ls -A "$work/$name")
  if [[ $status -ne 1 ]]; then
    fail "$name: exit status $status, expected 1: $(tail -20 "$log")"
  elif ! grep -qE "rbsde: error: .*$message" "$log"; then
    fail "$name: no error saying '$message': $(tail -20 "$log")"
  elif grep -qiE "segmentation|signal|MPI_ABORT|core dumped" "$log"; then
    fail "$name: a crash or an abort, not a clean exit: $(tail -30 "$log")"
  elif grep -q "\.tmp\|out\.h5$\|out\.ckpt" <<< "$listing"; then
    fail "$name: left behind: $listing"
  else
    local kept
    for kept in "$@"; do
      [[ -s $work/$name/$kept ]] || { fail "$name: $kept was not kept: $listing"; return; }
    done
    pass
  fi
}

# The checkpoint (62 kB) on a 32 kB file system, 2 ranks.
mount_tmpfs checkpoint 32k && run checkpoint 2 --set train.checkpoint_every=10
check checkpoint "cannot write the checkpoint .*No space left on device"

# The network file (21 kB) on a 16 kB file system.
mount_tmpfs network 16k && run network 1
check network "cannot write the network parameters .*No space left on device"

# The rows of /samples (4.5 MB) on 2 MB; the network file stays.
mount_tmpfs rows 2m && run rows 1
check rows "writing rows of /.* failed .*MiB free on its file system" out.pt

# /posterior on 12 MB, after /samples and /resampled (9 MB), 2 ranks.
mount_tmpfs posterior 12m && run posterior 2
check posterior "writing /posterior failed" out.pt

# The metadata, written when the file is committed, after every row: a run without /resampled
# and /posterior, on file systems a few pages smaller than what the complete run uses, where
# the rows fit and the metadata does not (at least one of the sizes; every run must fail
# cleanly).
metadata=(--set sample.count=2000 --set sample.resample=false)
mount_tmpfs measure 64m && run measure 1 "${metadata[@]}"
used_kb=$(df -k --output=used "$work/measure" | tail -1)
if [[ $status -ne 0 ]]; then
  fail "the run on a file system with space failed: $(tail -20 "$work/measure.log")"
else
  hit=0
  for less in 4 8 12 16; do
    mount_tmpfs "metadata_$less" "$((used_kb - less))k" && run "metadata_$less" 1 "${metadata[@]}"
    check "metadata_$less" "(flushing the file|writing rows of /.*) failed" out.pt
    grep -q "flushing the file failed" "$work/metadata_$less.log" && hit=1
  done
  ((hit)) && pass || fail "no file system size made the metadata the write that failed"
fi

echo "full-disk tests: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
