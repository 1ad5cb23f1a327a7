// E[w] = 𝒵 for every θ (method.md §5): an untrained network with random weights still gives
// an unbiased evidence estimate, because every backward kernel k_n integrates to one.
#include <gtest/gtest.h>

#include "harness.hpp"

namespace rbsde {
namespace {

/// An untrained model with every parameter drawn from N(0, scale²).
void expect_unbiased(const Config& config, double scale) {
  const auto target = make_target(config.target);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  torch::manual_seed(5);
  BsdeModel model(1, config.network, schedule);
  {  // random last layer: the drift is no longer the stationary OU one
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.copy_(scale * torch::randn_like(p));
  }
  model->set_constant(0.4);
  const TimeGrid grid(schedule, config.sde.steps);
  EvidenceAccumulator evidence;
  const int64_t batch = 500000;
  for (int64_t first = 0; first < 4 * batch; first += batch) {
    const auto paths =
        simulate_paths(*target, model, grid, {11, NoiseStream::kSampling}, first, batch);
    evidence.add(paths.log_weights, paths.y0_offset);
  }
  Communicator comm(MPI_COMM_WORLD);
  const auto e = evidence.reduce(comm);
  const double truth = *target->log_z();
  std::printf("log mean w %.5f +- %.5f, truth %.5f, ESS/M %.3f, ELBO %.4f\n", e.log_z_is,
              e.log_z_is_stderr, truth, e.ess_fraction, e.elbo);
  // Four standard errors of the delta method; the ELBO must sit visibly below (Jensen),
  // otherwise the test would not distinguish a biased estimator.
  EXPECT_NEAR(e.log_z_is, truth, 4.0 * e.log_z_is_stderr);
  EXPECT_LT(e.log_z_is_stderr, 0.01);
  EXPECT_LT(e.elbo, truth - 0.05);
  EXPECT_NEAR(e.log_z_network, 0.4, 1e-9);
}

TEST(Unbiased, MeanWeightIsEvidenceForAnUntrainedModel) {
  const Config config = parse_config(R"(
target: {name: gaussian, dim: 1, mean: 0.7, covariance: 0.5}
sde: {steps: 20, horizon: 3.0, integrator: euler}
network: {width: 16, depth: 1}
)");
  expect_unbiased(config, 0.3);
}

// network.gain: each coordinate's step and q_n's variance depend on G_θ(s, X); a weight that
// used the grid's variance instead would be biased. Smaller parameters: with 0.3, a gain that
// grows with |X| drives two paths in 10⁴ to infinity (an expanding drift, not the step).
TEST(Unbiased, MeanWeightIsEvidenceWithTheGainHead) {
  const Config config = parse_config(R"(
target: {name: gaussian, dim: 1, mean: 0.7, covariance: 0.5}
sde: {steps: 20, horizon: 3.0, integrator: exponential}
network: {width: 16, depth: 1, gain: true}
)");
  expect_unbiased(config, 0.15);
}

}  // namespace
}  // namespace rbsde
