#pragma once
/// \file objective.hpp
/// The training objective of the deep-BSDE method (method.md §4, §8) as small value types:
/// the annealed terminal condition, the learning-rate schedule, and the loss on the terminal
/// residual r = Y_N − log π̃_γ(X_N) with its optimal constant, tilt and gradient factors.
/// The trainer (trainer.hpp) only orchestrates them.
#include <torch/torch.h>

#include <array>
#include <cstdint>

#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// The annealed terminal condition (train.anneal_*): γ rises linearly from γ₀ to 1 over the
/// first `fraction` of the iterations, and the Y recursion ends at log π̃_γ.
struct Annealing {
  enum class Path {
    kBridge,    ///< γ log π̃ + (1 − γ) log N(0, I): from the reference, where the untrained
                ///< model is exact, to the target
    kTempered,  ///< γ log π̃: every mode of a mixture keeps its share while γ rises
  };
  explicit Annealing(const TrainConfig& train);
  /// γ of an iteration (0-based); 1 without annealing.
  double gamma(int64_t iteration) const;
  /// log π̃_γ(x) [B] in log π̃'s dtype.
  torch::Tensor terminal(const Target& target, const torch::Tensor& x, double gamma) const;

  double gamma0;
  double fraction;
  int64_t iterations;
  Path path;
};

/// Collective: the terminal condition log π̃_γ(X_N) [m] (float64) with its −∞ entries, paths
/// that end outside the support or where a user's module overflows, replaced by the smallest
/// finite value over all ranks' paths (a constant: no gradient flows through it). Such a path
/// has weight zero in the sampler; in training it is the path whose residual is largest, so the
/// loss lowers the model's density there instead of ending the run. Unchanged when no entry
/// is finite (the loss is then not finite and training reports the divergence).
torch::Tensor floor_outside_support(const torch::Tensor& terminal, const Communicator& comm);

/// The learning rate of an iteration (train.lr, lr_schedule, lr_final): constant, or a
/// cosine from lr to lr_final over the iterations.
struct LearningRate {
  explicit LearningRate(const TrainConfig& train);
  double at(int64_t iteration) const;

  double initial;
  double final;
  bool cosine;
  int64_t iterations;
};

/// The loss: the variance of the residual over the M global paths, with c_θ absorbing its
/// mean (the optimal constant, method.md §8), optionally over paths weighted p_i ∝ exp(−κ r_i)
/// (train.tilt κ: ∝ w^κ, w the importance weight).
struct ResidualLoss {
  explicit ResidualLoss(const TrainConfig& train);
  /// Σ r and Σ r² of this rank's residuals (float64 [m]), to be summed over the ranks.
  static std::array<double, 2> local_sums(const torch::Tensor& residual);
  /// The unweighted mean residual and variance (the reported loss) from the global sums.
  struct Moments {
    double mean = 0.0;
    double variance = 0.0;
  };
  Moments moments(double sum, double sum_of_squares) const;
  /// Collective: the factors g_i of the loss gradient ∇L = Σ_i g_i ∇r_i, float64 [m]: the
  /// residual's variance over the paths weighted p_i ∝ exp(−κ r_i) (uniform for κ = 0),
  /// g_i = 2 p_i (r_i − Σ_j p_j r_j), normalised over the paths of all ranks.
  torch::Tensor gradient_factors(const torch::Tensor& residual, double mean,
                                 const Communicator& comm) const;
  /// The optimal constant after an iteration: c absorbs the mean residual.
  static double next_constant(double constant, double mean) { return constant - mean; }

  double tilt;
  int64_t paths;  ///< M, over all ranks
};

}  // namespace rbsde
