"""The hierarchical and latent-variable test set: posteriors whose mode is degenerate or
useless (a scale parameter near zero with the latents fitting the data), written as
TorchScript targets in unconstrained coordinates (log for scales, atanh for a persistence).

Each model is a folder of this directory with data.json (simulated by make_data.py, or
published data), model.stan (the same posterior in Stan 2.21 syntax, non-centred where that
helps NUTS; reference.R runs it) and reference_draws.json.gz (long NUTS runs: a list of chains,
each a dict of parameter name -> draws, as posteriordb's). The modules' log_prob is the
density of the constrained parameters times the Jacobian of the transform, in float64;
`constrain(x)` gives the parameters the reference names, `names` their names.

usage: models.py MODEL OUTPUT.pt      (MODEL: a folder name, e.g. eight_schools)
"""
import json
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def normal_lpdf(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((y - mu) / sigma) ** 2 - torch.log(sigma) - 0.9189385332046727  # log √(2π)


def half_cauchy_lpdf(y: torch.Tensor, scale: float) -> torch.Tensor:
    return math.log(2.0 / (math.pi * scale)) - torch.log1p((y / scale) ** 2)


def half_normal_lpdf(y: torch.Tensor, scale: float) -> torch.Tensor:
    return math.log(2.0) - 0.5 * (y / scale) ** 2 - math.log(scale) - 0.9189385332046727


def exp_columns(x: torch.Tensor, begin: int, end: int) -> torch.Tensor:
    """x with columns [begin, end) (log scales) exponentiated: the constrained parameters."""
    x = x.double()
    return torch.cat([x[:, :begin], torch.exp(x[:, begin:end]), x[:, end:]], 1)


def buffer(values):
    return torch.tensor(values, dtype=torch.float64)


class EightSchools(torch.nn.Module):
    """Centred eight schools: mu ~ N(0, 5), tau ~ half-Cauchy(0, 5), theta_j ~ N(mu, tau),
    y_j ~ N(theta_j, sigma_j). x = (mu, log tau, theta[1..8]): Neal's funnel in (log tau,
    theta)."""

    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        self.register_buffer("sigma", buffer(data["sigma"]))
        self.names = ["mu", "tau"] + [f"theta[{j + 1}]" for j in range(len(data["y"]))]
        self.dim = len(self.names)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        return exp_columns(x, 1, 2)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        mu, log_tau, theta = x[:, 0], x[:, 1], x[:, 2:]
        tau = torch.exp(log_tau)
        lp = normal_lpdf(mu, torch.zeros_like(mu), torch.full_like(mu, 5.0))
        lp = lp + half_cauchy_lpdf(tau, 5.0) + log_tau
        lp = lp + normal_lpdf(theta, mu.unsqueeze(1), tau.unsqueeze(1)).sum(1)
        return lp + normal_lpdf(self.y, theta, self.sigma).sum(1)


class LocalLevel(torch.nn.Module):
    """A random walk observed in noise (a linear-Gaussian state-space model) with unknown
    innovation and observation scales: z_1 ~ N(0, 10), z_t ~ N(z_{t-1}, sigma_z),
    y_t ~ N(z_t, sigma_y), sigma_z, sigma_y ~ half-normal(0, 1). x = (log sigma_z,
    log sigma_y, z[1..T])."""

    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        t = len(data["y"])
        self.names = ["sigma_z", "sigma_y"] + [f"z[{i + 1}]" for i in range(t)]
        self.dim = len(self.names)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        return exp_columns(x, 0, 2)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        log_sz, log_sy, z = x[:, 0], x[:, 1], x[:, 2:]
        sz, sy = torch.exp(log_sz), torch.exp(log_sy)
        lp = half_normal_lpdf(sz, 1.0) + log_sz + half_normal_lpdf(sy, 1.0) + log_sy
        lp = lp + normal_lpdf(z[:, 0], torch.zeros_like(sz), torch.full_like(sz, 10.0))
        lp = lp + normal_lpdf(z[:, 1:], z[:, :-1], sz.unsqueeze(1)).sum(1)
        return lp + normal_lpdf(self.y, z, sy.unsqueeze(1)).sum(1)


class StochasticVolatility(torch.nn.Module):
    """Stochastic volatility (the Stan manual's, centred): mu ~ Cauchy(0, 10), phi ~ U(-1, 1),
    sigma ~ half-Cauchy(0, 5), h_1 ~ N(mu, sigma / sqrt(1 - phi^2)),
    h_t ~ N(mu + phi (h_{t-1} - mu), sigma), y_t ~ N(0, exp(h_t / 2)).
    x = (mu, atanh phi, log sigma, h[1..T])."""

    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        t = len(data["y"])
        self.names = ["mu", "phi", "sigma"] + [f"h[{i + 1}]" for i in range(t)]
        self.dim = len(self.names)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return torch.cat([x[:, :1], torch.tanh(x[:, 1:2]), torch.exp(x[:, 2:3]), x[:, 3:]], 1)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        mu, a, log_s, h = x[:, 0], x[:, 1], x[:, 2], x[:, 3:]
        phi, s = torch.tanh(a), torch.exp(log_s)
        # log |d tanh(a) / da| = log(1 - tanh(a)^2), written stably.
        log_jacobian_phi = 2.0 * (math.log(2.0) - a.abs() - torch.nn.functional.softplus(-2.0 * a.abs()))
        lp = -math.log(math.pi * 10.0) - torch.log1p((mu / 10.0) ** 2)
        lp = lp + math.log(0.5) + log_jacobian_phi + half_cauchy_lpdf(s, 5.0) + log_s
        stationary_sd = s * torch.exp(-0.5 * log_jacobian_phi)  # sigma / sqrt(1 - phi^2)
        lp = lp + normal_lpdf(h[:, 0], mu, stationary_sd)
        mean = mu.unsqueeze(1) + phi.unsqueeze(1) * (h[:, :-1] - mu.unsqueeze(1))
        lp = lp + normal_lpdf(h[:, 1:], mean, s.unsqueeze(1)).sum(1)
        return lp + normal_lpdf(self.y, torch.zeros_like(h), torch.exp(0.5 * h)).sum(1)


class GpPoisson(torch.nn.Module):
    """A log-Gaussian Cox process on a 1-D grid with unknown amplitude and length scale:
    alpha ~ half-normal(0, 2), rho ~ lognormal(log 5, 0.5), f ~ N(m, K) with
    K_ij = alpha^2 exp(-(t_i - t_j)^2 / (2 rho^2)) + 1e-6 delta_ij, y_i ~ Poisson(exp(f_i)).
    x = (log alpha, log rho, f[1..n]) (centred: the latent field itself)."""

    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))
        self.register_buffer("t", buffer(data["t"]))
        self.register_buffer("log_factorial_y", torch.lgamma(buffer(data["y"]) + 1.0))
        self.m = float(data["m"])
        n = len(data["y"])
        self.names = ["alpha", "rho"] + [f"f[{i + 1}]" for i in range(n)]
        self.dim = len(self.names)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        return exp_columns(x, 0, 2)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        log_a, log_r, f = x[:, 0], x[:, 1], x[:, 2:]
        a, r = torch.exp(log_a), torch.exp(log_r)
        n = f.shape[1]
        lp = half_normal_lpdf(a, 2.0) + log_a
        lp = lp + normal_lpdf(log_r, torch.full_like(log_r, math.log(5.0)), torch.full_like(log_r, 0.5))
        distance2 = (self.t.unsqueeze(0) - self.t.unsqueeze(1)) ** 2
        k = (a ** 2).view(-1, 1, 1) * torch.exp(-0.5 * distance2.unsqueeze(0) / (r ** 2).view(-1, 1, 1))
        eye = torch.eye(n, dtype=torch.float64).unsqueeze(0)
        k = k + 1e-6 * eye
        # Where K is not positive definite in floating point (a length scale far beyond the
        # grid) the density is taken as 0 (log pi = -inf), not an error.
        failed = torch.linalg.cholesky_ex(k)[1] != 0
        chol = torch.linalg.cholesky(torch.where(failed.view(-1, 1, 1), eye, k))
        centred = (f - self.m).unsqueeze(2)
        white = torch.linalg.solve_triangular(chol, centred, upper=False).squeeze(2)
        log_det = torch.log(torch.diagonal(chol, 0, 1, 2)).sum(1)
        lp = lp - 0.5 * (white ** 2).sum(1) - log_det - n * 0.9189385332046727
        lp = lp + (self.y * f - torch.exp(f) - self.log_factorial_y).sum(1)
        return torch.where(failed, torch.full_like(lp, -math.inf), lp)


class Rasch(torch.nn.Module):
    """Item response theory (Rasch) with a hierarchical item difficulty: theta_j ~ N(0, 1),
    b_k ~ N(mu_b, sigma_b), mu_b ~ N(0, 5), sigma_b ~ half-Cauchy(0, 5),
    y_jk ~ Bernoulli(logit^-1(theta_j - b_k)). x = (mu_b, log sigma_b, b[1..K], theta[1..J])."""

    def __init__(self, data):
        super().__init__()
        self.register_buffer("y", buffer(data["y"]))  # [J, K]
        j, k = len(data["y"]), len(data["y"][0])
        self.items = k
        self.names = (["mu_b", "sigma_b"] + [f"b[{i + 1}]" for i in range(k)]
                      + [f"theta[{i + 1}]" for i in range(j)])
        self.dim = len(self.names)

    @torch.jit.export
    def constrain(self, x: torch.Tensor) -> torch.Tensor:
        return exp_columns(x, 1, 2)

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        mu_b, log_sb = x[:, 0], x[:, 1]
        b, theta = x[:, 2:2 + self.items], x[:, 2 + self.items:]
        sb = torch.exp(log_sb)
        lp = normal_lpdf(mu_b, torch.zeros_like(mu_b), torch.full_like(mu_b, 5.0))
        lp = lp + half_cauchy_lpdf(sb, 5.0) + log_sb
        lp = lp + normal_lpdf(b, mu_b.unsqueeze(1), sb.unsqueeze(1)).sum(1)
        lp = lp + normal_lpdf(theta, torch.zeros_like(theta), torch.ones_like(theta)).sum(1)
        eta = theta.unsqueeze(2) - b.unsqueeze(1)  # [M, J, K]
        bernoulli = self.y * torch.nn.functional.logsigmoid(eta) + (1.0 - self.y) * torch.nn.functional.logsigmoid(-eta)
        return lp + bernoulli.sum((1, 2))


MODELS = {
    "eight_schools": EightSchools,
    "local_level": LocalLevel,
    "sv_100": StochasticVolatility,
    "gp_poisson": GpPoisson,
    "rasch": Rasch,
    "sv_2000": StochasticVolatility,
}


def build(name):
    data = json.loads((HERE / name / "data.json").read_text())
    return MODELS[name](data)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in MODELS:
        sys.exit(f"usage: {Path(sys.argv[0]).name} MODEL OUTPUT.pt (MODEL: {', '.join(MODELS)})")
    module = build(sys.argv[1])
    torch.jit.script(module).save(sys.argv[2])
    print(f"wrote {sys.argv[2]}: {sys.argv[1]}, d = {module.dim}")
