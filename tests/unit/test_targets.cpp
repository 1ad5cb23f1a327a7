// Unit tests of the target distributions, each checked against an independent route: Eigen's
// LDLT or an explicit 2 x 2 inverse for the Gaussian, a hand-written loop over components for
// the mixture, the scalar formulas for the funnel and the many-well, a different quadrature
// rule for the many-well constant, Monte Carlo moments for the exact samplers, and for the
// data targets the data files read and the formulas of targets.md written out again here.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"

namespace rbsde {
namespace {

using test::spd_3x3;
using test::to_eigen;
using test::to_torch;

constexpr double kPi = 3.14159265358979323846;

// Sampler checks use n = 200000 draws with a fixed seed and a band of 5 Monte Carlo standard
// errors: a correct sampler leaves it with probability ~6e-7 per statistic, while a wrong
// variance or mean (off by 1% or more of a standard deviation) is far outside it.
constexpr int64_t kSamples = 200000;
constexpr double kStandardErrors = 5.0;

Eigen::MatrixXd test_points(int64_t m, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  return to_eigen(2.0 * torch::randn({m, d}, torch::kFloat64));
}

Eigen::VectorXd sample_mean(const Eigen::MatrixXd& x) { return x.colwise().mean().transpose(); }

Eigen::MatrixXd sample_covariance(const Eigen::MatrixXd& x) {
  const Eigen::MatrixXd centred = x.rowwise() - x.colwise().mean();
  return centred.transpose() * centred / static_cast<double>(x.rows() - 1);
}

/// log N(x; μ, Σ) in 2-D through the explicit inverse and determinant of a 2 x 2 matrix.
double log_normal_2d(const Eigen::Vector2d& x, const Eigen::Vector2d& mu,
                     const Eigen::Matrix2d& s) {
  const double det = s(0, 0) * s(1, 1) - s(0, 1) * s(1, 0);
  const double dx = x(0) - mu(0);
  const double dy = x(1) - mu(1);
  const double quad = (s(1, 1) * dx * dx - 2.0 * s(0, 1) * dx * dy + s(0, 0) * dy * dy) / det;
  return -0.5 * quad - std::log(2.0 * kPi) - 0.5 * std::log(det);
}

double many_well_factor_log(double a) { return -std::pow(a, 4) + 6.0 * a * a + 0.5 * a; }

/// ∫ g(a) exp(-a⁴ + 6a² + ½a) da by the trapezoid rule on [-7, 7]: for a smooth integrand that
/// vanishes at both ends the rule converges geometrically, so it is an independent check of the
/// Simpson quadrature inside ManyWell.
template <class G>
double many_well_moment(G g) {
  constexpr int kCells = 28000;
  const double h = 14.0 / kCells;
  double sum = 0.0;
  for (int i = 0; i <= kCells; ++i) {
    const double a = -7.0 + h * i;
    const double weight = (i == 0 || i == kCells) ? 0.5 : 1.0;
    sum += weight * g(a) * std::exp(many_well_factor_log(a));
  }
  return sum * h;
}

// --- Gaussian --------------------------------------------------------------------------------

TEST(GaussianTarget, LogProbMatchesLdltSolve) {
  const Eigen::Vector3d mean(0.5, -1.0, 2.0);
  const Eigen::MatrixXd covariance = spd_3x3();
  const Gaussian target(mean, covariance);
  const Eigen::MatrixXd x = test_points(/*m=*/9, /*d=*/3, /*seed=*/11);
  const auto log_prob = target.log_prob(to_torch(x));
  ASSERT_EQ(log_prob.sizes(), (std::vector<int64_t>{9}));
  const Eigen::LDLT<Eigen::MatrixXd> ldlt(covariance);
  for (int64_t i = 0; i < x.rows(); ++i) {
    const Eigen::VectorXd r = x.row(i).transpose() - mean;
    EXPECT_NEAR(log_prob[i].item<double>(), -0.5 * r.dot(ldlt.solve(r)), 1e-10);
  }
}

TEST(GaussianTarget, TwoDimensionalLogProbAndLogZByExplicitInverse) {
  Eigen::Matrix2d s;
  s << 2.0, 0.6, 0.6, 0.5;
  const Eigen::Vector2d mu(1.0, -0.5);
  const Gaussian target(mu, s);
  const double det = s.determinant();
  // log_z + log π̃ is the normalised log-density.
  EXPECT_NEAR(*target.log_z(), std::log(2.0 * kPi) + 0.5 * std::log(det), 1e-12);
  const Eigen::MatrixXd x = test_points(/*m=*/5, /*d=*/2, /*seed=*/12);
  const auto log_prob = target.log_prob(to_torch(x));
  for (int64_t i = 0; i < x.rows(); ++i) {
    const Eigen::Vector2d xi = x.row(i).transpose();
    EXPECT_NEAR(log_prob[i].item<double>() - *target.log_z(), log_normal_2d(xi, mu, s), 1e-10);
  }
}

TEST(GaussianTarget, Float32AgreesWithFloat64) {
  const Gaussian target(Eigen::Vector3d(0.5, -1.0, 2.0), spd_3x3());
  const auto x = to_torch(test_points(/*m=*/16, /*d=*/3, /*seed=*/13));
  const auto lp64 = target.log_prob(x);
  const auto lp32 = target.log_prob(x.to(torch::kFloat32));
  EXPECT_EQ(lp32.scalar_type(), torch::kFloat32);
  EXPECT_EQ(lp64.scalar_type(), torch::kFloat64);
  // Single precision: ~1e-7 relative per operation over a handful of operations.
  EXPECT_TRUE(torch::allclose(lp32.to(torch::kFloat64), lp64, /*rtol=*/1e-5, /*atol=*/1e-5));
}

TEST(GaussianTarget, AutogradGradientIsMinusPrecisionTimesResidual) {
  const Eigen::Vector3d mean(0.5, -1.0, 2.0);
  const Eigen::MatrixXd covariance = spd_3x3();
  const Gaussian target(mean, covariance);
  const Eigen::MatrixXd x = test_points(/*m=*/6, /*d=*/3, /*seed=*/14);
  auto xt = to_torch(x).requires_grad_(true);
  const auto grad = torch::autograd::grad({target.log_prob(xt).sum()}, {xt})[0];
  const Eigen::MatrixXd expected =
      -covariance.ldlt().solve((x.rowwise() - mean.transpose()).transpose()).transpose();
  EXPECT_LT((to_eigen(grad) - expected).cwiseAbs().maxCoeff(), 1e-10);
}

TEST(GaussianTarget, ExactSamplerMomentsWithinMonteCarloError) {
  const Eigen::Vector3d mean(0.5, -1.0, 2.0);
  const Eigen::MatrixXd s = spd_3x3();
  const Gaussian target(mean, s);
  const auto samples = target.sample_exact(kSamples, /*seed=*/21);
  ASSERT_EQ(samples.sizes(), (std::vector<int64_t>{kSamples, 3}));
  ASSERT_EQ(samples.scalar_type(), torch::kFloat64);
  const Eigen::MatrixXd x = to_eigen(samples);
  const Eigen::VectorXd m = sample_mean(x);
  const Eigen::MatrixXd c = sample_covariance(x);
  const double n = static_cast<double>(kSamples);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(m(i), mean(i), kStandardErrors * std::sqrt(s(i, i) / n));
    for (int j = 0; j < 3; ++j) {
      // Gaussian: Var(x_i x_j) = Σ_ii Σ_jj + Σ_ij² for centred components.
      const double se = std::sqrt((s(i, i) * s(j, j) + s(i, j) * s(i, j)) / n);
      EXPECT_NEAR(c(i, j), s(i, j), kStandardErrors * se) << "entry " << i << "," << j;
    }
  }
}

TEST(GaussianTarget, ExactSamplerIsReproducibleForASeed) {
  const Gaussian target(Eigen::Vector3d(0.5, -1.0, 2.0), spd_3x3());
  EXPECT_TRUE(torch::equal(target.sample_exact(100, 5), target.sample_exact(100, 5)));
  EXPECT_FALSE(torch::equal(target.sample_exact(100, 5), target.sample_exact(100, 6)));
}

// --- Gmm -------------------------------------------------------------------------------------

Gmm three_component_gmm() {
  Eigen::Matrix2d s0, s1, s2;
  s0 << 1.0, 0.3, 0.3, 0.5;
  s1 << 0.4, -0.1, -0.1, 0.8;
  s2 << 2.0, 0.0, 0.0, 0.3;
  // Unnormalised weights on purpose: the constructor normalises.
  return Gmm({1.0, 2.0, 3.0},
             {Eigen::Vector2d(-3.0, 0.0), Eigen::Vector2d(2.0, 2.0), Eigen::Vector2d(0.5, -2.5)},
             {s0, s1, s2});
}

TEST(GmmTarget, WeightsAreNormalised) {
  const Gmm target = three_component_gmm();
  ASSERT_EQ(target.components(), 3);
  EXPECT_NEAR(target.weights()[0], 1.0 / 6.0, 1e-15);
  EXPECT_NEAR(target.weights()[1], 2.0 / 6.0, 1e-15);
  EXPECT_NEAR(target.weights()[2], 3.0 / 6.0, 1e-15);
  EXPECT_EQ(*target.log_z(), 0.0);
}

TEST(GmmTarget, LogProbMatchesLoopOverComponents) {
  const Gmm target = three_component_gmm();
  const Eigen::MatrixXd x = test_points(/*m=*/10, /*d=*/2, /*seed=*/31);
  const auto log_prob = target.log_prob(to_torch(x));
  const auto components = target.component_log_prob(to_torch(x));
  ASSERT_EQ(log_prob.sizes(), (std::vector<int64_t>{10}));
  ASSERT_EQ(components.sizes(), (std::vector<int64_t>{10, 3}));
  const std::vector<double> w = {1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0};
  for (int64_t i = 0; i < x.rows(); ++i) {
    const Eigen::Vector2d xi = x.row(i).transpose();
    double density = 0.0;
    for (int k = 0; k < 3; ++k) {
      const double log_component =
          std::log(w[k]) +
          log_normal_2d(xi, target.means()[k], Eigen::Matrix2d(target.covariances()[k]));
      EXPECT_NEAR(components[i][k].item<double>(), log_component, 1e-10);
      density += std::exp(log_component);
    }
    EXPECT_NEAR(log_prob[i].item<double>(), std::log(density), 1e-10);
  }
}

TEST(GmmTarget, Float32AgreesWithFloat64) {
  const Gmm target = three_component_gmm();
  const auto x = to_torch(test_points(/*m=*/16, /*d=*/2, /*seed=*/32));
  const auto lp32 = target.log_prob(x.to(torch::kFloat32));
  EXPECT_EQ(lp32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(lp32.to(torch::kFloat64), target.log_prob(x), 1e-5, 1e-5));
}

TEST(GmmTarget, AutogradGradientMatchesFiniteDifferences) {
  const Gmm target = three_component_gmm();
  auto x = to_torch(test_points(/*m=*/4, /*d=*/2, /*seed=*/33)).requires_grad_(true);
  const auto grad = torch::autograd::grad({target.log_prob(x).sum()}, {x})[0];
  // Central differences: error O(h²) ≈ 1e-10 times third derivatives of order one.
  const double h = 1e-5;
  const auto x0 = x.detach();
  for (int64_t j = 0; j < 2; ++j) {
    auto step = torch::zeros_like(x0);
    step.select(1, j).fill_(h);
    const auto fd = (target.log_prob(x0 + step) - target.log_prob(x0 - step)) / (2.0 * h);
    EXPECT_TRUE(torch::allclose(grad.select(1, j), fd, /*rtol=*/1e-6, /*atol=*/1e-6));
  }
}

TEST(GmmTarget, NoisedAtAlphaOneSigmaZeroIsTheOriginal) {
  const Gmm target = three_component_gmm();
  const Gmm same = target.noised(/*alpha=*/1.0, /*sigma2=*/0.0);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(same.weights()[k], target.weights()[k], 1e-15);
    EXPECT_EQ(same.means()[k], target.means()[k]);
    EXPECT_EQ(same.covariances()[k], target.covariances()[k]);
  }
  const auto x = to_torch(test_points(/*m=*/8, /*d=*/2, /*seed=*/34));
  EXPECT_TRUE(torch::allclose(same.log_prob(x), target.log_prob(x), 1e-14, 1e-14));
}

TEST(GmmTarget, NoisedIsTheLawOfScaledPlusGaussianNoise) {
  const Gmm target = three_component_gmm();
  const double alpha = 0.6;
  const double sigma2 = 0.64;
  const Gmm noised = target.noised(alpha, sigma2);
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(noised.means()[k].isApprox(alpha * target.means()[k]));
    const Eigen::MatrixXd expected =
        alpha * alpha * target.covariances()[k] + sigma2 * Eigen::MatrixXd::Identity(2, 2);
    EXPECT_TRUE(noised.covariances()[k].isApprox(expected));
  }
  // Monte Carlo: α X + σ Z from the exact sampler has the noised mixture's mean. Per coordinate
  // SE = sqrt(Var/n) with Var the noised mixture's variance (computed from its parameters).
  const auto x = target.sample_exact(kSamples, /*seed=*/35);
  torch::manual_seed(36);
  const auto y = alpha * x + std::sqrt(sigma2) * torch::randn_like(x);
  const Eigen::VectorXd m = sample_mean(to_eigen(y));
  Eigen::Vector2d mean = Eigen::Vector2d::Zero();
  Eigen::Matrix2d second = Eigen::Matrix2d::Zero();
  for (int k = 0; k < 3; ++k) {
    mean += noised.weights()[k] * noised.means()[k];
    second += noised.weights()[k] *
              (noised.covariances()[k] + noised.means()[k] * noised.means()[k].transpose());
  }
  const Eigen::Matrix2d covariance = second - mean * mean.transpose();
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(m(i), mean(i), kStandardErrors * std::sqrt(covariance(i, i) / kSamples));
  }
}

TEST(GmmTarget, ExactSamplerMomentsWithinMonteCarloError) {
  const Gmm target = three_component_gmm();
  const auto samples = target.sample_exact(kSamples, /*seed=*/37);
  ASSERT_EQ(samples.sizes(), (std::vector<int64_t>{kSamples, 2}));
  const Eigen::MatrixXd x = to_eigen(samples);
  // Mixture moments: m = Σ w_k μ_k, C = Σ w_k (Σ_k + μ_k μ_kᵀ) - m mᵀ.
  Eigen::Vector2d mean = Eigen::Vector2d::Zero();
  Eigen::Matrix2d second = Eigen::Matrix2d::Zero();
  for (int k = 0; k < 3; ++k) {
    mean += target.weights()[k] * target.means()[k];
    second += target.weights()[k] *
              (target.covariances()[k] + target.means()[k] * target.means()[k].transpose());
  }
  const Eigen::Matrix2d covariance = second - mean * mean.transpose();
  const Eigen::VectorXd m = sample_mean(x);
  const Eigen::MatrixXd c = sample_covariance(x);
  const Eigen::MatrixXd centred = x.rowwise() - mean.transpose();
  const double n = static_cast<double>(kSamples);
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(m(i), mean(i), kStandardErrors * std::sqrt(covariance(i, i) / n));
    for (int j = 0; j < 2; ++j) {
      // The mixture is not Gaussian: the SE of a covariance entry is the sample standard
      // deviation of the products (x_i - m_i)(x_j - m_j) over sqrt(n).
      const Eigen::ArrayXd products = centred.col(i).array() * centred.col(j).array();
      const double sd = std::sqrt((products - products.mean()).square().mean());
      EXPECT_NEAR(c(i, j), covariance(i, j), kStandardErrors * sd / std::sqrt(n));
    }
  }
}

TEST(GmmTarget, ExactSamplerIsReproducibleForASeed) {
  const Gmm target = three_component_gmm();
  EXPECT_TRUE(torch::equal(target.sample_exact(100, 5), target.sample_exact(100, 5)));
  EXPECT_FALSE(torch::equal(target.sample_exact(100, 5), target.sample_exact(100, 6)));
}

// --- Funnel ----------------------------------------------------------------------------------

TEST(FunnelTarget, LogProbMatchesScalarFormula) {
  const Funnel target(/*dim=*/5);
  EXPECT_EQ(*target.log_z(), 0.0);
  const Eigen::MatrixXd x = test_points(/*m=*/8, /*d=*/5, /*seed=*/41);
  const auto log_prob = target.log_prob(to_torch(x));
  for (int64_t i = 0; i < x.rows(); ++i) {
    const double x0 = x(i, 0);
    double expected = -0.5 * std::log(2.0 * kPi * 9.0) - x0 * x0 / (2.0 * 9.0);
    const double variance = std::exp(x0);
    for (int64_t j = 1; j < 5; ++j) {
      expected += -0.5 * std::log(2.0 * kPi * variance) - x(i, j) * x(i, j) / (2.0 * variance);
    }
    EXPECT_NEAR(log_prob[i].item<double>(), expected, 1e-10);
  }
}

TEST(FunnelTarget, ConditionalIntegratesToTheNeckDensity) {
  // ∫ π(x₀, x₁) dx₁ = N(x₀; 0, 9): trapezoid rule over ±12 conditional standard deviations.
  const Funnel target(/*dim=*/2);
  for (const double x0 : {-2.0, 0.0, 1.5}) {
    const double sd = std::exp(0.5 * x0);
    const auto x1 = torch::linspace(-12.0 * sd, 12.0 * sd, 4001, torch::kFloat64);
    const auto x = torch::stack({torch::full_like(x1, x0), x1}, /*dim=*/1);
    const double integral = torch::trapezoid(target.log_prob(x).exp(), x1).item<double>();
    const double neck = std::exp(-x0 * x0 / 18.0) / std::sqrt(2.0 * kPi * 9.0);
    EXPECT_NEAR(integral, neck, 1e-10);
  }
}

TEST(FunnelTarget, Float32AgreesWithFloat64) {
  const Funnel target(/*dim=*/10);
  const auto x = to_torch(test_points(/*m=*/16, /*d=*/10, /*seed=*/42));
  const auto lp32 = target.log_prob(x.to(torch::kFloat32));
  EXPECT_EQ(lp32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(lp32.to(torch::kFloat64), target.log_prob(x), 1e-5, 1e-4));
}

TEST(FunnelTarget, ExactSamplerMomentsWithinMonteCarloError) {
  const Funnel target(/*dim=*/4);
  const auto samples = target.sample_exact(kSamples, /*seed=*/43);
  ASSERT_EQ(samples.sizes(), (std::vector<int64_t>{kSamples, 4}));
  const Eigen::MatrixXd x = to_eigen(samples);
  const double n = static_cast<double>(kSamples);
  // x₀ ~ N(0, 9): SE of the mean 3/sqrt(n), of the variance 9 sqrt(2/n).
  const Eigen::VectorXd x0 = x.col(0);
  const double mean0 = x0.mean();
  const double var0 = (x0.array() - mean0).square().sum() / (n - 1.0);
  EXPECT_NEAR(mean0, 0.0, kStandardErrors * 3.0 / std::sqrt(n));
  EXPECT_NEAR(var0, 9.0, kStandardErrors * 9.0 * std::sqrt(2.0 / n));
  // x_j e^{-x₀/2} ~ N(0, 1) independently of x₀ (the raw x_j are too heavy-tailed for a tight
  // moment test): SE of the mean 1/sqrt(n), of the variance sqrt(2/n).
  for (int j = 1; j < 4; ++j) {
    const Eigen::ArrayXd u = x.col(j).array() * (-0.5 * x0.array()).exp();
    const double mean = u.mean();
    const double var = (u - mean).square().sum() / (n - 1.0);
    EXPECT_NEAR(mean, 0.0, kStandardErrors / std::sqrt(n));
    EXPECT_NEAR(var, 1.0, kStandardErrors * std::sqrt(2.0 / n));
  }
  EXPECT_TRUE(torch::equal(target.sample_exact(50, 7), target.sample_exact(50, 7)));
}

// --- ManyWell --------------------------------------------------------------------------------

TEST(ManyWellTarget, LogProbMatchesScalarFormula) {
  const ManyWell target(/*dim=*/6);
  const Eigen::MatrixXd x = test_points(/*m=*/8, /*d=*/6, /*seed=*/51);
  const auto log_prob = target.log_prob(to_torch(x));
  for (int64_t i = 0; i < x.rows(); ++i) {
    double expected = 0.0;
    for (int p = 0; p < 3; ++p) {
      const double a = x(i, 2 * p);
      const double b = x(i, 2 * p + 1);
      expected += -a * a * a * a + 6.0 * a * a + 0.5 * a - 0.5 * b * b;
    }
    EXPECT_NEAR(log_prob[i].item<double>(), expected, 1e-10);
  }
}

TEST(ManyWellTarget, LogZMatchesKnownConstant) {
  const ManyWell target(/*dim=*/32);
  const double log_z = *target.log_z();
  // targets.md: 16 (ln 11784.50927 + ½ ln 2π) = 164.6957 (4 decimals quoted).
  EXPECT_NEAR(log_z, 164.6957, 5e-5);
  const double integral = std::exp(log_z / 16.0 - 0.5 * std::log(2.0 * kPi));
  EXPECT_NEAR(integral, 11784.50927, 1e-5);  // the 10 significant digits quoted
  // An independent quadrature rule agrees far more tightly.
  const double trapezoid = many_well_moment([](double) { return 1.0; });
  EXPECT_NEAR(integral / trapezoid, 1.0, 1e-12);
}

TEST(ManyWellTarget, Float32AgreesWithFloat64) {
  const ManyWell target(/*dim=*/8);
  const auto x = to_torch(test_points(/*m=*/16, /*d=*/8, /*seed=*/52)) * 0.5;
  const auto lp32 = target.log_prob(x.to(torch::kFloat32));
  EXPECT_EQ(lp32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(lp32.to(torch::kFloat64), target.log_prob(x), 1e-5, 1e-4));
}

TEST(ManyWellTarget, ExactSamplerMatchesQuadratureMoments) {
  const ManyWell target(/*dim=*/4);
  const auto samples = target.sample_exact(kSamples, /*seed=*/53);
  ASSERT_EQ(samples.sizes(), (std::vector<int64_t>{kSamples, 4}));
  const Eigen::MatrixXd x = to_eigen(samples);
  // Reference moments of a by quadrature: mean ≈ 1.188, variance ≈ 1.549, P(a > 0) ≈ 0.844.
  const double z = many_well_moment([](double) { return 1.0; });
  const double mean_a = many_well_moment([](double a) { return a; }) / z;
  const double var_a = many_well_moment([](double a) { return a * a; }) / z - mean_a * mean_a;
  const double right = many_well_moment([](double a) { return a > 0.0 ? 1.0 : 0.0; }) / z;
  const double n = static_cast<double>(kSamples);
  for (int p = 0; p < 2; ++p) {
    const Eigen::ArrayXd a = x.col(2 * p).array();
    const Eigen::ArrayXd b = x.col(2 * p + 1).array();
    EXPECT_NEAR(a.mean(), mean_a, kStandardErrors * std::sqrt(var_a / n));
    const double frac_right = (a > 0.0).cast<double>().mean();
    EXPECT_NEAR(frac_right, right, kStandardErrors * std::sqrt(right * (1.0 - right) / n));
    EXPECT_NEAR(b.mean(), 0.0, kStandardErrors / std::sqrt(n));
    EXPECT_NEAR((b - b.mean()).square().mean(), 1.0, kStandardErrors * std::sqrt(2.0 / n));
  }
  EXPECT_TRUE(torch::equal(target.sample_exact(50, 7), target.sample_exact(50, 7)));
}

// --- Factory and errors ----------------------------------------------------------------------

TEST(MakeTarget, BuildsEachNamedTargetWithDefaults) {
  TargetConfig config;
  config.name = "gaussian";
  config.dim = 3;
  auto gaussian = make_target(config);
  EXPECT_EQ(gaussian->name(), "gaussian");
  EXPECT_EQ(gaussian->dim(), 3);
  // Defaults N(0, I): log 𝒵 = (d/2) log 2π.
  EXPECT_NEAR(*gaussian->log_z(), 1.5 * std::log(2.0 * kPi), 1e-12);

  config = TargetConfig{};
  config.name = "gmm";
  config.dim = 2;
  config.means = {Eigen::Vector2d(1.0, 0.0), Eigen::Vector2d(-1.0, 0.0)};
  auto gmm = make_target(config);
  const auto* mixture = dynamic_cast<const Gmm*>(gmm.get());
  ASSERT_NE(mixture, nullptr);
  EXPECT_EQ(mixture->weights(), (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(mixture->covariances()[1], Eigen::MatrixXd::Identity(2, 2));

  for (const auto& [name, dim] : {std::pair<std::string, int64_t>{"funnel", 10},
                                  std::pair<std::string, int64_t>{"many_well", 32}}) {
    config = TargetConfig{};
    config.name = name;
    config.dim = dim;
    auto target = make_target(config);
    EXPECT_EQ(target->name(), name);
    EXPECT_EQ(target->dim(), dim);
    EXPECT_TRUE(target->has_exact_sampler());
  }
}

/// Runs f and returns the rbsde::Error message (empty if nothing or something else is thrown).
template <class F>
std::string error_message(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (...) {
    return "";
  }
  return "";
}

TEST(TargetErrors, InvalidInputsThrowNamedErrors) {
  Eigen::Matrix2d indefinite;
  indefinite << 1.0, 2.0, 2.0, 1.0;
  const std::string not_spd = error_message([&] { Gaussian(Eigen::Vector2d::Zero(), indefinite); });
  EXPECT_NE(not_spd.find("target.covariance"), std::string::npos);
  Eigen::Matrix2d asymmetric;
  asymmetric << 1.0, 0.5, 0.0, 1.0;
  EXPECT_THROW(Gaussian(Eigen::Vector2d::Zero(), asymmetric), Error);
  EXPECT_THROW(Gaussian(Eigen::Vector3d::Zero(), Eigen::MatrixXd::Identity(2, 2)), Error);

  const Eigen::MatrixXd eye = Eigen::MatrixXd::Identity(2, 2);
  const Eigen::VectorXd zero = Eigen::Vector2d::Zero();
  EXPECT_THROW(Gmm({1.0, 0.0}, {zero, zero}, {eye, eye}), Error);
  EXPECT_THROW(Gmm({1.0}, {zero, zero}, {eye, eye}), Error);
  EXPECT_THROW(Gmm({1.0, 1.0}, {zero, Eigen::Vector3d::Zero()}, {eye, eye}), Error);
  EXPECT_THROW(Gmm({1.0, 1.0}, {zero, zero}, {eye, indefinite}), Error);
  EXPECT_THROW(Funnel(1), Error);

  TargetConfig config;
  config.name = "many_well";
  config.dim = 3;
  EXPECT_NE(error_message([&] { make_target(config); }).find("target.dim"), std::string::npos);
  config.name = "gausian";
  const std::string unknown = error_message([&] { make_target(config); });
  EXPECT_NE(unknown.find("target.name"), std::string::npos);
  EXPECT_NE(unknown.find("many_well"), std::string::npos);
  config.name = "gaussian";
  config.mean = Eigen::Vector2d::Zero();
  EXPECT_NE(error_message([&] { make_target(config); }).find("target.mean"), std::string::npos);

  const ManyWell well(/*dim=*/4);
  EXPECT_THROW(well.log_prob(torch::zeros({5, 3}, torch::kFloat64)), Error);
  EXPECT_THROW(well.log_prob(torch::zeros({5, 4}, torch::kInt64)), Error);
}

// --- Data targets ----------------------------------------------------------------------------

std::string data_file(const std::string& name) { return std::string(RBSDE_DATA_DIR) + "/" + name; }

/// A numeric CSV file read the plain way (commas, quotes stripped from the header): the
/// column names and the rows. The project's data files have no commas inside fields.
struct PlainCsv {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
};

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, ',')) {
    field.erase(std::remove(field.begin(), field.end(), '"'), field.end());
    field.erase(std::remove(field.begin(), field.end(), '\r'), field.end());
    fields.push_back(field);
  }
  return fields;
}

/// Reads the columns `skip` onwards as numbers (pines.csv starts with a row-name column).
PlainCsv read_plain_csv(const std::string& path, size_t skip = 0) {
  std::ifstream file(path);
  std::string line;
  PlainCsv csv;
  std::getline(file, line);
  const auto header = split_commas(line);
  csv.columns.assign(header.begin() + skip, header.end());
  while (std::getline(file, line)) {
    const auto fields = split_commas(line);
    std::vector<double> row;
    for (size_t j = skip; j < fields.size(); ++j) row.push_back(std::stod(fields[j]));
    csv.rows.push_back(row);
  }
  return csv;
}

/// X (intercept, then standardised features) and y of a logistic-regression CSV whose last
/// column is the label, following targets.md step by step.
void logreg_data(const std::string& path, Eigen::MatrixXd& x, Eigen::VectorXd& y) {
  const PlainCsv csv = read_plain_csv(path);
  const int64_t n = static_cast<int64_t>(csv.rows.size());
  const int64_t k = static_cast<int64_t>(csv.columns.size()) - 1;
  x.resize(n, k + 1);
  y.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    x(i, 0) = 1.0;
    for (int64_t j = 0; j < k; ++j) x(i, j + 1) = csv.rows[i][j];
    y(i) = csv.rows[i][k];
  }
  for (int64_t j = 1; j <= k; ++j) {
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i) mean += x(i, j) / n;
    double variance = 0.0;
    for (int64_t i = 0; i < n; ++i) variance += (x(i, j) - mean) * (x(i, j) - mean) / n;
    const double sd = variance == 0.0 ? 1.0 : std::sqrt(variance);
    for (int64_t i = 0; i < n; ++i) x(i, j) = (x(i, j) - mean) / sd;
  }
}

/// log(1 + e^z) without overflow.
double softplus(double z) {
  return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

/// Hand-written data files.
class DataFiles : public test::TempDirectory {};

TEST(LogisticRegressionTarget, LogProbMatchesLoopFormulaOnIonosphere) {
  const std::string path = data_file("ionosphere.csv");
  const LogisticRegression target("logreg_ionosphere", path, "Class", /*dim=*/0);
  EXPECT_EQ(target.name(), "logreg_ionosphere");
  ASSERT_EQ(target.dim(), 35);
  Eigen::MatrixXd x;
  Eigen::VectorXd y;
  logreg_data(path, x, y);
  // Scale 0.5: logits x_iᵀw of size ~ 0.5 · 2 · √35 ≈ 6, some beyond 20 (the softplus branch).
  const Eigen::MatrixXd w = 0.5 * test_points(/*m=*/4, /*d=*/35, /*seed=*/61);
  const auto log_prob = target.log_prob(to_torch(w));
  ASSERT_EQ(log_prob.sizes(), (std::vector<int64_t>{4}));
  for (int64_t m = 0; m < w.rows(); ++m) {
    double expected = -0.5 * 35.0 * std::log(2.0 * kPi);
    for (int64_t j = 0; j < 35; ++j) expected -= 0.5 * w(m, j) * w(m, j);
    for (int64_t i = 0; i < x.rows(); ++i) {
      const double z = x.row(i).dot(w.row(m));
      // y log σ(z) + (1 - y) log(1 - σ(z)), with log σ(z) = -softplus(-z).
      expected += y(i) * -softplus(-z) + (1.0 - y(i)) * -softplus(z);
    }
    // Sums of ~350 terms of order one in a different order: 1e-10 relative is ~1e4 roundings.
    EXPECT_NEAR(log_prob[m].item<double>(), expected, 1e-10 * std::abs(expected));
  }
  const auto prior = target.prior();
  ASSERT_TRUE(prior.has_value());
  EXPECT_EQ(prior->centre, Eigen::VectorXd::Zero(35));
  EXPECT_EQ(prior->diagonal, Eigen::VectorXd::Ones(35));
}

TEST(LogisticRegressionTarget, AutogradGradientIsXTransposedResidualMinusW) {
  const std::string path = data_file("ionosphere.csv");
  const LogisticRegression target("logreg", path, "Class", /*dim=*/35);
  Eigen::MatrixXd x;
  Eigen::VectorXd y;
  logreg_data(path, x, y);
  // Row 0 is w = 0, every logit exactly 0: the softplus kink of a hand-made max(z, 0) form.
  Eigen::MatrixXd w = 0.3 * test_points(/*m=*/3, /*d=*/35, /*seed=*/62);
  w.row(0).setZero();
  auto wt = to_torch(w).requires_grad_(true);
  const auto grad = to_eigen(torch::autograd::grad({target.log_prob(wt).sum()}, {wt})[0]);
  for (int64_t m = 0; m < w.rows(); ++m) {
    const Eigen::VectorXd logits = x * w.row(m).transpose();
    const Eigen::VectorXd sigma = (1.0 + (-logits.array()).exp()).inverse().matrix();
    const Eigen::VectorXd expected = x.transpose() * (y - sigma) - w.row(m).transpose();
    EXPECT_LT((grad.row(m).transpose() - expected).cwiseAbs().maxCoeff(), 1e-10) << "row " << m;
  }
}

TEST(LogisticRegressionTarget, StandardisesFeaturesAndKeepsTheConstantColumnAtZero) {
  const LogisticRegression target("logreg_ionosphere", data_file("ionosphere.csv"), "Class", 0);
  const Eigen::MatrixXd x = to_eigen(target.design());
  ASSERT_EQ(x.rows(), 351);
  EXPECT_TRUE((x.col(0).array() == 1.0).all());
  // V2 (column 2 after the intercept) is constant zero in the data: zero sd becomes 1.
  EXPECT_TRUE((x.col(2).array() == 0.0).all());
  for (int64_t j = 1; j < 35; ++j) {
    if (j == 2) continue;
    EXPECT_NEAR(x.col(j).mean(), 0.0, 1e-12) << "column " << j;
    EXPECT_NEAR(std::sqrt(x.col(j).array().square().mean()), 1.0, 1e-12) << "column " << j;
  }
  const auto labels = target.labels();
  EXPECT_EQ(labels.size(0), 351);
  EXPECT_EQ(labels.sum().item<double>(), 225.0);  // 225 "good" returns
  EXPECT_EQ(target.log_prob(torch::zeros({2, 35}, torch::kFloat32)).scalar_type(), torch::kFloat32);
}

TEST(LogisticRegressionTarget, DimensionIsInferredAndAMismatchIsAnError) {
  TargetConfig config;
  config.name = "logreg_sonar";
  config.data = data_file("sonar.csv");
  const auto sonar = make_target(config);
  EXPECT_EQ(sonar->name(), "logreg_sonar");
  EXPECT_EQ(sonar->dim(), 61);
  EXPECT_FALSE(sonar->log_z().has_value());
  config.dim = 60;
  const std::string message = error_message([&] { make_target(config); });
  EXPECT_NE(message.find("target.dim"), std::string::npos) << message;
  EXPECT_NE(message.find("60 feature columns"), std::string::npos) << message;
  EXPECT_NE(message.find("d = 61; got 60"), std::string::npos) << message;
  config.dim = 61;
  EXPECT_EQ(make_target(config)->dim(), 61);
}

TEST_F(DataFiles, LogisticRegressionReadsQuotedCellsAndAnyLabelColumn) {
  // Quoted header and cells, CRLF line ends, the label first; a = (1, 2, 3), b = (5, 5, 5).
  const std::string path = write("quoted.csv",
                                 "\"y\",\"a\",\"b\"\r\n\"1\",1,\"5\"\r\n0,\"2\",5\r\n"
                                 "1,3,5\r\n");
  const LogisticRegression target("logreg", path, "y", 0);
  ASSERT_EQ(target.dim(), 3);
  const Eigen::MatrixXd x = to_eigen(target.design());
  const double sd = std::sqrt(2.0 / 3.0);  // population sd of (1, 2, 3)
  Eigen::MatrixXd expected(3, 3);
  expected << 1, -1 / sd, 0, 1, 0, 0, 1, 1 / sd, 0;
  EXPECT_LT((x - expected).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_EQ(to_eigen(target.labels().unsqueeze(1)).col(0), Eigen::Vector3d(1, 0, 1));
}

TEST_F(DataFiles, LogisticRegressionErrorsNameTheFileLineAndColumn) {
  const auto message_for = [&](const std::string& name, const std::string& text,
                               const std::string& label = "Class") {
    const std::string path = write(name, text);
    return error_message([&] { LogisticRegression("logreg", path, label, 0); });
  };
  const std::string bad_label = message_for("label.csv", "a,Class\n1,0\n2,2\n");
  EXPECT_NE(bad_label.find("label.csv' line 3 (row 2), column 'Class'"), std::string::npos)
      << bad_label;
  EXPECT_NE(bad_label.find("0 or 1, got '2'"), std::string::npos) << bad_label;
  const std::string no_label = message_for("nolabel.csv", "a,b\n1,0\n", "Class");
  EXPECT_NE(no_label.find("target.label"), std::string::npos) << no_label;
  EXPECT_NE(no_label.find("no column 'Class' (columns: a, b)"), std::string::npos) << no_label;
  const std::string ragged = message_for("ragged.csv", "a,b,Class\n1,2,0\n1,1\n");
  EXPECT_NE(ragged.find("ragged.csv' line 3: 2 fields, but the header has 3"), std::string::npos)
      << ragged;
  const std::string text = message_for("text.csv", "a,b,Class\n1,2,0\n1,x1,1\n");
  EXPECT_NE(text.find("text.csv' line 3 (row 2), column 'b': expected a finite number, got 'x1'"),
            std::string::npos)
      << text;
  const std::string quote = message_for("quote.csv", "a,Class\n\"1,0\n");
  EXPECT_NE(quote.find("quote.csv' line 2: a quoted field is not closed"), std::string::npos)
      << quote;
  const std::string empty = message_for("empty.csv", "a,Class\n");
  EXPECT_NE(empty.find("no data rows"), std::string::npos) << empty;
  const std::string missing = (directory_ / "absent.csv").string();
  const std::string absent = error_message([&] { LogisticRegression("logreg", missing, "y", 0); });
  EXPECT_NE(absent.find("target.data: cannot read '" + missing + "'"), std::string::npos) << absent;
  EXPECT_NE(absent.find("No such file"), std::string::npos) << absent;
}

/// The LGCP covariance of targets.md on a G x G grid, written out again.
Eigen::MatrixXd lgcp_covariance(int64_t g) {
  Eigen::MatrixXd k(g * g, g * g);
  for (int64_t i = 0; i < g * g; ++i) {
    for (int64_t j = 0; j < g * g; ++j) {
      const double dx = static_cast<double>(i / g - j / g);
      const double dy = static_cast<double>(i % g - j % g);
      k(i, j) = 1.91 * std::exp(-std::sqrt(dx * dx + dy * dy) / (g / 33.0));
    }
  }
  return k;
}

/// Counts of the pines on a G x G grid, row-major over (x bin, y bin).
Eigen::VectorXd pine_counts(int64_t g) {
  const PlainCsv csv = read_plain_csv(data_file("pines.csv"), /*skip=*/1);
  Eigen::VectorXd counts = Eigen::VectorXd::Zero(g * g);
  for (const auto& row : csv.rows) {
    const auto bin = [&](double c) {
      return std::min<int64_t>(g - 1, static_cast<int64_t>(c * g));
    };
    counts(bin(row[0]) * g + bin(row[1])) += 1.0;
  }
  return counts;
}

/// log N(x; μ₀ 1, K) + Σ [x_i n_i − e^{x_i} / G²] through Eigen's LLT of K.
double lgcp_log_prob(const Eigen::VectorXd& x, const Eigen::LLT<Eigen::MatrixXd>& llt,
                     const Eigen::VectorXd& counts, double mu0) {
  const Eigen::VectorXd r = x.array() - mu0;
  const double d = static_cast<double>(x.size());
  const double log_det = 2.0 * Eigen::MatrixXd(llt.matrixL()).diagonal().array().log().sum();
  const double log_normal =
      -0.5 * r.dot(llt.solve(r)) - 0.5 * log_det - 0.5 * d * std::log(2 * kPi);
  return log_normal + x.dot(counts) - x.array().exp().sum() / d;
}

TEST(LgcpTarget, BinsTheFinnishPinesAndSetsTheConstants) {
  for (const int64_t g : {8, 40}) {
    const Lgcp target(data_file("pines.csv"), g, /*whitened=*/false);
    ASSERT_EQ(target.dim(), g * g);
    EXPECT_EQ(target.points(), 126);
    EXPECT_EQ(target.counts().sum(), 126.0);
    EXPECT_EQ(target.counts(), pine_counts(g)) << "grid " << g;
    EXPECT_NEAR(target.mu0(), std::log(126.0) - 1.91 / 2.0, 1e-15);
    EXPECT_EQ(target.cell_area(), 1.0 / static_cast<double>(g * g));
  }
  // targets.md for G = 40: length scale 40 β and a = 1/1600.
  const Lgcp target(data_file("pines.csv"), 40, false);
  EXPECT_EQ(target.cell_area(), 1.0 / 1600.0);
  const Eigen::MatrixXd l = target.cholesky().topLeftCorner(2, 2);
  // K_{0,1}: neighbouring cells at distance 1, so 1.91 exp(-1 / (40/33)).
  EXPECT_NEAR((l * l.transpose())(0, 1), 1.91 * std::exp(-33.0 / 40.0), 1e-13);
}

TEST(LgcpTarget, LogProbMatchesAnEigenSolveOnSmallAndFullGrids) {
  for (const int64_t g : {8, 40}) {
    const Lgcp target(data_file("pines.csv"), g, /*whitened=*/false);
    const int64_t d = g * g;
    const Eigen::MatrixXd x = (0.5 * test_points(/*m=*/2, d, /*seed=*/71)).array() + target.mu0();
    const auto log_prob = target.log_prob(to_torch(x));
    const Eigen::LLT<Eigen::MatrixXd> llt(lgcp_covariance(g));
    const Eigen::VectorXd counts = pine_counts(g);
    for (int64_t m = 0; m < 2; ++m) {
      const double expected = lgcp_log_prob(x.row(m).transpose(), llt, counts, target.mu0());
      // Both are O(d) sums and a solve with K (condition number ~1e3 at G = 40): 1e-10 relative.
      EXPECT_NEAR(log_prob[m].item<double>(), expected, 1e-10 * std::abs(expected)) << "grid " << g;
    }
  }
}

TEST(LgcpTarget, WhitenedIsTheChangeOfVariablesWithTheSameEvidence) {
  const Lgcp x_target(data_file("pines.csv"), 8, /*whitened=*/false);
  const Lgcp u_target(data_file("pines.csv"), 8, /*whitened=*/true);
  const Eigen::MatrixXd u = 0.5 * test_points(/*m=*/3, /*d=*/64, /*seed=*/72);
  const Eigen::MatrixXd l = x_target.cholesky();
  const Eigen::MatrixXd x = ((l * u.transpose()).array() + x_target.mu0()).transpose();
  // log π_u(u) = log π_x(μ₀ + L u) + log |det L|.
  const double log_det = l.diagonal().array().log().sum();
  const auto lu = u_target.log_prob(to_torch(u));
  const auto lx = x_target.log_prob(to_torch(x));
  for (int64_t m = 0; m < 3; ++m) {
    EXPECT_NEAR(lu[m].item<double>(), lx[m].item<double>() + log_det,
                1e-10 * std::abs(lu[m].item<double>()));
  }
  const auto x_prior = x_target.prior();
  const auto u_prior = u_target.prior();
  ASSERT_TRUE(x_prior && u_prior);
  EXPECT_EQ(x_prior->centre, Eigen::VectorXd::Constant(64, x_target.mu0()));
  EXPECT_TRUE(
      (x_prior->cholesky * x_prior->cholesky.transpose()).isApprox(lgcp_covariance(8), 1e-12));
  EXPECT_NEAR(x_prior->log_det(), log_det, 1e-12);
  EXPECT_EQ(u_prior->centre, Eigen::VectorXd::Zero(64));
  EXPECT_EQ(u_prior->diagonal, Eigen::VectorXd::Ones(64));
}

TEST(LgcpTarget, AutogradGradientAndFloat32) {
  const Lgcp target(data_file("pines.csv"), 8, /*whitened=*/false);
  const Eigen::MatrixXd x =
      (0.5 * test_points(/*m=*/2, /*d=*/64, /*seed=*/73)).array() + target.mu0();
  auto xt = to_torch(x).requires_grad_(true);
  const auto grad = to_eigen(torch::autograd::grad({target.log_prob(xt).sum()}, {xt})[0]);
  const Eigen::MatrixXd k = lgcp_covariance(8);
  for (int64_t m = 0; m < 2; ++m) {
    const Eigen::VectorXd xm = x.row(m).transpose();
    // ∇ = −K⁻¹ (x − μ₀) + n − a e^x.
    const Eigen::VectorXd expected = -k.llt().solve((xm.array() - target.mu0()).matrix()) +
                                     target.counts() - (xm.array().exp() / 64.0).matrix();
    EXPECT_LT((grad.row(m).transpose() - expected).cwiseAbs().maxCoeff(), 1e-10);
  }
  const auto lp64 = target.log_prob(to_torch(x));
  const auto lp32 = target.log_prob(to_torch(x).to(torch::kFloat32));
  EXPECT_EQ(lp32.scalar_type(), torch::kFloat32);
  // Values ~ -100 from 64-term sums and a float32 solve: 1e-5 relative.
  EXPECT_TRUE(torch::allclose(lp32.to(torch::kFloat64), lp64, /*rtol=*/1e-5, /*atol=*/1e-4));
}

TEST_F(DataFiles, LgcpErrorsNameTheFile) {
  const std::string outside = write("outside.csv", "\"\",\"data_x\",\"data_y\"\n\"1\",0.5,1.2\n");
  const std::string message = error_message([&] { Lgcp(outside, 4, false); });
  EXPECT_NE(message.find("outside.csv' line 2 (row 1), column 'data_y'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("[0, 1]"), std::string::npos) << message;
  const std::string columns = write("columns.csv", "x,y\n0.5,0.5\n");
  EXPECT_NE(error_message([&] { Lgcp(columns, 4, false); }).find("data_x and data_y"),
            std::string::npos);
  // A point on the upper edge goes to the last bin.
  const Lgcp edge(write("edge.csv", "data_x,data_y\n1,0\n0,1\n"), 4, false);
  EXPECT_EQ(edge.counts()(3 * 4 + 0), 1.0);
  EXPECT_EQ(edge.counts()(0 * 4 + 3), 1.0);
}

TEST(Gmm40Target, FortyEqualComponentsFromTheMeansFile) {
  TargetConfig config;
  config.name = "gmm40";
  config.data = data_file("gmm40_means.csv");
  const auto target = make_target(config);
  EXPECT_EQ(target->name(), "gmm40");
  ASSERT_EQ(target->dim(), 2);
  const auto* gmm = dynamic_cast<const Gmm*>(target.get());
  ASSERT_NE(gmm, nullptr);
  ASSERT_EQ(gmm->components(), 40);
  const PlainCsv csv = read_plain_csv(config.data);
  const double variance = std::pow(std::log(1.0 + std::exp(1.0)), 2);  // softplus(1)²
  // targets.md quotes 1.3133² I.
  EXPECT_NEAR(variance, 1.3133 * 1.3133, 1e-3);
  for (int k = 0; k < 40; ++k) {
    EXPECT_EQ(gmm->means()[k], Eigen::Vector2d(csv.rows[k][0], csv.rows[k][1]));
    EXPECT_NEAR(gmm->weights()[k], 1.0 / 40.0, 1e-15);
    EXPECT_TRUE(gmm->covariances()[k].isApprox(variance * Eigen::MatrixXd::Identity(2, 2), 1e-15));
  }
  EXPECT_EQ(*target->log_z(), 0.0);
  EXPECT_TRUE(target->has_exact_sampler());
  config.dim = 3;
  EXPECT_NE(error_message([&] { make_target(config); }).find("target.dim"), std::string::npos);
}

TEST(Gmm40Target, DensityIntegratesToOneOnAFineGrid) {
  TargetConfig config;
  config.name = "gmm40";
  config.data = data_file("gmm40_means.csv");
  const auto target = make_target(config);
  // Means lie in [-40, 40]², sd 1.31: [-56, 56]² leaves 12 sd of margin (tail mass e^-72).
  // For a Gaussian with sd/h = 2.6 the Riemann sum's aliasing error is ~2 exp(-2π²(sd/h)²)
  // ≈ 1e-58, so the sum is 1 up to rounding (~1e-13 over 50,000 terms).
  const double h = 0.5;
  const auto axis = torch::arange(-56.0, 56.0 + h / 2, h, torch::kFloat64);
  const auto grid = torch::meshgrid({axis, axis}, "ij");
  const auto x = torch::stack({grid[0].flatten(), grid[1].flatten()}, 1);
  const double mass = target->log_prob(x).exp().sum().item<double>() * h * h;
  EXPECT_NEAR(mass, 1.0, 1e-10);
}

TEST_F(DataFiles, TorchScriptTargetRejectsMissingAndNonTorchScriptFiles) {
  const std::string missing = (directory_ / "absent.pt").string();
  const std::string absent = error_message([&] { TorchScriptTarget(missing, "", 2); });
  EXPECT_EQ(absent, "target.module: no such file '" + missing + "'");
  const std::string text = write("text.pt", "not a zip archive\n");
  const std::string archive = error_message([&] { TorchScriptTarget(text, "", 2); });
  EXPECT_NE(archive.find("target.module: '" + text + "' is not a TorchScript archive"),
            std::string::npos)
      << archive;
}

TEST(TargetErrors, BaseClassHasNoExactSampler) {
  struct Flat final : Target {
    std::string name() const override { return "flat"; }
    int64_t dim() const override { return 1; }
    torch::Tensor log_prob(const torch::Tensor& x) const override {
      return torch::zeros({x.size(0)}, x.options());
    }
  };
  const Flat flat{};
  EXPECT_FALSE(flat.has_exact_sampler());
  EXPECT_FALSE(flat.log_z().has_value());
  const std::string message = error_message([&] { flat.sample_exact(1, 0); });
  EXPECT_EQ(message, "target 'flat' has no exact sampler");
}

}  // namespace
}  // namespace rbsde
