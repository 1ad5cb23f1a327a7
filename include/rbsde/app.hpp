#pragma once
/// \file app.hpp
/// The rbsde command line: `rbsde run|train|sample|reference CONFIG [--set key=value ...]`.
#include <mpi.h>

#include "rbsde/communicator.hpp"
#include "rbsde/config.hpp"
#include "rbsde/model.hpp"
#include "rbsde/output_file.hpp"
#include "rbsde/schedule.hpp"
#include "rbsde/target.hpp"

namespace rbsde {

/// Collective: draws sample.count paths of the trained model, shared over the ranks of
/// `comm` in contiguous ranges (offsets by MPI_Exscan) and simulated sample.batch at a time,
/// writes them into `out`, then, as sample.* asks, resamples them into /resampled and refines
/// those by MALA into /refined (posterior.hpp, reading the written rows back). Returns the
/// evidence estimates with the self-normalised posterior moments. When `target` is an
/// AffineTarget, the paths run in x̂ and are written and estimated in the inner target's
/// coordinates x = m + L x̂: log weights and network estimates gain log |det L|.
Estimates sample_into(OutputFile& out, const Target& target, BsdeModel& model,
                      const NoiseSchedule& schedule, const Config& config,
                      const Communicator& comm);

/// Runs one command on the ranks of `comm` and returns the process exit status. Errors are
/// reported once and make every rank return non-zero (or abort the job when only some
/// ranks failed, so no rank is left waiting in a collective).
int run_app(int argc, char** argv, MPI_Comm comm);

}  // namespace rbsde
