#include "rbsde/core/affine_target.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>

#include "rbsde/error.hpp"

namespace rbsde {
namespace {

/// Largest batch (rows x d) of copies of the mode differentiated at once for the Hessian.
constexpr int64_t kHessianBatchElements = int64_t{1} << 22;
/// Laplace: the mode counts as found when the remaining Newton step is at most this many
/// standard deviations of the Laplace approximation in every coordinate. L-BFGS's line search
/// stops where log π̃'s rounding hides its change (a float32 module: about √(2 ε |log π̃|) sd,
/// 0.03 sd at |log π̃| = 5000), and the Newton step taken from there is exact for a Gaussian
/// and squares the error near the mode of any smooth target; a map 0.1 sd off would still
/// precondition well.
constexpr double kModeTolerance = 0.1;

torch::Tensor to_tensor(const Eigen::VectorXd& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone();
}

torch::Tensor to_tensor(const Eigen::MatrixXd& m) {
  // Eigen stores column-major and torch row-major: copy through a row-major matrix.
  RowMajorMatrix row_major = m;
  return torch::from_blob(row_major.data(), {m.rows(), m.cols()}, torch::kFloat64).clone();
}

Eigen::VectorXd to_eigen(const torch::Tensor& v) {
  const auto c = v.to(torch::kFloat64).contiguous();
  return Eigen::Map<const Eigen::VectorXd>(c.data_ptr<double>(), c.numel());
}

std::string shape_string(const torch::Tensor& x) {
  std::ostringstream out;
  out << x.sizes();
  return out.str();
}

/// Visits the rows of ∇² (−log π̃) at `point` [d] (float64), by autograd, in chunks:
/// visit(begin, block) with block the rows [begin, begin + rows) as a row-major [rows, d]
/// matrix. The gradient is taken at a batch of copies of the point; differentiating entry i_r
/// of copy r's gradient once more gives row i_r of the Hessian, so a chunk of rows costs one
/// double-backward pass.
template <class Visit>
void visit_energy_hessian_rows(const Target& target, const torch::Tensor& point, Visit visit) {
  const int64_t d = point.size(0);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(d, kHessianBatchElements / d));
  for (int64_t begin = 0; begin < d; begin += chunk) {
    const int64_t rows = std::min(chunk, d - begin);
    const auto copies = point.detach().unsqueeze(0).expand({rows, d}).clone().requires_grad_(true);
    const auto gradient = torch::autograd::grad({-target.log_prob(copies).sum()}, {copies}, {},
                                                /*retain_graph=*/true, /*create_graph=*/true)[0];
    const auto index = torch::arange(begin, begin + rows, torch::kLong).unsqueeze(1);
    const auto selected = gradient.gather(1, index).sum();
    // A gradient without a graph, or whose graph does not reach x, is constant in x: those
    // rows of the Hessian are zero. (|x|: the second derivative comes back as LibTorch's
    // storage-less zero tensor.)
    torch::Tensor block;
    if (selected.requires_grad()) {
      block = torch::autograd::grad({selected}, {copies}, {}, /*retain_graph=*/c10::nullopt,
                                    /*create_graph=*/false, /*allow_unused=*/true)[0];
    }
    block = block.defined() && !block._is_zerotensor() ? block.to(torch::kFloat64).contiguous()
                                                       : torch::zeros({rows, d}, torch::kFloat64);
    visit(begin, Eigen::Map<const RowMajorMatrix>(block.data_ptr<double>(), rows, d));
  }
}

/// ∇² (−log π̃) at `point` [d], symmetrised.
Eigen::MatrixXd energy_hessian(const Target& target, const torch::Tensor& point) {
  const int64_t d = point.size(0);
  Eigen::MatrixXd hessian(d, d);
  visit_energy_hessian_rows(target, point, [&](int64_t begin, const auto& block) {
    hessian.middleRows(begin, block.rows()) = block;
  });
  return 0.5 * (hessian + hessian.transpose());
}

/// The diagonal of ∇² (−log π̃) at `point` [d]: O(d) memory, the time of the full Hessian.
Eigen::VectorXd energy_hessian_diagonal(const Target& target, const torch::Tensor& point) {
  Eigen::VectorXd diagonal(point.size(0));
  visit_energy_hessian_rows(target, point, [&](int64_t begin, const auto& block) {
    for (int64_t r = 0; r < block.rows(); ++r) diagonal(begin + r) = block(r, begin + r);
  });
  return diagonal;
}

}  // namespace

void check_map(const Affine& map, int64_t d, const std::string& what) {
  const std::string expected = " (target.dim = " + std::to_string(d) + ")";
  if (map.centre.size() != d) {
    throw Error(what + ": the centre has " + std::to_string(map.centre.size()) + " entries" +
                expected);
  }
  if (map.is_diagonal() == (map.cholesky.size() > 0)) {
    throw Error(what + ": L must be given either as a diagonal or as a lower-triangular matrix");
  }
  if (map.is_diagonal() && map.diagonal.size() != d) {
    throw Error(what + ": the diagonal of L has " + std::to_string(map.diagonal.size()) +
                " entries" + expected);
  }
  if (!map.is_diagonal() && (map.cholesky.rows() != d || map.cholesky.cols() != d)) {
    throw Error(what + ": L is " + std::to_string(map.cholesky.rows()) + " x " +
                std::to_string(map.cholesky.cols()) + expected);
  }
  const Eigen::VectorXd diagonal = map.is_diagonal() ? map.diagonal : map.cholesky.diagonal();
  if (!map.centre.allFinite() || !diagonal.allFinite() || !map.cholesky.allFinite()) {
    throw Error(what + ": the map has non-finite entries");
  }
  if ((diagonal.array() == 0.0).any())
    throw Error(what + ": L is singular (a zero diagonal entry)");
  if (!map.is_diagonal() &&
      !Eigen::MatrixXd(map.cholesky.triangularView<Eigen::StrictlyUpper>()).isZero(0.0)) {
    throw Error(what + ": L must be lower triangular");
  }
}

Affine identity_map(int64_t d) {
  Affine map;
  map.centre = Eigen::VectorXd::Zero(d);
  map.diagonal = Eigen::VectorXd::Ones(d);
  return map;
}

Affine configured_map(const PreconditionConfig& config, int64_t d) {
  Affine map;
  map.centre = config.centre.size() > 0 ? config.centre : Eigen::VectorXd::Zero(d);
  if (config.scale_covariance.size() > 0) {
    const Eigen::LLT<Eigen::MatrixXd> llt(config.scale_covariance);
    if (llt.info() != Eigen::Success) {
      throw Error("precondition.scale: a matrix must be a symmetric positive definite covariance");
    }
    map.cholesky = llt.matrixL();
  } else {
    map.diagonal =
        config.scale_diagonal.size() > 0 ? config.scale_diagonal : Eigen::VectorXd::Ones(d);
  }
  return map;
}

Affine prior_map(const Target& target) {
  const std::optional<Affine> prior = target.prior();
  if (!prior) {
    throw Error("precondition.kind: prior: target '" + target.name() +
                "' has no Gaussian prior; use precondition.kind: laplace, pilot or config");
  }
  return *prior;
}

std::string resolved_form(const PreconditionConfig& config, int64_t d) {
  if (config.form != "auto") return config.form;
  if (d <= kDenseMapMaxDim) return "cholesky";
  return config.kind == "pilot" || config.kind == "variational" ? "diagonal" : "curvature";
}

/// The Laplace approximation N(mode, H⁻¹) of the target, as x = mode + L x̂.
Affine laplace_map(const Target& target, const PreconditionConfig& config) {
  torch::AutoGradMode enable_grad(true);
  const int64_t d = target.dim();
  const std::optional<Affine> prior = target.prior();
  const std::string origin = prior ? "the prior centre" : "0";
  auto x =
      (prior ? to_tensor(prior->centre) : torch::zeros({d}, torch::kFloat64)).requires_grad_(true);
  const auto energy = [&](const torch::Tensor& point) {
    return -target.log_prob(point.unsqueeze(0)).sum();
  };
  const std::string what = "precondition.kind: laplace: target '" + target.name() + "'";
  {
    torch::NoGradGuard no_grad;
    if (!std::isfinite(energy(x).item<double>())) {
      throw Error(what + ": log π̃ is not finite at the start point (" + origin +
                  "); use precondition.kind: config with a centre where it is finite");
    }
  }

  torch::optim::LBFGS optimizer(
      {x},
      torch::optim::LBFGSOptions(1.0).max_iter(config.iterations).line_search_fn("strong_wolfe"));
  int64_t evaluations = 0;
  optimizer.step([&] {
    optimizer.zero_grad();
    auto loss = energy(x);
    loss.backward();
    ++evaluations;
    return loss;
  });

  const auto mode = x.detach().clone();
  const auto at_mode = mode.clone().requires_grad_(true);
  const auto value = energy(at_mode);
  const double log_target = -value.item<double>();
  const Eigen::VectorXd gradient = to_eigen(torch::autograd::grad({value}, {at_mode})[0]);
  const std::string reached = " at the point L-BFGS reached from " + origin +
                              " (log π̃ = " + std::to_string(log_target) + ", gradient norm " +
                              std::to_string(gradient.norm()) + ")";
  if (!std::isfinite(log_target) || !gradient.allFinite()) {
    throw Error(what + ": log π̃ or its gradient is not finite" + reached +
                "; use precondition.kind: prior, pilot or config");
  }
  const std::string form = resolved_form(config, d);
  Affine map;
  Eigen::VectorXd variances;  // diag(H⁻¹), or 1 / diag(H) for the curvature form
  Eigen::VectorXd newton_step;
  if (form == "curvature") {
    const Eigen::VectorXd curvature = energy_hessian_diagonal(target, mode);
    if (!curvature.allFinite() || (curvature.array() <= 0.0).any()) {
      throw Error(what + ": a diagonal entry of the Hessian of −log π̃ is not finite and positive" +
                  reached + "; use precondition.kind: prior, pilot or config");
    }
    variances = curvature.cwiseInverse();
    map.diagonal = variances.cwiseSqrt();
    newton_step = gradient.cwiseProduct(variances);
  } else {
    const Eigen::MatrixXd hessian = energy_hessian(target, mode);
    if (!hessian.allFinite()) {
      throw Error(what + ": the Hessian of log π̃ is not finite" + reached +
                  "; use precondition.kind: prior, pilot or config");
    }
    const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(d, d);
    if (form == "cholesky") {
      const Eigen::LLT<Eigen::MatrixXd> llt(hessian);
      const std::string not_positive =
          what + ": the Hessian of −log π̃ is not positive definite" + reached +
          "; try precondition.form: diagonal, or precondition.kind: prior or config";
      if (llt.info() != Eigen::Success) throw Error(not_positive);
      const Eigen::MatrixXd covariance = llt.solve(identity);
      const Eigen::LLT<Eigen::MatrixXd> factor(0.5 * (covariance + covariance.transpose()));
      if (factor.info() != Eigen::Success) throw Error(not_positive);
      map.cholesky = factor.matrixL();
      variances = covariance.diagonal();
      newton_step = llt.solve(gradient);
    } else {
      // Only the variances diag(H⁻¹) are needed; H itself may be indefinite.
      const Eigen::PartialPivLU<Eigen::MatrixXd> lu(hessian);
      variances = lu.solve(identity).diagonal();
      if (!variances.allFinite() || (variances.array() <= 0.0).any()) {
        throw Error(what +
                    ": the Hessian of −log π̃ is singular or its inverse has non-positive "
                    "variances" +
                    reached + "; use precondition.kind: prior or config");
      }
      map.diagonal = variances.cwiseSqrt();
      newton_step = lu.solve(gradient);
    }
  }
  const double remaining = (newton_step.array().abs() / variances.array().sqrt()).maxCoeff();
  if (!(remaining <= kModeTolerance)) {
    throw Error(what + ": L-BFGS did not reach the mode in precondition.iterations = " +
                std::to_string(config.iterations) + " iterations" + reached +
                ": a Newton step of " + std::to_string(remaining) +
                " standard deviations remains; raise precondition.iterations, or use "
                "precondition.kind: prior or pilot");
  }
  // One Newton step from where L-BFGS stopped (which is judged by the change of −log π̃):
  // exact for a Gaussian, and near the mode it squares the remaining error.
  map.centre = to_eigen(mode) - newton_step;
  std::printf(
      "precondition: laplace: L-BFGS stopped after %lld evaluations of log pi at log pi = %.6g, "
      "gradient norm %.3g, %.2g sd from the mode by a Newton step; form %s\n",
      static_cast<long long>(evaluations), log_target, gradient.norm(), remaining, form.c_str());
  std::fflush(stdout);
  return map;
}

Affine weighted_moment_map(const RowMajorMatrix& samples, const Eigen::VectorXd& log_weights,
                           const std::string& form, const std::string& what) {
  const int64_t d = samples.cols();
  const double top = log_weights.maxCoeff();
  if (log_weights.hasNaN() || !std::isfinite(top)) {
    throw Error(what + ": /log_weights has NaN entries, an infinite one or no finite one");
  }
  Eigen::VectorXd w = (log_weights.array() - top).exp();
  w /= w.sum();
  const double ess = 1.0 / w.squaredNorm();
  const std::string diagnosis = " (" + std::to_string(samples.rows()) + " samples, ESS " +
                                std::to_string(ess) + ", d = " + std::to_string(d) + ")";

  Affine map;
  map.centre = samples.transpose() * w;
  const Eigen::MatrixXd centred = samples.rowwise() - map.centre.transpose();
  if (form == "diagonal") {
    const Eigen::VectorXd variances = centred.array().square().matrix().transpose() * w;
    if (!((variances.array() > 0.0).all())) {
      throw Error(what + ": a weighted variance is zero" + diagnosis +
                  "; use a pilot run with more effective samples, or precondition.kind: laplace");
    }
    map.diagonal = variances.array().sqrt();
  } else {
    const Eigen::MatrixXd root_weighted = centred.array().colwise() * w.array().sqrt();
    const Eigen::MatrixXd covariance = root_weighted.transpose() * root_weighted;
    const Eigen::LLT<Eigen::MatrixXd> llt(covariance);
    if (llt.info() != Eigen::Success) {
      throw Error(what + ": the weighted covariance is not positive definite" + diagnosis +
                  "; use precondition.form: diagonal, or a pilot run with more effective samples");
    }
    map.cholesky = llt.matrixL();
  }
  return map;
}

AffineTarget::AffineTarget(std::unique_ptr<Target> inner, Affine map)
    : inner_(std::move(inner)), map_(std::move(map)) {
  check_map(map_, inner_->dim(), "precondition: the map for target '" + inner_->name() + "'");
  centre_t_ = to_tensor(map_.centre);
  if (map_.is_diagonal()) {
    scale_t_ = to_tensor(map_.diagonal);
    inverse_t_ = 1.0 / scale_t_;
  } else {
    scale_t_ = to_tensor(Eigen::MatrixXd(map_.cholesky.transpose()));
    const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(dim(), dim());
    inverse_t_ = to_tensor(
        Eigen::MatrixXd(map_.cholesky.triangularView<Eigen::Lower>().solve(identity).transpose()));
  }
}

torch::Tensor AffineTarget::to_target_space(const torch::Tensor& x_hat) const {
  if (x_hat.dim() != 2 || x_hat.size(1) != dim() ||
      (x_hat.scalar_type() != torch::kFloat32 && x_hat.scalar_type() != torch::kFloat64)) {
    throw Error("target '" + name() + "' (preconditioned): expects a float32 or float64 batch " +
                "of shape [M, " + std::to_string(dim()) + "], got " + shape_string(x_hat) + " " +
                std::string(c10::toString(x_hat.scalar_type())));
  }
  const auto cast = [&](const torch::Tensor& t) {
    return t.to(x_hat.device(), x_hat.scalar_type());
  };
  const auto scaled =
      map_.is_diagonal() ? x_hat * cast(scale_t_) : torch::matmul(x_hat, cast(scale_t_));
  return cast(centre_t_) + scaled;
}

torch::Tensor AffineTarget::log_prob(const torch::Tensor& x_hat) const {
  return inner_->log_prob(to_target_space(x_hat));
}

std::optional<double> AffineTarget::log_z() const {
  const std::optional<double> inner = inner_->log_z();
  if (!inner) return std::nullopt;
  return *inner - map_.log_det();
}

torch::Tensor AffineTarget::sample_exact(int64_t n, uint64_t seed) const {
  return to_sampler_space(inner_->sample_exact(n, seed));
}

torch::Tensor AffineTarget::to_sampler_space(const torch::Tensor& x) const {
  const auto centred = x.to(torch::kFloat64) - centre_t_;
  return map_.is_diagonal() ? centred * inverse_t_ : torch::matmul(centred, inverse_t_);
}

}  // namespace rbsde
