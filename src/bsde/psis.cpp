#include "rbsde/bsde/psis.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "rbsde/error.hpp"

namespace rbsde {

int64_t pareto_tail_length(int64_t count) {
  const double m = static_cast<double>(count);
  return static_cast<int64_t>(std::ceil(std::min(0.2 * m, 3.0 * std::sqrt(m))));
}

std::string pareto_k_text(double k, int64_t count, int64_t finite) {
  char text[160];
  const int64_t tail = pareto_tail_length(count);
  if (std::isfinite(k)) {
    std::snprintf(text, sizeof text, "%.2f", k);
  } else if (k == -std::numeric_limits<double>::infinity()) {
    std::snprintf(text, sizeof text, "n/a (the largest weights are equal: no tail to fit)");
  } else if (tail < 5) {
    std::snprintf(text, sizeof text, "n/a (PSIS needs at least 21 paths, here %lld)",
                  static_cast<long long>(count));
  } else if (finite < tail + 1) {
    std::snprintf(text, sizeof text,
                  "n/a (%lld of %lld log weights are finite; the tail fit needs %lld)",
                  static_cast<long long>(finite), static_cast<long long>(count),
                  static_cast<long long>(tail + 1));
  } else {
    std::snprintf(text, sizeof text,
                  "n/a (the tail of the largest %lld weights could not be fitted)",
                  static_cast<long long>(tail));
  }
  return text;
}

double pareto_k_threshold(int64_t count) {
  return std::min(0.7, 1.0 - 1.0 / std::log10(static_cast<double>(std::max<int64_t>(count, 2))));
}

ParetoFit fit_generalized_pareto(const std::vector<double>& x) {
  const auto n = static_cast<int64_t>(x.size());
  if (n < 5) throw Error("fit_generalized_pareto: needs at least 5 exceedances");
  // Candidates b_j for θ = −k/σ from the prior, weighted by their profile likelihood.
  const int64_t candidates = 30 + static_cast<int64_t>(std::sqrt(static_cast<double>(n)));
  const double quartile = x[static_cast<size_t>(static_cast<double>(n) / 4.0 + 0.5) - 1];
  std::vector<double> b(candidates), log_likelihood(candidates);
  for (int64_t j = 0; j < candidates; ++j) {
    b[j] = 1.0 / x.back() +
           (1.0 - std::sqrt(static_cast<double>(candidates) / (static_cast<double>(j) + 0.5))) /
               (3.0 * quartile);
    double k = 0.0;
    for (const double xi : x) k += std::log1p(-b[j] * xi);
    k /= static_cast<double>(n);
    log_likelihood[j] = static_cast<double>(n) * (std::log(-b[j] / k) - k - 1.0);
  }
  // Posterior mean of θ: weight_j = 1 / Σ_i exp(ℓ_i − ℓ_j); negligible weights dropped.
  double b_mean = 0.0, total = 0.0;
  for (int64_t j = 0; j < candidates; ++j) {
    double sum = 0.0;
    for (int64_t i = 0; i < candidates; ++i) sum += std::exp(log_likelihood[i] - log_likelihood[j]);
    const double weight = 1.0 / sum;
    if (weight < 10.0 * std::numeric_limits<double>::epsilon()) continue;
    b_mean += weight * b[j];
    total += weight;
  }
  b_mean /= total;
  double k = 0.0;
  for (const double xi : x) k += std::log1p(-b_mean * xi);
  k /= static_cast<double>(n);
  ParetoFit fit;
  fit.sigma = -k / b_mean;
  fit.k = (static_cast<double>(n) * k + 5.0) / (static_cast<double>(n) + 10.0);
  return fit;
}

namespace {
/// The generalized Pareto quantile at probability p.
double pareto_quantile(double p, const ParetoFit& fit) {
  if (std::abs(fit.k) < 1e-12) return -fit.sigma * std::log1p(-p);
  return fit.sigma * std::expm1(-fit.k * std::log1p(-p)) / fit.k;
}
}  // namespace

ParetoTail fit_pareto_tail(const std::vector<double>& largest, int64_t count) {
  const int64_t n = pareto_tail_length(count);
  if (static_cast<int64_t>(largest.size()) < n + 1) {
    throw Error("fit_pareto_tail: needs the " + std::to_string(n + 1) + " largest log weights");
  }
  ParetoTail tail;
  tail.k = std::numeric_limits<double>::quiet_NaN();
  const double top = largest[0];
  if (n < 5 || !std::isfinite(top)) return tail;
  const double cutoff = std::exp(largest[n] - top);
  std::vector<double> exceedances(n);  // ascending
  for (int64_t i = 0; i < n; ++i) exceedances[i] = std::exp(largest[n - 1 - i] - top) - cutoff;
  if (exceedances.back() <= 0.0) {  // the largest weights are all equal: no tail at all
    tail.k = -std::numeric_limits<double>::infinity();
    return tail;
  }
  const ParetoFit fit = fit_generalized_pareto(exceedances);
  tail.k = fit.k;
  if (!std::isfinite(fit.k)) return tail;
  // The i-th smallest of the tail becomes the quantile at (i + ½)/n, never above the largest
  // raw weight.
  for (int64_t i = 0; i < n; ++i) {
    tail.log_weights.push_back(largest[i] - top);
    const double p = (static_cast<double>(n - 1 - i) + 0.5) / static_cast<double>(n);
    tail.smoothed.push_back(std::min(0.0, std::log(pareto_quantile(p, fit) + cutoff)));
  }
  return tail;
}

SmoothedMoments smooth_moments(const std::vector<double>& mean, const std::vector<double>& sd,
                               double total_weight, const ParetoTail& tail,
                               const torch::Tensor& tail_samples) {
  const auto n = static_cast<int64_t>(tail.log_weights.size());
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  const auto mu = torch::tensor(mean, options);
  const auto variance = torch::tensor(sd, options).pow(2);
  // δ_i = w̃_i − w_i; W' = W + Σ δ; μ' = μ + Σ δ_i (x_i − μ) / W';
  // W' V' = W (V + (μ − μ')²) + Σ δ_i (x_i − μ')², all about means against cancellation.
  const auto delta =
      (torch::tensor(tail.smoothed, options).exp() - torch::tensor(tail.log_weights, options).exp())
          .unsqueeze(1);
  const auto x = tail_samples.slice(0, 0, n).to(torch::kFloat64);
  const double total = total_weight + delta.sum().item<double>();
  const auto smoothed_mean = mu + (delta * (x - mu)).sum(0) / total;
  const auto squares = total_weight * (variance + (mu - smoothed_mean).pow(2)) +
                       (delta * (x - smoothed_mean).pow(2)).sum(0);
  const auto smoothed_sd = (squares / total).clamp_min(0.0).sqrt().contiguous();
  const auto m = smoothed_mean.contiguous();
  return {std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel()),
          std::vector<double>(smoothed_sd.data_ptr<double>(),
                              smoothed_sd.data_ptr<double>() + smoothed_sd.numel())};
}

LargestWeights::LargestWeights(int64_t size, int64_t dim)
    : size_(size),
      dim_(dim),
      log_weights_(torch::empty({0}, torch::kFloat64)),
      samples_(torch::empty({0, dim}, torch::kFloat64)) {}

void LargestWeights::add(const torch::Tensor& log_weights, const torch::Tensor& samples) {
  auto lw = log_weights.to(torch::kFloat64);
  lw = torch::cat(
      {log_weights_, torch::where(torch::isnan(lw), torch::full_like(lw, -INFINITY), lw)});
  const auto kept = std::get<1>(lw.topk(std::min<int64_t>(size_, lw.size(0))));
  log_weights_ = lw.index_select(0, kept);
  if (dim_ > 0)
    samples_ = torch::cat({samples_, samples.to(torch::kFloat64)}).index_select(0, kept);
}

LargestWeights::Gathered LargestWeights::gather(const Communicator& comm) const {
  // Each rank's rows, padded to `size` with −∞ weights: [size, 1 + dim].
  auto rows = torch::zeros({size_, 1 + dim_}, torch::kFloat64);
  rows.select(1, 0).fill_(-INFINITY);
  const int64_t mine = log_weights_.size(0);
  rows.slice(0, 0, mine).select(1, 0).copy_(log_weights_);
  if (dim_ > 0) rows.slice(0, 0, mine).slice(1, 1).copy_(samples_);
  const std::vector<double> all = comm.allgather(rows.data_ptr<double>(), rows.numel());
  const auto every =
      torch::from_blob(const_cast<double*>(all.data()),
                       {static_cast<int64_t>(comm.size()) * size_, 1 + dim_}, torch::kFloat64);
  const auto order =
      std::get<1>(every.select(1, 0).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true))
          .slice(0, 0, size_);
  const auto best = every.index_select(0, order);
  Gathered gathered;
  const auto lw = best.select(1, 0).contiguous();
  gathered.log_weights.assign(lw.data_ptr<double>(), lw.data_ptr<double>() + size_);
  if (dim_ > 0) gathered.samples = best.slice(1, 1).clone();
  return gathered;
}

}  // namespace rbsde
