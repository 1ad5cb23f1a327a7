#pragma once
/// \file target.hpp
/// Target distributions π = π̃ / 𝒵: a batch log-density and, where known, exact references.
#include <torch/torch.h>

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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

class AffineTarget;

/// An unnormalised target log π̃. Implementations are small value types without MPI; the data
/// targets read their file once, at construction.
class Target {
 public:
  virtual ~Target() = default;
  virtual std::string name() const = 0;
  virtual int64_t dim() const = 0;
  /// log π̃(x) for a batch x of shape [M, d] (float32 or float64); returns [M] in x's dtype.
  /// Built from differentiable torch operations, so autograd gives ∇ log π̃.
  virtual torch::Tensor log_prob(const torch::Tensor& x) const = 0;
  /// This target as a preconditioned one (core/affine_target.hpp: x = m + L x̂), or nullptr:
  /// samples and estimates are then mapped back to the inner target's coordinates.
  virtual const AffineTarget* preconditioned() const { return nullptr; }
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

/// What log_prob_and_gradient does with a NaN gradient where log π̃ is finite: kError throws
/// an Error naming the first such x (a defect of the target, such as a sqrt, log or division
/// whose value is masked but not its derivative); kKeep returns it, for the far points an HMC
/// trajectory can reach (where a floating-point overflow of the module is no defect), whose
/// trajectory is then rejected.
enum class NanGradient { kError, kKeep };

/// log π̃(x) [B] and ∇log π̃(x) [B, d] by autograd for x [B, d], in x's dtype, without a graph.
std::pair<torch::Tensor, torch::Tensor> log_prob_and_gradient(
    const Target& target, const torch::Tensor& x, NanGradient nan_gradient = NanGradient::kError);

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
  Affine root_;                // x = μ + L z with Σ = L Lᵀ (diagonal or Cholesky)
  torch::Tensor mean_t_;       // [d] float64
  torch::Tensor whitening_t_;  // L⁻ᵀ [d, d], or 1/√Σ_ii [d]: (x-μ)·it is N(0, I)
};

/// Normalised Gaussian mixture Σ_k w_k N(μ_k, Σ_k): log 𝒵 = 0.
class Gmm final : public Target {
 public:
  /// `name` is what name() reports: "gmm", or a named benchmark mixture such as "gmm40".
  Gmm(std::vector<double> weights, std::vector<Eigen::VectorXd> means,
      std::vector<Eigen::MatrixXd> covariances, std::string name = "gmm");
  std::string name() const override { return name_; }
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
  std::string name_;
  std::vector<double> weights_;
  std::vector<Eigen::VectorXd> means_;
  std::vector<Eigen::MatrixXd> covariances_;
  std::vector<Eigen::MatrixXd> choleskys_;
  torch::Tensor log_weights_t_;    // [K] float64
  torch::Tensor means_t_;          // [K, d] float64
  torch::Tensor inv_choleskys_t_;  // [K, d, d] float64, L_k⁻ᵀ
  torch::Tensor log_norms_t_;      // [K] float64: -½ d log 2π - ½ log det Σ_k
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
  double log_z_well_ = 0.0;   // log ∫ exp(-a⁴ + 6a² + ½a) da
  std::vector<double> grid_;  // a-grid for the inverse CDF
  std::vector<double> cdf_;   // normalised CDF on grid_
};

/// gmm40 (targets.md): 40 equal-weight components with covariance (softplus(1))² I, the means
/// read from `means_csv` (a header, then one row per mean, one column per coordinate).
Gmm make_gmm40(const std::string& means_csv);

/// Bayesian logistic regression (targets.md): log π̃(w) = Σ_i [y_i x_iᵀw − softplus(x_iᵀw)]
/// + Σ_j log N(w_j; 0, 1), with X the standardised features of a CSV file behind an intercept
/// column. 𝒵 is the marginal likelihood (the prior's normalising constant is included).
class LogisticRegression final : public Target {
 public:
  /// Reads `data` (CSV with a header; `label` names the 0/1 column, every other column is a
  /// feature). `dim` = 0 takes d = features + 1 from the data; any other value must equal it.
  /// `name` is what name() reports (logreg, logreg_ionosphere, logreg_sonar).
  LogisticRegression(std::string name, const std::string& data, const std::string& label,
                     int64_t dim);
  std::string name() const override { return name_; }
  int64_t dim() const override { return design_.size(1); }
  torch::Tensor log_prob(const torch::Tensor& w) const override;
  /// N(0, I).
  std::optional<Affine> prior() const override;
  /// X: [n, d] float64, a column of ones then the features, each centred and divided by its
  /// population standard deviation (1 where that is 0).
  const torch::Tensor& design() const { return design_; }
  /// y: [n] float64, 0 or 1.
  const torch::Tensor& labels() const { return labels_; }

 private:
  std::string name_;
  torch::Tensor design_;
  torch::Tensor labels_;
};

/// Log Gaussian Cox process on a G x G grid over [0, 1]² (targets.md, G = 40 there):
/// log π̃(x) = log N(x; μ₀ 1, K) + Σ_i [x_i n_i − a e^{x_i}], μ₀ = log(points) − σ²/2,
/// K_ij = σ² exp(−|c_i − c_j| / (G β)), σ² = 1.91, β = 1/33, a = 1/G². Whitened, the variable
/// is u with x = μ₀ 1 + L u (K = L Lᵀ): log π̃(u) = log N(u; 0, I) + Σ_i [x_i n_i − a e^{x_i}],
/// the same 𝒵.
class Lgcp final : public Target {
 public:
  /// Reads the points from `data` (CSV with columns data_x and data_y in [0, 1]).
  Lgcp(const std::string& data, int64_t grid, bool whitened);
  std::string name() const override { return "lgcp"; }
  int64_t dim() const override { return grid_ * grid_; }
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  /// Unwhitened: N(μ₀ 1, L Lᵀ); whitened: N(0, I).
  std::optional<Affine> prior() const override;
  int64_t grid() const { return grid_; }
  bool whitened() const { return whitened_; }
  int64_t points() const { return points_; }
  /// n_i per cell, row-major over (x bin, y bin).
  const Eigen::VectorXd& counts() const { return counts_; }
  double mu0() const { return mu0_; }
  /// a = 1/G², the area of one cell.
  double cell_area() const { return cell_area_; }
  /// L, the lower Cholesky factor of K.
  const Eigen::MatrixXd& cholesky() const { return cholesky_; }

 private:
  int64_t grid_;
  bool whitened_;
  int64_t points_ = 0;
  Eigen::VectorXd counts_;
  double mu0_ = 0.0;
  double cell_area_ = 0.0;
  Eigen::MatrixXd cholesky_;
  double log_det_cholesky_ = 0.0;  // log det L = ½ log det K
  torch::Tensor counts_t_;         // [d] float64
  torch::Tensor cholesky_t_;       // L [d, d] float64
};

/// A user target: a TorchScript module whose method maps a float32 batch [M, d] to [M]
/// (targets.md, "User targets"). Autograd runs through the module, so ∇ log π̃ is available.
class TorchScriptTarget final : public Target {
 public:
  /// Loads `module` and checks `method` (empty: log_prob if the module has one, else forward)
  /// on probe batches of zeros and ones in float64 and in float32; it must accept one of the
  /// two. d is the module's integer attribute `dim` where it has one (`dim`, if not 0, must
  /// equal it), else `dim` (then required). Every failure is an Error naming target.module or
  /// target.dim.
  TorchScriptTarget(const std::string& module, const std::string& method, int64_t dim);
  std::string name() const override { return "torchscript"; }
  int64_t dim() const override { return dim_; }
  /// Calls the module with x in x's precision when it accepts it, else in the other; the
  /// result, float32 or float64, comes back in x's dtype.
  torch::Tensor log_prob(const torch::Tensor& x) const override;
  /// The method called: the configured one, or the one chosen by default.
  const std::string& method() const { return method_; }
  /// "float64 and float32", "float64 only" or "float32 only": what the probes accepted.
  std::string precisions() const;
  /// The module's `names` attribute (a list of strings), or empty when it has none.
  const std::vector<std::string>& parameter_names() const { return names_; }
  /// Whether the module has a `constrain(x)` method: x [M, d] to parameters [M, p].
  bool has_constrain() const { return has_constrain_; }
  /// p, the number of parameters constrain(x) returns (found by the probe), else d.
  int64_t parameter_count() const { return has_constrain_ ? constrained_dim_ : dim_; }
  /// constrain(x) for x [M, d] float64, as float64 [M, p]; an Error naming the module when
  /// it fails or returns another shape.
  torch::Tensor constrain(const torch::Tensor& x) const;

 private:
  /// Calls the method on x (float32 or float64) and checks the result is a floating [M] tensor.
  torch::Tensor call(const torch::Tensor& x) const;

  std::string path_;
  std::string method_;
  int64_t dim_;
  bool accepts_float64_ = false;
  bool accepts_float32_ = false;
  std::vector<std::string> names_;
  bool has_constrain_ = false;
  int64_t constrained_dim_ = 0;  // p, from the probe
  torch::jit::Module module_;    // a handle: calling a method does not change it
};

/// Builds the target a configuration names (validated there).
std::unique_ptr<Target> make_target(const TargetConfig& config);

}  // namespace rbsde
