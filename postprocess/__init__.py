"""rbsde's postprocessing: one command per job of jobs/, run from the project root as

    python3 -m postprocess COMMAND ARGS...

summary, samples, training, scaling, psis, compare-reference, compare-posteriordb (each
with --help). It reads the HDF5 output files (or the run directories of jobs/) with Debian's
python3-h5py, numpy, yaml and matplotlib.
"""
