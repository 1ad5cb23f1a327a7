// The MALA reference sampler on a real posterior (logistic regression on the Ionosphere data,
// d = 35) against an independent route: self-normalised importance sampling with the Laplace
// approximation as proposal, whose weights are exact.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

TEST(LogregIonosphere, ReferenceMomentsMatchImportanceSampling) {
  const Config config = parse_config(
      "target: {name: logreg_ionosphere}\nprecondition: {kind: laplace, form: cholesky}\n");
  Communicator comm(MPI_COMM_SELF);
  const auto target = precondition(make_target(config.target), config.precondition, comm);
  const auto& affine = dynamic_cast<const AffineTarget&>(*target);
  const int64_t d = target->dim();
  ASSERT_EQ(d, 35);

  ReferenceConfig settings;
  settings.chains = 32;
  settings.warmup = 1000;
  settings.steps = 3000;
  const ReferenceMoments reference = reference_moments(*target, settings, comm);

  // x̂ ~ N(0, I), the Laplace approximation in x̂; log w = log π̃(m + L x̂) − log N(x̂) + const.
  torch::NoGradGuard no_grad;
  const auto generator = at::detail::createCPUGenerator(7);
  const auto x_hat = torch::randn({200000, d}, generator, torch::kFloat64);
  const auto log_w = target->log_prob(x_hat) + 0.5 * x_hat.square().sum(1);
  const auto w = torch::softmax(log_w, 0).unsqueeze(1);
  const double ess = 1.0 / w.square().sum().item<double>();
  const auto x = affine.to_target_space(x_hat);
  const auto mean = (w * x).sum(0);
  const auto sd = (w * (x - mean).square()).sum(0).sqrt();
  std::printf("IS: ESS %.0f of 200000; reference acceptance %.3f\n", ess,
              reference.acceptance_rate);
  ASSERT_GT(ess, 200.0);  // the tolerances below need a usable ESS (measured 1415)

  // Each side's Monte Carlo error: the reference's across-chain s.e., and sd/√ESS for the
  // self-normalised mean; 5 combined standard errors. An sd estimate from ESS effective draws
  // has relative s.e. about 1/√(2 ESS) (Gaussian-like tails); the reference's is smaller.
  double worst = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    const double ref_sd = reference.sd[j];
    const double se = std::sqrt(std::pow(reference.mean_stderr[j], 2) + ref_sd * ref_sd / ess);
    EXPECT_NEAR(mean[j].item<double>(), reference.mean[j], 5.0 * se) << "mean " << j;
    EXPECT_NEAR(sd[j].item<double>() / ref_sd, 1.0, 5.0 / std::sqrt(2.0 * ess)) << "sd " << j;
    worst = std::max(worst, std::abs(mean[j].item<double>() - reference.mean[j]) / ref_sd);
  }
  std::printf("largest |IS mean - reference mean| = %.4f posterior sd\n", worst);
}

}  // namespace
}  // namespace rbsde
