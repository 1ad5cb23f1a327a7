#pragma once
/// \file sampler.hpp
/// Sampling the trained reverse SDE with exact discrete-time importance weights, or its
/// probability-flow ODE with approximate ones (method.md §5).
#include <torch/torch.h>

#include "rbsde/communicator.hpp"
#include "rbsde/model.hpp"
#include "rbsde/noise.hpp"
#include "rbsde/output_file.hpp"
#include "rbsde/schedule.hpp"
#include "rbsde/target.hpp"

namespace rbsde {

struct SampleBatch {
  torch::Tensor samples;      ///< X_N, [rows, d] float64
  torch::Tensor log_weights;  ///< [rows] float64
  torch::Tensor log_target;   ///< log π̃(X_N), [rows] float64
  torch::Tensor y0_offset;    ///< c_θ + r_θ(X₀), [rows] float64
};

/// Simulates global paths [first_path, first_path + rows) of the reverse SDE with noise from
/// the sampling stream of `seed`, without a graph. X runs in float64 (the network sees
/// float32) and every log-kernel term is float64, as method.md §5 requires.
SampleBatch simulate_paths(const Target& target, BsdeModel& model, const TimeGrid& grid,
                           uint64_t seed, int64_t first_path, int64_t rows);

/// How the ODE sampler evaluates div_x Z_θ.
enum class Divergence {
  kExact,       ///< the Jacobian trace by d vector–Jacobian products
  kHutchinson,  ///< mean of vᵀ (∂Z/∂x) v over Rademacher probes v: unbiased, noisy
};

/// sample.divergence: auto is exact up to this dimension, Hutchinson above it.
inline constexpr int64_t kExactDivergenceMaxDim = 32;

/// sample.divergence resolved for target dimension `dim`.
Divergence choose_divergence(const SampleConfig& sample, int64_t dim);

/// Z_θ(s, x) and div_x Z_θ(s, x) at one time for the rows of x [B, d], both [B, ·] in x's
/// dtype and without a graph.
struct ZDivergence {
  torch::Tensor z;           ///< [B, d]
  torch::Tensor divergence;  ///< [B]
};

/// Exact divergence: the rows of the network are independent, so the vector–Jacobian product
/// of Σ_i Z_θ(s, x_i)_j gives the j-th Jacobian row of every row at once; d of them.
ZDivergence z_divergence_exact(BsdeModel& model, double s, const torch::Tensor& x);

/// Hutchinson's estimate (1/K) Σ_k v_kᵀ (∂Z/∂x) v_k with probes [K, B, d] in x's dtype, one
/// vector–Jacobian product each; unbiased when the probes have mean 0 and covariance I.
ZDivergence z_divergence_hutchinson(BsdeModel& model, double s, const torch::Tensor& x,
                                    const torch::Tensor& probes);

/// Integrates the probability-flow ODE dX/ds = ½ b X + ½ √b Z_θ(s, X) from X₀ ~ N(0, I) (the
/// same X₀ as simulate_paths for `seed`) over the grid with the midpoint rule, together with
/// the model's log-density log q(X_N) = log N(X₀) − Σ_n h_n div f(s_n + h_n/2, X_mid). X and
/// log q run in float64, the network in float32. log w = log π̃(X_N) − log q(X_N) is NOT an
/// exact importance weight: it carries the discretisation error of the flow and of its
/// log-density, and with Hutchinson probes (`probes` of them, keyed by global path index in
/// the kProbes stream of `seed`) log q is noisy, which biases exp(log w).
SampleBatch simulate_flow(const Target& target, BsdeModel& model, const NoiseSchedule& schedule,
                          const TimeGrid& grid, uint64_t seed, int64_t first_path, int64_t rows,
                          Divergence divergence, int64_t probes);

/// Streaming, max-shifted accumulation of log-weight statistics; reduce() combines ranks.
class EvidenceAccumulator {
 public:
  void add(const torch::Tensor& log_weights, const torch::Tensor& y0_offset);
  /// Collective: the estimates over all ranks' paths.
  Estimates reduce(const Communicator& comm) const;

 private:
  int64_t count_ = 0;
  double max_ = -std::numeric_limits<double>::infinity();
  double sum_w_ = 0.0;    // Σ exp(lw − max_)
  double sum_w2_ = 0.0;   // Σ exp(2 (lw − max_))
  double sum_lw_ = 0.0;
  double sum_lw2_ = 0.0;
  double sum_y0_ = 0.0;
};

}  // namespace rbsde
