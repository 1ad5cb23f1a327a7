#pragma once
/// \file results.hpp
/// What training, sampling and the reference sampler produce, as plain structs: the io layer
/// writes them (io/output_file.hpp), the app layer prints them.
#include <cstdint>
#include <string>
#include <vector>

namespace rbsde {

/// Per-iteration training record, identical on every rank.
struct TrainingHistory {
  std::vector<double> loss;   ///< variance of the terminal residual Y_N − log π̃_γ(X_N)
  std::vector<double> log_z;  ///< the network's estimate c_θ after the iteration
  std::vector<double> time;   ///< wall seconds since training began
  std::vector<double> gamma;  ///< annealing exponent γ used in the iteration
};

/// Evidence and weight diagnostics of a sample (method.md §5), identical on every rank.
struct Estimates {
  int64_t count = 0;
  double log_z_is = 0.0;         ///< logsumexp(log w) − log M
  double log_z_is_stderr = 0.0;  ///< delta-method standard error √(1/ESS − 1/M)
  double log_z_network = 0.0;    ///< c_θ + mean r_θ(X₀)
  double elbo = 0.0;             ///< mean(log w)
  double elbo_stderr = 0.0;
  double ess = 0.0;           ///< (Σw)² / Σw²
  double ess_fraction = 0.0;  ///< ESS / M
  /// Paths whose log π̃(X_N) is −∞: their weight is zero (counted in `count`, the M of ESS/M).
  int64_t zero_weight_paths = 0;
  /// PSIS (psis.hpp): k̂ of the largest `pareto_tail` weights (NaN below 21 paths) and the
  /// k̂ above which the weights are not to be trusted.
  double pareto_k = 0.0;
  int64_t pareto_tail = 0;
  double pareto_k_threshold = 0.0;
  std::string method = "sde";  ///< the sampler: sde (exact weights) | ode (approximate weights)
  std::string divergence;      ///< ode: exact | hutchinson; empty for sde
  /// Self-normalised posterior mean and sd per coordinate (posterior.hpp); written as the
  /// datasets /estimates/posterior_mean and /estimates/posterior_sd when not empty.
  std::vector<double> posterior_mean;
  std::vector<double> posterior_sd;
  /// sample.psis: the same moments with Pareto-smoothed weights (/estimates/psis_mean, _sd).
  std::vector<double> psis_mean;
  std::vector<double> psis_sd;
};

/// What a reference sampler measured, identical on every rank: the long-run MALA chains
/// (mcmc.hpp, method "mala") or adaptive-tempering SMC (smc.hpp, method "smc").
struct ReferenceMoments {
  std::string method = "mala";
  std::vector<double> mean;  ///< posterior mean per coordinate
  std::vector<double> sd;    ///< posterior standard deviation per coordinate
  /// Monte Carlo standard error of `mean`: across chains (mala), across runs (smc)
  std::vector<double> mean_stderr;
  double acceptance_rate = 0.0;  ///< over the sampling steps (mala) or all moves (smc)
  double step_size = 0.0;        ///< MALA step size after the warm-up (smc: the last one)
  int64_t chains = 0;            ///< chains (mala) or particles (smc)
  int64_t warmup = 0;            ///< mala: adaptation steps per chain
  int64_t steps = 0;             ///< sampling steps per chain (mala), moves per temperature (smc)
  // smc only:
  std::vector<double> log_z_runs;  ///< log 𝒵̂ of each independent run
  /// log of the runs' mean 𝒵̂ (smc.hpp combine_log_z_runs), not the mean of their log 𝒵̂
  double log_z = 0.0;
  /// by the delta method: the sd of 𝒵̂ / mean 𝒵̂ over the runs / √runs (NaN for one run)
  double log_z_stderr = 0.0;
  int64_t temperatures = 0;  ///< tempering steps, all runs
  int64_t evaluations = 0;   ///< evaluations of log π̃ (most with ∇), all particles and runs
};

/// One rank's rows of the per-path datasets (each `rows` long; `samples` rows × d).
struct PathRows {
  const float* samples = nullptr;         ///< /samples: X_N
  const double* log_weights = nullptr;    ///< /log_weights
  const double* log_target = nullptr;     ///< /paths/log_target: log π̃(X_N)
  const double* network_log_z = nullptr;  ///< /paths/network_log_z: c_θ + r_θ(X₀)
};

}  // namespace rbsde
