// The same run on 1, 2 or 3 ranks trains the same networks and draws the same samples
// (method.md §7). Run under mpiexec: the world is split into sub-communicators of every
// size up to its own, each trains the same configuration, and rank 0 compares the results.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "rbsde/app/app.hpp"
#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

const char* kConfig = R"(
target: {name: gmm, dim: 3, means: [[2, 0, 0], [-2, 1, 0]], covariances: [0.5, 0.8]}
sde: {steps: 20}
network: {width: 32, depth: 2, y0_residual: true}
train: {iterations: 50, paths: 101, anneal_gamma0: 0.2}
sample: {count: 997, batch: 128, hmc_steps: 4, leapfrog_steps: 3, hmc_step_size: 0.5}
)";

struct Trained {
  TrainingHistory history;
  std::vector<float> parameters;    // flattened, rank 0's
  int64_t gradient_allreduces = 0;  // over all iterations
};

/// The first `size` ranks of the world (MPI_COMM_NULL on the others).
MPI_Comm first_ranks(int size) {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm sub;
  check_mpi(MPI_Comm_split(MPI_COMM_WORLD, world_rank < size ? 0 : MPI_UNDEFINED, world_rank, &sub),
            "MPI_Comm_split");
  return sub;
}

/// Trains kConfig with `overrides` on the first `size` ranks of the world (others return empty).
Trained train_on(int size, const std::vector<std::string>& overrides = {}) {
  MPI_Comm sub = first_ranks(size);
  Trained result;
  if (sub == MPI_COMM_NULL) return result;
  {
    Communicator comm(sub);
    const Config config = parse_config(kConfig, overrides);
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

/// The reason a test that compares 1 rank with 2 … world-size ranks is skipped on one rank.
constexpr const char* kOneRank = "one rank: nothing to compare the single-rank run with";

void expect_training_independent_of_ranks(const std::vector<std::string>& overrides) {
  const Trained reference = train_on(1, overrides);
  for (int size = 2; size <= world_size(); ++size) {
    const Trained other = train_on(size, overrides);
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
      difference = std::max(
          difference, static_cast<double>(std::abs(other.parameters[i] - reference.parameters[i])));
    }
    EXPECT_LT(difference, 1e-5 * largest) << "parameters after training on " << size << " ranks";
  }
}

TEST(Ranks, TrainingIsIndependentOfTheNumberOfRanks) {
  if (world_size() < 2) GTEST_SKIP() << kOneRank;
  expect_training_independent_of_ranks({});
}

// train.tilt normalises the path weights over all ranks (a max and a sum reduction).
TEST(Ranks, TiltedTrainingIsIndependentOfTheNumberOfRanks) {
  if (world_size() < 2) GTEST_SKIP() << kOneRank;
  expect_training_independent_of_ranks({"train.tilt=0.5"});
}

TEST(Ranks, ExactlyOneGradientAllreducePerStep) {
  const Trained trained = train_on(world_size());
  EXPECT_EQ(trained.gradient_allreduces, static_cast<int64_t>(trained.history.loss.size()));
  EXPECT_EQ(trained.history.loss.size(), 50u);
}

struct SampleFile {
  std::vector<float> samples;
  std::vector<double> log_weights;
  std::vector<float> resampled, refined;
  std::vector<int64_t> resampled_index;
  hsize_t rows = 0, dim = 0;
  Estimates estimates;
};

template <typename T>
std::vector<T> read_dataset(hid_t file, const char* name, hid_t type, hsize_t& rows, hsize_t& dim) {
  const hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
  const hid_t space = H5Dget_space(dataset);
  hsize_t dims[2] = {0, 1};
  const int rank = H5Sget_simple_extent_dims(space, dims, nullptr);
  rows = dims[0];
  dim = rank == 2 ? dims[1] : 1;
  std::vector<T> values(rows * dim);
  EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0) << name;
  H5Sclose(space);
  H5Dclose(dataset);
  return values;
}

/// Samples a 5-iteration model of kConfig (with `overrides`) on the first `size` ranks into
/// `path`; rank 0 reads the file back.
SampleFile sample_on(int size, const std::string& path, const std::vector<std::string>& overrides) {
  MPI_Comm sub = first_ranks(size);
  SampleFile result;
  if (sub == MPI_COMM_NULL) return result;
  {
    Communicator comm(sub);
    Config config = parse_config(kConfig, overrides);
    config.train.iterations = 5;
    const auto target = make_target(config.target);
    const auto schedule = NoiseSchedule::from_config(config.sde);
    torch::manual_seed(7);
    BsdeModel model(target->dim(), config.network, schedule);
    Trainer(*target, model, config.sde, config.train, comm).train();
    OutputFile out(path, comm);
    const Estimates estimates = sample_into(out, *target, model, schedule, config, comm);
    out.write_estimates(estimates);
    out.commit();
    result.estimates = estimates;
  }
  MPI_Comm_free(&sub);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  if (world_rank == 0) {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t rows = 0, dim = 0;
    result.samples =
        read_dataset<float>(file, "samples", H5T_NATIVE_FLOAT, result.rows, result.dim);
    result.log_weights = read_dataset<double>(file, "log_weights", H5T_NATIVE_DOUBLE, rows, dim);
    EXPECT_EQ(rows, result.rows);
    result.resampled = read_dataset<float>(file, "resampled/samples", H5T_NATIVE_FLOAT, rows, dim);
    EXPECT_EQ(rows, result.rows);
    result.resampled_index =
        read_dataset<int64_t>(file, "resampled/index", H5T_NATIVE_INT64, rows, dim);
    EXPECT_EQ(rows, result.rows);
    result.refined = read_dataset<float>(file, "refined/samples", H5T_NATIVE_FLOAT, rows, dim);
    EXPECT_EQ(rows, result.rows);
    H5Fclose(file);
  }
  return result;
}

/// Samples with `overrides` on 1 … world-size ranks; rank 0 compares the files.
void expect_sample_files_independent_of_ranks(const std::vector<std::string>& overrides) {
  // One directory name for all ranks: rank 0's pid, broadcast.
  int id = static_cast<int>(::getpid());
  MPI_Bcast(&id, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const auto dir = std::filesystem::temp_directory_path() / ("rbsde_ranks_" + std::to_string(id));
  const SampleFile reference = sample_on(1, (dir / "np1.h5").string(), overrides);
  for (int size = 2; size <= world_size(); ++size) {
    const SampleFile other =
        sample_on(size, (dir / ("np" + std::to_string(size) + ".h5")).string(), overrides);
    if (reference.samples.empty()) continue;  // not rank 0
    ASSERT_EQ(other.rows, reference.rows);
    ASSERT_EQ(other.dim, reference.dim);
    EXPECT_EQ(reference.rows, 997u);
    for (size_t i = 0; i < reference.samples.size(); ++i) {
      ASSERT_NEAR(other.samples[i], reference.samples[i],
                  1e-5 * (1.0 + std::abs(reference.samples[i])))
          << "sample value " << i << " on " << size << " ranks";
    }
    for (size_t i = 0; i < reference.log_weights.size(); ++i) {
      ASSERT_NEAR(other.log_weights[i], reference.log_weights[i],
                  1e-5 * (1.0 + std::abs(reference.log_weights[i])))
          << "log weight " << i << " on " << size << " ranks";
    }
    // Resampling is exact integer arithmetic on the log weights: the same rows are drawn.
    EXPECT_EQ(other.resampled_index, reference.resampled_index) << "on " << size << " ranks";
    ASSERT_EQ(other.resampled.size(), reference.resampled.size());
    ASSERT_EQ(other.refined.size(), reference.refined.size());
    for (size_t i = 0; i < reference.resampled.size(); ++i) {
      ASSERT_NEAR(other.resampled[i], reference.resampled[i],
                  1e-5 * (1.0 + std::abs(reference.resampled[i])))
          << "resampled value " << i << " on " << size << " ranks";
      // HMC chains are keyed by the resampled row; the step size is fixed in kConfig.
      ASSERT_NEAR(other.refined[i], reference.refined[i],
                  1e-5 * (1.0 + std::abs(reference.refined[i])))
          << "refined value " << i << " on " << size << " ranks";
    }
    // The /estimates attributes and posterior moments.
    const Estimates& a = reference.estimates;
    const Estimates& b = other.estimates;
    ASSERT_EQ(b.posterior_mean.size(), 3u);
    ASSERT_EQ(a.posterior_sd.size(), 3u);
    for (size_t j = 0; j < 3; ++j) {
      EXPECT_NEAR(b.posterior_mean[j], a.posterior_mean[j],
                  1e-5 * (1.0 + std::abs(a.posterior_mean[j])))
          << "posterior mean " << j << " on " << size << " ranks";
      EXPECT_NEAR(b.posterior_sd[j], a.posterior_sd[j], 1e-5 * a.posterior_sd[j])
          << "posterior sd " << j << " on " << size << " ranks";
    }
    EXPECT_EQ(a.count, b.count);
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.divergence, b.divergence);
    for (const auto& [name, x, y] :
         {std::tuple{"log_z_is", a.log_z_is, b.log_z_is},
          std::tuple{"log_z_is_stderr", a.log_z_is_stderr, b.log_z_is_stderr},
          std::tuple{"log_z_network", a.log_z_network, b.log_z_network},
          std::tuple{"elbo", a.elbo, b.elbo},
          std::tuple{"elbo_stderr", a.elbo_stderr, b.elbo_stderr}, std::tuple{"ess", a.ess, b.ess},
          std::tuple{"ess_fraction", a.ess_fraction, b.ess_fraction}}) {
      EXPECT_NEAR(y, x, 1e-5 * (1.0 + std::abs(x))) << name << " on " << size << " ranks";
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) std::filesystem::remove_all(dir);
}

TEST(Ranks, SampleFileIsIndependentOfTheNumberOfRanks) {
  if (world_size() < 2) GTEST_SKIP() << kOneRank;
  expect_sample_files_independent_of_ranks({});
}

// The ODE sampler with Hutchinson probes: the probes are keyed by global path index too.
TEST(Ranks, OdeSampleFileIsIndependentOfTheNumberOfRanks) {
  if (world_size() < 2) GTEST_SKIP() << kOneRank;
  expect_sample_files_independent_of_ranks({"sample.method=ode", "sample.divergence=hutchinson"});
}

}  // namespace
}  // namespace rbsde
