#pragma once
/// \file app.hpp
/// The rbsde command line: `rbsde run|train|sample|reference CONFIG [--set key=value ...]`.
#include <mpi.h>

#include "rbsde/bsde/model.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/output_file.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// Collective: the sampling phase of a run. Draws the paths into `out` (draw_samples in
/// bsde/sampler.hpp), then, as sample.* asks, resamples them into /resampled and refines those
/// by MALA into /refined (io/posterior.hpp, reading the written rows back). Returns the evidence
/// estimates with the self-normalised posterior moments, for the configured target's
/// coordinates.
Estimates sample_into(OutputFile& out, const Target& target, BsdeModel& model,
                      const NoiseSchedule& schedule, const Config& config,
                      const Communicator& comm);

/// Runs one command on the ranks of `comm` and returns the process exit status. Errors are
/// reported once and make every rank return non-zero (or abort the job when only some
/// ranks failed, so no rank is left waiting in a collective).
int run_app(int argc, char** argv, MPI_Comm comm);

}  // namespace rbsde
