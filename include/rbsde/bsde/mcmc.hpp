#pragma once
/// \file mcmc.hpp
/// Hamiltonian Monte Carlo (HMC) on the exact target (method.md §5): the kernel that refines
/// resampled samples, and a long-run reference sampler for targets without closed-form
/// moments, used by tests and by `rbsde reference`.
///
/// A batch of C independent chains x [C, d] (float64) moves by L leapfrog steps of size ε
/// with momentum ξ ~ N(0, I) in the whitened coordinates x / √P, P a diagonal preconditioner
/// (a d-vector, ideally the posterior variance; the inverse of the diagonal mass matrix),
/// accepted with probability min(1, exp(−ΔH)). One leapfrog step is the Metropolis-adjusted
/// Langevin algorithm (MALA): the proposal y = x + ½ ε² P ∇log π̃(x) + ε √P ξ with MALA's
/// acceptance ratio; more steps move further along the target's ridges per gradient.
/// ∇log π̃ comes from autograd through Target::log_prob in float64. ξ and the uniform of the
/// accept test come from the MCMC stream of the counter-based Philox generator, keyed by
/// (seed, global chain index, step): a chain's path does not depend on how chains are split
/// over ranks or threads.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>

#include "rbsde/bsde/results.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// The acceptance rate the step-size adaptation aims at with one leapfrog step: optimal for
/// MALA in high dimension (Roberts & Rosenthal 1998).
inline constexpr double kMalaTargetAcceptance = 0.574;
/// The rate aimed at with more leapfrog steps: Stan's default. In a Python prototype of the
/// refinement on gp_pois_regr's curved posterior (docs/results.md), 0.8 refined as well as
/// 0.75 and better than 0.65, the optimum for Gaussian targets (Beskos et al. 2013).
inline constexpr double kHmcTargetAcceptance = 0.8;
/// The acceptance rate to adapt ε to for a number of leapfrog steps.
double target_acceptance(int64_t leapfrog_steps);

/// A good first step size for a target whose preconditioned coordinates have unit scale:
/// ε = 1.65 d^{-1/6}, the optimal MALA scaling of a standard Gaussian (Roberts & Rosenthal).
double initial_step_size(int64_t dim);

/// A batch of chains with log π̃ and ∇log π̃ at their current points.
struct Chains {
  torch::Tensor x;         ///< [C, d] float64
  torch::Tensor log_prob;  ///< [C] float64
  torch::Tensor grad;      ///< [C, d] float64
  int64_t first = 0;       ///< global index of chain 0: keys the chains' noise
};

/// Chains at the points x [C, d] (copied to float64), global indices first, first + 1, ….
Chains start_chains(const Target& target, const torch::Tensor& x, int64_t first);

/// One HMC iteration (leapfrog_steps leapfrog steps, >= 1) of every chain with noise of `key`
/// at `step`; returns the accept flags [C] (bool). Chain i takes steps of step_size ·
/// step_scale[i] when step_scale [C] is given, else of step_size. A trajectory whose end
/// point has a non-finite log π̃ or gradient is rejected.
torch::Tensor hmc_step(const Target& target, Chains& chains, double step_size,
                       const torch::Tensor& preconditioner, int64_t leapfrog_steps,
                       const NoiseKey& key, uint32_t step, const torch::Tensor& step_scale = {});

/// Step-size jitter: the factors smallest^u [chains] (float64), u uniform on (0, 1) of chain
/// first + i at `step` of `key`, log-uniform on [smallest, 1]. A step size that is the same
/// for every chain is too large in the neck of a funnel (a scale parameter near zero shrinks
/// the other coordinates' scale), where no chain then enters, and the posterior of that scale
/// comes out biased toward larger values; a step size drawn per chain and iteration (a
/// mixture of kernels, each of which keeps the target) lets chains step into the neck and out
/// again. Every draw, and so the mixture, is independent of the chains' state.
torch::Tensor step_size_jitter(double smallest, int64_t chains, const NoiseKey& key, int64_t first,
                               uint32_t step);
/// Robbins–Monro adaptation of the step size toward an acceptance rate over a planned
/// number of updates: log ε += (acceptance − target) / (t + 1)^0.6, where acceptance is
/// the mean of one step's accept flags over all chains. final_step_size() is exp of the
/// mean log ε over the second half of the updates (Polyak–Ruppert averaging), which
/// removes most of the step-to-step noise of the last iterate.
class StepSizeAdapter {
 public:
  StepSizeAdapter(double initial, int64_t updates, double acceptance);
  void update(double acceptance);
  /// The step size to use for the next step.
  double current() const { return std::exp(log_step_); }
  /// The averaged step size once all planned updates are done (current() before that).
  double final_step_size() const;

 private:
  double log_step_;
  int64_t updates_;
  double target_;
  int64_t done_ = 0;
  double sum_log_step_ = 0.0;  // over the updates of the second half
  int64_t averaged_ = 0;
};

/// Collective: long-run MALA (one leapfrog step) estimate of the posterior mean and sd of `target`.
///
/// reference.chains chains are shared over the ranks of `comm` in contiguous ranges; they
/// start from `start` [chains, d] when given, else from the target's prior, else N(0, I).
/// Warm-up (reference.warmup steps): the first half adapts ε with P = I; the variance of
/// all chains over its second quarter becomes P; the second half adapts ε afresh with that
/// P, after which ε is fixed. Then reference.steps sampling steps. Each warm-up step does
/// one reduction of the acceptance count (an exact integer sum), so ε, and hence every
/// chain, is the same on any number of ranks; the sampling phase communicates only at the
/// end.
///
/// mean_stderr is the spread of the chains' means, sd(chain means) / √chains: it accounts
/// for autocorrelation without a model of it, and is itself uncertain by about
/// 1/√(2(chains − 1)) (9 % with 64 chains). Accuracy: mean_stderr ≈ sd √(τ / (chains ·
/// steps)) with τ the integrated autocorrelation time in steps, so chains · steps ≈ τ / r²
/// for a standard error of r posterior sds. τ grows like d^{1/3} for a well-preconditioned
/// target; for configs/gaussian.yaml (d = 10) it is about 8 steps (README.md), and
/// `rbsde reference` prints the smallest effective sample size sd² / mean_stderr². MALA does
/// not move between well-separated modes: no reference for multimodal targets. On an
/// AffineTarget (a preconditioned run) the chains run in x̂, where a Laplace map makes the
/// target close to N(0, I) and correlations vanish, and the moments are of x = m + L x̂.
ReferenceMoments reference_moments(const Target& target, const ReferenceConfig& reference,
                                   const Communicator& comm, const torch::Tensor& start = {});

}  // namespace rbsde
