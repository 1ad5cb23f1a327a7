#!/usr/bin/env bash
# Command-line behaviour of rbsde: help and version, bad input (a clear message naming the key
# or file, a non-zero exit, no output file), run/train/sample round trips on 1 and 2 ranks.
# Usage: test_cli.sh RBSDE_BINARY SOURCE_DIR
set -uo pipefail
rbsde=$1
source_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
failures=0
passes=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { passes=$((passes + 1)); }

# A small, fast configuration.
cat > "$work/small.yaml" <<YAML
target: {name: gaussian, dim: 2, mean: [1, -1], covariance: 0.5}
sde: {steps: 10}
network: {width: 16, depth: 1}
train: {iterations: 20, paths: 64}
sample: {count: 500, batch: 200, hmc_steps: 6, leapfrog_steps: 3}
output: {path: $work/out/small.h5}
YAML

# expect_error NAME EXPECTED_SUBSTRING COMMAND...: non-zero exit, the message on stderr,
# and neither the output file nor its temporary left behind.
expect_error() {
  local name=$1 expected=$2
  shift 2
  rm -rf "$work/out"
  local stderr_text status
  stderr_text=$("$@" 2>&1 >/dev/null)
  status=$?
  if [[ $status -eq 0 ]]; then fail "$name: exit status 0"; return; fi
  if [[ $stderr_text != *"$expected"* ]]; then
    fail "$name: message does not name '$expected': $stderr_text"; return
  fi
  # One message, also on several ranks.
  if [[ $(grep -c "^rbsde: error" <<< "$stderr_text") -ne 1 ]]; then
    fail "$name: not exactly one line 'rbsde: error': $stderr_text"; return
  fi
  if compgen -G "$work/out/*.h5*" >/dev/null; then fail "$name: left an output file"; return; fi
  pass
}

# Help and version.
# Outputs are captured before grep reads them: grep -q on a pipe may exit before the writer
# finishes, and under pipefail the writer's SIGPIPE would fail the check.
help=$("$rbsde" --help) && grep -q "rbsde COMMAND CONFIG.yaml" <<<"$help" && pass || fail "--help"
help=$("$rbsde" --help-config) && grep -q "^  train.tilt: in \[0, 1\] \[0\]$" <<<"$help" \
  && pass || fail "--help-config"
"$rbsde" --version | grep -Eq "^rbsde [0-9]+\.[0-9]+\.[0-9]+$" && pass || fail "--version"

# Bad command lines and configurations.
expect_error "no command" "no command" "$rbsde"
expect_error "unknown command" "unknown command 'fly'" "$rbsde" fly "$work/small.yaml"

# A run never writes over a file it reads: a TorchScript module m.pt beside output.path m.h5
# would be overwritten by the network file (m.pt); the configuration file as output.path;
# sample.model as output.path. Each is refused before anything is written, the inputs unchanged.
mkdir -p "$work/roles"
echo "a module" > "$work/roles/m.pt"
cp "$work/small.yaml" "$work/roles/small.yaml"
expect_error "network file over target.module" "is the file of target.module" \
  "$rbsde" run "$source_dir/configs/torchscript_banana.yaml" --set target.module="$work/roles/m.pt" \
  --set output.path="$work/roles/m.h5"
expect_error "output over the configuration" "is the file of the configuration file" \
  "$rbsde" run "$work/roles/small.yaml" --set output.path="$work/roles/small.yaml"
expect_error "output over sample.model" "is the file of the network file (sample.model)" \
  "$rbsde" sample "$work/roles/small.yaml" --set sample.model="$work/roles/m.pt" \
  --set output.path="$work/roles/m.pt"
[[ $(cat "$work/roles/m.pt") == "a module" ]] && cmp -s "$work/small.yaml" "$work/roles/small.yaml" &&
  ! compgen -G "$work/roles/*.h5*" >/dev/null && ! compgen -G "$work/roles/*.tmp" >/dev/null &&
  pass || fail "file roles: an input was modified or an output written"
expect_error "unknown option" "--frobnicate" "$rbsde" run "$work/small.yaml" --frobnicate
expect_error "missing config file" "$work/missing.yaml" "$rbsde" run "$work/missing.yaml"
expect_error "unknown key" "train.iteratons" "$rbsde" run "$work/small.yaml" --set train.iteratons=5
printf 'target: {name: gaussian, dim: 2}\ntrain: {itrations: 3}\noutput: {path: %s}\n' \
  "$work/out/x.h5" > "$work/typo.yaml"
expect_error "unknown key in file" "train.itrations" "$rbsde" run "$work/typo.yaml"
expect_error "wrong type" "train.paths" "$rbsde" run "$work/small.yaml" --set train.paths=many
expect_error "dimension mismatch" "target.mean" "$rbsde" run "$work/small.yaml" --set "target.mean=[1,2,3]"
expect_error "non-positive steps" "sde.steps" "$rbsde" run "$work/small.yaml" --set sde.steps=0
expect_error "blocks not dividing d" "network.blocks" "$rbsde" run "$work/small.yaml" --set network.blocks=3
expect_error "bad override" "key=value" "$rbsde" run "$work/small.yaml" --set train.paths
expect_error "HMC without resampling" "sample.hmc_steps" \
  "$rbsde" run "$work/small.yaml" --set sample.resample=false --set sample.hmc_steps=3
expect_error "resume a reference run" "--resume" "$rbsde" reference "$work/small.yaml" --resume
expect_error "missing model file" "$work/nowhere.pt" \
  "$rbsde" sample "$work/small.yaml" --set sample.model="$work/nowhere.pt"
expect_error "unwritable output" "/proc/rbsde/out.h5" \
  "$rbsde" run "$work/small.yaml" --set output.path=/proc/rbsde/out.h5
expect_error "bad config on 2 ranks" "train.iteratons" \
  timeout 60 mpirun -np 2 --oversubscribe "$rbsde" run "$work/small.yaml" --set train.iteratons=5
expect_error "bad precondition kind" "precondition.kind" \
  "$rbsde" run "$work/small.yaml" --set precondition.kind=laplce
expect_error "precondition key of another kind" "precondition.pilot is used only by" \
  "$rbsde" run "$work/small.yaml" --set precondition.pilot=run.h5
# The pilot file is read on rank 0 only: its failure must stop both ranks.
expect_error "missing pilot file on 2 ranks" "$work/nowhere.h5" \
  timeout 60 mpirun -np 2 --oversubscribe "$rbsde" run "$work/small.yaml" \
  --set precondition.kind=pilot --set precondition.pilot="$work/nowhere.h5"

# A path the run would write that is a directory fails at start-up, once on 2 ranks (it
# failed at the final rename, after training, printed by each rank).
mkdir -p "$work/a_directory"
out=$(timeout 60 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run "$work/small.yaml" \
  --set output.path="$work/a_directory" 2>&1)
[[ $? -ne 0 && $(grep -c "rbsde: error" <<< "$out") -eq 1 \
  && $out == *"output.path '$work/a_directory' is a directory"* && ! -e $work/a_directory.tmp ]] \
  && pass || fail "output.path a directory: $out"

# run, then sample from the saved network with another seed.
rm -rf "$work/out"
if "$rbsde" run "$work/small.yaml" > "$work/run.log" 2>&1 && [[ -f $work/out/small.h5 && -f $work/out/small.pt ]] \
  && grep -q "^rbsde-summary command=run" "$work/run.log" && grep -q "log Z (exact)" "$work/run.log"; then
  pass
else
  fail "run: $(cat "$work/run.log")"
fi
if "$rbsde" sample "$work/small.yaml" --set sample.seed=9 --set sample.model="$work/out/small.pt" \
  --set output.path="$work/out/resampled.h5" \
  > "$work/sample.log" 2>&1 && [[ -f $work/out/resampled.h5 ]]; then
  pass
else
  fail "sample: $(cat "$work/sample.log")"
fi
# The probability-flow ODE from the same network: it says so, and the file records it.
if "$rbsde" sample "$work/small.yaml" --set sample.method=ode --set sample.model="$work/out/small.pt" \
  --set output.path="$work/out/ode.h5" > "$work/ode.log" 2>&1 \
  && grep -q "^sampler: probability-flow ODE (midpoint rule, N = 10, exact divergence)" "$work/ode.log" \
  && grep -q "weights are approximate" "$work/ode.log" \
  && /usr/bin/python3 -c '
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    e = f["estimates"].attrs
    assert e["method"] == "ode" and e["divergence"] == "exact", dict(e)
    assert f["samples"].shape == (500, 2)
with h5py.File(sys.argv[2], "r") as f:
    assert f["estimates"].attrs["method"] == "sde" and "divergence" not in f["estimates"].attrs
' "$work/out/ode.h5" "$work/out/resampled.h5"; then
  pass
else
  fail "sample with the ODE: $(cat "$work/ode.log")"
fi
# A saved network trained with other settings is refused by name.
out=$("$rbsde" sample "$work/small.yaml" --set network.width=32 --set sample.model="$work/out/small.pt" \
  --set output.path="$work/out/x.h5" 2>&1)
[[ $? -ne 0 && $out == *"small.pt"* && $out == *"network.width"* ]] && pass || fail "mismatched model: $out"
cp "$work/out/small.pt" "$work/small_model.pt"  # for sampling other targets below

# The same run on 2 ranks: one file with the right shapes.
if timeout 120 mpirun -np 2 --oversubscribe "$rbsde" run "$work/small.yaml" --set sample.psis=true \
  --set output.path="$work/out/np2.h5" > "$work/np2.log" 2>&1; then
  pass
else
  fail "run on 2 ranks: $(cat "$work/np2.log")"
fi

check_file() {
  /usr/bin/python3 - "$@" <<'PY'
import sys, h5py
path, count, dim, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with h5py.File(path, "r") as f:
    assert f["samples"].shape == (count, dim) and f["samples"].dtype == "float32", f["samples"]
    for name in ("log_weights", "paths/log_target", "paths/network_log_z"):
        assert f[name].shape == (count,) and f[name].dtype == "float64", name
    for name in ("loss", "log_z", "time"):
        assert f["training"][name].shape == (iterations,), name
    for name in ("log_z_is", "log_z_is_stderr", "log_z_network", "elbo", "ess", "ess_fraction"):
        assert name in f["estimates"].attrs, name
    for name in ("posterior_mean", "posterior_sd"):
        assert f["estimates"][name].shape == (dim,), name
    for name in ("resampled/samples", "refined/samples"):
        assert f[name].shape == (count, dim) and f[name].dtype == "float32", name
    index = f["resampled/index"][:]
    assert index.dtype == "int64" and index.min() >= 0 and index.max() < count, index
    assert (f["resampled/samples"][:] == f["samples"][:][index]).all(), "resampled rows"
    assert 0 < f["refined/samples"].attrs["acceptance_rate"] <= 1
    assert f["refined/samples"].attrs["step_size"] > 0
    assert f["refined/samples"].attrs["leapfrog_steps"] >= 1
    assert "target:" in f.attrs["config"] and f.attrs["version"]
    # InferenceData: the refined draws as the vector /posterior/x (x[1] … x[d]), the source
    # paths' log weights.
    assert f["posterior/x"].shape == (1, count, dim)
    assert (f["posterior/x"][0] == f["refined/samples"][:]).all()
    assert (f["sample_stats/log_weight"][0, :] == f["log_weights"][:][index]).all()
    # /timing's parameters: the network's weights and biases in the saved network file.
    import torch
    network = torch.jit.load(path[:-3] + ".pt").state_dict()
    weights = sum(v.numel() for k, v in network.items() if k.endswith((".weight", ".bias")))
    assert f["timing"].attrs["parameters"] == weights, (f["timing"].attrs["parameters"], weights)
PY
}
for f in small np2; do
  check_file "$work/out/$f.h5" 500 2 20 && pass || fail "layout of $f.h5"
done

# PSIS: k^ and the smoothed moments of the 2-rank run (the tail gathered over the ranks) agree
# with postprocess/psis.py (python3 -m postprocess psis), a second implementation, on the file's weights and float32 samples.
/usr/bin/python3 - "$source_dir" "$work/out/np2.h5" <<'PY' && pass || fail "PSIS against postprocess/psis.py"
import sys
sys.path.insert(0, sys.argv[1])
import h5py, numpy as np
from postprocess import psis
with h5py.File(sys.argv[2], "r") as f:
    lw, x, e = f["log_weights"][:], f["samples"][:].astype(np.float64), f["estimates"]
    k = psis.pareto_k(lw)
    assert abs(e.attrs["pareto_k"] - k) < 1e-9, (e.attrs["pareto_k"], k)
    assert e.attrs["pareto_tail"] == psis.tail_length(len(lw)) == 68
    assert e.attrs["pareto_k_threshold"] == psis.k_threshold(len(lw))
    mean, sd = psis.weighted_moments(x, psis.smoothed_log_weights(lw))
    assert np.allclose(e["psis_mean"][:], mean, rtol=1e-5, atol=1e-5), (e["psis_mean"][:], mean)
    assert np.allclose(e["psis_sd"][:], sd, rtol=1e-5, atol=1e-5), (e["psis_sd"][:], sd)
    raw_mean, raw_sd = psis.weighted_moments(x, lw)
    assert np.allclose(e["posterior_mean"][:], raw_mean, rtol=1e-5, atol=1e-5)
    assert not np.allclose(mean, raw_mean, rtol=1e-9, atol=0), "smoothing changed nothing"
PY
grep -q "^Pareto k^ *= [0-9.-]* *(largest 68 weights; reliable below 0.63)" "$work/np2.log" \
  && psis_out=$(cd "$source_dir" && /usr/bin/python3 -m postprocess psis "$work/out/np2.h5") \
  && grep -q "^stored_pareto_k " <<<"$psis_out" \
  && pass || fail "Pareto k^ printed: $(cat "$work/np2.log")"

# InferenceData as users read it: xarray opens the 2-rank file's groups; target.names names
# the parameters (a wrong count is refused at start-up).
/usr/bin/python3 - "$work/out/np2.h5" <<'PY' && pass || fail "InferenceData groups with xarray"
import sys, xarray as xr, numpy as np, h5py
posterior = xr.open_dataset(sys.argv[1], group="posterior")
stats = xr.open_dataset(sys.argv[1], group="sample_stats")
assert dict(posterior.sizes) == {"chain": 1, "draw": 500, "x_dim_0": 2}, posterior.sizes
assert list(posterior.data_vars) == ["x"], list(posterior.data_vars)
assert posterior["x"].dims == ("chain", "draw", "x_dim_0") and list(stats.data_vars) == ["log_weight"]
assert list(posterior["x_dim_0"].values) == [0, 1]
with h5py.File(sys.argv[1], "r") as f:
    assert np.array_equal(posterior["x"].values[0, :, 1], f["refined/samples"][:, 1])
PY
# At d = 10^5 too: the draws of x[1] … x[d] are one variable, which xarray opens.
"$rbsde" run "$work/small.yaml" --set target.dim=100000 --set target.mean=0 \
  --set target.covariance=1 --set precondition.kind=none --set train.iterations=2 \
  --set train.paths=8 --set network.width=8 --set sde.steps=4 --set sample.count=16 \
  --set sample.batch=16 --set sample.hmc_steps=0 --set output.path="$work/out/wide.h5" \
  > "$work/wide.log" 2>&1 \
  && /usr/bin/python3 - "$work/out/wide.h5" <<'PY' && pass || fail "InferenceData at d = 10^5: $(tail -5 "$work/wide.log")"
import sys, xarray as xr, numpy as np, h5py
posterior = xr.open_dataset(sys.argv[1], group="posterior")
assert dict(posterior.sizes) == {"chain": 1, "draw": 16, "x_dim_0": 100000}, posterior.sizes
with h5py.File(sys.argv[1], "r") as f:
    assert np.array_equal(posterior["x"].values[0], f["resampled/samples"][:])
PY
"$rbsde" run "$work/small.yaml" --set 'target.names=[a, "b[1]"]' --set sample.hmc_steps=0 \
  --set output.path="$work/out/names.h5" > "$work/names.log" 2>&1 \
  && /usr/bin/python3 - "$work/out/names.h5" <<'PY' && pass || fail "target.names: $(cat "$work/names.log")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert sorted(f["posterior"]) == ["a", "b", "b_dim_0", "chain", "draw"], list(f["posterior"])
    assert (f["posterior/b"][0, :, 0] == f["resampled/samples"][:, 1]).all()
PY
expect_error "target.names of the wrong length" "target.names: 3 names for 2 coordinates" \
  "$rbsde" run "$work/small.yaml" --set 'target.names=[a, b, c]'
expect_error "target.names repeated" "target.names[1]: 'a' appears twice" \
  "$rbsde" run "$work/small.yaml" --set 'target.names=[a, a]'

# A budget 15 times smaller than funnel.yaml's (the annealing and the cosine learning rate
# scale with it) trains to the end: with an unbounded gain it stopped at iteration 116, a NaN
# log π̃ on one path driven to infinity (issue 16; docs/design.md, the gain head).
"$rbsde" run "$source_dir/configs/funnel.yaml" --set train.iterations=200 --set parallel.threads=2 \
  --set sample.count=2000 --set output.path="$work/out/funnel200.h5" > "$work/funnel200.log" 2>&1 \
  && grep -q "^rbsde-summary command=run target=funnel" "$work/funnel200.log" \
  && pass || fail "funnel.yaml with train.iterations=200: $(tail -3 "$work/funnel200.log")"

# Degenerate weights (an untrained model of a narrow, distant target) end the run with a
# warning naming what to try; weights that are not (the exponential integrator's untrained
# model of N(0, I) is nearly exact) give none.
"$rbsde" run "$work/small.yaml" --set train.iterations=1 --set "target.mean=[6,-6]" \
  --set target.covariance=0.05 --set sample.hmc_steps=0 --set output.path="$work/out/bad.h5" \
  > "$work/degenerate.log" 2>&1 \
  && grep -q "^warning: the importance weights are degenerate: Pareto k^ = [0-9.]* (reliable below 0.63), ESS = [0-9.]* of 500" "$work/degenerate.log" \
  && grep -q "train.iterations, now 1" "$work/degenerate.log" && grep -q "sample.hmc_steps: 200" "$work/degenerate.log" \
  && pass || fail "degenerate weights warning: $(cat "$work/degenerate.log")"
"$rbsde" run "$work/small.yaml" --set train.iterations=1 --set "target.mean=[0,0]" \
  --set target.covariance=1 --set sde.integrator=exponential --set sample.count=2000 \
  --set output.path="$work/out/good.h5" > "$work/good.log" 2>&1 \
  && grep -q "^Pareto k^" "$work/good.log" && ! grep -q "degenerate" "$work/good.log" \
  && pass || fail "no warning for good weights: $(cat "$work/good.log")"

# Data targets: the dimension comes from the file and is recorded in the output's config.
cat > "$work/logreg.yaml" <<YAML
target: {name: logreg_ionosphere}
sde: {steps: 10}
network: {width: 16, depth: 1}
train: {iterations: 5, paths: 64}
sample: {count: 200}
output: {path: $work/out/logreg.h5}
YAML
rm -rf "$work/out"
if "$rbsde" run "$work/logreg.yaml" > "$work/logreg.log" 2>&1 \
  && grep -q "target logreg_ionosphere (d = 35)" "$work/logreg.log"; then
  pass
else
  fail "logreg_ionosphere run: $(cat "$work/logreg.log")"
fi
/usr/bin/python3 - "$work/out/logreg.h5" <<'PY' && pass || fail "logreg_ionosphere output"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f["samples"].shape == (200, 35), f["samples"].shape
    config = f.attrs["config"]
    assert "dim: 35" in config and "ionosphere.csv" in config and "label: Class" in config, config
PY
expect_error "logreg dimension mismatch" "target.dim: '" \
  "$rbsde" run "$work/logreg.yaml" --set target.dim=34
expect_error "logreg missing data file" "$work/nowhere.csv" \
  "$rbsde" run "$work/logreg.yaml" --set target.data="$work/nowhere.csv"
expect_error "lgcp grid and dim disagree" "target.dim" \
  "$rbsde" run "$work/logreg.yaml" --set target.name=lgcp --set target.grid=8 --set target.dim=65

# TorchScript user targets: the example module runs end to end; unsuitable modules are
# refused at start-up with the module's path and what is wrong.
if /usr/bin/python3 "$source_dir/examples/torchscript_target.py" "$work/banana.pt" > /dev/null \
  && "$rbsde" run "$source_dir/configs/torchscript_banana.yaml" --set target.module="$work/banana.pt" \
    --set train.iterations=10 --set train.paths=64 --set network.width=16 --set sde.steps=10 \
    --set sample.count=300 --set sample.hmc_steps=5 --set output.path="$work/out/banana.h5" > "$work/banana.log" 2>&1 \
  && grep -q "rbsde-summary command=run target=torchscript dim=2" "$work/banana.log" \
  && check_file "$work/out/banana.h5" 300 2 10; then
  pass
else
  fail "torchscript example: $(cat "$work/banana.log")"
fi
# torch.jit.script reads the classes' source: the script must be a file, not stdin.
cat > "$work/bad_modules.py" <<'PY'
import sys, torch

class WrongShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

class Integer(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1).long()

class NotTensor(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> float:
        return 1.0

class NanWhereLarge(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = -0.5 * (x * x).sum(1)
        return torch.where(x[:, 0] > 1.0, torch.full_like(value, float("nan")), value)

class MinusInfWhereLarge(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = -((x - torch.tensor([1.0, -1.0], dtype=x.dtype)) ** 2).sum(1)
        return torch.where(x[:, 0] > 2.0, torch.full_like(value, float("-inf")), value)

class MatrixIn(torch.nn.Module):
    """N((1, -1), 0.5 I) through a matrix product with a buffer of one dtype: x of another
    dtype is refused by torch."""
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("precision", 2.0 * torch.eye(2, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - torch.tensor([1.0, -1.0], dtype=x.dtype)
        return -0.5 * ((d @ self.precision) * d).sum(1)

class Offset(torch.nn.Module):
    """N((1, -1), 0.05² I) times e^5000, computed in x's dtype."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x - torch.tensor([1.0, -1.0], dtype=x.dtype)) / 0.05
        return 5000.0 - 0.5 * (d * d).sum(1)

class Abs(torch.nn.Module):
    """Laplace distributions about (1, -1), scale 1 (sd √2): no Hessian, no Laplace map."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x - torch.tensor([1.0, -1.0], dtype=x.dtype)).abs().sum(1)

class Stated(torch.nn.Module):
    """N((1, -1), 0.5 I) that states its dimension (the attribute dim)."""
    def __init__(self):
        super().__init__()
        self.dim = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x - torch.tensor([1.0, -1.0], dtype=x.dtype)) ** 2).sum(1)

class OffsetFloat32(torch.nn.Module):
    """The same, always computed in float32: rounding of 5000 is 5e-4."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = (x.float() - torch.tensor([1.0, -1.0])) / 0.05
        return 5000.0 - 0.5 * (d * d).sum(1)

for name, module in (("shape", WrongShape()), ("integer", Integer()), ("scalar", NotTensor()),
                     ("nan", NanWhereLarge()), ("minus_inf", MinusInfWhereLarge()),
                     ("float64_only", MatrixIn(torch.float64)),
                     ("float32_only", MatrixIn(torch.float32)),
                     ("float16_only", MatrixIn(torch.float16)),
                     ("offset", Offset()), ("offset_float32", OffsetFloat32()), ("abs", Abs()),
                     ("stated", Stated())):
    torch.jit.save(torch.jit.script(module), sys.argv[1] + "/" + name + ".pt")
PY
/usr/bin/python3 "$work/bad_modules.py" "$work" || fail "writing the bad TorchScript modules"
echo "not a zip archive" > "$work/junk.pt"
ts_run() {
  "$rbsde" run "$source_dir/configs/torchscript_banana.yaml" --set output.path="$work/out/ts.h5" "$@"
}
ts_run_2_ranks() {
  timeout 60 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run \
    "$source_dir/configs/torchscript_banana.yaml" --set output.path="$work/out/ts.h5" "$@"
}
expect_error "torchscript missing module" "target.module: no such file '$work/none.pt'" \
  ts_run --set target.module="$work/none.pt"
expect_error "torchscript not an archive" "target.module: '$work/junk.pt' is not a TorchScript archive" \
  ts_run --set target.module="$work/junk.pt"
expect_error "torchscript no such method" "'$work/banana.pt' has no method 'energy' (target.method" \
  ts_run --set target.module="$work/banana.pt" --set target.method=energy
expect_error "torchscript call throws" "must match the size of tensor b (2)" \
  ts_run --set target.module="$work/abs.pt" --set target.dim=3
# The dimension from the module: its attribute dim, where it has one; a configured target.dim
# that differs is refused naming both; a module without it needs target.dim.
printf 'target: {name: torchscript, module: %s}\n' "$work/stated.pt" > "$work/stated.yaml"
"$rbsde" config "$work/stated.yaml" > "$work/stated.log" 2>&1 && grep -q "^  dim: 2$" "$work/stated.log" \
  && pass || fail "target.dim from the module: $(cat "$work/stated.log")"
expect_error "torchscript dim differs" \
  "target.dim: the module '$work/stated.pt' states d = 2 (its attribute dim), the configuration target.dim = 3" \
  "$rbsde" run "$work/stated.yaml" --set target.dim=3 --set output.path="$work/out/s.h5"
expect_error "torchscript dim unstated" \
  "target.dim: missing, and the module '$work/abs.pt' does not state its dimension" \
  "$rbsde" run "$work/stated.yaml" --set target.module="$work/abs.pt" --set output.path="$work/out/s.h5"
expect_error "torchscript wrong shape" \
  "target.module: '$work/shape.pt': forward(x) on x of shape [3, 2] float32 returned shape [3, 2], expected [3]" \
  ts_run --set target.module="$work/shape.pt"
expect_error "torchscript integer result" "'$work/integer.pt': forward(x) on x of shape [3, 2] float32 returned dtype Long" \
  ts_run --set target.module="$work/integer.pt"
expect_error "torchscript non-tensor result" "'$work/scalar.pt': forward(x) on x of shape [3, 2] float32 returned a Double" \
  ts_run --set target.module="$work/scalar.pt"
expect_error "torchscript error on 2 ranks" "'$work/shape.pt'" \
  ts_run_2_ranks --set target.module="$work/shape.pt"
# Precision: the module is called in float64 where it accepts it; a module written for one
# precision runs in that one, and the start-up line says which.
expect_error "torchscript fails in both precisions" \
  "but found Half; with float64 x it failed: " \
  ts_run --set target.module="$work/float16_only.pt"
for module in banana:"float64 and float32" float64_only:"float64 only" float32_only:"float32 only"; do
  ts_run --set target.module="$work/${module%%:*}.pt" --set train.iterations=5 --set train.paths=64 \
    --set network.width=16 --set sde.steps=10 --set sample.count=300 > "$work/precision.log" 2>&1 \
    && grep -q "^target.module $work/${module%%:*}.pt: forward(x) accepts x in ${module#*:}$\|^target.module $work/${module%%:*}.pt: log_prob(x) accepts x in ${module#*:}$" "$work/precision.log" \
    && pass || fail "torchscript precision ${module%%:*}: $(cat "$work/precision.log")"
done
# precondition.kind: auto, the default for a module: the Laplace map measured and, where its
# own weights are poor (the banana: k^ > 0.7) or it does not exist (|x|: no Hessian), the
# Gaussians that maximise the ELBO, the best chosen and said.
grep -q "^precondition: laplace: ELBO .*, Pareto k^ " "$work/banana.log" \
  && grep -q "^precondition: auto: chose the variational from .* (the highest ELBO: .*; laplace " "$work/banana.log" \
  && pass || fail "auto on the banana: $(cat "$work/banana.log")"
ts_run --set target.module="$work/abs.pt" --set train.iterations=5 --set train.paths=64 \
  --set network.width=16 --set sde.steps=10 --set sample.count=300 > "$work/abs.log" 2>&1 \
  && grep -q "^precondition: auto: no Laplace map (precondition.kind: laplace: target 'torchscript': the Hessian" "$work/abs.log" \
  && grep -q "^precondition: auto: chose the variational from the prior (the highest ELBO: " "$work/abs.log" \
  && /usr/bin/python3 - "$work/out/ts.h5" <<'PY' && pass || fail "auto on |x|: $(cat "$work/abs.log")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    centre, scale = f["preconditioning/centre"][:], f["preconditioning/scale"][:]
    assert f["preconditioning"].attrs["kind"] == "auto"
    # The Gaussian that maximises the ELBO of exp(-|x_1 - 1| - |x_2 + 1|): centred at the
    # mode, independent coordinates of sd sqrt(pi / 2) (the optimum of -s sqrt(2 / pi) + log s).
    assert np.abs(centre - [1.0, -1.0]).max() < 0.1, centre
    assert np.abs(np.diag(scale) / np.sqrt(np.pi / 2.0) - 1.0).max() < 0.05, scale
    assert abs(scale[1, 0]) < 0.1, scale
PY
# Laplace on a posterior-like log π̃ of order 5000: in float64 the mode to rounding; a module
# that computes in float32 stops L-BFGS short on its rounding, which the map accepts (the
# Newton step from there is exact for this Gaussian, up to float32 gradients).
for module in offset:1e-9 offset_float32:1e-3; do
  ts_run --set target.module="$work/${module%%:*}.pt" --set precondition.kind=laplace \
    --set train.iterations=5 --set train.paths=64 --set network.width=16 --set sde.steps=10 \
    --set sample.count=300 > "$work/offset.log" 2>&1 \
    && grep -q "^precondition: laplace: L-BFGS stopped after" "$work/offset.log" \
    && /usr/bin/python3 - "$work/out/ts.h5" "${module#*:}" <<'PY' && pass || fail "Laplace on ${module%%:*}: $(cat "$work/offset.log")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    centre, scale = f["preconditioning/centre"][:], f["preconditioning/scale"][:]
    error = np.abs(centre - [1.0, -1.0]).max() / 0.05
    assert error < float(sys.argv[2]), (centre, error)
    assert np.allclose(np.diag(scale), 0.05, rtol=1e-3) and np.allclose(scale, np.diag(np.diag(scale))), scale
PY
done
# A log-density that is NaN on some paths stops training on every rank, mid-run, with the
# temporary output file removed.
expect_error "torchscript NaN values" "training diverged at iteration 1 " \
  ts_run --set target.module="$work/nan.pt"
expect_error "torchscript NaN values on 2 ranks" "training diverged at iteration 1 " \
  ts_run_2_ranks --set target.module="$work/nan.pt"
expect_error "torchscript NaN values counted" "log π̃(X_N) is not finite on " \
  ts_run --set target.module="$work/nan.pt"
# Sampling (from a network trained on N((1, -1), 0.5 I)) a target that is -inf beyond x₀ = 2:
# those paths get weight zero, counted in the file and said; a NaN target stops the
# sampling phase with the counts, leaving no output file.
cat > "$work/ts_sample.yaml" <<YAML
target: {name: torchscript, dim: 2, module: $work/minus_inf.pt}
precondition: {kind: none}
sde: {steps: 10}
network: {width: 16, depth: 1}
sample: {count: 2000, batch: 700, model: $work/small_model.pt}
output: {path: $work/out/minus_inf.h5}
YAML
if timeout 60 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" sample "$work/ts_sample.yaml" \
  > "$work/minus_inf.log" 2>&1 \
  && grep -Eq "^warning: log π̃\(X_N\) = -inf on [1-9][0-9]* of 2000 paths: their weights are zero" \
    "$work/minus_inf.log" \
  && /usr/bin/python3 - "$work/out/minus_inf.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    x, lw, lt = f["samples"][:], f["log_weights"][:], f["paths/log_target"][:]
    outside = x[:, 0] > 2.0
    zero = int(f["estimates"].attrs["zero_weight_paths"])
    assert zero == outside.sum() > 0, (zero, outside.sum())
    assert np.all(np.isneginf(lw[outside])) and np.all(np.isfinite(lw[~outside]))
    assert np.all(np.isneginf(lt[outside])) and np.isfinite(f["estimates"].attrs["log_z_is"])
    assert (f["resampled/samples"][:, 0] <= 2.0).all()
PY
then
  pass
else
  fail "sampling a target that is -inf somewhere: $(cat "$work/minus_inf.log")"
fi
# Training on it from the untrained network (N(0, I) reaches x₀ > 2 on about 2 % of the
# paths): those paths end outside the support, are counted in the progress lines and the
# run finishes instead of stopping on its first iteration.
if ! timeout 120 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run "$work/ts_sample.yaml" \
  --set train.iterations=40 --set train.paths=256 --set train.log_every=1 \
  --set output.path="$work/out/minus_inf_train.h5" --set sample.model="$work/out/minus_inf_train.pt" \
  > "$work/minus_inf_train.log" 2>&1 \
  || ! grep -Eq "^train +1/40 .*outside the support: [1-9][0-9]* paths" "$work/minus_inf_train.log" \
  || [[ ! -f $work/out/minus_inf_train.h5 ]]; then
  fail "training on a target that is -inf somewhere: $(cat "$work/minus_inf_train.log")"
else
  pass
fi
# HMC refinement leaves the target's distribution: after 2 training iterations the weights
# for N((3, -3), 4 I) are unreliable, so 2,000 chains start from the proposal's draws (about
# N(0, I)) and 300 iterations bring their moments to the target's, within 5 standard errors
# (2 / sqrt(2000) = 0.045 for the mean; 4 sqrt(2 / 2000) = 0.13 for the variance), with the
# split R^ below 1.01, with an independence move every 10 iterations (sample.model_moves). The
# proposal's draws are 1.5 sds off: the check can fail.
if "$rbsde" run "$work/small.yaml" --set train.iterations=2 --set target.mean=[3,-3] \
  --set target.covariance=4 --set sample.count=2000 --set sample.batch=2000 \
  --set sample.hmc_steps=300 --set sample.seed=5 --set output.path="$work/out/refined.h5" \
  --set sample.model_moves=10 > "$work/refined.log" 2>&1 \
  && grep -q "^HMC refinement: 300 iterations x 3 leapfrog steps (mean) from the proposal's draws" "$work/refined.log" \
  && /usr/bin/python3 - "$work/out/refined.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    refined, samples = f["refined/samples"][:].astype(np.float64), f["samples"][:]
    attrs = f["refined/samples"].attrs
    assert attrs["start"] == "proposal" and attrs["iterations"] == 300, dict(attrs)
    # Independence moves every 10 iterations, some of them accepted.
    assert attrs["model_moves"] == 10 and 0 < attrs["model_acceptance_rate"] < 1, dict(attrs)
    assert attrs["rhat"] < 1.01, attrs["rhat"]
    assert np.abs(samples.mean(0) - [3.0, -3.0]).min() > 2.0, samples.mean(0)
    assert np.abs(refined.mean(0) - [3.0, -3.0]).max() < 5 * 0.045, refined.mean(0)
    assert np.abs(refined.var(0) - 4.0).max() < 5 * 0.13, refined.var(0)
PY
then
  pass
else
  fail "HMC refinement from the proposal's draws: $(tail -5 "$work/refined.log")"
fi
expect_error "sampling a NaN target" "sampling produced non-finite values: log π̃(X_N) is NaN on " \
  "$rbsde" sample "$work/ts_sample.yaml" --set target.module="$work/nan.pt"
# Sizes too large for the memory fail alike on both ranks: one message naming the keys.
expect_error "training paths beyond the memory on 2 ranks" "out of memory: training records" \
  timeout 60 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" run "$work/small.yaml" \
  --set train.paths=99999999999 --set output.path="$work/out/huge.h5"
expect_error "sampling a NaN target on 2 ranks" \
  "sampling produced non-finite values: log π̃(X_N) is NaN on " \
  timeout 60 mpirun -np 2 --oversubscribe --bind-to none "$rbsde" sample "$work/ts_sample.yaml" \
  --set target.module="$work/nan.pt"

# Preconditioned runs: Laplace (exact for this Gaussian, N(m, L Lᵀ) with m = (1, -1), L = √0.5 I),
# then a pilot run on its output on 2 ranks. The file is in the target's coordinates: weighted
# sample mean within 5 standard errors (sd √0.5 / √ESS) of m, log Z within 5 standard errors
# of the exact log 2π + log 0.5 = 1.1447 (the estimates include log|det L| = log 0.5).
check_preconditioned() {
  /usr/bin/python3 - "$@" <<'PY'
import sys, h5py, numpy as np
path, kind = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    p = f["preconditioning"]
    assert p.attrs["kind"] == kind and p.attrs["form"] == "cholesky", dict(p.attrs)
    assert p["centre"].shape == (2,) and p["scale"].shape == (2, 2), (p["centre"], p["scale"])
    if kind == "laplace":
        assert np.allclose(p["centre"][:], [1, -1], atol=1e-6), p["centre"][:]
        assert np.allclose(p["scale"][:], np.sqrt(0.5) * np.eye(2), atol=1e-6), p["scale"][:]
        assert abs(p.attrs["log_det"] - np.log(0.5)) < 1e-6, p.attrs["log_det"]
    lw = f["log_weights"][:]
    w = np.exp(lw - lw.max()); w /= w.sum()
    ess = 1 / np.sum(w ** 2)
    mean = w @ f["samples"][:].astype(np.float64)
    assert np.all(np.abs(mean - [1, -1]) < 5 * np.sqrt(0.5 / ess)), (mean, ess)
    e = f["estimates"].attrs
    assert abs(e["log_z_is"] - (np.log(2 * np.pi) + np.log(0.5))) < 5 * e["log_z_is_stderr"] + 1e-3, dict(e)
PY
}
if "$rbsde" run "$work/small.yaml" --set precondition.kind=laplace \
  --set output.path="$work/out/laplace.h5" > "$work/laplace.log" 2>&1 \
  && grep -q "^precondition laplace: x = m + L x^" "$work/laplace.log" \
  && grep -q "log Z (exact)               = 1.1447" "$work/laplace.log" \
  && check_preconditioned "$work/out/laplace.h5" laplace; then
  pass
else
  fail "laplace run: $(cat "$work/laplace.log")"
fi
if timeout 120 mpirun -np 2 --oversubscribe "$rbsde" run "$work/small.yaml" \
  --set precondition.kind=pilot --set precondition.pilot="$work/out/laplace.h5" \
  --set output.path="$work/out/pilot.h5" > "$work/pilot.log" 2>&1 \
  && check_preconditioned "$work/out/pilot.h5" pilot; then
  pass
else
  fail "pilot run on 2 ranks: $(cat "$work/pilot.log")"
fi

# python3 -m postprocess summary, samples and training read a complete file; a file without the completeness attribute (an
# interrupted run's, or another program's) is refused by the pilot reader and by postprocess/
# with a clear message.
for command in summary samples training; do
  (cd "$source_dir" && /usr/bin/python3 -m postprocess $command "$work/out/laplace.h5") \
    > "$work/$command.log" 2>&1 && pass || fail "postprocess $command: $(cat "$work/$command.log")"
done
[[ -f $work/out/laplace_samples.png && -f $work/out/laplace_training.pdf ]] && pass \
  || fail "postprocess samples/training plots: $(ls "$work/out")"
cp "$work/out/laplace.h5" "$work/laplace.h5" && cp "$work/out/laplace.h5" "$work/incomplete.h5"
/usr/bin/python3 -c 'import sys, h5py; h5py.File(sys.argv[1], "r+").attrs.__delitem__("complete")' \
  "$work/incomplete.h5"
expect_error "incomplete pilot file" "'$work/incomplete.h5': is not a complete rbsde output file" \
  "$rbsde" run "$work/small.yaml" --set precondition.kind=pilot \
  --set precondition.pilot="$work/incomplete.h5"
for command in "summary $work/incomplete.h5" "compare-reference $work/incomplete.h5 $work/laplace.h5" \
  "samples $work/incomplete.h5 --means $source_dir/data/gmm40_means.csv"; do
  out=$(cd "$source_dir" && /usr/bin/python3 -m postprocess $command 2>&1)
  [[ $? -eq 1 && $out == *"$work/incomplete.h5: not a complete rbsde output file"* ]] && pass \
    || fail "postprocess/$command on an incomplete file: $out"
done

# Checkpoint and restart: a run stopped by SIGTERM during training and resumed with --resume
# ends exactly where the uninterrupted run ends; SIGUSR1 writes a checkpoint and goes on.
sed -e 's/iterations: 20/iterations: 4000, log_every: 100, checkpoint_every: 0/' \
  "$work/small.yaml" > "$work/long.yaml"
"$rbsde" run "$work/long.yaml" --set output.path="$work/full/run.h5" > "$work/full.log" 2>&1 \
  || fail "uninterrupted run: $(cat "$work/full.log")"

# run_until_training_then SIGNAL OUTPUT LOG: starts a run, sends SIGNAL once training has
# printed progress, and returns the run's exit status.
run_until_training_then() {
  local signal=$1 output=$2 log=$3
  "$rbsde" run "$work/long.yaml" --set output.path="$output" > "$log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    grep -q "^train " "$log" && break
    sleep 0.1
  done
  kill -s "$signal" "$pid"
  wait "$pid"
}
run_until_training_then TERM "$work/stop/run.h5" "$work/stop.log"
status=$?
if [[ $status -eq 143 && -f $work/stop/run.ckpt && ! -e $work/stop/run.h5 && ! -e $work/stop/run.h5.tmp ]] \
  && grep -q "stopped by a signal after iteration" "$work/stop.log"; then
  pass
else
  fail "SIGTERM: status $status, $(ls "$work/stop" 2>&1), $(cat "$work/stop.log")"
fi
if "$rbsde" run "$work/long.yaml" --set output.path="$work/stop/run.h5" --resume > "$work/resume.log" 2>&1 \
  && grep -q "resuming from" "$work/resume.log"; then
  pass
else
  fail "resume: $(cat "$work/resume.log")"
fi
/usr/bin/python3 - "$work/full/run.h5" "$work/stop/run.h5" <<'PY' && pass || fail "resumed run differs from the uninterrupted one"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as full, h5py.File(sys.argv[2], "r") as resumed:
    for name in ("samples", "log_weights", "training/loss", "training/log_z"):
        assert np.array_equal(full[name][:], resumed[name][:]), name
PY
run_until_training_then USR1 "$work/usr1/run.h5" "$work/usr1.log"
status=$?
[[ $status -eq 0 && -f $work/usr1/run.ckpt && -f $work/usr1/run.h5 ]] && pass \
  || fail "SIGUSR1: status $status, $(cat "$work/usr1.log")"
expect_error "resume without a checkpoint" "run.ckpt" \
  "$rbsde" run "$work/long.yaml" --set output.path="$work/out/run.h5" --resume
# A resume with settings that change the trajectory is refused, naming each key, and the
# checkpoint stays as it was (issue 19: this ran to the end, mixing two runs); settings that
# do not are allowed and reported.
sum_before=$(sha256sum < "$work/stop/run.ckpt")
out=$("$rbsde" run "$work/long.yaml" --set output.path="$work/stop/run.h5" --resume \
  --set network.activation=tanh --set sde.integrator=euler --set train.lr=0.1 2>&1)
status=$?
[[ $status -ne 0 && $out == *"network.activation: silu -> tanh"* && $out == *"sde.integrator: exponential -> euler"* \
  && $out == *"train.lr: "* && $(sha256sum < "$work/stop/run.ckpt") == "$sum_before" ]] && pass \
  || fail "resume with other settings: status $status, $out"
out=$("$rbsde" train "$work/long.yaml" --set output.path="$work/stop/run.h5" --resume \
  --set train.log_every=1000 --set sample.model="$work/stop/retrained.pt" 2>&1)
[[ $? -eq 0 && $out == *"allowed difference from the checkpoint's run: train.log_every: 100 -> 1000"* ]] \
  && pass || fail "resume with an allowed difference: $out"
# A damaged checkpoint is refused with its name.
mkdir -p "$work/stop/cut" && head -c 2000 "$work/stop/run.ckpt" > "$work/stop/cut/run.ckpt"
expect_error "truncated checkpoint" "cannot resume from checkpoint '$work/stop/cut/run.ckpt'" \
  "$rbsde" run "$work/long.yaml" --set output.path="$work/stop/cut/run.h5" --resume

# rbsde reference: the MALA reference sampler on the small Gaussian (mean [1, -1], sd √0.5),
# on 1 and 2 ranks (chains shared over the ranks; the same moments up to rounding).
for np in 1 2; do
  if timeout 120 mpirun -np $np --oversubscribe "$rbsde" reference "$work/small.yaml" \
    --set output.path="$work/ref/np$np.h5" --set reference.warmup=200 --set reference.steps=1000 \
    > "$work/ref$np.log" 2>&1 && grep -q "^rbsde-summary command=reference" "$work/ref$np.log"; then
    pass
  else
    fail "reference on $np ranks: $(cat "$work/ref$np.log")"
  fi
done
/usr/bin/python3 - "$work/ref/np1.h5" "$work/ref/np2.h5" <<'PY' && pass || fail "reference file"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as one, h5py.File(sys.argv[2], "r") as two:
    r = one["reference"]
    mean, sd, se = r["mean"][:], r["sd"][:], r["mean_stderr"][:]
    # 64 chains x 1000 steps: stderr ~1 % of sd; five of them, and sd within 10 %.
    assert (np.abs(mean - [1, -1]) < 5 * se).all(), (mean, se)
    assert (np.abs(sd - 0.5 ** 0.5) < 0.1 * 0.5 ** 0.5).all(), sd
    assert r.attrs["chains"] == 64 and r.attrs["steps"] == 1000 and r.attrs["warmup"] == 200
    assert 0.4 < r.attrs["acceptance_rate"] < 0.75 and r.attrs["step_size"] > 0
    assert "reference:" in one.attrs["config"]
    assert np.allclose(two["reference/mean"][:], mean, rtol=0, atol=1e-9), two["reference/mean"][:]
PY

# Cores shared with other work: with every core kept busy by another process, the threads a
# rank takes by default are 1, and start-up says why.
cores=$(getconf _NPROCESSORS_ONLN)  # not nproc: it counts OMP_NUM_THREADS
busy=()
for _ in $(seq "$cores"); do
  (while :; do :; done) &
  busy+=($!)
done
sleep 1
env -u OMP_NUM_THREADS -u SLURM_CPUS_PER_TASK "$rbsde" train "$work/small.yaml" \
  --set output.path="$work/shared/busy.h5" --set train.iterations=1 > "$work/busy.log" 2>&1
kill "${busy[@]}"
wait "${busy[@]}" 2> /dev/null
if grep -q "threads/rank 1 (cores per rank on this node; [0-9.]* of $cores cores busy with other work)" \
  "$work/busy.log"; then
  pass
else
  fail "threads on busy cores: $(head -3 "$work/busy.log")"
fi

echo "cli: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
