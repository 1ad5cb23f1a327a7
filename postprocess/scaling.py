"""Scaling plots of a study directory of jobs/strong_scaling.sbatch or weak_scaling.sbatch:
seconds per training iteration, speed-up and parallel efficiency against the ideal, and the
per-phase breakdown of an iteration stacked, at each rank count.

usage: python3 -m postprocess scaling STUDY [--out PATH]

STUDY holds ranks-R/output.h5 for each rank count R and a file `study` (strong or weak).
Strong scaling (fixed total paths): speed-up S = T1 / TR, efficiency S / R. Weak scaling
(fixed paths per rank): efficiency T1 / TR, scaled speed-up R T1 / TR. Prints the table and
writes PATH.png and PATH.pdf (default: STUDY/scaling).
"""
import argparse
import re
from pathlib import Path

import numpy as np

from .output import fail, open_output, read_timing, resolved_config, save_figure

PROGRAM = "postprocess scaling"
TRAINING_PHASES = ["noise", "path_kernel", "forward", "target", "backward", "allreduce",
                   "optimizer"]


def read_study(study):
    kind_file = study / "study"
    if not kind_file.is_file():
        fail(PROGRAM, f"{study}: no file 'study' (not a study directory of jobs/)")
    kind = kind_file.read_text().strip()
    if kind not in ("strong", "weak"):
        fail(PROGRAM, f"{kind_file}: '{kind}' is neither strong nor weak")
    points = []
    for folder in sorted(study.glob("ranks-*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        with open_output(folder / "output.h5", PROGRAM) as file:
            timing = read_timing(file)
            config = resolved_config(file)
        if timing is None or timing["iterations"] == 0:
            fail(PROGRAM, f"{folder}/output.h5: no /timing of a training run")
        points.append({"timing": timing, "config": config})
    if not points:
        fail(PROGRAM, f"{study}: no ranks-R/output.h5 (has the study run?)")
    return kind, points


def metrics(kind, points):
    ranks = np.array([p["timing"]["ranks"] for p in points], dtype=np.float64)
    seconds = np.array([p["timing"]["seconds_per_iteration"] for p in points])
    base = seconds[0] * ranks[0]  # time of one rank, scaled from the first point
    if kind == "strong":
        speedup = base / seconds
        efficiency = speedup / ranks
    else:
        efficiency = seconds[0] / seconds
        speedup = ranks * efficiency
    return ranks, seconds, speedup, efficiency


def plot(kind, points, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks, seconds, speedup, efficiency = metrics(kind, points)
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.6))
    ax_time, ax_speedup, ax_efficiency, ax_phases = axes
    ideal_time = seconds[0] * (ranks[0] / ranks if kind == "strong" else np.ones_like(ranks))
    ax_time.plot(ranks, seconds, "o-", label="measured")
    ax_time.plot(ranks, ideal_time, "k--", label="ideal")
    ax_time.set(xlabel="MPI ranks", ylabel="seconds per training iteration (s)",
                title="time per iteration")
    ax_speedup.plot(ranks, speedup, "o-", label="measured")
    ax_speedup.plot(ranks, ranks / ranks[0] * (speedup[0]), "k--", label="ideal")
    ax_speedup.set(xlabel="MPI ranks", ylabel="speed-up (×, vs 1 rank)" if kind == "strong"
                   else "scaled speed-up (×, vs 1 rank)", title="speed-up")
    ax_efficiency.plot(ranks, 100 * efficiency, "o-", label="measured")
    ax_efficiency.axhline(100, color="k", linestyle="--", label="ideal")
    ax_efficiency.set(xlabel="MPI ranks", ylabel="parallel efficiency (%)",
                      title="parallel efficiency", ylim=(0, 110))
    bottom = np.zeros(len(points))
    names = TRAINING_PHASES + ["other"]
    for name in names:
        per_iteration = []
        for p in points:
            t = p["timing"]
            mean = dict(zip(t["phases"], t["mean"]))
            value = (t["train_seconds"] - sum(mean.get(n, 0.0) for n in TRAINING_PHASES)
                     if name == "other" else mean.get(name, 0.0))
            per_iteration.append(max(value, 0.0) / t["iterations"])
        ax_phases.bar([str(int(r)) for r in ranks], per_iteration, bottom=bottom, label=name)
        bottom += np.array(per_iteration)
    ax_phases.set(xlabel="MPI ranks", ylabel="seconds per iteration (s, mean over ranks)",
                  title="per-phase breakdown")
    ax_phases.legend(fontsize="small")
    for ax in (ax_time, ax_speedup, ax_efficiency):
        ax.set_xticks(ranks)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m postprocess scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="study directory (runs/strong-JOB, weak-JOB)")
    parser.add_argument("--out", type=Path, help="output path without suffix")
    args = parser.parse_args(argv)
    kind, points = read_study(args.study)
    ranks, seconds, speedup, efficiency = metrics(kind, points)
    first = points[0]
    target = first["config"].get("target", {})
    paths = [p["timing"]["paths"] for p in points]
    threads = first["timing"]["threads"]
    per = "per rank" if kind == "weak" else "in all"
    title = (f"{kind} scaling: {target.get('name', '?')} (d = {target.get('dim', '?')}), "
             f"{paths[0] // (int(ranks[0]) if kind == 'weak' else 1)} training paths {per}, "
             f"{threads} thread{'s' if threads != 1 else ''} per rank ({args.study.name})")
    print(title)
    print(f"{'ranks':>5} {'paths':>8} {'s/iteration':>12} {'speed-up':>9} {'efficiency':>10}")
    for r, n, s, u, e in zip(ranks, paths, seconds, speedup, efficiency):
        print(f"{int(r):5d} {n:8d} {s:12.5f} {u:9.3f} {100 * e:9.1f}%")
    fig = plot(kind, points, title)
    for written in save_figure(fig, args.out or args.study / "scaling"):
        print(f"plot {written}")
    return 0
