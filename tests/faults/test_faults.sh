#!/usr/bin/env bash
# Faults injected into real runs: SIGKILL during training, during checkpoint writing and
# during the HDF5 write leave the previous checkpoint and any completed file valid, never an
# output file that looks complete, and the run resumes to the same result as an uninterrupted
# one; a rank killed under mpirun ends the job within a bounded time with a clear message.
# Usage: test_faults.sh RBSDE_BINARY
set -uo pipefail
rbsde=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
failures=0
passes=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { passes=$((passes + 1)); }

cat > "$work/run.yaml" <<YAML
target: {name: gaussian, dim: 2, mean: [1, -1], covariance: 0.5}
sde: {steps: 10}
network: {width: 16, depth: 1}
train: {iterations: 3000, paths: 64, log_every: 50, checkpoint_every: 100}
sample: {count: 2000, batch: 500}
YAML

# start_run DIR [ARGS...]: starts `rbsde run` writing into DIR in the background; sets $pid.
start_run() {
  local dir=$1
  shift
  mkdir -p "$dir"
  "$rbsde" run "$work/run.yaml" --set output.path="$dir/run.h5" "$@" > "$dir/log" 2>&1 &
  pid=$!
}
# wait_for PATTERN FILE: waits (at most 60 s) until FILE has a line matching PATTERN.
wait_for() {
  for _ in $(seq 600); do
    grep -q "$1" "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# killed_by_sigkill: waits for $pid and checks that SIGKILL ended it (status 137).
killed_by_sigkill() {
  wait "$pid" 2>/dev/null
  [[ $? -eq 137 ]]
}
# same_results A B: the two output files hold identical samples, weights and training curves.
same_results() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    assert a.attrs["complete"] == 1 and b.attrs["complete"] == 1
    for name in ("samples", "log_weights", "training/loss", "training/log_z"):
        assert np.array_equal(a[name][:], b[name][:]), name
PY
}

# The uninterrupted run every resumed one must reproduce.
"$rbsde" run "$work/run.yaml" --set output.path="$work/full/run.h5" > "$work/full.log" 2>&1 \
  || fail "uninterrupted run: $(cat "$work/full.log")"

# 1. SIGKILL during training, after the first checkpoint: no output file, a valid checkpoint,
# and the resumed run ends where the uninterrupted one did.
start_run "$work/train"
wait_for "^train   *[2-9][0-9][0-9]/" "$work/train/log"
kill -KILL "$pid"
if killed_by_sigkill && [[ -f $work/train/run.ckpt && ! -e $work/train/run.h5 ]]; then
  pass
else
  fail "SIGKILL during training: $(ls "$work/train"), $(cat "$work/train/log")"
fi
if "$rbsde" run "$work/run.yaml" --set output.path="$work/train/run.h5" --resume \
  > "$work/train/resume.log" 2>&1 && same_results "$work/full/run.h5" "$work/train/run.h5"; then
  pass
else
  fail "resume after SIGKILL during training: $(cat "$work/train/resume.log")"
fi

# 2. SIGKILL while a checkpoint file is being written: a network large enough (12 MB of
# checkpoint) and a step cheap enough that each iteration writes one; once the first
# checkpoint exists, the run is killed as soon as the next one's temporary file appears. The
# checkpoint under its final name is the previous one, whole: a resume reaches training.
big=(--set network.width=1024 --set network.depth=2 --set sde.steps=2 --set train.paths=2
  --set train.checkpoint_every=1 --set train.log_every=1)
for attempt in 1 2 3; do
  dir=$work/ckpt$attempt
  start_run "$dir" "${big[@]}"
  for _ in $(seq 600); do [[ -e $dir/run.ckpt ]] && break; sleep 0.05; done
  SECONDS=0
  until [[ -e $dir/run.ckpt.tmp ]] || ((SECONDS > 30)); do :; done
  kill -KILL "$pid"
  if ! killed_by_sigkill || [[ ! -f $dir/run.ckpt.tmp || ! -f $dir/run.ckpt ]]; then
    fail "checkpoint attempt $attempt: not killed while writing: $(ls -l "$dir"), $(cat "$dir/log")"
    continue
  fi
  # Resume and stop it with SIGTERM once it trains again (it writes a checkpoint and exits).
  "$rbsde" train "$work/run.yaml" --set output.path="$dir/run.h5" "${big[@]}" --resume \
    > "$dir/resume.log" 2>&1 &
  pid=$!
  wait_for "^train  *[0-9]*/" "$dir/resume.log"
  kill -TERM "$pid"
  wait "$pid"
  status=$?
  if [[ $status -eq 143 ]] && grep -q "^resuming from" "$dir/resume.log"; then
    pass
  else
    fail "checkpoint attempt $attempt: resume status $status: $(cat "$dir/resume.log")"
  fi
done

# 3. SIGKILL during the HDF5 write (the sampling phase, many batches): no file under the
# output's name, the network file and the checkpoint intact; `rbsde sample` then completes.
start_run "$work/h5" --set sample.count=400000 --set sample.batch=2000
wait_for "^sample batch [0-9]*/" "$work/h5/log"
kill -KILL "$pid"
if killed_by_sigkill && [[ ! -e $work/h5/run.h5 && -f $work/h5/run.pt && -f $work/h5/run.ckpt ]]; then
  pass
else
  fail "SIGKILL during the HDF5 write: $(ls "$work/h5"), $(cat "$work/h5/log")"
fi
if "$rbsde" sample "$work/run.yaml" --set output.path="$work/h5/run.h5" > "$work/h5/sample.log" 2>&1 \
  && same_results "$work/full/run.h5" "$work/h5/run.h5"; then
  pass
else
  fail "sample after SIGKILL during the HDF5 write: $(cat "$work/h5/sample.log")"
fi
# A completed output stays as it was when a later run writing elsewhere is killed.
sum_before=$(sha256sum < "$work/full/run.h5")
start_run "$work/h5b" --set sample.count=400000 --set sample.batch=2000 \
  --set precondition.kind=pilot --set precondition.pilot="$work/full/run.h5"
wait_for "^sample batch [0-9]*/" "$work/h5b/log"
kill -KILL "$pid"
killed_by_sigkill && [[ $(sha256sum < "$work/full/run.h5") == "$sum_before" ]] && pass \
  || fail "a completed output read by a killed run changed"

# 4. One rank killed under mpirun: the job ends within 30 s, non-zero, saying which rank.
mkdir -p "$work/rank"
timeout 120 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run "$work/run.yaml" \
  --set output.path="$work/rank/run.h5" > "$work/rank/log" 2>&1 &
pid=$!
wait_for "^train " "$work/rank/log"
victim=$(pgrep -n -f "^$rbsde run $work/run.yaml --set output.path=$work/rank/")
start=$SECONDS
kill -KILL "$victim"
wait "$pid"
status=$?
elapsed=$((SECONDS - start))
if [[ $status -ne 0 && $status -ne 124 && $elapsed -le 30 && ! -e $work/rank/run.h5 ]] \
  && grep -Eqi "signal 9|killed" "$work/rank/log"; then
  pass
else
  fail "rank killed: status $status after $elapsed s: $(cat "$work/rank/log")"
fi

# 5. A slow target (about 0.4 s a call, tests/fuzz/misbehaving_modules.py): the first progress
# line comes with the first iteration, not after train.log_every of them, and SIGTERM still
# writes the checkpoint and stops with status 143.
mkdir -p "$work/slow"
/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../fuzz/misbehaving_modules.py" "$work/modules" \
  > "$work/slow/modules.log" 2>&1 || fail "writing the modules: $(cat "$work/slow/modules.log")"
cat > "$work/slow.yaml" << YAML
target: {name: torchscript, dim: 2, module: $work/modules/slow.pt}
precondition: {kind: none}
network: {width: 16, depth: 1}
train: {iterations: 3000, paths: 64, log_every: 1000}
YAML
"$rbsde" run "$work/slow.yaml" --set output.path="$work/slow/run.h5" > "$work/slow/log" 2>&1 &
pid=$!
if wait_for "^train  *1/3000 .*it/s  ETA" "$work/slow/log"; then
  kill -TERM "$pid"
  wait "$pid"
  status=$?
  if [[ $status -eq 143 && -f $work/slow/run.ckpt ]] && grep -q "^stopped by a signal" "$work/slow/log"; then
    pass
  else
    fail "SIGTERM to a run with a slow target: status $status: $(cat "$work/slow/log")"
  fi
else
  kill -KILL "$pid" 2> /dev/null
  fail "no progress line from a run with a slow target within 60 s: $(cat "$work/slow/log")"
fi

echo "faults: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
