#!/usr/bin/python3
"""posteriordb gp_pois_regr-gp_pois_regr (d = 13) as an rbsde target: a latent Gaussian
process f = L_cov f_tilde, cov = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I, with
k ~ poisson_log(f), rho ~ gamma(25, 4), alpha ~ normal(0, 2) on alpha > 0, f_tilde ~ normal(0, 1).
x = (log rho, log alpha, f_tilde); the parameters compared are rho, alpha and f.

usage: gp_pois_regr-gp_pois_regr.py OUTPUT.pt
"""
import math
import sys
from typing import Tuple

import torch

from common import buffer, load_data, normal_lpdf, write


class GpPoisRegr(torch.nn.Module):
    def __init__(self, data):
        super().__init__()
        self.register_buffer("x", buffer(data["x"]))
        self.register_buffer("k", buffer(data["k"]))
        self.register_buffer("log_k_factorial", torch.lgamma(buffer(data["k"]) + 1.0))
        n = len(data["x"])
        self.names = ["rho", "alpha"] + [f"f[{i + 1}]" for i in range(n)]
        self.dim = n + 2
        self.log_gamma_norm = 25.0 * math.log(4.0) - math.lgamma(25.0)  # of gamma(25, rate 4)

    def latent(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """f = L_cov f_tilde [M, N], and where cov has no Cholesky factor (Stan rejects such
        a point: log pi = -inf there)."""
        rho, alpha = torch.exp(x[:, 0]), torch.exp(x[:, 1])
        distance2 = (self.x.unsqueeze(0) - self.x.unsqueeze(1)) ** 2
        cov = (alpha ** 2)[:, None, None] * torch.exp(-distance2 / (2.0 * rho ** 2)[:, None, None])
        cov = cov + 1e-10 * torch.eye(self.x.size(0), dtype=x.dtype)
        factor, info = torch.linalg.cholesky_ex(cov)
        return (factor @ x[:, 2:].unsqueeze(2)).squeeze(2), info != 0

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return torch.cat([torch.exp(x[:, 0:2]), self.latent(x)[0]], 1)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        f, rejected = self.latent(x)
        likelihood = (self.k * f - torch.exp(f) - self.log_k_factorial).sum(1)
        rho, alpha = torch.exp(x[:, 0]), torch.exp(x[:, 1])
        prior = (24.0 * x[:, 0] - 4.0 * rho + self.log_gamma_norm  # rho ~ gamma(25, 4)
                 + normal_lpdf(alpha, torch.zeros_like(alpha), torch.full_like(alpha, 2.0))
                 + math.log(2.0)  # alpha ~ half-normal(0, 2)
                 + normal_lpdf(x[:, 2:], torch.zeros_like(x[:, 2:]), torch.ones_like(x[:, 2:])).sum(1))
        log_pi = likelihood + prior + x[:, 0] + x[:, 1]
        return torch.where(rejected, torch.full_like(log_pi, -math.inf), log_pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)


write(GpPoisRegr(load_data("gp_pois_regr-gp_pois_regr")), sys.argv)
