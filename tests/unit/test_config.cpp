// Unit tests of the configuration parser: values, defaults, every class of error, overrides,
// the resolved-YAML round trip and the model path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/config_file.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The smallest valid configuration; tests add or override keys on top of it.
const std::string kMinimal =
    "target:\n"
    "  name: gaussian\n"
    "  dim: 2\n";

const std::string kFull =
    "target:\n"
    "  name: gaussian\n"
    "  dim: 3\n"
    "  mean: [1, -2, 0.5]\n"
    "  covariance:\n"
    "    - [2, 0.5, 0]\n"
    "    - [0.5, 1, 0]\n"
    "    - [0, 0, 3]\n"
    "sde:\n"
    "  schedule: linear\n"
    "  beta: 1.5\n"
    "  beta_min: 0.2\n"
    "  beta_max: 12\n"
    "  horizon: 2.5\n"
    "  steps: 40\n"
    "network:\n"
    "  width: 128\n"
    "  depth: 3\n"
    "  activation: tanh\n"
    "  time_features: 0\n"
    "  y0_residual: true\n"
    "  blocks: 3\n"
    "train:\n"
    "  iterations: 200\n"
    "  paths: 1024\n"
    "  seed: 18446744073709551615\n"
    "  lr: 1e-3\n"
    "  lr_schedule: constant\n"
    "  lr_final: 1e-4\n"
    "  grad_clip: 0\n"
    "  anneal_gamma0: 0.25\n"
    "  anneal_fraction: 0.75\n"
    "  anneal_path: tempered\n"
    "  detach_paths: false\n"
    "  tilt: 0.5\n"
    "  log_every: 10\n"
    "  checkpoint_every: 25\n"
    "sample:\n"
    "  count: 5000\n"
    "  seed: 7\n"
    "  batch: 1000\n"
    "  model: models/net.pt\n"
    "  method: ode\n"
    "  divergence: hutchinson\n"
    "  probes: 16\n"
    "  resample: true\n"
    "  hmc_steps: 20\n"
    "  leapfrog_steps: 5\n"
    "  hmc_step_size: 0.3\n"
    "  hmc_smallest_step: 0.05\n"
    "  psis: true\n"
    "reference:\n"
    "  chains: 16\n"
    "  warmup: 100\n"
    "  steps: 2000\n"
    "  seed: 11\n"
    "output:\n"
    "  path: out/full.h5\n"
    "parallel:\n"
    "  threads: 4\n";

const std::string kGmm =
    "target:\n"
    "  name: gmm\n"
    "  dim: 2\n"
    "  weights: [1, 2, 0.1]\n"
    "  means:\n"
    "    - [0, 0]\n"
    "    - [3.3, -1]\n"
    "    - [0.1, 0.7]\n"
    "  covariances:\n"
    "    - 0.5\n"
    "    - [1, 2]\n"
    "    - [[2, 0.3], [0.3, 1]]\n";

/// parse_config must throw rbsde::Error whose message contains every fragment.
void expect_error(const std::string& yaml, const std::vector<std::string>& overrides,
                  const std::vector<std::string>& fragments) {
  SCOPED_TRACE("config:\n" + yaml);
  try {
    rbsde::parse_config(yaml, overrides, "configs/test.yaml");
    ADD_FAILURE() << "no rbsde::Error thrown";
  } catch (const rbsde::Error& e) {
    for (const std::string& fragment : fragments) EXPECT_THAT(e.what(), HasSubstr(fragment));
  }
}

void expect_error(const std::string& yaml, const std::vector<std::string>& fragments) {
  expect_error(yaml, {}, fragments);
}

/// A minimal config with one override, which must fail naming `key` (and `fragment`).
void expect_override_error(const std::string& override_text, const std::string& key,
                           const std::string& fragment) {
  SCOPED_TRACE(override_text);
  expect_error(kMinimal, {override_text}, {key, fragment});
}

// Eigen's == asserts on a size mismatch; a test must fail instead.
bool identical(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && a == b;
}

template <typename M>
bool identical(const std::vector<M>& a, const std::vector<M>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!identical(a[i], b[i])) return false;
  }
  return true;
}

void expect_same(const rbsde::Config& a, const rbsde::Config& b) {
  EXPECT_EQ(a.target.name, b.target.name);
  EXPECT_EQ(a.target.dim, b.target.dim);
  EXPECT_TRUE(identical(a.target.mean, b.target.mean));
  EXPECT_TRUE(identical(a.target.covariance, b.target.covariance));
  EXPECT_TRUE(identical(a.target.covariance_diagonal, b.target.covariance_diagonal));
  EXPECT_EQ(a.target.weights, b.target.weights);
  EXPECT_TRUE(identical(a.target.means, b.target.means));
  EXPECT_TRUE(identical(a.target.covariances, b.target.covariances));
  EXPECT_EQ(a.target.data, b.target.data);
  EXPECT_EQ(a.target.label, b.target.label);
  EXPECT_EQ(a.target.grid, b.target.grid);
  EXPECT_EQ(a.target.whitened, b.target.whitened);
  EXPECT_EQ(a.target.module, b.target.module);
  EXPECT_EQ(a.target.method, b.target.method);
  EXPECT_EQ(a.sde.schedule, b.sde.schedule);
  EXPECT_EQ(a.sde.beta, b.sde.beta);
  EXPECT_EQ(a.sde.beta_min, b.sde.beta_min);
  EXPECT_EQ(a.sde.beta_max, b.sde.beta_max);
  EXPECT_EQ(a.sde.horizon, b.sde.horizon);
  EXPECT_EQ(a.sde.steps, b.sde.steps);
  EXPECT_EQ(a.network.width, b.network.width);
  EXPECT_EQ(a.network.depth, b.network.depth);
  EXPECT_EQ(a.network.activation, b.network.activation);
  EXPECT_EQ(a.network.time_features, b.network.time_features);
  EXPECT_EQ(a.network.y0_residual, b.network.y0_residual);
  EXPECT_EQ(a.network.gain, b.network.gain);
  EXPECT_EQ(a.network.score, b.network.score);
  EXPECT_EQ(a.network.blocks, b.network.blocks);
  EXPECT_EQ(a.train.iterations, b.train.iterations);
  EXPECT_EQ(a.train.paths, b.train.paths);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.lr, b.train.lr);
  EXPECT_EQ(a.train.lr_schedule, b.train.lr_schedule);
  EXPECT_EQ(a.train.lr_final, b.train.lr_final);
  EXPECT_EQ(a.train.grad_clip, b.train.grad_clip);
  EXPECT_EQ(a.train.anneal_gamma0, b.train.anneal_gamma0);
  EXPECT_EQ(a.train.anneal_fraction, b.train.anneal_fraction);
  EXPECT_EQ(a.train.anneal_path, b.train.anneal_path);
  EXPECT_EQ(a.train.detach_paths, b.train.detach_paths);
  EXPECT_EQ(a.train.explore, b.train.explore);
  EXPECT_EQ(a.train.tilt, b.train.tilt);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.checkpoint_every, b.train.checkpoint_every);
  EXPECT_EQ(a.sample.count, b.sample.count);
  EXPECT_EQ(a.sample.seed, b.sample.seed);
  EXPECT_EQ(a.sample.batch, b.sample.batch);
  EXPECT_EQ(a.sample.model, b.sample.model);
  EXPECT_EQ(a.sample.method, b.sample.method);
  EXPECT_EQ(a.sample.divergence, b.sample.divergence);
  EXPECT_EQ(a.sample.probes, b.sample.probes);
  EXPECT_EQ(a.sample.resample, b.sample.resample);
  EXPECT_EQ(a.sample.hmc_steps, b.sample.hmc_steps);
  EXPECT_EQ(a.sample.leapfrog_steps, b.sample.leapfrog_steps);
  EXPECT_EQ(a.sample.hmc_step_size, b.sample.hmc_step_size);
  EXPECT_EQ(a.sample.hmc_smallest_step, b.sample.hmc_smallest_step);
  EXPECT_EQ(a.sample.model_moves, b.sample.model_moves);
  EXPECT_EQ(a.sample.psis, b.sample.psis);
  EXPECT_EQ(a.reference.chains, b.reference.chains);
  EXPECT_EQ(a.reference.warmup, b.reference.warmup);
  EXPECT_EQ(a.reference.steps, b.reference.steps);
  EXPECT_EQ(a.reference.seed, b.reference.seed);
  EXPECT_EQ(a.output.path, b.output.path);
  EXPECT_EQ(a.parallel.threads, b.parallel.threads);
  EXPECT_EQ(a.resolved_yaml, b.resolved_yaml);
}

/// parse(resolved_yaml) must reproduce the configuration exactly.
void expect_round_trip(const rbsde::Config& config) {
  SCOPED_TRACE("resolved:\n" + config.resolved_yaml);
  expect_same(rbsde::parse_config(config.resolved_yaml), config);
}

TEST(Config, ParsesFullConfig) {
  const rbsde::Config config = rbsde::parse_config(kFull);
  EXPECT_EQ(config.target.name, "gaussian");
  EXPECT_EQ(config.target.dim, 3);
  EXPECT_EQ(config.target.mean, Eigen::Vector3d(1, -2, 0.5));
  Eigen::Matrix3d covariance;
  covariance << 2, 0.5, 0, 0.5, 1, 0, 0, 0, 3;
  EXPECT_EQ(config.target.covariance, covariance);
  EXPECT_TRUE(config.target.means.empty());
  EXPECT_EQ(config.sde.schedule, "linear");
  EXPECT_EQ(config.sde.beta, 1.5);
  EXPECT_EQ(config.sde.beta_min, 0.2);
  EXPECT_EQ(config.sde.beta_max, 12.0);
  EXPECT_EQ(config.sde.horizon, 2.5);
  EXPECT_EQ(config.sde.steps, 40);
  EXPECT_EQ(config.network.width, 128);
  EXPECT_EQ(config.network.depth, 3);
  EXPECT_EQ(config.network.activation, "tanh");
  EXPECT_EQ(config.network.time_features, 0);
  EXPECT_TRUE(config.network.y0_residual);
  EXPECT_EQ(config.network.blocks, 3);
  EXPECT_EQ(config.train.iterations, 200);
  EXPECT_EQ(config.train.paths, 1024);
  EXPECT_EQ(config.train.seed, 18446744073709551615ULL);
  EXPECT_EQ(config.train.lr, 1e-3);
  EXPECT_EQ(config.train.lr_schedule, "constant");
  EXPECT_EQ(config.train.lr_final, 1e-4);
  EXPECT_EQ(config.train.grad_clip, 0.0);
  EXPECT_EQ(config.train.anneal_gamma0, 0.25);
  EXPECT_EQ(config.train.anneal_fraction, 0.75);
  EXPECT_EQ(config.train.anneal_path, "tempered");
  EXPECT_FALSE(config.train.detach_paths);
  EXPECT_EQ(config.train.tilt, 0.5);
  EXPECT_EQ(config.train.log_every, 10);
  EXPECT_EQ(config.train.checkpoint_every, 25);
  EXPECT_EQ(config.sample.count, 5000);
  EXPECT_EQ(config.sample.seed, 7u);
  EXPECT_EQ(config.sample.batch, 1000);
  EXPECT_EQ(config.sample.model, "models/net.pt");
  EXPECT_EQ(config.sample.method, "ode");
  EXPECT_EQ(config.sample.divergence, "hutchinson");
  EXPECT_EQ(config.sample.probes, 16);
  EXPECT_TRUE(config.sample.resample);
  EXPECT_EQ(config.sample.hmc_steps, 20);
  EXPECT_EQ(config.sample.leapfrog_steps, 5);
  EXPECT_EQ(config.sample.hmc_step_size, 0.3);
  EXPECT_EQ(config.sample.hmc_smallest_step, 0.05);
  EXPECT_TRUE(config.sample.psis);
  EXPECT_EQ(config.reference.chains, 16);
  EXPECT_EQ(config.reference.warmup, 100);
  EXPECT_EQ(config.reference.steps, 2000);
  EXPECT_EQ(config.reference.seed, 11u);
  EXPECT_EQ(config.output.path, "out/full.h5");
  EXPECT_EQ(config.parallel.threads, 4);
}

TEST(Config, MissingKeysTakeTheStructDefaults) {
  const rbsde::Config config = rbsde::parse_config(kMinimal);
  EXPECT_EQ(config.target.mean, Eigen::Vector2d::Zero());
  EXPECT_EQ(config.target.covariance_diagonal, Eigen::Vector2d::Ones());
  rbsde::Config defaults;
  defaults.target = config.target;
  defaults.resolved_yaml = config.resolved_yaml;
  expect_same(config, defaults);
}

TEST(Config, EmptySectionsTakeTheDefaults) {
  const rbsde::Config config = rbsde::parse_config(kMinimal + "train:\nsample:\n");
  EXPECT_EQ(config.train.paths, rbsde::TrainConfig{}.paths);
  EXPECT_EQ(config.sample.count, rbsde::SampleConfig{}.count);
}

TEST(Config, GaussianAcceptsScalarVectorAndMatrixForms) {
  const rbsde::Config scalar = rbsde::parse_config(kMinimal + "  mean: 1.5\n  covariance: 4\n");
  EXPECT_EQ(scalar.target.mean, Eigen::Vector2d(1.5, 1.5));
  EXPECT_EQ(scalar.target.covariance_diagonal, Eigen::Vector2d(4, 4));
  EXPECT_EQ(scalar.target.covariance.size(), 0);  // no d x d matrix for a diagonal

  const rbsde::Config diagonal = rbsde::parse_config(kMinimal + "  covariance: [2, 3]\n");
  EXPECT_EQ(diagonal.target.covariance_diagonal, Eigen::Vector2d(2, 3));

  // Asymmetry at round-off level is accepted and removed.
  const rbsde::Config nearly_symmetric =
      rbsde::parse_config(kMinimal + "  covariance: [[2, 0.5], [0.50000000000000001, 1]]\n");
  EXPECT_EQ(nearly_symmetric.target.covariance, nearly_symmetric.target.covariance.transpose());
}

TEST(Config, GmmNormalisesWeightsAndReadsEveryCovarianceForm) {
  const rbsde::Config config = rbsde::parse_config(kGmm);
  ASSERT_EQ(config.target.weights.size(), 3u);
  EXPECT_DOUBLE_EQ(config.target.weights[0], 1 / 3.1);
  EXPECT_DOUBLE_EQ(config.target.weights[1], 2 / 3.1);
  EXPECT_DOUBLE_EQ(config.target.weights[2], 0.1 / 3.1);
  ASSERT_EQ(config.target.means.size(), 3u);
  EXPECT_EQ(config.target.means[1], Eigen::Vector2d(3.3, -1));
  ASSERT_EQ(config.target.covariances.size(), 3u);
  EXPECT_EQ(config.target.covariances[0], Eigen::Matrix2d(0.5 * Eigen::Matrix2d::Identity()));
  EXPECT_EQ(config.target.covariances[1], Eigen::Vector2d(1, 2).asDiagonal().toDenseMatrix());
  Eigen::Matrix2d full;
  full << 2, 0.3, 0.3, 1;
  EXPECT_EQ(config.target.covariances[2], full);
  EXPECT_EQ(config.target.mean.size(), 0);
}

TEST(Config, GmmDefaultsAndSharedCovariance) {
  const std::string base = "target:\n  name: gmm\n  dim: 2\n  means: [[0, 0], [1, 1]]\n";
  const rbsde::Config defaults = rbsde::parse_config(base);
  EXPECT_EQ(defaults.target.weights, std::vector<double>({0.5, 0.5}));
  EXPECT_EQ(defaults.target.covariances,
            std::vector<Eigen::MatrixXd>(2, Eigen::MatrixXd::Identity(2, 2)));

  const Eigen::MatrixXd shared = 1.7 * Eigen::MatrixXd::Identity(2, 2);
  EXPECT_EQ(rbsde::parse_config(base + "  covariances: [1.7]\n").target.covariances,
            std::vector<Eigen::MatrixXd>(2, shared));
  EXPECT_EQ(rbsde::parse_config(base + "  covariances: 1.7\n").target.covariances,
            std::vector<Eigen::MatrixXd>(2, shared));
}

TEST(Config, FunnelAndManyWellTakeOnlyNameAndDim) {
  EXPECT_EQ(rbsde::parse_config("target: {name: funnel, dim: 10}").target.dim, 10);
  EXPECT_EQ(rbsde::parse_config("target: {name: many_well, dim: 32}").target.dim, 32);
  expect_error("target: {name: funnel, dim: 1}", {"target.dim", ">= 2"});
  expect_error("target: {name: many_well, dim: 5}", {"target.dim", "even"});
}

TEST(Config, LogregTakesItsDataAndDimensionFromTheFile) {
  const rbsde::Config ionosphere = rbsde::parse_config("target: {name: logreg_ionosphere}");
  EXPECT_EQ(ionosphere.target.data, std::string(RBSDE_DATA_DIR) + "/ionosphere.csv");
  EXPECT_EQ(ionosphere.target.dim, 0);  // read from the file by make_target
  EXPECT_EQ(ionosphere.target.label, "Class");
  EXPECT_THAT(ionosphere.resolved_yaml, HasSubstr("data: " + ionosphere.target.data));
  EXPECT_THAT(ionosphere.resolved_yaml, HasSubstr("label: Class"));
  EXPECT_THAT(ionosphere.resolved_yaml, Not(HasSubstr("dim:")));
  EXPECT_THAT(ionosphere.resolved_yaml, Not(HasSubstr("grid:")));
  EXPECT_EQ(rbsde::parse_config("target: {name: logreg_sonar}").target.data,
            std::string(RBSDE_DATA_DIR) + "/sonar.csv");
  const rbsde::Config custom =
      rbsde::parse_config("target: {name: logreg, dim: 5, data: my/data.csv, label: outcome}");
  EXPECT_EQ(custom.target.data, "my/data.csv");  // relative to the current directory
  EXPECT_EQ(custom.target.label, "outcome");
  EXPECT_EQ(custom.target.dim, 5);
  expect_round_trip(ionosphere);
  expect_round_trip(custom);
}

TEST(Config, LgcpDimensionIsTheGridSquared) {
  const rbsde::Config lgcp = rbsde::parse_config("target: {name: lgcp}");
  EXPECT_EQ(lgcp.target.grid, 40);
  EXPECT_EQ(lgcp.target.dim, 1600);
  EXPECT_FALSE(lgcp.target.whitened);
  EXPECT_EQ(lgcp.target.data, std::string(RBSDE_DATA_DIR) + "/pines.csv");
  const rbsde::Config small =
      rbsde::parse_config("target: {name: lgcp, grid: 8, whitened: true, dim: 64}");
  EXPECT_EQ(small.target.dim, 64);
  EXPECT_TRUE(small.target.whitened);
  EXPECT_THAT(small.resolved_yaml, HasSubstr("grid: 8"));
  EXPECT_THAT(small.resolved_yaml, HasSubstr("whitened: true"));
  expect_round_trip(lgcp);
  expect_round_trip(small);
  const rbsde::Config gmm40 = rbsde::parse_config("target: {name: gmm40}");
  EXPECT_EQ(gmm40.target.data, std::string(RBSDE_DATA_DIR) + "/gmm40_means.csv");
  expect_round_trip(gmm40);
}

TEST(Config, TorchScriptNeedsModuleAndDim) {
  const rbsde::Config config =
      rbsde::parse_config("target: {name: torchscript, dim: 2, module: banana.pt}");
  EXPECT_EQ(config.target.module, "banana.pt");
  EXPECT_EQ(config.target.method, "");  // log_prob if the module has one, else forward
  // A posterior has no built-in map: preconditioned automatically unless set.
  EXPECT_EQ(config.precondition.kind, "auto");
  EXPECT_EQ(config.precondition.form, "auto");  // cholesky up to d = kDenseMapMaxDim
  EXPECT_EQ(rbsde::parse_config("target: {name: gaussian, dim: 2}").precondition.kind, "none");
  EXPECT_EQ(rbsde::parse_config("target: {name: logreg_sonar}").precondition.kind, "auto");
  EXPECT_EQ(rbsde::parse_config("target: {name: torchscript, dim: 2, module: banana.pt}\n"
                                "precondition: {kind: none}")
                .precondition.kind,
            "none");
  expect_round_trip(config);
  const rbsde::Config named =
      rbsde::parse_config("target: {name: torchscript, dim: 2, module: banana.pt, method: energy}");
  EXPECT_EQ(named.target.method, "energy");
  expect_round_trip(named);
  expect_error("target: {name: torchscript, dim: 2}", {"missing required key 'target.module'"});
  // target.dim may come from the module (its attribute dim), checked when it is loaded.
  EXPECT_EQ(rbsde::parse_config("target: {name: torchscript, module: a.pt}").target.dim, 0);
  expect_error("target: {name: torchscript, dim: 2, module: ''}", {"target.module", "non-empty"});
}

TEST(ConfigErrors, DataTargetKeys) {
  expect_error("target: {name: logreg}", {"missing required key 'target.data'", "logreg"});
  expect_error("target: {name: logreg, data: ''}", {"target.data", "non-empty"});
  expect_error("target: {name: logreg_sonar, label: ''}", {"target.label", "non-empty"});
  expect_error("target: {name: logreg_sonar, dim: 0}", {"target.dim", ">= 1"});
  expect_error("target: {name: lgcp, grid: 0}", {"target.grid", "in [1, 46340]", "got 0"});
  // G² would overflow (it crashed).
  expect_error("target: {name: lgcp, grid: 3037000500}", {"target.grid", "in [1, 46340]"});
  expect_error("target: {name: gaussian, dim: 2}\n---\ntrain: {iteratons: 1}\n",
               {"holds 2 YAML documents"});
  expect_error("target: {name: lgcp, grid: 8, dim: 1600}",
               {"target.dim", "8 x 8 grid (target.grid) has 64 dimensions, got 1600"});
  expect_error("target: {name: lgcp, whitened: 1}", {"target.whitened", "true or false"});
  expect_error("target: {name: lgcp, data: [a.csv]}", {"target.data", "string"});
}

TEST(ConfigErrors, UnknownKeyInEverySectionNamesFileKeyAndAcceptedKeys) {
  const std::vector<std::pair<std::string, std::string>> sections = {
      {"target", "name"},  {"sde", "steps"},   {"network", "width"},    {"train", "iterations"},
      {"sample", "count"}, {"output", "path"}, {"parallel", "threads"}, {"reference", "chains"}};
  for (const auto& [section, accepted] : sections) {
    // target is already open at the end of kMinimal; a second "target:" would be a duplicate.
    const std::string yaml =
        kMinimal + (section == "target" ? "" : section + ":\n") + "  bogus: 1\n";
    expect_error(yaml, {"configs/test.yaml", "unknown key '" + section + ".bogus'", accepted});
  }
  expect_error(kMinimal + "train:\n  iteratons: 10\n",
               {"configs/test.yaml: unknown key 'train.iteratons' (accepted: iterations, paths, "
                "seed, lr, lr_schedule, lr_final, grad_clip, anneal_gamma0, anneal_fraction, "
                "anneal_path, y_step, detach_paths, constant_memory, explore, tilt, log_every, "
                "checkpoint_every)"});
}

TEST(ConfigErrors, UnknownSection) {
  expect_error(kMinimal + "trian:\n  paths: 1\n",
               {"configs/test.yaml", "unknown section 'trian'", "target, sde, network, train"});
  expect_error("- 1\n- 2\n", {"top level must be a map"});
  expect_error(kMinimal + "train: 5\n", {"section 'train' must be a map"});
  expect_error(kMinimal + "train:\n  [lr]: 1\n", {"a key must be a plain name"});
}

TEST(ConfigErrors, DuplicateKey) {
  expect_error(kMinimal + "train:\n  lr: 1\n  lr: 2\n", {"'train.lr' given twice"});
}

TEST(ConfigErrors, WrongTypes) {
  // Integers.
  expect_error(kMinimal + "train:\n  paths: many\n",
               {"train.paths: expected an integer, got 'many'"});
  expect_error(kMinimal + "train:\n  paths: 1.5\n", {"train.paths", "integer", "'1.5'"});
  expect_error(kMinimal + "train:\n  paths: '5'\n", {"train.paths", "quoted string '5'"});
  expect_error(kMinimal + "sde:\n  steps: [1]\n", {"sde.steps", "integer", "a list"});
  expect_error(kMinimal + "sde:\n  steps:\n", {"sde.steps", "integer", "an empty value"});
  expect_error(kMinimal + "sde:\n  steps: 99999999999999999999\n", {"sde.steps", "range"});
  expect_error("target: {name: gaussian, dim: two}", {"target.dim", "integer", "'two'"});
  // Seeds.
  expect_error(kMinimal + "train:\n  seed: -1\n", {"train.seed", "non-negative", "-1"});
  expect_error(kMinimal + "sample:\n  seed: 18446744073709551616\n",
               {"sample.seed", "non-negative"});
  expect_error(kMinimal + "sample:\n  seed: 0.5\n", {"sample.seed", "integer", "'0.5'"});
  // Doubles (integers are accepted, see ParsesFullConfig).
  expect_error(kMinimal + "train:\n  lr: fast\n", {"train.lr: expected a number, got 'fast'"});
  expect_error(kMinimal + "sde:\n  horizon: .inf\n", {"sde.horizon", "number"});
  expect_error(kMinimal + "sde:\n  horizon: inf\n", {"sde.horizon", "finite"});
  expect_error(kMinimal + "sde:\n  beta: {a: 1}\n", {"sde.beta", "number", "a map"});
  // Booleans.
  expect_error(kMinimal + "network:\n  y0_residual: 1\n",
               {"network.y0_residual", "true or false", "'1'"});
  expect_error(kMinimal + "train:\n  detach_paths: yes\n", {"train.detach_paths", "'yes'"});
  // Strings.
  expect_error(kMinimal + "network:\n  activation: [silu]\n",
               {"network.activation", "expected a string", "a list"});
  expect_error(kMinimal + "output:\n  path:\n", {"output.path", "string"});
  // Lists.
  expect_error(kMinimal + "  mean: {x: 1}\n", {"target.mean", "a list of 2 numbers", "a map"});
  expect_error(kMinimal + "  mean: [1, x]\n", {"target.mean[1]", "number", "'x'"});
  expect_error("target: {name: gmm, dim: 2, means: [1, 2]}",
               {"target.means[0]", "a list of 2 numbers", "'1'"});
}

TEST(ConfigErrors, DimensionMismatch) {
  expect_error(kMinimal + "  mean: [1, 2, 3]\n",
               {"target.mean: expected 2 values (target.dim), got 3"});
  expect_error(kMinimal + "  covariance: [1]\n", {"target.covariance", "expected 2", "got 1"});
  expect_error(kMinimal + "  covariance: [[1, 0], [0, 1], [0, 0]]\n",
               {"target.covariance", "expected 2 rows", "got 3"});
  expect_error(kMinimal + "  covariance: [[1, 0], [0, 1, 0]]\n",
               {"target.covariance[1]", "expected 2 values", "got 3"});
  const std::string gmm = "target:\n  name: gmm\n  dim: 2\n";
  expect_error(gmm + "  means: [[0, 0], [1, 1, 1]]\n",
               {"target.means[1]: expected 2 values (target.dim), got 3"});
  expect_error(gmm + "  means: [[0, 0], [1, 1]]\n  weights: [1]\n",
               {"target.weights", "expected 2 values", "got 1"});
  expect_error(gmm + "  means: [[0, 0], [1, 1], [2, 2]]\n  covariances: [1, 2]\n",
               {"target.covariances", "expected 3 entries", "got 2"});
  expect_error(gmm + "  means: [[0, 0], [1, 1]]\n  covariances: [1, [1, 2, 3]]\n",
               {"target.covariances[1]", "expected 2 values", "got 3"});
}

TEST(ConfigErrors, CovarianceMustBeSymmetricPositiveDefinite) {
  expect_error(kMinimal + "  covariance: [[1, 0.5], [0.4, 1]]\n",
               {"target.covariance", "not symmetric"});
  expect_error(kMinimal + "  covariance: [[1, 2], [2, 1]]\n",
               {"target.covariance: not positive definite"});
  expect_error(kMinimal + "  covariance: [1, 0]\n", {"target.covariance", "positive definite"});
  expect_error(kMinimal + "  covariance: -1\n", {"target.covariance", "positive definite"});
  expect_error("target: {name: gmm, dim: 1, means: [[0], [1]], covariances: [1, 0]}",
               {"target.covariances[1]", "positive definite"});
}

TEST(ConfigErrors, GmmWeightsMustBePositive) {
  expect_error("target: {name: gmm, dim: 1, means: [[0], [1]], weights: [1, 0]}",
               {"target.weights[1]", "> 0", "got 0"});
}

TEST(ConfigErrors, ValuesOutOfRangeNameKeyAndRange) {
  expect_override_error("sde.steps=0", "sde.steps", "in [1, 2^24]");
  expect_override_error("sde.steps=-5", "sde.steps", "in [1, 2^24]");
  expect_override_error("sde.steps=16777217", "sde.steps", "float32 time input");
  expect_override_error("sde.horizon=0", "sde.horizon", "> 0");
  expect_override_error("sde.beta=-1", "sde.beta", "> 0");
  expect_error(kMinimal + "sde: {schedule: linear, beta_min: 0}\n", {"sde.beta_min", "> 0"});
  expect_error(kMinimal + "sde: {schedule: linear, beta_min: 5, beta_max: 5}\n",
               {"sde.beta_max", "> sde.beta_min"});
  expect_override_error("target.dim=0", "target.dim", ">= 1");
  expect_override_error("network.width=0", "network.width", "in [1, 65536]");
  expect_override_error("network.width=65537", "network.width", "in [1, 65536]");
  expect_override_error("network.depth=0", "network.depth", "in [1, 1000]");
  // A depth of 10^11 built layers until the memory ran out (found by tests/fuzz).
  expect_override_error("network.depth=99999999999", "network.depth", "in [1, 1000]");
  expect_override_error("network.time_features=-1", "network.time_features", "in [0, 1000]");
  expect_override_error("network.time_features=1001", "network.time_features", "in [0, 1000]");
  expect_override_error("network.blocks=0", "network.blocks", ">= 1");
  expect_override_error("train.anneal_path=linear", "train.anneal_path", "bridge, tempered");
  expect_override_error("train.iterations=-1", "train.iterations", ">= 0");
  expect_override_error("train.paths=0", "train.paths", ">= 2");
  // One path: the loss, a variance over the paths, would be zero and train nothing.
  expect_override_error("train.paths=1", "train.paths", ">= 2 (the loss is a variance");
  expect_override_error("train.lr=0", "train.lr", "> 0");
  expect_override_error("train.lr_final=0.1", "train.lr_final", "<= train.lr");
  expect_override_error("train.lr_final=0", "train.lr_final", "> 0");
  expect_override_error("train.grad_clip=-1", "train.grad_clip", ">= 0");
  expect_override_error("train.anneal_gamma0=0", "train.anneal_gamma0", "(0, 1]");
  expect_override_error("train.anneal_gamma0=1.5", "train.anneal_gamma0", "(0, 1]");
  expect_override_error("train.anneal_fraction=0", "train.anneal_fraction", "(0, 1]");
  expect_override_error("train.tilt=-0.1", "train.tilt", "in [0, 1]");
  expect_override_error("train.tilt=1.5", "train.tilt", "in [0, 1]");
  expect_override_error("train.log_every=-1", "train.log_every", ">= 0");
  expect_override_error("train.checkpoint_every=-1", "train.checkpoint_every", ">= 0");
  expect_override_error("sample.count=0", "sample.count", ">= 1");
  expect_override_error("sample.batch=0", "sample.batch", ">= 1");
  expect_override_error("sample.probes=0", "sample.probes", "in [1, 2^28]");
  expect_override_error("sample.probes=268435457", "sample.probes", "in [1, 2^28]");
  expect_override_error("sample.count=2147483648", "sample.count", "sample.resample: true");
  EXPECT_EQ(rbsde::parse_config(kMinimal, {"sample.count=2147483648", "sample.resample=false"})
                .sample.count,
            2147483648);
  expect_override_error("sample.hmc_steps=-1", "sample.hmc_steps", "auto or in [0, 2^32 - 2]");
  expect_override_error("sample.hmc_steps=automatic", "sample.hmc_steps", "expected an integer");
  expect_override_error("reference.moves=21475", "reference.moves", "in [1, 21474]");
  EXPECT_EQ(rbsde::parse_config(kMinimal, {"sample.hmc_steps=auto"}).sample.hmc_steps,
            rbsde::kHmcStepsAuto);
  EXPECT_EQ(rbsde::parse_config(kMinimal, {"sample.hmc_steps=0"}).sample.hmc_steps, 0);
  expect_override_error("sample.hmc_steps=4294967295", "sample.hmc_steps", "in [0, 2^32 - 2]");
  expect_error(kMinimal, {"sample.resample=false", "sample.hmc_steps=5"},
               {"sample.hmc_steps", "sample.resample: true"});
  expect_override_error("sample.leapfrog_steps=0", "sample.leapfrog_steps", "in [1, 1000]");
  expect_override_error("sample.leapfrog_steps=1001", "sample.leapfrog_steps", "in [1, 1000]");
  expect_override_error("sample.hmc_step_size=-0.1", "sample.hmc_step_size", ">= 0");
  expect_override_error("sample.hmc_smallest_step=0", "sample.hmc_smallest_step", "in (0, 1]");
  expect_override_error("sample.hmc_smallest_step=1.5", "sample.hmc_smallest_step", "in (0, 1]");
  expect_override_error("sample.model_moves=-1", "sample.model_moves", ">= 0");
  // A move's index keys 27 bits of the noise epoch: at most 2^26 moves.
  expect_error(kMinimal, {"sample.hmc_steps=100000000", "sample.model_moves=1"},
               {"sample.model_moves", "2^26"});
  expect_error(kMinimal, {"sample.method=ode", "sample.model_moves=10"},
               {"sample.model_moves", "needs sample.method: sde"});
  expect_override_error("reference.chains=1", "reference.chains", ">= 2");
  expect_override_error("reference.warmup=3", "reference.warmup", ">= 4");
  expect_override_error("reference.steps=0", "reference.steps", ">= 1");
  expect_override_error("output.path=''", "output.path", "non-empty");
  expect_override_error("parallel.threads=-1", "parallel.threads", ">= 0");
}

TEST(ConfigErrors, BadEnumValuesListTheAcceptedOnes) {
  expect_override_error("sde.schedule=cubic", "sde.schedule", "constant, linear");
  expect_override_error("network.activation=sigmoid", "network.activation",
                        "silu, tanh, relu, gelu");
  expect_override_error("train.lr_schedule=step", "train.lr_schedule", "cosine, constant");
  expect_override_error("sample.method=langevin", "sample.method", "sde, ode");
  expect_override_error("sample.divergence=skilling", "sample.divergence",
                        "exact, hutchinson, auto");
  expect_error("target: {name: banana, dim: 2}",
               {"target.name",
                "gaussian, gmm, funnel, many_well, gmm40, logreg, logreg_ionosphere, "
                "logreg_sonar, lgcp, torchscript",
                "'banana'"});
}

TEST(ConfigErrors, MissingRequiredKeys) {
  expect_error("target: {dim: 2}", {"missing required key 'target.name'"});
  expect_error("target: {name: gaussian}", {"missing required key 'target.dim'"});
  expect_error("", {"missing required key 'target.name'"});
  expect_error("target: {name: gmm, dim: 2}", {"missing required key 'target.means'"});
}

// network.score's feature has no second derivative in the coupled pass or the ODE sampler.
TEST(ConfigErrors, ScoreNeedsDetachedPathsAndTheSdeSampler) {
  expect_error(kMinimal, {"network.score=true", "train.detach_paths=false"},
               {"network.score", "train.detach_paths"});
  expect_error(kMinimal, {"network.score=true", "sample.method=ode"},
               {"network.score", "sample.method: sde"});
  const auto config = rbsde::parse_config(kMinimal, {"network.score=true"});
  EXPECT_TRUE(config.network.score);
  expect_round_trip(config);
}

// network.gain's exact step exists only in the exponential integrator and the detached pass.
TEST(ConfigErrors, GainNeedsTheExponentialIntegratorAndDetachedPaths) {
  expect_error(kMinimal, {"network.gain=true", "sde.integrator=euler"},
               {"network.gain", "sde.integrator: exponential"});
  expect_error(kMinimal,
               {"network.gain=true", "sde.integrator=exponential", "train.detach_paths=false"},
               {"network.gain", "train.detach_paths"});
  const auto config =
      rbsde::parse_config(kMinimal, {"network.gain=true", "sde.integrator=exponential"});
  EXPECT_TRUE(config.network.gain);
  expect_round_trip(config);
}

TEST(ConfigErrors, KeysOfAnotherTargetAreRejected) {
  expect_error(kMinimal + "  means: [[0, 0]]\n", {"target.means is used only by target.name: gmm"});
  expect_error("target: {name: gmm, dim: 1, means: [[0]], mean: 0}",
               {"target.mean is used only by target.name: gaussian"});
  expect_error("target: {name: funnel, dim: 3, covariance: 1}",
               {"target.covariance is used only by target.name: gaussian"});
  expect_error("target: {name: gaussian, dim: 2, data: x.csv}",
               {"target.data is used only by target.name: gmm40, logreg, logreg_ionosphere, "
                "logreg_sonar, lgcp (here target.name: gaussian)"});
  expect_error("target: {name: logreg_sonar, grid: 8}",
               {"target.grid is used only by target.name: lgcp"});
  expect_error("target: {name: lgcp, label: y}",
               {"target.label is used only by target.name: logreg, logreg_ionosphere"});
  expect_error("target: {name: lgcp, module: m.pt}",
               {"target.module is used only by target.name: torchscript"});
  expect_error("target: {name: torchscript, dim: 2, module: m.pt, whitened: true}",
               {"target.whitened is used only by target.name: lgcp"});
}

TEST(ConfigErrors, YamlSyntaxErrorNamesFileAndLine) {
  expect_error(kMinimal + "train:\n  paths: [1, 2\n", {"configs/test.yaml:", "syntax error"});
  expect_error("target:\n  name: gaussian\n   dim: 2\n", {"configs/test.yaml:3:"});
}

TEST(ConfigOverrides, ReplaceAndCreateValues) {
  const rbsde::Config config = rbsde::parse_config(
      kMinimal + "train:\n  paths: 8\n",
      {"train.paths=16", "target.mean=[1,2]", "network.y0_residual=true", "sample.model=m.pt",
       "sde.steps=7", "train.paths=32", "sample.model_moves=4"});
  EXPECT_EQ(config.train.paths, 32);  // the last override of a key wins
  EXPECT_EQ(config.target.mean, Eigen::Vector2d(1, 2));
  EXPECT_TRUE(config.network.y0_residual);
  EXPECT_EQ(config.sample.model, "m.pt");
  EXPECT_EQ(config.sde.steps, 7);
  EXPECT_EQ(config.sample.model_moves, 4);  // kFull's sample.method ode does not take it
  expect_same(rbsde::parse_config(config.resolved_yaml), config);
}

TEST(ConfigOverrides, IntoAnEmptySectionOrDocument) {
  EXPECT_EQ(rbsde::parse_config(kMinimal + "sde:\n", {"sde.steps=9"}).sde.steps, 9);
  const rbsde::Config config =
      rbsde::parse_config("", {"target.name=funnel", "target.dim=4", "target.dim=6"});
  EXPECT_EQ(config.target.name, "funnel");
  EXPECT_EQ(config.target.dim, 6);
}

TEST(ConfigOverrides, BadOverridesAreErrors) {
  expect_error(kMinimal, {"train.paths"}, {"override 'train.paths'", "section.key=value"});
  expect_error(kMinimal, {"paths=3"}, {"override 'paths=3'", "two levels"});
  expect_error(kMinimal, {"train.paths.x=3"}, {"two levels"});
  expect_error(kMinimal, {"train.iteratons=3"},
               {"override 'train.iteratons=3'", "unknown key 'train.iteratons'", "iterations"});
  expect_error(kMinimal, {"trian.paths=3"}, {"unknown section 'trian'"});
  expect_error(kMinimal, {"target.mean=[1,"}, {"override 'target.mean=[1,'", "parse"});
  // A bad value is reported against the override that set it, not the file.
  expect_error(kMinimal, {"train.paths=many"},
               {"override 'train.paths=many': train.paths: expected an integer, got 'many'"});
  expect_error(kMinimal, {"target.mean=[1,2,3]"}, {"target.mean", "expected 2 values", "got 3"});
}

TEST(ConfigResolved, RoundTripsExactly) {
  expect_round_trip(rbsde::parse_config(kFull));
  expect_round_trip(rbsde::parse_config(kGmm));
  expect_round_trip(rbsde::parse_config(kMinimal));
  expect_round_trip(
      rbsde::parse_config("target: {name: many_well, dim: 4}\n"
                          "sample: {model: null_model}\n"
                          "output: {path: 'a: b/run.h5'}\n"));
  // Awkward numbers: shortest round-trip text must reproduce every bit.
  expect_round_trip(
      rbsde::parse_config("target:\n  name: gmm\n  dim: 1\n  weights: [0.1, 0.2, 0.3, 0.7]\n"
                          "  means: [[0.1], [1e-300], [-3.3333333333333335], [123456789.123]]\n"
                          "train: {lr: 0.1, lr_final: 1e-5}\n"));
}

TEST(ConfigResolved, ContainsDefaultsAndNormalisedWeights) {
  const rbsde::Config config = rbsde::parse_config(
      "target:\n  name: gmm\n  dim: 1\n  weights: [1, 3]\n  means: [[0], [1]]\n");
  EXPECT_THAT(config.resolved_yaml, HasSubstr("weights: [0.25, 0.75]"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("covariances:"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("steps: 50"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("lr: 0.002"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("detach_paths: true"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("path: results/run.h5"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("threads: 0"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("method: sde"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("divergence: auto"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("probes: 4"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("resample: true"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("hmc_steps: auto"));
  EXPECT_THAT(config.resolved_yaml, HasSubstr("chains: 64"));
}

TEST(Config, ModelPath) {
  rbsde::Config config;
  config.output.path = "results/run.h5";
  EXPECT_EQ(config.model_path(), "results/run.pt");
  config.output.path = "results.d/run";
  EXPECT_EQ(config.model_path(), "results.d/run.pt");
  config.sample.model = "models/trained.pt";
  EXPECT_EQ(config.model_path(), "models/trained.pt");
  EXPECT_EQ(config.checkpoint_path(), "results.d/run.ckpt");
}

/// Configuration files on disk.
class ConfigFile : public rbsde::test::TempDirectory {};

TEST_F(ConfigFile, LoadsFileWithOverrides) {
  const std::string path = write("run.yaml", kFull);
  const rbsde::Config config = rbsde::load_config(path, {"train.paths=64"});
  EXPECT_EQ(config.target.dim, 3);
  EXPECT_EQ(config.train.paths, 64);
  expect_same(config, rbsde::parse_config(kFull, {"train.paths=64"}, path));
}

TEST_F(ConfigFile, ErrorsNameTheFile) {
  const std::string path = write("typo.yaml", kMinimal + "train:\n  iteratons: 5\n");
  try {
    rbsde::load_config(path);
    ADD_FAILURE() << "no rbsde::Error thrown";
  } catch (const rbsde::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path + ": unknown key 'train.iteratons'"));
  }
  const std::string bad_syntax = write("syntax.yaml", "target:\n  name: [gaussian\n");
  try {
    rbsde::load_config(bad_syntax);
    ADD_FAILURE() << "no rbsde::Error thrown";
  } catch (const rbsde::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad_syntax + ":"));
    EXPECT_THAT(e.what(), HasSubstr("YAML syntax error"));
  }
}

TEST_F(ConfigFile, MissingOrUnreadableFile) {
  const std::string missing = (directory_ / "absent.yaml").string();
  try {
    rbsde::load_config(missing);
    ADD_FAILURE() << "no rbsde::Error thrown";
  } catch (const rbsde::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot read config file '" + missing + "'"));
    EXPECT_THAT(e.what(), HasSubstr("No such file"));
  }
  EXPECT_THROW(rbsde::load_config(directory_.string()), rbsde::Error);
}

// The README's key table is the option table: a key added, removed, or documented in one
// and not the other fails here (the message holds the table to paste).
TEST(OptionTable, ReadmeKeyTableIsTheOptionTable) {
  std::ifstream file(std::string(RBSDE_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(file) << "cannot read README.md";
  const std::string readme((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
  const std::string begin = "<!-- option table: rbsde --help-config -->\n";
  const std::string end = "<!-- end of the option table -->";
  const auto first = readme.find(begin);
  const auto last = readme.find(end);
  ASSERT_NE(first, std::string::npos) << "README.md has no line '" << begin << "'";
  ASSERT_NE(last, std::string::npos) << "README.md has no line '" << end << "'";
  const std::string table = readme.substr(first + begin.size(), last - first - begin.size());
  EXPECT_EQ(table, rbsde::options_markdown()) << "replace the README's option table with:\n"
                                              << rbsde::options_markdown();
}

// Every accepted key is in the table once, with a help text and a default.
TEST(OptionTable, HelpNamesEveryKeyOnce) {
  const std::string help = rbsde::options_help();
  for (const std::string key :
       {"target.name", "target.covariances", "sde.integrator", "network.gain", "train.tilt",
        "sample.hmc_step_size", "reference.seed", "output.path", "parallel.threads",
        "precondition.pilot"}) {
    const auto at = help.find("\n  " + key + ":");
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_EQ(help.find("\n  " + key + ":", at + 1), std::string::npos) << key;
  }
  // Defaults come from the members' initialisers in config.hpp.
  EXPECT_THAT(help, HasSubstr("train.lr: > 0 [0.002]"));
  EXPECT_THAT(help, HasSubstr("sde.integrator: euler, exponential [exponential]"));
}

}  // namespace
