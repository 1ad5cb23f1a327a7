#!/usr/bin/env bash
# Malformed-input fuzzing of rbsde. Builds a corpus of malformed inputs in a temporary
# directory: configuration files (wrong types, missing, unknown or duplicate keys, values out
# of range, huge and negative sizes, NaN and infinities, non-UTF-8 bytes, empty files,
# directories, unreadable files, bad YAML syntax, wrong nesting), command lines, and corrupted
# or truncated files of every kind rbsde reads: pilot HDF5 files (precondition.pilot),
# checkpoints (--resume), network files (sample.model), data CSVs (target.data) and
# TorchScript modules (target.module), and modules that run but misbehave (half precision, not
# a tensor, a NaN gradient, an allocation without bound); the files to corrupt come from one
# small real run.
# Each input is run twice: as a plain `rbsde ...` (1 rank) and under
# `mpirun -np 2 --oversubscribe --bind-to none` (2 ranks). Every run must
#   1. fail: exit status non-zero and below 124, not a signal, and no sign of one in the
#      output ("Signal:", "Aborted", "Segmentation", "terminate called", ...);
#   2. end within 60 s (timeout: a hang; a run that ignores SIGTERM is killed 5 s later and
#      counts as a hang too), and fail within 20 s and 1 GB resident: the errors take a second
#      or two and 200 MB, so a costlier one did work the input should have been refused
#      before (each process gets 3 GB of address space, so that an input that allocates
#      without bound fails instead of taking the machine's memory);
#   3. print `rbsde: error: MESSAGE` (`rbsde: error on rank N:` for a failure of some ranks
#      only) on stderr, exactly once also on 2 ranks, naming the offending key or file: each input
#      carries the substring its message must contain (an input accepted with status 0 has
#      no message and counts here too);
#   4. leave no output behind: no new .h5 file and no .tmp file anywhere in the corpus, the
#      output directory or the working directory (other new files are listed as notes);
#   5. modify no input: the sha256 of every file the run names (the configuration, and the
#      module, data, pilot, checkpoint or network file) is unchanged, and at the end no file
#      of the corpus has changed or disappeared.
# Prints each failure with its command, per-category counts and the final line
#   fuzz: inputs N, runs R, clean errors C, crashes X, hangs H, inputs modified M, unclear messages U
# Exit status non-zero on a crash, hang, costly failure, modified input, unclear message or
# leftover file, or with fewer than 200 inputs.
# The corpus runs as FUZZ_SHARDS shards (default 4) at the same time, input i in shard
# i mod FUZZ_SHARDS, each on its own copy of the corpus: one run at a time leaves the cores
# idle about 40 % of the time (start-up waits, one-rank runs).
# Usage: fuzz_inputs.sh RBSDE_BINARY SOURCE_DIR
# (While working on rbsde: FUZZ_SHARD=K runs shard K only, FUZZ_FILTER=REGEX only the inputs
# whose "category name" matches, FUZZ_LIST=1 lists the corpus.)
set -uo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: fuzz_inputs.sh RBSDE_BINARY SOURCE_DIR" >&2
  exit 2
fi
export FUZZ_SHARDS=${FUZZ_SHARDS:-4}
if [[ -z ${FUZZ_SHARD:-} && -z ${FUZZ_LIST:-} ]]; then
  shards=$(mktemp -d)
  pids=()
  for ((shard = 0; shard < FUZZ_SHARDS; shard++)); do
    FUZZ_SHARD=$shard bash "${BASH_SOURCE[0]}" "$@" > "$shards/$shard.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for ((shard = 0; shard < FUZZ_SHARDS; shard++)); do
    echo "=== shard $shard"
    cat "$shards/$shard.log"
  done
  # The totals over both shards, from their lines "fuzz-counts NAME=N ...".
  declare -A total=()
  for pair in $(sed -n 's/^fuzz-counts //p' "$shards"/*.log); do
    total[${pair%=*}]=$((${total[${pair%=*}]:-0} + ${pair#*=}))
  done
  rm -rf "$shards"
  echo "fuzz: inputs ${total[inputs]:-0}, runs ${total[runs]:-0}, clean errors ${total[clean]:-0}," \
    "crashes ${total[crashes]:-0}, hangs ${total[hangs]:-0}, inputs modified ${total[modified]:-0}," \
    "unclear messages ${total[unclear]:-0}, costly ${total[costly]:-0}, leftovers ${total[leftovers]:-0}"
  ((${total[inputs]:-0} >= 200)) || status=1
  exit "$status"
fi
rbsde=$(readlink -f "$1")
source_dir=$(readlink -f "$2")
python=/usr/bin/python3  # with h5py and numpy (and torch for the example module)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# Start-up time is most of each run's time: a plain `rbsde` (an MPI singleton) starts no orted
# helper, and MPI does not probe network transports it does not need on one node (together
# about 0.3 s less per run on 1 rank, 0.8 s on 2).
export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
# When a rank exits with a non-zero status (each run here), mpirun ends the job: SIGTERM to
# every process, then by default a second of grace before SIGKILL, which doubled the time of a
# 2-rank run. The ranks have printed their messages before they exit (MPI_Finalize is
# collective, and stderr is unbuffered), so no grace is needed.
export OMPI_MCA_odls_base_sigkill_timeout=0
timeout_s=60
# Address space per process of the fuzzed runs: an input that makes rbsde allocate without
# bound fails there (std::bad_alloc) instead of exhausting the machine's memory on 2 ranks.
memory_limit_kb=3000000
# A failure that takes longer, or a process larger than this, counts as costly.
costly_s=20
costly_kb=1000000
started=$SECONDS

work=$(mktemp -d)
trap 'chmod -R u+rwX "$work" 2>/dev/null; rm -rf "$work"' EXIT
corpus=$work/corpus  # every input file
real=$work/real      # the files of the real run, to corrupt
out=$work/out        # output.path of the runs
home=$work/home      # the runs' working directory (relative paths land here)
logs=$work/logs      # the runs' stdout and stderr (not scanned for leftovers)
mkdir -p "$corpus" "$real" "$out" "$home" "$logs" "$work/ompi"
# Isolated singletons share one Open MPI session directory (jf.0) under the temporary
# directory, and a run that ends removes it: with the shards running side by side, another
# shard's run lost its directory under it once (MPI_File_open failed in mca_sharedfp_sm).
# Each shard keeps its own.
export OMPI_MCA_orte_tmpdir_base=$work/ompi
# The largest resident size of a run's processes, from GNU time where there is one.
measure=()
[[ -x /usr/bin/time ]] && measure=(/usr/bin/time -o "$logs/run.rss" -f %M)
cd "$home" || exit 1

# ------------------------------------------------------------------------------------------
# The real files: one small run (out.h5, out.pt, out.ckpt) and the example TorchScript module.
cat > "$corpus/small.yaml" <<YAML
target: {name: gaussian, dim: 2, mean: [1, -1], covariance: 0.5}
sde: {steps: 10}
network: {width: 16, depth: 1}
train: {iterations: 20, paths: 64, checkpoint_every: 10}
sample: {count: 500, batch: 250}
output: {path: $real/out.h5}
YAML
# Open MPI's run-time start-up fails now and then when many MPI jobs start at once (seen about
# once in 2,000 runs: "ompi_rte_init failed" inside MPI_Init). That is before rbsde's own code
# has read anything, so it says nothing about the input: such a run is run once more, and
# counted. mpi_start_failed LOG...: whether the run that wrote LOG (stderr first) failed so.
mpi_start_failed() {
  ! grep -q '^rbsde' "$1" && grep -Eq 'ompi_rte_init failed|orte_init failed' "$@"
}
mpi_restarts=0
for attempt in 1 2; do
  "$rbsde" run "$corpus/small.yaml" > "$logs/setup.log" 2>&1
  setup_status=$?
  ((setup_status != 0)) && mpi_start_failed "$logs/setup.log" || break
  mpi_restarts=$((mpi_restarts + 1))
done
if ((setup_status != 0)) || [[ ! -f $real/out.h5 || ! -f $real/out.pt || ! -f $real/out.ckpt ]]; then
  echo "fuzz: the set-up run failed:"
  cat "$logs/setup.log"
  exit 1
fi
if ! "$python" "$source_dir/examples/torchscript_target.py" "$real/banana.pt" > "$logs/module.log" 2>&1 ||
  ! "$python" "$source_dir/tests/fuzz/misbehaving_modules.py" "$corpus/behaviour" >> "$logs/module.log" 2>&1; then
  echo "fuzz: writing the TorchScript modules failed:"
  cat "$logs/module.log"
  exit 1
fi

# ------------------------------------------------------------------------------------------
# Corrupted copies of the real files, written by Python (deterministic: fixed seeds, offsets
# taken from the files' structure). Bit flips land in structure that must be checked (zip
# headers and directories, pickles, TorchScript code, HDF5 superblock and object headers),
# not in raw tensor or dataset values, which no format checksums.
cat > "$work/corrupt.py" <<'PY'
import io, os, random, sys, zipfile
import h5py
import numpy as np

corpus, real, source = sys.argv[1:4]
rng = random.Random(20250101)


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def flipped(data, offset, mask=0x01):
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def truncations(data):
    n = len(data)
    return {"truncated_0": b"", "truncated_half": data[: n // 2], "truncated_last_byte": data[: n - 1]}


def zip_flips(data):
    """Offsets of zip structure: local header, end record, the pickle, the TorchScript code."""
    z = zipfile.ZipFile(io.BytesIO(data))
    flips = {"local_signature": (0, 0x01),
             "end_of_directory_signature": (data.rfind(b"PK\x05\x06"), 0x01)}
    for info in z.infolist():
        start = info.header_offset
        name_length = int.from_bytes(data[start + 26:start + 28], "little")
        extra_length = int.from_bytes(data[start + 28:start + 30], "little")
        payload = start + 30 + name_length + extra_length
        short = info.filename.split("/", 1)[-1]
        if short == "data.pkl":
            flips["pickle_opcode"] = (payload, 0x40)  # PROTO (0x80) becomes no opcode (0xc0)
            flips["pickle_middle"] = (payload + info.file_size // 2, 0x01)
        elif short.startswith("code/") and short.endswith(".py") and "code_start" not in flips:
            # Stored: the first letter of the code becomes '#', '/' or the like. Deflated: the
            # first block's type becomes the reserved one (or a stored block of bad length).
            stored = info.compress_type == zipfile.ZIP_STORED
            flips["code_start"] = (payload, 0x40 if stored else 0x02)
    return {"flip_" + name: flipped(data, offset, mask) for name, (offset, mask) in flips.items()}


def other_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
        z.writestr("archive/version", b"3\n")
        z.writestr("notes.txt", "a zip archive of something else\n")
    return buffer.getvalue()


def zip_family(data):
    variants = truncations(data)
    variants["random_bytes"] = rng.randbytes(len(data))
    variants["other_zip"] = other_zip()
    variants.update(zip_flips(data))
    return variants


# Checkpoints (each as run.ckpt in its own directory, beside output.path run.h5), network
# files and TorchScript modules.
for name, data in zip_family(open(real + "/out.ckpt", "rb").read()).items():
    put(f"{corpus}/checkpoint/{name}/run.ckpt", data)
for name, data in zip_family(open(real + "/out.pt", "rb").read()).items():
    put(f"{corpus}/model/{name}.pt", data)
for name, data in zip_family(open(real + "/banana.pt", "rb").read()).items():
    put(f"{corpus}/module/{name}.pt", data)

# Pilot files: truncated, random and bit-flipped copies of a complete output, and HDF5 files
# with the wrong structure.
h5 = open(real + "/out.h5", "rb").read()
pilot = f"{corpus}/pilot"
for name, data in truncations(h5).items():
    put(f"{pilot}/{name}.h5", data)
put(f"{pilot}/random_bytes.h5", rng.randbytes(4096))
# The superblock's signature and version; in a version 0 superblock the top bit of the root
# group's object header address (bytes 64-71), else the first object header's signature.
flips = {"superblock_signature": (0, 0x01), "superblock_version": (8, 0x04)}
if h5[8] == 0:
    flips["root_object_header_address"] = (71, 0x80)
else:
    flips["first_object_header_signature"] = (h5.find(b"OHDR"), 0x01)
for name, (offset, mask) in flips.items():
    put(f"{pilot}/flip_{name}.h5", flipped(h5, offset, mask))
# A well-formed output, then with one thing wrong each.
samples = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)


def pilot_file(name, samples=samples, log_weights=np.zeros(50), complete=1, extra=None):
    with h5py.File(f"{pilot}/{name}.h5", "w") as f:
        if samples is not None:
            f["samples"] = samples
        if log_weights is not None:
            f["log_weights"] = log_weights
        if complete is not None:
            f.attrs["complete"] = complete
        if extra:
            extra(f)


pilot_file("no_samples", samples=None)
pilot_file("complete_string", complete="yes")
pilot_file("samples_3_columns", samples=np.zeros((50, 3), np.float32))
pilot_file("samples_no_rows", samples=np.zeros((0, 2), np.float32), log_weights=np.zeros(0))
pilot_file("samples_one_row", samples=samples[:1], log_weights=np.zeros(1))
pilot_file("samples_nan", samples=np.full((50, 2), np.nan, np.float32))
pilot_file("log_weights_minus_inf", log_weights=np.full(50, -np.inf))
pilot_file("samples_strings", samples=np.array([[b"a", b"b"]] * 50))
# /samples and /log_weights that claim 10^12 rows (chunked, nothing written: a small file).
pilot_file("samples_10e12_rows", samples=None, log_weights=None, extra=lambda f: (
    f.create_dataset("samples", shape=(10**12, 2), dtype="f4", chunks=(1024, 2)),
    f.create_dataset("log_weights", shape=(10**12,), dtype="f8", chunks=(1024,))))
# The real output with its `complete` attribute deleted (an interrupted run's file).
with open(f"{pilot}/complete_deleted.h5", "wb") as f:
    f.write(h5)
with h5py.File(f"{pilot}/complete_deleted.h5", "a") as f:
    del f.attrs["complete"]

# Data CSVs for logreg_ionosphere (header of 34 features and Class, then rows).
text = open(source + "/data/ionosphere.csv").read()
lines = text.splitlines()
header, rows = lines[0], lines[1:]


def with_cell(row, column, value):
    fields = rows[row].split(",")
    fields[column] = value
    changed = list(rows)
    changed[row] = ",".join(fields)
    return "\n".join([header] + changed) + "\n"


csv = f"{corpus}/csv"
cut = len(text) // 2
while text[cut - 1] in "\n,":
    cut += 1
csvs = {
    "truncated_mid_row": text[:cut].encode(),
    "empty": b"",
    "non_numeric": with_cell(4, 5, "abc").encode(),
    "nan_cell": with_cell(6, 2, "nan").encode(),
    "label_2": with_cell(2, 34, "2").encode(),
    "unclosed_quote": with_cell(3, 0, '"1').encode(),
    "non_utf8_cell": with_cell(7, 3, "\udcff\udcfe").encode("utf-8", "surrogateescape"),
    "ragged_extra_field": "\n".join([header] + rows[:9] + [rows[9] + ",0.5"] + rows[10:]).encode(),
    "wrong_column_count": "\n".join([header] + [r + ",1" for r in rows]).encode(),
    "no_label_column": "\n".join([header.replace('"Class"', '"Klass"')] + rows).encode(),
    "utf16": text.encode("utf-16"),
    "random_bytes": rng.randbytes(2048),
}
for name, data in csvs.items():
    put(f"{csv}/{name}.csv", data)
# lgcp: a coordinate outside [0, 1]; columns without data_x and data_y. gmm40: a non-number.
put(f"{csv}/lgcp_outside.csv", b'"","data_x","data_y"\n"1",0.3,0.8\n"2",1.5,0.2\n')
put(f"{csv}/gmm40_non_numeric.csv", b"x,y\n1,2\n3,four\n")
PY
if ! "$python" "$work/corrupt.py" "$corpus" "$real" "$source_dir" > "$logs/corrupt.log" 2>&1; then
  echo "fuzz: writing the corrupted files failed:"
  cat "$logs/corrupt.log"
  exit 1
fi

# ------------------------------------------------------------------------------------------
# The corpus: one entry per input, with its category, name, the substring its message must
# contain, the files it reads, and the command line.
K_CATEGORY=()
K_NAME=()
K_EXPECT=()
K_INPUTS=()
K_ARGS=()

# add CATEGORY NAME EXPECTED [INPUT_FILE...] -- ARGUMENT...: an input. The files the arguments
# name (as an argument or as the value of --set key=value) are inputs too.
add() {
  local category=$1 name=$2 expected=$3
  shift 3
  local -a inputs=()
  while [[ $1 != -- ]]; do
    inputs+=("$1")
    shift
  done
  shift
  local arg value
  for arg in "$@"; do
    value=${arg#*=}
    if [[ $arg == /* && (-e $arg || -L $arg) ]]; then inputs+=("$arg"); fi
    if [[ $arg == *=/* && (-e $value || -L $value) ]]; then inputs+=("$value"); fi
  done
  K_CATEGORY+=("$category")
  K_NAME+=("$name")
  K_EXPECT+=("$expected")
  K_INPUTS+=("$( ((${#inputs[@]} == 0)) || printf '%q ' "${inputs[@]}")")
  K_ARGS+=("$( (($# == 0)) || printf '%q ' "$@")")
}

# new_file CATEGORY EXTENSION: a fresh path in the corpus, named after the next entry.
new_file() {
  mkdir -p "$corpus/$1"
  printf '%s/%s/%03d.%s' "$corpus" "$1" "${#K_NAME[@]}" "$2"
}

# unreadable PATH: makes PATH a file this process cannot read (chmod 000). As root every file is
# readable, so PATH becomes a symbolic link to nowhere instead (counted in substituted_unreadable).
substituted_unreadable=0
unreadable() {
  echo "target: {name: gaussian, dim: 2}" > "$1"
  chmod 000 "$1"
  if [[ -r $1 ]]; then
    rm -f "$1"
    ln -s "$1.nowhere" "$1"
    substituted_unreadable=$((substituted_unreadable + 1))
  fi
}

# The base configuration: tiny, so that an input accepted by mistake still ends in seconds.
base_keys=(target.name target.dim sde.steps network.width network.depth train.iterations
  train.paths train.checkpoint_every sample.count sample.batch output.path)
declare -A base_values=([target.name]=gaussian [target.dim]=2 [sde.steps]=2 [network.width]=4
  [network.depth]=1 [train.iterations]=1 [train.paths]=8 [train.checkpoint_every]=0
  [sample.count]=8 [sample.batch]=8 [output.path]="$out/run.h5")

# make_yaml [KEY=VALUE | -KEY]...: the base configuration in block style, with each KEY set to
# VALUE (verbatim YAML text; a new KEY is appended) or removed (-KEY).
make_yaml() {
  local -a keys=("${base_keys[@]}")
  local -A values=()
  local key change section
  for key in "${keys[@]}"; do values[$key]=${base_values[$key]}; done
  for change in "$@"; do
    if [[ $change == -* ]]; then
      unset "values[${change#-}]"
      continue
    fi
    key=${change%%=*}
    [[ -v values[$key] || " ${keys[*]} " == *" $key "* ]] || keys+=("$key")
    values[$key]=${change#*=}
  done
  local done_sections=" "
  for key in "${keys[@]}"; do
    section=${key%%.*}
    [[ $done_sections == *" $section "* ]] && continue
    done_sections+="$section "
    local header_written=0 other
    for other in "${keys[@]}"; do
      [[ ${other%%.*} == "$section" && -v values[$other] ]] || continue
      ((header_written)) || echo "$section:"
      header_written=1
      echo "  ${other#*.}: ${values[$other]}"
    done
  done
}

# config_case CATEGORY EXPECTED CHANGE...: a configuration file of the base with make_yaml's
# changes, run with `rbsde run`.
config_case() {
  local category=$1 expected=$2
  shift 2
  local file
  file=$(new_file "$category" yaml)
  make_yaml "$@" > "$file"
  add "$category" "$*" "$expected" -- run "$file"
}

# raw_case CATEGORY NAME EXPECTED TEXT: a configuration file of exactly TEXT (printf %b: \n,
# \xHH escapes), run with `rbsde run`. EXPECTED @file: the file's path.
raw_case() {
  local category=$1 name=$2 expected=$3 text=$4
  local file
  file=$(new_file "$category" yaml)
  printf '%b' "$text" > "$file"
  [[ $expected == @file ]] && expected=$file
  add "$category" "$name" "$expected" -- run "$file"
}

# The base configuration's sections after target, for raw_case texts.
tail_yaml="sde: {steps: 2}\nnetwork: {width: 4, depth: 1}\ntrain: {iterations: 1, paths: 8, checkpoint_every: 0}\nsample: {count: 8, batch: 8}\noutput: {path: $out/run.h5}\n"

# --- configuration: wrong types -----------------------------------------------------------
for change in target.dim=two "target.dim=[2]" target.dim= sde.steps=ten network.width=16.5 \
  "train.lr='0.1'" train.seed=18446744073709551616 sample.resample=maybe sample.method=3 \
  "output.path=[a, b]" "target.covariance=[1, x]" "precondition.kind=[laplace]"; do
  config_case config-type "${change%%=*}" "$change"
done
config_case config-type target.name 'target.name=5'
config_case config-type target.name 'target.name=[gaussian]'

# --- configuration: missing required keys -------------------------------------------------
config_case config-missing target.name -target.name
config_case config-missing target.dim -target.dim
raw_case config-missing "empty target section" target.name "target: {}\n$tail_yaml"
config_case config-missing target.means target.name=gmm
config_case config-missing target.module target.name=torchscript
config_case config-missing target.data target.name=logreg -target.dim
config_case config-missing precondition.pilot precondition.kind=pilot

# --- configuration: unknown keys and sections ---------------------------------------------
config_case config-unknown train.iteratons train.iteratons=5
config_case config-unknown targt targt.name=gaussian
config_case config-unknown train.x.y train.x.y=1
config_case config-unknown target.module "target.module=$corpus/small.yaml"
config_case config-unknown precondition.pilot precondition.pilot=x.h5
raw_case config-unknown "top-level key" "'foo'" "foo: 1\ntarget: {name: gaussian, dim: 2}\n$tail_yaml"
raw_case config-unknown "list as key" @file "? [a, b]\n: 1\ntarget: {name: gaussian, dim: 2}\n"
raw_case config-unknown "merge key" "<<" "target:\n  mean: &m [0, 0]\n  <<: {name: gaussian, dim: 2}\n"

# --- configuration: values out of range ---------------------------------------------------
for change in sde.steps=0 sde.beta=-1 train.lr=0 train.lr_final=1 train.tilt=1.5 sample.count=0 \
  network.blocks=3 sample.count=2147483648; do
  config_case config-range "${change%%=*}" "$change"
done
config_case config-range target.covariance "target.covariance=[[1, 2], [3, 4]]"
config_case config-range target.mean "target.mean=[1, 2, 3]"
config_case config-range sde.beta_max sde.schedule=linear sde.beta_min=5 sde.beta_max=1
config_case config-range network.gain sde.integrator=euler network.gain=true
config_case config-range sample.hmc_steps sample.hmc_steps=3 sample.resample=false
config_case config-range target.weights target.name=gmm "target.means=[[0, 0], [1, 1]]" \
  "target.weights=[1, -1]"

# --- configuration: huge and negative sizes -----------------------------------------------
for change in target.dim=1e12 target.dim=1000000000000 target.dim=-3 \
  target.dim=99999999999999999999 target.dim=9223372036854775807 network.width=99999999999 \
  network.width=-3 network.depth=99999999999 network.time_features=99999999999 \
  sde.steps=99999999999 train.paths=99999999999 network.blocks=99999999999; do
  config_case config-size "${change%%=*}" "$change"
done
config_case config-size target.grid target.name=lgcp -target.dim target.grid=99999999999
config_case config-size target.grid target.name=lgcp -target.dim target.grid=3037000500
file=$(new_file config-size yaml)
make_yaml reference.chains=99999999999 > "$file"
add config-size "reference.chains (reference)" reference.chains -- reference "$file"

# --- configuration: NaN and infinities ----------------------------------------------------
for change in sde.beta=.nan sde.beta=.inf sde.beta=1e400 train.lr=.NaN target.dim=.nan; do
  config_case config-nonfinite "${change%%=*}" "$change"
done
config_case config-nonfinite target.mean "target.mean=[.nan, 0]"
config_case config-nonfinite target.covariance "target.covariance=[[1, .nan], [.nan, 1]]"
config_case config-nonfinite precondition.scale precondition.kind=config precondition.scale=.nan

# --- configuration: bytes that are not UTF-8 ----------------------------------------------
raw_case config-bytes "non-UTF-8 value" target.name "target: {name: \"\xff\xfe\", dim: 2}\n$tail_yaml"
raw_case config-bytes "overlong UTF-8" target.name "target: {name: gauss\xc0\xafian, dim: 2}\n$tail_yaml"
raw_case config-bytes "non-UTF-8 key" @file "target:\n  name: gaussian\n  \xffdim: 2\n$tail_yaml"
raw_case config-bytes "non-UTF-8 section" @file "\xc3\x28: 1\ntarget: {name: gaussian, dim: 2}\n"
raw_case config-bytes "NUL byte" @file "target:\n  name: gauss\0ian\n  dim: 2\n$tail_yaml"
raw_case config-bytes "UTF-8 BOM, unknown key" train.iteratons \
  "\xef\xbb\xbftarget: {name: gaussian, dim: 2}\ntrain: {iteratons: 1}\n"
file=$(new_file config-bytes yaml)
printf 'target: {name: gaussian, dim: 2}\ntrain: {iteratons: 1}\n' | iconv -f UTF-8 -t UTF-16 > "$file"
add config-bytes "UTF-16, unknown key" train.iteratons -- run "$file"
file=$(new_file config-bytes yaml)
head -c 512 "$corpus/pilot/random_bytes.h5" > "$file"
add config-bytes "random bytes" "$file" -- run "$file"

# --- configuration: empty, missing, unreadable files, directories -------------------------
raw_case config-file "empty file" target.name ""
raw_case config-file "comments only" target.name "# nothing here\n"
raw_case config-file "document marker only" target.name "---\n"
raw_case config-file "a second YAML document" @file \
  "target: {name: gaussian, dim: 2}\n$tail_yaml---\ntrain: {iteratons: 1}\n"
mkdir -p "$corpus/config-file/directory.yaml"
add config-file "directory" "$corpus/config-file/directory.yaml" -- run "$corpus/config-file/directory.yaml"
add config-file "missing file" "$corpus/config-file/missing.yaml" -- run "$corpus/config-file/missing.yaml"
unreadable "$corpus/config-file/unreadable.yaml"
add config-file "unreadable file" "$corpus/config-file/unreadable.yaml" -- run "$corpus/config-file/unreadable.yaml"
ln -s loop_b.yaml "$corpus/config-file/loop_a.yaml"
ln -s loop_a.yaml "$corpus/config-file/loop_b.yaml"
add config-file "symbolic link loop" "$corpus/config-file/loop_a.yaml" -- run "$corpus/config-file/loop_a.yaml"
add config-file "path through a file" "$corpus/small.yaml/x.yaml" -- run "$corpus/small.yaml/x.yaml"
long_path=$corpus/$(printf 'x%.0s' $(seq 300))/$(printf 'y%.0s' $(seq 300)).yaml
add config-file "name too long" "$long_path" -- run "$long_path"

# --- configuration: duplicates ------------------------------------------------------------
raw_case config-duplicate "section twice" "'target'" \
  "target: {name: gaussian, dim: 2}\ntarget: {name: gaussian, dim: 3}\n$tail_yaml"
raw_case config-duplicate "key twice" target.dim "target:\n  name: gaussian\n  dim: 2\n  dim: 3\n$tail_yaml"
raw_case config-duplicate "key twice in a flow map" target.dim "target: {name: gaussian, dim: 2, dim: 2}\n$tail_yaml"
raw_case config-duplicate "key twice, once quoted" target.dim \
  "target:\n  name: gaussian\n  dim: 2\n  \"dim\": 3\n$tail_yaml"

# --- configuration: YAML syntax -----------------------------------------------------------
raw_case config-syntax "unclosed flow list" @file "target: {name: gaussian, dim: [2\n"
raw_case config-syntax "unclosed flow map" @file "target: {name: gaussian\n"
raw_case config-syntax "unclosed quote" @file "target: {name: \"gaussian, dim: 2}\n"
raw_case config-syntax "bad indentation" @file "target:\n  name: gaussian\n    dim: 2\n"
raw_case config-syntax "tab indentation" @file "target:\n\tname: gaussian\n\tdim: 2\n"
raw_case config-syntax "undefined alias" @file "target: *nothing\n"
raw_case config-syntax "list and map mixed" @file "- a\nb: c\n"
raw_case config-syntax "invalid escape" @file "target: {name: \"gauss\\\\qian\", dim: 2}\n"
raw_case config-syntax "bad YAML directive" @file "%YAML 9.9\n---\ntarget: {name: gaussian, dim: 2}\n"
raw_case config-syntax "nesting 100000 deep" @file "target: {name: gaussian, dim: $(printf '[%.0s' $(seq 100000))\n"
# Ten levels of aliases, each ten of the one below: 10^10 leaves if expanded.
bomb="target:\n  name: gaussian\n  dim: 2\n  covariance: [&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"
for level in $(seq 1 9); do
  bomb+=", &a$level [$(printf "*a$((level - 1)), %.0s" $(seq 9))*a$((level - 1))]"
done
raw_case config-syntax "alias bomb" target.mean "$bomb]\n  mean: *a9\n$tail_yaml"

# --- configuration: wrong nesting ---------------------------------------------------------
raw_case config-nesting "top level a list" @file "- target: {name: gaussian, dim: 2}\n"
raw_case config-nesting "section a scalar" "'target'" "target: gaussian\n"
config_case config-nesting target.name "target.name={x: gaussian}"
raw_case config-nesting "keys at the top level" "'name'" "name: gaussian\ndim: 2\n"
config_case config-nesting train.lr "train.lr={value: 1}"
config_case config-nesting target.mean "target.mean={x: 1}"

# --- command lines ------------------------------------------------------------------------
valid=$corpus/valid.yaml
make_yaml > "$valid"
add cli "no arguments" "no command" --
add cli "unknown command" "unknown command 'fly'" -- fly "$valid"
add cli "no configuration" "no configuration file" -- run
add cli "unknown option" "--frobnicate" -- run "$valid" --frobnicate
add cli "extra argument" "unexpected argument 'extra.yaml'" -- run "$valid" extra.yaml
add cli "--set at the end" "--set needs" -- run "$valid" --set
add cli "--set without =" "train.paths" -- run "$valid" --set train.paths
add cli "--set unknown key" "train.iteratons" -- run "$valid" --set train.iteratons=5
add cli "--set bad value" "train.paths" -- run "$valid" --set train.paths=many
add cli "--set bad YAML" "target.mean" -- run "$valid" --set "target.mean=[1,"
add cli "--set empty output.path" "output.path" -- run "$valid" --set output.path=
add cli "--set non-UTF-8" "target.name" -- run "$valid" --set "target.name=$(printf 'g\xff')"
add cli "--resume with sample" "--resume" -- sample "$valid" --resume
add cli "--resume with reference" "--resume" -- reference "$valid" --resume
add cli "--resume without checkpoint" "$out/run.ckpt" -- train "$valid" --resume
add cli "sample without network file" "$out/run.pt" -- sample "$valid"
add cli "output over the configuration" "output.path" -- run "$valid" --set "output.path=$valid"
add cli "output and network the same file" "same file" -- run "$valid" \
  --set "output.path=$out/x.h5" --set "sample.model=$out/x.h5"
add cli "unwritable output directory" "/proc/rbsde/x.h5" -- run "$valid" --set output.path=/proc/rbsde/x.h5
add cli "output's directory a file" "$valid/x.h5" -- run "$valid" --set "output.path=$valid/x.h5"
mkdir -p "$corpus/cli/output_directory"
add cli "output.path a directory" "$corpus/cli/output_directory" -- run "$valid" \
  --set "output.path=$corpus/cli/output_directory" --set "sample.model=$out/x.pt"

# --- pilot files (precondition.kind: pilot) -----------------------------------------------
pilot_config=$corpus/pilot.yaml
make_yaml precondition.kind=pilot > "$pilot_config"
for f in "$corpus"/pilot/*.h5; do
  add pilot "$(basename "$f")" "$f" -- run "$pilot_config" --set "precondition.pilot=$f"
done
mkdir -p "$corpus/pilot/directory.h5"
add pilot "directory" "$corpus/pilot/directory.h5" -- \
  run "$pilot_config" --set "precondition.pilot=$corpus/pilot/directory.h5"
add pilot "a YAML file" "$valid" -- run "$pilot_config" --set "precondition.pilot=$valid"
add pilot "network file (train)" "$real/out.pt" -- train "$pilot_config" --set "precondition.pilot=$real/out.pt"

# --- checkpoints (--resume; <output stem>.ckpt) -------------------------------------------
for f in "$corpus"/checkpoint/*/run.ckpt; do
  dir=$(dirname "$f")
  add checkpoint "$(basename "$dir")" "$f" "$f" -- \
    run "$corpus/small.yaml" --resume --set "output.path=$dir/run.h5"
done
mkdir -p "$corpus/checkpoint/network_file"
cp "$real/out.pt" "$corpus/checkpoint/network_file/run.ckpt"
add checkpoint "network file as checkpoint (train)" "$corpus/checkpoint/network_file/run.ckpt" \
  "$corpus/checkpoint/network_file/run.ckpt" -- \
  train "$corpus/small.yaml" --resume --set "output.path=$corpus/checkpoint/network_file/run.h5"
mkdir -p "$corpus/checkpoint/directory/run.ckpt"
add checkpoint "directory" "$corpus/checkpoint/directory/run.ckpt" -- \
  run "$corpus/small.yaml" --resume --set "output.path=$corpus/checkpoint/directory/run.h5"
mkdir -p "$corpus/checkpoint/other_run"
cp "$real/out.ckpt" "$corpus/checkpoint/other_run/run.ckpt"
add checkpoint "another run's checkpoint" "network.width" "$corpus/checkpoint/other_run/run.ckpt" -- \
  run "$corpus/small.yaml" --resume --set "output.path=$corpus/checkpoint/other_run/run.h5" \
  --set network.width=32

# --- network files (rbsde sample; sample.model) -------------------------------------------
for f in "$corpus"/model/*.pt; do
  add model "$(basename "$f")" "$f" -- \
    sample "$corpus/small.yaml" --set "sample.model=$f" --set "output.path=$out/run.h5"
done
mkdir -p "$corpus/model/directory.pt"
add model "directory" "$corpus/model/directory.pt" -- \
  sample "$corpus/small.yaml" --set "sample.model=$corpus/model/directory.pt" --set "output.path=$out/run.h5"
add model "checkpoint as network file" "$real/out.ckpt" -- \
  sample "$corpus/small.yaml" --set "sample.model=$real/out.ckpt" --set "output.path=$out/run.h5"
add model "another run's network file" "network.width" -- \
  sample "$corpus/small.yaml" --set "sample.model=$real/out.pt" --set "output.path=$out/run.h5" \
  --set network.width=32

# --- data CSVs (target.data) --------------------------------------------------------------
csv_config=$corpus/csv.yaml
make_yaml target.name=logreg_ionosphere -target.dim > "$csv_config"
for f in "$corpus"/csv/*.csv; do
  name=$(basename "$f" .csv)
  case $name in
    lgcp_*) add csv "$name" "$f" -- run "$csv_config" --set target.name=lgcp --set "target.data=$f" ;;
    gmm40_*) add csv "$name" "$f" -- run "$csv_config" --set target.name=gmm40 --set "target.data=$f" ;;
    *) add csv "$name" "$f" -- run "$csv_config" --set "target.data=$f" ;;
  esac
done
mkdir -p "$corpus/csv/directory.csv"
add csv "directory" "$corpus/csv/directory.csv" -- run "$csv_config" --set "target.data=$corpus/csv/directory.csv"
add csv "missing file" "$corpus/csv/missing.csv" -- run "$csv_config" --set "target.data=$corpus/csv/missing.csv"
unreadable "$corpus/csv/unreadable.csv"
add csv "unreadable file (reference)" "$corpus/csv/unreadable.csv" -- \
  reference "$csv_config" --set "target.data=$corpus/csv/unreadable.csv"
add csv "dimension differs" "target.dim" -- run "$csv_config" --set target.dim=34 \
  --set "target.data=$source_dir/data/ionosphere.csv"

# --- TorchScript modules (target.module) --------------------------------------------------
module_config=$corpus/module.yaml
make_yaml target.name=torchscript > "$module_config"
for f in "$corpus"/module/*.pt; do
  add module "$(basename "$f")" "$f" -- run "$module_config" --set "target.module=$f"
done
mkdir -p "$corpus/module/directory.pt"
add module "directory" "$corpus/module/directory.pt" -- run "$module_config" --set "target.module=$corpus/module/directory.pt"
for f in "$real/out.pt" "$valid"; do
  add module "$(basename "$f") as module" "$f" -- run "$module_config" --set "target.module=$f"
done
add module "no such method" "$real/banana.pt" -- run "$module_config" --set "target.module=$real/banana.pt" \
  --set target.method=energy
add module "module raises (reference)" "$real/banana.pt" -- reference "$module_config" \
  --set "target.module=$real/banana.pt" --set target.dim=3
# Modules that run but misbehave (tests/fuzz/misbehaving_modules.py).
behaviour=$corpus/behaviour
add module "returns float16" "returned dtype Half" -- run "$module_config" \
  --set "target.module=$behaviour/float16.pt"
add module "returns a float" "returned a Double" -- run "$module_config" \
  --set "target.module=$behaviour/not_tensor.pt"
add module "NaN gradient (network.score)" "gradient of log π̃" -- run "$module_config" \
  --set "target.module=$behaviour/nan_gradient.pt" --set network.score=true
add module "NaN gradient (HMC refinement)" "gradient of log π̃" -- run "$module_config" \
  --set "target.module=$behaviour/nan_gradient.pt" --set sample.hmc_steps=5
add module "allocates without bound" "out of memory inside the target's module" -- run \
  "$module_config" --set "target.module=$behaviour/unbounded.pt"

# ------------------------------------------------------------------------------------------
# Running the corpus.
selected=()
for ((i = 0; i < ${#K_NAME[@]}; i++)); do
  if [[ -n ${FUZZ_LIST:-} ]]; then
    printf '%3d %-17s %-40s expect %s\n' "$i" "${K_CATEGORY[i]}" "${K_NAME[i]}" "${K_EXPECT[i]}"
  elif ((i % FUZZ_SHARDS == FUZZ_SHARD)) &&
    [[ -z ${FUZZ_FILTER:-} || "${K_CATEGORY[i]} ${K_NAME[i]}" =~ ${FUZZ_FILTER:-} ]]; then
    selected+=("$i")
  fi
done
[[ -n ${FUZZ_LIST:-} ]] && exit 0
inputs=${#selected[@]}
snapshot() { find "$work" -path "$logs" -prune -o -print | LC_ALL=C sort; }
all_hashes() { find "$corpus" "$real" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum 2>&1; }
hashes() { (($# == 0)) || sha256sum -- "$@" 2>&1; }
snapshot > "$logs/baseline.txt"
all_hashes > "$logs/hashes_before.txt"

runs=0 clean=0 crashes=0 hangs=0 modified=0 unclear=0 leftovers=0 costly=0
declare -A cat_inputs=() cat_runs=() cat_clean=() cat_count=()
for i in "${selected[@]}"; do
  cat_inputs[${K_CATEGORY[i]}]=$((${cat_inputs[${K_CATEGORY[i]}]:-0} + 1))
done

# report_failure I NP REASON: prints one failed check of entry I's run on NP ranks.
report_failure() {
  local i=$1 np=$2 reason=$3
  echo "FAIL [${K_CATEGORY[i]}] #$i ${K_NAME[i]} (np $np): $reason"
  echo "  command: ${launcher[*]} $rbsde ${K_ARGS[i]}"
  echo "  exit status $status; expected in the message: ${K_EXPECT[i]}"
  local -a args
  eval "args=(${K_ARGS[i]})"
  if [[ ${#args[@]} -ge 2 && -f ${args[1]} && ${args[1]} == "$corpus"/config-* ]]; then
    echo "  configuration ${args[1]}:"
    head -c 600 "${args[1]}" | cat -v | awk '{print "    | " $0}'
  fi
  echo "  output:"
  tail -n 12 "$logs/run.out" | cut -c1-400 | cat -v | sed 's/^/    > /'
}

# failed COUNTER I NP REASON: counts a failed check (COUNTER: crashes, hangs, unclear, costly,
# leftovers or modified) of entry I's run on NP ranks and prints it.
failed() {
  local counter=$1
  shift
  printf -v "$counter" '%d' $((${!counter} + 1))
  cat_count[${K_CATEGORY[$1]}/$counter]=$((${cat_count[${K_CATEGORY[$1]}/$counter]:-0} + 1))
  ok=0
  report_failure "$@"
}

signal_pattern='Signal:|Aborted|Segmentation|terminate called|core dumped|exited on signal|signal [0-9]+|Bus error|Floating point exception|stack smashing|double free|free\(\): |malloc\(\): |AddressSanitizer|runtime error: '
for i in "${selected[@]}"; do
  eval "args=(${K_ARGS[i]})"
  eval "files=(${K_INPUTS[i]})"
  for np in 1 2; do
    if ((np == 1)); then
      launcher=()
    else
      launcher=(mpirun -np 2 --oversubscribe --bind-to none)
    fi
    before=$(hashes "${files[@]}")
    for attempt in 1 2; do
      run_start=$EPOCHREALTIME
      rm -f "$logs/run.rss"
      (
        ulimit -v "$memory_limit_kb"
        exec "${measure[@]}" timeout -k 5 "$timeout_s" "${launcher[@]}" "$rbsde" "${args[@]}"
      ) > "$logs/run.stdout" 2> "$logs/run.stderr" < /dev/null
      status=$?
      ((status != 0)) && mpi_start_failed "$logs/run.stderr" "$logs/run.stdout" || break
      mpi_restarts=$((mpi_restarts + 1))
      echo "note [${K_CATEGORY[i]}] #$i ${K_NAME[i]} (np $np): Open MPI failed to start" \
        "(ompi_rte_init), run again"
    done
    elapsed=$(awk -v a="$run_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    peak_kb=$(tail -n 1 "$logs/run.rss" 2> /dev/null)
    [[ $peak_kb =~ ^[0-9]+$ ]] || peak_kb=0
    cat "$logs/run.stdout" "$logs/run.stderr" > "$logs/run.out"
    runs=$((runs + 1))
    category=${K_CATEGORY[i]}
    cat_runs[$category]=$((${cat_runs[$category]:-0} + 1))
    ok=1
    # 1, 2: exit status, signals, hangs; 3: one clear message naming the key or file.
    error_lines=$(grep -cE '^rbsde: error( on rank [0-9]+)?: ' "$logs/run.stderr")
    message=$(sed -n '/^rbsde: error/,$p' "$logs/run.stderr")
    if ((status == 124 || status == 137)); then
      failed hangs "$i" "$np" "hang (no end within $timeout_s s, or killed after ignoring SIGTERM)"
    elif ((status >= 128)) || grep -Eq "$signal_pattern" "$logs/run.out"; then
      failed crashes "$i" "$np" "crash (exit status $status, or a signal in the output)"
    elif ((status == 0)); then
      failed unclear "$i" "$np" "accepted: exit status 0 and no error message"
    elif ((error_lines == 0)); then
      failed unclear "$i" "$np" "no line 'rbsde: error: ...' on stderr"
    elif [[ $message != *"${K_EXPECT[i]}"* ]]; then
      failed unclear "$i" "$np" "the message does not name '${K_EXPECT[i]}'"
    elif ((error_lines > 1)); then
      failed unclear "$i" "$np" "the error is printed $error_lines times"
    fi
    # An error after this much time or memory (the others take a second or two and 200 MB) is
    # work that the input should have been refused before: rbsde allocating until the memory
    # limit, say.
    if ((status != 124 && status != 137 && (elapsed > costly_s || peak_kb > costly_kb))); then
      failed costly "$i" "$np" "costly: $elapsed s and $((peak_kb / 1024)) MB (resident, largest process) to fail"
    fi
    # 4: leftovers. New .h5 or .tmp files are failures; other new files are notes. All are
    # removed so that the next run starts from the same state.
    snapshot > "$logs/now.txt"
    new=$(LC_ALL=C comm -13 "$logs/baseline.txt" "$logs/now.txt")
    gone=$(LC_ALL=C comm -23 "$logs/baseline.txt" "$logs/now.txt")
    if [[ -n $new ]]; then
      bad_new=$(grep -E '\.h5$|\.tmp$|\.h5\.' <<< "$new")
      if [[ -n $bad_new ]]; then
        failed leftovers "$i" "$np" "left output files: $(tr '\n' ' ' <<< "$bad_new")"
      else
        echo "note [${K_CATEGORY[i]}] #$i ${K_NAME[i]} (np $np): left $(tr '\n' ' ' <<< "$new")"
      fi
      while IFS= read -r path; do rm -rf -- "$path"; done <<< "$new"
    fi
    # 5: inputs unchanged.
    after=$(hashes "${files[@]}")
    if [[ $before != "$after" || -n $gone ]]; then
      failed modified "$i" "$np" "modified or removed an input: $(diff <(echo "$before") <(echo "$after") | grep '^>' | tr '\n' ' ') $(tr '\n' ' ' <<< "$gone")"
      # What is gone stays gone: later runs are compared with what is left.
      LC_ALL=C comm -12 "$logs/baseline.txt" "$logs/now.txt" > "$logs/left.txt"
      mv "$logs/left.txt" "$logs/baseline.txt"
    fi
    if ((ok)); then
      clean=$((clean + 1))
      cat_clean[$category]=$((${cat_clean[$category]:-0} + 1))
    fi
  done
done

all_hashes > "$logs/hashes_after.txt"
if ! cmp -s "$logs/hashes_before.txt" "$logs/hashes_after.txt"; then
  echo "FAIL: corpus files changed during the runs:"
  diff "$logs/hashes_before.txt" "$logs/hashes_after.txt" | sed 's/^/  /'
  modified=$((modified + 1))
fi

echo
printf '%-17s %6s %5s %5s %7s %5s %7s %6s %8s %8s\n' category inputs runs clean crashes hangs unclear costly \
  leftover modified
for category in $(printf '%s\n' "${!cat_inputs[@]}" | sort); do
  printf '%-17s %6d %5d %5d' "$category" "${cat_inputs[$category]}" "${cat_runs[$category]:-0}" \
    "${cat_clean[$category]:-0}"
  printf ' %7d %5d %7d %6d %8d %8d\n' "${cat_count[$category/crashes]:-0}" \
    "${cat_count[$category/hangs]:-0}" "${cat_count[$category/unclear]:-0}" \
    "${cat_count[$category/costly]:-0}" "${cat_count[$category/leftovers]:-0}" \
    "${cat_count[$category/modified]:-0}"
done
echo "fuzz: runs leaving an output file $leftovers, costly failures (over $costly_s s or" \
  "$((costly_kb / 1000)) MB) $costly," \
  "unreadable files made dangling links (running as root) $substituted_unreadable," \
  "runs again after Open MPI failed to start $mpi_restarts, time $((SECONDS - started)) s"
echo "fuzz: shard $FUZZ_SHARD of $FUZZ_SHARDS, of a corpus of ${#K_NAME[@]} inputs: inputs $inputs, runs $runs," \
  "clean errors $clean, crashes $crashes, hangs $hangs, inputs modified $modified," \
  "unclear messages $unclear"
echo "fuzz-counts inputs=$inputs runs=$runs clean=$clean crashes=$crashes hangs=$hangs" \
  "modified=$modified unclear=$unclear costly=$costly leftovers=$leftovers"
((${#K_NAME[@]} >= 200 && crashes == 0 && hangs == 0 && modified == 0 && unclear == 0 &&
  leftovers == 0 && costly == 0))
