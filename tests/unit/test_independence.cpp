// Independence moves (bsde/independence.hpp): the noising path's weight and the move's
// invariance, on a Gaussian target with a model whose weights are far from constant.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "rbsde/bsde/independence.hpp"
#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/bsde/model.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"

namespace rbsde {
namespace {

/// N((0.5, −0.3), diag(0.64, 1.44)): its log 𝒵 is known.
std::unique_ptr<Gaussian> gaussian_target() {
  Eigen::VectorXd mean(2), variances(2);
  mean << 0.5, -0.3;
  variances << 0.64, 1.44;
  return Gaussian::diagonal(mean, variances);
}

/// An untrained model is the stationary OU process (its output layer is zero); with every
/// parameter perturbed its paths and weights depend on the network along the whole path.
ModelProposal perturbed_model(bool gain) {
  SdeConfig sde;
  sde.steps = 20;
  const auto schedule = NoiseSchedule::from_config(sde);
  NetworkConfig network;
  network.gain = gain;
  torch::manual_seed(7);
  BsdeModel model(2, network, schedule);
  torch::NoGradGuard no_grad;
  for (auto& parameter : model->parameters()) {
    parameter.add_(0.05 * torch::randn_like(parameter));
  }
  return {model, TimeGrid(schedule, sde.steps)};
}

// w = 𝒵 dP/dQ on every path, so on the noising paths of exact draws of π (paths of P),
// E_P[1/w] = 1/𝒵: a check of every term of the noising path's log weight.
TEST(Independence, NoisingPathWeightsHaveTheExactInverseMean) {
  const auto target = gaussian_target();
  const double log_z = *target->log_z();
  for (const bool gain : {false, true}) {
    const ModelProposal proposal = perturbed_model(gain);
    const int64_t n = 200000;
    const auto x = target->sample_exact(n, 5);
    const auto log_w = noised_path_log_weights(*target, proposal, x, target->log_prob(x),
                                               {9, NoiseStream::kIndependence, 1}, 0);
    const auto ratio = (log_z - log_w).exp();
    const double mean = ratio.mean().item<double>();
    const double stderr_ = ratio.std().item<double>() / std::sqrt(static_cast<double>(n));
    EXPECT_NEAR(mean, 1.0, 5.0 * stderr_) << "gain " << gain;
    // 1/w has a light tail (standard error 0.0023 here): a wrong term makes it heavy.
    EXPECT_LT(stderr_, 0.01) << "gain " << gain;
    // The model is far from the target: the weights vary (else the test would see nothing).
    EXPECT_GT(log_w.std().item<double>(), 0.3) << "gain " << gain;
  }
}

/// Mean and variance of each coordinate of the chains against the target's, within 5
/// standard errors of C independent draws.
void expect_target_moments(const Chains& chains, const char* what) {
  const auto c = static_cast<double>(chains.x.size(0));
  const double mean[2] = {0.5, -0.3}, variance[2] = {0.64, 1.44};
  for (int64_t j = 0; j < 2; ++j) {
    const auto column = chains.x.select(1, j);
    EXPECT_NEAR(column.mean().item<double>(), mean[j], 5.0 * std::sqrt(variance[j] / c))
        << what << " coordinate " << j;
    EXPECT_NEAR(column.var().item<double>(), variance[j], 5.0 * variance[j] * std::sqrt(2.0 / c))
        << what << " coordinate " << j;
  }
}

// Chains started from π stay at π through independence moves alone, and chains started at
// one point reach it.
TEST(Independence, MovesKeepTheTargetAndReachItFromOnePoint) {
  const auto target = gaussian_target();
  const ModelProposal proposal = perturbed_model(true);
  const int64_t c = 10000;
  Chains exact = start_chains(*target, target->sample_exact(c, 3), 0);
  double accepted = 0.0;
  for (uint32_t move = 0; move < 10; ++move) {
    accepted += independence_step(*target, proposal, exact, 4, move).sum().item<double>();
  }
  expect_target_moments(exact, "from pi");
  const double acceptance = accepted / (10.0 * static_cast<double>(c));
  EXPECT_GT(acceptance, 0.2);
  EXPECT_LT(acceptance, 0.95);  // the model is not the target: some moves are rejected

  Chains one_point = start_chains(*target, torch::full({c, 2}, 2.5, torch::kFloat64), 0);
  for (uint32_t move = 0; move < 40; ++move) {
    independence_step(*target, proposal, one_point, 4, move);
  }
  expect_target_moments(one_point, "from one point");
  // The chain state stays consistent: log π̃ and its gradient are those of the new points.
  EXPECT_TRUE(torch::allclose(one_point.log_prob, target->log_prob(one_point.x)));
}

// Two modes 12 sds apart that HMC never crosses, and chains split between them 1:1 instead
// of 3:1 (a proposal's draws with the wrong mode weights): HMC keeps the wrong split, the
// independence moves restore the right one.
TEST(Independence, MovesBalanceModesThatHmcCannotCross) {
  Eigen::VectorXd left(2), right(2);
  left << -1.5, 0.0;
  right << 1.5, 0.0;
  const Eigen::MatrixXd covariance = 0.0625 * Eigen::MatrixXd::Identity(2, 2);
  const Gmm target({0.75, 0.25}, {left, right}, {covariance, covariance});
  const ModelProposal proposal = perturbed_model(false);
  const int64_t c = 10000;
  auto start = 0.25 * torch::randn({c, 2}, torch::kFloat64);
  start.select(1, 0).add_(torch::where(torch::arange(c) % 2 == 0, -1.5, 1.5));
  const auto left_share = [](const Chains& chains) {
    return (chains.x.select(1, 0) < 0.0).to(torch::kFloat64).mean().item<double>();
  };
  const double stderr_ = std::sqrt(0.75 * 0.25 / static_cast<double>(c));

  Chains hmc = start_chains(target, start, 0);
  Chains moved = start_chains(target, start, 0);
  const auto preconditioner = torch::full({2}, 0.0625, torch::kFloat64);
  for (uint32_t t = 0; t < 60; ++t) {
    hmc_step(target, hmc, 0.5, preconditioner, 10, {6, NoiseStream::kMcmc}, t);
    hmc_step(target, moved, 0.5, preconditioner, 10, {6, NoiseStream::kMcmc}, t);
    independence_step(target, proposal, moved, 8, t);
  }
  EXPECT_NEAR(left_share(hmc), 0.5, 5.0 * stderr_);
  EXPECT_NEAR(left_share(moved), 0.75, 5.0 * stderr_);
}

}  // namespace
}  // namespace rbsde
