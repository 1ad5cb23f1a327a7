#include "rbsde/core/schedule.hpp"

#include <cmath>

#include "rbsde/core/config.hpp"
#include "rbsde/error.hpp"

namespace rbsde {

NoiseSchedule NoiseSchedule::from_config(const SdeConfig& config) {
  NoiseSchedule schedule;
  schedule.horizon = config.horizon;
  schedule.exponential = config.integrator == "exponential";
  if (config.schedule == "constant") {
    schedule.kind = Kind::kConstant;
    schedule.beta_min = schedule.beta_max = config.beta;
  } else if (config.schedule == "linear") {
    schedule.kind = Kind::kLinear;
    schedule.beta_min = config.beta_min;
    schedule.beta_max = config.beta_max;
  } else {
    throw Error("sde.schedule: unknown schedule '" + config.schedule +
                "' (accepted: constant, linear)");
  }
  return schedule;
}

double NoiseSchedule::beta(double t) const {
  if (kind == Kind::kConstant) return beta_min;
  return beta_min + (beta_max - beta_min) * t / horizon;
}

double NoiseSchedule::integral(double t) const {
  if (kind == Kind::kConstant) return beta_min * t;
  return beta_min * t + 0.5 * (beta_max - beta_min) * t * t / horizon;
}

double NoiseSchedule::root_b(double s) const { return std::sqrt(b(s)); }

double NoiseSchedule::alpha(double t) const { return std::exp(-0.5 * integral(t)); }

double NoiseSchedule::sigma2(double t) const {
  return -std::expm1(-integral(t));  // 1 − α², accurate for small t
}

TimeGrid::TimeGrid(const NoiseSchedule& schedule, int64_t n_steps) : steps(n_steps) {
  if (n_steps < 1) throw Error("sde.steps: must be at least 1, got " + std::to_string(n_steps));
  const double T = schedule.horizon;
  s.resize(steps + 1);
  for (int64_t n = 0; n <= steps; ++n)
    s[n] = T * static_cast<double>(n) / static_cast<double>(steps);
  s[steps] = T;
  h.resize(steps);
  b.resize(steps);
  root_b.resize(steps);
  a.resize(steps);
  for (int64_t n = 0; n < steps; ++n) {
    h[n] = s[n + 1] - s[n];
    b[n] = schedule.b(s[n]);
    root_b[n] = schedule.root_b(s[n]);
    // ∫_{s_n}^{s_{n+1}} b(s) ds = ∫_{T−s_{n+1}}^{T−s_n} β(t) dt.
    const double integral = schedule.integral(T - s[n]) - schedule.integral(T - s[n + 1]);
    a[n] = std::exp(-0.5 * integral);
  }
  x_gain.resize(steps);
  z_gain.resize(steps);
  noise.resize(steps);
  for (int64_t n = 0; n < steps; ++n) {
    if (schedule.exponential) {
      const double one_minus_a = -std::expm1(std::log(a[n]));  // 1 − a, accurate for a ≈ 1
      x_gain[n] = 1.0 + one_minus_a;
      z_gain[n] = 2.0 * one_minus_a / root_b[n];
      noise[n] = std::sqrt(one_minus_a * (1.0 + a[n]));  // √(1 − a²)
    } else {
      x_gain[n] = 1.0 + 0.5 * b[n] * h[n];
      z_gain[n] = root_b[n] * h[n];
      noise[n] = std::sqrt(b[n] * h[n]);
    }
  }
}

}  // namespace rbsde
