#include "rbsde/bsde/step.hpp"

#include <cmath>

#include "rbsde/parallel/parallel_for.hpp"

namespace rbsde {

namespace {
/// (e^r − 1) / r, continuous at r = 0.
double phi(double r) { return std::abs(r) < 1e-8 ? 1.0 + 0.5 * r : std::expm1(r) / r; }
}  // namespace

StepConstants::StepConstants(const TimeGrid& grid, int64_t n, int64_t dim)
    : b(grid.b[n]),
      h(grid.h[n]),
      root_b(grid.root_b[n]),
      root_h(std::sqrt(h)),
      a(grid.a[n]),
      log_a(std::log(a)),
      k_variance(-std::expm1(2.0 * log_a)),  // 1 − a², accurate for a ≈ 1
      y_constant(-0.5 * b * static_cast<double>(dim) * h),
      k_log_normaliser(-0.5 * static_cast<double>(dim) * std::log(k_variance)),
      grid_gains{grid.x_gain[n], grid.z_gain[n], grid.noise[n]},
      grid_log_noises(static_cast<double>(dim) * std::log(grid_gains.noise)) {}

StepGains gain_step(const StepConstants& step, double gain) {
  const double rate = step.log_a + step.root_b * gain * step.h;  // λ h
  // X_{n+1} = e^{λh} X + (e^{λh} − 1)/λ √b A + √(b (e^{2λh} − 1)/(2λ)) ξ, A = Z − (G − √b) X.
  const double a_gain = step.root_b * step.h * phi(rate);
  return {std::exp(rate) - a_gain * (gain - step.root_b), a_gain,
          std::sqrt(step.b * step.h * phi(2.0 * rate))};
}

void training_step(const StepConstants& step, YStep y_step, const float* x, const float* z,
                   const float* gain, float* xi, float* x_next, double* y, int64_t rows,
                   int64_t explorers, int64_t dim) {
  const LinearStep<float> grid_step(step.grid_gains);
  const float reference_gain = static_cast<float>(-step.root_b);
  const float root_h = static_cast<float>(step.root_h);
  for_each_path(rows, [=](int64_t i) {
    float* xi_row = xi + i * dim;
    const float* x_row = x + i * dim;
    const float* z_row = z + i * dim;
    const float* gain_row = gain != nullptr ? gain + i * dim : nullptr;
    float* next_row = x_next + i * dim;
    const bool own = i >= explorers;
    // Euler: u·Z, |Z|², Z·ξ. Exact: |ξ'|², Σ log noise (gain head), |X_n − a X_{n+1}|².
    double sums[3] = {0.0, 0.0, 0.0};
    for (int64_t j = 0; j < dim; ++j) {
      // The model's step q_n: the gain head's gains, else the grid's (an explorer's Euler Y
      // step needs neither: it moves on the grid's step).
      const StepGains gains = gain_row != nullptr && (own || y_step == YStep::kExact)
                                  ? gain_step(step, gain_row[j])
                                  : step.grid_gains;
      const float u = own ? z_row[j] : reference_gain * x_row[j];
      if (own && gain_row != nullptr) {
        next_row[j] = static_cast<float>(
            LinearStep<double>(gains)(static_cast<double>(x_row[j]), z_row[j], xi_row[j]));
      } else {
        next_row[j] = grid_step(x_row[j], u, xi_row[j]);
      }
      if (y_step == YStep::kEuler) {
        sums[0] += static_cast<double>(u) * z_row[j];
        sums[1] += static_cast<double>(z_row[j]) * z_row[j];
        sums[2] += static_cast<double>(z_row[j]) * xi_row[j];
        xi_row[j] = root_h * (xi_row[j] + (u - z_row[j]) * root_h);
      } else {
        const double x_now = x_row[j], x_new = next_row[j];
        const double q_residual =
            (x_new - LinearStep<double>(gains)(x_now, z_row[j], 0.0)) / gains.noise;
        const double k_residual = x_now - step.a * x_new;
        sums[0] += q_residual * q_residual;
        if (gain_row != nullptr) sums[1] += std::log(gains.noise);
        sums[2] += k_residual * k_residual;
        xi_row[j] = static_cast<float>(gains.z_gain / gains.noise * q_residual);
      }
    }
    if (y_step == YStep::kEuler) {
      y[i] += y_increment(step, sums[0], sums[1], sums[2]);
    } else {
      y[i] -= log_weight_increment(step, sums[0],
                                   gain_row != nullptr ? sums[1] : step.grid_log_noises, sums[2]);
    }
  });
}

void weighted_step(const StepConstants& step, double* x, const float* z, const float* gain,
                   const double* xi, double* log_weight, int64_t rows, int64_t dim) {
  const LinearStep<double> grid_step(step.grid_gains);
  for_each_path(rows, [=](int64_t i) {
    double* x_row = x + i * dim;
    const float* z_row = z + i * dim;
    const double* xi_row = xi + i * dim;
    double xi2 = 0.0, k_residual2 = 0.0, log_noises = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      const double x_now = x_row[j];
      double x_next;
      if (gain != nullptr) {
        const StepGains own = gain_step(step, gain[i * dim + j]);
        x_next = LinearStep<double>(own)(x_now, z_row[j], xi_row[j]);
        log_noises += std::log(own.noise);
      } else {
        x_next = grid_step(x_now, z_row[j], xi_row[j]);
      }
      const double k_residual = x_now - step.a * x_next;
      xi2 += xi_row[j] * xi_row[j];
      k_residual2 += k_residual * k_residual;
      x_row[j] = x_next;
    }
    log_weight[i] += log_weight_increment(
        step, xi2, gain != nullptr ? log_noises : step.grid_log_noises, k_residual2);
  });
}

void path_log_weight_step(const StepConstants& step, const double* x, const double* x_next,
                          const float* z, const float* gain, double* log_weight, int64_t rows,
                          int64_t dim) {
  for_each_path(rows, [=](int64_t i) {
    const double* x_row = x + i * dim;
    const double* next_row = x_next + i * dim;
    const float* z_row = z + i * dim;
    double q_residual2 = 0.0, k_residual2 = 0.0, log_noises = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      const StepGains gains =
          gain != nullptr ? gain_step(step, gain[i * dim + j]) : step.grid_gains;
      const double q_residual =
          (next_row[j] - LinearStep<double>(gains)(x_row[j], z_row[j], 0.0)) / gains.noise;
      const double k_residual = x_row[j] - step.a * next_row[j];
      q_residual2 += q_residual * q_residual;
      k_residual2 += k_residual * k_residual;
      if (gain != nullptr) log_noises += std::log(gains.noise);
    }
    log_weight[i] += log_weight_increment(
        step, q_residual2, gain != nullptr ? log_noises : step.grid_log_noises, k_residual2);
  });
}

}  // namespace rbsde
