#!/usr/bin/python3
"""posteriordb low_dim_gauss_mix-low_dim_gauss_mix (d = 5) as an rbsde target:
y[n] ~ theta normal(mu[1], sigma[1]) + (1 - theta) normal(mu[2], sigma[2]), mu ordered,
mu ~ normal(0, 2), sigma ~ normal(0, 2) on sigma > 0, theta ~ beta(5, 5).
x = (mu[1], log(mu[2] - mu[1]), log sigma[1], log sigma[2], logit theta).

usage: low_dim_gauss_mix-low_dim_gauss_mix.py OUTPUT.pt
"""
import math
import sys

import torch

from common import buffer, load_data, log_unit_jacobian, normal_lpdf, write


class GaussMix(torch.nn.Module):
    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        self.names = ["mu[1]", "mu[2]", "sigma[1]", "sigma[2]", "theta"]
        self.dim = 5
        self.log_beta_norm = math.log(630.0)  # 1 / B(5, 5) = 9! / (4! 4!)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return torch.stack([x[:, 0], x[:, 0] + torch.exp(x[:, 1]), torch.exp(x[:, 2]),
                            torch.exp(x[:, 3]), torch.sigmoid(x[:, 4])], 1)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        p = self.constrain(x)
        x = x.double()
        mu1, mu2, sigma1, sigma2, theta = p[:, 0:1], p[:, 1:2], p[:, 2:3], p[:, 3:4], p[:, 4:5]
        likelihood = torch.logaddexp(
            torch.log(theta) + normal_lpdf(self.y, mu1, sigma1),
            torch.log1p(-theta) + normal_lpdf(self.y, mu2, sigma2)).sum(1)
        two = torch.full_like(p[:, 0:4], 2.0)
        prior = (normal_lpdf(p[:, 0:4], torch.zeros_like(two), two).sum(1) + 2.0 * math.log(2.0) +
                 4.0 * torch.log(p[:, 4]) + 4.0 * torch.log1p(-p[:, 4]) + self.log_beta_norm)
        log_jacobian = x[:, 1] + x[:, 2] + x[:, 3] + log_unit_jacobian(x[:, 4])
        return likelihood + prior + log_jacobian

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)


write(GaussMix(load_data("low_dim_gauss_mix-low_dim_gauss_mix")), sys.argv)
