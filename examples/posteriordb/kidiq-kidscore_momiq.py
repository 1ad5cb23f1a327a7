#!/usr/bin/python3
"""posteriordb kidiq-kidscore_momiq (d = 3) as an rbsde target:
kid_score ~ normal(beta[1] + beta[2] mom_iq, sigma), sigma ~ cauchy(0, 2.5) on sigma > 0.

usage: kidiq-kidscore_momiq.py OUTPUT.pt
"""
import sys

from common import NormalRegression, load_data, write

data = load_data("kidiq-kidscore_momiq")
design = [[1.0, iq] for iq in data["mom_iq"]]
write(NormalRegression(design, data["kid_score"], ["beta[1]", "beta[2]", "sigma"],
                       sigma_prior="cauchy", sigma_scale=2.5), sys.argv)
