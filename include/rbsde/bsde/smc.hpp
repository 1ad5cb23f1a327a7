#pragma once
/// \file smc.hpp
/// Sequential Monte Carlo with adaptive tempering (reference.method: smc): the in-project
/// reference for log 𝒵 and the posterior moments of targets without a closed form, and the
/// baseline a user would run instead of rbsde.
///
/// M particles (reference.particles, shared over the ranks in contiguous ranges) start from
/// the reference N(0, I) of the sampler's coordinates (x̂ on a preconditioned target, where
/// the Laplace or prior map makes it close to the posterior) and move through the tempered
/// targets π_λ ∝ N(0, I)^{1−λ} π̃^λ, λ from 0 to 1. At each temperature, with ℓ = log π̃ −
/// log N(0, I) at the particles:
///   - the next λ' is the largest that keeps the effective sample size of the incremental
///     weights exp((λ' − λ) ℓ_i) at reference.ess · M (bisection, one reduction per trial);
///   - log 𝒵 grows by log mean_i exp((λ' − λ) ℓ_i) (max-shifted over all ranks);
///   - the particles are resampled systematically over all ranks (the integer weights of
///     io/posterior, so the offspring counts are the same on any number of ranks);
///   - reference.moves MALA steps (mcmc.hpp) on π_λ' move them, preconditioned by the
///     particles' variance, with the step size adapted after each move toward the optimal
///     acceptance 0.574.
/// Each run's 𝒵̂ is the product of the temperatures' mean incremental weights. With the
/// temperatures, the preconditioner and the step size fixed in advance it would be unbiased;
/// here they are chosen adaptively from the same particles, so 𝒵̂ is consistent (exact as
/// M → ∞) but not unbiased: its bias vanishes as M grows. reference.runs independent runs (one
/// noise epoch each: NoiseKey{reference.seed, kSmc, run}) give 𝒵̂_1 … 𝒵̂_R. The reported
/// log 𝒵 is the log of their mean, log (1/R) Σ_r 𝒵̂_r (combine_log_z_runs): the mean of the
/// log 𝒵̂_r would be low by about Var(log 𝒵̂)/2 (Jensen), a bias that more runs do not
/// remove. Its standard error is the delta method's, sd_r(𝒵̂_r / mean 𝒵̂) / √R. The moments
/// pool the final particles of all runs. Noise is keyed by global particle index, so a run on
/// any number of ranks draws the same numbers; sums over ranks (the variance, the bisection)
/// may differ in their last bits.
///
/// The noise steps of a run: the moves take 0, 1, … up to reference.moves × the temperatures,
/// which stays below 2^31 (the resampling uniforms' steps) because a run stops at
/// kSmcMaxTemperatures temperatures and reference.moves may not exceed kSmcMaxMoves.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "rbsde/bsde/results.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// π_λ ∝ N(x; 0, I)^{1−λ} π̃(x)^λ, normalised at λ = 0.
class TemperedTarget final : public Target {
 public:
  TemperedTarget(const Target& target, double lambda) : target_(target), lambda_(lambda) {}
  std::string name() const override { return target_.name(); }
  int64_t dim() const override { return target_.dim(); }
  torch::Tensor log_prob(const torch::Tensor& x) const override;

 private:
  const Target& target_;
  double lambda_;
};

/// Temperatures a run may take before it is stopped as stuck (an Error).
inline constexpr int64_t kSmcMaxTemperatures = 100000;
/// The largest reference.moves for which the moves' noise steps of a run, at most
/// reference.moves × kSmcMaxTemperatures, stay below 2^31, where the resampling steps begin;
/// a larger value is an Error before any run starts.
inline constexpr int64_t kSmcMaxMoves = (int64_t{1} << 31) / kSmcMaxTemperatures;

/// The runs' log 𝒵̂_r combined: log_z = log (1/R) Σ_r 𝒵̂_r (max-shifted) and log_z_stderr =
/// the delta method's sd_r(𝒵̂_r / 𝒵̄) / √R with 𝒵̄ the mean and the sd over R − 1 (NaN for one
/// run).
struct LogEvidence {
  double log_z = NAN;
  double log_z_stderr = NAN;
};
LogEvidence combine_log_z_runs(const std::vector<double>& log_z_runs);

/// Collective: reference.runs adaptive-tempering SMC runs on `target`; every rank returns
/// the same result (method "smc"). On an AffineTarget log 𝒵 and the moments are of the
/// configured target: log 𝒵 = log 𝒵̂ + log |det L|, x = m + L x̂.
ReferenceMoments smc_reference(const Target& target, const ReferenceConfig& reference,
                               const Communicator& comm);

}  // namespace rbsde
