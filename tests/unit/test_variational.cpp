// The variational reference (bsde/variational.hpp): the measures of a candidate reference
// against closed forms (the exact Gaussian's weights are constant: ELBO = log 𝒵), the ELBO
// fit against the Gaussian it must find, draws outside the support, and precondition.kind:
// auto on Neal's funnel, which has no mode, choosing the fitted Gaussian.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <Eigen/Dense>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "helpers.hpp"
#include "rbsde/bsde/variational.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

using test::FunctionTarget;

/// The Gaussian N(μ, Σ) as an affine map: m = μ, L = chol(Σ).
Affine exact_map(const Gaussian& target) {
  Affine map;
  map.centre = target.mean();
  map.cholesky = Eigen::LLT<Eigen::MatrixXd>(target.covariance()).matrixL();
  return map;
}

/// N(0, I) restricted to x_0 > 0 (a half-normal in x_0): log π̃ = −∞ outside.
class HalfSpaceGaussian final : public Target {
 public:
  explicit HalfSpaceGaussian(int64_t dim) : dim_(dim) {}
  std::string name() const override { return "half_space"; }
  int64_t dim() const override { return dim_; }
  torch::Tensor log_prob(const torch::Tensor& x) const override {
    const auto inside = -0.5 * x.pow(2).sum(1);
    return torch::where(x.select(1, 0) > 0, inside,
                        torch::full_like(inside, -std::numeric_limits<double>::infinity()));
  }

 private:
  int64_t dim_;
};

TEST(ReferenceQuality, OfTheTargetItselfIsExact) {
  const Gaussian target = test::correlated_gaussian();
  const ReferenceQuality quality = reference_quality(target, exact_map(target), 512, 3);
  // log w = log π̃ − log q = log 𝒵 on every draw.
  EXPECT_NEAR(quality.elbo, *target.log_z(), 1e-9);
  EXPECT_NEAR(quality.ess, 512.0, 1e-6);
  EXPECT_EQ(quality.finite, 512);
  EXPECT_LT(quality.elbo_stderr, 1e-9);
  // A reference 1.5 sd off in every coordinate is worse by its KL divergence (closed form:
  // ½ |Δ|² in whitened units = ½ · 5 · 1.5² = 5.625 nats), within the Monte Carlo error.
  Affine shifted = exact_map(target);
  shifted.centre += shifted.cholesky * Eigen::VectorXd::Constant(5, 1.5);
  const ReferenceQuality worse = reference_quality(target, shifted, 4096, 3);
  EXPECT_NEAR(worse.elbo, *target.log_z() - 5.625, 4.0 * worse.elbo_stderr + 1e-9);
  EXPECT_LT(worse.ess, 0.2 * 4096);
}

TEST(ReferenceQuality, CountsDrawsOutsideTheSupport) {
  const HalfSpaceGaussian target(3);
  const ReferenceQuality quality = reference_quality(target, identity_map(3), 1000, 4);
  EXPECT_GT(quality.finite, 400);
  EXPECT_LT(quality.finite, 600);
  EXPECT_EQ(quality.elbo, -std::numeric_limits<double>::infinity());
  // Inside the support log w = 0 exactly: the finite weights are equal.
  EXPECT_NEAR(quality.ess, static_cast<double>(quality.finite), 1e-6);
}

TEST(VariationalMap, FindsTheGaussian) {
  const Gaussian target = test::correlated_gaussian();
  Affine start = identity_map(5);
  start.cholesky = Eigen::MatrixXd::Identity(5, 5);
  start.diagonal.resize(0);
  const Affine fitted = variational_map(target, start, 2000, 7, "test");
  ASSERT_FALSE(fitted.is_diagonal());
  const Eigen::MatrixXd covariance = fitted.cholesky * fitted.cholesky.transpose();
  const Eigen::VectorXd sd = target.covariance().diagonal().cwiseSqrt();
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(fitted.centre(i), target.mean()(i), 0.05 * sd(i)) << i;
    for (int j = 0; j < 5; ++j) {
      EXPECT_NEAR(covariance(i, j), target.covariance()(i, j), 0.1 * sd(i) * sd(j)) << i << j;
    }
  }
  // KL(q ‖ π) = log 𝒵 − ELBO: small for the optimum, and the start's is 2.5 nats.
  const ReferenceQuality quality = reference_quality(target, fitted, kQualityDraws, 9);
  EXPECT_GT(quality.elbo, *target.log_z() - 0.02);
  EXPECT_LT(reference_quality(target, start, kQualityDraws, 9).elbo, *target.log_z() - 1.0);
}

TEST(VariationalMap, DiagonalFormFitsTheMarginalScales) {
  Eigen::VectorXd mean(4), variances(4);
  mean << 3.0, -1.0, 0.0, 10.0;
  variances << 0.01, 4.0, 1.0, 25.0;
  const auto target = Gaussian::diagonal(mean, variances);
  const Affine fitted = variational_map(*target, identity_map(4), 2000, 8, "test");
  ASSERT_TRUE(fitted.is_diagonal());
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(fitted.centre(i), mean(i), 0.05 * std::sqrt(variances(i))) << i;
    EXPECT_NEAR(fitted.diagonal(i) / std::sqrt(variances(i)), 1.0, 0.05) << i;
  }
}

TEST(VariationalMap, StepsOnTheStartsScale) {
  // sds of 10⁻³ (a posterior with much data): from a start 2 sds off with twice the spread,
  // the fit in the start's whitened coordinates finds them; Adam's steps of 0.05 in x itself
  // would be 50 sds.
  Eigen::VectorXd mean(3), variances = Eigen::VectorXd::Constant(3, 1e-6);
  mean << 1.0, -2.0, 0.5;
  const auto target = Gaussian::diagonal(mean, variances);
  Affine start;
  start.centre = mean + Eigen::VectorXd::Constant(3, 2e-3);
  start.diagonal = Eigen::VectorXd::Constant(3, 2e-3);
  const Affine fitted = variational_map(*target, start, 1000, 6, "test");
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(fitted.centre(i), mean(i), 0.05e-3) << i;
    EXPECT_NEAR(fitted.diagonal(i) / 1e-3, 1.0, 0.05) << i;
  }
}

TEST(VariationalMap, LeavesDrawsOutsideTheSupportOut) {
  // N(0, I) that overflows (−∞) where |x_0| > 3: about 1 draw in 370 of the fit. Those draws
  // are left out of the steps and the fit still finds the Gaussian.
  const Gaussian inner(Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Identity(2, 2));
  const FunctionTarget target(2, [&](const torch::Tensor& x) {
    const auto value = inner.log_prob(x);
    return torch::where(x.select(1, 0).abs() > 3.0,
                        torch::full_like(value, -std::numeric_limits<double>::infinity()), value);
  });
  testing::internal::CaptureStdout();
  const Affine fitted = variational_map(target, identity_map(2), 1000, 5, "test");
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(printed.find(" 0 draws outside the support"), std::string::npos) << printed;
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(fitted.centre(i), 0.0, 0.05) << i;
    EXPECT_NEAR(fitted.diagonal(i), 1.0, 0.05) << i;
  }
}

TEST(VariationalMap, RefusesATargetFiniteNowhere) {
  const HalfSpaceGaussian target(2);
  Affine start = identity_map(2);
  start.centre(0) = -50.0;  // every draw outside the support
  try {
    variational_map(target, start, 10, 5, "precondition.kind: variational");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("precondition.kind: variational"), std::string::npos) << message;
    EXPECT_NE(message.find("not finite on any of the 32 draws of iteration 1"), std::string::npos)
        << message;
  }
}

TEST(AutoPreconditioner, ChoosesTheFittedGaussianWhereThereIsNoMode) {
  // Neal's funnel: log π̃ grows without bound as v → −∞ at x = 0. L-BFGS stops deep in the
  // neck where the gradient underflows, a degenerate "mode" whose Laplace map has k^ > 1 and
  // from which the ELBO's ascent stays in the neck; auto fits from the prior too and takes the
  // candidate with the highest ELBO, centred near the mass (v's mean is 0, sd 3).
  const Funnel target(5);
  PreconditionConfig config;
  config.kind = "auto";
  config.variational_iterations = 1000;
  const Communicator comm(MPI_COMM_SELF);
  testing::internal::CaptureStdout();
  const Affine map = make_preconditioner(target, config, comm);
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_NE(printed.find("chose the variational from the prior (the highest ELBO"),
            std::string::npos)
      << printed;
  ASSERT_FALSE(map.is_diagonal());
  EXPECT_NEAR(map.centre(0), 0.0, 1.5);
  // Better than N(0, I) as a reference, by the measure auto chose with.
  EXPECT_GT(reference_quality(target, map, kQualityDraws, 2).elbo,
            reference_quality(target, identity_map(5), kQualityDraws, 2).elbo);
}

}  // namespace
}  // namespace rbsde
