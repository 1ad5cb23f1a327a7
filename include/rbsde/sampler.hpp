#pragma once
/// \file sampler.hpp
/// Sampling the trained reverse SDE with exact discrete-time importance weights (method.md §5).
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
