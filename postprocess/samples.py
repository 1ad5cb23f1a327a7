"""Sample plots of an rbsde run: a pair plot of chosen coordinates of the equally weighted
draws (marginal histograms on the diagonal, against the exact marginal density where the target
has one: gaussian, gmm), and for a mixture the share of the weighted samples nearest each mode
against the exact weights.

usage: python3 -m postprocess samples RUN [--coords 0 1 2] [--refined] [--out PATH]
       [--means MEANS.csv]

For a posterior (a target without exact marginals) whose run wrote /posterior, the plot shows
its named parameters by default: the scalars first (scales, means), then vector elements, up to
four; --coords (coordinates of the sampler's x, from 0) or --refined plot the raw draws.

RUN is an output file or a run directory. The draws are /resampled/samples (/refined/samples
with --refined), or the weighted samples resampled here (systematic resampling) when the run
did not resample. Writes PATH.png and PATH.pdf (default: RUN's stem + _samples); a mixture's
mode shares go to PATH_modes.png and .pdf and are printed.
"""
import argparse
from pathlib import Path

import numpy as np

from .output import fail, open_output, read_posterior, resolved_config, save_figure

PROGRAM = "postprocess samples"


def systematic_resample(log_weights, rng):
    """Indices of len(log_weights) draws by systematic resampling with the normalised weights."""
    weights = np.where(np.isfinite(log_weights), log_weights, -np.inf)
    if not np.isfinite(weights).any():
        fail(PROGRAM, "no finite log weight: cannot resample the samples for the plot")
    weights = np.exp(weights - weights.max())
    cumulative = np.cumsum(weights / weights.sum())
    count = len(weights)
    positions = (rng.random() + np.arange(count)) / count
    return np.minimum(np.searchsorted(cumulative, positions), count - 1)


def variance_diagonal(covariance, dim):
    """The diagonal of a covariance given as a scalar c (c I), a d-vector or a d x d matrix."""
    c = np.asarray(covariance if covariance is not None else 1.0, dtype=np.float64)
    return np.broadcast_to(np.diag(c) if c.ndim == 2 else c, (dim,))


def normal_density(x, mean, variance):
    return np.exp(-0.5 * (x - mean) ** 2 / variance) / np.sqrt(2.0 * np.pi * variance)


def mixture(target):
    """(weights, means [K, d], per-component variance diagonals [K, d]) of a gaussian or gmm
    target of the resolved configuration, else None: the targets with exact marginals."""
    dim = int(target["dim"])
    if target.get("name") == "gaussian":
        mean = np.broadcast_to(np.asarray(target.get("mean", 0.0), dtype=np.float64), (dim,))
        return np.ones(1), mean[None, :], variance_diagonal(target.get("covariance"), dim)[None, :]
    if target.get("name") == "gmm":
        means = np.asarray(target["means"], dtype=np.float64).reshape(-1, dim)
        weights = np.asarray(target.get("weights") or np.ones(len(means)), dtype=np.float64)
        covariances = target.get("covariances") or [1.0] * len(means)
        variances = np.array([variance_diagonal(c, dim) for c in covariances])
        return weights / weights.sum(), means, variances
    return None


def read_draws(path, refined):
    with open_output(path, PROGRAM) as file:
        config = resolved_config(file)
        name = "refined/samples" if refined else "resampled/samples"
        if refined and name not in file:
            fail(PROGRAM, f"{path}: no /refined/samples (the run had sample.hmc_steps: 0)")
        if name in file:
            draws = file[name][()].astype(np.float64)
            what = "HMC-refined draws" if refined else "resampled draws"
        else:
            log_weights = file["log_weights"][()]
            draws = file["samples"][()].astype(np.float64)
            draws = draws[systematic_resample(log_weights, np.random.default_rng(0))]
            what = "samples resampled by weight"
        weighted = (file["samples"][()].astype(np.float64), file["log_weights"][()])
    return config, draws, what, weighted


def posterior_choice(names, count=4):
    """Up to `count` of /posterior's parameter names to plot: the scalars first (scales, means:
    the names without an index), then the first elements of the vectors."""
    scalars = [name for name in names if "[" not in name]
    return (scalars + [name for name in names if "[" in name])[:count]


def pair_plot(columns, labels, exact, title):
    """A pair plot of `columns` [draws, k] named by `labels`; `exact` is None or a mixture's
    (weights, means, variances) restricted to these k coordinates."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(labels)
    fig, axes = plt.subplots(k, k, figsize=(2.8 * k + 1.0, 2.8 * k + 0.6), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i][j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(columns[:, i], bins=80, density=True, color="C0", alpha=0.7, label="rbsde")
                if exact is not None:
                    weights, means, variances = exact
                    grid = np.linspace(*ax.get_xlim(), 400)
                    density = sum(w * normal_density(grid, m[i], v[i])
                                  for w, m, v in zip(weights, means, variances))
                    ax.plot(grid, density, "k--", label="exact")
                ax.set_ylabel("density")
                if i == 0:
                    ax.legend(fontsize="small")
            else:
                ax.hist2d(columns[:, j], columns[:, i], bins=80, cmap="viridis")
                ax.set_ylabel(labels[i])
            ax.set_xlabel(labels[j])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mode_shares(samples, log_weights, means):
    """The self-normalised weight of the samples nearest each mean."""
    w = np.exp(log_weights - np.nanmax(log_weights))
    w = np.where(np.isfinite(w), w, 0.0)
    nearest = np.argmin(((samples[:, None, :] - means[None, :, :]) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, weights=w, minlength=len(means)) / w.sum()


def modes_plot(shares, exact, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(shares) + 2.0), 3.8))
    index = np.arange(len(shares))
    ax.bar(index - 0.2, shares, width=0.4, label="rbsde (weighted samples)")
    ax.bar(index + 0.2, exact, width=0.4, label="exact")
    ax.set(xlabel="mode (nearest mean)", ylabel="share of the probability", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess samples",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="output file or run directory")
    parser.add_argument("--coords", type=int, nargs="+", help="coordinates (default: up to 4)")
    parser.add_argument("--refined", action="store_true", help="plot /refined/samples")
    parser.add_argument("--out", type=Path, help="output path without suffix")
    parser.add_argument("--means", type=Path, help="mode means (CSV, one header line) of a "
                                                   "mixture whose configuration lacks them")
    args = parser.parse_args(argv)
    config, draws, what, (samples, log_weights) = read_draws(args.run, args.refined)
    dim = draws.shape[1]
    target = config.get("target", {"name": "?", "dim": dim})
    stem = args.out or (args.run / "output" if args.run.is_dir() else args.run.with_suffix(""))
    stem = Path(str(stem) + ("" if args.out else "_samples"))
    exact = mixture(target)
    with open_output(args.run, PROGRAM) as file:
        posterior = read_posterior(file)
    if posterior and exact is None and not args.coords and not args.refined:
        # A posterior: its named (constrained) parameters, as /posterior holds them.
        labels = posterior_choice(list(posterior))
        columns = np.column_stack([posterior[name] for name in labels])
        what = f"draws of /posterior ({len(posterior)} parameters)"
    else:
        coords = args.coords if args.coords else list(range(min(dim, 4)))
        bad = [c for c in coords if not 0 <= c < dim]
        if bad:
            fail(PROGRAM, f"--coords {bad}: the samples have coordinates 0 to {dim - 1}")
        labels = [f"$x_{{{c}}}$" for c in coords]
        columns = draws[:, coords]
    title = (f"{target.get('name', '?')} (d = {dim}): {len(columns)} {what}"
             f"{'; dashed: exact marginal' if exact is not None else ''}")
    restricted = None if exact is None else (exact[0], [m[coords] for m in exact[1]],
                                             [v[coords] for v in exact[2]])
    for written in save_figure(pair_plot(columns, labels, restricted, title), stem):
        print(f"plot {written}")
    means = (np.loadtxt(args.means, delimiter=",", skiprows=1, ndmin=2) if args.means
             else exact[1] if exact is not None and len(exact[0]) > 1 else None)
    if means is not None:
        shares = mode_shares(samples, log_weights, means)
        weights = exact[0] if exact is not None and len(exact[0]) == len(means) else \
            np.full(len(means), 1.0 / len(means))
        print("mode shares (exact): " +
              " ".join(f"{s:.3f} ({w:.3f})" for s, w in zip(shares, weights)))
        print(f"total variation from the exact weights: {0.5 * np.abs(shares - weights).sum():.4f}")
        figure = modes_plot(shares, weights, f"{target.get('name', '?')}: mode shares of "
                                              f"{len(samples)} weighted samples")
        for written in save_figure(figure, Path(str(stem) + "_modes")):
            print(f"plot {written}")
    return 0
