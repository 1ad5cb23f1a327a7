// Exactness of the sampler's weights for the untrained model (the stationary OU process) on
// the target N(0, I): with the exponential integrator the model's steps are the exact
// noising transitions, so every log weight equals log 𝒵 = ½ d log 2π up to rounding, in any
// dimension; Euler's steps are not, and their weights spread.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

double log_weight_spread(const std::string& integrator, int64_t d) {
  SdeConfig sde;
  sde.integrator = integrator;
  sde.steps = 25;
  const auto schedule = NoiseSchedule::from_config(sde);
  const TimeGrid grid(schedule, sde.steps);
  torch::manual_seed(1);
  BsdeModel model(d, NetworkConfig{}, schedule);  // output layer zero: Z = −√b x
  const auto target = Gaussian::diagonal(Eigen::VectorXd::Zero(d), Eigen::VectorXd::Ones(d));
  const SampleBatch batch =
      simulate_paths(*target, model, grid, {5, NoiseStream::kSampling}, 0, 200);
  const double log_z = 0.5 * static_cast<double>(d) * std::log(2.0 * M_PI);
  return (batch.log_weights - log_z).abs().max().item<double>();
}

TEST(Sampler, ExponentialIntegratorWeightsAreExactForTheStationaryModel) {
  // Rounding: z is computed in float32 (relative 1e-7 of |x| ~ 1 per coordinate and step).
  EXPECT_LT(log_weight_spread("exponential", 1000), 1e-2);
  // Euler in d = 1000: the per-step mismatch of q_n and k_n adds up over coordinates.
  EXPECT_GT(log_weight_spread("euler", 1000), 1.0);
}

/// The sampling phase's rows kept in memory: a SampleSink without HDF5.
class MemorySink final : public SampleSink {
 public:
  void create_samples(int64_t count, int64_t dim) override {
    dim_ = dim;
    samples.assign(count * dim, NAN);
    log_weights.assign(count, NAN);
    written.assign(count, 0);
  }
  void write_samples(int64_t offset, int64_t rows, const PathRows& data) override {
    for (int64_t i = 0; i < rows; ++i) {
      ++written[offset + i];
      log_weights[offset + i] = data.log_weights[i];
      for (int64_t j = 0; j < dim_; ++j)
        samples[(offset + i) * dim_ + j] = data.samples[i * dim_ + j];
    }
  }
  std::vector<float> samples;
  std::vector<double> log_weights;
  std::vector<int> written;  ///< how often each row was written

 private:
  int64_t dim_ = 0;
};

// draw_samples, driven without a file: every row written once over several batches, and the
// same paths as simulate_paths with their estimates (exact weights of the stationary model
// on N(0, I) with the exponential integrator: log Z = ½ d log 2π, ESS = M).
TEST(Sampler, DrawSamplesWritesEveryPathOnceIntoItsSink) {
  Config config;
  config.target.name = "gaussian";
  config.target.dim = 3;
  config.sde.integrator = "exponential";
  config.sde.steps = 20;
  config.sample.count = 50;
  config.sample.batch = 16;  // 4 batches, the last one short
  const auto schedule = NoiseSchedule::from_config(config.sde);
  torch::manual_seed(1);
  BsdeModel model(config.target.dim, config.network, schedule);
  const auto target =
      Gaussian::diagonal(Eigen::VectorXd::Zero(config.target.dim), Eigen::VectorXd::Ones(3));
  Communicator comm(MPI_COMM_WORLD);
  MemorySink sink;
  const SampleSummary summary = draw_samples(sink, *target, model, schedule, config, comm);

  for (int count : sink.written) EXPECT_EQ(count, 1);
  const SampleBatch direct =
      simulate_paths(*target, model, TimeGrid(schedule, config.sde.steps),
                     {config.sample.seed, NoiseStream::kSampling}, 0, config.sample.count);
  for (int64_t i = 0; i < config.sample.count; ++i) {
    EXPECT_EQ(sink.log_weights[i], direct.log_weights[i].item<double>()) << i;
    EXPECT_EQ(sink.samples[i * 3], static_cast<float>(direct.samples[i][0].item<double>())) << i;
  }
  const double log_z = 1.5 * std::log(2.0 * M_PI);
  EXPECT_NEAR(summary.estimates.log_z_is, log_z, 1e-4);
  EXPECT_NEAR(summary.estimates.ess_fraction, 1.0, 1e-6);
  EXPECT_EQ(summary.estimates.count, config.sample.count);
  EXPECT_EQ(summary.estimates.posterior_mean.size(), 3u);
}

}  // namespace
}  // namespace rbsde
