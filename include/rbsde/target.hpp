#pragma once
/// \file target.hpp
/// Target distributions π = π̃ / 𝒵: a batch log-density and, where known, exact references.
#include <torch/torch.h>

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rbsde {

struct TargetConfig;

/// An affine map x = centre + L x̂ with L diagonal (`diagonal`, a d-vector) or lower triangular
/// (`cholesky`, d x d); exactly one of the two is set. Used for preconditioning
/// (method.md §4) and to describe Gaussian priors N(centre, L Lᵀ).
struct Affine {
  Eigen::VectorXd centre;
  Eigen::VectorXd diagonal;
  Eigen::MatrixXd cholesky;
  int64_t dim() const { return centre.size(); }
  bool is_diagonal() const { return diagonal.size() > 0; }
  /// log |det L|.
  double log_det() const;
};

/// An unnormalised target log π̃. Implementations are small value types: no I/O, no MPI.
class Target {
 public:
  virtual ~Target() = default;
  virtual std::string name() const = 0;
  virtual int64_t dim() const = 0;
  /// log π̃(x) for a batch x of shape [M, d] (float32 or float64); returns [M] in x's dtype.
  /// Built from differentiable torch operations, so autograd gives ∇ log π̃.
  virtual torch::Tensor log_prob(const torch::Tensor& x) const = 0;
  /// The exact log 𝒵 where it is known in closed form.
  virtual std::optional<double> log_z() const { return std::nullopt; }
  /// Whether sample_exact() is available.
  virtual bool has_exact_sampler() const { return false; }
  /// n exact samples of π, shape [n, d], float64, reproducible for a given seed.
  virtual torch::Tensor sample_exact(int64_t n, uint64_t seed) const;
  /// The Gaussian prior N(centre, L Lᵀ) of a Bayesian target, where it has one
  /// (precondition.kind: prior).
  virtual std::optional<Affine> prior() const { return std::nullopt; }
};

/// N(μ, Σ) with log π̃(x) = -½ (x-μ)ᵀ Σ⁻¹ (x-μ): log 𝒵 = ½ d log 2π + ½ log det Σ.
/// Σ is a full matrix or a diagonal; the diagonal form stores no d x d matrix, so very high
/// dimensions (d = 10⁴) cost O(d) per point.
class Gaussian final : public Target {
 public:
  Gaussian(Eigen::VectorXd mean, Eigen::MatrixXd covariance);
  /// N(μ, diag(variances)).
  static std::unique_ptr<Gaussian> diagonal(const Eigen::VectorXd& mean,
                                            const Eigen::VectorXd& variances);
  std::string name() const override { return "gaussian"; }
  int64_t dim() const override { return mean_.size(); }
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  std::optional<double> log_z() const override;
  bool has_exact_sampler() const override { return true; }
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;
  const Eigen::VectorXd& mean() const { return mean_; }
  /// Σ as a dense matrix (for tests and small d).
  Eigen::MatrixXd covariance() const;

 private:
  explicit Gaussian(Affine root);  // diagonal root (validated by diagonal())
  Eigen::VectorXd mean_;
  Affine root_;                       // x = μ + L z with Σ = L Lᵀ (diagonal or Cholesky)
  torch::Tensor mean_t_;              // [d] float64
  torch::Tensor whitening_t_;         // L⁻ᵀ [d, d], or 1/√Σ_ii [d]: (x-μ)·it is N(0, I)
};

/// Normalised Gaussian mixture Σ_k w_k N(μ_k, Σ_k): log 𝒵 = 0.
class Gmm final : public Target {
 public:
  Gmm(std::vector<double> weights, std::vector<Eigen::VectorXd> means,
      std::vector<Eigen::MatrixXd> covariances);
  std::string name() const override { return "gmm"; }
  int64_t dim() const override { return means_.front().size(); }
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  std::optional<double> log_z() const override { return 0.0; }
  bool has_exact_sampler() const override { return true; }
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;
  int64_t components() const { return static_cast<int64_t>(weights_.size()); }
  /// log w_k + log N(x; μ_k, Σ_k) for each point and component: [M, K] in x's dtype.
  torch::Tensor component_log_prob(const torch::Tensor& x) const;
  /// The law of α X + σ Z for X ~ this mixture and Z ~ N(0, I) independent:
  /// Σ_k w_k N(α μ_k, α² Σ_k + σ² I) (method.md §6, the noised marginal p_t).
  Gmm noised(double alpha, double sigma2) const;
  const std::vector<double>& weights() const { return weights_; }
  const std::vector<Eigen::VectorXd>& means() const { return means_; }
  const std::vector<Eigen::MatrixXd>& covariances() const { return covariances_; }

 private:
  std::vector<double> weights_;
  std::vector<Eigen::VectorXd> means_;
  std::vector<Eigen::MatrixXd> covariances_;
  std::vector<Eigen::MatrixXd> choleskys_;
  torch::Tensor log_weights_t_;   // [K] float64
  torch::Tensor means_t_;         // [K, d] float64
  torch::Tensor inv_choleskys_t_; // [K, d, d] float64, L_k⁻ᵀ
  torch::Tensor log_norms_t_;     // [K] float64: -½ d log 2π - ½ log det Σ_k
};

/// Neal's funnel: x₀ ~ N(0, 3²), x_{1:d-1} | x₀ ~ N(0, e^{x₀} I). Normalised: log 𝒵 = 0.
class Funnel final : public Target {
 public:
  explicit Funnel(int64_t dim);
  std::string name() const override { return "funnel"; }
  int64_t dim() const override { return dim_; }
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  std::optional<double> log_z() const override { return 0.0; }
  bool has_exact_sampler() const override { return true; }
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;

 private:
  int64_t dim_;
};

/// Many-well: Σ_i [-a⁴ + 6a² + ½a - ½b²] over the pairs (a, b) = (x_{2i-1}, x_{2i});
/// d/2 independent 2-D factors, 2^{d/2} modes.
class ManyWell final : public Target {
 public:
  explicit ManyWell(int64_t dim);
  std::string name() const override { return "many_well"; }
  int64_t dim() const override { return dim_; }
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  /// (d/2) (log ∫ exp(-a⁴ + 6a² + ½a) da + ½ log 2π); the integral is computed at
  /// construction by quadrature (11784.50927 to 9 digits).
  std::optional<double> log_z() const override;
  bool has_exact_sampler() const override { return true; }
  /// a by inverse CDF on a fine grid, b ~ N(0, 1).
  torch::Tensor sample_exact(int64_t n, uint64_t seed) const override;

 private:
  int64_t dim_;
  double log_z_well_ = 0.0;     // log ∫ exp(-a⁴ + 6a² + ½a) da
  std::vector<double> grid_;    // a-grid for the inverse CDF
  std::vector<double> cdf_;     // normalised CDF on grid_
};

/// Builds the target a configuration names (validated there).
std::unique_ptr<Target> make_target(const TargetConfig& config);

}  // namespace rbsde
