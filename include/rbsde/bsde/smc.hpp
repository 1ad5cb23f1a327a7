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
/// Since the particles are equally weighted after each resampling, the estimate of 𝒵 is
/// unbiased for every run; reference.runs independent runs (noise epochs 0, 1, … of
/// reference.seed) give log 𝒵 with its spread. The moments pool the final particles of all runs.
/// Noise is keyed by global particle index, so a run on any number of ranks draws the same numbers;
/// sums over ranks (the variance, the bisection) may differ in their last bits.
#include <torch/torch.h>

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

/// Collective: reference.runs adaptive-tempering SMC runs on `target`; every rank returns
/// the same result (method "smc"). On an AffineTarget log 𝒵 and the moments are of the
/// configured target: log 𝒵 = log 𝒵̂ + log |det L|, x = m + L x̂.
ReferenceMoments smc_reference(const Target& target, const ReferenceConfig& reference,
                               const Communicator& comm);

}  // namespace rbsde
