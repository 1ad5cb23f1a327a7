#!/usr/bin/python3
"""posteriordb nes2000-nes (d = 10) as an rbsde target: partyid7 ~ normal(beta . (1,
real_ideo, race_adj, age 30-44, age 45-64, age 65+, educ1, gender, income), sigma), flat priors.

usage: nes2000-nes.py OUTPUT.pt
"""
import sys

from common import NormalRegression, load_data, write

data = load_data("nes2000-nes")
design = [[1.0, ideo, race, float(age == 2), float(age == 3), float(age == 4), educ, gender,
           income]
          for ideo, race, age, educ, gender, income in zip(
              data["real_ideo"], data["race_adj"], data["age_discrete"], data["educ1"],
              data["gender"], data["income"])]
names = [f"beta[{j + 1}]" for j in range(9)] + ["sigma"]
write(NormalRegression(design, data["partyid7"], names), sys.argv)
