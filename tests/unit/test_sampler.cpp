// Exactness of the sampler's weights for the untrained model (the stationary OU process) on
// the target N(0, I): with the exponential integrator the model's steps are the exact
// noising transitions, so every log weight equals log 𝒵 = ½ d log 2π up to rounding, in any
// dimension; Euler's steps are not, and their weights spread.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"

namespace rbsde {
namespace {

double log_weight_spread(const std::string& integrator, int64_t d) {
  SdeConfig sde;
  sde.integrator = integrator;
  sde.steps = 25;
  const auto schedule = NoiseSchedule::from_config(sde);
  const TimeGrid grid(schedule, sde.steps);
  torch::manual_seed(1);
  BsdeModel model(d, NetworkConfig{}, schedule);  // output layer zero: Z = −√b x
  const auto target = Gaussian::diagonal(Eigen::VectorXd::Zero(d), Eigen::VectorXd::Ones(d));
  const SampleBatch batch = simulate_paths(*target, model, grid, 5, 0, 200);
  const double log_z = 0.5 * static_cast<double>(d) * std::log(2.0 * M_PI);
  return (batch.log_weights - log_z).abs().max().item<double>();
}

TEST(Sampler, ExponentialIntegratorWeightsAreExactForTheStationaryModel) {
  // Rounding: z is computed in float32 (relative 1e-7 of |x| ~ 1 per coordinate and step).
  EXPECT_LT(log_weight_spread("exponential", 1000), 1e-2);
  // Euler in d = 1000: the per-step mismatch of q_n and k_n adds up over coordinates.
  EXPECT_GT(log_weight_spread("euler", 1000), 1.0);
}

}  // namespace
}  // namespace rbsde
