"""Projected strong and weak scaling from 1 to 1,024 nodes (docs/scaling-model.md): compute
per training iteration from runs' /timing, the all-reduce within a node fitted from
bench/sweep.sh's measurements, and between nodes a published interconnect's latency and
bandwidth.

usage: python3 -m postprocess scaling-model RUN.h5 [RUN.h5 ...] --sweep SWEEP.json
           [--cores-per-node C] [--latency S] [--bandwidth B] [--out PATH]

The model, per training iteration of one rank (every rank runs the same):
  T(P) = F + b m(P) + A(P)
  F      the part that does not shrink with the paths: the optimizer (from /timing) and N
         time steps of fixed per-step overhead κ (fitted from the sweep's paths cases);
  b m    the rest of the run's compute, proportional to its m paths per rank;
  A(P)   the gradient all-reduce of n = /timing's `parameters` floats, hierarchical:
         Rabenseifner within the node (q ranks, α_s and β_s fitted from the sweep's np = 2
         all-reduces) and between the P nodes (α and β of the interconnect):
         2 log2(q) α_s + 2 (q − 1)/q 4n/β_s + 2 log2(P) α + 2 (P − 1)/P 4n/β,
         plus one latency-bound all-reduce of the diagnostics.
A node has C cores and runs C / (threads per rank of the run) ranks. Strong scaling keeps the
paths one node trains with the run's paths per rank and spreads them over P nodes (down to one
path per rank); weak scaling keeps the paths per rank. Efficiency: T(1) / (P T(P)) strong,
T(1) / T(P) weak. Prints the table, writes PATH.json, PATH.png and PATH.pdf
(default: scaling_model in the working directory).
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from .output import fail, open_output, read_timing, resolved_config, save_figure

PROGRAM = "postprocess scaling-model"
NODES = [2 ** k for k in range(11)]  # 1 … 1,024
# HDR InfiniBand (4x, 200 Gb/s): 25 GB/s signalling rate, of which MPI moves about 24 GB/s;
# NVIDIA ConnectX-6 states under 0.6 µs adapter latency, and an MPI message about 1 µs.
HDR_LATENCY = 1.0e-6
HDR_BANDWIDTH = 24.0e9
FLOAT_BYTES = 4


def fit_sweep(path):
    """α_s, β_s (within a node) and κ (fixed seconds per time step) from sweep.json."""
    try:
        cases = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        fail(PROGRAM, f"{path}: cannot read the sweep ({e})")
    two = [c["rbsde"] for c in cases if c["rbsde"]["np"] == 2]
    if len(two) < 2:
        fail(PROGRAM, f"{path}: the fit needs np = 2 all-reduces of two sizes or more")
    floats = np.array([r["gradient_floats"] for r in two])
    seconds = np.array([r["allreduce_alone_s"] for r in two])
    # Relative residuals (weights 1/t): the small all-reduces set the latency, the large ones
    # the bandwidth, and neither swamps the other.
    slope, intercept = np.polyfit(floats * FLOAT_BYTES, seconds, 1, w=1.0 / seconds)
    # q = 2 in the Rabenseifner cost: 2 α_s + bytes / β_s.
    alpha_s, beta_s = max(intercept, 0.0) / 2.0, 1.0 / slope if slope > 0 else math.inf
    paths = sorted((c["rbsde"] for c in cases if c["case"].startswith(("paths=", "centre"))),
                   key=lambda r: r["paths"])
    if len(paths) < 2:
        fail(PROGRAM, f"{path}: the fit needs the paths cases (paths=256, centre, paths=4096)")
    per_rank = np.array([r["paths"] / r["np"] for r in paths])
    compute = np.array([r["s_per_iter"] - r["allreduce_s_per_iter"] for r in paths])
    b, a = np.polyfit(per_rank, compute, 1)
    kappa = max(a, 0.0) / paths[0]["steps"]
    return {"alpha_s": alpha_s, "beta_s": beta_s, "kappa": kappa,
            "fit_points": {"allreduce": list(zip(floats.tolist(), seconds.tolist())),
                           "paths": list(zip(per_rank.tolist(), compute.tolist()))}}


def read_run(path):
    with open_output(path, PROGRAM) as file:
        timing = read_timing(file)
        config = resolved_config(file)
    if timing is None or timing.get("iterations", 0) == 0:
        fail(PROGRAM, f"{path}: no /timing of a training run")
    if "parameters" not in timing:
        fail(PROGRAM, f"{path}: /timing has no 'parameters' (written by rbsde from this version)")
    mean = dict(zip(timing["phases"], timing["mean"]))
    iterations = timing["iterations"]
    name = Path(path).stem
    return {
        "name": name,
        "dimension": timing["dimension"],
        "parameters": timing["parameters"],
        "ranks": timing["ranks"],
        "threads": timing["threads"],
        "paths": timing["paths"],
        "steps": config.get("sde", {}).get("steps", 0),
        "seconds_per_iteration": timing["seconds_per_iteration"],
        "allreduce": mean.get("allreduce", 0.0) / iterations,
        "optimizer": mean.get("optimizer", 0.0) / iterations,
    }


def allreduce_seconds(n, ranks_per_node, nodes, fit, latency, bandwidth):
    bytes_ = FLOAT_BYTES * n
    q = ranks_per_node
    intra = (2 * math.log2(q) * fit["alpha_s"] + 2 * (q - 1) / q * bytes_ / fit["beta_s"]
             if q > 1 else 0.0)
    inter = 2 * math.log2(nodes) * latency + 2 * (nodes - 1) / nodes * bytes_ / bandwidth
    diagnostics = 2 * (math.log2(q) * fit["alpha_s"] + math.log2(nodes) * latency)
    return intra + inter + diagnostics


def project(run, fit, cores, latency, bandwidth):
    """Strong and weak efficiency and seconds per iteration at each node count."""
    m0 = run["paths"] / run["ranks"]
    compute = run["seconds_per_iteration"] - run["allreduce"]
    fixed = min(run["optimizer"] + run["steps"] * fit["kappa"], compute)
    per_path = (compute - fixed) / m0
    ranks_per_node = max(1, cores // run["threads"])

    def seconds(paths_per_rank, nodes):
        return (fixed + per_path * paths_per_rank +
                allreduce_seconds(run["parameters"], ranks_per_node, nodes, fit, latency,
                                  bandwidth))

    node_paths = m0 * ranks_per_node
    t1 = seconds(m0, 1)
    rows = []
    for nodes in NODES:
        strong_m = node_paths / (nodes * ranks_per_node)
        strong = seconds(strong_m, nodes) if strong_m >= 1 else math.nan
        weak = seconds(m0, nodes)
        rows.append({"nodes": nodes, "strong_paths_per_rank": strong_m,
                     "strong_seconds": strong, "strong_efficiency": t1 / (nodes * strong),
                     "weak_seconds": weak, "weak_efficiency": t1 / weak,
                     "allreduce_seconds": allreduce_seconds(run["parameters"], ranks_per_node,
                                                            nodes, fit, latency, bandwidth)})
    return {"fixed_seconds": fixed, "seconds_per_path": per_path, "paths_per_rank": m0,
            "ranks_per_node": ranks_per_node, "rows": rows}


def plot(runs, projections, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_strong, ax_weak) = plt.subplots(1, 2, figsize=(13, 5))
    for run, projection in zip(runs, projections):
        label = f"{run['name']} (d = {run['dimension']}, {run['parameters']:,} parameters)"
        nodes = [r["nodes"] for r in projection["rows"]]
        ax_strong.plot(nodes, [100 * r["strong_efficiency"] for r in projection["rows"]],
                       "o-", ms=3, label=label)
        ax_weak.plot(nodes[1:], [100 * (1 - r["weak_efficiency"]) for r in projection["rows"][1:]],
                     "o-", ms=3, label=label)
    ax_strong.axhline(100, color="k", linestyle="--", linewidth=0.8)
    ax_strong.axhline(50, color="grey", linestyle=":", linewidth=0.8)
    ax_strong.set(ylabel="projected parallel efficiency (%)", ylim=(0, 105),
                  title="strong: one node's paths spread over P nodes (to 1 path per rank)")
    ax_weak.set_yscale("log")
    ax_weak.set(ylabel="projected loss of efficiency, 1 − E (%)",
                title="weak: the paths per rank fixed (1 − efficiency, log scale)")
    for ax in (ax_strong, ax_weak):
        ax.set_xscale("log", base=2)
        ax.set_xticks(NODES)
        ax.set_xticklabels([str(n) for n in NODES])
        ax.set_xlabel("nodes")
    ax_weak.legend(fontsize="x-small", loc="upper left")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def last_above(rows, key, threshold):
    """The largest node count whose efficiency `key` is at least `threshold`."""
    good = [r["nodes"] for r in rows if r[key] >= threshold]
    return good[-1] if good else 0


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess scaling-model",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="output files of training runs")
    parser.add_argument("--sweep", type=Path, required=True, help="bench/sweep.sh's sweep.json")
    parser.add_argument("--cores-per-node", type=int, default=64)
    parser.add_argument("--latency", type=float, default=HDR_LATENCY,
                        help="seconds per message between nodes (default: HDR InfiniBand)")
    parser.add_argument("--bandwidth", type=float, default=HDR_BANDWIDTH,
                        help="bytes per second between nodes (default: HDR InfiniBand)")
    parser.add_argument("--out", type=Path, default=Path("scaling_model"))
    args = parser.parse_args(argv)
    if args.cores_per_node < 1 or args.latency < 0 or args.bandwidth <= 0:
        fail(PROGRAM, "--cores-per-node must be >= 1, --latency >= 0 and --bandwidth > 0")
    fit = fit_sweep(args.sweep)
    runs = [read_run(path) for path in args.runs]
    projections = [project(r, fit, args.cores_per_node, args.latency, args.bandwidth)
                   for r in runs]
    print(f"within a node (fitted): α_s {fit['alpha_s'] * 1e6:.2f} µs, "
          f"β_s {fit['beta_s'] / 1e9:.2f} GB/s; fixed per time step κ {fit['kappa'] * 1e3:.3f} ms")
    print(f"between nodes: α {args.latency * 1e6:.2f} µs, β {args.bandwidth / 1e9:.1f} GB/s; "
          f"{args.cores_per_node} cores per node")
    print(f"{'run':<18} {'d':>7} {'parameters':>11} {'paths/rank':>10} {'s/it':>8} "
          f"{'all-reduce@1024':>15} {'strong@8':>8} {'strong@64':>9} {'weak@64':>8} "
          f"{'weak@1024':>9} {'strong≥50%':>10} {'weak≥90%':>9}")
    for run, p in zip(runs, projections):
        rows = {r["nodes"]: r for r in p["rows"]}
        pct = (lambda v: f"{100 * v:.1f}%" if not math.isnan(v) else "—")
        print(f"{run['name']:<18} {run['dimension']:>7} {run['parameters']:>11,} "
              f"{p['paths_per_rank']:>10.0f} {rows[1]['weak_seconds']:>8.4g} "
              f"{rows[1024]['allreduce_seconds'] * 1e3:>12.3f} ms "
              f"{pct(rows[8]['strong_efficiency']):>8} {pct(rows[64]['strong_efficiency']):>9} "
              f"{pct(rows[64]['weak_efficiency']):>8} {pct(rows[1024]['weak_efficiency']):>9} "
              f"{last_above(p['rows'], 'strong_efficiency', 0.5):>10} "
              f"{last_above(p['rows'], 'weak_efficiency', 0.9):>9}")
    title = (f"projected scaling: {args.cores_per_node} cores per node, between nodes "
             f"{args.latency * 1e6:.1f} µs and {args.bandwidth / 1e9:.0f} GB/s, within "
             f"{fit['alpha_s'] * 1e6:.1f} µs and {fit['beta_s'] / 1e9:.1f} GB/s (fitted)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"fit": fit, "latency": args.latency, "bandwidth": args.bandwidth,
         "cores_per_node": args.cores_per_node,
         "runs": [dict(run, projection=p) for run, p in zip(runs, projections)]}, indent=1))
    for written in save_figure(plot(runs, projections, title), args.out):
        print(f"plot {written}")
    return 0
