# Sourced by the job scripts of jobs/: where rbsde is, the run directory of a job, and the
# launcher (srun inside a SLURM allocation, mpirun outside it).
#
# Environment a user may set:
#   RBSDE_BINARY  the rbsde executable (default: build/rbsde of the project)
#   RBSDE_RUNS    where run directories are made (default: runs/ in the submit directory)
#   RBSDE_RANKS   ranks of a run outside SLURM (default 2); inside SLURM: the allocation's tasks
#   RBSDE_JOB_ID  the job id outside SLURM (default local-DATE-PID); give a stopped
#                 preemptible run's id to resume it

# sbatch runs a copy of the script from its spool directory: find the project from where the
# job was submitted.
rbsde_root=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
rbsde_binary=${RBSDE_BINARY:-$rbsde_root/build/rbsde}
[[ -x $rbsde_binary ]] || { echo "rbsde binary not found at $rbsde_binary: run scripts/build.sh" >&2; exit 2; }
if [[ $(id -u) -eq 0 ]]; then  # OpenMPI refuses root unless told
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# job_id: SLURM's job id (JOB_TASK for an array task), else RBSDE_JOB_ID, else local-DATE-PID.
job_id() {
  if [[ -n ${SLURM_ARRAY_JOB_ID:-} ]]; then
    echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  elif [[ -n ${SLURM_JOB_ID:-} ]]; then
    echo "$SLURM_JOB_ID"
  else
    echo "${RBSDE_JOB_ID:-local-$(date +%Y%m%d-%H%M%S)-$$}"
  fi
}

# new_run_dir NAME: creates and prints RBSDE_RUNS/NAME-JOBID; refuses one that exists (a run
# never writes into another run's directory).
new_run_dir() {
  local dir=${RBSDE_RUNS:-$rbsde_root/runs}/$1-$(job_id)
  mkdir -p "$(dirname "$dir")"
  mkdir "$dir" 2>/dev/null || { echo "run directory $dir exists: not writing into it" >&2; return 1; }
  echo "$dir"
}

# total_ranks: the tasks of the SLURM allocation, else RBSDE_RANKS (default 2).
total_ranks() {
  if [[ -n ${SLURM_JOB_ID:-} ]]; then echo "${SLURM_NTASKS:-1}"; else echo "${RBSDE_RANKS:-2}"; fi
}

# rank_counts N: the rank counts of a scaling study up to N: 1, 2, 4, ... below N, and N.
rank_counts() {
  local n=$1 r=1 counts=()
  while ((r < n)); do counts+=("$r"); r=$((r * 2)); done
  counts+=("$n")
  echo "${counts[*]}"
}

# resolved_value FILE SECTION.KEY...: the values of keys in a resolved configuration (the YAML
# `rbsde config` prints: sections at the margin, their keys indented below), space-separated.
resolved_value() {
  local file=$1 key values=()
  shift
  for key; do
    values+=("$(awk -v section="${key%%.*}" -v name="${key#*.}:" '
      /^[^ ]/ { current = $1; sub(":$", "", current) }
      current == section && $1 == name { print $2; exit }' "$file")")
  done
  echo "${values[*]}"
}

# launch RANKS ARGS...: rbsde ARGS on RANKS ranks, with srun inside an allocation (threads per
# rank from --cpus-per-task) and mpirun outside it. The caller waits for it (`wait $!`), so a
# signal to the job script reaches its trap while the ranks run.
launch() {
  local ranks=$1
  shift
  if [[ -n ${SLURM_JOB_ID:-} ]]; then
    srun --mpi=pmix --ntasks="$ranks" --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" \
      "$rbsde_binary" "$@" &
  else
    local oversubscribe=()
    (( ranks > $(nproc) )) && oversubscribe=(--oversubscribe)
    mpirun -np "$ranks" --bind-to none "${oversubscribe[@]}" "$rbsde_binary" "$@" &
  fi
}

# run_in DIR RANKS CONFIG [--set key=value ...]: the resolved configuration into DIR/config.yaml,
# then `rbsde run` on RANKS ranks with its output in DIR (output.h5, output.pt, output.ckpt)
# and its log in DIR/log. Extra launch arguments (--resume) come from RBSDE_RUN_OPTIONS.
# Returns rbsde's exit status (143: stopped by a signal after writing its checkpoint).
run_in() {
  local dir=$1 ranks=$2 config=$3
  shift 3
  local settings=("$@" --set "output.path=$dir/output.h5")
  "$rbsde_binary" config "$config" "${settings[@]}" > "$dir/config.yaml" || return
  echo "job $(job_id): rbsde run $config on $ranks ranks -> $dir" | tee -a "$dir/log"
  # shellcheck disable=SC2086  # RBSDE_RUN_OPTIONS holds whole options
  launch "$ranks" run "$config" "${settings[@]}" ${RBSDE_RUN_OPTIONS:-} >> "$dir/log" 2>&1
  # A signal the job script traps ends `wait` early: wait until the ranks have exited.
  local pid=$! status=0
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
  wait "$pid" || status=$?
  echo "job $(job_id): exit status $status" >> "$dir/log"
  return $status
}
