#pragma once
/// \file timers.hpp
/// Wall-clock time per phase of a run on each rank, and its minimum, mean and maximum over the
/// ranks: the /timing group of the output file and the table at the end of a run.
#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// The phases a run's time is split into. Training: kNoise to kOptimizer, which do not
/// overlap; what else a training iteration does (the loss and its factors, the constant
/// update, progress output, checkpoints) is the rest of train_s. kSampling is the sampling phase
/// (paths, estimates, resampling, HMC refinement) without its HDF5 writes, which are kOutput.
enum class Phase {
  kNoise,       ///< the Gaussian increments ξ and X₀ (counter-based noise)
  kPathKernel,  ///< the reverse step's X and Y updates
  kForward,     ///< the network Z_θ and Y₀ (forward, recording the hidden layers)
  kTarget,      ///< the terminal condition log π̃(X_N)
  kBackward,    ///< the gradient of the loss (hand-written backward or autograd)
  kAllreduce,   ///< the gradient and diagnostics all-reduces, waiting for other ranks included
  kOptimizer,   ///< gradient clipping and the Adam step
  kSampling,
  kOutput,
};
inline constexpr int kPhaseCount = 9;

/// The phase's name in /timing and the table: noise, path_kernel, forward, ...
const char* phase_name(Phase phase);

/// Adds the seconds from its construction to its destruction to a total.
class ScopedSeconds {
 public:
  explicit ScopedSeconds(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~ScopedSeconds() {
    total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  ScopedSeconds(const ScopedSeconds&) = delete;
  ScopedSeconds& operator=(const ScopedSeconds&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

/// Seconds per phase on this rank.
class PhaseTimers {
 public:
  [[nodiscard]] ScopedSeconds measure(Phase phase) {
    return ScopedSeconds(seconds_[static_cast<int>(phase)]);
  }
  void add(Phase phase, double seconds) { seconds_[static_cast<int>(phase)] += seconds; }
  double seconds(Phase phase) const { return seconds_[static_cast<int>(phase)]; }

 private:
  std::array<double, kPhaseCount> seconds_{};
};

/// One phase's seconds over the ranks.
struct PhaseTiming {
  std::string phase;
  double min = 0.0, mean = 0.0, max = 0.0;
};

/// What /timing holds: the phases over the ranks and the run's shape.
struct TimingTable {
  std::vector<PhaseTiming> phases;  ///< kPhaseCount rows, in Phase order
  int ranks = 1;
  int threads = 1;    ///< per rank
  int64_t paths = 0;  ///< train.paths (all ranks)
  int64_t dimension = 0;
  int64_t parameters = 0;              ///< the network's: the floats all-reduced per iteration
  int64_t iterations = 0;              ///< training iterations this process ran (0: none)
  double train_seconds = 0.0;          ///< the training phase's wall clock, slowest rank
  double seconds_per_iteration = 0.0;  ///< train_seconds / iterations (NaN without training)
};

/// Collective: every rank's seconds per phase reduced to min, mean and max over `comm`.
std::vector<PhaseTiming> reduce_phase_timers(const PhaseTimers& timers, const Communicator& comm);

}  // namespace rbsde
