#pragma once
// Shared set-up for the statistical tests: train a configuration on MPI_COMM_WORLD and draw
// weighted samples, the way `rbsde run` does (without files).
#include <torch/torch.h>

#include <memory>
#include <string>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/bsde/step.hpp"
#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde::testing {

struct TrainedRun {
  Config config;
  std::unique_ptr<Target> target;  // preconditioned as the configuration says
  NoiseSchedule schedule;
  BsdeModel model{nullptr};
  TrainingHistory history;
};

inline TrainedRun train_run(const std::string& yaml) {
  TrainedRun run;
  run.config = parse_config(yaml);
  Communicator comm(MPI_COMM_WORLD);
  run.target = precondition(make_target(run.config.target), run.config.precondition, comm);
  run.schedule = NoiseSchedule::from_config(run.config.sde);
  torch::manual_seed(run.config.train.seed);
  run.model = BsdeModel(run.target->dim(), run.config.network, run.schedule);
  Trainer trainer(*run.target, run.model, run.config.sde, run.config.train, comm);
  run.history = trainer.train();
  return run;
}

/// The same problem with a freshly initialised network (the stationary OU drift).
inline TrainedRun untrained_copy(const TrainedRun& run) {
  TrainedRun copy;
  copy.config = run.config;
  Communicator comm(MPI_COMM_WORLD);
  copy.target = precondition(make_target(run.config.target), run.config.precondition, comm);
  copy.schedule = run.schedule;
  copy.model = BsdeModel(copy.target->dim(), copy.config.network, copy.schedule);
  return copy;
}

/// All `count` sample paths on this process (the tests run on one rank).
inline SampleBatch sample_run(TrainedRun& run, int64_t count) {
  const TimeGrid grid(run.schedule, run.config.sde.steps);
  return simulate_paths(*run.target, run.model, grid,
                        {run.config.sample.seed, NoiseStream::kSampling}, 0, count);
}

inline Estimates estimate(const SampleBatch& batch) {
  EvidenceAccumulator evidence;
  evidence.add(batch.log_weights, batch.y0_offset);
  Communicator comm(MPI_COMM_WORLD);
  return evidence.reduce(comm);
}

/// Self-normalised importance weights [M] from log weights.
inline torch::Tensor normalised_weights(const torch::Tensor& log_weights) {
  return torch::softmax(log_weights, 0);
}

/// Relative L2 error of the learned score Z_θ/√b against the exact score of p_{T−s}, over
/// the points of the sample paths at every grid time. `exact_score(x, t)` is ∇ log p_t(x).
template <typename Score>
double relative_score_error(TrainedRun& run, int64_t paths, Score exact_score) {
  torch::NoGradGuard no_grad;
  const TimeGrid grid(run.schedule, run.config.sde.steps);
  const int64_t d = run.model->dim();
  auto x = torch::randn({paths, d}, torch::kFloat32);
  double error2 = 0.0, norm2 = 0.0;
  for (int64_t n = 0; n < grid.steps; ++n) {
    const StepConstants step(grid, n, d);
    const auto z = run.model->z(grid.s[n], x);
    const auto learned = z / step.root_b;
    const torch::Tensor exact =
        exact_score(x.to(torch::kFloat64), run.schedule.horizon - grid.s[n]);
    error2 += (learned.to(torch::kFloat64) - exact).pow(2).sum().item<double>();
    norm2 += exact.pow(2).sum().item<double>();
    x = LinearStep<double>(step.grid_gains)(x, z, torch::randn_like(x));
  }
  return std::sqrt(error2 / norm2);
}

/// ∇ log p(x) of a mixture by autograd (float64).
inline torch::Tensor gmm_score(const Gmm& gmm, const torch::Tensor& x) {
  torch::AutoGradMode enable(true);
  auto xg = x.detach().clone().requires_grad_(true);
  return torch::autograd::grad({gmm.log_prob(xg).sum()}, {xg})[0];
}

}  // namespace rbsde::testing
