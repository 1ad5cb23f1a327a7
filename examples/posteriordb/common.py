"""What the posteriordb example targets share: reading a posterior's data, Stan's densities
and its transforms to unconstrained coordinates, and writing the TorchScript module.

Each module maps x [M, d] (unconstrained, as Stan's sampler sees it) to log pi~(x) [M]: the
model's log density in the constrained parameters plus the log |Jacobian| of the transform,
exactly as Stan defines the posterior. It computes in float64 whatever dtype x has (the
result is float64; rbsde casts it), so that a log density of order 10^3 loses nothing. It
also has `constrain(x)` [M, p], the parameters the reference draws name, and `names` (p of
them): rbsde writes its InferenceData posterior group in those.
"""
import json
import math
import sys
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "data" / "posteriordb"


def load_data(posterior):
    return json.loads((DATA / posterior / "data.json").read_text())


def buffer(values):
    return torch.tensor(values, dtype=torch.float64)


def normal_lpdf(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((y - mu) / sigma) ** 2 - torch.log(sigma) - 0.9189385332046727  # log √(2π)


def log_unit_jacobian(z: torch.Tensor) -> torch.Tensor:
    """log |d sigmoid(z) / dz| = log sigmoid(z) + log sigmoid(-z)."""
    return torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z)


def write(module, argv):
    """Scripts `module` and saves it to the path in argv[1] (the scripts' command line)."""
    if len(argv) != 2:
        sys.exit(f"usage: {Path(argv[0]).name} OUTPUT.pt")
    torch.jit.script(module).save(argv[1])
    print(f"wrote {argv[1]}: d = {module.dim}, parameters {', '.join(module.names)}")


class NormalRegression(torch.nn.Module):
    """y ~ normal(design @ beta, sigma) with a normal(0, beta_prior_sd) prior on each beta
    (flat when 0), and on sigma > 0 a half-Cauchy(0, sigma_scale) or a half-normal(0,
    sigma_scale) prior (flat when sigma_scale is 0). x = (beta, log sigma)."""

    def __init__(self, design, y, names, beta_prior_sd: float = 0.0, sigma_prior: str = "flat",
                 sigma_scale: float = 0.0):
        super().__init__()
        self.register_buffer("design", buffer(design))
        self.register_buffer("y", buffer(y))
        self.names = names
        self.dim = len(names)
        self.beta_prior_sd = beta_prior_sd
        self.sigma_prior = sigma_prior
        self.sigma_scale = sigma_scale

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return torch.cat([x[:, :-1], torch.exp(x[:, -1:])], 1)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        beta, log_sigma = x[:, :-1], x[:, -1]
        sigma = torch.exp(log_sigma)
        mean = beta @ self.design.t()  # [M, N]
        lp = normal_lpdf(self.y, mean, sigma.unsqueeze(1)).sum(1) + log_sigma  # + log Jacobian
        if self.beta_prior_sd > 0.0:
            sd = torch.full_like(beta, self.beta_prior_sd)
            lp = lp + normal_lpdf(beta, torch.zeros_like(beta), sd).sum(1)
        if self.sigma_prior == "cauchy":
            lp = lp - torch.log1p((sigma / self.sigma_scale) ** 2) + math.log(2.0 / (math.pi * self.sigma_scale))
        elif self.sigma_prior == "normal":
            lp = lp + normal_lpdf(sigma, torch.zeros_like(sigma), torch.full_like(sigma, self.sigma_scale)) + math.log(2.0)
        return lp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)
