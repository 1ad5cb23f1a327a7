#pragma once
/// \file affine_target.hpp
/// Affine preconditioning (method.md §4): training and sampling run in x̂ with x = m + L x̂,
/// on the target π̃(m + L x̂), whose normalising constant is 𝒵̂ = 𝒵 / |det L|. The reference
/// N(0, I) of x̂ then sits where the target's mass is; the map comes from the configuration,
/// the target's Gaussian prior, a Laplace approximation at the mode or a pilot run's weighted
/// moments (io/precondition.hpp chooses among them on every rank).
#include <torch/torch.h>

#include <Eigen/Dense>
#include <memory>
#include <optional>
#include <string>

#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"

namespace rbsde {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

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
  const AffineTarget* preconditioned() const override { return this; }
  bool has_exact_sampler() const override { return inner_->has_exact_sampler(); }
  /// L⁻¹ (x − m) of the inner target's exact samples (same seed): [n, d] float64.
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;
  /// m + L x̂ for a batch x̂ [B, d], in x̂'s dtype: points in the inner target's coordinates.
  torch::Tensor to_target_space(const torch::Tensor& x_hat) const;
  /// L⁻¹ (x − m) for a batch x [B, d] of the inner target's points: [B, d] float64.
  torch::Tensor to_sampler_space(const torch::Tensor& x) const;
  const Target& inner() const { return *inner_; }
  const Affine& map() const { return map_; }

 private:
  std::unique_ptr<Target> inner_;
  Affine map_;
  torch::Tensor centre_t_;   // m [d] float64
  torch::Tensor scale_t_;    // the diagonal of L [d], or Lᵀ [d, d], float64
  torch::Tensor inverse_t_;  // 1 / diagonal [d], or L⁻ᵀ [d, d], float64
};

/// Throws Error(`what`: ...) unless `map` is a d-dimensional affine map with finite entries and
/// L diagonal or lower triangular with a non-zero diagonal (so that L is invertible).
void check_map(const Affine& map, int64_t d, const std::string& what);
/// none: the identity (m = 0, L = I).
Affine identity_map(int64_t d);
/// config: precondition.centre and precondition.scale (a diagonal of L, or a covariance L Lᵀ).
Affine configured_map(const PreconditionConfig& config, int64_t d);
/// prior: target.prior(); an Error naming the target if it has none.
Affine prior_map(const Target& target);
/// The largest d for which precondition.form: auto builds a dense map: above it a d x d
/// Hessian or covariance (8 d² bytes, 0.8 GB at d = 10⁴, and O(d³) to factor) would dominate
/// the run.
constexpr int64_t kDenseMapMaxDim = 4096;
/// precondition.form with auto resolved for dimension d: cholesky up to kDenseMapMaxDim, above
/// it curvature (laplace, auto) or diagonal (pilot, variational).
std::string resolved_form(const PreconditionConfig& config, int64_t d);
/// laplace: m = argmax log π̃ by L-BFGS (float64, strong Wolfe line search, at most
/// precondition.iterations iterations, from the prior centre or 0), H = −∇² log π̃(m) by
/// autograd; by resolved_form: L = chol(H⁻¹), diag(H⁻¹)^½ (diagonal) or diag(H)^−½
/// (curvature, which needs only H's diagonal: O(d) memory). Prints what it found.
Affine laplace_map(const Target& target, const PreconditionConfig& config);
/// pilot: the self-normalised weighted mean and covariance (variances with form: diagonal) of
/// samples [n, d] with log weights [n]; errors name `what`.
Affine weighted_moment_map(const RowMajorMatrix& samples, const Eigen::VectorXd& log_weights,
                           const std::string& form, const std::string& what);

}  // namespace rbsde
