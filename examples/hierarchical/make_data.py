"""Simulates the data of the hierarchical test set (fixed seeds) into MODEL/data.json; the
eight schools data are Rubin's (1981). Run once; the data are committed.

usage: make_data.py
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def save(name, data):
    (HERE / name).mkdir(exist_ok=True)
    (HERE / name / "data.json").write_text(json.dumps(data) + "\n")


def stochastic_volatility(rng, t, mu=-1.0, phi=0.95, sigma=0.25):
    h = np.empty(t)
    h[0] = mu + sigma / np.sqrt(1 - phi ** 2) * rng.standard_normal()
    for i in range(1, t):
        h[i] = mu + phi * (h[i - 1] - mu) + sigma * rng.standard_normal()
    return {"T": t, "y": np.round(np.exp(h / 2) * rng.standard_normal(t), 6).tolist()}


def main():
    save("eight_schools", {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12],
                           "sigma": [15, 10, 16, 11, 9, 11, 10, 18]})
    rng = np.random.default_rng(1)
    t = 30
    z = np.cumsum(0.2 * rng.standard_normal(t))
    save("local_level", {"T": t, "y": np.round(z + 0.5 * rng.standard_normal(t), 6).tolist()})
    save("sv_100", stochastic_volatility(np.random.default_rng(2), 100))
    save("sv_2000", stochastic_volatility(np.random.default_rng(3), 2000))
    rng = np.random.default_rng(4)
    n = 40
    grid = np.arange(n, dtype=float)
    k = np.exp(-0.5 * (grid[:, None] - grid[None, :]) ** 2 / 4.0 ** 2) + 1e-6 * np.eye(n)
    f = 1.0 + np.linalg.cholesky(k) @ rng.standard_normal(n)
    save("gp_poisson", {"N": n, "t": grid.tolist(), "m": 1.0, "y": rng.poisson(np.exp(f)).tolist()})
    rng = np.random.default_rng(5)
    students, items = 100, 10
    theta = rng.standard_normal(students)
    b = 0.5 + 1.0 * rng.standard_normal(items)
    p = 1 / (1 + np.exp(-(theta[:, None] - b[None, :])))
    save("rasch", {"J": students, "K": items,
                   "y": (rng.uniform(size=p.shape) < p).astype(int).tolist()})


if __name__ == "__main__":
    main()
