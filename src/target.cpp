#include "rbsde/target.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "rbsde/config.hpp"
#include "rbsde/error.hpp"

namespace rbsde {
namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log 2π

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

torch::Tensor to_tensor(const Eigen::VectorXd& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone();
}

torch::Tensor to_tensor(const Eigen::MatrixXd& m) {
  // Eigen stores column-major and torch row-major: copy through a row-major matrix.
  RowMajorMatrix row_major = m;
  return torch::from_blob(row_major.data(), {m.rows(), m.cols()}, torch::kFloat64).clone();
}

std::string shape_string(const torch::Tensor& x) {
  std::ostringstream out;
  out << x.sizes();
  return out.str();
}

/// Rejects anything but a float32/float64 batch [M, dim]: torch would otherwise broadcast a
/// wrong shape silently or fail deep inside an einsum with an unhelpful message.
void check_batch(const torch::Tensor& x, int64_t dim, const std::string& target) {
  if (x.dim() != 2 || x.size(1) != dim) {
    throw Error("target '" + target + "': log_prob expects a batch of shape [M, " +
                std::to_string(dim) + "], got " + shape_string(x));
  }
  if (x.scalar_type() != torch::kFloat32 && x.scalar_type() != torch::kFloat64) {
    throw Error("target '" + target + "': log_prob expects float32 or float64 input, got " +
                std::string(c10::toString(x.scalar_type())));
  }
}

/// The lower Cholesky factor L (Σ = L Lᵀ) of a symmetric positive definite matrix; `key`
/// names the configuration entry the matrix came from.
Eigen::MatrixXd checked_cholesky(const Eigen::MatrixXd& covariance, const std::string& key) {
  if (covariance.rows() != covariance.cols() || covariance.rows() == 0) {
    throw Error(key + ": covariance must be a non-empty square matrix, got " +
                std::to_string(covariance.rows()) + " x " + std::to_string(covariance.cols()));
  }
  if (!covariance.allFinite()) {
    throw Error(key + ": covariance has non-finite entries");
  }
  // Relative tolerance: YAML round-trips of a symmetric matrix are exactly symmetric, but a
  // matrix computed as A Aᵀ may differ from its transpose in the last bit.
  const double scale = std::max(1.0, covariance.cwiseAbs().maxCoeff());
  if ((covariance - covariance.transpose()).cwiseAbs().maxCoeff() > 1e-10 * scale) {
    throw Error(key + ": covariance must be symmetric positive definite (it is not symmetric)");
  }
  Eigen::LLT<Eigen::MatrixXd> llt(covariance);
  if (llt.info() != Eigen::Success) {
    throw Error(key + ": covariance must be symmetric positive definite (Cholesky failed)");
  }
  return llt.matrixL();
}

/// L⁻ᵀ, so that a row vector r = x - μ maps to r L⁻ᵀ = (L⁻¹ rᵀ)ᵀ with identity covariance.
Eigen::MatrixXd inverse_transpose_cholesky(const Eigen::MatrixXd& cholesky) {
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(cholesky.rows(), cholesky.cols());
  return cholesky.triangularView<Eigen::Lower>().solve(identity).transpose();
}

double log_det_from_cholesky(const Eigen::MatrixXd& cholesky) {
  return 2.0 * cholesky.diagonal().array().log().sum();
}

at::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

/// log of the unnormalised one-dimensional many-well factor, exp(-a⁴ + 6a² + ½a).
double log_well(double a) { return -a * a * a * a + 6.0 * a * a + 0.5 * a; }

}  // namespace

double Affine::log_det() const {
  return is_diagonal() ? diagonal.array().abs().log().sum()
                       : cholesky.diagonal().array().abs().log().sum();
}

torch::Tensor Target::sample_exact(int64_t /*n*/, uint64_t /*seed*/) const {
  throw Error("target '" + name() + "' has no exact sampler");
}

// ---------------------------------------------------------------------------------------------
// Gaussian

Gaussian::Gaussian(Eigen::VectorXd mean, Eigen::MatrixXd covariance) : mean_(std::move(mean)) {
  if (mean_.size() == 0) {
    throw Error("target.mean: gaussian needs a non-empty mean");
  }
  if (covariance.rows() != mean_.size() || covariance.cols() != mean_.size()) {
    throw Error("target.covariance: expected " + std::to_string(mean_.size()) + " x " +
                std::to_string(mean_.size()) + " to match target.mean, got " +
                std::to_string(covariance.rows()) + " x " + std::to_string(covariance.cols()));
  }
  if (!mean_.allFinite()) {
    throw Error("target.mean: gaussian mean has non-finite entries");
  }
  root_ = Affine{mean_, Eigen::VectorXd(), checked_cholesky(covariance, "target.covariance")};
  mean_t_ = to_tensor(mean_);
  whitening_t_ = to_tensor(inverse_transpose_cholesky(root_.cholesky));
}

std::unique_ptr<Gaussian> Gaussian::diagonal(const Eigen::VectorXd& mean,
                                             const Eigen::VectorXd& variances) {
  if (mean.size() == 0 || variances.size() != mean.size()) {
    throw Error("target.covariance: expected " + std::to_string(mean.size()) +
                " variances to match target.mean, got " + std::to_string(variances.size()));
  }
  if (!mean.allFinite()) {
    throw Error("target.mean: gaussian mean has non-finite entries");
  }
  if (!(variances.array() > 0.0).all() || !variances.allFinite()) {
    throw Error("target.covariance: not positive definite (variances must be finite and > 0)");
  }
  return std::unique_ptr<Gaussian>(
      new Gaussian(Affine{mean, variances.cwiseSqrt(), Eigen::MatrixXd()}));
}

Gaussian::Gaussian(Affine root) : mean_(root.centre), root_(std::move(root)) {
  mean_t_ = to_tensor(mean_);
  whitening_t_ = to_tensor(Eigen::VectorXd(root_.diagonal.cwiseInverse()));
}

Eigen::MatrixXd Gaussian::covariance() const {
  if (root_.is_diagonal()) return root_.diagonal.cwiseAbs2().asDiagonal();
  return root_.cholesky * root_.cholesky.transpose();
}

torch::Tensor Gaussian::log_prob(const torch::Tensor& x) const {
  check_batch(x, dim(), name());
  const auto mean = mean_t_.to(x.device(), x.scalar_type());
  const auto whitening = whitening_t_.to(x.device(), x.scalar_type());
  const auto whitened =
      root_.is_diagonal() ? (x - mean) * whitening : torch::matmul(x - mean, whitening);
  return -0.5 * whitened.square().sum(/*dim=*/1);
}

std::optional<double> Gaussian::log_z() const {
  // ½ log det Σ = log |det L|.
  return 0.5 * static_cast<double>(dim()) * kLog2Pi + root_.log_det();
}

torch::Tensor Gaussian::sample_exact(int64_t n, uint64_t seed) const {
  auto generator = make_generator(seed);
  const auto z = torch::randn({n, dim()}, generator, torch::kFloat64);
  // Row form of x = μ + L z.
  if (root_.is_diagonal()) return mean_t_ + z * to_tensor(root_.diagonal);
  return mean_t_ + torch::matmul(z, to_tensor(root_.cholesky).t());
}

// ---------------------------------------------------------------------------------------------
// Gmm

Gmm::Gmm(std::vector<double> weights, std::vector<Eigen::VectorXd> means,
         std::vector<Eigen::MatrixXd> covariances)
    : weights_(std::move(weights)), means_(std::move(means)), covariances_(std::move(covariances)) {
  const size_t components = means_.size();
  if (components == 0) {
    throw Error("target.means: gmm needs at least one component");
  }
  if (weights_.size() != components || covariances_.size() != components) {
    throw Error("target.weights / target.covariances: gmm has " + std::to_string(components) +
                " means but " + std::to_string(weights_.size()) + " weights and " +
                std::to_string(covariances_.size()) + " covariances");
  }
  const int64_t d = means_.front().size();
  if (d == 0) {
    throw Error("target.means: gmm component means must be non-empty");
  }
  double total = 0.0;
  for (size_t k = 0; k < components; ++k) {
    if (!(weights_[k] > 0.0) || !std::isfinite(weights_[k])) {
      throw Error("target.weights[" + std::to_string(k) +
                  "]: gmm weights must be positive and finite, got " + std::to_string(weights_[k]));
    }
    total += weights_[k];
    if (means_[k].size() != d) {
      throw Error("target.means[" + std::to_string(k) + "]: expected " + std::to_string(d) +
                  " entries like target.means[0], got " + std::to_string(means_[k].size()));
    }
    if (!means_[k].allFinite()) {
      throw Error("target.means[" + std::to_string(k) + "]: non-finite entries");
    }
    if (covariances_[k].rows() != d || covariances_[k].cols() != d) {
      throw Error("target.covariances[" + std::to_string(k) + "]: expected " + std::to_string(d) +
                  " x " + std::to_string(d) + ", got " + std::to_string(covariances_[k].rows()) +
                  " x " + std::to_string(covariances_[k].cols()));
    }
  }
  for (auto& w : weights_) w /= total;

  std::vector<torch::Tensor> means_t, inv_choleskys_t;
  std::vector<double> log_weights, log_norms;
  choleskys_.reserve(components);
  for (size_t k = 0; k < components; ++k) {
    choleskys_.push_back(
        checked_cholesky(covariances_[k], "target.covariances[" + std::to_string(k) + "]"));
    means_t.push_back(to_tensor(means_[k]));
    inv_choleskys_t.push_back(to_tensor(inverse_transpose_cholesky(choleskys_[k])));
    log_weights.push_back(std::log(weights_[k]));
    log_norms.push_back(-0.5 * static_cast<double>(d) * kLog2Pi -
                        0.5 * log_det_from_cholesky(choleskys_[k]));
  }
  means_t_ = torch::stack(means_t);
  inv_choleskys_t_ = torch::stack(inv_choleskys_t);
  log_weights_t_ = torch::tensor(log_weights, torch::kFloat64);
  log_norms_t_ = torch::tensor(log_norms, torch::kFloat64);
}

torch::Tensor Gmm::component_log_prob(const torch::Tensor& x) const {
  check_batch(x, dim(), name());
  const auto cast = [&](const torch::Tensor& t) { return t.to(x.device(), x.scalar_type()); };
  // All components at once: [M, 1, d] - [K, d] -> [M, K, d], whitened per component.
  const auto diff = x.unsqueeze(1) - cast(means_t_);
  const auto whitened = torch::einsum("mki,kij->mkj", {diff, cast(inv_choleskys_t_)});
  return -0.5 * whitened.square().sum(/*dim=*/2) + cast(log_norms_t_ + log_weights_t_);
}

torch::Tensor Gmm::log_prob(const torch::Tensor& x) const {
  return torch::logsumexp(component_log_prob(x), /*dim=*/1);
}

torch::Tensor Gmm::sample_exact(int64_t n, uint64_t seed) const {
  auto generator = make_generator(seed);
  const auto component =
      torch::multinomial(log_weights_t_.exp(), n, /*replacement=*/true, generator);
  const auto z = torch::randn({n, dim()}, generator, torch::kFloat64);
  auto x = torch::empty({n, dim()}, torch::kFloat64);
  // One matrix product per component (K is small) rather than gathering a [n, d, d] factor.
  for (int64_t k = 0; k < components(); ++k) {
    const auto rows = torch::nonzero(component == k).squeeze(1);
    const auto z_k = z.index_select(0, rows);
    x.index_copy_(0, rows, means_t_[k] + torch::matmul(z_k, to_tensor(choleskys_[k]).t()));
  }
  return x;
}

Gmm Gmm::noised(double alpha, double sigma2) const {
  if (!std::isfinite(alpha) || !std::isfinite(sigma2) || sigma2 < 0.0) {
    throw Error("Gmm::noised: needs finite alpha and sigma2 >= 0, got alpha = " +
                std::to_string(alpha) + ", sigma2 = " + std::to_string(sigma2));
  }
  std::vector<Eigen::VectorXd> means;
  std::vector<Eigen::MatrixXd> covariances;
  means.reserve(means_.size());
  covariances.reserve(covariances_.size());
  const auto identity = Eigen::MatrixXd::Identity(dim(), dim());
  for (size_t k = 0; k < means_.size(); ++k) {
    means.push_back(alpha * means_[k]);
    covariances.push_back(alpha * alpha * covariances_[k] + sigma2 * identity);
  }
  return Gmm(weights_, std::move(means), std::move(covariances));
}

// ---------------------------------------------------------------------------------------------
// Funnel

Funnel::Funnel(int64_t dim) : dim_(dim) {
  if (dim_ < 2) {
    throw Error("target.dim: funnel needs dim >= 2, got " + std::to_string(dim_));
  }
}

torch::Tensor Funnel::log_prob(const torch::Tensor& x) const {
  check_batch(x, dim_, name());
  const auto x0 = x.select(/*dim=*/1, /*index=*/0);
  const auto rest = x.slice(/*dim=*/1, /*start=*/1);
  const double tail = static_cast<double>(dim_ - 1);
  // log N(x₀; 0, 9) + Σ_j log N(x_j; 0, e^{x₀}), the variance e^{x₀} giving -½ x₀ per coordinate.
  const auto log_neck = -x0.square() / 18.0 - 0.5 * kLog2Pi - std::log(3.0);
  const auto log_tail =
      -0.5 * torch::exp(-x0) * rest.square().sum(/*dim=*/1) - 0.5 * tail * (x0 + kLog2Pi);
  return log_neck + log_tail;
}

torch::Tensor Funnel::sample_exact(int64_t n, uint64_t seed) const {
  auto generator = make_generator(seed);
  const auto z = torch::randn({n, dim_}, generator, torch::kFloat64);
  const auto x0 = 3.0 * z.slice(/*dim=*/1, 0, 1);
  return torch::cat({x0, torch::exp(0.5 * x0) * z.slice(/*dim=*/1, 1)}, /*dim=*/1);
}

// ---------------------------------------------------------------------------------------------
// ManyWell

ManyWell::ManyWell(int64_t dim) : dim_(dim) {
  if (dim_ < 2 || dim_ % 2 != 0) {
    throw Error("target.dim: many_well needs an even dimension >= 2, got " + std::to_string(dim_));
  }
  // The factor exp(-a⁴ + 6a² + ½a) peaks near a = ±1.7 at about e^9.5 and is below e^-1000
  // at |a| = 6, so [-6, 6] holds all of its mass. Simpson's rule with h = 5e-4 is accurate
  // far beyond the 9 digits wanted; the exponent is shifted by its maximum so nothing overflows.
  constexpr double kLower = -6.0;
  constexpr double kUpper = 6.0;
  constexpr int64_t kIntervals = 24000;  // even, as Simpson's rule needs
  const double h = (kUpper - kLower) / static_cast<double>(kIntervals);
  grid_.resize(kIntervals + 1);
  std::vector<double> log_density(kIntervals + 1);
  for (int64_t i = 0; i <= kIntervals; ++i) {
    grid_[i] = kLower + h * static_cast<double>(i);
    log_density[i] = log_well(grid_[i]);
  }
  const double shift = *std::max_element(log_density.begin(), log_density.end());
  std::vector<double> density(kIntervals + 1);
  for (int64_t i = 0; i <= kIntervals; ++i) density[i] = std::exp(log_density[i] - shift);

  double simpson = density.front() + density.back();
  for (int64_t i = 1; i < kIntervals; ++i) simpson += (i % 2 == 1 ? 4.0 : 2.0) * density[i];
  log_z_well_ = shift + std::log(simpson * h / 3.0);

  // Cumulative trapezoid for the CDF at the nodes; sampling interpolates linearly in between,
  // so node values to O(h²) are consistent with the piecewise-linear inverse.
  cdf_.resize(kIntervals + 1);
  cdf_[0] = 0.0;
  for (int64_t i = 1; i <= kIntervals; ++i) {
    cdf_[i] = cdf_[i - 1] + 0.5 * h * (density[i - 1] + density[i]);
  }
  const double mass = cdf_.back();
  for (auto& c : cdf_) c /= mass;
  cdf_.back() = 1.0;
}

torch::Tensor ManyWell::log_prob(const torch::Tensor& x) const {
  check_batch(x, dim_, name());
  const auto a = x.slice(/*dim=*/1, /*start=*/0, /*end=*/dim_, /*step=*/2);
  const auto b = x.slice(/*dim=*/1, /*start=*/1, /*end=*/dim_, /*step=*/2);
  const auto a2 = a.square();
  return (-a2.square() + 6.0 * a2 + 0.5 * a - 0.5 * b.square()).sum(/*dim=*/1);
}

std::optional<double> ManyWell::log_z() const {
  return 0.5 * static_cast<double>(dim_) * (log_z_well_ + 0.5 * kLog2Pi);
}

torch::Tensor ManyWell::sample_exact(int64_t n, uint64_t seed) const {
  auto generator = make_generator(seed);
  const int64_t pairs = dim_ / 2;
  const auto u = torch::rand({n, pairs}, generator, torch::kFloat64);
  const auto b = torch::randn({n, pairs}, generator, torch::kFloat64);

  const auto grid = torch::tensor(grid_, torch::kFloat64);
  const auto cdf = torch::tensor(cdf_, torch::kFloat64);
  // right = true gives the cell with cdf[i-1] <= u < cdf[i]: cdf[0] = 0 <= u and u < 1 = cdf
  // back, so 1 <= i <= last and the cell's CDF increment is strictly positive (no 0/0 in the
  // flat, underflowed tails).
  const auto upper = torch::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true);
  const auto lower = upper - 1;
  const auto cdf_lower = cdf.index({lower});
  const auto cdf_upper = cdf.index({upper});
  const auto grid_lower = grid.index({lower});
  const auto grid_upper = grid.index({upper});
  const auto a = grid_lower + (u - cdf_lower) / (cdf_upper - cdf_lower) * (grid_upper - grid_lower);
  // Interleave to (a₁, b₁, a₂, b₂, ...).
  return torch::stack({a, b}, /*dim=*/2).reshape({n, dim_});
}

// ---------------------------------------------------------------------------------------------
// Factory

std::unique_ptr<Target> make_target(const TargetConfig& config) {
  const int64_t d = config.dim;
  if (config.name == "funnel") {
    return std::make_unique<Funnel>(d);
  }
  if (config.name == "many_well") {
    return std::make_unique<ManyWell>(d);
  }
  if (config.name != "gaussian" && config.name != "gmm") {
    throw Error("target.name: unknown target '" + config.name +
                "'; accepted: gaussian, gmm, funnel, many_well");
  }
  if (d < 1) {
    throw Error("target.dim: " + config.name + " needs dim >= 1, got " + std::to_string(d));
  }
  if (config.name == "gaussian") {
    const Eigen::VectorXd mean = config.mean.size() == 0 ? Eigen::VectorXd::Zero(d) : config.mean;
    if (mean.size() != d) {
      throw Error("target.mean: expected " + std::to_string(d) + " entries (target.dim), got " +
                  std::to_string(mean.size()));
    }
    if (config.covariance.size() > 0) {
      if (config.covariance.rows() != d || config.covariance.cols() != d) {
        throw Error("target.covariance: expected " + std::to_string(d) + " x " +
                    std::to_string(d) + " (target.dim), got " +
                    std::to_string(config.covariance.rows()) + " x " +
                    std::to_string(config.covariance.cols()));
      }
      return std::make_unique<Gaussian>(mean, config.covariance);
    }
    const Eigen::VectorXd variances = config.covariance_diagonal.size() == 0
                                          ? Eigen::VectorXd::Ones(d)
                                          : config.covariance_diagonal;
    return Gaussian::diagonal(mean, variances);
  }

  const size_t components = config.means.size();
  if (components == 0) {
    throw Error("target.means: gmm needs at least one component mean");
  }
  for (size_t k = 0; k < components; ++k) {
    if (config.means[k].size() != d) {
      throw Error("target.means[" + std::to_string(k) + "]: expected " + std::to_string(d) +
                  " entries (target.dim), got " + std::to_string(config.means[k].size()));
    }
  }
  std::vector<double> weights = config.weights;
  if (weights.empty()) weights.assign(components, 1.0);
  // A single covariance entry is shared by every component (config.hpp).
  std::vector<Eigen::MatrixXd> covariances = config.covariances;
  if (covariances.empty()) covariances.assign(components, Eigen::MatrixXd::Identity(d, d));
  if (covariances.size() == 1) covariances.assign(components, Eigen::MatrixXd(covariances[0]));
  if (weights.size() != components || covariances.size() != components) {
    throw Error("target.weights / target.covariances: expected " + std::to_string(components) +
                " entries (one per target.means row), got " + std::to_string(weights.size()) +
                " weights and " + std::to_string(covariances.size()) + " covariances");
  }
  return std::make_unique<Gmm>(std::move(weights), config.means, std::move(covariances));
}

}  // namespace rbsde
