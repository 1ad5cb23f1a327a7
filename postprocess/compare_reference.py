"""Compares the posterior moments of rbsde runs with a reference file of `rbsde reference`.

For each run: the largest |mean - reference mean| in reference posterior sds, for the
self-normalised importance-sampling estimate (/estimates/posterior_mean) and, when present,
the HMC-refined samples (/refined/samples); the largest relative sd error; and log Z (IS).
Then the spread of log Z over the runs (e.g. seeds).

    python3 -m postprocess compare-reference REFERENCE.h5 RUN.h5 [RUN.h5 ...]
"""
import argparse

import numpy as np

from .output import open_output


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess compare-reference",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    with open_output(args.reference, "postprocess compare-reference") as f:
        ref_mean = f["reference/mean"][()]
        ref_sd = f["reference/sd"][()]
        ref_se = f["reference/mean_stderr"][()]
    print(f"reference: {args.reference}, largest mean s.e. {np.max(ref_se / ref_sd):.4f} sd")
    log_z = []
    for path in args.runs:
        with open_output(path, "postprocess compare-reference") as f:
            est = f["estimates"]
            mean = est["posterior_mean"][()]
            sd = est["posterior_sd"][()]
            line = (f"{path}: log Z {est.attrs['log_z_is']:.4f} +- {est.attrs['log_z_is_stderr']:.4f}"
                    f"  ESS/M {est.attrs['ess_fraction']:.4f}"
                    f"  IS mean error {np.max(np.abs(mean - ref_mean) / ref_sd):.4f} sd"
                    f"  IS sd error {np.max(np.abs(sd / ref_sd - 1)):.4f}")
            if "refined" in f:
                refined = f["refined/samples"][()].astype(np.float64)
                line += (f"  refined mean error "
                         f"{np.max(np.abs(refined.mean(0) - ref_mean) / ref_sd):.4f} sd"
                         f"  refined sd error {np.max(np.abs(refined.std(0) / ref_sd - 1)):.4f}"
                         f"  HMC acceptance {f['refined/samples'].attrs['acceptance_rate']:.3f}")
            log_z.append(est.attrs["log_z_is"])
        print(line)
    if len(log_z) > 1:
        print(f"log Z over {len(log_z)} runs: {np.mean(log_z):.4f}, range {np.ptp(log_z):.4f}")

    return 0
