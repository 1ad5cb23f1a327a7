#!/usr/bin/env bash
# Two runs on one output path: the second refuses at start-up (also with --resume), naming the
# run that holds the path, and writes nothing; a lock left by a killed run is taken over on the
# same host and by a requeued SLURM job; a lock from another host is a refusal that says how
# to clear it, and a file of that name that is not an rbsde lock is never touched.
# Usage: test_output_lock.sh RBSDE_BINARY
set -uo pipefail
rbsde=$1
work=$(mktemp -d)
trap 'kill -KILL $(jobs -p) 2> /dev/null; rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
failures=0
passes=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { passes=$((passes + 1)); }
host=$(hostname)

cat > "$work/run.yaml" << YAML
target: {name: gaussian, dim: 2, mean: [1, -1], covariance: 0.5}
sde: {steps: 10}
network: {width: 16, depth: 1}
train: {iterations: 200000, paths: 64, log_every: 100, checkpoint_every: 100}
sample: {count: 1000}
YAML
out=$work/same/run.h5
lock=$out.lock
short=(--set train.iterations=20 --set train.checkpoint_every=0)

# wait_for PATTERN FILE: waits (at most 60 s) until FILE has a line matching PATTERN.
wait_for() {
  for _ in $(seq 600); do
    grep -q "$1" "$2" 2> /dev/null && return 0
    sleep 0.1
  done
  return 1
}
# second_run NAME [ARGS...]: a run on the same path; sets $status, its output in $work/NAME.log.
second_run() {
  local name=$1
  shift
  "$rbsde" run "$work/run.yaml" --set output.path="$out" "$@" > "$work/$name.log" 2>&1
  status=$?
}

# 1. A 2-rank run holds the path; a second run, and a second run with --resume, refuse at
# once, naming its host and start, and leave the path's files as they were.
mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run "$work/run.yaml" \
  --set output.path="$out" > "$work/first.log" 2>&1 &
first=$!
if ! wait_for "^train .*100/" "$work/first.log"; then
  fail "the first run did not start training: $(cat "$work/first.log")"
fi
held=$(cat "$lock" 2> /dev/null)
for resume in "" --resume; do
  before=$(ls "$work/same")
  second_run second $resume
  if [[ $status -ne 1 ]] ||
    ! grep -q "output.path '$out' is in use by another run (host $host, pid [0-9]*, started" \
      "$work/second.log" ||
    ! grep -q "still running on this host" "$work/second.log" ||
    grep -q "^train" "$work/second.log"; then
    fail "second run ${resume:-without --resume} (status $status): $(cat "$work/second.log")"
  elif [[ $(cat "$lock") != "$held" || $(ls "$work/same") != "$before" ]]; then
    fail "the refused run ${resume} changed the lock or the files: $(ls "$work/same")"
  else
    pass
  fi
done

# 2. SIGTERM (through mpirun): the first run checkpoints, stops and releases the path.
kill -TERM "$first"
wait "$first"
if ! grep -q "^stopped by a signal" "$work/first.log" || [[ -e $lock ]]; then
  fail "after SIGTERM: lock $(ls "$lock" 2>&1): $(tail -5 "$work/first.log")"
else
  pass
fi

# 3. A run killed by SIGKILL leaves its lock; the next run on this host sees that its holder
# has ended, says so, takes it over and runs.
rm -rf "$work/same"
"$rbsde" run "$work/run.yaml" --set output.path="$out" > "$work/killed.log" 2>&1 &
killed=$!
wait_for "^train .*200/" "$work/killed.log"
kill -KILL "$killed"
wait "$killed" 2> /dev/null
if [[ ! -e $lock ]]; then
  fail "no lock left by the killed run: $(ls "$work/same")"
else
  timeout 120 "$rbsde" run "$work/run.yaml" --set output.path="$out" \
    --set train.iterations=20 > "$work/takeover.log" 2>&1
  status=$?
  if [[ $status -eq 0 ]] &&
    grep -q "took over the lock '$lock' of a run that has ended (host $host, pid $killed" \
      "$work/takeover.log" && [[ ! -e $lock && -f $out ]]; then
    pass
  else
    fail "taking over a dead run's lock (status $status): $(head -5 "$work/takeover.log")"
  fi
fi

# write_lock HOST JOB RESTARTS: a lock written by a run on HOST under SLURM job JOB.
write_lock() {
  mkdir -p "$work/same"
  printf 'rbsde output lock\nhost: %s\npid: 4321\nprocess_start: 99\nstarted: 2026-01-01T00:00:00Z\ncommand: rbsde run other.yaml\nslurm_job_id: %s\nslurm_restart_count: %s\n' \
    "$1" "$2" "$3" > "$lock"
}

# 4. A lock from another host cannot be checked: refused, with the way to clear it; the lock
# is left as it is; once removed, the run goes.
rm -rf "$work/same"
write_lock node-b17 "" 0
held=$(cat "$lock")
second_run foreign "${short[@]}"
if [[ $status -eq 1 ]] && grep -q "host node-b17, pid 4321" "$work/foreign.log" &&
  grep -q "if it has ended (it ran on host node-b17.*remove '$lock' and start again" \
    "$work/foreign.log" && [[ $(cat "$lock") == "$held" ]]; then
  pass
else
  fail "a lock from another host (status $status): $(cat "$work/foreign.log")"
fi
rm "$lock"
second_run cleared "${short[@]}"
[[ $status -eq 0 && ! -e $lock ]] && pass || fail "after removing the lock: $(cat "$work/cleared.log")"

# 5. SLURM: a requeued job (same job id, higher restart count) takes over the lock of its
# earlier start on another node; a second step of the same start does not.
write_lock node-b17 4242 0
SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=0 second_run same_step "${short[@]}"
if [[ $status -eq 1 ]] && grep -q "SLURM job 4242" "$work/same_step.log"; then
  pass
else
  fail "the same SLURM job start (status $status): $(cat "$work/same_step.log")"
fi
SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=1 second_run requeued "${short[@]}"
if [[ $status -eq 0 ]] && grep -q "took over the lock" "$work/requeued.log" && [[ ! -e $lock ]]; then
  pass
else
  fail "a requeued SLURM job (status $status): $(cat "$work/requeued.log")"
fi

# 6. A file of the lock's name that rbsde did not write: refused, and never touched.
echo "a user's notes" > "$lock"
second_run foreign_file "${short[@]}"
if [[ $status -eq 1 ]] && grep -q "exists and is not an rbsde lock file" "$work/foreign_file.log" &&
  [[ $(cat "$lock") == "a user's notes" ]]; then
  pass
else
  fail "a foreign file named like the lock (status $status): $(cat "$work/foreign_file.log")"
fi

echo "output-lock tests: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
