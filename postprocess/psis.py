"""Pareto-smoothed importance sampling of an rbsde run's weights, computed here from scratch.

usage: python3 -m postprocess psis RUN.h5

Prints k^ (the generalized Pareto shape of the largest weights: above the threshold
min(0.7, 1 - 1/log10 M) self-normalised estimates are not to be trusted), the tail length,
and the PSIS-smoothed posterior mean and sd of the first coordinates, next to what rbsde
stored in /estimates. A second implementation of include/rbsde/bsde/psis.hpp (Vehtari et al.,
"Pareto smoothed importance sampling", JMLR 2024; Zhang and Stephens 2009), used by the tests
to check it; importable as a module (pareto_k, smoothed_log_weights).
"""
import math
import sys

import numpy as np

from .output import fail, open_output


def tail_length(count):
    return int(math.ceil(min(0.2 * count, 3.0 * math.sqrt(count))))


def k_threshold(count):
    return min(0.7, 1.0 - 1.0 / math.log10(max(count, 2)))


def fit_gpd(x):
    """(k, sigma) of a generalized Pareto fit to ascending positive exceedances x."""
    n = len(x)
    m = 30 + int(math.sqrt(n))
    b = 1.0 / x[-1] + (1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))) / (
        3.0 * x[int(n / 4.0 + 0.5) - 1])
    k = np.mean(np.log1p(-b[:, None] * x[None, :]), axis=1)
    log_lik = n * (np.log(-b / k) - k - 1.0)
    weights = 1.0 / np.exp(log_lik[None, :] - log_lik[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    b_mean = np.sum(b[keep] * weights[keep]) / np.sum(weights[keep])
    k_hat = np.mean(np.log1p(-b_mean * x))
    sigma = -k_hat / b_mean
    return (n * k_hat + 5.0) / (n + 10.0), sigma


def _tail(log_weights):
    """Indices of the tail (ascending weight), the cutoff weight, and the shifted log weights."""
    lw = np.where(np.isnan(log_weights), -np.inf, np.asarray(log_weights, dtype=np.float64))
    shifted = lw - lw.max()
    n = tail_length(len(lw))
    order = np.argsort(shifted, kind="stable")
    return order[-n:], math.exp(shifted[order[-n - 1]]), shifted


def pareto_k(log_weights):
    """k^ of the weights exp(log_weights) (NaN below 21 of them, -inf for a flat tail)."""
    if tail_length(len(log_weights)) < 5 or not np.isfinite(np.nanmax(log_weights)):
        return math.nan
    tail, cutoff, shifted = _tail(log_weights)
    x = np.exp(shifted[tail]) - cutoff
    if x[-1] <= 0.0:
        return -math.inf
    return fit_gpd(x)[0]


def smoothed_log_weights(log_weights):
    """The log weights (shifted so their maximum is 0) with the tail replaced by PSIS."""
    tail, cutoff, shifted = _tail(log_weights)
    x = np.exp(shifted[tail]) - cutoff
    smoothed = shifted.copy()
    if x[-1] <= 0.0:
        return smoothed
    k, sigma = fit_gpd(x)
    n = len(tail)
    p = (np.arange(n) + 0.5) / n
    quantiles = -sigma * np.log1p(-p) if abs(k) < 1e-12 else sigma * np.expm1(-k * np.log1p(-p)) / k
    smoothed[tail] = np.minimum(np.log(quantiles + cutoff), 0.0)
    return smoothed


def weighted_moments(samples, log_weights):
    w = np.exp(log_weights - log_weights.max())
    mean = w @ samples / w.sum()
    sd = np.sqrt(w @ (samples - mean) ** 2 / w.sum())
    return mean, sd


def main(argv):
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open_output(argv[0], "postprocess psis") as file:
        if "log_weights" not in file:
            fail("postprocess psis", f"{argv[0]}: no /log_weights (not a sampling run)")
        log_weights = file["log_weights"][...]
        samples = file["samples"][...].astype(np.float64)
        stored = dict(file["estimates"].attrs) if "estimates" in file else {}
        stored_mean = file["estimates/psis_mean"][...] if "estimates/psis_mean" in file else None
    count = len(log_weights)
    print(f"count {count}")
    print(f"tail {tail_length(count)}")
    print(f"threshold {k_threshold(count):.6f}")
    print(f"pareto_k {pareto_k(log_weights):.10g}")
    if "pareto_k" in stored:
        print(f"stored_pareto_k {stored['pareto_k']:.10g}")
    if tail_length(count) >= 5:
        mean, sd = weighted_moments(samples, smoothed_log_weights(log_weights))
        print("psis_mean " + " ".join(f"{v:.10g}" for v in mean[:8]))
        print("psis_sd " + " ".join(f"{v:.10g}" for v in sd[:8]))
    if stored_mean is not None:
        print("stored_psis_mean " + " ".join(f"{v:.10g}" for v in stored_mean[:8]))
    return 0
