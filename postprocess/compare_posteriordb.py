"""Compare an rbsde run of a posteriordb posterior with the database's reference draws.

usage: python3 -m postprocess compare-posteriordb RUN.h5 POSTERIOR [--mean-tol 0.1] [--sd-tol 0.1]

POSTERIOR names a folder of data/posteriordb/ (e.g. kidiq-kidscore_momiq) or is a path to
one. The run's equally weighted draws in constrained parameters come from its InferenceData
group /posterior (written when the target module has `constrain` and `names`, as the
examples/posteriordb/ modules do). The reference is the folder's reference_draws.json.gz (10
chains of long NUTS runs), or its reference_summary.json (each parameter's mean and sd, as
examples/hierarchical/reference.R writes them). For each parameter of the reference prints the reference mean and sd, the run's, the mean error in reference sds
and the sd ratio; also the run's Pareto k^ and ESS. Exit status 0 when every mean is within
--mean-tol reference sds and every sd within --sd-tol (relative) of the reference, else 1.
"""
import argparse
import gzip
import json
from pathlib import Path

import numpy as np

from . import output
from .output import open_output, read_posterior

DATA = Path(__file__).resolve().parents[1] / "data" / "posteriordb"


def fail(message):
    output.fail("postprocess compare-posteriordb", message)


def reference_moments(posterior):
    """{name: (mean, sd)} of the reference draws or summary in the folder."""
    folder = Path(posterior) if Path(posterior).is_dir() else DATA / posterior
    summary = folder / "reference_summary.json"
    if summary.is_file():
        moments = json.loads(summary.read_text())
        return {name: (float(m["mean"]), float(m["sd"])) for name, m in moments.items()}
    path = folder / "reference_draws.json.gz"
    if not path.is_file():
        fail(f"{path}: no such file, nor {summary.name} (POSTERIOR is a folder of {DATA} or a "
             "path to one)")
    with gzip.open(path, "rt") as file:
        chains = json.load(file)
    draws = {name: np.concatenate([np.asarray(chain[name], dtype=np.float64) for chain in chains])
             for name in chains[0]}
    return {name: (values.mean(), values.std()) for name, values in draws.items()}


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess compare-posteriordb",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("posterior")
    parser.add_argument("--mean-tol", type=float, default=0.1)
    parser.add_argument("--sd-tol", type=float, default=0.1)
    args = parser.parse_args(argv)
    reference = reference_moments(args.posterior)
    with open_output(args.run, "postprocess compare-posteriordb") as file:
        if "posterior" not in file:
            fail(f"{args.run}: no /posterior group (the run needs sample.resample: true and a "
                 "target with parameter names)")
        draws = read_posterior(file)
        e = file["estimates"].attrs
        k, threshold, ess, count = (e["pareto_k"], e["pareto_k_threshold"], e["ess"], e["count"])
    missing = [name for name in reference if name not in draws]
    if missing:
        fail(f"{args.run}: /posterior has no {', '.join(missing)} (its variables: "
             f"{', '.join(draws)})")
    print(f"{'parameter':<12} {'ref mean':>11} {'ref sd':>10} {'run mean':>11} {'run sd':>10} "
          f"{'err/sd':>7} {'sd ratio':>8}")
    worst_mean = worst_sd = 0.0
    for name, (ref_mean, ref_sd) in reference.items():
        run_mean, run_sd = draws[name].mean(), draws[name].std()
        error = (run_mean - ref_mean) / ref_sd
        ratio = run_sd / ref_sd
        worst_mean, worst_sd = max(worst_mean, abs(error)), max(worst_sd, abs(ratio - 1.0))
        print(f"{name:<12} {ref_mean:11.5g} {ref_sd:10.4g} {run_mean:11.5g} {run_sd:10.4g} "
              f"{error:+7.3f} {ratio:8.3f}")
    ok = worst_mean <= args.mean_tol and worst_sd <= args.sd_tol
    print(f"worst |mean error| {worst_mean:.3f} sd (tolerance {args.mean_tol}), worst |sd ratio - 1| "
          f"{worst_sd:.3f} (tolerance {args.sd_tol}); Pareto k^ {k:.2f} (threshold "
          f"{threshold:.2f}), ESS {ess:.1f} of {count}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
