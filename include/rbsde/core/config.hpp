#pragma once
/// \file config.hpp
/// Run configuration as typed structs with their defaults; io/config_file.hpp parses them
/// from YAML.
#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace rbsde {

/// target.*: which distribution to sample and its parameters.
struct TargetConfig {
  /// gaussian | gmm | funnel | many_well | gmm40 | logreg | logreg_ionosphere | logreg_sonar |
  /// lgcp | torchscript (required)
  std::string name;
  /// dimension d: required, except for the data targets (gmm40, logreg*, lgcp), where 0 means
  /// "implied by the data" (lgcp: target.grid², filled in here; the others when the file is read)
  int64_t dim = 0;
  // gaussian: mean (scalar or d-vector, default 0); covariance as a scalar c (c I) or a
  // d-vector (diagonal), kept in covariance_diagonal without a d x d matrix, or a d x d
  // symmetric positive definite matrix, kept in covariance. Default I (a diagonal of ones).
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  Eigen::VectorXd covariance_diagonal;
  // gmm: weights (K, positive, normalised on load; default equal), means (K x d, required),
  // covariances (K entries, each scalar / d-vector / d x d; or one entry shared by all; default I).
  std::vector<double> weights;
  std::vector<Eigen::VectorXd> means;
  std::vector<Eigen::MatrixXd> covariances;
  // gmm40, logreg*, lgcp: the CSV file (relative to the current directory); default for the
  // named benchmarks: the project's copy in data/ (required for logreg).
  std::string data;
  std::string label = "Class";  ///< logreg*: the 0/1 label column; every other one is a feature
  int64_t grid = 40;            ///< lgcp: G, a G x G grid (d = G²)
  bool whitened = false;        ///< lgcp: sample u with x = μ₀ + L u instead of x
  std::string module;           ///< torchscript: the TorchScript file (required)
  std::string method;           ///< torchscript: the method; empty = log_prob if any, else forward
  /// Parameter names of the InferenceData posterior group; empty = the module's `names`,
  /// else x[1] … x[d].
  std::vector<std::string> names;
};

/// sde.*: the variance-preserving noising SDE and its time grid (method.md §2, §4).
struct SdeConfig {
  std::string schedule = "constant";  ///< constant (β ≡ beta) | linear (beta_min → beta_max)
  double beta = 2.0;
  double beta_min = 0.1;
  double beta_max = 10.0;
  double horizon = 4.0;                    ///< T
  int64_t steps = 50;                      ///< N, uniform grid
  std::string integrator = "exponential";  ///< euler | exponential (schedule.hpp, TimeGrid)
};

/// network.*: Z_θ(s, x) = √b(s)(−x) + MLP([x, time features]); Y₀ = log N(x) + c (+ r_θ(x)).
struct NetworkConfig {
  int64_t width = 64;
  int64_t depth = 2;                ///< hidden layers
  std::string activation = "silu";  ///< silu | tanh | relu | gelu
  int64_t time_features = 4;        ///< τ = s/T and sin/cos(kπτ), k = 1..time_features
  bool y0_residual = false;         ///< add a small residual network r_θ(X₀) to Y₀
  /// A second output head G_θ(s, x) scales x coordinate by coordinate:
  /// Z_θ = MLP(…) + (G_θ − √b) ⊙ x, so that a variance that depends on other coordinates
  /// (a hierarchical model's scales, the funnel) is a product the network need not learn.
  bool gain = false;
  /// A target-score feature: Z_θ = … + √b a_θ(s) φ(x), φ = ∇log π̃(x) + x (the target's score
  /// less the reference's), a_θ a linear function of the time features starting at 0.
  bool score = false;
  /// Z_θ acts on `blocks` consecutive coordinate blocks of d / blocks each with one shared
  /// MLP: for targets that are products of identical factors (many_well: 16 2-D wells).
  int64_t blocks = 1;
};

/// train.*: deep-BSDE training (method.md §4).
struct TrainConfig {
  int64_t iterations = 1000;
  int64_t paths = 512;  ///< M, global over all ranks
  uint64_t seed = 1;
  double lr = 2e-3;
  std::string lr_schedule = "cosine";  ///< cosine | constant
  double lr_final = 1e-5;              ///< learning rate at the last iteration (cosine)
  double grad_clip = 1.0;              ///< global gradient-norm bound; 0 disables
  double anneal_gamma0 = 1.0;          ///< γ₀ of the annealed terminal condition; 1 = off
  double anneal_fraction = 0.5;        ///< share of iterations over which γ rises to 1
  /// bridge: γ log π̃ + (1 − γ) log N(0, I); tempered: γ log π̃ (every mode of a mixture
  /// keeps its share while γ rises, where the bridge starts the outer ones damped)
  std::string anneal_path = "bridge";
  /// The Y recursion of training (step.hpp): exact, Y_{n+1} = Y_n + log q_n − log k_n, so
  /// the loss is the variance of the sampler's log weight (with explore 0, no y0 residual and
  /// γ = 1); euler, the Euler step of dY (the
  /// seed method's), whose error grows with d.
  std::string y_step = "exact";
  bool detach_paths = true;  ///< false: coupled deep BSDE (gradients through X)
  /// Re-simulate the paths for the backward instead of recording them (method.md §4): memory
  /// O(M (d + width)) instead of O(N M (d + width)), about 1.3x the time. Detached paths only.
  bool constant_memory = false;
  /// Share of each iteration's paths driven by the reference control u = −√b X (the
  /// stationary OU process) instead of the model's: off-policy exploration against mode
  /// collapse; the log-variance loss is valid for any control. Detached paths only.
  double explore = 0.0;
  /// κ: the loss is the residual's variance over the paths weighted ∝ w^κ, w their importance
  /// weights (∝ exp(−r)): 0 weighs every path the same (mode-seeking, like the reverse KL),
  /// towards 1 the paths the model under-samples count more (mass-covering).
  double tilt = 0.0;
  int64_t log_every = 0;           ///< progress line interval; 0 = about 20 lines a run
  int64_t checkpoint_every = 500;  ///< checkpoint interval; 0 = only on SIGTERM/SIGUSR1
};

/// sample.hmc_steps: auto, resolved once the importance weights are known (io/posterior.hpp).
inline constexpr int64_t kHmcStepsAuto = -1;
/// The HMC iterations of sample.hmc_steps: auto where the weights are unreliable.
inline constexpr int64_t kAutoHmcSteps = 200;

/// sample.*: drawing samples from the trained reverse SDE (method.md §5) or its
/// probability-flow ODE (method.md §5, last part).
struct SampleConfig {
  int64_t count = 10000;
  uint64_t seed = 2;
  int64_t batch = 65536;            ///< paths simulated at once per rank (bounds memory)
  std::string model;                ///< network parameters to load; default: output.path with .pt
  std::string method = "sde";       ///< sde (exact weights) | ode (probability-flow ODE)
  std::string divergence = "auto";  ///< ode: exact | hutchinson | auto (exact for d <= 32)
  int64_t probes = 4;               ///< ode, hutchinson: Rademacher probes per divergence
  bool resample = true;             ///< systematic resampling into /resampled (method.md §5)
  /// HMC iterations refining the samples (needs resample); kHmcStepsAuto: kAutoHmcSteps for the
  /// posteriors when their importance weights are unreliable, else none.
  int64_t hmc_steps = kHmcStepsAuto;
  int64_t leapfrog_steps = 10;  ///< leapfrog steps per HMC iteration (1: MALA)
  double hmc_step_size = 0.0;   ///< leapfrog step size; 0 = adapted in the first half of the steps
  /// Each chain's step size in an HMC iteration is ε·s^u, u ~ U(0, 1): log-uniform on
  /// [s ε, ε], s this (1: every chain takes ε). Lets chains into the neck of a funnel.
  double hmc_smallest_step = 0.1;
  /// Every this many HMC iterations each refinement chain also proposes a fresh path of the
  /// trained model, accepted on its exact weight (bsde/independence.hpp); 0: never. Needs the
  /// SDE sampler: the ODE's weights are not exact.
  int64_t model_moves = 0;
  bool psis = false;  ///< also the moments with Pareto-smoothed weights (psis.hpp)
};

/// reference.*: the reference samplers of `rbsde reference`: long-run MALA (mcmc.hpp) or
/// adaptive-tempering SMC (smc.hpp).
struct ReferenceConfig {
  std::string method = "mala";  ///< mala (posterior moments) | smc (also log 𝒵)
  int64_t chains = 64;          ///< mala: independent chains, global over all ranks
  int64_t warmup = 2000;        ///< mala: adaptation steps per chain (step size, preconditioner)
  int64_t steps = 10000;        ///< mala: sampling steps per chain after the warm-up
  int64_t particles = 4096;     ///< smc: particles, global over all ranks
  int64_t moves = 10;           ///< smc: MALA steps per temperature
  int64_t runs = 4;             ///< smc: independent runs (the spread of log 𝒵)
  double ess = 0.5;             ///< smc: the ESS fraction each temperature step keeps
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

/// precondition.*: the affine map x = centre + L x̂ under which training and sampling run
/// (method.md §4; precondition.hpp builds it).
struct PreconditionConfig {
  std::string kind =
      "none";  ///< none | config | prior | laplace | pilot | variational | auto (posteriors)
  // config: centre (scalar or d-vector; default 0) and scale, either a scalar or d-vector, the
  // diagonal of L (scale_diagonal; default 1), or a d x d symmetric positive definite
  // covariance whose Cholesky factor is L (scale_covariance). Exactly one of the two is set.
  Eigen::VectorXd centre;
  Eigen::VectorXd scale_diagonal;
  Eigen::MatrixXd scale_covariance;
  /// laplace, pilot, variational: auto (by d: resolved_form) | cholesky (full L) | diagonal |
  /// curvature
  std::string form = "auto";
  int64_t iterations = 1000;              ///< laplace: L-BFGS iterations at most
  int64_t variational_iterations = 1000;  ///< variational: the ELBO's ascent iterations
  std::string pilot;  ///< pilot: the output file (HDF5) of an earlier run (required)
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
  PreconditionConfig precondition;
  /// The resolved configuration (every key, defaults filled in) as YAML text.
  std::string resolved_yaml;

  /// Path of the saved network parameters: sample.model, or output.path with extension .pt.
  std::string model_path() const;
  /// Path of the training checkpoint: output.path with extension .ckpt.
  std::string checkpoint_path() const;
};

}  // namespace rbsde
