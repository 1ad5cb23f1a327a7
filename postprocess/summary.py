#!/usr/bin/python3
"""Summarise an rbsde run file and plot its samples and training curves.

usage: summary.py RUN.h5 [--png OUT.png] [--truth-log-z X]

Prints the target, the evidence estimates, the weight diagnostics and the posterior moments,
and draws three panels: (a) the first two coordinates of the equally weighted samples
(/resampled/samples, or systematic resampling by the importance weights here when the run did
not resample),
(b) the training loss, (c) the network's log Z during training against the final IS estimate.
"""
import argparse
import re
import sys
from pathlib import Path

import h5py
import numpy as np

import rbsde_output
from rbsde_output import open_output

REQUIRED = ["samples", "log_weights", "training/loss", "training/log_z"]
ESTIMATES = ["log_z_is", "log_z_is_stderr", "log_z_network", "elbo", "elbo_stderr", "ess",
             "ess_fraction", "pareto_k", "pareto_k_threshold", "count"]


def fail(message):
    rbsde_output.fail("summary.py", message)


def yaml_child(text, section, key):
    """Value of `key` directly under the top-level mapping `section` of block YAML, or None.

    A few lines of regex instead of a YAML parser, which may not be installed."""
    indent = None
    in_section = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():  # a top-level key opens or closes the section
            in_section = re.match(rf"{re.escape(section)}\s*:\s*$", line) is not None
            continue
        if not in_section:
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        match = re.match(rf"\s*{re.escape(key)}\s*:\s*(.*?)\s*$", line)
        if depth == indent and match:
            return match.group(1).strip("'\"")
    return None


def systematic_resample(log_weights, rng):
    """Indices of len(log_weights) draws by systematic resampling with the normalised weights."""
    weights = np.where(np.isfinite(log_weights), log_weights, -np.inf)
    if not np.isfinite(weights).any():
        fail("no finite log weight: cannot resample the samples for the plot")
    weights = np.exp(weights - weights.max())
    cumulative = np.cumsum(weights / weights.sum())
    count = len(weights)
    positions = (rng.random() + np.arange(count)) / count
    return np.minimum(np.searchsorted(cumulative, positions), count - 1)


def read_run(path):
    file = open_output(path, "summary.py")
    with file:
        for name in REQUIRED:
            if not isinstance(file.get(name), h5py.Dataset):
                fail(f"{path}: missing dataset /{name}; is it an rbsde output file?")
        estimates = file.get("estimates")
        missing = [key for key in ESTIMATES if estimates is None or key not in estimates.attrs]
        if missing:
            fail(f"{path}: missing attribute(s) {', '.join(missing)} of /estimates")
        config = file.attrs.get("config", "")
        run = {
            "config": config.decode() if isinstance(config, bytes) else str(config),
            "shape": file["samples"].shape,
            "points": file["samples"][:, :2].astype(np.float64),
            "resampled": (file["resampled/samples"][:, :2].astype(np.float64)
                          if "resampled/samples" in file else None),
            "posterior": ((file["estimates/posterior_mean"][:], file["estimates/posterior_sd"][:])
                          if "posterior_mean" in estimates else None),
            "refined": (dict(file["refined/samples"].attrs) if "refined/samples" in file else None),
            "log_weights": file["log_weights"][:],
            "loss": file["training/loss"][:],
            "log_z": file["training/log_z"][:],
            "estimates": {key: estimates.attrs[key].item() for key in ESTIMATES},
        }
    return run


def print_summary(path, run, truth):
    e = run["estimates"]
    name = yaml_child(run["config"], "target", "name") or "?"
    dim = yaml_child(run["config"], "target", "dim") or str(run["shape"][1])
    lines = [
        ("run", str(path)),
        ("target", f"{name} (dim {dim})"),
        ("samples", f"{run['shape'][0]}"),
        ("log Z (IS)", f"{e['log_z_is']:.6f} ± {e['log_z_is_stderr']:.6f}"),
        ("log Z (network)", f"{e['log_z_network']:.6f}"),
        ("ELBO", f"{e['elbo']:.6f} ± {e['elbo_stderr']:.6f}"),
        ("ESS", f"{e['ess']:.1f} (ESS/M = {e['ess_fraction']:.4f})"),
        ("Pareto k^", f"{e['pareto_k']:.2f} (reliable below {e['pareto_k_threshold']:.2f})"),
    ]
    if truth is not None:
        error = e["log_z_is"] - truth
        z = error / e["log_z_is_stderr"] if e["log_z_is_stderr"] > 0 else float("inf")
        lines.append(("true log Z", f"{truth:.6f} (IS error {error:+.6f} = {z:+.2f} stderr)"))
    if run["posterior"] is not None:
        mean, sd = run["posterior"]
        shown = ", ".join(f"{m:.4g} ± {s:.3g}" for m, s in zip(mean[:4], sd[:4]))
        lines.append(("posterior", f"mean ± sd: {shown}{' …' if len(mean) > 4 else ''}"))
    if run["refined"] is not None:
        refined = run["refined"]
        # Files written before HMC refinement have no leapfrog_steps: their MALA is one step.
        lines.append(("HMC refined", f"acceptance {refined['acceptance_rate']:.3f}, "
                                     f"step size {refined['step_size']:.4g}, "
                                     f"{refined.get('leapfrog_steps', 1)} leapfrog steps"))
    loss = run["loss"]
    lines.append(("final loss", f"{loss[-1]:.6g} ({len(loss)} iterations)" if len(loss) else
                  "n/a (no training record)"))
    for label, value in lines:
        print(f"{label:<16} {value}")


def plot(run, truth, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_samples, ax_loss, ax_log_z) = plt.subplots(1, 3, figsize=(15, 4.5))
    points = run["resampled"]
    if points is None:
        points = run["points"][systematic_resample(run["log_weights"], np.random.default_rng(0))]
    if points.shape[1] >= 2:
        ax_samples.hist2d(points[:, 0], points[:, 1], bins=100, cmap="viridis")
        ax_samples.set_ylabel("$x_2$")
    else:
        ax_samples.hist(points[:, 0], bins=100, density=True)
    ax_samples.set_xlabel("$x_1$")
    ax_samples.set_title("(a) samples, resampled by weight")

    iterations = np.arange(1, len(run["loss"]) + 1)
    ax_loss.plot(iterations, run["loss"])
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="iteration", ylabel="loss", title="(b) training loss")

    ax_log_z.plot(np.arange(1, len(run["log_z"]) + 1), run["log_z"], label="network $c_\\theta$")
    ax_log_z.axhline(run["estimates"]["log_z_is"], color="C1", label="final IS estimate")
    if truth is not None:
        ax_log_z.axhline(truth, color="k", linestyle="--", label="truth")
    ax_log_z.set(xlabel="iteration", ylabel="log Z", title="(c) log Z during training")
    ax_log_z.legend()
    if len(run["loss"]) == 0:
        for ax in (ax_loss, ax_log_z):
            ax.text(0.5, 0.5, "no training record", ha="center", transform=ax.transAxes)

    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="rbsde output file (HDF5)")
    parser.add_argument("--png", type=Path, help="plot path (default: RUN with .png)")
    parser.add_argument("--truth-log-z", type=float, help="exact log Z, for the error")
    args = parser.parse_args()

    run = read_run(args.run)
    print_summary(args.run, run, args.truth_log_z)
    png = args.png or args.run.with_suffix(".png")
    plot(run, args.truth_log_z, png)
    print(f"{'plot':<16} {png}")


if __name__ == "__main__":
    main()
