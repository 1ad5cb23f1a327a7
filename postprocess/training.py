"""Training curves of an rbsde run: the loss, the network's log Z (c_theta) against the final
importance-sampling estimate (and the exact value where known), and exp(-loss), the ESS/M that
log-normal weights with the loss as variance would have, against the measured ESS/M. While the
terminal condition is annealed (gamma < 1: train.anneal_gamma0) the three curves are those of
the tempered target gamma log pi~, not of the sampler's: the phase is shaded and gamma drawn on
the loss panel's right axis, so that the loss climbing as gamma reaches 1 reads as what it is.

usage: python3 -m postprocess training RUN [--truth-log-z X] [--out PATH]

RUN is an output file or a run directory. Writes PATH.png and PATH.pdf (default: RUN's stem +
_training).
"""
import argparse
from pathlib import Path

import numpy as np

from .output import open_output, resolved_config, save_figure
from .summary import logged_truth


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess training",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="output file or run directory")
    parser.add_argument("--truth-log-z", type=float, help="exact log Z")
    parser.add_argument("--out", type=Path, help="output path without suffix")
    args = parser.parse_args(argv)
    with open_output(args.run, "postprocess training") as file:
        config = resolved_config(file)
        loss, log_z = file["training/loss"][()], file["training/log_z"][()]
        # Files written before the annealing was recorded have no /training/gamma.
        gamma = file["training/gamma"][()] if "training/gamma" in file else np.ones(len(loss))
        estimates = dict(file["estimates"].attrs)
    truth = args.truth_log_z if args.truth_log_z is not None else logged_truth(args.run)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target, train = config.get("target", {}), config.get("train", {})
    fig, (ax_loss, ax_log_z, ax_ess) = plt.subplots(1, 3, figsize=(15, 4.6))
    iterations = np.arange(1, len(loss) + 1)
    ax_loss.plot(iterations, loss, label="loss (variance of the residual)")
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="iteration", ylabel="loss (nats$^2$)", title="loss")
    ax_log_z.plot(iterations, log_z, label="network $c_\\theta$")
    ax_log_z.axhline(estimates["log_z_is"], color="C1", label="final IS estimate")
    if truth is not None:
        ax_log_z.axhline(truth, color="k", linestyle="--", label="exact")
    ax_log_z.set(xlabel="iteration", ylabel="log Z (nats)", title="log Z estimates")
    ax_ess.plot(iterations, np.exp(-np.asarray(loss)), label="exp(−loss)")
    ax_ess.axhline(estimates["ess_fraction"], color="C1", label="measured ESS/M (final)")
    ax_ess.set_yscale("log")
    ax_ess.set(xlabel="iteration", ylabel="ESS/M (fraction of paths)", title="ESS/M")
    annealed = np.flatnonzero(np.asarray(gamma) < 1.0)
    if len(annealed) > 0:
        end = int(annealed[-1]) + 1  # the last iteration with gamma < 1
        for ax in (ax_loss, ax_log_z, ax_ess):
            ax.axvspan(1, end, color="0.9", zorder=0,
                       label=f"annealing: γ {gamma[0]:.2g} → 1 (iterations 1–{end})")
        ax_gamma = ax_loss.twinx()
        ax_gamma.plot(iterations, gamma, color="C2", linestyle=":", label="γ (right axis)")
        ax_gamma.set(ylim=(0, 1.05), ylabel="γ: terminal condition γ log π̃")
        ax_gamma.legend(loc="lower right")
        ax_loss.set_title("loss\n(of the tempered γ log π̃ while γ < 1: it rises as γ → 1)")
        ax_log_z.set_title("log Z estimates\n($c_\\theta$: of the tempered target while γ < 1)")
        ax_ess.set_title("ESS/M\n(exp(−loss): of the tempered target while γ < 1)")
    for ax in (ax_loss, ax_log_z, ax_ess):
        ax.legend(loc="upper right" if ax is ax_loss else "best")
        if len(loss) == 0:
            ax.text(0.5, 0.5, "no training record", ha="center", transform=ax.transAxes)
    fig.suptitle(f"training of {target.get('name', '?')} (d = {target.get('dim', '?')}): "
                 f"{len(loss)} iterations, {train.get('paths', '?')} paths")
    fig.tight_layout()
    stem = args.out or Path(str(args.run / "output" if args.run.is_dir()
                                else args.run.with_suffix("")) + "_training")
    for written in save_figure(fig, stem):
        print(f"plot {written}")
    plt.close(fig)
    return 0
