// The same run on 1, 2 or 3 ranks trains the same networks and draws the same samples
// (method.md §7). Run under mpiexec: the world is split into sub-communicators of every
// size up to its own, each trains the same configuration, and rank 0 compares the results.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "rbsde/communicator.hpp"
#include "rbsde/config.hpp"
#include "rbsde/model.hpp"
#include "rbsde/sampler.hpp"
#include "rbsde/schedule.hpp"
#include "rbsde/target.hpp"
#include "rbsde/trainer.hpp"

namespace rbsde {
namespace {

const char* kConfig = R"(
target: {name: gmm, dim: 3, means: [[2, 0, 0], [-2, 1, 0]], covariances: [0.5, 0.8]}
sde: {steps: 20}
network: {width: 32, depth: 2, y0_residual: true}
train: {iterations: 50, paths: 101, anneal_gamma0: 0.2}
sample: {count: 997, batch: 128}
)";

struct Trained {
  TrainingHistory history;
  std::vector<float> parameters;  // flattened, rank 0's
  int64_t gradient_allreduces = 0;  // over all iterations
};

/// Trains kConfig on the first `size` ranks of the world (others return empty).
Trained train_on(int size) {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm sub;
  check_mpi(MPI_Comm_split(MPI_COMM_WORLD, world_rank < size ? 0 : MPI_UNDEFINED, world_rank, &sub),
            "MPI_Comm_split");
  Trained result;
  if (sub == MPI_COMM_NULL) return result;
  {
    Communicator comm(sub);
    const Config config = parse_config(kConfig);
    const auto target = make_target(config.target);
    const auto schedule = NoiseSchedule::from_config(config.sde);
    // A different local initialisation on every rank: the broadcast must make them equal.
    torch::manual_seed(100 + comm.rank());
    BsdeModel model(target->dim(), config.network, schedule);
    Trainer trainer(*target, model, config.sde, config.train, comm);
    const int64_t before = comm.float_allreduce_count();
    result.history = trainer.train();
    result.gradient_allreduces = comm.float_allreduce_count() - before;
    for (const auto& p : model->parameters()) {
      const auto flat = p.detach().reshape(-1).contiguous();
      result.parameters.insert(result.parameters.end(), flat.data_ptr<float>(),
                               flat.data_ptr<float>() + flat.numel());
    }
  }
  MPI_Comm_free(&sub);
  return result;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

TEST(Ranks, TrainingIsIndependentOfTheNumberOfRanks) {
  const Trained reference = train_on(1);
  for (int size = 2; size <= world_size(); ++size) {
    const Trained other = train_on(size);
    if (reference.parameters.empty()) continue;  // not rank 0
    ASSERT_EQ(other.history.loss.size(), reference.history.loss.size());
    for (size_t k = 0; k < reference.history.loss.size(); ++k) {
      EXPECT_NEAR(other.history.loss[k], reference.history.loss[k],
                  1e-5 * std::abs(reference.history.loss[k]))
          << "loss at iteration " << k << " on " << size << " ranks";
    }
    ASSERT_EQ(other.parameters.size(), reference.parameters.size());
    double largest = 0.0, difference = 0.0;
    for (size_t i = 0; i < reference.parameters.size(); ++i) {
      largest = std::max(largest, static_cast<double>(std::abs(reference.parameters[i])));
      difference = std::max(difference,
                            static_cast<double>(std::abs(other.parameters[i] - reference.parameters[i])));
    }
    EXPECT_LT(difference, 1e-5 * largest) << "parameters after training on " << size << " ranks";
  }
}

TEST(Ranks, ExactlyOneGradientAllreducePerStep) {
  const Trained trained = train_on(world_size());
  EXPECT_EQ(trained.gradient_allreduces, static_cast<int64_t>(trained.history.loss.size()));
  EXPECT_EQ(trained.history.loss.size(), 50u);
}

}  // namespace
}  // namespace rbsde
