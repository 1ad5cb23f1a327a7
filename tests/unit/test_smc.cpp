// The SMC reference (smc.hpp) against exact answers: log 𝒵 and the moments of a correlated
// Gaussian, and of a mixture whose modes the reference N(0, I) reaches unevenly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "rbsde/bsde/smc.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

ReferenceConfig smc_config(int64_t particles, int64_t runs) {
  ReferenceConfig reference;
  reference.method = "smc";
  reference.particles = particles;
  reference.runs = runs;
  reference.moves = 10;
  reference.seed = 11;
  return reference;
}

// The runs' log 𝒵̂ combine into the log of their mean 𝒵̂, above their mean log 𝒵̂ (Jensen),
// with the delta method's standard error; a shift of every log 𝒵̂ (here to 10^4, where exp
// overflows) shifts log 𝒵 alone.
TEST(SmcEvidence, IsTheLogOfTheRunsMeanEvidence) {
  const std::vector<double> runs = {-1.0, 0.0, 0.5, 2.0};
  double sum = 0.0, mean_log = 0.0;
  for (const double z : runs) {
    sum += std::exp(z);
    mean_log += z / 4.0;
  }
  const double mean = sum / 4.0;
  double spread = 0.0;
  for (const double z : runs) spread += std::pow(std::exp(z) / mean - 1.0, 2);
  const LogEvidence e = combine_log_z_runs(runs);
  EXPECT_NEAR(e.log_z, std::log(mean), 1e-12);
  EXPECT_GT(e.log_z - mean_log, 0.3);  // 0.886 − 0.375: not the mean of the log 𝒵̂
  EXPECT_NEAR(e.log_z_stderr, std::sqrt(spread / 3.0 / 4.0), 1e-12);

  std::vector<double> shifted;
  for (const double z : runs) shifted.push_back(z + 1e4);
  const LogEvidence f = combine_log_z_runs(shifted);
  EXPECT_NEAR(f.log_z, e.log_z + 1e4, 1e-9);
  EXPECT_NEAR(f.log_z_stderr, e.log_z_stderr, 1e-12);

  const LogEvidence one = combine_log_z_runs({-3.5});
  EXPECT_EQ(one.log_z, -3.5);
  EXPECT_TRUE(std::isnan(one.log_z_stderr));
}

// More moves per temperature than the noise steps allow is refused before any run, naming
// the key; the largest allowed value runs (a target proportional to the reference: one
// temperature).
TEST(Smc, RefusesMoreMovesThanTheNoiseStepsAllow) {
  const auto target =
      Gaussian::diagonal(Eigen::VectorXd::Constant(1, 0.0), Eigen::VectorXd::Constant(1, 1.0));
  const Communicator comm(MPI_COMM_WORLD);
  ReferenceConfig reference = smc_config(2, 1);
  reference.moves = kSmcMaxMoves + 1;
  try {
    smc_reference(*target, reference, comm);
    ADD_FAILURE() << "reference.moves = " << reference.moves << " was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("reference.moves"));
  }
  reference.moves = kSmcMaxMoves;
  const ReferenceMoments r = smc_reference(*target, reference, comm);
  EXPECT_EQ(r.temperatures, 1);
  EXPECT_NEAR(r.log_z, *target->log_z(), 1e-12);  // ℓ is the constant log 𝒵 = ½ log 2π
}

TEST(TemperedTarget, EndsAtTheReferenceAndTheTarget) {
  const auto target =
      Gaussian::diagonal(Eigen::VectorXd::Constant(3, 0.5), Eigen::VectorXd::Constant(3, 2.0));
  const auto x = torch::randn({7, 3}, torch::kFloat64);
  const auto reference =
      -0.5 * x.pow(2).sum(1) - 1.5 * std::log(2.0 * M_PI);  // log N(x; 0, I) in d = 3
  EXPECT_TRUE(torch::allclose(TemperedTarget(*target, 0.0).log_prob(x), reference));
  EXPECT_TRUE(torch::allclose(TemperedTarget(*target, 1.0).log_prob(x), target->log_prob(x)));
  EXPECT_TRUE(torch::allclose(TemperedTarget(*target, 0.25).log_prob(x),
                              0.25 * target->log_prob(x) + 0.75 * reference));
}

// A correlated Gaussian in d = 5 whose mean lies up to 3 of its sds from the reference's:
// 8 runs of 2,048 particles. The run-to-run spread of log 𝒵 is about 0.02 here (measured),
// so the mean of 8 is within 0.03 of the truth at 4 standard errors; the moments are checked
// against the exact ones to 5 % of the sd.
TEST(Smc, RecoversTheEvidenceAndMomentsOfACorrelatedGaussian) {
  const Gaussian target = test::correlated_gaussian();
  const Eigen::VectorXd& mean = target.mean();
  const Communicator comm(MPI_COMM_WORLD);
  const ReferenceMoments r = smc_reference(target, smc_config(2048, 8), comm);
  EXPECT_EQ(r.method, "smc");
  ASSERT_EQ(r.log_z_runs.size(), 8u);
  ASSERT_GT(r.log_z_stderr, 0.0);
  EXPECT_LT(r.log_z_stderr, 0.05);
  EXPECT_NEAR(r.log_z, *target.log_z(), 4.0 * r.log_z_stderr)
      << "stderr " << r.log_z_stderr << ", " << r.temperatures << " temperatures";
  EXPECT_GE(r.temperatures, 8 * 3);  // far from N(0, I): several steps per run
  EXPECT_GT(r.acceptance_rate, 0.3);
  const Eigen::MatrixXd covariance = target.covariance();
  for (int j = 0; j < 5; ++j) {
    const double sd = std::sqrt(covariance(j, j));
    EXPECT_NEAR(r.mean[j], mean(j), 0.05 * sd) << "coordinate " << j;
    EXPECT_NEAR(r.sd[j], sd, 0.05 * sd) << "coordinate " << j;
  }
}

// 0.7 N((−2, 0), 0.3² I) + 0.3 N((3, 1), 0.5² I) in d = 2: log 𝒵 = 0, and the particles keep
// the modes' weights (tempering from N(0, I) reaches both before either dominates).
TEST(Smc, KeepsTheModeWeightsOfAMixture) {
  Eigen::VectorXd first(2), second(2);
  first << -2.0, 0.0;
  second << 3.0, 1.0;
  const Gmm target(
      {0.7, 0.3}, {first, second},
      {Eigen::MatrixXd::Identity(2, 2) * 0.09, Eigen::MatrixXd::Identity(2, 2) * 0.25});
  const Communicator comm(MPI_COMM_WORLD);
  const ReferenceMoments r = smc_reference(target, smc_config(2048, 8), comm);
  EXPECT_NEAR(r.log_z, 0.0, std::max(4.0 * r.log_z_stderr, 0.02));
  // The mixture's mean of x₁: 0.7 · (−2) + 0.3 · 3 = −0.5, sd 2.3 from the mode weights.
  EXPECT_NEAR(r.mean[0], -0.5, 0.1);
}

}  // namespace
}  // namespace rbsde
