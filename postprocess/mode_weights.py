#!/usr/bin/python3
"""Mode weights of a mixture run: each sample goes to its nearest mean; prints the weighted
(self-normalised) share of every mode, the number of modes holding weighted samples, and the
total-variation distance from the exact weights (equal unless --weights is given).

    postprocess/mode_weights.py RUN.h5 MEANS.csv      (e.g. data/gmm40_means.csv)
"""
import argparse

import numpy as np

from rbsde_output import open_output


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("means", help="CSV with a header line and one mean per row")
    parser.add_argument("--weights", type=float, nargs="*", help="exact mode weights")
    args = parser.parse_args()
    means = np.loadtxt(args.means, delimiter=",", skiprows=1)
    with open_output(args.run, "mode_weights.py") as f:
        x = f["samples"][()].astype(np.float64)
        log_w = f["log_weights"][()]
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    nearest = np.argmin(((x[:, None, :] - means[None, :, :]) ** 2).sum(-1), axis=1)
    share = np.bincount(nearest, weights=w, minlength=len(means))
    exact = np.full(len(means), 1.0 / len(means)) if not args.weights else np.array(args.weights)
    counts = np.bincount(nearest, minlength=len(means))
    print("shares:", " ".join(f"{s:.3f}" for s in share))
    print(f"modes with samples: {np.count_nonzero(counts)} of {len(means)}; with weight > 0: "
          f"{np.count_nonzero(share > 0)}")
    print(f"total variation from the exact weights: {0.5 * np.abs(share - exact).sum():.4f}")


if __name__ == "__main__":
    main()
