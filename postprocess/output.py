"""Opening rbsde output files for the postprocess commands: a missing, unreadable, interrupted
or foreign file ends the command with one clear message (exit status 1). A run directory of
jobs/ stands for the output.h5 in it."""
import sys
from pathlib import Path

import h5py
import yaml


def fail(program, message):
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(1)


def open_output(path, program):
    """The complete rbsde output file `path` (or `path`/output.h5 for a run directory), opened
    read-only (an h5py.File)."""
    path = Path(path)
    if path.is_dir():
        path = path / "output.h5"
    if not path.exists():
        unfinished = Path(str(path) + ".tmp")
        hint = f" ({unfinished} exists: the run did not finish)" if unfinished.exists() else ""
        fail(program, f"{path}: no such file{hint}")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        fail(program, f"{path}: not a readable HDF5 file ({error})")
    if file.attrs.get("complete") != 1:
        file.close()
        fail(program, f"{path}: not a complete rbsde output file (no 'complete' attribute: an "
                      "interrupted run's, or another program's)")
    return file


def resolved_config(file):
    """The resolved configuration (root attribute config) of an open output file, as a dict."""
    text = file.attrs.get("config", "")
    return yaml.safe_load(text.decode() if isinstance(text, bytes) else str(text)) or {}


def read_posterior(file):
    """The InferenceData group /posterior as {parameter name: draws (1-D)}, in the file's
    order, or None without one: a scalar variable as itself, a vector variable `base` [chain,
    draw, k] as base[1] … base[k] (Stan's names, which rbsde grouped); the coordinates (chain,
    draw, base_dim_0: HDF5 dimension scales) are left out."""
    if "posterior" not in file:
        return None
    group = file["posterior"]
    draws = {}
    for name, variable in group.items():
        if variable.attrs.get("CLASS") == b"DIMENSION_SCALE":
            continue
        values = variable[...]
        if values.ndim == 2:
            draws[name] = values.ravel()
        else:
            for i in range(values.shape[2]):
                draws[f"{name}[{i + 1}]"] = values[:, :, i].ravel()
    return draws


def read_timing(file):
    """/timing of an open output file as a dict: phases (names), min, mean and max (seconds
    over the ranks, arrays in phase order) and the attributes; None for a file without it."""
    if "timing" not in file:
        return None
    group = file["timing"]
    timing = {key: group.attrs[key].item() for key in group.attrs if key != "phases"}
    phases = group.attrs["phases"]
    timing["phases"] = (phases.decode() if isinstance(phases, bytes) else str(phases)).split()
    for name in ("min", "mean", "max"):
        timing[name] = group[name][()]
    return timing


def save_figure(fig, path):
    """Writes `fig` as PNG (at `path` with suffix .png) and PDF (.pdf); returns both paths."""
    path = Path(path)
    written = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for target in written:
        fig.savefig(target, dpi=120)
    return written
