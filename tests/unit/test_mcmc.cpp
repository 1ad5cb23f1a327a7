// HMC (MALA with one leapfrog step), the reference sampler, self-normalised moments and
// systematic resampling
// (mcmc.hpp, posterior.hpp) against exact answers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "helpers.hpp"
#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/posterior.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

/// Runs 400 chains of `leapfrog_steps` leapfrog steps of size ε (times each chain's
/// step_size_jitter(smallest_step) where smallest_step < 1) from exact draws of the
/// correlated Gaussian for 500 iterations and checks that they keep it: started at exact
/// draws, an exact kernel stays exact, so every chain's average is unbiased.
void expect_keeps_correlated_gaussian(int64_t leapfrog_steps, double step_size,
                                      double smallest_step = 1.0) {
  const Gaussian target = test::correlated_gaussian();
  const int64_t chains = 400, steps = 500, d = 5;
  Chains state = start_chains(target, target.sample_exact(chains, 5), 0);
  const Eigen::VectorXd variances = target.covariance().diagonal();
  const auto preconditioner =
      torch::tensor(std::vector<double>(variances.data(), variances.data() + d), torch::kFloat64);
  const NoiseKey key{21, NoiseStream::kMcmc, 0};
  const auto mu =
      torch::from_blob(const_cast<double*>(target.mean().data()), {d}, torch::kFloat64).clone();
  auto first = torch::zeros({chains, d}, torch::kFloat64);  // Σ_t (x − μ) per chain
  auto second = torch::zeros({chains, d, d}, torch::kFloat64);  // Σ_t (x − μ)(x − μ)ᵀ per chain
  int64_t accepted = 0;
  for (int64_t t = 0; t < steps; ++t) {
    const auto step_scale =
        smallest_step < 1.0
            ? step_size_jitter(smallest_step, chains, NoiseKey{21, NoiseStream::kMcmc, 2}, 0,
                               static_cast<uint32_t>(t))
            : torch::Tensor();
    accepted += hmc_step(target, state, step_size, preconditioner, leapfrog_steps, key,
                         static_cast<uint32_t>(t), step_scale)
                    .sum()
                    .item<int64_t>();
    const auto centred = state.x - mu;
    first += centred;
    second += centred.unsqueeze(2) * centred.unsqueeze(1);
  }
  const double acceptance = static_cast<double>(accepted) / static_cast<double>(chains * steps);
  EXPECT_GT(acceptance, 0.3);
  EXPECT_LT(acceptance, 0.95);
  // Each chain's averages are unbiased and the chains independent, so the spread of the
  // chain averages over √chains is an honest standard error (autocorrelation included).
  // Five standard errors: a false alarm about once in 10⁶ per entry.
  const auto chain_means = first / static_cast<double>(steps);
  const auto chain_covariances = second / static_cast<double>(steps);
  const auto mean_error = chain_means.mean(0);
  const auto mean_stderr = chain_means.std(0) / std::sqrt(static_cast<double>(chains));
  const auto covariance = chain_covariances.mean(0);
  const auto covariance_stderr = chain_covariances.std(0) / std::sqrt(static_cast<double>(chains));
  for (int64_t i = 0; i < d; ++i) {
    EXPECT_LT(std::abs(mean_error[i].item<double>()), 5.0 * mean_stderr[i].item<double>())
        << "mean " << i;
    for (int64_t j = 0; j < d; ++j) {
      const double truth = target.covariance()(i, j);
      EXPECT_LT(std::abs(covariance[i][j].item<double>() - truth),
                5.0 * covariance_stderr[i][j].item<double>())
          << "covariance " << i << "," << j;
    }
    // The standard errors themselves are small: the check above has teeth (a 10 % error of
    // a variance is many standard errors).
    EXPECT_LT(covariance_stderr[i][i].item<double>(), 0.02 * target.covariance()(i, i));
  }
}

TEST(Hmc, MalaKeepsACorrelatedGaussianAndRecoversItsMoments) {
  // ε = 0.45 is large for the narrowest preconditioned direction (variance 0.15): without
  // the Metropolis correction (Langevin alone) the stationary variance there would be 50 %
  // too large, and 5 % for a direction of variance 1.
  expect_keeps_correlated_gaussian(1, 0.45);
}

TEST(Hmc, LeapfrogTrajectoriesKeepACorrelatedGaussianAndRecoverItsMoments) {
  // 6 steps of 0.6: trajectories of length 3.6, and an energy error that the accept test
  // must correct (acceptance between 0.3 and 0.95 is checked).
  expect_keeps_correlated_gaussian(6, 0.6);
}

TEST(Hmc, JitteredStepSizesKeepACorrelatedGaussianAndRecoverItsMoments) {
  // Each chain's step log-uniform on [0.1 ε, ε] every iteration: a mixture of exact kernels.
  expect_keeps_correlated_gaussian(6, 1.2, 0.1);
}

TEST(Hmc, StepSizeJitterIsLogUniform) {
  const auto scale = step_size_jitter(0.01, 20000, NoiseKey{5, NoiseStream::kMcmc, 2}, 0, 3);
  EXPECT_GE(scale.min().item<double>(), 0.01);
  EXPECT_LE(scale.max().item<double>(), 1.0);
  // log10 of it is uniform on (−2, 0): mean −1, sd 2/√12; 5 standard errors of the mean.
  const double mean_log10 = scale.log10().mean().item<double>();
  EXPECT_NEAR(mean_log10, -1.0, 5.0 * 2.0 / std::sqrt(12.0 * 20000.0));
  EXPECT_TRUE(torch::equal(scale.slice(0, 100, 200),
                           step_size_jitter(0.01, 100, NoiseKey{5, NoiseStream::kMcmc, 2}, 100, 3)))
      << "a chain's factor depends on its global index only";
}

TEST(Hmc, JitteredStepSizesEnterTheNeckOfAFunnel) {
  // Neal's funnel in d = 10 (x₀ ~ N(0, 3²)) from chains that miss its neck (x₀ ~ N(1.5,
  // 0.5²)), as chains started from a Gaussian reference do, 200 iterations of 5 leapfrog steps
  // of ε = 1 with P = I. The exact answer: mean x₀ = 0, P(x₀ < −2) = Φ(−2/3) = 0.2525.
  const Funnel target(10);
  const int64_t chains = 1000;
  const auto z = Gaussian(Eigen::VectorXd::Zero(10), Eigen::MatrixXd::Identity(10, 10))
                     .sample_exact(chains, 11);
  const auto x0 = 1.5 + 0.5 * z.slice(1, 0, 1);
  const auto start = torch::cat({x0, (0.5 * x0).exp() * z.slice(1, 1)}, 1);
  const auto preconditioner = torch::ones({10}, torch::kFloat64);
  const NoiseKey key{12, NoiseStream::kMcmc, 0}, jitter{12, NoiseStream::kMcmc, 2};
  const auto run = [&](double smallest_step) {
    Chains state = start_chains(target, start, 0);
    for (uint32_t t = 0; t < 200; ++t) {
      hmc_step(target, state, 1.0, preconditioner, 5, key, t,
               smallest_step < 1.0 ? step_size_jitter(smallest_step, chains, jitter, 0, t)
                                   : torch::Tensor());
    }
    return state.x.select(1, 0);
  };
  // 1,000 independent chains: the mean of x₀ has a standard error of 3/√1000 = 0.095 at
  // equilibrium, P(x₀ < −2) one of 0.014. Measured: jittered mean 0.023, P 0.242; one step
  // size: mean 1.687, P 0 (stuck at the mouth).
  const auto jittered = run(0.1);
  EXPECT_LT(std::abs(jittered.mean().item<double>()), 0.5);
  EXPECT_GT((jittered < -2.0).to(torch::kFloat64).mean().item<double>(), 0.17);
  const auto fixed = run(1.0);
  EXPECT_GT(fixed.mean().item<double>(), 1.0) << "the same check without the jitter must fail";
  EXPECT_LT((fixed < -2.0).to(torch::kFloat64).mean().item<double>(), 0.05);
}

TEST(Hmc, OneLeapfrogStepIsMala) {
  // The proposal y = x + ½ε²P∇log π̃(x) + ε√P ξ, with ξ the chain's noise at that step.
  const Gaussian target = test::correlated_gaussian();
  const int64_t chains = 50, d = 5;
  Chains state = start_chains(target, target.sample_exact(chains, 3), 7);
  const auto x = state.x.clone(), grad = state.grad.clone();
  const auto preconditioner = torch::tensor({0.5, 1.0, 2.0, 1.5, 0.2}, torch::kFloat64);
  const NoiseKey key{9, NoiseStream::kMcmc, 0};
  const double eps = 0.6;
  const auto accepted = hmc_step(target, state, eps, preconditioner, 1, key, 4);
  auto xi = torch::empty({chains, d}, torch::kFloat64);
  fill_normal(xi.data_ptr<double>(), chains, d, key, 7, 4);
  const auto y = x + 0.5 * eps * eps * preconditioner * grad + eps * preconditioner.sqrt() * xi;
  const auto expected = torch::where(accepted.unsqueeze(1), y, x);
  EXPECT_TRUE(torch::allclose(state.x, expected, 1e-12, 1e-12));
  const int64_t moved = accepted.sum().item<int64_t>();
  EXPECT_GT(moved, 0);
  EXPECT_LT(moved, chains);
}

TEST(Hmc, ChainsDoNotDependOnHowTheyAreSplit) {
  const Gaussian target = test::correlated_gaussian();
  const auto start = torch::zeros({10, 5}, torch::kFloat64);
  const auto preconditioner = torch::ones({5}, torch::kFloat64);
  const NoiseKey key{4, NoiseStream::kMcmc, 0};
  Chains whole = start_chains(target, start, 100);
  Chains low = start_chains(target, start.slice(0, 0, 4), 100);
  Chains high = start_chains(target, start.slice(0, 4, 10), 104);
  const int saved = omp_get_max_threads();
  for (uint32_t t = 0; t < 20; ++t) {
    hmc_step(target, whole, 0.7, preconditioner, 3, key, t);
    omp_set_num_threads(1);
    hmc_step(target, low, 0.7, preconditioner, 3, key, t);
    hmc_step(target, high, 0.7, preconditioner, 3, key, t);
    omp_set_num_threads(saved);
  }
  EXPECT_TRUE(torch::equal(whole.x, torch::cat({low.x, high.x})));
  EXPECT_FALSE(torch::equal(whole.x, start)) << "the chains must have moved";
}

TEST(Hmc, RejectsTrajectoriesOutsideTheSupport) {
  // log π̃ = −∞ for x < 0 (a half-normal): no chain may ever step out of the support.
  const test::FunctionTarget target(1, [](const torch::Tensor& x) {
    const auto x0 = x.select(1, 0);
    return torch::where(x0 >= 0, -0.5 * x0 * x0, torch::full_like(x0, -INFINITY));
  });
  Chains chains = start_chains(target, torch::full({200, 1}, 0.1, torch::kFloat64), 0);
  const auto preconditioner = torch::ones({1}, torch::kFloat64);
  for (uint32_t t = 0; t < 50; ++t) {
    hmc_step(target, chains, 1.0, preconditioner, 1 + t % 4, NoiseKey{8, NoiseStream::kMcmc, 0}, t);
  }
  EXPECT_GE(chains.x.min().item<double>(), 0.0);
  EXPECT_TRUE(torch::isfinite(chains.log_prob).all().item<bool>());
}

// log π̃ = −x²/8 (sd 2), finite everywhere, whose gradient is NaN from x = 2 on (a masked
// √(2 − x): the value masked, not its derivative), as a module's overflow far out in a tail
// can be. A sixth of the mass lies beyond 2, where no chain may then stay.
torch::Tensor nan_beyond_two(const torch::Tensor& x) {
  const auto x0 = x.select(1, 0);
  const auto masked = torch::where(x0 >= 2.0, torch::zeros_like(x0), torch::sqrt(2.0 - x0));
  return -0.125 * x0 * x0 + 0.0 * masked;
}

TEST(Hmc, RejectsTrajectoriesToANanGradientAndRefusesToStartAtOne) {
  const test::FunctionTarget target(1, nan_beyond_two);
  Chains chains = start_chains(target, torch::zeros({200, 1}, torch::kFloat64), 0);
  const auto preconditioner = torch::ones({1}, torch::kFloat64);
  int64_t accepted = 0;
  for (uint32_t t = 0; t < 50; ++t) {
    accepted +=
        hmc_step(target, chains, 1.0, preconditioner, 3, NoiseKey{8, NoiseStream::kMcmc, 0}, t)
            .sum()
            .item<int64_t>();
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(chains.x.max().item<double>(), 2.0) << "no chain may stay where the gradient is NaN";
  EXPECT_THROW(start_chains(target, torch::full({4, 1}, 3.0, torch::kFloat64), 0), Error);
  // Preconditioned (x = 3 + x̂), the message gives x, not x̂.
  Affine map;
  map.centre = Eigen::VectorXd::Constant(1, 3.0);
  map.diagonal = Eigen::VectorXd::Ones(1);
  const AffineTarget preconditioned(std::make_unique<test::FunctionTarget>(1, nan_beyond_two), map);
  try {
    start_chains(preconditioned, torch::full({4, 1}, 0.5, torch::kFloat64), 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("x = [3.500000]"));
  }
}

TEST(Reference, RecoversTheMomentsOfAGaussian) {
  const Gaussian target = test::correlated_gaussian();
  Communicator comm(MPI_COMM_SELF);
  ReferenceConfig settings;
  settings.chains = 64;
  settings.warmup = 400;
  settings.steps = 2000;
  settings.seed = 17;
  const ReferenceMoments r = reference_moments(target, settings, comm);
  ASSERT_EQ(r.mean.size(), 5u);
  EXPECT_NEAR(r.acceptance_rate, kMalaTargetAcceptance, 0.1) << "the warm-up adapts ε";
  // Σ ((mean − μ) / stderr)² is χ²₅ if the standard errors are honest; its 0.9999 quantile
  // is 25.7 (the estimated stderr, from 64 chains, adds a little spread).
  double chi2 = 0.0;
  for (int64_t j = 0; j < 5; ++j) {
    const double truth_sd = std::sqrt(target.covariance()(j, j));
    chi2 += std::pow((r.mean[j] - target.mean()(j)) / r.mean_stderr[j], 2);
    // 128,000 draws per coordinate with an autocorrelation time of about 20 steps: the
    // stderr of the mean is measured at 1.1-1.2 % of sd, that of sd itself about 1 %; 5 %
    // for sd is several of them, and a stderr above 2 % of sd would mean the chains mix far
    // worse than they should.
    EXPECT_LT(r.mean_stderr[j], 0.02 * truth_sd) << j;
    EXPECT_GT(r.mean_stderr[j], 0.0) << j;
    EXPECT_NEAR(r.sd[j], truth_sd, 0.05 * truth_sd) << "sd " << j;
  }
  EXPECT_LT(chi2, 25.7);
  EXPECT_EQ(r.chains, 64);
  EXPECT_EQ(r.steps, 2000);
}

TEST(Reference, StartsFromGivenPointsAndChecksTheirShape) {
  const Gaussian target = test::correlated_gaussian();
  Communicator comm(MPI_COMM_SELF);
  ReferenceConfig settings;
  settings.chains = 8;
  settings.warmup = 40;
  settings.steps = 10;
  EXPECT_THROW(reference_moments(target, settings, comm, torch::zeros({7, 5})), Error);
  // Without a prior the default start is N(0, I) from the MCMC stream at kInitialStep.
  auto draws = torch::empty({8, 5}, torch::kFloat64);
  fill_normal(draws.data_ptr<double>(), 8, 5, NoiseKey{settings.seed, NoiseStream::kMcmc, 0}, 0,
              kInitialStep);
  const ReferenceMoments by_default = reference_moments(target, settings, comm);
  EXPECT_EQ(reference_moments(target, settings, comm, draws).mean, by_default.mean);
  EXPECT_NE(reference_moments(target, settings, comm, draws + 0.5).mean, by_default.mean);
}

TEST(Moments, StreamingBatchesEqualOneWeightedPass) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  const int64_t rows = 300, d = 3;
  auto x = torch::empty({rows, d}, torch::kFloat64);
  auto lw = torch::empty({rows}, torch::kFloat64);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < d; ++j) x[i][j] = 1000.0 + normal(rng);  // far from 0: cancellation
    lw[i] = 3.0 * normal(rng) + 0.05 * static_cast<double>(i);       // the maximum keeps growing
  }
  lw[7] = NAN;  // counts as weight 0
  MomentAccumulator streaming(d);
  for (int64_t begin = 0; begin < rows; begin += 64) {
    streaming.add(x.slice(0, begin, begin + 64), lw.slice(0, begin, begin + 64));
  }
  Communicator comm(MPI_COMM_SELF);
  const auto moments = streaming.reduce(comm);
  const auto w = torch::softmax(torch::nan_to_num(lw, -INFINITY), 0).unsqueeze(1);
  const auto mean = (w * x).sum(0);
  const auto sd = (w * (x - mean).pow(2)).sum(0).sqrt();
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_NEAR(moments.mean[j], mean[j].item<double>(), 1e-9) << j;
    EXPECT_NEAR(moments.sd[j], sd[j].item<double>(), 1e-9) << j;
  }
  EXPECT_EQ(moments.max_log_weight, torch::nan_to_num(lw, -INFINITY).max().item<double>());
}

/// Offspring counts of `log_weights` seen as rows [begin, end) of one global set.
std::vector<int64_t> offspring(const std::vector<double>& log_weights, int64_t begin, int64_t end,
                               int64_t prefix, int64_t total, double max_log_weight, double u) {
  const int64_t count = static_cast<int64_t>(log_weights.size());
  const auto q =
      fixed_point_weights(log_weights.data() + begin, end - begin, max_log_weight, count);
  std::vector<int64_t> counts;
  for (const int64_t qi : q) {
    counts.push_back(systematic_position(count, prefix + qi, total, u) -
                     systematic_position(count, prefix, total, u));
    prefix += qi;
  }
  return counts;
}

TEST(Resampling, SystematicCountsAreFloorOrCeilAndIndependentOfTheSplit) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  const int64_t count = 1000;
  std::vector<double> lw(count);
  for (double& value : lw) value = 2.0 * normal(rng) - 40.0;  // ESS about 20 of 1000
  lw[500] = 8.0;                                              // one path with most of the weight
  const double max_lw = *std::max_element(lw.begin(), lw.end());
  double u = 0.0;
  fill_uniform(&u, 1, NoiseKey{5, NoiseStream::kResampling, 0}, 0, 0);

  const auto q = fixed_point_weights(lw.data(), count, max_lw, count);
  const int64_t total = std::accumulate(q.begin(), q.end(), int64_t{0});
  const auto whole = offspring(lw, 0, count, 0, total, max_lw, u);
  EXPECT_EQ(std::accumulate(whole.begin(), whole.end(), int64_t{0}), count);
  double weight_sum = 0.0;
  for (const double value : lw) weight_sum += std::exp(value - max_lw);
  for (int64_t i = 0; i < count; ++i) {
    const double expected = static_cast<double>(count) * std::exp(lw[i] - max_lw) / weight_sum;
    EXPECT_GE(whole[i], std::floor(expected - 1e-9)) << i;
    EXPECT_LE(whole[i], std::ceil(expected + 1e-9)) << i;
  }
  EXPECT_GE(whole[500], 990);

  // Three uneven pieces, as three ranks would see them, with their prefix sums.
  std::vector<int64_t> pieces;
  int64_t prefix = 0;
  for (const auto& [begin, end] : {std::pair{0, 333}, std::pair{333, 501}, std::pair{501, 1000}}) {
    const auto part = offspring(lw, begin, end, prefix, total, max_lw, u);
    pieces.insert(pieces.end(), part.begin(), part.end());
    prefix += std::accumulate(q.begin() + begin, q.begin() + end, int64_t{0});
  }
  EXPECT_EQ(pieces, whole);

  // Equal weights give every path exactly one offspring.
  const std::vector<double> flat(count, -3.0);
  const auto ones =
      offspring(flat, 0, count, 0, count * (int64_t{1} << fixed_point_bits(count)), -3.0, u);
  EXPECT_EQ(ones, std::vector<int64_t>(count, 1));
}

TEST(Resampling, PositionsAreExactAtTheEnds) {
  const double u = (12345.0 + 0.5) / 4294967296.0;
  EXPECT_EQ(systematic_position(10, 0, 1000, u), 0);
  EXPECT_EQ(systematic_position(10, 1000, 1000, u), 10);
  // count · prefix / total − u = 5 − u: just below 5, so 5 positions lie below.
  EXPECT_EQ(systematic_position(10, 500, 1000, u), 5);
  EXPECT_THROW(systematic_position(10, 5, 10, 0.3), Error) << "u not of the form (w + ½)/2³²";
  EXPECT_EQ(fixed_point_bits(1), 62);
  EXPECT_EQ(fixed_point_bits(1000), 52);
  EXPECT_EQ(fixed_point_bits(1024), 52);
  EXPECT_EQ(fixed_point_bits(1025), 51);
}

}  // namespace
}  // namespace rbsde
