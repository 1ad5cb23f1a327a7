#include "rbsde/core/target.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/config.hpp"
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

/// A CSV file as text: the header's column names and the data rows, each row as long as the
/// header. Errors name the configuration key the path came from, the file and the line.
struct CsvTable {
  std::string key;  // the configuration key that named the file
  std::string path;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // the file line (from 1) of each row

  /// The index of the column of that name, or -1.
  int64_t column(const std::string& name) const {
    const auto it = std::find(columns.begin(), columns.end(), name);
    return it == columns.end() ? -1 : static_cast<int64_t>(it - columns.begin());
  }

  /// "KEY: 'PATH' line L (row R), column 'C'": where a bad cell is.
  std::string where(size_t row, size_t col) const {
    return key + ": '" + path + "' line " + std::to_string(lines[row]) + " (row " +
           std::to_string(row + 1) + "), column '" + columns[col] + "'";
  }

  /// The cell as a finite number; quoted numbers ("1.5") are accepted.
  double number(size_t row, size_t col) const {
    const std::string& text = rows[row][col];
    double value = 0.0;
    const char* last = text.data() + text.size();
    const auto result = std::from_chars(text.data(), last, value);
    if (text.empty() || result.ec != std::errc() || result.ptr != last || !std::isfinite(value)) {
      throw Error(where(row, col) + ": expected a finite number, got '" + text + "'");
    }
    return value;
  }
};

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

/// Splits one line at the commas outside double quotes. A quoted field loses its quotes ("" in
/// it is one quote); space around a field is dropped.
std::vector<std::string> split_csv_line(const std::string& line, const std::string& origin) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(trim(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) throw Error(origin + ": a quoted field is not closed");
  fields.push_back(trim(field));
  return fields;
}

/// Reads a CSV file with a header line; blank lines are skipped.
CsvTable read_csv(const std::string& path, const std::string& key) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    throw Error(key + ": cannot read '" + path + "': it is a directory");
  }
  std::ifstream file(path);
  if (!file) {
    throw Error(key + ": cannot read '" + path + "': " + std::generic_category().message(errno));
  }
  CsvTable table;
  table.key = key;
  table.path = path;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    const std::string origin = key + ": '" + path + "' line " + std::to_string(line_number);
    std::vector<std::string> fields = split_csv_line(line, origin);
    if (table.columns.empty()) {
      table.columns = std::move(fields);
      continue;
    }
    if (fields.size() != table.columns.size()) {
      throw Error(origin + ": " + std::to_string(fields.size()) + " fields, but the header has " +
                  std::to_string(table.columns.size()));
    }
    table.rows.push_back(std::move(fields));
    table.lines.push_back(line_number);
  }
  if (file.bad()) {
    throw Error(key + ": cannot read '" + path + "': " + std::generic_category().message(errno));
  }
  if (table.rows.empty()) {
    throw Error(key + ": '" + path + "' has no data rows (expected a header line, then rows)");
  }
  return table;
}

/// A dimension a data file implies against the one configured (0: not configured).
void check_implied_dim(int64_t configured, int64_t implied, const std::string& reason) {
  if (configured != 0 && configured != implied) {
    throw Error("target.dim: " + reason + ", so d = " + std::to_string(implied) + "; got " +
                std::to_string(configured) + " (leave target.dim out to take it from the data)");
  }
}

// LGCP constants (targets.md): the prior's variance σ² and the length-scale parameter β.
constexpr double kLgcpVariance = 1.91;
constexpr double kLgcpBeta = 1.0 / 33.0;

/// The TorchScript failure message without the C++ backtrace c10::Error may carry.
std::string torch_message(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return trim(error->what_without_backtrace());
  }
  return trim(e.what());
}

}  // namespace

double Affine::log_det() const {
  return is_diagonal() ? diagonal.array().abs().log().sum()
                       : cholesky.diagonal().array().abs().log().sum();
}

torch::Tensor Target::sample_exact(int64_t /*n*/, uint64_t /*seed*/) const {
  throw Error("target '" + name() + "' has no exact sampler");
}

std::pair<torch::Tensor, torch::Tensor> log_prob_and_gradient(const Target& target,
                                                              const torch::Tensor& x,
                                                              NanGradient nan_gradient) {
  torch::AutoGradMode enable(true);
  const auto input = x.detach().requires_grad_(true);
  const auto log_prob = target.log_prob(input);
  const auto gradient = torch::autograd::grad({log_prob.sum()}, {input})[0];
  // A NaN gradient where log π̃ is finite is a defect of the target (a sqrt, log or division
  // whose value is masked but not its derivative): it would silently stall HMC and poison the
  // score feature.
  if (nan_gradient == NanGradient::kKeep) return {log_prob.detach(), gradient.detach()};
  const auto broken = torch::isfinite(log_prob) & torch::isnan(gradient).any(1);
  if (const int64_t count = broken.sum().item<int64_t>(); count > 0) {
    // The point in the target's own coordinates where the target runs preconditioned.
    auto at = x.index({broken.nonzero()[0][0]}).to(torch::kFloat64);
    if (const AffineTarget* affine = target.preconditioned()) {
      at = affine->to_target_space(at.unsqueeze(0)).squeeze(0);
    }
    std::string where;
    for (int64_t j = 0; j < std::min<int64_t>(at.size(0), 4); ++j) {
      where += (j ? ", " : "") + std::to_string(at[j].item<double>());
    }
    throw Error("the gradient of log π̃ of target '" + target.name() + "' is NaN at " +
                std::to_string(count) + " of " + std::to_string(x.size(0)) +
                " points where log π̃ is finite (the first: x = [" + where +
                (at.size(0) > 4 ? ", ..." : "") +
                "]): HMC refinement and network.score need it; check the target's derivative "
                "there (a sqrt, log or division whose value is masked but not its gradient)");
  }
  return {log_prob.detach(), gradient.detach()};
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
         std::vector<Eigen::MatrixXd> covariances, std::string name)
    : name_(std::move(name)),
      weights_(std::move(weights)),
      means_(std::move(means)),
      covariances_(std::move(covariances)) {
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

Gmm make_gmm40(const std::string& means_csv) {
  const CsvTable table = read_csv(means_csv, "target.data");
  const size_t d = table.columns.size();
  std::vector<Eigen::VectorXd> means;
  for (size_t row = 0; row < table.rows.size(); ++row) {
    Eigen::VectorXd mean(d);
    for (size_t j = 0; j < d; ++j) mean(j) = table.number(row, j);
    means.push_back(std::move(mean));
  }
  const double softplus_one = std::log1p(std::exp(1.0));  // 1.3133
  const Eigen::MatrixXd covariance = softplus_one * softplus_one * Eigen::MatrixXd::Identity(d, d);
  std::vector<double> weights(means.size(), 1.0);
  std::vector<Eigen::MatrixXd> covariances(means.size(), covariance);
  return Gmm(std::move(weights), std::move(means), std::move(covariances), "gmm40");
}

// ---------------------------------------------------------------------------------------------
// LogisticRegression

LogisticRegression::LogisticRegression(std::string name, const std::string& data,
                                       const std::string& label, int64_t dim)
    : name_(std::move(name)) {
  const CsvTable table = read_csv(data, "target.data");
  const int64_t label_column = table.column(label);
  if (label_column < 0) {
    std::string columns;
    for (const std::string& column : table.columns) {
      columns += (columns.empty() ? "" : ", ") + column;
    }
    throw Error("target.label: '" + data + "' has no column '" + label + "' (columns: " + columns +
                ")");
  }
  const int64_t features = static_cast<int64_t>(table.columns.size()) - 1;
  if (features == 0) {
    throw Error("target.data: '" + data + "' has no feature columns besides the label '" + label +
                "'");
  }
  check_implied_dim(dim, features + 1,
                    "'" + data + "' has " + std::to_string(features) +
                        " feature columns besides the label '" + label + "', plus the intercept");

  const int64_t n = static_cast<int64_t>(table.rows.size());
  Eigen::MatrixXd design(n, features + 1);
  Eigen::VectorXd labels(n);
  design.col(0).setOnes();
  for (int64_t i = 0; i < n; ++i) {
    int64_t j = 1;
    for (int64_t c = 0; c <= features; ++c) {
      if (c == label_column) {
        labels(i) = table.number(i, c);
        if (labels(i) != 0.0 && labels(i) != 1.0) {
          throw Error(table.where(i, c) + " (target.label): a label must be 0 or 1, got '" +
                      table.rows[i][c] + "'");
        }
      } else {
        design(i, j++) = table.number(i, c);
      }
    }
  }
  // Standardise each feature with its population standard deviation. A constant column has
  // standard deviation 0 and stays 0 after centring (divided by 1); testing constancy rather
  // than sd == 0 keeps the rounding of its mean from turning it into noise.
  for (int64_t j = 1; j <= features; ++j) {
    auto column = design.col(j);
    const double mean = column.mean();
    if ((column.array() == column(0)).all()) {
      column.setZero();
      continue;
    }
    const double sd = std::sqrt((column.array() - mean).square().mean());
    column = (column.array() - mean) / sd;
  }
  design_ = to_tensor(design);
  labels_ = to_tensor(labels);
}

torch::Tensor LogisticRegression::log_prob(const torch::Tensor& w) const {
  check_batch(w, dim(), name_);
  const auto design = design_.to(w.device(), w.scalar_type());
  const auto labels = labels_.to(w.device(), w.scalar_type());
  const auto logits = torch::matmul(w, design.t());  // [M, n]: x_iᵀ w
  // y log σ(z) + (1 - y) log(1 - σ(z)) = y z - softplus(z). torch's softplus is log1p(e^z) up
  // to the threshold and z above it: at 40 the difference log1p(e^-40) ≈ 4e-18 is far below
  // the rounding of z (7e-15), e^40 is finite in float32, and the backward is σ(z) everywhere
  // (also at z = 0, where a hand-written max(z, 0) + log1p(e^-|z|) would give 1).
  const auto log_likelihood =
      (labels * logits - torch::softplus(logits, /*beta=*/1.0, /*threshold=*/40.0)).sum(1);
  const double d = static_cast<double>(dim());
  return log_likelihood - 0.5 * w.square().sum(1) - 0.5 * d * kLog2Pi;
}

std::optional<Affine> LogisticRegression::prior() const {
  Affine prior;
  prior.centre = Eigen::VectorXd::Zero(dim());
  prior.diagonal = Eigen::VectorXd::Ones(dim());
  return prior;
}

// ---------------------------------------------------------------------------------------------
// Lgcp

Lgcp::Lgcp(const std::string& data, int64_t grid, bool whitened)
    : grid_(grid), whitened_(whitened) {
  if (grid_ < 1) throw Error("target.grid: lgcp needs a grid >= 1, got " + std::to_string(grid_));
  const CsvTable table = read_csv(data, "target.data");
  const int64_t x_column = table.column("data_x");
  const int64_t y_column = table.column("data_y");
  if (x_column < 0 || y_column < 0) {
    throw Error("target.data: '" + data + "' needs columns data_x and data_y (lgcp)");
  }
  // Bin index floor(G·coordinate); a point on the upper edge goes to the last bin. Cells are
  // row-major over (row = x bin, column = y bin).
  const int64_t d = dim();
  counts_ = Eigen::VectorXd::Zero(d);
  points_ = static_cast<int64_t>(table.rows.size());
  for (size_t i = 0; i < table.rows.size(); ++i) {
    int64_t bins[2];
    const int64_t columns[2] = {x_column, y_column};
    for (int k = 0; k < 2; ++k) {
      const double coordinate = table.number(i, columns[k]);
      if (coordinate < 0.0 || coordinate > 1.0) {
        throw Error(table.where(i, columns[k]) + ": lgcp coordinates must lie in [0, 1], got " +
                    table.rows[i][columns[k]]);
      }
      bins[k] = std::min(grid_ - 1, static_cast<int64_t>(std::floor(grid_ * coordinate)));
    }
    counts_(bins[0] * grid_ + bins[1]) += 1.0;
  }
  mu0_ = std::log(static_cast<double>(points_)) - 0.5 * kLgcpVariance;
  cell_area_ = 1.0 / static_cast<double>(d);

  // K_ij = σ² exp(-|c_i - c_j| / (G β)) over the integer cell coordinates c_i.
  Eigen::MatrixXd covariance(d, d);
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const double distance = std::hypot(static_cast<double>(i / grid_ - j / grid_),
                                         static_cast<double>(i % grid_ - j % grid_));
      covariance(i, j) = kLgcpVariance * std::exp(-distance / (grid_ * kLgcpBeta));
    }
  }
  const Eigen::LLT<Eigen::MatrixXd> llt(covariance);
  if (llt.info() != Eigen::Success) {
    throw Error("target.grid: the lgcp prior covariance on a " + std::to_string(grid_) + " x " +
                std::to_string(grid_) + " grid is not positive definite (Cholesky failed)");
  }
  cholesky_ = llt.matrixL();
  log_det_cholesky_ = cholesky_.diagonal().array().log().sum();
  counts_t_ = to_tensor(counts_);
  cholesky_t_ = to_tensor(cholesky_);
}

torch::Tensor Lgcp::log_prob(const torch::Tensor& x) const {
  check_batch(x, dim(), name());
  const auto cholesky = cholesky_t_.to(x.device(), x.scalar_type());
  const auto counts = counts_t_.to(x.device(), x.scalar_type());
  const double d = static_cast<double>(dim());
  torch::Tensor field;      // the latent field x
  torch::Tensor log_prior;  // log N(x; μ₀ 1, K), or log N(u; 0, I) when whitened
  if (whitened_) {
    field = mu0_ + torch::matmul(x, cholesky.t());  // row form of μ₀ + L u
    log_prior = -0.5 * x.square().sum(1) - 0.5 * d * kLog2Pi;
  } else {
    field = x;
    // Rows r = x - μ₀ become r L⁻ᵀ = (L⁻¹ rᵀ)ᵀ, N(0, I) under the prior: solve X Lᵀ = r.
    const auto standard = torch::linalg_solve_triangular(cholesky.t(), x - mu0_, /*upper=*/true,
                                                         /*left=*/false);
    log_prior = -0.5 * standard.square().sum(1) - log_det_cholesky_ - 0.5 * d * kLog2Pi;
  }
  return log_prior + (field * counts - cell_area_ * torch::exp(field)).sum(1);
}

std::optional<Affine> Lgcp::prior() const {
  Affine prior;
  if (whitened_) {
    prior.centre = Eigen::VectorXd::Zero(dim());
    prior.diagonal = Eigen::VectorXd::Ones(dim());
  } else {
    prior.centre = Eigen::VectorXd::Constant(dim(), mu0_);
    prior.cholesky = cholesky_;
  }
  return prior;
}

// ---------------------------------------------------------------------------------------------
// TorchScriptTarget

TorchScriptTarget::TorchScriptTarget(const std::string& module, const std::string& method,
                                     int64_t dim)
    : path_(module), method_(method), dim_(dim) {
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(path_, ignored)) {
    throw Error("target.module: no such file '" + path_ + "'");
  }
  try {
    module_ = torch::jit::load(path_);
  } catch (const std::exception& e) {
    throw Error("target.module: '" + path_ +
                "' is not a TorchScript archive (torch::jit::load: " + torch_message(e) + ")");
  }
  module_.eval();
  // The module's own statement of d: an integer attribute dim.
  if (module_.hasattr("dim") && module_.attr("dim").isInt()) {
    const int64_t stated = module_.attr("dim").toInt();
    if (stated < 1) {
      throw Error("target.module: '" + path_ + "' has dim = " + std::to_string(stated) +
                  " (its attribute dim): expected d >= 1");
    }
    if (dim_ != 0 && dim_ != stated) {
      throw Error("target.dim: the module '" + path_ + "' states d = " + std::to_string(stated) +
                  " (its attribute dim), the configuration target.dim = " + std::to_string(dim_) +
                  "; leave target.dim out to take it from the module, or load the right module");
    }
    dim_ = stated;
  } else if (dim_ == 0) {
    throw Error("target.dim: missing, and the module '" + path_ +
                "' does not state its dimension (no integer attribute dim): give target.dim, or "
                "set self.dim = d in the module's __init__ before torch.jit.script");
  }
  // Only ∇ₓ is ever wanted: no gradient should accumulate in the module's own parameters.
  for (auto parameter : module_.parameters()) parameter.requires_grad_(false);
  if (method_.empty()) method_ = module_.find_method("log_prob") ? "log_prob" : "forward";
  if (!module_.find_method(method_)) {
    std::string methods;
    for (const auto& m : module_.get_methods()) methods += (methods.empty() ? "" : ", ") + m.name();
    throw Error("target.module: '" + path_ + "' has no method '" + method_ +
                "' (target.method; its methods: " + (methods.empty() ? "none" : methods) + ")");
  }
  // Probe batches: an unsuitable module fails here, with its file named, not during training.
  // A module written for one precision (float32 parameters, say) may reject the other.
  const auto accepts = [&](torch::ScalarType dtype, std::string& failure) {
    try {
      for (const double value : {0.0, 1.0}) call(torch::full({3, dim_}, value, dtype));
      return true;
    } catch (const Error& e) {
      failure = e.what();
      return false;
    }
  };
  std::string float64_failure, float32_failure;
  accepts_float64_ = accepts(torch::kFloat64, float64_failure);
  accepts_float32_ = accepts(torch::kFloat32, float32_failure);
  if (!accepts_float64_ && !accepts_float32_) {
    // What follows "(x) on x of shape [..] floatNN" in each message.
    const auto detail = [](const std::string& message) {
      return message.substr(message.find(" float", message.find("(x) on x of shape")) + 8);
    };
    const std::string in_float64 = detail(float64_failure);
    throw Error(float32_failure + (in_float64 == detail(float32_failure)
                                       ? " (and alike with float64 x)"
                                       : "; with float64 x it" + in_float64));
  }
  if (module_.hasattr("names")) {
    const c10::IValue names = module_.attr("names");
    const bool strings = names.isList() && [&] {
      for (const c10::IValue& name : names.toListRef()) {
        if (!name.isString()) return false;
      }
      return true;
    }();
    if (!strings) {
      throw Error("target.module: '" + path_ + "': its attribute `names` is a " +
                  std::string(names.tagKind()) + ", expected a list of parameter names (strings)");
    }
    for (const c10::IValue& name : names.toListRef()) names_.push_back(name.toStringRef());
  }
  has_constrain_ = module_.find_method("constrain").has_value();
  if (has_constrain_) {
    constrained_dim_ = constrain(torch::zeros({3, dim_}, torch::kFloat64)).size(1);
    if (!names_.empty() && static_cast<int64_t>(names_.size()) != constrained_dim_) {
      throw Error("target.module: '" + path_ + "': constrain(x) returns " +
                  std::to_string(constrained_dim_) + " parameters but `names` has " +
                  std::to_string(names_.size()));
    }
  } else if (!names_.empty() && static_cast<int64_t>(names_.size()) != dim_) {
    throw Error("target.module: '" + path_ + "': `names` has " + std::to_string(names_.size()) +
                " entries but target.dim is " + std::to_string(dim_) +
                " (without a constrain method the names are those of x)");
  }
}

torch::Tensor TorchScriptTarget::constrain(const torch::Tensor& x) const {
  const std::string origin =
      "target.module: '" + path_ + "': constrain(x) on x of shape " + shape_string(x);
  if (!has_constrain_) throw Error("target.module: '" + path_ + "' has no method constrain");
  c10::IValue result;
  try {
    torch::NoGradGuard no_grad;
    const auto input = accepts_float64_ ? x.to(torch::kFloat64) : x.to(torch::kFloat32);
    result = module_.get_method("constrain")({input});
  } catch (const std::exception& e) {
    throw Error(origin + " failed: " + torch_message(e));
  }
  if (!result.isTensor() || result.toTensor().dim() != 2 ||
      result.toTensor().size(0) != x.size(0) || !result.toTensor().is_floating_point() ||
      (constrained_dim_ > 0 && result.toTensor().size(1) != constrained_dim_)) {
    throw Error(origin + " returned " +
                (result.isTensor() ? "a tensor of shape " + shape_string(result.toTensor())
                                   : "a " + std::string(result.tagKind())) +
                ", expected a floating-point tensor [" + std::to_string(x.size(0)) + ", p]" +
                (constrained_dim_ > 0 ? " with p = " + std::to_string(constrained_dim_) : ""));
  }
  return result.toTensor().to(torch::kFloat64);
}

std::string TorchScriptTarget::precisions() const {
  if (accepts_float64_ && accepts_float32_) return "float64 and float32";
  return accepts_float64_ ? "float64 only" : "float32 only";
}

torch::Tensor TorchScriptTarget::call(const torch::Tensor& x) const {
  const std::string origin = "target.module: '" + path_ + "': " + method_ + "(x) on x of shape " +
                             shape_string(x) +
                             (x.scalar_type() == torch::kFloat64 ? " float64" : " float32");
  c10::IValue result;
  try {
    result = module_.get_method(method_)({x});
  } catch (const std::exception& e) {
    throw Error(origin + " failed: " + torch_message(e));
  }
  if (!result.isTensor()) {
    throw Error(origin + " returned a " + result.tagKind() + ", expected a tensor of shape [" +
                std::to_string(x.size(0)) + "]");
  }
  torch::Tensor log_prob = result.toTensor();
  if (log_prob.dim() != 1 || log_prob.size(0) != x.size(0)) {
    throw Error(origin + " returned shape " + shape_string(log_prob) + ", expected [" +
                std::to_string(x.size(0)) + "] (one value per row)");
  }
  if (!log_prob.is_floating_point() ||
      c10::elementSize(log_prob.scalar_type()) < c10::elementSize(x.scalar_type())) {
    throw Error(origin + " returned dtype " + std::string(c10::toString(log_prob.scalar_type())) +
                ", expected a floating-point tensor of x's precision (" +
                std::string(c10::toString(x.scalar_type())) +
                ") or finer: the importance weights are differences of log π̃ values and need "
                "all their digits");
  }
  return log_prob;
}

torch::Tensor TorchScriptTarget::log_prob(const torch::Tensor& x) const {
  check_batch(x, dim_, name());
  const bool float64 = x.scalar_type() == torch::kFloat64 ? accepts_float64_ : !accepts_float32_;
  return call(x.to(float64 ? torch::kFloat64 : torch::kFloat32)).to(x.scalar_type());
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
  if (config.name == "gmm40") {
    Gmm target = make_gmm40(config.data);
    check_implied_dim(
        d, target.dim(),
        "the means in '" + config.data + "' have " + std::to_string(target.dim()) + " coordinates");
    return std::make_unique<Gmm>(std::move(target));
  }
  if (config.name == "logreg" || config.name == "logreg_ionosphere" ||
      config.name == "logreg_sonar") {
    return std::make_unique<LogisticRegression>(config.name, config.data, config.label, d);
  }
  if (config.name == "lgcp") {
    auto target = std::make_unique<Lgcp>(config.data, config.grid, config.whitened);
    check_implied_dim(d, target->dim(),
                      "lgcp on a " + std::to_string(config.grid) + " x " +
                          std::to_string(config.grid) + " grid (target.grid)");
    return target;
  }
  if (config.name == "torchscript") {
    return std::make_unique<TorchScriptTarget>(config.module, config.method, d);
  }
  if (config.name == "funnel") {
    return std::make_unique<Funnel>(d);
  }
  if (config.name == "many_well") {
    return std::make_unique<ManyWell>(d);
  }
  // The parameters were checked when the configuration was read (io/config_file.cpp) and the
  // constructors check that they agree with each other; here only that they have d coordinates.
  std::unique_ptr<Target> target;
  if (config.name == "gaussian") {
    const Eigen::VectorXd mean = config.mean.size() == 0 ? Eigen::VectorXd::Zero(d) : config.mean;
    target = config.covariance.size() > 0
                 ? std::make_unique<Gaussian>(mean, config.covariance)
                 : Gaussian::diagonal(mean, config.covariance_diagonal.size() == 0
                                                ? Eigen::VectorXd::Ones(d)
                                                : config.covariance_diagonal);
  } else if (config.name == "gmm") {
    const size_t components = config.means.size();
    std::vector<double> weights = config.weights;
    if (weights.empty()) weights.assign(components, 1.0);
    // A single covariance entry is shared by every component (config.hpp).
    std::vector<Eigen::MatrixXd> covariances = config.covariances;
    if (covariances.empty()) covariances.assign(components, Eigen::MatrixXd::Identity(d, d));
    if (covariances.size() == 1) covariances.assign(components, Eigen::MatrixXd(covariances[0]));
    target = std::make_unique<Gmm>(std::move(weights), config.means, std::move(covariances));
  } else {
    throw Error("target.name: unknown target '" + config.name +
                "'; accepted: gaussian, gmm, funnel, many_well, gmm40, logreg, "
                "logreg_ionosphere, logreg_sonar, lgcp, torchscript");
  }
  if (target->dim() != d) {
    throw Error("target.dim: the " + config.name + " parameters have " +
                std::to_string(target->dim()) + " coordinates, target.dim is " + std::to_string(d));
  }
  return target;
}

}  // namespace rbsde
