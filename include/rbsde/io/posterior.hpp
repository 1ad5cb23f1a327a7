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

#include "rbsde/bsde/independence.hpp"
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

/// The split R̂ below which the refined chains count as mixed (Vehtari et al. 2021).
inline constexpr double kMaxSplitRhat = 1.01;

/// The most blocks of post-adaptation iterations an extended refinement runs.
inline constexpr int64_t kMaxRefinementBlocks = 5;

/// sample.hmc_steps resolved: kAutoHmcSteps where it is auto, the target a posterior
/// (is_posterior_target) and the importance weights unreliable (`pareto_k` above
/// `threshold`, or NaN), 0 elsewhere where it is auto; the configured number otherwise.
int64_t hmc_iterations(const Config& config, double pareto_k, double threshold);

/// Collective: `iterations` HMC iterations (mcmc.hpp) on the exact target from every row of
/// /resampled/samples, or of /samples with `from_proposal` (the proposal's own draws, which
/// cover the posterior where poor weights make the resampled rows a few repeated points),
/// written and synchronised; written to /refined/samples with the attributes of Refinement.
/// `target` is the one the sampler ran on: on a preconditioned target the chains run in
/// x̂ = L⁻¹ (x − m) and the refined rows are mapped back to x. The rows are shared evenly over
/// the ranks and refined sample.batch chains at a time; the chain of row i draws its noise
/// from the MCMC stream of sample.seed at chain index i. Each iteration takes a number of
/// leapfrog steps drawn uniformly from 1 … 2 sample.leapfrog_steps − 1 (the same for every
/// chain; a fixed number can make near-periodic trajectories that barely move), and each chain
/// a step size ε·step_size_jitter(sample.hmc_smallest_step) of its own (mcmc.hpp).
/// With sample.hmc_step_size 0 the first batch adapts over the first half of its iterations:
/// ε toward target_acceptance(leapfrog_steps) with the preconditioner `variance` (the
/// proposal's variance in the sampler's coordinates; 1 where it is not positive) for a
/// quarter, then the preconditioner becomes the variance of all ranks' chains and ε is adapted
/// afresh for the second quarter; one reduction of the acceptance count per iteration, and
/// every later batch uses the adapted ε and preconditioner throughout. The refined rows agree
/// across numbers of ranks (to the rounding of the reduced sums) when the step size is given,
/// or when every rank's share fits in one batch. After the adaptation, the split R̂ and the
/// effective sample size over the chains' last block of iterations are reported; with
/// `extend` (sample.hmc_steps: auto), the first batch runs further blocks of as many
/// iterations, up to kMaxRefinementBlocks in all, until R̂ < kMaxSplitRhat, and every later
/// batch as many iterations. With sample.model_moves m > 0 (the SDE sampler's runs), every
/// m-th iteration is followed by an independence move of every chain with the trained model
/// `proposal` (bsde/independence.hpp; move t / m of the kIndependence stream of sample.seed).
Refinement refine_into(OutputFile& out, const Target& target, const SampleConfig& sample,
                       int64_t iterations, bool extend, bool from_proposal,
                       const std::vector<double>& variance, const ModelProposal& proposal,
                       const Communicator& comm);

/// The parameter names of the InferenceData group /posterior: target.names, else the
/// TorchScript module's `names`, else x[1] … x[d]. There must be one per parameter: per
/// output of the module's constrain(x) when it has one, else per coordinate (an Error
/// naming target.names otherwise).
std::vector<std::string> posterior_names(const Target& target, const TargetConfig& config);

/// The variables of /posterior for `names`, as InferenceData groups Stan's names: a run of
/// names base[1], base[2], …, base[k] (in this order, from 1, nothing between) is one vector
/// variable `base` of size k (unless `base` is a name too); every other name (base[2] alone,
/// a[1,2], theta) is a scalar variable of that name.
std::vector<PosteriorVariable> posterior_variables(const std::vector<std::string>& names);

/// The most variables /posterior holds, one dataset each: every dataset attached to the
/// dimension scales chain and draw lengthens their REFERENCE_LIST attribute, which HDF5 refuses
/// past 4,085 (64 KiB; with the 1.8 format a parallel file still failed near 4,094). Vectors
/// (x[1] … x[d] of the built-in targets) are one variable each, of any size.
inline constexpr int64_t kMaxPosteriorVariables = 4000;

/// Collective: the InferenceData group /posterior (output_file.hpp) of the equally weighted
/// draws (skipped, with a note, for more than kMaxPosteriorVariables variables), /refined/samples
/// when `refined`, else /resampled/samples (written and synchronised), in the
/// constrained parameters of the module's constrain(x) when it has one, named by posterior_names.
/// `target` is the configured target (not preconditioned).
void posterior_into(OutputFile& out, const Target& target, const Config& config, bool refined,
                    const Communicator& comm);

}  // namespace rbsde
