// Pareto-smoothed importance sampling (psis.hpp) on weights from known distributions:
// w = U^(−ξ), U uniform, has a Pareto tail whose exceedances over any threshold are exactly
// generalized Pareto with shape ξ, so k̂ must find ξ within the fit's standard error
// ≈ (1 + ξ)/√n for a tail of n weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "rbsde/bsde/psis.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

std::vector<double> descending(const torch::Tensor& log_weights) {
  const auto sorted = std::get<0>(log_weights.sort(0, /*descending=*/true)).contiguous();
  return {sorted.data_ptr<double>(), sorted.data_ptr<double>() + sorted.numel()};
}

TEST(Psis, TailLengthAndThresholdFollowThePaper) {
  EXPECT_EQ(pareto_tail_length(100), 20);     // M/5
  EXPECT_EQ(pareto_tail_length(10000), 300);  // 3√M
  EXPECT_EQ(pareto_tail_length(1000), 95);    // ⌈3√1000⌉ = ⌈94.87⌉
  EXPECT_DOUBLE_EQ(pareto_k_threshold(100), 0.5);
  EXPECT_NEAR(pareto_k_threshold(1000), 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(pareto_k_threshold(100000), 0.7);
}

TEST(Psis, ShapeOfParetoWeightsIsFoundWithinItsStandardError) {
  const int64_t m = 100000;
  const int64_t n = pareto_tail_length(m);
  torch::manual_seed(11);
  for (const double xi : {0.3, 0.6, 1.0, 1.5}) {
    const auto u = torch::rand({m}, torch::kFloat64);
    const auto log_w = -xi * u.log() + 3.0;  // any constant factor: k̂ is scale-free
    const ParetoTail tail = fit_pareto_tail(descending(log_w), m);
    EXPECT_NEAR(tail.k, xi, 3.0 * (1.0 + xi) / std::sqrt(static_cast<double>(n))) << "xi " << xi;
  }
}

TEST(Psis, LightTailsHaveSmallShape) {
  // Lognormal weights with a small spread (a good proposal): the tail is light, k̂ well below
  // 0.5; with a spread of 3 (a poor one) it is heavy enough to exceed 0.7 at M = 10⁴.
  const int64_t m = 10000;
  torch::manual_seed(12);
  const auto z = torch::randn({m}, torch::kFloat64);
  EXPECT_LT(fit_pareto_tail(descending(0.1 * z), m).k, 0.3);
  EXPECT_GT(fit_pareto_tail(descending(3.0 * z), m).k, pareto_k_threshold(m));
}

TEST(Psis, KHatEqualsThatOfThePublishedImplementation) {
  // The R package loo 2.5.1 (Vehtari et al.), psis(lw, r_eff = 1), on two fixed sets of 1,000
  // log weights: Pareto quantiles of shape 0.6 and a light, Weibull-like tail, each with a
  // deterministic wiggle. Made by:
  //   i <- 0:999; u <- (i + 0.5) / 1000
  //   pareto_k_values(psis(-0.6 * log(u) + 0.3 * sin(i), r_eff = 1))            # 0.5964013283
  //   pareto_k_values(psis(1.5 * log(-log(u)) + 0.1 * cos(3 * i), r_eff = 1))   # 0.1888844614
  // A change to the tail length, the threshold, the fit or its shrinkage toward 0.5 moves k̂
  // by far more than the tolerance.
  const int64_t m = 1000;
  auto heavy = torch::empty({m}, torch::kFloat64), light = torch::empty({m}, torch::kFloat64);
  for (int64_t i = 0; i < m; ++i) {
    const double u = (static_cast<double>(i) + 0.5) / static_cast<double>(m);
    heavy[i] = -0.6 * std::log(u) + 0.3 * std::sin(static_cast<double>(i));
    light[i] = 1.5 * std::log(-std::log(u)) + 0.1 * std::cos(3.0 * static_cast<double>(i));
  }
  const int64_t n = pareto_tail_length(m) + 1;
  const auto largest = [&](const torch::Tensor& log_w) {
    auto all = descending(log_w);
    all.resize(static_cast<size_t>(n));
    return all;
  };
  EXPECT_NEAR(fit_pareto_tail(largest(heavy), m).k, 0.5964013283, 1e-6);
  EXPECT_NEAR(fit_pareto_tail(largest(light), m).k, 0.1888844614, 1e-6);
}

TEST(Psis, TooFewOrEqualWeightsAreNotFitted) {
  // A tail of ⌈M/5⌉ ≥ 5 weights needs M ≥ 21.
  EXPECT_TRUE(std::isnan(fit_pareto_tail(std::vector<double>(5, 0.0), 20).k));
  EXPECT_FALSE(std::isnan(fit_pareto_tail({5.0, 4.0, 3.0, 2.0, 1.5, 1.0}, 21).k));
  EXPECT_TRUE(std::isnan(fit_pareto_tail(std::vector<double>(6, -INFINITY), 21).k));
  const ParetoTail equal = fit_pareto_tail(std::vector<double>(6, 1.0), 21);
  EXPECT_EQ(equal.k, -INFINITY);
  EXPECT_TRUE(equal.smoothed.empty());
}

TEST(Psis, SmoothedTailIsOrderedAndNeverAboveTheLargestWeight) {
  const int64_t m = 10000;
  torch::manual_seed(13);
  const auto log_w = -0.8 * torch::rand({m}, torch::kFloat64).log();
  const ParetoTail tail = fit_pareto_tail(descending(log_w), m);
  ASSERT_EQ(static_cast<int64_t>(tail.smoothed.size()), pareto_tail_length(m));
  EXPECT_DOUBLE_EQ(tail.log_weights[0], 0.0);
  EXPECT_TRUE(std::is_sorted(tail.smoothed.rbegin(), tail.smoothed.rend()));
  EXPECT_LE(tail.smoothed[0], 0.0);
  // The largest raw weight of a Pareto sample sticks out; its smoothed value is lower.
  EXPECT_LT(tail.smoothed[0], tail.log_weights[0]);
}

TEST(Psis, LargestWeightsKeepsTheGlobalTopAcrossBatchesWithTheirSamples) {
  const Communicator comm(MPI_COMM_WORLD);
  torch::manual_seed(14);
  const auto log_w = torch::randn({1000}, torch::kFloat64);
  const auto x = torch::randn({1000, 3}, torch::kFloat64);
  LargestWeights largest(50, 3);
  for (int64_t b = 0; b < 1000; b += 128) {
    largest.add(log_w.slice(0, b, b + 128), x.slice(0, b, b + 128));
  }
  const auto gathered = largest.gather(comm);
  const auto [values, order] = log_w.sort(0, /*descending=*/true);
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(gathered.log_weights[i], values[i].item<double>());
    EXPECT_TRUE(torch::equal(gathered.samples[i], x[order[i].item<int64_t>()]));
  }
}

TEST(Psis, SmoothedMomentsEqualTheDirectWeightedMoments) {
  // Replacing the tail's weights in the raw sums must give what a direct pass over all
  // samples with the smoothed weights gives.
  const int64_t m = 2000;
  torch::manual_seed(15);
  const auto x = torch::randn({m, 2}, torch::kFloat64) * 2.0 + 5.0;
  const auto log_w = -0.9 * torch::rand({m}, torch::kFloat64).log() + 0.5 * x.select(1, 0);
  const auto [sorted, order] = log_w.sort(0, /*descending=*/true);
  const ParetoTail tail = fit_pareto_tail(descending(log_w), m);
  ASSERT_FALSE(tail.smoothed.empty());
  const double top = sorted[0].item<double>();
  const auto w = (log_w - top).exp();
  const auto mean = (w.unsqueeze(1) * x).sum(0) / w.sum();
  const auto sd = ((w.unsqueeze(1) * (x - mean).pow(2)).sum(0) / w.sum()).sqrt();
  const auto ordered_x = x.index_select(0, order);
  const SmoothedMoments smoothed = smooth_moments({mean[0].item<double>(), mean[1].item<double>()},
                                                  {sd[0].item<double>(), sd[1].item<double>()},
                                                  w.sum().item<double>(), tail, ordered_x);
  auto w_smoothed = w.clone();
  for (size_t i = 0; i < tail.smoothed.size(); ++i) {
    w_smoothed[order[static_cast<int64_t>(i)]] = std::exp(tail.smoothed[i]);
  }
  const auto direct_mean = (w_smoothed.unsqueeze(1) * x).sum(0) / w_smoothed.sum();
  const auto direct_sd =
      ((w_smoothed.unsqueeze(1) * (x - direct_mean).pow(2)).sum(0) / w_smoothed.sum()).sqrt();
  for (int j = 0; j < 2; ++j) {
    EXPECT_NEAR(smoothed.mean[j], direct_mean[j].item<double>(), 1e-10);
    EXPECT_NEAR(smoothed.sd[j], direct_sd[j].item<double>(), 1e-10);
    // Smoothing moved them: the test would notice an unsmoothed result.
    EXPECT_GT(std::abs(smoothed.mean[j] - mean[j].item<double>()), 1e-6);
  }
}

// k̂ reads the same wherever it is printed, and where there is none it says why.
TEST(ParetoKText, SaysWhyThereIsNoKHat) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(pareto_k_text(0.4321, 1000, 1000), "0.43");
  EXPECT_EQ(pareto_k_text(nan, 20, 20), "n/a (PSIS needs at least 21 paths, here 20)");
  // M = 1000: a tail of ⌈3√1000⌉ = 95 weights, so 96 must be finite.
  EXPECT_EQ(pareto_k_text(nan, 1000, 40),
            "n/a (40 of 1000 log weights are finite; the tail fit needs 96)");
  EXPECT_EQ(pareto_k_text(nan, 1000, 1000),
            "n/a (the tail of the largest 95 weights could not be fitted)");
  EXPECT_EQ(pareto_k_text(-std::numeric_limits<double>::infinity(), 1000, 1000),
            "n/a (the largest weights are equal: no tail to fit)");
}

}  // namespace
}  // namespace rbsde
