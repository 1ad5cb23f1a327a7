#!/usr/bin/python3
"""Writes a synthetic logistic-regression data set for the `logreg` target.

Features are i.i.d. N(0, 1); the true weights are N(0, 1/p) (so the logits have unit variance
whatever p is) plus an intercept of 0.5; labels are Bernoulli(sigmoid(logit)). The CSV has
columns V1..Vp and Class, like data/ionosphere.csv.

    scripts/synthetic_logreg.py OUT.csv --features 1000 --rows 10000 [--seed 1]
"""
import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.features < 1 or args.rows < 2:
        parser.error("need --features >= 1 and --rows >= 2")
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.features))
    w = rng.standard_normal(args.features) / np.sqrt(args.features)
    logits = 0.5 + x @ w
    y = (rng.random(args.rows) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    header = ",".join([f"V{j + 1}" for j in range(args.features)] + ["Class"])
    np.savetxt(args.out, np.column_stack([x, y]), delimiter=",", header=header, comments="",
               fmt=["%.6f"] * args.features + ["%d"])


if __name__ == "__main__":
    main()
