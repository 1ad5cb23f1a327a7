#pragma once
/// \file sampler.hpp
/// Sampling the trained reverse SDE with exact discrete-time importance weights, or its
/// probability-flow ODE with approximate ones (method.md §5).
#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/results.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

struct SampleBatch {
  torch::Tensor samples;      ///< X_N, [rows, d] float64
  torch::Tensor log_weights;  ///< [rows] float64
  torch::Tensor log_target;   ///< log π̃(X_N), [rows] float64
  torch::Tensor y0_offset;    ///< c_θ + r_θ(X₀), [rows] float64
};

/// Simulates global paths [first_path, first_path + rows) of the reverse SDE with the noise of
/// `key` (the sampling stream of sample.seed for the sample), without a graph. X runs in
/// float64 (the network sees float32) and every log-kernel term is float64, as method.md §5
/// requires.
SampleBatch simulate_paths(const Target& target, BsdeModel& model, const TimeGrid& grid,
                           const NoiseKey& key, int64_t first_path, int64_t rows);

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

/// Self-normalised mean and sd per coordinate, Σ w x / Σ w and the like, accumulated batch by
/// batch with weights w = exp(log w − running maximum) (rescaled when the maximum grows) and
/// about a centre (this rank's first sample) against cancellation. A NaN log weight counts
/// as weight 0.
class MomentAccumulator {
 public:
  explicit MomentAccumulator(int64_t dim);
  /// samples [B, d] and log_weights [B], float64.
  void add(const torch::Tensor& samples, const torch::Tensor& log_weights);

  struct Moments {
    std::vector<double> mean, sd;
    double max_log_weight = 0.0;  ///< over all ranks' paths
    double total_weight = 0.0;    ///< Σ exp(log w − max_log_weight) over all ranks' paths
  };
  /// Collective: the moments over all ranks' samples (the ranks' weighted means and squared
  /// deviations are combined exactly as one pass over all samples would give them).
  Moments reduce(const Communicator& comm) const;

 private:
  double max_ = -std::numeric_limits<double>::infinity();
  double sum_w_ = 0.0;
  bool has_centre_ = false;
  torch::Tensor centre_;   // [d]
  torch::Tensor sum_wx_;   // Σ w (x − centre) [d]
  torch::Tensor sum_wx2_;  // Σ w (x − centre)² [d]
};

/// Streaming, max-shifted accumulation of log-weight statistics; reduce() combines ranks.
class EvidenceAccumulator {
 public:
  void add(const torch::Tensor& log_weights, const torch::Tensor& y0_offset);
  /// Collective: the estimates over all ranks' paths.
  Estimates reduce(const Communicator& comm) const;

 private:
  int64_t count_ = 0;
  double max_ = -std::numeric_limits<double>::infinity();
  double sum_w_ = 0.0;   // Σ exp(lw − max_)
  double sum_w2_ = 0.0;  // Σ exp(2 (lw − max_))
  double sum_lw_ = 0.0;
  double sum_lw2_ = 0.0;
  double sum_y0_ = 0.0;
};

/// Where the sampling phase's rows go: the run's output file (io/output_file.hpp) or, in
/// tests, memory. Both calls are collective over the sampling communicator.
class SampleSink {
 public:
  virtual ~SampleSink() = default;
  /// Room for `count` rows of dimension `dim` (/samples, /log_weights, /paths/*).
  virtual void create_samples(int64_t count, int64_t dim) = 0;
  /// This rank's `rows` rows at global row `offset` (rows may be 0).
  virtual void write_samples(int64_t offset, int64_t rows, const PathRows& data) = 0;
};

/// What the sampling phase measured, identical on every rank.
struct SampleSummary {
  Estimates estimates;          ///< with the self-normalised posterior mean and sd
  double max_log_weight = 0.0;  ///< over all ranks' paths (resampling's fixed point)
  /// The unweighted variance of the paths' end points per coordinate, in the coordinates the
  /// paths ran in (x̂ when preconditioned): the proposal's spread, HMC's preconditioner. Unlike
  /// the weighted variance it stays a good scale when the weights are degenerate.
  std::vector<double> proposal_variance;
};

/// Collective: draws sample.count paths of the trained model (SDE with exact weights, or the
/// probability-flow ODE), shared over the ranks of `comm` in contiguous ranges (offsets by
/// MPI_Exscan) and simulated sample.batch at a time, writes them into `sink` and accumulates
/// the evidence estimates and the self-normalised moments. When `target` is preconditioned,
/// the paths run in x̂ and are written and estimated in the inner target's coordinates
/// x = m + L x̂: log weights and network estimates gain log |det L|. Rank 0 prints the sampler
/// and the progress of the batches.
SampleSummary draw_samples(SampleSink& sink, const Target& target, BsdeModel& model,
                           const NoiseSchedule& schedule, const Config& config,
                           const Communicator& comm);

}  // namespace rbsde
