#pragma once
/// \file step.hpp
/// One step n of the discretised reverse SDE (method.md §4, §5), the only place it is written:
///   X_{n+1} = X_n + (x_gain − 1) X_n + z_gain u_n + noise ξ_n       the X update
///   log w  += log k_n(X_n | X_{n+1}) − log q_n(X_{n+1} | X_n)        the log-weight increment
///   Y_{n+1} = Y_n + log q_n(X_{n+1} | X_n) − log k_n(X_n | X_{n+1})   train.y_step: exact
///   Y_{n+1} = Y_n + (u·Z − ½|Z|²) h − ½ b d h + √h Z·ξ_n            train.y_step: euler
/// The exact Y step is the discrete model's log-density ratio, so that on every path
/// Y_N − log π̃(X_N) = Y₀ − log N(X₀; 0, I) − log w: the loss is the variance of the log
/// weight the sampler reports — exactly so on the model's own paths (train.explore = 0), with
/// Y₀ = log N(X₀; 0, I) + c (network.y0_residual off) and γ = 1 (after any annealing); with
/// exploration paths, a residual r_θ(X₀) or γ < 1 it is the variance of a related log ratio.
/// The Euler step (the seed method's, for a control u) differs from
/// it by the Euler error of the Y equation, which grows with d.
/// The gains are the grid's (Euler or exponential, TimeGrid) or, with the network's gain head,
/// the exact linear step of each coordinate (gain_step). Training runs the paths in float32
/// (training_step), the SDE sampler in float64 (weighted_step), the coupled trainer on
/// differentiable tensors (LinearStep, log_weight_increment and y_increment on torch::Tensor);
/// the probability-flow ODE sampler's step takes its drift and divergence from flow_drift and
/// flow_divergence.
#include <cstdint>

#include "rbsde/core/schedule.hpp"

namespace rbsde {

/// The per-step constants of step n, computed once per step.
struct StepConstants {
  StepConstants(const TimeGrid& grid, int64_t n, int64_t dim);
  double b, h;
  double root_b;            ///< √b_n, the one √b of a step
  double root_h;            ///< √h_n: ΔB_n = √h ξ_n
  double a;                 ///< k_n's contraction a_n
  double log_a;             ///< log a_n = −½ ∫ b over the step
  double k_variance;        ///< 1 − a_n², k_n's variance
  double y_constant;        ///< −½ b d h, the Y driver's part that depends on neither Z nor u
  double k_log_normaliser;  ///< −½ d log(1 − a_n²), k_n's normalising constant without 2π
  StepGains grid_gains;     ///< the grid's gains (Euler or exponential)
  double grid_log_noises;   ///< d log(noise) of the grid's step: −q_n's normaliser without 2π
};

/// How training accumulates Y along a path (train.y_step).
enum class YStep {
  kExact,  ///< Y_{n+1} = Y_n + log q_n(X_{n+1} | X_n) − log k_n(X_n | X_{n+1})
  kEuler,  ///< the Euler step of dY for a control u (method.md §4)
};

/// One coordinate's gains of step n under the network's gain G (network.gain, exponential
/// integrator). With Z = A + (G − √b) X the reverse SDE's linear part is dX = λ X ds,
/// λ = √b G − ½ b; it is integrated exactly over the step with G frozen (λ h = log a_n +
/// √b_n G h_n), so that the large negative gains of a narrow region (the funnel's neck)
/// contract without the overshoot of an explicit step. With G = 0 it is the grid's
/// exponential step up to the variation of b within the step.
StepGains gain_step(const StepConstants& step, double gain);

/// The X update X + x_drift X + z_gain u + noise ξ with its coefficients in T (float for the
/// float32 training kernel, double otherwise); also on tensors, for the coupled trainer.
template <typename T>
struct LinearStep {
  explicit LinearStep(const StepGains& gains)
      : x_drift(static_cast<T>(gains.x_gain - 1.0)),
        z_gain(static_cast<T>(gains.z_gain)),
        noise(static_cast<T>(gains.noise)) {}
  template <typename X, typename U, typename Xi>
  auto operator()(const X& x, const U& u, const Xi& xi) const {
    return x + x_drift * x + z_gain * u + noise * xi;
  }
  T x_drift, z_gain, noise;
};

/// The Y driver's increment for control u: (u·Z − ½|Z|²) h − ½ b d h + √h Z·ξ. On the model's
/// own paths u = Z and u·Z = |Z|².
template <typename T>
T y_increment(const StepConstants& step, const T& u_dot_z, const T& z_squared, const T& z_dot_xi) {
  return (u_dot_z - 0.5 * z_squared) * step.h + step.y_constant + step.root_h * z_dot_xi;
}

/// The step's log-weight increment log k_n(x_n | x_{n+1}) − log q_n(x_{n+1} | x_n) of a path
/// from q_residual2 = |(x_{n+1} − q_n's mean) / q_n's noise|², log_q_noises = Σ_j log of q_n's
/// noise of coordinate j, and k_residual2 = |x_n − a x_{n+1}|², every Gaussian normalising
/// constant kept (the 2π of q_n and k_n cancel). T: double, or a float64 tensor [B].
template <typename T>
T log_weight_increment(const StepConstants& step, const T& q_residual2, double log_q_noises,
                       const T& k_residual2) {
  return (-0.5 / step.k_variance) * k_residual2 + 0.5 * q_residual2 +
         (log_q_noises + step.k_log_normaliser);
}

/// Step n of `rows` training paths in float32, in place on raw memory: X_{n+1} into x_next and
/// the Y increment of `y_step` added to y (float64). Paths i < `explorers` follow the
/// reference control u = −√b X on the grid's step (the stationary OU process, whose
/// X_N ~ N(0, I) covers every mode), the others the model's own, u = Z, with the gain head's
/// gains where `gain` is not null. ξ_n is overwritten by ∂(Y_{n+1} − Y_n)/∂Z_n with the paths
/// (and the step's gains) held fixed, the weight of the gradient pass (method.md §4): for the
/// Euler step ΔB_n + (u − Z) h; for the exact step (z_gain / noise) ξ'_n, ξ'_n the standardised
/// residual of X_{n+1} under q_n (ξ_n itself on the model's own paths).
void training_step(const StepConstants& step, YStep y_step, const float* x, const float* z,
                   const float* gain, float* xi, float* x_next, double* y, int64_t rows,
                   int64_t explorers, int64_t dim);

/// Step n of `rows` sampling paths in float64, in place, with the step's log-weight increment
/// log k_n(X_n | X_{n+1}) − log q_n(X_{n+1} | X_n): q_n = N(X_n + x_drift X_n + z_gain Z_n,
/// noise² I) (its exponent is −½|ξ_n|²) and k_n = N(a X_{n+1}, (1 − a²) I), every Gaussian
/// normalising constant kept; with the gain head, q_n's variance is per coordinate.
void weighted_step(const StepConstants& step, double* x, const float* z, const float* gain,
                   const double* xi, double* log_weight, int64_t rows, int64_t dim);

/// The log-weight increment log k_n(x_n | x_{n+1}) − log q_n(x_{n+1} | x_n) of a given pair of
/// points of `rows` paths (float64, in place on log_weight): weighted_step's increment for a
/// path that did not come from q_n (the noising process's path of an independence move,
/// bsde/independence.hpp). On the pair weighted_step made, the two agree to rounding.
void path_log_weight_step(const StepConstants& step, const double* x, const double* x_next,
                          const float* z, const float* gain, double* log_weight, int64_t rows,
                          int64_t dim);

/// The probability-flow ODE's drift f = ½ b X + ½ √b Z at a time with coefficient b (method.md
/// §5), on float64 tensors.
template <typename X, typename Z>
auto flow_drift(double b, double root_b, const X& x, const Z& z) {
  return 0.5 * b * x + (0.5 * root_b) * z;
}

/// div f = ½ b d + ½ √b div Z (the −√b x part of Z contributes −√b d to div Z).
template <typename D>
auto flow_divergence(double b, double root_b, int64_t dim, const D& z_divergence) {
  return 0.5 * b * static_cast<double>(dim) + 0.5 * root_b * z_divergence;
}

}  // namespace rbsde
