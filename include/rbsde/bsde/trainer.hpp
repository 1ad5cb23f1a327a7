#pragma once
/// \file trainer.hpp
/// Deep-BSDE training with paths sharded over the ranks of a communicator (method.md §4, §7).
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/objective.hpp"
#include "rbsde/bsde/results.hpp"
#include "rbsde/bsde/step.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/parallel/communicator.hpp"
#include "rbsde/parallel/timers.hpp"

namespace rbsde {

/// What one training iteration measured, identical on every rank.
struct StepResult {
  double loss = 0.0;           ///< variance of the residual r = Y_N − log π̃_γ(X_N)
  double mean_residual = 0.0;  ///< mean r before the constant update
  double gamma = 1.0;
  bool stop_requested = false;        ///< some rank received SIGTERM or SIGINT
  bool checkpoint_requested = false;  ///< some rank received SIGUSR1
  /// Paths of all ranks whose terminal condition log π̃_γ(X_N) is NaN, +∞ or −∞.
  int64_t terminal_nan = 0, terminal_plus_inf = 0, terminal_minus_inf = 0;
};

class Trainer {
 public:
  Trainer(const Target& target, BsdeModel model, const SdeConfig& sde, const TrainConfig& train,
          const Communicator& comm);

  /// Runs the remaining of train.iterations steps; rank 0 prints progress at
  /// train.log_every. With a checkpoint writer, calls it (collectively) every
  /// train.checkpoint_every iterations, on SIGUSR1, and on SIGTERM/SIGINT, after which it
  /// returns early with stopped() true.
  TrainingHistory train();
  /// What writes a checkpoint of this trainer (io/checkpoint.hpp); none by default.
  using CheckpointWriter = std::function<void(const Trainer&)>;
  void set_checkpoint_writer(CheckpointWriter writer) { checkpoint_ = std::move(writer); }
  /// The state a checkpoint holds besides the model and the optimizer.
  const TrainingHistory& history() const { return history_; }
  BsdeModel& model() { return model_; }
  const BsdeModel& model() const { return model_; }
  torch::optim::Adam& optimizer() { return *optimizer_; }
  const torch::optim::Adam& optimizer() const { return *optimizer_; }
  /// Continues from a checkpoint's iteration and history (its model and optimizer state are
  /// loaded into model() and optimizer()).
  void restore(int64_t next_iteration, TrainingHistory history);
  /// The next iteration to run (0 for a fresh run).
  int64_t next_iteration() const { return next_iteration_; }
  /// Whether a signal stopped the last train() early.
  bool stopped() const { return stopped_; }
  /// One iteration (0-based): compute_gradients, one fused gradient all-reduce, clip, Adam
  /// step, optimal-constant update.
  StepResult step(int64_t iteration);
  /// Simulates this rank's paths of an iteration and leaves this rank's share of ∇L in the
  /// parameters' .grad() (before the all-reduce).
  StepResult compute_gradients(int64_t iteration);
  /// The annealed terminal condition of the run (objective.hpp).
  const Annealing& annealing() const { return annealing_; }
  /// This rank's seconds in the training phases (kNoise to kOptimizer) since construction.
  const PhaseTimers& timers() const { return timers_; }
  /// The iterations run by this trainer since construction (not those of a resumed run's
  /// checkpoint): what timers() measured.
  int64_t iterations_run() const { return iterations_run_; }

 private:
  StepResult step_detached(int64_t iteration, double gamma);
  StepResult step_coupled(int64_t iteration, double gamma);
  /// Sums the gradients of all ranks with one MPI_Allreduce on a flat buffer.
  void allreduce_gradients();
  /// One reduction over ranks of the residual moments and the signal requests: fills
  /// loss, mean_residual and the signal fields of a StepResult.
  StepResult reduce_diagnostics(const torch::Tensor& residual, const torch::Tensor& terminal,
                                double gamma);
  /// The error of a non-finite loss at `iteration` (1-based), with the counts of non-finite
  /// terminal values.
  CollectiveError diverged(int64_t iteration, const StepResult& result) const;

  const Target& target_;
  BsdeModel model_;
  TrainConfig train_;
  NoiseSchedule schedule_;
  TimeGrid grid_;
  const Communicator& comm_;
  PathRange paths_;
  Annealing annealing_;
  LearningRate learning_rate_;
  ResidualLoss loss_;
  YStep y_step_;  // train.y_step
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::vector<torch::Tensor> parameters_;
  CheckpointWriter checkpoint_;
  int64_t next_iteration_ = 0;
  TrainingHistory history_;
  bool stopped_ = false;
  PhaseTimers timers_;
  int64_t iterations_run_ = 0;
  torch::Tensor gradient_buffer_;  // flat float32, one slot per parameter element
  // Detached paths, with S = N slots (recorded) or S = 1 (train.constant_memory):
  torch::Tensor x_path_;          // X_n of this rank's paths [S + 1, M_local, d]
  torch::Tensor xi_;              // ξ_n, then ∂(Y_{n+1} − Y_n)/∂Z_n [S, M_local, d]
  BsdeModelImpl::Record record_;  // per hidden layer [S, M_local, width], pre and post
  torch::Tensor score_dots_;  // network.score: ∂(Y_{n+1} − Y_n)/∂Z_n · φ(X_n) [N, M_local]
  torch::Tensor s_;           // s_0 … s_{N−1} [N] float32
};

}  // namespace rbsde
