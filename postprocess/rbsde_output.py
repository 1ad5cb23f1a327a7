"""Opening rbsde output files for the postprocess/ scripts: a missing, unreadable, interrupted
or foreign file ends the script with one clear message (exit status 1)."""
import sys
from pathlib import Path

import h5py


def fail(program, message):
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(1)


def open_output(path, program):
    """The complete rbsde output file `path`, opened read-only (an h5py.File)."""
    path = Path(path)
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
