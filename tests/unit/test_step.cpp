// The reverse step's kernel (step.hpp): the gain head's exact linear step.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "rbsde/bsde/step.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"

namespace rbsde {
namespace {

// network.gain: for constant b the step is the exact transition of dX = (λ X + √b A) ds + √b dW,
// λ = √b G − ½ b, written for Z = A + (G − √b) X; G = 0 gives the grid's exponential step.
TEST(Step, GainStepIsTheExactLinearStep) {
  SdeConfig config;
  config.integrator = "exponential";
  config.schedule = "constant";
  config.beta = 3.0;
  config.horizon = 2.0;
  config.steps = 50;
  const TimeGrid grid(NoiseSchedule::from_config(config), config.steps);
  const double b = 3.0, h = 2.0 / 50.0, root_b = std::sqrt(b);
  for (double gain : {-2000.0, -30.0, -1.0, 0.5, 4.0}) {
    const StepGains step = gain_step(StepConstants(grid, 7, /*dim=*/1), gain);
    const double lambda = root_b * gain - 0.5 * b;
    EXPECT_NEAR(step.x_gain + step.z_gain * (gain - root_b), std::exp(lambda * h), 1e-12) << gain;
    EXPECT_NEAR(step.z_gain, root_b * std::expm1(lambda * h) / lambda, 1e-12) << gain;
    EXPECT_NEAR(step.noise * step.noise, b * std::expm1(2.0 * lambda * h) / (2.0 * lambda), 1e-12)
        << gain;
  }
  // A very stiff coordinate contracts to its stationary law instead of overshooting.
  const StepGains stiff = gain_step(StepConstants(grid, 7, /*dim=*/1), -2000.0);
  EXPECT_LT(std::abs(stiff.x_gain + stiff.z_gain * (-2000.0 - root_b)), 1e-12);
  const StepGains none = gain_step(StepConstants(grid, 7, /*dim=*/1), 0.0);
  EXPECT_NEAR(none.x_gain, grid.x_gain[7], 1e-12);
  EXPECT_NEAR(none.z_gain, grid.z_gain[7], 1e-12);
  EXPECT_NEAR(none.noise, grid.noise[7], 1e-12);
}

// path_log_weight_step scores a given pair of points; on the pair weighted_step made it must
// return weighted_step's increment, with the grid's gains and with the gain head's.
TEST(Step, ScoringAPairGivesTheIncrementOfTheStepThatMadeIt) {
  SdeConfig config;
  config.steps = 20;
  const TimeGrid grid(NoiseSchedule::from_config(config), config.steps);
  const int64_t rows = 5, d = 7;
  std::mt19937 random(3);
  std::normal_distribution<double> normal;
  std::vector<double> x(rows * d), xi(rows * d);
  std::vector<float> z(rows * d), gain(rows * d);
  for (int64_t k = 0; k < rows * d; ++k) {
    x[k] = 2.0 * normal(random);
    xi[k] = normal(random);
    z[k] = static_cast<float>(normal(random));
    gain[k] = static_cast<float>(3.0 * normal(random));
  }
  for (const bool with_gain : {false, true}) {
    for (const int64_t n : {0, 11, 19}) {
      const StepConstants step(grid, n, d);
      const float* g = with_gain ? gain.data() : nullptr;
      std::vector<double> next = x, made(rows, 0.0), scored(rows, 0.0);
      weighted_step(step, next.data(), z.data(), g, xi.data(), made.data(), rows, d);
      path_log_weight_step(step, x.data(), next.data(), z.data(), g, scored.data(), rows, d);
      for (int64_t i = 0; i < rows; ++i) {
        EXPECT_NEAR(scored[i], made[i], 1e-9 * (1.0 + std::abs(made[i])))
            << "gain " << with_gain << " step " << n << " row " << i;
      }
      // A different pair scores differently: the test sees the points.
      next[0] += 0.1;
      std::vector<double> moved(rows, 0.0);
      path_log_weight_step(step, x.data(), next.data(), z.data(), g, moved.data(), rows, d);
      EXPECT_GT(std::abs(moved[0] - made[0]), 1e-3);
    }
  }
}

}  // namespace
}  // namespace rbsde
