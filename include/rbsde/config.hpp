#pragma once
/// \file config.hpp
/// Run configuration: one YAML file parsed into typed structs with defaults.
/// Unknown keys, wrong types and inconsistent values are errors naming the key.
#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace rbsde {

/// target.*: which distribution to sample and its parameters.
struct TargetConfig {
  std::string name;  ///< gaussian | gmm | funnel | many_well (required)
  int64_t dim = 0;   ///< dimension d (required)
  // gaussian: mean (scalar or d-vector, default 0), covariance (scalar = c I,
  // d-vector = diagonal, or d x d symmetric positive definite; default I).
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  // gmm: weights (K, positive, normalised on load; default equal), means (K x d, required),
  // covariances (K entries, each scalar / d-vector / d x d; or one entry shared by all; default I).
  std::vector<double> weights;
  std::vector<Eigen::VectorXd> means;
  std::vector<Eigen::MatrixXd> covariances;
};

/// sde.*: the variance-preserving noising SDE and its time grid (method.md §2, §4).
struct SdeConfig {
  std::string schedule = "constant";  ///< constant (β ≡ beta) | linear (beta_min → beta_max)
  double beta = 2.0;
  double beta_min = 0.1;
  double beta_max = 10.0;
  double horizon = 4.0;  ///< T
  int64_t steps = 50;    ///< N, uniform grid
};

/// network.*: Z_θ(s, x) = √b(s)(−x) + MLP([x, time features]); Y₀ = log N(x) + c (+ r_θ(x)).
struct NetworkConfig {
  int64_t width = 64;
  int64_t depth = 2;                ///< hidden layers
  std::string activation = "silu";  ///< silu | tanh | relu | gelu
  int64_t time_features = 4;        ///< τ = s/T and sin/cos(kπτ), k = 1..time_features
  bool y0_residual = false;         ///< add a small residual network r_θ(X₀) to Y₀
};

/// train.*: deep-BSDE training (method.md §4).
struct TrainConfig {
  int64_t iterations = 1000;
  int64_t paths = 512;                ///< M, global over all ranks
  uint64_t seed = 1;
  double lr = 2e-3;
  std::string lr_schedule = "cosine";  ///< cosine | constant
  double lr_final = 1e-5;             ///< learning rate at the last iteration (cosine)
  double grad_clip = 1.0;             ///< global gradient-norm bound; 0 disables
  double anneal_gamma0 = 1.0;         ///< γ₀ of the annealed terminal condition; 1 = off
  double anneal_fraction = 0.5;       ///< share of iterations over which γ rises to 1
  bool detach_paths = true;           ///< false: coupled deep BSDE (gradients through X)
  int64_t log_every = 0;              ///< progress line interval; 0 = about 20 lines a run
  int64_t checkpoint_every = 500;     ///< checkpoint interval; 0 = only on SIGTERM/SIGUSR1
};

/// sample.*: drawing samples from the trained reverse SDE (method.md §5).
struct SampleConfig {
  int64_t count = 10000;
  uint64_t seed = 2;
  int64_t batch = 65536;  ///< paths simulated at once per rank (bounds memory)
  std::string model;      ///< network parameters to load; default: output.path with .pt
  bool resample = true;   ///< systematic resampling into /resampled (method.md §5)
  int64_t mala_steps = 0;       ///< MALA steps refining the resampled samples (needs resample)
  double mala_step_size = 0.0;  ///< MALA step size; 0 = adapted in the first half of the steps
};

/// reference.*: the long-run MALA reference sampler of `rbsde reference` (mcmc.hpp).
struct ReferenceConfig {
  int64_t chains = 64;    ///< independent chains, global over all ranks
  int64_t warmup = 2000;  ///< adaptation steps per chain (step size and preconditioner)
  int64_t steps = 10000;  ///< sampling steps per chain after the warm-up
  uint64_t seed = 3;
};

/// output.*
struct OutputConfig {
  std::string path = "results/run.h5";
};

/// parallel.*
struct ParallelConfig {
  int64_t threads = 0;  ///< threads per rank; 0 = SLURM_CPUS_PER_TASK, OMP_NUM_THREADS or all
};

struct Config {
  TargetConfig target;
  SdeConfig sde;
  NetworkConfig network;
  TrainConfig train;
  SampleConfig sample;
  ReferenceConfig reference;
  OutputConfig output;
  ParallelConfig parallel;
  /// The resolved configuration (every key, defaults filled in) as YAML text.
  std::string resolved_yaml;

  /// Path of the saved network parameters: sample.model, or output.path with extension .pt.
  std::string model_path() const;
  /// Path of the training checkpoint: output.path with extension .ckpt.
  std::string checkpoint_path() const;
};

/// Parses a YAML file and applies `key.sub=value` overrides (value in YAML syntax, e.g.
/// `target.mean=[1,2]`). Throws Error naming the file or key on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The same from YAML text (tests, and load_config after reading the file).
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                    const std::string& source = "<string>");

}  // namespace rbsde
