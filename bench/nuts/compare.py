"""Time to an answer, rbsde against Stan's NUTS (bench/nuts/run.sh): each sampler's posterior
means against a reference's (a long run of `rbsde reference`, or of NUTS), in units of the
reference sd, with wall time and evaluations of the target.

    python3 bench/nuts/compare.py MODEL REFERENCE.h5|.json --nuts NUTS.json [...] --rbsde RUN.h5 [...]

Prints one Markdown row per run: the worst and the median |mean - reference mean| / reference sd
over the coordinates, and whether the worst is within 0.1 (issue 33's accuracy); for NUTS its
compile and sampling seconds and gradient evaluations, for rbsde its training and sampling
seconds (/timing) and target evaluations (training paths x iterations + samples; with
network.score one gradient per path and time step besides). rbsde's means are the
self-normalised importance-weighted ones of /estimates/posterior_mean.
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from postprocess.output import read_timing, resolved_config  # noqa: E402


def read_reference(path):
    """{mean, sd} from `rbsde reference`'s output (/reference) or a nuts.R JSON file."""
    if str(path).endswith(".h5"):
        with h5py.File(path, "r") as f:
            return {"mean": f["reference/mean"][()], "sd": f["reference/sd"][()]}
    return json.loads(Path(path).read_text())


def errors(mean, reference):
    ref_mean, ref_sd = np.asarray(reference["mean"]), np.asarray(reference["sd"])
    if np.shape(mean) != ref_mean.shape:
        sys.exit(f"compare.py: {np.size(mean)} means against {ref_mean.size} in the reference")
    z = np.abs(np.asarray(mean) - ref_mean) / ref_sd
    return z.max(), np.median(z)


def nuts_row(model, path, reference):
    run = json.loads(Path(path).read_text())
    worst, median = errors(run["mean"], reference)
    return (f"| {model} | NUTS, {run['chains']} chains x ({run['warmup']} + {run['draws']}) "
            f"| {run['compile_s']:.0f} s compile (apart) | {run['sampling_s']:.1f} "
            f"| {run['sampling_s']:.0f} | {run['gradients']:,.0f} gradients | {worst:.3f} "
            f"| {median:.3f} "
            f"| {'yes' if worst <= 0.1 else 'no'} | R-hat {run['max_rhat']:.3f}, "
            f"n_eff >= {run['min_n_eff']:.0f}, {run['divergent']} divergent |")


def rbsde_row(model, path, reference):
    with h5py.File(path, "r") as f:
        mean = f["estimates/posterior_mean"][()]
        estimates = dict(f["estimates"].attrs)
        timing = read_timing(f)
        config = resolved_config(f)
    seconds = dict(zip(timing["phases"], timing["max"]))
    train_s = float(timing["train_seconds"])
    iterations, paths = int(timing["iterations"]), int(timing["paths"])
    worst, median = errors(mean, reference)
    steps = config["sde"]["steps"]
    count = config["sample"]["count"]
    evaluations = iterations * paths + count
    score = config.get("network", {}).get("score", False)
    kind = "evaluations"
    if score:
        evaluations += (iterations * paths + count) * steps
        kind = "evaluations and gradients"
    what = (f"{iterations} iterations x {paths} paths, {count:,} samples" if iterations else
            f"`rbsde sample` of {count:,} paths from the trained network")
    setup = f"{train_s:.0f} s training" if iterations else "—"
    return (f"| {model} | rbsde `{Path(path).stem}`, {what} | {setup} | {seconds['sampling']:.1f} "
            f"| {train_s + seconds['sampling']:.0f} | {evaluations:,} {kind} | {worst:.3f} "
            f"| {median:.3f} | {'yes' if worst <= 0.1 else 'no'} "
            f"| ESS {estimates['ess']:.0f}, k̂ {estimates['pareto_k']:.2f} |")


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("model")
    a.add_argument("reference")
    a.add_argument("--nuts", nargs="*", default=[])
    a.add_argument("--rbsde", nargs="*", default=[])
    args = a.parse_args()
    reference = read_reference(args.reference)
    for path in args.nuts:
        print(nuts_row(args.model, path, reference))
    for path in args.rbsde:
        print(rbsde_row(args.model, path, reference))


if __name__ == "__main__":
    main()
