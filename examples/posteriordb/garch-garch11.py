#!/usr/bin/python3
"""posteriordb garch-garch11 (d = 4) as an rbsde target: GARCH(1,1),
y[t] ~ normal(mu, sigma[t]), sigma[t]^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 sigma[t-1]^2,
sigma[1] given; flat priors on mu, alpha0 > 0, alpha1 in (0, 1), beta1 in (0, 1 - alpha1).
x = (mu, log alpha0, logit alpha1, logit(beta1 / (1 - alpha1))).

usage: garch-garch11.py OUTPUT.pt
"""
import sys

import torch

from common import buffer, load_data, log_unit_jacobian, normal_lpdf, write


class Garch11(torch.nn.Module):
    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        self.sigma1 = float(data["sigma1"])
        self.names = ["mu", "alpha0", "alpha1", "beta1"]
        self.dim = 4

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        alpha1 = torch.sigmoid(x[:, 2])
        beta1 = (1.0 - alpha1) * torch.sigmoid(x[:, 3])
        return torch.stack([x[:, 0], torch.exp(x[:, 1]), alpha1, beta1], 1)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        mu = x[:, 0]
        alpha0 = torch.exp(x[:, 1])
        alpha1 = torch.sigmoid(x[:, 2])
        beta1 = (1.0 - alpha1) * torch.sigmoid(x[:, 3])
        log_jacobian = (x[:, 1] + log_unit_jacobian(x[:, 2]) +
                        torch.nn.functional.logsigmoid(-x[:, 2]) + log_unit_jacobian(x[:, 3]))
        sigma = torch.full_like(mu, self.sigma1)
        lp = normal_lpdf(self.y[0], mu, sigma)
        for t in range(1, self.y.size(0)):
            sigma = torch.sqrt(alpha0 + alpha1 * (self.y[t - 1] - mu) ** 2 + beta1 * sigma ** 2)
            lp = lp + normal_lpdf(self.y[t], mu, sigma)
        return lp + log_jacobian

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)


write(Garch11(load_data("garch-garch11")), sys.argv)
