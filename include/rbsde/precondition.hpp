#pragma once
/// \file precondition.hpp
/// Affine preconditioning (method.md §4): training and sampling run in x̂ with x = m + L x̂,
/// on the target π̃(m + L x̂), whose normalising constant is 𝒵̂ = 𝒵 / |det L|. The reference
/// N(0, I) of x̂ then sits where the target's mass is; the map comes from the configuration,
/// the target's Gaussian prior, a Laplace approximation at the mode or a pilot run.
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>

#include "rbsde/communicator.hpp"
#include "rbsde/config.hpp"
#include "rbsde/target.hpp"

namespace rbsde {

/// The target π̃(m + L x̂) in the variable x̂ of an affine map x = m + L x̂ (L diagonal or
/// lower triangular with a non-zero diagonal).
class AffineTarget final : public Target {
 public:
  /// Throws Error (naming `precondition`) unless `map` has the inner target's dimension and
  /// finite entries, and L a non-zero diagonal.
  AffineTarget(std::unique_ptr<Target> inner, Affine map);
  /// The inner target's name: the distribution sampled is the same.
  std::string name() const override { return inner_->name(); }
  int64_t dim() const override { return inner_->dim(); }
  /// log π̃(m + L x̂) for a batch x̂ [M, d] (row form m + x̂ Lᵀ), in x̂'s dtype and
  /// differentiable in x̂.
  torch::Tensor log_prob(const torch::Tensor& x_hat) const override;
  /// log 𝒵̂ = log 𝒵 − log |det L| where the inner log 𝒵 is known.
  std::optional<double> log_z() const override;
  bool has_exact_sampler() const override { return inner_->has_exact_sampler(); }
  /// L⁻¹ (x − m) of the inner target's exact samples (same seed): [n, d] float64.
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;
  /// m + L x̂ for a batch x̂ [B, d], in x̂'s dtype: points in the inner target's coordinates.
  torch::Tensor to_target_space(const torch::Tensor& x_hat) const;
  const Target& inner() const { return *inner_; }
  const Affine& map() const { return map_; }

 private:
  std::unique_ptr<Target> inner_;
  Affine map_;
  torch::Tensor centre_t_;   // m [d] float64
  torch::Tensor scale_t_;    // the diagonal of L [d], or Lᵀ [d, d], float64
  torch::Tensor inverse_t_;  // 1 / diagonal [d], or L⁻ᵀ [d, d], float64
};

/// Collective: the map that precondition.kind names, computed on rank 0 and broadcast, so
/// every rank holds bit-identical m and L.
///   none     the identity (m = 0, L = I)
///   config   precondition.centre and precondition.scale
///   prior    target.prior(); an Error naming the target if it has none
///   laplace  m = argmax log π̃ by L-BFGS (float64, strong Wolfe line search, at most
///            precondition.iterations iterations, from the prior centre or 0), H = −∇² log π̃(m)
///            by autograd; L = chol(H⁻¹), or diag(H⁻¹)^½ with precondition.form: diagonal
///   pilot    self-normalised weighted mean and covariance (variances with form: diagonal)
///            of /samples and /log_weights in the HDF5 file precondition.pilot
/// Failures (no convergence, H or the covariance not positive definite, a missing or
/// mismatched pilot file) throw Error naming the key on every rank, rank 0 with the reason.
/// Rank 0 prints what laplace and pilot found.
Affine make_preconditioner(const Target& target, const PreconditionConfig& config,
                           const Communicator& comm);

/// Collective: `target` itself when precondition.kind is none, otherwise an AffineTarget
/// wrapping it with make_preconditioner's map. Training and sampling run on the result.
std::unique_ptr<Target> precondition(std::unique_ptr<Target> target,
                                     const PreconditionConfig& config, const Communicator& comm);

}  // namespace rbsde
