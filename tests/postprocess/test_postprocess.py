"""pytest tests of `python3 -m postprocess` on small output files generated here: every command
reads them, writes PNG and PDF, and computes what it prints from their contents."""
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from postprocess import samples, scaling, scaling_model  # noqa: E402

PHASES = "noise path_kernel forward target backward allreduce optimizer sampling output"


def write_run(path, ranks=1, paths=256, seconds_per_iteration=0.02, config=None, rng=None,
              parameters=10000):
    """A complete output file of a 2-D gmm run: samples from the mixture with equal weights."""
    rng = rng or np.random.default_rng(0)
    config = config or ("target:\n  name: gmm\n  dim: 2\n  weights: [0.5, 0.5]\n"
                        "  means: [[-3, 0], [3, 0]]\n  covariances: [1, 1]\n"
                        f"train:\n  paths: {paths}\n")
    count = 4000
    x = rng.standard_normal((count, 2))
    x[:, 0] += np.where(np.arange(count) < count // 2, -3.0, 3.0)
    iterations = 50
    with h5py.File(path, "w") as f:
        f.attrs["config"] = config
        f.attrs["complete"] = np.int32(1)
        f["samples"] = x.astype(np.float32)
        f["log_weights"] = np.zeros(count)
        f["resampled/samples"] = x.astype(np.float32)
        f["training/loss"] = np.geomspace(1.0, 0.01, iterations)
        f["training/log_z"] = np.linspace(-1.0, 0.0, iterations)
        e = f.create_group("estimates")
        for key, value in dict(log_z_is=0.01, log_z_is_stderr=0.02, log_z_network=0.0, elbo=-0.1,
                               elbo_stderr=0.01, ess=count, ess_fraction=1.0, pareto_k=0.1,
                               pareto_k_threshold=0.7, count=count).items():
            e.attrs[key] = value
        e["posterior_mean"] = x.mean(0)
        e["posterior_sd"] = x.std(0)
        t = f.create_group("timing")
        t.attrs["phases"] = PHASES
        per_phase = np.array([1, 1, 3, 1, 3, 1, 1, 2, 1], dtype=np.float64)
        train = seconds_per_iteration * iterations
        t["mean"] = per_phase / per_phase[:7].sum() * train * 0.9
        t["min"], t["max"] = 0.9 * t["mean"][()], 1.1 * t["mean"][()]
        for key, value in dict(ranks=ranks, threads=1, paths=paths, dimension=2,
                               parameters=parameters, iterations=iterations).items():
            t.attrs[key] = np.int64(value)
        t.attrs["train_seconds"] = train
        t.attrs["seconds_per_iteration"] = seconds_per_iteration


def run(*args):
    return subprocess.run([sys.executable, "-m", "postprocess", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def test_summary_prints_estimates_and_timing(tmp_path):
    write_run(tmp_path / "run.h5")
    result = run("summary", tmp_path / "run.h5", "--truth-log-z", "0")
    assert result.returncode == 0, result.stderr
    assert "log Z (IS)       0.010000 ± 0.020000" in result.stdout
    assert "IS error +0.010000 = +0.50 stderr" in result.stdout
    assert "backward" in result.stdout and "0.02 s/iteration" in result.stdout


def test_summary_says_why_there_is_no_pareto_k(tmp_path):
    """k^ NaN reads as the run printed it (src/bsde/psis.cpp): n/a, with the finite count."""
    write_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as f:
        f["estimates"].attrs["pareto_k"] = np.nan
        f["estimates"].attrs["zero_weight_paths"] = np.int64(3950)
    result = run("summary", tmp_path / "run.h5")
    assert result.returncode == 0, result.stderr
    # M = 4000: a tail of ⌈3√4000⌉ = 190 weights; 50 are finite.
    assert "n/a (50 of 4000 log weights are finite; the tail fit needs 191)" in result.stdout, \
        result.stdout
    assert "nan" not in result.stdout


def test_samples_and_training_write_png_and_pdf(tmp_path):
    write_run(tmp_path / "run.h5")
    result = run("samples", tmp_path / "run.h5")
    assert result.returncode == 0, result.stderr
    # Equal modes 6 sd apart: the nearest-mean shares are 0.5 within the 0.0013 beyond the middle.
    assert "total variation from the exact weights: 0.00" in result.stdout, result.stdout
    result = run("training", tmp_path / "run.h5")
    assert result.returncode == 0, result.stderr
    for name in ("run_samples", "run_samples_modes", "run_training"):
        for suffix in (".png", ".pdf"):
            assert (tmp_path / (name + suffix)).stat().st_size > 1000


def test_training_plot_shows_the_annealing(tmp_path):
    """With /training/gamma rising from 0.05 to 1 over 35 of 50 iterations the plot shades the
    phase and draws gamma; its legend names the iterations (read back from the figure)."""
    write_run(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "a") as f:
        f["training/gamma"] = np.minimum(1.0, np.linspace(0.05, 1.0 + 15 / 35 * 0.95, 50))
    sys.argv = ["postprocess"]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from postprocess import training
    figures = []
    close = plt.close
    plt.close = lambda fig=None: figures.append(fig)  # keep the figure to read it back
    try:
        assert training.main([str(tmp_path / "run.h5")]) == 0
    finally:
        plt.close = close
    figure = next(fig for fig in figures if hasattr(fig, "axes"))
    labels = [t.get_text() for ax in figure.axes if ax.get_legend()
              for t in ax.get_legend().get_texts()]
    assert any(label.startswith("annealing: γ 0.05 → 1 (iterations 1–35)") for label in labels), \
        labels
    assert "γ (right axis)" in labels, labels
    assert (tmp_path / "run_training.png").stat().st_size > 1000


def test_samples_plots_the_named_posterior_parameters(tmp_path, monkeypatch):
    """A posterior with /posterior (a scalar tau, a vector theta as rbsde writes it): the pair
    plot shows tau, then theta[1] … theta[3], by those names, from /posterior's draws."""
    path = tmp_path / "run.h5"
    write_run(path, config="target:\n  name: torchscript\n  dim: 2\n  module: m.pt\n")
    rng = np.random.default_rng(2)
    with h5py.File(path, "a") as f:
        group = f.create_group("posterior")
        group["chain"] = np.zeros(1, dtype=np.int64)
        group["draw"] = np.arange(4000)
        group["theta_dim_0"] = np.arange(5)
        for name in ("chain", "draw", "theta_dim_0"):
            group[name].make_scale(name)
        group["theta"] = rng.normal(size=(1, 4000, 5))
        group["tau"] = np.exp(rng.normal(size=(1, 4000)))
    figures = []
    monkeypatch.setattr(samples, "save_figure", lambda fig, stem: figures.append(fig) or [])
    assert samples.main([str(path)]) == 0
    axes = figures[0].axes
    assert [ax.get_xlabel() for ax in axes[-4:]] == ["tau", "theta[1]", "theta[2]", "theta[3]"]
    assert "draws of /posterior (6 parameters)" in figures[0]._suptitle.get_text()
    # The histogram of tau is of /posterior/tau's draws: positive.
    assert axes[0].patches[0].get_x() > 0


def test_exact_marginals_of_a_gaussian():
    weights, means, variances = samples.mixture(
        {"name": "gaussian", "dim": 2, "mean": [1, 2], "covariance": [[2, 0.5], [0.5, 3]]})
    assert weights.tolist() == [1.0]
    assert means.tolist() == [[1.0, 2.0]] and variances.tolist() == [[2.0, 3.0]]


def test_mode_shares_follow_the_weights():
    x = np.array([[-3.0, 0.0], [-2.5, 0.0], [3.0, 0.0]])
    shares = samples.mode_shares(x, np.log([1.0, 1.0, 2.0]), np.array([[-3.0, 0], [3.0, 0]]))
    assert shares == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("kind", ["strong", "weak"])
def test_scaling_study(tmp_path, kind):
    study = tmp_path / f"{kind}-1"
    study.mkdir()
    (study / "study").write_text(kind + "\n")
    timings = {1: 0.04, 2: 0.025} if kind == "strong" else {1: 0.04, 2: 0.05}
    for ranks, seconds in timings.items():
        (study / f"ranks-{ranks}").mkdir()
        write_run(study / f"ranks-{ranks}" / "output.h5", ranks=ranks,
                  paths=256 * (ranks if kind == "weak" else 1), seconds_per_iteration=seconds)
    result = run("scaling", study)
    assert result.returncode == 0, result.stderr
    assert "80.0%" in result.stdout, result.stdout
    assert (study / "scaling.png").stat().st_size > 1000 and (study / "scaling.pdf").exists()
    ranks, seconds, speedup, eff = scaling.metrics(kind, scaling.read_study(study)[1])
    assert speedup.tolist() == pytest.approx([1.0, 1.6])
    assert eff.tolist() == pytest.approx([1.0, 0.8])


def write_sweep(path, alpha_s=2e-6, beta_s=5e9, fixed=0.01, per_path=1e-4, steps=50):
    """A sweep.json whose np = 2 all-reduces cost 2 α_s + 4n / β_s and whose paths cases cost
    fixed + per_path · (paths per rank) + 1 ms of all-reduce."""
    import json
    cases = []
    for name, paths, floats in (("paths=256", 256, 10_000), ("centre", 1024, 1_000_000),
                                ("paths=4096", 4096, 100_000)):
        rbsde = dict(np=2, paths=paths, steps=steps, gradient_floats=floats,
                     allreduce_alone_s=2 * alpha_s + 4 * floats / beta_s,
                     allreduce_s_per_iter=0.001,
                     s_per_iter=fixed + per_path * paths / 2 + 0.001)
        cases.append({"case": name, "rbsde": rbsde, "python": {"s_per_iter": 1.0}})
    path.write_text(json.dumps(cases))


def test_scaling_model_fits_the_sweep_and_projects(tmp_path):
    write_sweep(tmp_path / "sweep.json")
    fit = scaling_model.fit_sweep(tmp_path / "sweep.json")
    assert fit["alpha_s"] == pytest.approx(2e-6, rel=1e-6)
    assert fit["beta_s"] == pytest.approx(5e9, rel=1e-6)
    assert fit["kappa"] == pytest.approx(0.01 / 50, rel=1e-6)

    write_run(tmp_path / "run.h5", config="target: {name: gmm, dim: 2}\nsde: {steps: 20}\n")
    run_ = scaling_model.read_run(tmp_path / "run.h5")
    assert run_["parameters"] == 10000 and run_["steps"] == 20
    # Free communication: weak scaling is perfect, strong scaling is limited by the fixed part
    # F alone: efficiency (F + b m0) / (P F + b m0) with the node's paths m0 per rank.
    free = dict(fit, alpha_s=0.0, beta_s=math.inf)
    projection = scaling_model.project(run_, free, cores=4, latency=0.0, bandwidth=math.inf)
    fixed, b, m0 = (projection[k] for k in ("fixed_seconds", "seconds_per_path", "paths_per_rank"))
    assert fixed == pytest.approx(run_["optimizer"] + 20 * fit["kappa"])
    for row in projection["rows"]:
        p = row["nodes"]
        assert row["weak_efficiency"] == pytest.approx(1.0)
        if m0 / p >= 1:
            assert row["strong_efficiency"] == pytest.approx((fixed + b * m0) / (p * fixed + b * m0))
        else:
            assert math.isnan(row["strong_efficiency"])
    # A real network: weak efficiency falls as the nodes double, the all-reduce grows.
    projection = scaling_model.project(run_, fit, cores=4, latency=1e-6, bandwidth=24e9)
    weak = [r["weak_efficiency"] for r in projection["rows"]]
    assert all(a > b for a, b in zip(weak, weak[1:])) and weak[0] == pytest.approx(1.0)

    result = run("scaling-model", tmp_path / "run.h5", "--sweep", tmp_path / "sweep.json",
                 "--out", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    assert "α_s 2.00 µs, β_s 5.00 GB/s" in result.stdout, result.stdout
    assert (tmp_path / "model.png").stat().st_size > 1000 and (tmp_path / "model.json").exists()
    result = run("scaling-model", tmp_path / "run.h5", "--sweep", tmp_path / "missing.json")
    assert result.returncode == 1 and "cannot read the sweep" in result.stderr


def test_bad_input_is_one_clear_error(tmp_path):
    result = run("summary", tmp_path / "missing.h5")
    assert result.returncode == 1 and "no such file" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("scaling", tmp_path / "empty")
    assert result.returncode == 1 and "no file 'study'" in result.stderr
    result = run("nonsense")
    assert result.returncode == 2 and "unknown command 'nonsense'" in result.stderr


def test_compare_posteriordb_with_a_reference_summary(tmp_path):
    """compare-posteriordb against a folder's reference_summary.json (the hierarchical test
    set's): a run whose /posterior draws are N(1, 2²) passes against mean 1, sd 2 and fails
    against a mean 0.2 sd away."""
    import json
    path = tmp_path / "run.h5"
    write_run(path)
    draws = np.random.default_rng(1).normal(1.0, 2.0, size=(1, 200000))
    with h5py.File(path, "a") as f:
        f["posterior/a"] = draws
    for name, mean, verdict in (("near", 1.0, 0), ("far", 1.4, 1)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "reference_summary.json").write_text(json.dumps({"a": {"mean": mean, "sd": 2.0}}))
        result = run("compare-posteriordb", path, folder)
        assert result.returncode == verdict, result.stdout + result.stderr
        assert ("PASS" if verdict == 0 else "FAIL") in result.stdout
