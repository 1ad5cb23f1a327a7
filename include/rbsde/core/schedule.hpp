#pragma once
/// \file schedule.hpp
/// Noise schedules of the variance-preserving SDE and the reverse-time grid (method.md §2, §4).
#include <cstdint>
#include <vector>

namespace rbsde {

struct SdeConfig;

/// β(t) on [0, T]: constant, or linear from beta_min at t = 0 to beta_max at t = T.
struct NoiseSchedule {
  enum class Kind { kConstant, kLinear };
  Kind kind = Kind::kConstant;
  double beta_min = 2.0;  ///< β for kConstant
  double beta_max = 2.0;
  double horizon = 4.0;  ///< T
  /// How a reverse step is discretised (sde.integrator): Euler–Maruyama, or exponential
  /// (the linear part of the drift integrated exactly: method.md §4's exponential integrator).
  bool exponential = false;

  static NoiseSchedule from_config(const SdeConfig& config);

  double beta(double t) const;
  /// ∫₀ᵗ β.
  double integral(double t) const;
  /// α(t) = exp(−½ ∫₀ᵗ β): X_t | X_0 ~ N(α X_0, σ² I).
  double alpha(double t) const;
  /// σ²(t) = 1 − α(t)².
  double sigma2(double t) const;
  /// Reverse-time coefficient b(s) = β(T − s).
  double b(double s) const { return beta(horizon - s); }
  /// √b(s): the one place √b is taken (the model's Z = −√b x + …, the steps, the flow).
  double root_b(double s) const;
};

/// The uniform grid s_n = n T / N of the reverse SDE with per-step coefficients.
struct TimeGrid {
  int64_t steps = 0;           ///< N
  std::vector<double> s;       ///< s_0 … s_N
  std::vector<double> h;       ///< h_n = s_{n+1} − s_n
  std::vector<double> b;       ///< b_n = b(s_n)
  std::vector<double> root_b;  ///< √b_n = NoiseSchedule::root_b(s_n)
  /// a_n = exp(−½ ∫_{s_n}^{s_{n+1}} b): the exact noising transition over step n runs
  /// backwards as k_n(x_n | x_{n+1}) = N(a_n x_{n+1}, (1 − a_n²) I) (method.md §5).
  std::vector<double> a;
  /// The reverse step X_{n+1} = x_gain_n X_n + z_gain_n Z_n + noise_n ξ_n, ξ_n ~ N(0, I):
  ///   Euler:        1 + ½ b h,  √b h,              √(b h)
  ///   exponential:  2 − a,      2 (1 − a) / √b,    √(1 − a²)
  /// The exponential step writes Z = −√b X + Z̃ (the model's split) and integrates the linear
  /// part exactly: X_{n+1} = a X_n + 2 (1 − a)/√b Z̃_n + √(1 − a²) ξ_n. With Z̃ = 0 it is the
  /// exact stationary OU transition, so the untrained model's weights for N(0, I) are exact
  /// in any dimension, where Euler's per-step mismatch adds a weight variance growing with d.
  std::vector<double> x_gain, z_gain, noise;

  TimeGrid(const NoiseSchedule& schedule, int64_t steps);
};

/// The gains of one reverse step, X_{n+1} = x_gain X_n + z_gain Z_n + noise ξ_n.
struct StepGains {
  double x_gain, z_gain, noise;
};

}  // namespace rbsde
