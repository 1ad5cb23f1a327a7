// Noise schedules and the time grid against independent formulas and quadrature.
#include <gtest/gtest.h>

#include <cmath>

#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"

namespace rbsde {
namespace {

/// ∫₀ᵗ β by composite Simpson (independent of NoiseSchedule::integral).
double simpson_integral(const NoiseSchedule& schedule, double t) {
  const int n = 2000;
  const double h = t / n;
  double sum = schedule.beta(0.0) + schedule.beta(t);
  for (int i = 1; i < n; ++i) sum += (i % 2 ? 4.0 : 2.0) * schedule.beta(i * h);
  return sum * h / 3.0;
}

TEST(Schedule, ConstantIsOrnsteinUhlenbeck) {
  SdeConfig config;
  config.beta = 2.0;
  config.horizon = 4.0;
  const auto schedule = NoiseSchedule::from_config(config);
  for (double t : {0.0, 0.1, 1.0, 4.0}) {
    EXPECT_DOUBLE_EQ(schedule.beta(t), 2.0);
    EXPECT_NEAR(schedule.alpha(t), std::exp(-t), 1e-15);  // dX = −X dt + √2 dW
    EXPECT_NEAR(schedule.sigma2(t), 1.0 - std::exp(-2.0 * t), 1e-15);
  }
}

TEST(Schedule, LinearIntegralMatchesQuadrature) {
  SdeConfig config;
  config.schedule = "linear";
  config.beta_min = 0.1;
  config.beta_max = 20.0;
  config.horizon = 1.0;
  const auto schedule = NoiseSchedule::from_config(config);
  EXPECT_DOUBLE_EQ(schedule.beta(0.0), 0.1);
  EXPECT_DOUBLE_EQ(schedule.beta(1.0), 20.0);
  EXPECT_DOUBLE_EQ(schedule.b(0.0), 20.0);  // reverse time starts at t = T
  for (double t : {0.05, 0.3, 0.77, 1.0}) {
    EXPECT_NEAR(schedule.integral(t), simpson_integral(schedule, t), 1e-10);
    const double alpha = schedule.alpha(t);
    EXPECT_NEAR(alpha * alpha + schedule.sigma2(t), 1.0, 1e-14);
  }
}

TEST(Schedule, GridStepFactorsComposeToAlpha) {
  SdeConfig config;
  config.schedule = "linear";
  config.beta_min = 0.5;
  config.beta_max = 8.0;
  config.horizon = 2.0;
  config.steps = 37;
  const auto schedule = NoiseSchedule::from_config(config);
  const TimeGrid grid(schedule, config.steps);
  ASSERT_EQ(grid.s.size(), 38u);
  EXPECT_DOUBLE_EQ(grid.s.front(), 0.0);
  EXPECT_DOUBLE_EQ(grid.s.back(), 2.0);
  double product = 1.0;
  for (int64_t n = 0; n < grid.steps; ++n) {
    EXPECT_NEAR(grid.h[n], 2.0 / 37.0, 1e-14);
    EXPECT_DOUBLE_EQ(grid.b[n], schedule.beta(2.0 - grid.s[n]));
    // a_n = α(T − s_n) / α(T − s_{n+1}): the noising transition over the step.
    EXPECT_NEAR(grid.a[n], schedule.alpha(2.0 - grid.s[n]) / schedule.alpha(2.0 - grid.s[n + 1]),
                1e-13);
    product *= grid.a[n];
  }
  EXPECT_NEAR(product, schedule.alpha(2.0), 1e-13);
}

// The reverse step X_{n+1} = x_gain X + z_gain Z + noise ξ. Euler: the Euler–Maruyama
// coefficients. Exponential: with the untrained control Z = −√b X it is the exact OU
// transition N(a X, (1 − a²) I) (here on a linear schedule), and for constant β it agrees
// with Euler to first order in b h.
TEST(Schedule, IntegratorStepCoefficients) {
  SdeConfig config;
  config.schedule = "linear";
  config.beta_min = 0.1;
  config.beta_max = 12.0;
  config.horizon = 1.0;
  config.steps = 400;
  config.integrator = "euler";
  const TimeGrid euler(NoiseSchedule::from_config(config), config.steps);
  config.integrator = "exponential";
  const TimeGrid exponential(NoiseSchedule::from_config(config), config.steps);
  for (int64_t n = 0; n < config.steps; ++n) {
    const double b = euler.b[n], h = euler.h[n], a = exponential.a[n];
    EXPECT_DOUBLE_EQ(euler.x_gain[n], 1.0 + 0.5 * b * h);
    EXPECT_DOUBLE_EQ(euler.z_gain[n], std::sqrt(b) * h);
    EXPECT_DOUBLE_EQ(euler.noise[n], std::sqrt(b * h));
    EXPECT_NEAR(exponential.x_gain[n] - exponential.z_gain[n] * std::sqrt(b), a, 1e-14);
    EXPECT_NEAR(exponential.noise[n] * exponential.noise[n], 1.0 - a * a, 1e-14);
  }
  config.schedule = "constant";
  config.beta = 3.0;
  const TimeGrid exponential_constant(NoiseSchedule::from_config(config), config.steps);
  config.integrator = "euler";
  const TimeGrid euler_constant(NoiseSchedule::from_config(config), config.steps);
  const double bh = 3.0 / 400.0;
  EXPECT_NEAR(exponential_constant.z_gain[0] / euler_constant.z_gain[0], 1.0, bh);
  EXPECT_NEAR(exponential_constant.noise[0] / euler_constant.noise[0], 1.0, bh);
  EXPECT_NEAR(exponential_constant.x_gain[0] / euler_constant.x_gain[0], 1.0, bh * bh);
}

}  // namespace
}  // namespace rbsde
