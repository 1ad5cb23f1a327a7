// Affine preconditioning (method.md §4): AffineTarget against its inner target evaluated at
// points mapped by hand, and each kind of make_preconditioner against an independent
// computation of its map (the closed-form Gaussian for laplace, Eigen moments for pilot).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "helpers.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/io/output_file.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

using test::FunctionTarget;
using test::spd_3x3;
using test::to_eigen;
using test::to_torch;

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

torch::Tensor standard_normal_log_prob(const torch::Tensor& x) { return -0.5 * x.square().sum(1); }

/// A lower-triangular L with a negative diagonal entry (|det L| is what counts).
Affine triangular_map() {
  Affine map;
  map.centre = Eigen::Vector3d(1.0, -2.0, 0.5);
  map.cholesky.resize(3, 3);
  map.cholesky << 0.8, 0.0, 0.0, -0.3, 1.7, 0.0, 0.4, 0.2, -0.6;
  return map;
}

Affine diagonal_map() {
  Affine map;
  map.centre = Eigen::Vector3d(-1.0, 0.0, 3.0);
  map.diagonal = Eigen::Vector3d(0.5, 2.0, 1.5);
  return map;
}

Eigen::MatrixXd dense_scale(const Affine& map) {
  return map.is_diagonal() ? Eigen::MatrixXd(map.diagonal.asDiagonal()) : map.cholesky;
}

std::unique_ptr<Target> gaussian_target() {
  return std::make_unique<Gaussian>(Eigen::Vector3d(0.3, 1.0, -2.0), spd_3x3());
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

PreconditionConfig parse_precondition(const std::string& yaml) {
  return parse_config("target: {name: gaussian, dim: 3}\nprecondition: " + yaml).precondition;
}

// --- AffineTarget -----------------------------------------------------------------------------

TEST(AffineTarget, LogProbIsTheInnerTargetAtTheMappedPoints) {
  const auto inner = gaussian_target();
  torch::manual_seed(3);
  const auto x_hat = torch::randn({50, 3}, torch::kFloat64);
  for (const Affine& map : {triangular_map(), diagonal_map()}) {
    const AffineTarget target(gaussian_target(), map);
    EXPECT_EQ(target.name(), "gaussian");
    EXPECT_EQ(target.dim(), 3);
    // x = m + L x̂ row by row in Eigen, then the inner target.
    const Eigen::MatrixXd x =
        (dense_scale(map) * to_eigen(x_hat).transpose()).colwise() + map.centre;
    const auto expected = inner->log_prob(to_torch(x.transpose()));
    EXPECT_TRUE(torch::allclose(target.log_prob(x_hat), expected, 1e-12, 1e-12));
    EXPECT_TRUE(
        torch::allclose(target.to_target_space(x_hat), to_torch(x.transpose()), 1e-14, 1e-14));

    // float32 in, float32 out (float32 rounding of values of order 10: 1e-4 relative).
    const auto single = target.log_prob(x_hat.to(torch::kFloat32));
    EXPECT_EQ(single.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(single.to(torch::kFloat64), expected, 1e-4, 1e-4));

    // Chain rule: ∇_x̂ log π̃(m + L x̂) = Lᵀ ∇_x log π̃(x).
    const auto x_hat_grad = x_hat.clone().requires_grad_(true);
    const auto gradient =
        torch::autograd::grad({target.log_prob(x_hat_grad).sum()}, {x_hat_grad})[0];
    const auto x_grad = to_torch(x.transpose()).requires_grad_(true);
    const auto inner_gradient = torch::autograd::grad({inner->log_prob(x_grad).sum()}, {x_grad})[0];
    const Eigen::MatrixXd chained = to_eigen(inner_gradient) * dense_scale(map);
    EXPECT_TRUE(torch::allclose(gradient, to_torch(chained), 1e-12, 1e-12));
  }
}

TEST(AffineTarget, LogZShiftAndExactSamplesRoundTrip) {
  const auto inner = gaussian_target();
  const auto& gaussian = dynamic_cast<const Gaussian&>(*inner);
  for (const Affine& map : {triangular_map(), diagonal_map()}) {
    const AffineTarget target(gaussian_target(), map);
    // In x̂ the target is N(L⁻¹(μ − m), L⁻¹ Σ L⁻ᵀ) up to the same constant factor, so its
    // log 𝒵̂ is the Gaussian formula for that covariance: log 𝒵 − log |det L|.
    const Eigen::MatrixXd inverse = dense_scale(map).inverse();
    const Eigen::MatrixXd covariance = inverse * gaussian.covariance() * inverse.transpose();
    const double expected = 1.5 * kLog2Pi + 0.5 * std::log(covariance.determinant());
    ASSERT_TRUE(target.log_z().has_value());
    EXPECT_NEAR(*target.log_z(), expected, 1e-12);
    EXPECT_NEAR(*target.log_z(), *inner->log_z() - map.log_det(), 1e-12);
    EXPECT_NEAR(map.log_det(), std::log(std::abs(dense_scale(map).determinant())), 1e-12);

    // The exact sampler of x̂ maps back onto the inner sampler's points (same seed).
    EXPECT_TRUE(target.has_exact_sampler());
    const auto x_hat = target.sample_exact(1000, 7);
    EXPECT_EQ(x_hat.scalar_type(), torch::kFloat64);
    EXPECT_TRUE(
        torch::allclose(target.to_target_space(x_hat), inner->sample_exact(1000, 7), 1e-12, 1e-12));
  }
  const AffineTarget unknown(std::make_unique<FunctionTarget>(3, standard_normal_log_prob),
                             diagonal_map());
  EXPECT_FALSE(unknown.log_z().has_value());
  EXPECT_FALSE(unknown.has_exact_sampler());
}

TEST(AffineTarget, RejectsABadMapOrBatch) {
  const auto message = [](Affine map) {
    return error_message([&] { AffineTarget(gaussian_target(), std::move(map)); });
  };
  Affine short_centre = diagonal_map();
  short_centre.centre = Eigen::Vector2d(0.0, 0.0);
  EXPECT_NE(message(short_centre).find("precondition"), std::string::npos);
  EXPECT_NE(message(short_centre).find("target.dim = 3"), std::string::npos);
  Affine singular = diagonal_map();
  singular.diagonal(1) = 0.0;
  EXPECT_NE(message(singular).find("singular"), std::string::npos);
  Affine upper = triangular_map();
  upper.cholesky(0, 2) = 0.1;
  EXPECT_NE(message(upper).find("lower triangular"), std::string::npos);
  Affine both = triangular_map();
  both.diagonal = Eigen::Vector3d::Ones();
  EXPECT_NE(message(both).find("either"), std::string::npos);
  Affine infinite = diagonal_map();
  infinite.centre(0) = INFINITY;
  EXPECT_NE(message(infinite).find("non-finite"), std::string::npos);

  const AffineTarget target(gaussian_target(), diagonal_map());
  EXPECT_NE(error_message([&] {
              target.log_prob(torch::zeros({4, 2}, torch::kFloat64));
            }).find("[M, 3]"),
            std::string::npos);
  EXPECT_THROW(target.log_prob(torch::zeros({4, 3}, torch::kInt64)), Error);
}

// --- make_preconditioner: none, config, prior -------------------------------------------------

TEST(Preconditioner, NoneKeepsTheTargetItself) {
  Communicator comm(MPI_COMM_WORLD);
  auto target = gaussian_target();
  const Target* original = target.get();
  const auto result = precondition(std::move(target), PreconditionConfig{}, comm);
  EXPECT_EQ(result.get(), original);
  const Affine identity = make_preconditioner(*result, PreconditionConfig{}, comm);
  EXPECT_EQ(identity.centre, Eigen::Vector3d::Zero());
  EXPECT_EQ(identity.diagonal, Eigen::Vector3d::Ones());
}

TEST(Preconditioner, ConfigCentreAndScaleInEveryForm) {
  Communicator comm(MPI_COMM_WORLD);
  const auto target = gaussian_target();
  const Affine diagonal = make_preconditioner(
      *target, parse_precondition("{kind: config, centre: [1, 2, 3], scale: [0.5, 2, 3]}"), comm);
  EXPECT_EQ(diagonal.centre, Eigen::Vector3d(1, 2, 3));
  EXPECT_EQ(diagonal.diagonal, Eigen::Vector3d(0.5, 2, 3));

  const Affine scalar =
      make_preconditioner(*target, parse_precondition("{kind: config, centre: 4, scale: 2}"), comm);
  EXPECT_EQ(scalar.centre, Eigen::Vector3d(4, 4, 4));
  EXPECT_EQ(scalar.diagonal, Eigen::Vector3d(2, 2, 2));

  const Affine defaults = make_preconditioner(*target, parse_precondition("{kind: config}"), comm);
  EXPECT_EQ(defaults.centre, Eigen::Vector3d::Zero());
  EXPECT_EQ(defaults.diagonal, Eigen::Vector3d::Ones());

  // A matrix is a covariance: L is its Cholesky factor.
  const Affine matrix = make_preconditioner(
      *target,
      parse_precondition("{kind: config, scale: [[4, 1, 0.5], [1, 2, 0.3], [0.5, 0.3, 1]]}"), comm);
  Eigen::Matrix3d covariance;
  covariance << 4, 1, 0.5, 1, 2, 0.3, 0.5, 0.3, 1;
  ASSERT_FALSE(matrix.is_diagonal());
  EXPECT_TRUE((matrix.cholesky * matrix.cholesky.transpose()).isApprox(covariance, 1e-14));
  EXPECT_TRUE(Eigen::MatrixXd(matrix.cholesky.triangularView<Eigen::StrictlyUpper>()).isZero(0.0));
  EXPECT_NEAR(matrix.log_det(), 0.5 * std::log(covariance.determinant()), 1e-12);

  // The resolved configuration reproduces each form.
  for (const char* yaml :
       {"{kind: config, centre: [1, 2, 3], scale: [0.5, 2, 3]}",
        "{kind: config, scale: [[4, 1, 0.5], [1, 2, 0.3], [0.5, 0.3, 1]]}",
        "{kind: laplace, form: diagonal, iterations: 50}", "{kind: pilot, pilot: run.h5}"}) {
    const Config config =
        parse_config(std::string("target: {name: gaussian, dim: 3}\nprecondition: ") + yaml);
    const PreconditionConfig again = parse_config(config.resolved_yaml).precondition;
    EXPECT_EQ(again.kind, config.precondition.kind) << yaml;
    EXPECT_EQ(again.centre, config.precondition.centre) << yaml;
    EXPECT_EQ(again.scale_diagonal, config.precondition.scale_diagonal) << yaml;
    EXPECT_EQ(again.scale_covariance, config.precondition.scale_covariance) << yaml;
    EXPECT_EQ(again.form, config.precondition.form) << yaml;
    EXPECT_EQ(again.iterations, config.precondition.iterations) << yaml;
    EXPECT_EQ(again.pilot, config.precondition.pilot) << yaml;
  }
}

TEST(Preconditioner, DefaultKindIsAutoForPosteriorsAndHighDimension) {
  const auto kind = [](const std::string& target) {
    return parse_config("target: " + target).precondition.kind;
  };
  EXPECT_EQ(kind("{name: gaussian, dim: 1000}"), "none");
  EXPECT_EQ(kind("{name: gaussian, dim: 1001}"), "auto");
  EXPECT_EQ(kind("{name: funnel, dim: 2000}"), "auto");
  EXPECT_EQ(kind("{name: many_well, dim: 2000}"), "none");  // a mixture: Laplace holds one mode
  EXPECT_EQ(kind("{name: logreg_sonar}"), "auto");
  EXPECT_EQ(kind("{name: gaussian, dim: 2000}\nprecondition: {kind: none}"), "none");
}

TEST(Preconditioner, ConfigErrorsNameTheKey) {
  const auto message = [](const std::string& yaml) {
    return error_message([&] { parse_precondition(yaml); });
  };
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"{kind: laplce}", {"precondition.kind", "none, config, prior, laplace, pilot"}},
      {"{kind: config, scale: -1}", {"precondition.scale", "> 0"}},
      {"{kind: config, scale: [1, 0, 2]}", {"precondition.scale[1]", "> 0"}},
      {"{kind: config, scale: [1, 2]}", {"precondition.scale", "expected 3 values"}},
      {"{kind: config, scale: [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}",
       {"precondition.scale", "not positive definite"}},
      {"{kind: config, centre: [1, 2]}", {"precondition.centre", "expected 3 values"}},
      {"{kind: laplace, form: full}", {"precondition.form", "cholesky, diagonal"}},
      {"{kind: laplace, iterations: 0}", {"precondition.iterations", ">= 1"}},
      {"{kind: pilot}", {"missing required key 'precondition.pilot'"}},
      {"{kind: laplace, pilot: run.h5}",
       {"precondition.pilot is used only by precondition.kind: pilot", "here", "laplace"}},
      {"{scale: 2}", {"precondition.scale is used only by precondition.kind: config"}},
      {"{kind: prior, form: diagonal}", {"precondition.form", "laplace, pilot"}},
      {"{kind: pilot, pilot: run.h5, form: curvature}",
       {"precondition.form", "curvature", "laplace or auto"}},
      {"{kinds: laplace}", {"unknown key 'precondition.kinds'"}},
  };
  for (const auto& [yaml, fragments] : cases) {
    const std::string text = message(yaml);
    for (const std::string& fragment : fragments) {
      EXPECT_NE(text.find(fragment), std::string::npos) << yaml << " -> " << text;
    }
  }
}

TEST(Preconditioner, PriorIsTheTargetsGaussianPrior) {
  Communicator comm(MPI_COMM_WORLD);
  Affine prior;
  prior.centre = Eigen::Vector2d(1.5, -0.5);
  prior.cholesky.resize(2, 2);
  prior.cholesky << 2.0, 0.0, 0.7, 0.3;
  const FunctionTarget bayesian(2, standard_normal_log_prob, prior);
  PreconditionConfig config;
  config.kind = "prior";
  const Affine map = make_preconditioner(bayesian, config, comm);
  EXPECT_EQ(map.centre, prior.centre);
  EXPECT_EQ(map.cholesky, prior.cholesky);
  EXPECT_FALSE(map.is_diagonal());

  const std::string none =
      error_message([&] { make_preconditioner(*gaussian_target(), config, comm); });
  EXPECT_NE(none.find("precondition.kind: prior"), std::string::npos) << none;
  EXPECT_NE(none.find("'gaussian' has no Gaussian prior"), std::string::npos) << none;
}

// --- laplace -------------------------------------------------------------------------------------

TEST(Preconditioner, LaplaceRecoversAGaussianExactly) {
  Communicator comm(MPI_COMM_WORLD);
  // Far from the start point 0 and strongly scaled: mean (30, −25, 12), sds 0.04 to 0.2.
  const Eigen::VectorXd mean = Eigen::Vector3d(30.0, -25.0, 12.0);
  const Eigen::MatrixXd covariance = 0.01 * spd_3x3();
  const Gaussian target(mean, covariance);
  const Eigen::MatrixXd cholesky = covariance.llt().matrixL();
  const Eigen::VectorXd sd = covariance.diagonal().array().sqrt();
  PreconditionConfig config;
  config.kind = "laplace";
  // curvature: the conditional sds (Σ⁻¹)_ii^−½, smaller than the marginal ones here.
  const Eigen::VectorXd conditional_sd = covariance.inverse().diagonal().array().rsqrt();
  for (const std::string form : {"auto", "cholesky", "diagonal", "curvature"}) {
    config.form = form;
    const Affine map = make_preconditioner(target, config, comm);
    // The Laplace approximation of a Gaussian is the Gaussian. The autograd Hessian of a
    // quadratic is exact up to rounding, and so is the final Newton step to the mode (L-BFGS
    // alone stops about 6e-6 sd away): rounding of values near 30 is 1e-13 sd. The curvature
    // form's Newton step uses only diag(H), so from where L-BFGS stopped it is not exact.
    const double centre_tolerance = form == "curvature" ? 1e-4 : 1e-9;
    EXPECT_LT(((map.centre - mean).array().abs() / sd.array()).maxCoeff(), centre_tolerance)
        << form;
    if (form == "cholesky" || form == "auto") {  // auto: cholesky in d = 3
      ASSERT_FALSE(map.is_diagonal()) << form;
      EXPECT_LT((map.cholesky - cholesky).cwiseAbs().maxCoeff(), 1e-9 * cholesky.norm());
    } else {
      ASSERT_TRUE(map.is_diagonal());
      const Eigen::VectorXd& expected = form == "diagonal" ? sd : conditional_sd;
      EXPECT_LT((map.diagonal - expected).cwiseAbs().maxCoeff(), 1e-9 * expected.norm()) << form;
    }
  }
}

TEST(Preconditioner, AutoFormIsDenseUpToKDenseMapMaxDim) {
  PreconditionConfig config;
  for (const std::string kind : {"laplace", "auto", "pilot"}) {
    config.kind = kind;
    config.form = "auto";
    EXPECT_EQ(resolved_form(config, kDenseMapMaxDim), "cholesky") << kind;
    EXPECT_EQ(resolved_form(config, kDenseMapMaxDim + 1),
              kind == "pilot" ? "diagonal" : "curvature")
        << kind;
    config.form = "diagonal";
    EXPECT_EQ(resolved_form(config, 10), "diagonal") << kind;
  }
}

TEST(Preconditioner, LaplaceAboveTheDenseLimitKeepsOnlyTheHessiansDiagonal) {
  Communicator comm(MPI_COMM_WORLD);
  // N(μ, diag(σ²)) in d = 5000 > kDenseMapMaxDim: form auto is curvature, exact for independent
  // coordinates (a dense Hessian would take 200 MB).
  const int64_t d = kDenseMapMaxDim + 904;
  const Eigen::VectorXd mean = Eigen::VectorXd::LinSpaced(d, -3.0, 5.0);
  const Eigen::VectorXd variances = Eigen::VectorXd::LinSpaced(d, 0.05, 4.0);
  const auto target = Gaussian::diagonal(mean, variances);
  PreconditionConfig config;
  config.kind = "laplace";
  const Affine map = make_preconditioner(*target, config, comm);
  ASSERT_TRUE(map.is_diagonal());
  const Eigen::VectorXd sd = variances.cwiseSqrt();
  EXPECT_LT(((map.centre - mean).array().abs() / sd.array()).maxCoeff(), 1e-6);
  EXPECT_LT(((map.diagonal - sd).array().abs() / sd.array()).maxCoeff(), 1e-9);
}

TEST(Preconditioner, LaplaceErrors) {
  Communicator comm(MPI_COMM_WORLD);
  PreconditionConfig config;
  config.kind = "laplace";

  // One L-BFGS iteration cannot reach the mode of a correlated, badly scaled Gaussian.
  config.iterations = 1;
  const Gaussian far(Eigen::Vector3d(30.0, -25.0, 12.0), 0.01 * spd_3x3());
  const std::string early = error_message([&] { make_preconditioner(far, config, comm); });
  EXPECT_NE(early.find("did not reach the mode"), std::string::npos) << early;
  EXPECT_NE(early.find("precondition.iterations = 1"), std::string::npos) << early;
  config.iterations = 1000;

  // log π̃ = −½ (x₀ + x₁)² − ½ x₂²: flat along (1, −1, 0), so H is singular.
  const FunctionTarget flat(3, [](const torch::Tensor& x) {
    return -0.5 * (x.select(1, 0) + x.select(1, 1)).square() - 0.5 * x.select(1, 2).square();
  });
  const std::string singular = error_message([&] { make_preconditioner(flat, config, comm); });
  EXPECT_NE(singular.find("not positive definite"), std::string::npos) << singular;
  EXPECT_NE(singular.find("precondition.form: diagonal"), std::string::npos) << singular;
  config.form = "diagonal";
  const std::string diagonal = error_message([&] { make_preconditioner(flat, config, comm); });
  EXPECT_NE(diagonal.find("singular"), std::string::npos) << diagonal;
  EXPECT_NE(diagonal.find("precondition.kind: prior or config"), std::string::npos) << diagonal;

  // log π̃ = −½ x₀² + 0 · x₁: no curvature along x₁, so no curvature-form map.
  config.form = "curvature";
  const FunctionTarget uncurved(2, [](const torch::Tensor& x) {
    return -0.5 * x.select(1, 0).square() + 0.0 * x.select(1, 1);
  });
  const std::string zero = error_message([&] { make_preconditioner(uncurved, config, comm); });
  EXPECT_NE(zero.find("diagonal entry of the Hessian"), std::string::npos) << zero;
  EXPECT_NE(zero.find("not finite and positive"), std::string::npos) << zero;

  // log π̃ = log x₀ − x₀ is −∞ at the start point 0.
  const FunctionTarget gamma(1, [](const torch::Tensor& x) { return (x.log() - x).squeeze(1); });
  const std::string start = error_message([&] { make_preconditioner(gamma, config, comm); });
  EXPECT_NE(start.find("not finite at the start point (0)"), std::string::npos) << start;
}

// --- pilot ---------------------------------------------------------------------------------------

/// Pilot output files.
class PilotFile : public test::TempDirectory {};

TEST_F(PilotFile, WeightedMomentsOfAnEarlierRun) {
  Communicator comm(MPI_COMM_WORLD);
  // A pilot output file: correlated samples around (5, −3, 1) and uneven weights.
  const int64_t count = 400;
  torch::manual_seed(11);
  const auto z = torch::randn({count, 3}, torch::kFloat64);
  const Eigen::MatrixXd mixing = spd_3x3().llt().matrixL();
  const auto samples =
      (torch::matmul(z, to_torch(mixing).t()) + torch::tensor({5.0, -3.0, 1.0}, torch::kFloat64))
          .to(torch::kFloat32)
          .contiguous();
  const auto log_weights = (0.7 * torch::randn({count}, torch::kFloat64)).contiguous();
  const auto zeros = torch::zeros({count}, torch::kFloat64);
  const std::string path = (directory_ / "pilot.h5").string();
  {
    OutputFile out(path, comm);
    out.create_samples(count, 3);
    out.write_samples(0, comm.is_root() ? count : 0,
                      PathRows{samples.data_ptr<float>(), log_weights.data_ptr<double>(),
                               zeros.data_ptr<double>(), zeros.data_ptr<double>()});
    out.commit();
  }

  // The same moments in Eigen, from the float32 values the file holds.
  const Eigen::MatrixXd x = to_eigen(samples);
  Eigen::VectorXd w(count);
  for (int64_t i = 0; i < count; ++i) w(i) = std::exp(log_weights[i].item<double>());
  w /= w.sum();
  const Eigen::VectorXd mean = x.transpose() * w;
  Eigen::MatrixXd covariance = Eigen::MatrixXd::Zero(3, 3);
  for (int64_t i = 0; i < count; ++i) {
    const Eigen::VectorXd r = x.row(i).transpose() - mean;
    covariance += w(i) * r * r.transpose();
  }

  const Gaussian target(Eigen::Vector3d::Zero(), Eigen::MatrixXd::Identity(3, 3));
  PreconditionConfig config;
  config.kind = "pilot";
  config.pilot = path;
  const Affine full = make_preconditioner(target, config, comm);
  EXPECT_LT((full.centre - mean).cwiseAbs().maxCoeff(), 1e-12);
  ASSERT_FALSE(full.is_diagonal());
  EXPECT_TRUE((full.cholesky * full.cholesky.transpose()).isApprox(covariance, 1e-12));
  config.form = "diagonal";
  const Affine diagonal = make_preconditioner(target, config, comm);
  EXPECT_LT((diagonal.centre - mean).cwiseAbs().maxCoeff(), 1e-12);
  ASSERT_TRUE(diagonal.is_diagonal());
  EXPECT_TRUE(diagonal.diagonal.isApprox(covariance.diagonal().cwiseSqrt(), 1e-12));

  // Errors: a missing file, and a file of another dimension.
  config.pilot = (directory_ / "missing.h5").string();
  const std::string missing = error_message([&] { make_preconditioner(target, config, comm); });
  EXPECT_NE(missing.find("precondition.pilot"), std::string::npos) << missing;
  EXPECT_NE(missing.find("missing.h5"), std::string::npos) << missing;
  config.pilot = path;
  const Gaussian other(Eigen::Vector2d::Zero(), Eigen::MatrixXd::Identity(2, 2));
  const std::string mismatch = error_message([&] { make_preconditioner(other, config, comm); });
  EXPECT_NE(mismatch.find("3 columns but target.dim is 2"), std::string::npos) << mismatch;
  config.pilot = (directory_ / "not_hdf5.h5").string();
  std::ofstream(config.pilot) << "text\n";
  const std::string not_hdf5 = error_message([&] { make_preconditioner(target, config, comm); });
  EXPECT_NE(not_hdf5.find("cannot be opened as an HDF5 file"), std::string::npos) << not_hdf5;
}

TEST_F(PilotFile, OutputRecordsTheMap) {
  Communicator comm(MPI_COMM_WORLD);
  const std::string path = (directory_ / "run.h5").string();
  {
    OutputFile out(path, comm);
    out.write_preconditioning(triangular_map(), "laplace");
    out.commit();
  }
  if (!comm.is_root()) return;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  std::vector<double> centre(3), scale(9);
  const hid_t centre_set = H5Dopen2(file, "preconditioning/centre", H5P_DEFAULT);
  const hid_t scale_set = H5Dopen2(file, "preconditioning/scale", H5P_DEFAULT);
  ASSERT_GE(centre_set, 0);
  ASSERT_GE(scale_set, 0);
  EXPECT_GE(H5Dread(centre_set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, centre.data()),
            0);
  EXPECT_GE(H5Dread(scale_set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, scale.data()), 0);
  const Affine map = triangular_map();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(centre[i], map.centre(i));
    for (int j = 0; j < 3; ++j) EXPECT_EQ(scale[3 * i + j], map.cholesky(i, j)) << i << "," << j;
  }
  double log_det = 0.0;
  const hid_t group = H5Gopen2(file, "preconditioning", H5P_DEFAULT);
  const hid_t attribute = H5Aopen(group, "log_det", H5P_DEFAULT);
  EXPECT_GE(H5Aread(attribute, H5T_NATIVE_DOUBLE, &log_det), 0);
  EXPECT_EQ(log_det, map.log_det());
  EXPECT_GT(H5Aexists(group, "kind"), 0);
  EXPECT_GT(H5Aexists(group, "form"), 0);
  H5Aclose(attribute);
  H5Gclose(group);
  H5Dclose(scale_set);
  H5Dclose(centre_set);
  H5Fclose(file);
}

}  // namespace
}  // namespace rbsde
