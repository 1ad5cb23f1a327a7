// The training gradient against plain autograd, and the model's basic properties.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/step.hpp"
#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/io/network_file.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

const char* kSmall = R"(
target: {name: gaussian, dim: 3, mean: [1, -0.5, 0.2], covariance: [0.5, 1.5, 0.8]}
sde: {steps: 25}
network: {width: 8, depth: 2, y0_residual: true}
train: {paths: 16, anneal_gamma0: 0.3, anneal_fraction: 0.5, iterations: 10}
)";

/// A model with random parameters everywhere (also the zero-initialised output layers).
BsdeModel random_model(const Config& config, const NoiseSchedule& schedule) {
  torch::manual_seed(3);
  BsdeModel model(config.target.dim, config.network, schedule);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.copy_(0.2 * torch::randn_like(p));
  model->set_constant(1.7);
  return model;
}

double mean_of_last(const std::vector<double>& values, size_t count) {
  double sum = 0.0;
  for (size_t i = values.size() - count; i < values.size(); ++i) sum += values[i];
  return sum / static_cast<double>(count);
}

std::vector<torch::Tensor> gradients(BsdeModel& model) {
  std::vector<torch::Tensor> grads;
  for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return grads;
}

// Autograd through the residual with X detached: u = Z detached on the model's own paths and
// u = −√b X on the first `explorers` paths (train.explore). train.y_step exact: the residual is
// c_θ + r_θ(X₀) − log w, log w = log π̃_γ(X_N) + Σ log k_n − log N(X₀; 0, I) − Σ log q_n
// written out from method.md §5 with every 2π, q_n the model's step (with the gain head's
// gains held fixed) evaluated at the path's X_{n+1}. euler: the Y recursion with the driver for
// an arbitrary control, Y += (u·Z − ½|Z|² − ½ b d) h + Z·ΔB. The loss is the residual's
// variance over paths weighted p ∝ exp(−κ r) with the weights held fixed (train.tilt κ; uniform
// for κ = 0). Returns the unweighted variance and mean residual (what the trainer reports) and
// leaves ∇L in the model's .grad().
std::pair<double, double> autograd_loss(const Config& config, const Target& target,
                                        BsdeModel& model, int64_t iteration, double gamma,
                                        int64_t explorers) {
  const auto schedule = NoiseSchedule::from_config(config.sde);
  const TimeGrid grid(schedule, config.sde.steps);
  const int64_t m = config.train.paths, d = config.target.dim;
  const NoiseKey key{config.train.seed, NoiseStream::kTraining, static_cast<uint32_t>(iteration)};
  const auto explorer = (torch::arange(m) < explorers).unsqueeze(1);
  auto x = torch::empty({m, d});
  fill_normal(x.data_ptr<float>(), m, d, key, 0, kInitialStep);
  const auto x0 = x.clone();
  const bool exact = config.train.y_step == "exact";
  auto y = torch::zeros({m}, torch::kFloat64);      // euler: Y_n − Y₀
  auto log_w = torch::zeros({m}, torch::kFloat64);  // exact: Σ (log k_n − log q_n)
  for (int64_t n = 0; n < grid.steps; ++n) {
    const double b = grid.b[n], h = grid.h[n];
    auto xi = torch::empty({m, d});
    fill_normal(xi.data_ptr<float>(), m, d, key, 0, static_cast<uint32_t>(n));
    const auto score = model->has_score() ? score_feature(target, x) : torch::Tensor();
    const auto [z, gain] = model->z_gain(grid.s[n], x, score);
    const auto u = torch::where(explorer, -std::sqrt(b) * x, z.detach());
    y = y + ((u * z).sum(1) - 0.5 * z.pow(2).sum(1) - 0.5 * b * d) * h +
        std::sqrt(h) * (z * xi).sum(1);
    // The model's step q_n: mean x_gain X + z_gain Z and noise of the grid (Euler:
    // x_gain = 1 + ½ b h, z_gain = √b h, noise = √(b h)), or with network.gain gain_step's,
    // coordinate by coordinate in float64 like the trainer's kernel.
    auto x_gain = torch::full({m, d}, grid.x_gain[n], torch::kFloat64);
    auto z_gain = torch::full({m, d}, grid.z_gain[n], torch::kFloat64);
    auto noise = torch::full({m, d}, grid.noise[n], torch::kFloat64);
    if (gain.defined()) {
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < d; ++j) {
          const StepGains step = gain_step(StepConstants(grid, n, d), gain[i][j].item<double>());
          x_gain[i][j] = step.x_gain;
          z_gain[i][j] = step.z_gain;
          noise[i][j] = step.noise;
        }
      }
    }
    // The path: explorers the grid's reference step, written as an increment of x like the
    // trainer's float32 kernel; the model's own paths q_n's step.
    const auto grid_step = x + (grid.x_gain[n] - 1.0) * x + grid.z_gain[n] * u + grid.noise[n] * xi;
    const auto own = gain.defined()
                         ? (x_gain * x.to(torch::kFloat64) + z_gain * u.to(torch::kFloat64) +
                            noise * xi.to(torch::kFloat64))
                               .to(torch::kFloat32)
                         : grid_step;
    const auto x_next = torch::where(explorer, grid_step, own).detach();
    const auto x64 = x.to(torch::kFloat64), next64 = x_next.to(torch::kFloat64);
    const auto q_mean = x_gain * x64 + z_gain * z.to(torch::kFloat64);
    const auto log_q =
        (-0.5 * ((next64 - q_mean) / noise).pow(2) - noise.log() - 0.5 * std::log(2.0 * M_PI))
            .sum(1);
    const double k_variance = 1.0 - grid.a[n] * grid.a[n];
    const auto log_k = (-0.5 * (x64 - grid.a[n] * next64).pow(2) / k_variance -
                        0.5 * std::log(2.0 * M_PI * k_variance))
                           .sum(1);
    log_w = log_w + log_k - log_q;
    x = x_next;
  }
  const double reference_share = config.train.anneal_path == "tempered" ? 0.0 : 1.0 - gamma;
  const auto terminal =
      (gamma * target.log_prob(x) + reference_share * BsdeModelImpl::log_reference(x))
          .to(torch::kFloat64);
  const auto offset = (model->constant() + model->y0_residual(x0)).to(torch::kFloat64);
  const auto log_reference = BsdeModelImpl::log_reference(x0.to(torch::kFloat64));
  const auto residual =
      exact ? offset - (terminal + log_w - log_reference) : log_reference + offset + y - terminal;
  const auto p = torch::softmax(-config.train.tilt * residual.detach(), 0);
  (p * (residual - (p * residual).sum().detach()).pow(2)).sum().backward();
  const auto r = residual.detach();
  return {(r - r.mean()).pow(2).mean().item<double>(), r.mean().item<double>()};
}

/// The trainer's gradient and autograd's agree: same loss and mean residual to float32
/// rounding (the two sum the same terms in different orders), same gradient to 1e-5 of its
/// largest entry.
void expect_same_step(const StepResult& result, const std::vector<torch::Tensor>& fast,
                      std::pair<double, double> reference, const std::vector<torch::Tensor>& slow) {
  const auto [loss, mean_residual] = reference;
  EXPECT_NEAR(result.loss, loss, 1e-5 * loss);
  EXPECT_NEAR(result.mean_residual, mean_residual, 1e-6 * std::abs(mean_residual));
  ASSERT_EQ(fast.size(), slow.size());
  double scale = 0.0;
  for (const auto& g : slow) scale = std::max(scale, g.abs().max().item<double>());
  ASSERT_GT(scale, 0.0);
  for (size_t i = 0; i < fast.size(); ++i) {
    EXPECT_LT((fast[i] - slow[i]).abs().max().item<double>(), 1e-5 * scale) << "parameter " << i;
  }
}

// The trainer's detached gradient (one simulation without a graph recording the
// pre-activations and leaving ∂Y_{n+1}/∂Z_n in ξ_n, then a hand-written backward over all of
// them) equals autograd through the residual with the paths detached (method.md §4), for the
// exact and the Euler Y step: one step at an iteration where γ < 1, so the annealed terminal
// condition is exercised too, both from the same random parameters.
void expect_step_equals_autograd_with(const Config& config) {
  const int64_t iteration = 2;
  const int64_t explorers = std::llround(config.train.explore * config.train.paths);
  const auto target = make_target(config.target);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  Communicator comm(MPI_COMM_WORLD);
  auto fast_model = random_model(config, schedule);
  Trainer trainer(*target, fast_model, config.sde, config.train, comm);
  const double gamma = trainer.annealing().gamma(iteration);
  ASSERT_LT(gamma, 1.0);
  const StepResult result = trainer.compute_gradients(iteration);
  auto model = random_model(config, schedule);
  const auto reference = autograd_loss(config, *target, model, iteration, gamma, explorers);
  expect_same_step(result, gradients(fast_model), reference, gradients(model));
}

void expect_step_equals_autograd(const Config& config) {
  for (const char* y_step : {"exact", "euler"}) {
    SCOPED_TRACE(std::string("train.y_step ") + y_step);
    Config with_step = config;
    with_step.train.y_step = y_step;
    expect_step_equals_autograd_with(with_step);
  }
}

class DetachedGradient : public ::testing::TestWithParam<std::tuple<std::string, int64_t>> {};

TEST_P(DetachedGradient, EqualsAutogradThroughTheRecursion) {
  Config config = parse_config(kSmall);
  config.network.activation = std::get<0>(GetParam());
  config.network.depth = std::get<1>(GetParam());
  expect_step_equals_autograd(config);
}

// The exponential integrator changes only the X step; the gradient pass is unchanged.
TEST(DetachedGradient, WithTheExponentialIntegratorEqualsAutograd) {
  Config config = parse_config(kSmall);
  config.sde.integrator = "exponential";
  ASSERT_TRUE(NoiseSchedule::from_config(config.sde).exponential);
  expect_step_equals_autograd(config);
}

// With train.explore the first paths follow the reference control and their gradient has the
// drift term (u − Z) h too; with constant memory the paths are re-simulated for it.
TEST(DetachedGradient, WithExplorationPathsEqualsAutograd) {
  for (bool constant_memory : {false, true}) {
    Config config = parse_config(kSmall);
    config.train.explore = 0.25;  // 4 of the 16 paths
    config.train.constant_memory = constant_memory;
    expect_step_equals_autograd(config);
  }
}

// train.tilt weights the paths ∝ exp(−κ r) in the loss, with or without constant memory and
// exploration paths. κ = 1 on these random parameters makes a few paths dominate.
TEST(DetachedGradient, WithTiltedPathWeightsEqualsAutograd) {
  for (double tilt : {0.3, 1.0}) {
    for (bool constant_memory : {false, true}) {
      Config config = parse_config(kSmall);
      config.train.tilt = tilt;
      config.train.constant_memory = constant_memory;
      config.train.explore = constant_memory ? 0.25 : 0.0;
      expect_step_equals_autograd(config);
    }
  }
}

// train.anneal_path: tempered anneals γ log π̃ instead of the bridge from the reference.
TEST(DetachedGradient, WithTemperedAnnealingEqualsAutograd) {
  expect_step_equals_autograd(parse_config(kSmall, {"train.anneal_path=tempered"}));
}

// network.blocks: one MLP shared by blocks of coordinates; its records have a row per block.
TEST(DetachedGradient, WithBlocksEqualsAutograd) {
  for (bool constant_memory : {false, true}) {
    Config config = parse_config(kSmall);
    config.network.blocks = 3;  // d = 3: one coordinate per block
    config.train.constant_memory = constant_memory;
    expect_step_equals_autograd(config);
  }
}

// network.gain: the output layer's second head g gives G = √b (1 − e^{−g}), which multiplies x,
// so the gradient through it carries √b e^{−g} ⊙ x (random weights: g ≠ 0); the model's own
// paths take gain_step's gains, explorers the reference step.
TEST(DetachedGradient, WithTheGainHeadEqualsAutograd) {
  for (int64_t blocks : {1, 3}) {
    for (bool constant_memory : {false, true}) {
      Config config = parse_config(kSmall, {"sde.integrator=exponential", "network.gain=true"});
      config.network.blocks = blocks;
      config.train.constant_memory = constant_memory;
      config.train.explore = blocks == 3 ? 0.25 : 0.0;
      config.train.tilt = constant_memory ? 0.5 : 0.0;
      expect_step_equals_autograd(config);
    }
  }
}

// network.score: Z_θ gains √b a_θ(s) φ(X), φ the bounded score plus X; a_θ's gradient is the
// weighted Σ (∂Y/∂Z_n)·φ(X_n) of each step (random weights: a_θ ≠ 0, so the paths depend on
// the feature too), with the gain head, exploration paths and constant memory.
TEST(DetachedGradient, WithTheScoreFeatureEqualsAutograd) {
  for (bool constant_memory : {false, true}) {
    for (bool gain : {false, true}) {
      Config config = parse_config(kSmall, {"sde.integrator=exponential", "network.score=true"});
      config.network.gain = gain;
      config.train.constant_memory = constant_memory;
      config.train.explore = gain ? 0.25 : 0.0;
      expect_step_equals_autograd(config);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ActivationsAndDepths, DetachedGradient,
                         ::testing::Combine(::testing::Values("silu", "tanh", "relu", "gelu"),
                                            ::testing::Values(1, 3)));

// train.constant_memory re-simulates the paths for the backward (method.md §4): the same
// paths bit for bit (counter-based noise), so the same residuals and the same gradient as the
// recorded pass up to the order of float32 sums (the recorded pass batches several steps).
TEST(Trainer, ConstantMemoryGradientEqualsTheRecordedOne) {
  Config config = parse_config(kSmall);
  const auto target = make_target(config.target);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  Communicator comm(MPI_COMM_WORLD);
  const int64_t iteration = 2;
  std::vector<std::vector<torch::Tensor>> grads;
  std::vector<StepResult> results;
  for (bool constant_memory : {false, true}) {
    config.train.constant_memory = constant_memory;
    auto model = random_model(config, schedule);
    Trainer trainer(*target, model, config.sde, config.train, comm);
    results.push_back(trainer.compute_gradients(iteration));
    grads.push_back(gradients(model));
  }
  EXPECT_EQ(results[0].loss, results[1].loss);  // identical paths, identical residuals
  EXPECT_EQ(results[0].mean_residual, results[1].mean_residual);
  double scale = 0.0;
  for (const auto& g : grads[0]) scale = std::max(scale, g.abs().max().item<double>());
  ASSERT_GT(scale, 0.0);
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_LT((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-5 * scale)
        << "parameter " << i;
  }
}

TEST(Config, ConstantMemoryNeedsDetachedPaths) {
  EXPECT_THROW(parse_config(kSmall, {"train.constant_memory=true", "train.detach_paths=false"}),
               Error);
}

/// kSmall without annealing, 100 iterations of 256 paths, a freshly initialised network.
struct SmallRun {
  explicit SmallRun(bool detach_paths) : config(parse_config(kSmall)) {
    config.train.detach_paths = detach_paths;
    config.train.anneal_gamma0 = 1.0;
    config.train.iterations = 100;
    config.train.paths = 256;
    target = make_target(config.target);
    schedule = NoiseSchedule::from_config(config.sde);
    torch::manual_seed(1);
    model = BsdeModel(config.target.dim, config.network, schedule);
  }
  Config config;
  std::unique_ptr<Target> target;
  NoiseSchedule schedule;
  BsdeModel model{nullptr};
};

TEST(Trainer, StepMovesTheConstantToTheMeanResidualAndLowersTheLoss) {
  SmallRun run(/*detach_paths=*/true);
  Communicator comm(MPI_COMM_WORLD);
  Trainer trainer(*run.target, run.model, run.config.sde, run.config.train, comm);
  auto& model = run.model;
  const double c0 = model->constant();
  const StepResult first = trainer.step(0);
  EXPECT_NEAR(model->constant(), c0 - first.mean_residual, 1e-12);
  const auto history = trainer.train();
  ASSERT_EQ(history.loss.size(), 100u);
  EXPECT_LT(mean_of_last(history.loss, 10), 0.7 * history.loss.front());
}

TEST(Trainer, CoupledModeTrains) {
  for (double tilt : {0.0, 0.5}) {
    SCOPED_TRACE("train.tilt " + std::to_string(tilt));
    SmallRun run(/*detach_paths=*/false);
    run.config.train.tilt = tilt;
    Communicator comm(MPI_COMM_WORLD);
    Trainer trainer(*run.target, run.model, run.config.sde, run.config.train, comm);
    const auto history = trainer.train();
    EXPECT_LT(mean_of_last(history.loss, 10), 0.7 * history.loss.front());
    for (auto& p : run.model->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
}

/// Another target's log π̃, NaN wherever x₁ > 1 (a user module gone wrong on some paths).
class NanWhereLarge final : public Target {
 public:
  explicit NanWhereLarge(const Target& inner) : inner_(inner) {}
  std::string name() const override { return "nan_where_large"; }
  int64_t dim() const override { return inner_.dim(); }
  torch::Tensor log_prob(const torch::Tensor& x) const override {
    const auto value = inner_.log_prob(x);
    return torch::where(x.select(1, 0) > 1.0, torch::full_like(value, NAN), value);
  }

 private:
  const Target& inner_;
};

TEST(Trainer, ResidualsThatAreNotANumberStopTrainingWithAnError) {
  for (double tilt : {0.0, 0.5}) {
    SCOPED_TRACE("train.tilt " + std::to_string(tilt));
    SmallRun run(/*detach_paths=*/true);
    run.config.train.tilt = tilt;
    const NanWhereLarge target(*run.target);
    Communicator comm(MPI_COMM_WORLD);
    Trainer trainer(target, run.model, run.config.sde, run.config.train, comm);
    try {
      trainer.train();
      ADD_FAILURE() << "training went on with NaN residuals";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("diverged at iteration 1 "), std::string::npos)
          << e.what();
    }
  }
}

TEST(Model, UntrainedDriftIsTheStationaryOrnsteinUhlenbeck) {
  SdeConfig sde;
  sde.schedule = "linear";
  const auto schedule = NoiseSchedule::from_config(sde);
  BsdeModel model(4, NetworkConfig{}, schedule);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 4});
  for (double s : {0.0, 1.3, 3.9}) {
    EXPECT_TRUE(torch::allclose(model->z(s, x), -std::sqrt(schedule.b(s)) * x, 1e-6, 1e-6));
  }
  // The batched form agrees with one time at a time.
  const auto s = torch::tensor({0.5f, 2.0f});
  const auto xs = torch::randn({2, 3, 4});
  const auto batched = model->z(s, xs);
  EXPECT_TRUE(torch::allclose(batched[1], model->z(2.0, xs[1]), 1e-6, 1e-6));
}

// φ(x) = K tanh((∇log π̃(x) + x) / K): for N(μ, diag σ²) the score less the reference's is
// x − (x − μ)/σ²; points far out show the bound. The untrained a_θ = 0 leaves Z the stationary
// OU drift whatever φ is; a_θ = 1 adds √b φ (at s = T near the mode, Z = √b ∇log π̃).
TEST(Model, ScoreFeatureIsTheBoundedTargetScoreLessTheReferences) {
  const Config config = parse_config(kSmall, {"network.score=true"});
  const auto target = make_target(config.target);
  const auto x = torch::cat({torch::randn({5, 3}), torch::full({1, 3}, 40.0f)});
  const auto mean = torch::tensor({1.0f, -0.5f, 0.2f});
  const auto variance = torch::tensor({0.5f, 1.5f, 0.8f});
  const auto raw = x - (x - mean) / variance;
  const auto phi = score_feature(*target, x);
  EXPECT_TRUE(torch::allclose(phi, kScoreBound * torch::tanh(raw / kScoreBound), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(phi.slice(0, 0, 5), raw.slice(0, 0, 5), 0.1, 0.01));
  EXPECT_LT(phi.abs().max().item<double>(), kScoreBound);
  EXPECT_GT(raw.abs().max().item<double>(), 2 * kScoreBound);  // the last row is bounded
  EXPECT_TRUE(torch::allclose(score_feature(*target, x.to(torch::kFloat64)), phi, 1e-6, 1e-6));

  const auto schedule = NoiseSchedule::from_config(config.sde);
  BsdeModel model(3, config.network, schedule);
  torch::NoGradGuard no_grad;
  const double horizon = schedule.horizon, root_b = std::sqrt(schedule.b(horizon));
  EXPECT_TRUE(torch::allclose(model->z(horizon, x, phi), -root_b * x, 1e-6, 1e-6));
  model->named_parameters()["score.bias"].fill_(1.0);  // a_θ = 1 at every time
  EXPECT_TRUE(torch::allclose(model->z(horizon, x, phi), root_b * (phi - x), 1e-5, 1e-5));
  EXPECT_THROW(model->z(horizon, x), Error);  // the feature is required
}

// With blocks, Z's block j depends on block j of x alone, through the same function for
// every block: the MLP part of a point equals the MLP part of its blocks moved to block 0.
TEST(Model, BlocksShareOneNetwork) {
  Config config = parse_config(
      kSmall, {"target.dim=4", "target.mean=0", "target.covariance=1", "network.blocks=2"});
  const auto schedule = NoiseSchedule::from_config(config.sde);
  auto model = random_model(config, schedule);
  torch::NoGradGuard no_grad;
  const double s = 1.1, root_b = std::sqrt(schedule.b(s));
  const auto x = torch::randn({5, 4});
  const auto mlp = [&](const torch::Tensor& points) {
    return model->z(s, points) + root_b * points;
  };
  const auto swapped = torch::cat({x.slice(1, 2, 4), x.slice(1, 0, 2)}, 1);
  const auto expected = torch::cat({mlp(x).slice(1, 0, 2), mlp(swapped).slice(1, 0, 2)}, 1);
  EXPECT_TRUE(torch::allclose(mlp(x), expected, 1e-6, 1e-6));
  EXPECT_THROW(BsdeModel(3, config.network, schedule), Error);  // 2 blocks do not divide d = 3
}

TEST(Model, SaveAndLoadRoundTripAndRefuseOtherShapes) {
  const Config config = parse_config(kSmall);
  const auto schedule = NoiseSchedule::from_config(config.sde);
  auto model = random_model(config, schedule);
  TrainingHistory history;
  history.loss = {3.0, 2.0};
  history.log_z = {0.1, 0.2};
  history.time = {0.5, 1.0};
  history.gamma = {0.3, 1.0};
  const auto path = (std::filesystem::temp_directory_path() /
                     ("rbsde_model_" + std::to_string(::getpid()) + ".pt"))
                        .string();
  save_model(path, model, config.network, history);

  BsdeModel loaded(config.target.dim, config.network, schedule);
  const auto restored = load_model(path, loaded, config.network);
  EXPECT_EQ(restored.loss, history.loss);
  EXPECT_EQ(restored.gamma, history.gamma);
  EXPECT_DOUBLE_EQ(loaded->constant(), 1.7);
  const auto x = torch::randn({4, 3});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(loaded->z(1.0, x), model->z(1.0, x)));
  EXPECT_TRUE(torch::equal(loaded->y0_residual(x), model->y0_residual(x)));

  NetworkConfig wider = config.network;
  wider.width = 16;
  NetworkConfig other_activation = config.network;
  other_activation.activation = "tanh";  // same shapes: only the record tells them apart
  NetworkConfig blocked = config.network;
  blocked.blocks = 3;
  NetworkConfig scored = config.network;
  scored.score = true;
  for (const NetworkConfig& other_network : {wider, other_activation, blocked, scored}) {
    BsdeModel other(config.target.dim, other_network, schedule);
    try {
      load_model(path, other, other_network);
      ADD_FAILURE() << "a network of other settings was loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove(path);
  EXPECT_THROW(load_model(path, loaded, config.network), Error);
}

}  // namespace
}  // namespace rbsde
