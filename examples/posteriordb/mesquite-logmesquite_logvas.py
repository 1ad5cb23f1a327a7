#!/usr/bin/python3
"""posteriordb mesquite-logmesquite_logvas (d = 8) as an rbsde target: log weight ~ normal(
beta . (1, log canopy volume, log canopy area, log canopy shape, log total height, log density,
group), sigma), flat priors.

usage: mesquite-logmesquite_logvas.py OUTPUT.pt
"""
import math
import sys

from common import NormalRegression, load_data, write

data = load_data("mesquite-logmesquite_logvas")
design = [[1.0, math.log(d1 * d2 * h), math.log(d1 * d2), math.log(d1 / d2), math.log(t),
           math.log(dens), g]
          for d1, d2, h, t, dens, g in zip(data["diam1"], data["diam2"], data["canopy_height"],
                                           data["total_height"], data["density"], data["group"])]
y = [math.log(w) for w in data["weight"]]
names = [f"beta[{j + 1}]" for j in range(7)] + ["sigma"]
write(NormalRegression(design, y, names), sys.argv)
