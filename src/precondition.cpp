#include "rbsde/precondition.hpp"

#include <hdf5.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "rbsde/error.hpp"

namespace rbsde {
namespace {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Largest batch (rows x d) of copies of the mode differentiated at once for the Hessian.
constexpr int64_t kHessianBatchElements = int64_t{1} << 22;
/// Laplace: the mode counts as found when the remaining Newton step is at most this many
/// standard deviations of the Laplace approximation in every coordinate.
constexpr double kModeTolerance = 1e-3;

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

/// Throws Error(`what`: ...) unless `map` is a d-dimensional affine map with finite entries and
/// L diagonal or lower triangular with a non-zero diagonal (so that L is invertible).
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

/// precondition.centre and precondition.scale (a diagonal of L, or a covariance L Lᵀ).
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

/// ∇² (−log π̃) at `point` [d] (float64) by autograd. The gradient is taken at a batch of
/// copies of the point; differentiating entry i_r of copy r's gradient once more gives row
/// i_r of the Hessian, so a chunk of rows costs one double-backward pass.
Eigen::MatrixXd energy_hessian(const Target& target, const torch::Tensor& point) {
  const int64_t d = point.size(0);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(d, kHessianBatchElements / d));
  Eigen::MatrixXd hessian(d, d);
  for (int64_t begin = 0; begin < d; begin += chunk) {
    const int64_t rows = std::min(chunk, d - begin);
    const auto copies = point.detach().unsqueeze(0).expand({rows, d}).clone().requires_grad_(true);
    const auto gradient = torch::autograd::grad({-target.log_prob(copies).sum()}, {copies}, {},
                                                /*retain_graph=*/true, /*create_graph=*/true)[0];
    const auto index = torch::arange(begin, begin + rows, torch::kLong).unsqueeze(1);
    const auto selected = gradient.gather(1, index).sum();
    // A gradient without a graph is constant in x: those rows of the Hessian are zero.
    const auto block = selected.requires_grad()
                           ? torch::autograd::grad({selected}, {copies})[0].contiguous()
                           : torch::zeros({rows, d}, torch::kFloat64);
    hessian.middleRows(begin, rows) =
        Eigen::Map<const RowMajorMatrix>(block.data_ptr<double>(), rows, d);
  }
  return 0.5 * (hessian + hessian.transpose());
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
  const Eigen::MatrixXd hessian = energy_hessian(target, mode);
  if (!hessian.allFinite()) {
    throw Error(what + ": the Hessian of log π̃ is not finite" + reached +
                "; use precondition.kind: prior, pilot or config");
  }

  Affine map;
  Eigen::MatrixXd covariance;
  Eigen::VectorXd newton_step;
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(d, d);
  if (config.form == "cholesky") {
    const Eigen::LLT<Eigen::MatrixXd> llt(hessian);
    const std::string not_positive =
        what + ": the Hessian of −log π̃ is not positive definite" + reached +
        "; try precondition.form: diagonal, or precondition.kind: prior or config";
    if (llt.info() != Eigen::Success) throw Error(not_positive);
    covariance = llt.solve(identity);
    const Eigen::LLT<Eigen::MatrixXd> factor(0.5 * (covariance + covariance.transpose()));
    if (factor.info() != Eigen::Success) throw Error(not_positive);
    map.cholesky = factor.matrixL();
    newton_step = llt.solve(gradient);
  } else {
    // Only the variances diag(H⁻¹) are needed; H itself may be indefinite.
    const Eigen::PartialPivLU<Eigen::MatrixXd> lu(hessian);
    covariance = lu.solve(identity);
    if (!covariance.allFinite() || (covariance.diagonal().array() <= 0.0).any()) {
      throw Error(what +
                  ": the Hessian of −log π̃ is singular or its inverse has non-positive "
                  "variances" +
                  reached + "; use precondition.kind: prior or config");
    }
    map.diagonal = covariance.diagonal().array().sqrt();
    newton_step = lu.solve(gradient);
  }
  const double remaining =
      (newton_step.array().abs() / covariance.diagonal().array().sqrt()).maxCoeff();
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
      "gradient norm %.3g, %.2g sd from the mode by a Newton step\n",
      static_cast<long long>(evaluations), log_target, gradient.norm(), remaining);
  std::fflush(stdout);
  return map;
}

/// Owner of an HDF5 identifier.
class H5Handle {
 public:
  using Close = herr_t (*)(hid_t);
  H5Handle(hid_t id, Close close) : id_(id), close_(close) {}
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  Close close_;
};

/// The extent of a dataset of `rank` dimensions in an open file (an Error otherwise).
std::vector<hsize_t> dataset_extent(hid_t dataset, int rank, const std::string& what) {
  H5Handle space(H5Dget_space(dataset), H5Sclose);
  if (space.get() < 0 || H5Sget_simple_extent_ndims(space.get()) != rank) {
    throw Error(what + " is not a " + std::to_string(rank) + "-dimensional dataset");
  }
  std::vector<hsize_t> extent(rank);
  H5Sget_simple_extent_dims(space.get(), extent.data(), nullptr);
  return extent;
}

/// /samples [n, d] and /log_weights [n] of an rbsde output file, read on this process alone
/// with the default (serial) file access.
void read_pilot(const std::string& path, int64_t d, RowMajorMatrix& samples,
                Eigen::VectorXd& log_weights) {
  const std::string what = "precondition.pilot: '" + path + "'";
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(path, ignored)) {
    throw Error(what + ": no such file (give the output.path of an earlier rbsde run)");
  }
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures are reported as Errors below
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (file.get() < 0) throw Error(what + ": cannot be opened as an HDF5 file");
  H5Handle samples_set(H5Dopen2(file.get(), "samples", H5P_DEFAULT), H5Dclose);
  H5Handle weights_set(H5Dopen2(file.get(), "log_weights", H5P_DEFAULT), H5Dclose);
  if (samples_set.get() < 0 || weights_set.get() < 0) {
    throw Error(what + ": has no /samples or no /log_weights (is it an rbsde output file?)");
  }
  const std::vector<hsize_t> extent = dataset_extent(samples_set.get(), 2, what + ": /samples");
  if (static_cast<int64_t>(extent[1]) != d) {
    throw Error(what + ": /samples has " + std::to_string(extent[1]) +
                " columns but target.dim is " + std::to_string(d) +
                " (a pilot run of another target?)");
  }
  const int64_t n = static_cast<int64_t>(extent[0]);
  if (static_cast<int64_t>(dataset_extent(weights_set.get(), 1, what + ": /log_weights")[0]) != n) {
    throw Error(what + ": /log_weights and /samples have different lengths");
  }
  samples.resize(n, d);
  log_weights.resize(n);
  if (H5Dread(samples_set.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, samples.data()) <
          0 ||
      H5Dread(weights_set.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
              log_weights.data()) < 0) {
    throw Error(what + ": reading /samples or /log_weights failed");
  }
}

/// The self-normalised weighted mean and covariance (or variances) of a pilot run's samples.
Affine pilot_map(const PreconditionConfig& config, int64_t d) {
  RowMajorMatrix samples;
  Eigen::VectorXd log_weights;
  read_pilot(config.pilot, d, samples, log_weights);
  const std::string what = "precondition.pilot: '" + config.pilot + "'";
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
  if (config.form == "diagonal") {
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
  std::printf("precondition: pilot %s: %lld samples, ESS %.1f\n", config.pilot.c_str(),
              static_cast<long long>(samples.rows()), ess);
  std::fflush(stdout);
  return map;
}

Affine compute_map(const Target& target, const PreconditionConfig& config) {
  const int64_t d = target.dim();
  if (config.kind == "none") return identity_map(d);
  if (config.kind == "config") return configured_map(config, d);
  if (config.kind == "prior") return prior_map(target);
  if (config.kind == "laplace") return laplace_map(target, config);
  if (config.kind == "pilot") return pilot_map(config, d);
  throw Error("precondition.kind: unknown kind '" + config.kind +
              "' (accepted: none, config, prior, laplace, pilot)");
}

}  // namespace

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
  const auto centred = inner_->sample_exact(n, seed).to(torch::kFloat64) - centre_t_;
  return map_.is_diagonal() ? centred * inverse_t_ : torch::matmul(centred, inverse_t_);
}

Affine make_preconditioner(const Target& target, const PreconditionConfig& config,
                           const Communicator& comm) {
  const int64_t d = target.dim();
  Affine map;
  std::exception_ptr failure;
  if (comm.is_root()) {
    try {
      map = compute_map(target, config);
      check_map(map, d, "precondition.kind: " + config.kind);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  // Every rank learns whether rank 0 succeeded, so all throw alike and none waits below.
  double header[2] = {failure ? 1.0 : 0.0, map.is_diagonal() ? 1.0 : 0.0};
  comm.broadcast(header, 2);
  if (header[0] != 0.0) {
    if (failure) std::rethrow_exception(failure);
    throw Error("precondition.kind: " + config.kind + ": failed on rank 0 (see its message)");
  }
  if (!comm.is_root()) {
    map.centre.resize(d);
    if (header[1] != 0.0) {
      map.diagonal.resize(d);
    } else {
      map.cholesky.resize(d, d);
    }
  }
  comm.broadcast(map.centre.data(), d);
  if (map.is_diagonal()) {
    comm.broadcast(map.diagonal.data(), d);
  } else {
    comm.broadcast(map.cholesky.data(), d * d);
  }
  return map;
}

std::unique_ptr<Target> precondition(std::unique_ptr<Target> target,
                                     const PreconditionConfig& config, const Communicator& comm) {
  if (config.kind == "none") return target;
  Affine map = make_preconditioner(*target, config, comm);
  return std::make_unique<AffineTarget>(std::move(target), std::move(map));
}

}  // namespace rbsde
