// The probability-flow ODE sampler (method.md §5): the network's divergence, exact and by
// Hutchinson's estimator, and two models whose flow and log-density are known in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/config_file.hpp"

namespace rbsde {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;

/// A small network with every parameter random (so its Jacobian is full), in float64.
BsdeModel random_model(int64_t dim, const NoiseSchedule& schedule) {
  const Config config = parse_config("target: {name: gaussian, dim: " + std::to_string(dim) +
                                     "}\nnetwork: {width: 16, depth: 2, time_features: 2}\n");
  torch::manual_seed(3);
  BsdeModel model(dim, config.network, schedule);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.copy_(0.5 * torch::randn_like(p));
  model->to(torch::kFloat64);
  return model;
}

/// ∂Z_j/∂x_i of every row of x [B, d] by central differences: [B, d (j), d (i)].
torch::Tensor jacobian_by_differences(BsdeModel& model, double s, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const int64_t d = x.size(1);
  const double eps = 1e-5;
  auto jacobian = torch::empty({x.size(0), d, d}, x.options());
  for (int64_t i = 0; i < d; ++i) {
    auto step = torch::zeros_like(x);
    step.select(1, i).fill_(eps);
    jacobian.select(2, i).copy_((model->z(s, x + step) - model->z(s, x - step)) / (2.0 * eps));
  }
  return jacobian;
}

TEST(Flow, ExactDivergenceIsTheTraceOfTheJacobian) {
  const NoiseSchedule schedule;  // β ≡ 2, T = 4
  auto model = random_model(3, schedule);
  torch::manual_seed(4);
  const auto x = torch::randn({6, 3}, torch::kFloat64);
  const double s = 1.3;
  const auto exact = z_divergence_exact(model, s, x);
  const auto trace = jacobian_by_differences(model, s, x).diagonal(0, 1, 2).sum(1);
  // float64 central differences with ε = 1e-5: truncation ~ε² |Z'''| ≈ 1e-10, rounding
  // ~1e-16/ε ≈ 1e-11; 1e-7 is far above both and far below the network's own part.
  EXPECT_TRUE(torch::allclose(exact.divergence, trace, 0.0, 1e-7)) << exact.divergence << trace;
  EXPECT_TRUE(torch::allclose(exact.z, model->z(s, x), 0.0, 1e-12));
  // The MLP's part of the trace is not negligible: the check above can tell it apart from
  // the reference part −√b d alone.
  EXPECT_GT((trace + std::sqrt(2.0) * 3.0).abs().min().item<double>(), 0.05);
}

TEST(Flow, HutchinsonAveragesToTheExactDivergence) {
  const NoiseSchedule schedule;
  const int64_t d = 4, probes = 20000;
  auto model = random_model(d, schedule);
  const double s = 0.7;
  // One point repeated on every row: each row draws its own probe (keyed by its path index).
  const auto x =
      torch::tensor({{0.3, -1.1, 0.8, 0.2}}, torch::kFloat64).expand({probes, d}).contiguous();
  auto v = torch::empty({1, probes, d}, torch::kFloat32);
  fill_rademacher(v.data_ptr<float>(), probes, d, NoiseKey{9, NoiseStream::kProbes, 0}, 0, 0);
  const auto single = z_divergence_hutchinson(model, s, x, v.to(torch::kFloat64)).divergence;
  const double exact = z_divergence_exact(model, s, x.slice(0, 0, 1)).divergence.item<double>();
  // Var(vᵀJv) = ½ Σ_{i≠j} (J_ij + J_ji)² for Rademacher v; the mean of `probes` draws is
  // within 4 of its standard errors of the trace.
  const auto jacobian = jacobian_by_differences(model, s, x.slice(0, 0, 1))[0];
  const auto symmetric = jacobian + jacobian.t();
  const double variance =
      0.5 * (symmetric.pow(2).sum() - symmetric.diagonal().pow(2).sum()).item<double>();
  ASSERT_GT(variance, 0.1);  // the probes matter: a wrong sign pattern would show
  const double mean = single.mean().item<double>();
  std::printf("Hutchinson mean %.5f, exact %.5f, standard error %.5f\n", mean, exact,
              std::sqrt(variance / probes));
  EXPECT_NEAR(mean, exact, 4.0 * std::sqrt(variance / probes));
  // Every single-probe value differs from the trace by a sum of off-diagonal terms: not all
  // equal to it.
  EXPECT_GT((single - exact).abs().max().item<double>(), 0.1);

  // K probes on one row average the K single-probe values.
  const int64_t k = 8;
  const auto several = z_divergence_hutchinson(
      model, s, x.slice(0, 0, 1), v.to(torch::kFloat64)[0].slice(0, 0, k).unsqueeze(1));
  EXPECT_NEAR(several.divergence.item<double>(), single.slice(0, 0, k).mean().item<double>(),
              1e-12);
}

/// simulate_flow on all rows of one process with the given divergence.
SampleBatch flow(const Target& target, BsdeModel& model, const NoiseSchedule& schedule,
                 int64_t steps, int64_t rows, Divergence divergence) {
  const TimeGrid grid(schedule, steps);
  return simulate_flow(target, model, schedule, grid, /*seed=*/5, 0, rows, divergence, 4);
}

/// X₀ of simulate_flow's first `rows` paths for seed 5.
torch::Tensor initial_points(int64_t rows, int64_t dim) {
  auto x0 = torch::empty({rows, dim}, torch::kFloat64);
  fill_normal(x0.data_ptr<double>(), rows, dim, NoiseKey{5, NoiseStream::kSampling, 0}, 0,
              kInitialStep);
  return x0;
}

TEST(Flow, UntrainedModelLeavesTheReferenceInPlace) {
  // With the MLP's last layer zero, Z = −√b x and the ODE drift ½ b x + ½ √b Z vanishes, so
  // X_N = X₀ and log q = log N(X₀): for π̃ = N(0, I) unnormalised every log w is d/2 log 2π.
  const Config config = parse_config(
      "target: {name: gaussian, dim: 3}\nsde: {schedule: linear, horizon: 2, steps: 12}\n");
  const auto target = make_target(config.target);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  torch::manual_seed(6);
  BsdeModel model(3, config.network, schedule);
  const int64_t rows = 500;
  for (const auto divergence : {Divergence::kExact, Divergence::kHutchinson}) {
    const auto batch = flow(*target, model, schedule, config.sde.steps, rows, divergence);
    // Z is float32: √b and x are rounded at ~6e-8 relatively, so X moves by ~1e-7 |x| and
    // log q by ~½ b d T · 1e-7 at most.
    EXPECT_TRUE(torch::allclose(batch.samples, initial_points(rows, 3), 0.0, 1e-5));
    EXPECT_TRUE(torch::allclose(batch.log_weights,
                                torch::full({rows}, 1.5 * kLog2Pi, torch::kFloat64), 0.0, 1e-5))
        << batch.log_weights.min() << batch.log_weights.max();
  }
}

TEST(Flow, LinearNetworkGivesTheGaussianOfTheMidpointRule) {
  // The MLP set by hand to k x (relu with a bias that keeps it on its linear branch): the
  // drift is λ x with λ = ½ √b k for constant b, the midpoint rule maps X₀ to r^N X₀ with
  // r = 1 + λh + (λh)²/2, and log q(X_N) = log N(X₀) − N h λ d. For the target N(0, r^{2N} I)
  // (unnormalised) log w = d/2 log 2π + λ d T on every path. A missing ½ or a wrong sign in
  // the divergence term moves it by λ d T = 0.64 or more; a wrong drift moves the samples.
  const int64_t d = 3, steps = 10;
  const double k = 0.3, T = 1.0, shift = 10.0;
  const double lambda = 0.5 * std::sqrt(2.0) * k, h = T / steps;
  const double r = 1.0 + lambda * h + 0.5 * lambda * h * lambda * h;
  const double variance = std::pow(r, 2 * steps);
  char covariance[32];
  std::snprintf(covariance, sizeof covariance, "%.17g", variance);  // reads back exactly
  const Config config =
      parse_config("target: {name: gaussian, dim: 3, covariance: " + std::string(covariance) +
                   "}\nsde: {horizon: 1, steps: 10}\n"
                   "network: {width: 3, depth: 1, activation: relu, time_features: 0}\n");
  const auto target = make_target(config.target);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  BsdeModel model(d, config.network, schedule);
  {
    torch::NoGradGuard no_grad;
    auto parameters = model->named_parameters();
    parameters["input_x.weight"].copy_(torch::eye(d));
    parameters["input_t.weight"].zero_();
    parameters["input_t.bias"].fill_(shift);  // relu(x + 10) = x + 10 for x > −10
    parameters["output.weight"].copy_(k * torch::eye(d));
    parameters["output.bias"].fill_(-k * shift);
  }
  const int64_t rows = 400;
  const auto x0 = initial_points(rows, d);
  const double expected = 0.5 * d * kLog2Pi + lambda * d * T;
  for (const auto divergence : {Divergence::kExact, Divergence::kHutchinson}) {
    const auto batch = flow(*target, model, schedule, steps, rows, divergence);
    // float32 network: x + 10 is rounded to ~1e-6 absolutely, so Z to ~3e-7 and log w to
    // ~1e-6; Hutchinson is exact here because vᵀ (k I) v = k d for every sign vector.
    EXPECT_TRUE(torch::allclose(batch.samples, std::pow(r, steps) * x0, 0.0, 1e-5));
    EXPECT_TRUE(torch::allclose(batch.log_weights, torch::full({rows}, expected, torch::kFloat64),
                                0.0, 1e-5))
        << "expected " << expected << ", got " << batch.log_weights.min() << " to "
        << batch.log_weights.max();
  }
}

TEST(Flow, AutoDivergenceIsExactUpTo32Dimensions) {
  SampleConfig sample;
  EXPECT_EQ(choose_divergence(sample, 32), Divergence::kExact);
  EXPECT_EQ(choose_divergence(sample, 33), Divergence::kHutchinson);
  sample.divergence = "exact";
  EXPECT_EQ(choose_divergence(sample, 1000), Divergence::kExact);
  sample.divergence = "hutchinson";
  EXPECT_EQ(choose_divergence(sample, 2), Divergence::kHutchinson);
}

}  // namespace
}  // namespace rbsde
