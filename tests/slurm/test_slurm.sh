#!/usr/bin/env bash
# A real SLURM on this machine: installs slurm-wlm and munge when missing, starts munged,
# slurmctld and slurmd as a one-node cluster (configuration, state, sockets and logs in a
# scratch directory), submits jobs/rbsde.sbatch, a two-point strong-scaling study and a
# preemption test with a tiny config, waits for each with a timeout, checks the outputs, and
# stops exactly the daemons it started. Where SLURM cannot start, it prints why and exits 77
# (CTest: skipped).
#   test_slurm.sh RBSDE_BINARY SOURCE_DIR
set -uo pipefail
rbsde=$1
source_dir=$2
work=$(mktemp -d /tmp/rbsde-slurm.XXXXXX)
started=()
failures=0
pass() { echo "slurm: PASS: $1"; }
fail() { echo "slurm: FAIL: $1"; failures=$((failures + 1)); }
skip() { echo "slurm: SKIPPED: SLURM cannot start here: $1"; exit 77; }
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null || ! command -v munged > /dev/null; then
  [[ $(id -u) -eq 0 ]] || skip "slurm-wlm and munge are not installed and this is not root"
  echo "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge \
    > "$work/apt.log" 2>&1 || skip "apt-get install slurm-wlm munge failed: $(tail -3 "$work/apt.log")"
fi
[[ $(id -u) -eq 0 ]] || skip "the daemons of a one-node cluster are started as root"

# munged of our own: its key, socket and files in the scratch directory.
mkdir -m 0700 "$work/munge"
dd if=/dev/urandom of="$work/munge/key" bs=1024 count=1 status=none
chmod 0400 "$work/munge/key"
munged --force --key-file="$work/munge/key" --socket="$work/munge/socket" \
  --pid-file="$work/munge/pid" --log-file="$work/munge/log" --seed-file="$work/munge/seed" \
  || skip "munged did not start: $(tail -3 "$work/munge/log" 2>/dev/null)"
for _ in $(seq 50); do [[ -s $work/munge/pid ]] && break; sleep 0.1; done
started+=("$(cat "$work/munge/pid")")

host=$(hostname)
memory=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
mkdir -p "$work/state" "$work/spool"
port=$((20000 + RANDOM % 20000))
cat > "$work/slurm.conf" <<CONF
ClusterName=rbsdetest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$work/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld || skip "slurmctld did not start: $(tail -5 "$work/slurmctld.log" 2>/dev/null)"
for _ in $(seq 50); do [[ -s $work/slurmctld.pid ]] && break; sleep 0.1; done
started+=("$(cat "$work/slurmctld.pid")")
slurmd || skip "slurmd did not start: $(tail -5 "$work/slurmd.log" 2>/dev/null)"
for _ in $(seq 50); do [[ -s $work/slurmd.pid ]] && break; sleep 0.1; done
started+=("$(cat "$work/slurmd.pid")")
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q -E '^idle' && break
  sleep 1
done
sinfo -h -o %t | grep -q -E '^idle' \
  || skip "the node did not come up: $(sinfo 2>&1), $(tail -5 "$work/slurmd.log" "$work/slurmctld.log")"
echo "slurm: one-node SLURM up: $(sinfo -h -o '%P %D %t %N')"

# wait_job ID SECONDS: waits until the job has ended; prints and returns its state.
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_job() {
  local id=$1 state=""
  for _ in $(seq "$2"); do
    state=$(job_state "$id")
    case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 1
  done
  echo "slurm: job $id: $state ($(scontrol show job "$id" | grep -o 'Restarts=[0-9]*'))" >&2
  echo "$state"
}

cd "$source_dir"
export RBSDE_BINARY=$rbsde RBSDE_RUNS=$work/runs OMP_NUM_THREADS=1
sed -e 's#results/gaussian.h5#unused.h5#' configs/gaussian.yaml > "$work/tiny.yaml"
tiny=(--set train.iterations=60 --set sample.count=1000 --set network.width=16)

# 1. The single run.
id=$(sbatch --parsable --output="$work/single-%j.out" jobs/rbsde.sbatch "$work/tiny.yaml" "${tiny[@]}")
echo "slurm: submitted jobs/rbsde.sbatch as job $id"
state=$(wait_job "$id" 300)
if [[ $state == COMPLETED && -f $work/runs/rbsde-$id/output.h5 && -f $work/runs/rbsde-$id/config.yaml ]] \
  && grep -q "ranks 2" "$work/runs/rbsde-$id/log"; then
  pass "single run, job $id $state"
else
  fail "single run, job $id $state: $(cat "$work/single-$id.out" "$work/runs/rbsde-$id/log" 2>&1 | tail -20)"
fi

# 2. A two-point strong-scaling study, and its plot.
id=$(sbatch --parsable --output="$work/strong-%j.out" jobs/strong_scaling.sbatch "$work/tiny.yaml" "${tiny[@]}")
echo "slurm: submitted jobs/strong_scaling.sbatch as job $id"
state=$(wait_job "$id" 300)
if [[ $state == COMPLETED ]] && PYTHONPATH=$source_dir /usr/bin/python3 -m postprocess scaling \
  "$work/runs/strong-$id" > "$work/scaling.log" 2>&1 && [[ -s $work/runs/strong-$id/scaling.png ]]; then
  pass "strong scaling study, job $id $state: $(tail -4 "$work/scaling.log" | head -2 | tr '\n' ';')"
else
  fail "strong scaling, job $id $state: $(cat "$work/strong-$id.out" "$work/scaling.log" 2>&1 | tail -20)"
fi

# 3. Preemption: the time-limit warning (SIGUSR1 to the batch script, sent here at once
# instead of waiting for the limit) requeues the job, SIGTERM makes rbsde write its
# checkpoint, and the restarted job resumes to the result of an uninterrupted run.
long=("${tiny[@]}" --set train.iterations=3000 --set train.paths=128 --set train.log_every=50)
RBSDE_JOB_ID=uninterrupted bash jobs/preemptible.sbatch "$work/tiny.yaml" "${long[@]}" \
  > "$work/uninterrupted.out" 2>&1 || fail "uninterrupted run: $(tail -20 "$work/uninterrupted.out")"
id=$(sbatch --parsable --output="$work/long-%j.out" jobs/preemptible.sbatch "$work/tiny.yaml" "${long[@]}")
echo "slurm: submitted jobs/preemptible.sbatch as job $id"
for _ in $(seq 300); do
  grep -q "^train " "$work/runs/long-$id/log" 2>/dev/null && break
  sleep 0.2
done
scancel --batch --signal=USR1 "$id"
state=$(wait_job "$id" 400)
log=$work/runs/long-$id/log
if [[ $state == COMPLETED ]] && grep -q "requeueing" "$log" && grep -q "resuming from" "$log" \
  && grep -q "exit status 143" "$log" \
  && /usr/bin/python3 - "$work/runs/long-uninterrupted/output.h5" "$work/runs/long-$id/output.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for name in ("samples", "log_weights", "training/loss", "training/log_z"):
        assert np.array_equal(a[name][:], b[name][:]), name
PY
then
  pass "preemption: job $id requeued, resumed and $state, same result as the uninterrupted run"
else
  fail "preemption, job $id $state: $(cat "$work/long-$id.out" "$log" 2>&1 | grep -v '^train ' | tail -30)"
fi
echo "slurm: $((3 - failures)) passed, $failures failed"
((failures == 0))
