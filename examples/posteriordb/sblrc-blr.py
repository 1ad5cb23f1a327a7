#!/usr/bin/python3
"""posteriordb sblrc-blr (d = 6) as an rbsde target: Bayesian linear regression
y ~ normal(X beta, sigma), beta ~ normal(0, 10), sigma ~ normal(0, 10) on sigma > 0.

usage: sblrc-blr.py OUTPUT.pt
"""
import sys

from common import NormalRegression, load_data, write

data = load_data("sblrc-blr")
names = [f"beta[{j + 1}]" for j in range(data["D"])] + ["sigma"]
write(NormalRegression(data["X"], data["y"], names, beta_prior_sd=10.0, sigma_prior="normal",
                       sigma_scale=10.0), sys.argv)
