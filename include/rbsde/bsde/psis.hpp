#pragma once
/// \file psis.hpp
/// Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao and Gabry, "Pareto
/// smoothed importance sampling", JMLR 2024): the shape k̂ of a generalized Pareto distribution
/// fitted to the largest importance weights says whether self-normalised estimates can be
/// trusted (k̂ above pareto_k_threshold(M): they cannot), and the fitted quantiles replace the
/// largest weights for smoothed estimates. postprocess/psis.py is a second implementation.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// The number of largest weights PSIS fits: ⌈min(M/5, 3√M)⌉.
int64_t pareto_tail_length(int64_t count);

/// The k̂ above which an estimate from M weights is unreliable: min(0.7, 1 − 1/log₁₀ M).
double pareto_k_threshold(int64_t count);

/// k̂ as rbsde prints it wherever it appears: "0.43", or "n/a (why)" where there is none: fewer
/// than 21 paths, fewer finite log weights (`finite` of `count`) than the tail's length + 1,
/// equal largest weights (k̂ = −∞: no tail), or a fit that failed.
std::string pareto_k_text(double k, int64_t count, int64_t finite);

/// A generalized Pareto distribution of the exceedances over a threshold.
struct ParetoFit {
  double k = 0.0;      ///< shape (k̂)
  double sigma = 0.0;  ///< scale
};

/// Zhang and Stephens' (2009) empirical-Bayes fit to exceedances (ascending, positive, at
/// least 5), with k shrunk towards 0.5 as n k̂ + 5 over n + 10, as in PSIS.
ParetoFit fit_generalized_pareto(const std::vector<double>& exceedances);

/// The PSIS view of a sample's log weights, from its largest ones.
struct ParetoTail {
  double k = 0.0;  ///< k̂; NaN when fewer than 21 weights (a tail of fewer than 5)
  /// The tail's log weights, descending, and their smoothed values (same order), both
  /// shifted so that the largest raw log weight is 0; empty when k̂ is NaN.
  std::vector<double> log_weights, smoothed;
};

/// Fits the tail of `count` log weights given the largest pareto_tail_length(count) + 1 of
/// them in descending order (the last is the threshold); −∞ entries allowed.
ParetoTail fit_pareto_tail(const std::vector<double>& largest, int64_t count);

/// The self-normalised mean and sd per coordinate with the tail's weights replaced by their
/// smoothed values. `mean`, `sd` and `total_weight` (Σ exp(log w − max log w)) are those of the
/// raw weights; `tail_samples` [≥ tail length, d] are the tail's samples in its order.
struct SmoothedMoments {
  std::vector<double> mean, sd;
};
SmoothedMoments smooth_moments(const std::vector<double>& mean, const std::vector<double>& sd,
                               double total_weight, const ParetoTail& tail,
                               const torch::Tensor& tail_samples);

/// Keeps the largest log weights a rank has seen, with their samples when asked, so that the
/// ranks can together find the global tail of a sample drawn batch by batch.
class LargestWeights {
 public:
  /// Keeps `size` weights; rows of `dim` coordinates too when `dim` > 0.
  LargestWeights(int64_t size, int64_t dim);
  /// log_weights [B] and samples [B, d], float64; NaN log weights count as −∞.
  void add(const torch::Tensor& log_weights, const torch::Tensor& samples);

  struct Gathered {
    std::vector<double> log_weights;  ///< descending, `size` of them (−∞ pads)
    torch::Tensor samples;            ///< [size, dim] in the same order; undefined when dim 0
  };
  /// Collective: the `size` largest over all ranks, identical on every rank.
  Gathered gather(const Communicator& comm) const;

 private:
  int64_t size_, dim_;
  torch::Tensor log_weights_;  // [≤ size]
  torch::Tensor samples_;      // [≤ size, dim]
};

}  // namespace rbsde
