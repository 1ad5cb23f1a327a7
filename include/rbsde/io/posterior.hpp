#pragma once
/// \file posterior.hpp
/// Bias correction of the weighted sample (method.md §5): global systematic resampling into equally
/// weighted samples, and their HMC refinement on the exact target. Every step reads and writes the
/// output file collectively, sample.batch rows per rank at a time, and gives the same result on any
/// number of ranks.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rbsde/core/config.hpp"
#include "rbsde/core/resampling.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/output_file.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// Collective: systematic resampling of the sample.count rows of /samples (written and
/// synchronised) into /resampled/samples and /resampled/index, with the one uniform of the
/// resampling stream of sample.seed. Each rank reads its own rows back in batches: a first
/// pass gives its fixed-point weight total, an exclusive prefix sum over ranks then gives
/// each path's offspring count and each rank's offset in the resampled set, and a second pass
/// writes the offspring. Memory: two sample.batch-row buffers.
void resample_into(OutputFile& out, const SampleConfig& sample, int64_t dim, double max_log_weight,
                   const Communicator& comm);

/// What HMC refinement reports.
struct Refinement {
  double acceptance_rate = 0.0;  ///< over the iterations taken with the final step size
  double step_size = 0.0;
};

/// Collective: sample.hmc_steps HMC iterations of sample.leapfrog_steps leapfrog steps each
/// (mcmc.hpp) on the exact target from every row of /resampled/samples (written and
/// synchronised), written to /refined/samples with the acceptance rate, step size and
/// leapfrog steps as attributes. `target` is the one the sampler ran on: on a preconditioned
/// target the chains run in x̂ = L⁻¹ (x − m) and the refined rows are mapped back to x. The
/// preconditioner is `variance`, in the sampler's coordinates (the proposal's variance; a
/// coordinate whose variance is not positive gets 1). The rows are shared evenly over the
/// ranks and refined sample.batch chains at a time; the chain of resampled row i draws its
/// noise from the MCMC stream of sample.seed at chain index i. With sample.hmc_step_size 0,
/// the first batch adapts ε over the first half of its iterations toward
/// target_acceptance(leapfrog_steps), with one reduction of the acceptance count per
/// iteration, and every later batch uses that ε throughout. The refined rows agree across
/// numbers of ranks (to the rounding of the reduced variance) when the step size is given, or
/// when every rank's share fits in one batch (the adapting batch then holds all chains);
/// otherwise the adapted ε, and with it the rows, depend on which chains share the first
/// batch.
Refinement refine_into(OutputFile& out, const Target& target, const SampleConfig& sample,
                       const std::vector<double>& variance, const Communicator& comm);

/// The parameter names of the InferenceData group /posterior: target.names, else the
/// TorchScript module's `names`, else x[1] … x[d]. There must be one per parameter: per
/// output of the module's constrain(x) when it has one, else per coordinate (an Error
/// naming target.names otherwise).
std::vector<std::string> posterior_names(const Target& target, const TargetConfig& config);

/// The most parameters /posterior holds, one dataset each: every dataset attached to the
/// dimension scales chain and draw lengthens their REFERENCE_LIST attribute, which HDF5 refuses
/// past 4,085 (64 KiB; with the 1.8 format a parallel file still failed near 4,094).
inline constexpr int64_t kMaxPosteriorVariables = 4000;

/// Collective: the InferenceData group /posterior (output_file.hpp) of the equally weighted
/// draws (skipped, with a note, for more than kMaxPosteriorVariables parameters), /refined/samples
/// when sample.hmc_steps > 0, else /resampled/samples (written and synchronised), in the
/// constrained parameters of the module's constrain(x) when it has one, named by posterior_names.
/// `target` is the configured target (not preconditioned).
void posterior_into(OutputFile& out, const Target& target, const Config& config,
                    const Communicator& comm);

}  // namespace rbsde
