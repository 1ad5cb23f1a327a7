#include "rbsde/bsde/variational.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <vector>

#include "rbsde/bsde/psis.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/error.hpp"

namespace rbsde {
namespace {

constexpr double kPi = 3.14159265358979323846;
/// Rows x d of a batch of draws evaluated at once (bounds memory at large d).
constexpr int64_t kBatchElements = int64_t{1} << 22;
/// The noise epochs of the quality draws and of the fit's iterations.
constexpr uint32_t kQualityEpoch = 0;
constexpr uint32_t kFitEpoch = 1;

torch::Tensor to_tensor(const Eigen::VectorXd& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone();
}

/// ε [rows, d] float64, rows first, first + 1, … of the variational stream at `step`.
torch::Tensor standard_normals(int64_t rows, int64_t d, uint64_t seed, uint32_t epoch,
                               int64_t first, uint32_t step) {
  auto eps = torch::empty({rows, d}, torch::kFloat64);
  fill_normal(eps.data_ptr<double>(), rows, d, NoiseKey{seed, NoiseStream::kVariational, epoch},
              first, step);
  return eps;
}

/// m + L ε for ε [rows, d]: L given by its diagonal [d] or as Lᵀ [d, d].
torch::Tensor transform(const torch::Tensor& eps, const torch::Tensor& centre,
                        const torch::Tensor& scale, bool diagonal) {
  return centre + (diagonal ? eps * scale : eps.mm(scale));
}

}  // namespace

ReferenceQuality reference_quality(const Target& target, const Affine& map, int64_t draws,
                                   uint64_t seed) {
  torch::NoGradGuard no_grad;
  const int64_t d = target.dim();
  const auto centre = to_tensor(map.centre);
  const auto scale = map.is_diagonal() ? to_tensor(map.diagonal)
                                       : to_tensor(Eigen::VectorXd::Map(map.cholesky.data(), d * d))
                                             .view({d, d});  // column-major L read row-major: Lᵀ
  const double log_normaliser = map.log_det() + 0.5 * static_cast<double>(d) * std::log(2.0 * kPi);
  auto log_weights = torch::empty({draws}, torch::kFloat64);
  const int64_t chunk = std::max<int64_t>(1, kBatchElements / d);
  for (int64_t begin = 0; begin < draws; begin += chunk) {
    const int64_t rows = std::min(chunk, draws - begin);
    const auto eps = standard_normals(rows, d, seed, kQualityEpoch, begin, 0);
    const auto x = transform(eps, centre, scale, map.is_diagonal());
    const auto log_q = -0.5 * eps.pow(2).sum(1) - log_normaliser;
    log_weights.slice(0, begin, begin + rows).copy_(target.log_prob(x).to(torch::kFloat64) - log_q);
  }
  // NaN (a module's failure) counts as a zero weight, like −∞ (outside the support).
  log_weights = torch::where(
      torch::isnan(log_weights),
      torch::full_like(log_weights, -std::numeric_limits<double>::infinity()), log_weights);
  const auto finite = torch::isfinite(log_weights);
  ReferenceQuality quality;
  quality.draws = draws;
  quality.finite = finite.sum().item<int64_t>();
  const auto finite_weights = log_weights.masked_select(finite);
  if (quality.finite < draws) {
    quality.elbo = -std::numeric_limits<double>::infinity();
  } else {
    quality.elbo = log_weights.mean().item<double>();
  }
  quality.elbo_stderr = quality.finite > 1 ? finite_weights.std().item<double>() /
                                                 std::sqrt(static_cast<double>(quality.finite))
                                           : std::numeric_limits<double>::quiet_NaN();
  if (quality.finite == 0) {
    quality.pareto_k = std::numeric_limits<double>::quiet_NaN();
    return quality;
  }
  const auto w = (finite_weights - finite_weights.max()).exp();
  quality.ess = (w.sum().pow(2) / w.pow(2).sum()).item<double>();
  const auto sorted = std::get<0>(log_weights.sort(/*dim=*/0, /*descending=*/true));
  const int64_t tail = std::min(draws, pareto_tail_length(draws) + 1);
  const std::vector<double> largest(sorted.data_ptr<double>(), sorted.data_ptr<double>() + tail);
  quality.pareto_k = fit_pareto_tail(largest, draws).k;
  return quality;
}

Affine variational_map(const Target& target, const Affine& start, int64_t iterations, uint64_t seed,
                       const std::string& what) {
  torch::AutoGradMode enable_grad(true);
  const int64_t d = target.dim();
  const bool diagonal = start.is_diagonal();
  // The fit runs in the start's whitened coordinates, x = m₀ + L₀ z with z = μ + S ε, μ = 0
  // and S = I at first, so that a step of the optimiser is a step on the start's scale
  // (a posterior with sds of 10⁻³ is as well fitted as one with sds of 10³).
  // S = diag(e^s) (+ its strictly lower part): the log keeps the diagonal positive, and the
  // entropy term log |det S| = Σ s is linear in s (log |det L₀| is a constant).
  const auto start_centre = to_tensor(start.centre);
  const auto start_scale = diagonal ? to_tensor(start.diagonal)
                                    : to_tensor(Eigen::VectorXd::Map(start.cholesky.data(), d * d))
                                          .view({d, d});  // column-major L₀ read row-major: L₀ᵀ
  auto shift = torch::zeros({d}, torch::kFloat64).requires_grad_(true);
  auto log_diagonal = torch::zeros({d}, torch::kFloat64).requires_grad_(true);
  torch::Tensor lower;  // the strictly upper part of Sᵀ [d, d]
  std::vector<torch::Tensor> parameters = {shift, log_diagonal};
  if (!diagonal) {
    lower = torch::zeros({d, d}, torch::kFloat64).requires_grad_(true);
    parameters.push_back(lower);
  }
  const auto scale = [&] {  // the diagonal of S [d], or Sᵀ [d, d]
    const auto root = log_diagonal.exp();
    return diagonal ? root : lower.triu(1) + torch::diag(root);
  };
  const auto to_target = [&](const torch::Tensor& eps) {
    return transform(transform(eps, shift, scale(), diagonal), start_centre, start_scale, diagonal);
  };

  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(kVariationalLearningRate));
  // H(q) = log |det L₀| + log |det S| + ½ d log 2πe.
  const double entropy_constant =
      start.log_det() + 0.5 * static_cast<double>(d) * std::log(2.0 * kPi * std::exp(1.0));
  const int64_t every = std::max<int64_t>(1, iterations / 10);
  double elbo_sum = 0.0;  // of the iterations since the last progress line
  int64_t elbo_count = 0, skipped = 0, outside = 0, evaluations = 0;
  for (int64_t t = 0; t < iterations; ++t) {
    const double progress = iterations > 1 ? static_cast<double>(t) / (iterations - 1) : 1.0;
    const double lr =
        kVariationalLearningRate * (0.01 + 0.99 * 0.5 * (1.0 + std::cos(kPi * progress)));
    static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[0].options()).lr(lr);
    auto eps = standard_normals(kVariationalDraws, d, seed, kFitEpoch, 0, static_cast<uint32_t>(t));
    auto log_target = target.log_prob(to_target(eps)).to(torch::kFloat64);
    evaluations += kVariationalDraws;
    const auto finite = torch::isfinite(log_target);
    const int64_t n = finite.sum().item<int64_t>();
    if (n == 0) {
      throw Error(what + ": log π̃ is not finite on any of the " +
                  std::to_string(kVariationalDraws) + " draws of iteration " +
                  std::to_string(t + 1) +
                  " of the variational fit; give a start where it is finite (precondition.kind: "
                  "config) or check the target's support");
    }
    if (n < kVariationalDraws) {
      // Draws outside the support carry no gradient: the step uses the others, evaluated
      // again so that no non-finite value enters the backward pass.
      outside += kVariationalDraws - n;
      eps = eps.index({finite.detach()});
      log_target = target.log_prob(to_target(eps)).to(torch::kFloat64);
      evaluations += n;
    }
    const auto objective = -(log_target.mean() + log_diagonal.sum());
    optimizer.zero_grad();
    objective.backward();
    bool finite_gradient = true;
    for (const auto& p : parameters)
      finite_gradient = finite_gradient && torch::isfinite(p.grad()).all().item<bool>();
    if (finite_gradient) {
      optimizer.step();
    } else {
      ++skipped;
    }
    elbo_sum += -objective.item<double>() + entropy_constant;
    ++elbo_count;
    if ((t + 1) % every == 0 || t + 1 == iterations) {
      std::printf(
          "precondition: variational %6lld/%lld  ELBO %.6g (mean of the last %lld iterations)\n",
          static_cast<long long>(t + 1), static_cast<long long>(iterations),
          elbo_sum / static_cast<double>(elbo_count), static_cast<long long>(elbo_count));
      std::fflush(stdout);
      elbo_sum = 0.0;
      elbo_count = 0;
    }
  }
  // m = m₀ + L₀ μ and L = L₀ S (lower triangular, or diagonal, like L₀ and S).
  Affine map;
  const auto mu = shift.detach().contiguous();
  const Eigen::Map<const Eigen::VectorXd> mu_e(mu.data_ptr<double>(), d);
  const auto root = scale().detach().contiguous();
  if (diagonal) {
    const Eigen::Map<const Eigen::VectorXd> s_e(root.data_ptr<double>(), d);
    map.centre = start.centre + start.diagonal.cwiseProduct(mu_e);
    map.diagonal = start.diagonal.cwiseProduct(s_e);
  } else {
    // root is Sᵀ row-major, i.e. S column-major.
    const Eigen::Map<const Eigen::MatrixXd> s_e(root.data_ptr<double>(), d, d);
    map.centre = start.centre + start.cholesky * mu_e;
    map.cholesky = start.cholesky.triangularView<Eigen::Lower>() * s_e;
  }
  if (!map.centre.allFinite() || !map.diagonal.allFinite() || !map.cholesky.allFinite()) {
    throw Error(what + ": the variational fit ended with non-finite parameters");
  }
  std::printf(
      "precondition: variational: %lld iterations x %lld draws (%lld evaluations of log pi and "
      "its gradient; %lld draws outside the support, %lld steps skipped for a non-finite "
      "gradient), L %s\n",
      static_cast<long long>(iterations), static_cast<long long>(kVariationalDraws),
      static_cast<long long>(evaluations), static_cast<long long>(outside),
      static_cast<long long>(skipped), diagonal ? "diagonal" : "lower triangular");
  std::fflush(stdout);
  return map;
}

}  // namespace rbsde
