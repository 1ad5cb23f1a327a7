# Shared by the benchmark scripts (run.sh, sweep.sh, scaling_model.sh, nuts/run.sh): sourced,
# not run. cpp and py need the caller's bench (rbsde_bench_train), python, here (bench/) and
# quiet_wait (seconds to wait for idle cores before each measurement; 0 = do not wait).
if [[ $(id -u) == 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Waits (at most quiet_wait seconds) until the node's cores are at least 90 % idle over one
# second, so that no other job shares them during a measurement; says so when they never are.
wait_quiet() {
  [[ $quiet_wait -gt 0 ]] || return 0
  local waited=0 idle
  while :; do
    idle=$(idle_percent)
    if [[ $idle -ge 90 ]]; then return 0; fi
    if [[ $waited -ge $quiet_wait ]]; then
      echo "# note: cores only ${idle}% idle before this measurement: figures may be disturbed"
      return 0
    fi
    waited=$((waited + 1))
  done
}
idle_percent() {  # idle share of all cores over one second, from /proc/stat
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $(((b[4] - a[4] + b[5] - a[5]) * 100 / (total > 0 ? total : 1)))
}

cpp() {  # cpp NP THREADS ARGS...: one bench-train line
  local np=$1 threads=$2
  shift 2
  wait_quiet
  OMP_NUM_THREADS=$threads mpirun -np "$np" --bind-to none -x OMP_NUM_THREADS \
    "$bench" --threads "$threads" "$@" | grep '^bench-train'
}
py() {  # py THREADS ARGS...: one bench-python line
  local threads=$1
  shift
  wait_quiet
  OMP_NUM_THREADS=$threads "$python" "$here/python_step.py" --threads "$threads" "$@" |
    grep '^bench-python'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# The data of configs/logreg_synthetic.yaml, results/synthetic_1000.csv under ROOT, written
# once (scripts/synthetic_logreg.py, fixed seed).
synthetic_data() {  # synthetic_data ROOT
  [[ -f $1/results/synthetic_1000.csv ]] && return 0
  mkdir -p "$1/results"
  /usr/bin/python3 "$1/scripts/synthetic_logreg.py" "$1/results/synthetic_1000.csv"
}
