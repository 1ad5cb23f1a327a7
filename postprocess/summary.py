"""Summary of rbsde runs: the target, the evidence estimates with their errors, the weight
diagnostics (ESS, Pareto k^), the posterior moments, HMC refinement and the timing table.

usage: python3 -m postprocess summary RUN [RUN ...] [--truth-log-z X]

RUN is an output file or a run directory of jobs/ (its output.h5). The exact log Z, when the
target has one (gaussian, gmm, ...), comes from the run's summary line in its log; --truth-log-z
gives it for the others.
"""
import argparse
import math
import re
from pathlib import Path

import h5py

from .output import fail, open_output, read_timing, resolved_config

PROGRAM = "postprocess summary"
REQUIRED = ["samples", "log_weights", "training/loss", "training/log_z"]
ESTIMATES = ["log_z_is", "log_z_is_stderr", "log_z_network", "elbo", "elbo_stderr", "ess",
             "ess_fraction", "pareto_k", "pareto_k_threshold", "count"]


def read_run(path):
    with open_output(path, PROGRAM) as file:
        for name in REQUIRED:
            if not isinstance(file.get(name), h5py.Dataset):
                fail(PROGRAM, f"{path}: missing dataset /{name}; is it an rbsde output file?")
        estimates = file.get("estimates")
        missing = [key for key in ESTIMATES if estimates is None or key not in estimates.attrs]
        if missing:
            fail(PROGRAM, f"{path}: missing attribute(s) {', '.join(missing)} of /estimates")
        return {
            "config": resolved_config(file),
            "shape": file["samples"].shape,
            "posterior": ((file["estimates/posterior_mean"][:], file["estimates/posterior_sd"][:])
                          if "posterior_mean" in estimates else None),
            "refined": (dict(file["refined/samples"].attrs) if "refined/samples" in file else None),
            "loss": file["training/loss"][:],
            "estimates": {key: estimates.attrs[key].item() for key in ESTIMATES},
            # Files written before the count of zero weights was kept have none.
            "zero_weight_paths": int(estimates.attrs.get("zero_weight_paths", 0)),
            "timing": read_timing(file),
        }


def logged_truth(path):
    """log_z_true of the summary line in a run directory's log, or None."""
    log = Path(path) / "log"
    if not log.is_file():
        return None
    match = re.search(r"rbsde-summary .*log_z_true=(\S+)", log.read_text(errors="replace"))
    try:
        return float(match.group(1)) if match else None
    except ValueError:  # "unknown"
        return None


def timing_lines(timing):
    lines = [f"{timing['ranks']} ranks x {timing['threads']} threads, d = {timing['dimension']}"]
    if timing["iterations"] > 0:
        lines[0] += (f", {timing['paths']} paths, {timing['iterations']} iterations at "
                     f"{timing['seconds_per_iteration']:.4g} s/iteration")
    lines.append(f"{'phase':<13} {'min s':>10} {'mean s':>10} {'max s':>10}")
    for name, low, mean, high in zip(timing["phases"], timing["min"], timing["mean"], timing["max"]):
        if high > 0:
            lines.append(f"{name:<13} {low:10.3f} {mean:10.3f} {high:10.3f}")
    return lines


def pareto_k_text(k, count, finite):
    """k^ as the run printed it (pareto_k_text in src/bsde/psis.cpp): the value, or why there
    is none."""
    tail = math.ceil(min(0.2 * count, 3.0 * math.sqrt(count)))
    if math.isfinite(k):
        return f"{k:.2f}"
    if k == -math.inf:
        return "n/a (the largest weights are equal: no tail to fit)"
    if tail < 5:
        return f"n/a (PSIS needs at least 21 paths, here {count})"
    if finite < tail + 1:
        return f"n/a ({finite} of {count} log weights are finite; the tail fit needs {tail + 1})"
    return f"n/a (the tail of the largest {tail} weights could not be fitted)"


def print_summary(path, run, truth):
    e = run["estimates"]
    target = run["config"].get("target", {})
    lines = [
        ("run", str(path)),
        ("target", f"{target.get('name', '?')} (dim {target.get('dim', run['shape'][1])})"),
        ("samples", f"{run['shape'][0]}"),
        ("log Z (IS)", f"{e['log_z_is']:.6f} ± {e['log_z_is_stderr']:.6f}"),
        ("log Z (network)", f"{e['log_z_network']:.6f}"),
        ("ELBO", f"{e['elbo']:.6f} ± {e['elbo_stderr']:.6f}"),
        ("ESS", f"{e['ess']:.1f} (ESS/M = {e['ess_fraction']:.4f})"),
        ("Pareto k^", pareto_k_text(e["pareto_k"], run["shape"][0],
                                    run["shape"][0] - run["zero_weight_paths"])
         + f" (reliable below {e['pareto_k_threshold']:.2f})"),
    ]
    if truth is not None:
        error = e["log_z_is"] - truth
        z = error / e["log_z_is_stderr"] if e["log_z_is_stderr"] > 0 else float("inf")
        lines.append(("true log Z", f"{truth:.6f} (IS error {error:+.6f} = {z:+.2f} stderr)"))
    if run["posterior"] is not None:
        mean, sd = run["posterior"]
        shown = ", ".join(f"{m:.4g} ± {s:.3g}" for m, s in zip(mean[:4], sd[:4]))
        lines.append(("posterior", f"mean ± sd: {shown}{' …' if len(mean) > 4 else ''}"))
    if run["refined"] is not None:
        refined = run["refined"]
        # Files written before HMC refinement have no leapfrog_steps: their MALA is one step.
        text = (f"acceptance {refined['acceptance_rate']:.3f}, step size "
                f"{refined['step_size']:.4g}, {refined.get('leapfrog_steps', 1)} leapfrog steps")
        # Files written before issue 32 have no iterations, start, rhat or ess.
        if "rhat" in refined:
            text += (f", {refined['iterations']} iterations from the "
                     f"{refined['start']} draws; split R^ {refined['rhat']:.4f}"
                     f"{'' if refined['rhat'] < 1.01 else ' (not mixed: above 1.01)'}, "
                     f"ESS {refined['ess']:.0f}")
        if refined.get("model_moves", 0) > 0:
            text += (f"; a model path proposed every {refined['model_moves']} iterations, "
                     f"accepted {refined['model_acceptance_rate']:.4f}")
        lines.append(("HMC refined", text))
    loss = run["loss"]
    lines.append(("final loss", f"{loss[-1]:.6g} ({len(loss)} iterations)" if len(loss) else
                  "n/a (no training record)"))
    for label, value in lines:
        print(f"{label:<16} {value}")
    if run["timing"] is not None:
        for i, line in enumerate(timing_lines(run["timing"])):
            print(f"{'timing' if i == 0 else '':<16} {line}")


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess summary",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output files or run directories")
    parser.add_argument("--truth-log-z", type=float, help="exact log Z, for the error")
    args = parser.parse_args(argv)
    for i, path in enumerate(args.runs):
        if i:
            print()
        truth = args.truth_log_z if args.truth_log_z is not None else logged_truth(path)
        print_summary(path, read_run(path), truth)
    return 0
