#include "rbsde/app/app.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rbsde/bsde/independence.hpp"
#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/psis.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/bsde/smc.hpp"
#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/checkpoint.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/io/network_file.hpp"
#include "rbsde/io/output_file.hpp"
#include "rbsde/io/output_lock.hpp"
#include "rbsde/io/posterior.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"
#include "rbsde/parallel/parallel_for.hpp"
#include "rbsde/parallel/runtime.hpp"
#include "rbsde/version.hpp"

namespace rbsde {

namespace {

constexpr const char* kUsage =
    "usage: rbsde COMMAND CONFIG.yaml [--set key=value ...]\n"
    "\n"
    "Reverse-BSDE Monte Carlo: trains deep-BSDE networks for the reverse diffusion of an\n"
    "unnormalised target, then draws samples with importance weights and estimates log Z.\n"
    "\n"
    "commands:\n"
    "  run      train, then sample; writes output.path (HDF5) and the network next to it (.pt)\n"
    "  train    train only; writes the network parameters and training history (.pt)\n"
    "  sample   load saved network parameters (sample.model, default output.path with .pt)\n"
    "           and sample; writes output.path\n"
    "  reference  reference sampler of the target (reference.*): long-run MALA chains for\n"
    "           the posterior mean and sd, or with --set reference.method=smc adaptive-\n"
    "           tempering SMC for log Z (with its spread over runs) too; writes output.path\n"
    "  config   print the resolved configuration (every key, with the overrides and\n"
    "           defaults) as YAML; writes nothing\n"
    "\n"
    "options:\n"
    "  --resume          (run, train) continue from the checkpoint next to output.path\n"
    "  --set key=value   override a configuration key, e.g. --set train.iterations=200\n"
    "                    (value in YAML syntax: --set target.mean=[1,2]); may repeat\n"
    "  -h, --help        this text\n"
    "  --help-config     every configuration key: accepted values, default, meaning\n"
    "  --version         program version\n"
    "\n"
    "Run under MPI with mpirun/srun; threads per rank come from parallel.threads,\n"
    "SLURM_CPUS_PER_TASK or OMP_NUM_THREADS. Training writes a checkpoint every\n"
    "train.checkpoint_every iterations and on SIGUSR1 (then goes on) or SIGTERM/SIGINT (then\n"
    "stops with exit status 143). See README.md and configs/.\n";

struct Arguments {
  std::string command;
  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
};

/// Exit status of a run stopped by SIGTERM or SIGINT after writing its checkpoint.
constexpr int kStoppedBySignal = 143;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Arguments parse_arguments(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--set") {
      if (i + 1 >= argc) throw Error("--set needs a key=value argument");
      args.overrides.emplace_back(argv[++i]);
    } else if (arg.rfind("--set=", 0) == 0) {
      args.overrides.push_back(arg.substr(6));
    } else if (arg == "--resume") {
      args.resume = true;
    } else if (arg == "--method" || arg.rfind("--method=", 0) == 0) {
      throw Error("unknown option '" + arg +
                  "': the reference sampler is a configuration key, --set reference.method=smc "
                  "(or mala)");
    } else if (!arg.empty() && arg[0] == '-') {
      throw Error("unknown option '" + arg + "' (see rbsde --help)");
    } else if (args.command.empty()) {
      args.command = arg;
    } else if (args.config_path.empty()) {
      args.config_path = arg;
    } else {
      throw Error("unexpected argument '" + arg + "' (see rbsde --help)");
    }
  }
  if (args.command != "run" && args.command != "train" && args.command != "sample" &&
      args.command != "reference" && args.command != "config") {
    throw Error(args.command.empty()
                    ? "no command given (run, train, sample, reference or config; see rbsde --help)"
                    : "unknown command '" + args.command +
                          "' (accepted: run, train, sample, reference, config)");
  }
  if (args.config_path.empty()) {
    throw Error("no configuration file given (rbsde " + args.command + " CONFIG.yaml)");
  }
  if (args.resume && args.command != "run" && args.command != "train") {
    throw Error("--resume continues training: use it with run or train");
  }
  return args;
}

/// How long the node's load is measured before threads are chosen (busy_cores).
constexpr double kLoadWindowSeconds = 0.2;

/// Threads per rank: parallel.threads, else SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else
/// the node's cores that other work leaves free, shared evenly among the ranks on the node.
/// On cores shared with another job a thread waiting for another thread that is not running
/// costs a scheduler time slice; on a 2-core machine shared with a 2-rank job, 2 threads per
/// rank ran 35x slower than 1 (bench/shared_cores.sh, docs/results.md).
int choose_threads(const Config& config, MPI_Comm comm, std::string& source) {
  if (config.parallel.threads > 0) {
    source = "parallel.threads";
    return static_cast<int>(config.parallel.threads);
  }
  for (const char* name : {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"}) {
    if (const char* value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n > 0) {
        source = name;
        return n;
      }
    }
  }
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int ranks_on_node = 1;
  check_mpi(MPI_Comm_size(node, &ranks_on_node), "MPI_Comm_size(node)");
  // Every rank of the node sleeps while the load is measured (a rank waiting in an MPI call
  // would spin), so what is busy then is other work; the ranks take node rank 0's measure.
  check_mpi(MPI_Barrier(node), "MPI_Barrier(node)");
  double busy = busy_cores(kLoadWindowSeconds);
  check_mpi(MPI_Bcast(&busy, 1, MPI_DOUBLE, 0, node), "MPI_Bcast(busy cores)");
  check_mpi(MPI_Comm_free(&node), "MPI_Comm_free(node)");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int taken =
      std::isfinite(busy) ? std::clamp(static_cast<int>(std::lround(busy)), 0, cores) : 0;
  source = "cores per rank on this node";
  if (taken > 0) {
    char line[96];
    std::snprintf(line, sizeof line, "; %.1f of %d cores busy with other work", busy, cores);
    source += line;
  }
  return std::max(1, (cores - taken) / ranks_on_node);
}

/// Everything a run needs, built identically on every rank.
struct Problem {
  Config config;
  std::unique_ptr<Target> target;  ///< what training and sampling run on (precondition())
  BsdeModel model{nullptr};
  NoiseSchedule schedule;
};

/// The configured target, whose log 𝒵 the reported estimates are of.
const Target& configured(const Target& target) {
  const AffineTarget* affine = target.preconditioned();
  return affine ? affine->inner() : target;
}

/// A file a command reads or writes, with what it is for (the key that names it).
struct FileRole {
  std::string path;
  std::string role;
};

/// The same file for two roles: compared as absolute paths with the symbolic links of their
/// existing part resolved.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ignored;
  const auto normal = [&](const std::string& path) {
    return std::filesystem::weakly_canonical(std::filesystem::absolute(path), ignored);
  };
  return normal(a) == normal(b);
}

/// A run never writes over a file it reads, nor writes one file for two purposes: throws an
/// Error naming both roles before anything is written.
void check_file_roles(const Arguments& args, const Config& config) {
  std::vector<FileRole> reads = {{args.config_path, "the configuration file"}};
  if (!config.target.module.empty()) reads.push_back({config.target.module, "target.module"});
  if (!config.target.data.empty()) reads.push_back({config.target.data, "target.data"});
  if (!config.precondition.pilot.empty()) {
    reads.push_back({config.precondition.pilot, "precondition.pilot"});
  }
  std::vector<FileRole> writes;
  if (args.command == "sample") {
    reads.push_back({config.model_path(), "the network file (sample.model)"});
  }
  if (args.command != "train") {
    writes.push_back({config.output.path, "output.path"});
    writes.push_back({config.output.path + ".tmp", "output.path's temporary file (.tmp)"});
  }
  writes.push_back({config.output.path + ".lock", "output.path's lock (.lock)"});
  if (args.command == "run" || args.command == "train") {
    const std::string network = config.sample.model.empty()
                                    ? "the network file (output.path with .pt)"
                                    : "the network file (sample.model)";
    writes.push_back({config.model_path(), network});
    writes.push_back({config.model_path() + ".tmp", network + "'s temporary file"});
    writes.push_back({config.checkpoint_path(), "the checkpoint (output.path with .ckpt)"});
    writes.push_back({config.checkpoint_path() + ".tmp", "the checkpoint's temporary file"});
  }
  for (size_t i = 0; i < writes.size(); ++i) {
    std::error_code ignored;
    if (std::filesystem::is_directory(writes[i].path, ignored)) {
      throw Error(writes[i].role + " '" + writes[i].path +
                  "' is a directory: give the path of a file to write");
    }
    for (const FileRole& read : reads) {
      if (same_file(writes[i].path, read.path)) {
        throw Error(writes[i].role + " '" + writes[i].path + "' is the file of " + read.role +
                    ": a run never writes over a file it reads; choose another output.path");
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (same_file(writes[i].path, writes[j].path)) {
        throw Error(writes[i].role + " and " + writes[j].role + " are the same file '" +
                    writes[i].path + "'; choose another output.path or sample.model");
      }
    }
  }
}

/// `config` with target.dim taken from its target where the configuration leaves it 0 (implied
/// by the data file), so that the resolved YAML records it.
Config with_target_dim(const Config& config, const Target& target, const std::string& path) {
  if (config.target.dim != 0) return config;
  return parse_config(config.resolved_yaml, {"target.dim=" + std::to_string(target.dim())}, path);
}

/// Collective (the preconditioner is computed on rank 0 and broadcast). Rank 0 takes the lock
/// on output.path into `lock` once the configuration and the target are checked, before the
/// preconditioner.
Problem build_problem(const Arguments& args, const Communicator& comm,
                      std::unique_ptr<OutputLock>& lock) {
  Problem p;
  p.config = load_config(args.config_path, args.overrides);
  check_file_roles(args, p.config);
  auto target = make_target(p.config.target);
  p.config = with_target_dim(p.config, *target, args.config_path);
  // The InferenceData names are checked now, not after training.
  if (p.config.sample.resample) posterior_names(*target, p.config.target);
  // The output path is taken before any costly work (the preconditioner, training).
  if (comm.is_root()) {
    std::string command = "rbsde " + args.command + " " + args.config_path;
    for (const std::string& option : args.overrides) command += " --set " + option;
    if (args.resume) command += " --resume";
    std::string note;
    lock = std::make_unique<OutputLock>(p.config.output.path, command, note);
    if (!note.empty()) std::printf("%s\n", note.c_str());
  }
  p.target = precondition(std::move(target), p.config.precondition, comm);
  p.schedule = NoiseSchedule::from_config(p.config.sde);
  torch::manual_seed(p.config.train.seed);  // rank 0's initialisation is broadcast anyway
  p.model = BsdeModel(p.target->dim(), p.config.network, p.schedule);
  if (args.resume && !std::filesystem::exists(p.config.checkpoint_path())) {
    throw Error("no checkpoint '" + p.config.checkpoint_path() +
                "' to resume from: run without --resume first (same output.path)");
  }
  if (args.command == "sample" && !std::filesystem::exists(p.config.model_path())) {
    throw Error(
        "network parameters '" + p.config.model_path() +
        "' not found: run `rbsde train` with this configuration first, or set sample.model");
  }
  return p;
}

/// The message of a failure: an allocation failure says so and names the settings that decide
/// the memory a run needs; a LibTorch error comes without its C++ backtrace.
std::string failure_message(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  const std::string text = torch_error ? torch_error->what_without_backtrace() : e.what();
  const bool out_of_memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr ||
                             text.find("not enough memory") != std::string::npos ||
                             text.find("can't allocate memory") != std::string::npos;
  if (out_of_memory && text.rfind("target.module:", 0) == 0) {
    return "out of memory inside the target's module (" + text +
           "): the module allocates more than this process may use for one batch of x; check "
           "what it allocates (the batch has train.paths, sample.batch or reference.chains rows)";
  }
  if (out_of_memory) {
    return "out of memory (" + text +
           "): the memory of a run grows with target.dim, network.width, network.depth, "
           "network.time_features, train.paths, sde.steps, sample.batch and reference.chains; "
           "lower the one that is too large";
  }
  return text;
}

/// Collective: runs `step` on every rank; if it fails on any, every rank throws CollectiveError
/// with the lowest failing rank's message (for steps that every rank takes at the same point).
template <typename Step>
void collectively(const Communicator& comm, Step&& step) {
  comm.all_or_none(std::forward<Step>(step), failure_message);
}

/// `e` are estimates of the configured target's log 𝒵 (sample_into maps them back).
void print_estimates(const Estimates& e, const Target& target) {
  std::printf("log Z (importance sampling) = %.4f +- %.4f  (M = %lld)\n", e.log_z_is,
              e.log_z_is_stderr, static_cast<long long>(e.count));
  if (const auto truth = target.log_z()) {
    std::printf("log Z (exact)               = %.4f  (error %+.4f)\n", *truth, e.log_z_is - *truth);
  }
  std::printf("log Z (network c)           = %.4f\n", e.log_z_network);
  std::printf("ELBO                        = %.4f +- %.4f\n", e.elbo, e.elbo_stderr);
  std::printf("ESS                         = %.1f  (ESS/M = %.4f)\n", e.ess, e.ess_fraction);
  const std::string k = pareto_k_text(e.pareto_k, e.count, e.count - e.zero_weight_paths);
  if (!std::isfinite(e.pareto_k)) {
    std::printf("Pareto k^                   = %s\n", k.c_str());
  } else {
    std::printf("Pareto k^                   = %s  (largest %lld weights; reliable below %.2f)\n",
                k.c_str(), static_cast<long long>(e.pareto_tail), e.pareto_k_threshold);
  }
  if (e.zero_weight_paths > 0) {
    std::printf("warning: log π̃(X_N) = -inf on %lld of %lld paths: their weights are zero\n",
                static_cast<long long>(e.zero_weight_paths), static_cast<long long>(e.count));
  }
  if (e.method == "ode") {
    std::printf(
        "(probability-flow ODE: the weights are approximate, so log Z (importance\n"
        " sampling) is an approximation, not an unbiased estimate; method.md §5)\n");
  }
}

/// ESS below which the weights are called degenerate, whatever k̂ says.
constexpr double kMinimumEss = 100.0;

/// The end-of-run warning when k̂ or ESS says the weights are degenerate, naming what to try;
/// empty when they are not.
std::string degenerate_weights_warning(const Estimates& e, const Config& config) {
  const bool heavy_tail = !(e.pareto_k <= e.pareto_k_threshold);  // NaN too
  if (!heavy_tail && e.ess >= kMinimumEss) return "";
  char what[320];
  std::snprintf(what, sizeof what, "Pareto k^ = %s (reliable below %.2f), ESS = %.1f of %lld",
                pareto_k_text(e.pareto_k, e.count, e.count - e.zero_weight_paths).c_str(),
                e.pareto_k_threshold, e.ess, static_cast<long long>(e.count));
  std::string advice =
      "warning: the importance weights are degenerate: " + std::string(what) +
      ". log Z (importance sampling) and the weighted moments are not to be trusted. Try, in "
      "this order: more training (train.iterations, now " +
      std::to_string(config.train.iterations) + ")";
  if (config.precondition.kind == "none") {
    advice += "; preconditioning (precondition.kind: laplace or auto)";
  }
  if (config.train.anneal_gamma0 >= 1.0) advice += "; annealing (train.anneal_gamma0: 0.1)";
  if (hmc_iterations(config, e.pareto_k, e.pareto_k_threshold) == 0) {
    advice +=
        "; HMC refinement of the draws (sample.hmc_steps: " + std::to_string(kAutoHmcSteps) + ")";
  }
  if (e.count < 10000) advice += "; more samples (sample.count)";
  return advice;
}

int run_phases(const Arguments& args, Problem& p, const Communicator& comm, OutputFile* out,
               Clock::time_point start, double setup_seconds, int threads);
/// The command, from set-up to the last output; `lock` and `out` are the caller's (see execute).
int run_command(const Arguments& args, const Communicator& comm, std::unique_ptr<OutputLock>& lock,
                std::unique_ptr<OutputFile>& out) {
  if (args.command == "config") {
    std::string resolved;
    collectively(comm, [&] {
      const Config config = load_config(args.config_path, args.overrides);
      resolved =
          with_target_dim(config, *make_target(config.target), args.config_path).resolved_yaml;
    });
    if (comm.is_root()) std::fputs(resolved.c_str(), stdout);
    return 0;
  }
  const auto start = Clock::now();
  std::optional<Problem> problem;
  collectively(comm, [&] { problem.emplace(build_problem(args, comm, lock)); });
  Problem& p = *problem;

  std::string thread_source;
  const int threads = choose_threads(p.config, comm.get(), thread_source);
  torch::set_num_threads(threads);
  omp_set_num_threads(threads);
  const double setup_seconds = seconds_since(start);
  if (comm.is_root()) {
    std::printf(
        "rbsde %s: %s %s  target %s (d = %lld)  ranks %d  threads/rank %d (%s)  kernels %s\n",
        kVersion, args.command.c_str(), args.config_path.c_str(), p.target->name().c_str(),
        static_cast<long long>(p.target->dim()), comm.size(), threads, thread_source.c_str(),
        kernel_backend());
    if (const auto* module = dynamic_cast<const TorchScriptTarget*>(&configured(*p.target))) {
      std::printf("target.module %s: %s(x) accepts x in %s\n", p.config.target.module.c_str(),
                  module->method().c_str(), module->precisions().c_str());
    }
    if (const AffineTarget* affine = p.target->preconditioned()) {
      std::printf(
          "precondition %s: x = m + L x^ with %s L, log|det L| = %.6g; training reports log Z^ = "
          "log Z - log|det L| of x^, samples and estimates are for x\n",
          p.config.precondition.kind.c_str(),
          affine->map().is_diagonal() ? "diagonal" : "triangular", affine->map().log_det());
    }
    std::fflush(stdout);
  }

  // The output file exists (as <path>.tmp) from the start, so an unwritable path fails now,
  // not after training; it only takes its final name once complete.
  if (args.command != "train") {
    collectively(comm, [&] { out = std::make_unique<OutputFile>(p.config.output.path, comm); });
  }
  return run_phases(args, p, comm, out.get(), start, setup_seconds, threads);
}

int execute(const Arguments& args, const Communicator& comm) {
  // Declared outside the try block: on a failure of some ranks only, the job is aborted before
  // the output file's collective close (each failing rank first removes the temporary file);
  // on a CollectiveError every rank closes it together and the temporary file is removed.
  std::unique_ptr<OutputLock> lock;  // released after the output file is closed or removed
  std::unique_ptr<OutputFile> out;
  try {
    return run_command(args, comm, lock, out);
  } catch (const CollectiveError& e) {  // the same on every rank, at the same point
    if (comm.is_root()) std::fprintf(stderr, "rbsde: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    if (comm.size() > 1) {  // the error may strike some ranks only: none may be left waiting
      std::fprintf(stderr, "rbsde: error on rank %d: %s\n", comm.rank(),
                   failure_message(e).c_str());
      std::fflush(stderr);
      if (out) out->remove_uncommitted();
      lock.reset();
      MPI_Abort(comm.get(), 1);
    }
    throw;
  }
}

/// `rbsde reference`: the MALA reference sampler (mcmc.hpp) with its chains shared over the
/// ranks; writes /reference into `out`.
int run_reference(const Problem& p, const Communicator& comm, OutputFile& out,
                  Clock::time_point start, double setup_seconds, int threads) {
  const auto reference_start = Clock::now();
  const bool smc = p.config.reference.method == "smc";
  const ReferenceMoments r = smc ? smc_reference(*p.target, p.config.reference, comm)
                                 : reference_moments(*p.target, p.config.reference, comm);
  out.write_metadata(p.config.resolved_yaml, kVersion);
  out.write_reference(r);
  out.commit();
  const double reference_seconds = seconds_since(reference_start);
  if (comm.is_root()) {
    // Effective sample size sd² / stderr²: how many independent draws the estimate is worth.
    double min_ess = INFINITY;
    for (size_t j = 0; j < r.mean.size(); ++j) {
      if (r.mean_stderr[j] > 0) {
        min_ess = std::min(min_ess, std::pow(r.sd[j] / r.mean_stderr[j], 2));
      }
    }
    const size_t shown = std::min<size_t>(r.mean.size(), 10);
    std::printf("coordinate        mean   +- stderr          sd\n");
    for (size_t j = 0; j < shown; ++j) {
      std::printf("%10zu %11.5f +- %-9.2e %11.5f\n", j, r.mean[j], r.mean_stderr[j], r.sd[j]);
    }
    if (shown < r.mean.size()) std::printf("(%zu more in the file)\n", r.mean.size() - shown);
    if (smc) {
      const auto truth = configured(*p.target).log_z();
      std::printf(
          "SMC: %lld runs x %lld particles, %lld temperatures, %lld moves each, acceptance "
          "%.3f, %lld evaluations of log pi\nlog Z (SMC, log of the runs' mean Z) %.4f +- %.4f%s\n",
          static_cast<long long>(r.log_z_runs.size()), static_cast<long long>(r.chains),
          static_cast<long long>(r.temperatures), static_cast<long long>(r.steps),
          r.acceptance_rate, static_cast<long long>(r.evaluations), r.log_z, r.log_z_stderr,
          truth ? (", exact " + std::to_string(*truth)).c_str() : "");
    } else {
      std::printf(
          "MALA: %lld chains x %lld steps after %lld warm-up, acceptance %.3f, step size "
          "%.4g, smallest ESS %.0f\n",
          static_cast<long long>(r.chains), static_cast<long long>(r.steps),
          static_cast<long long>(r.warmup), r.acceptance_rate, r.step_size, min_ess);
    }
    std::printf("wrote %s (/reference)\n", p.config.output.path.c_str());
    std::printf(
        "rbsde-summary command=reference method=%s target=%s dim=%lld ranks=%d threads=%d "
        "acceptance=%.4f step_size=%.6g min_ess=%.1f log_z=%.6f log_z_stderr=%.6f "
        "evaluations=%lld setup_s=%.2f reference_s=%.2f total_s=%.2f\n",
        r.method.c_str(), p.target->name().c_str(), static_cast<long long>(p.target->dim()),
        comm.size(), threads, r.acceptance_rate, r.step_size, min_ess, smc ? r.log_z : NAN,
        smc ? r.log_z_stderr : NAN, static_cast<long long>(r.evaluations), setup_seconds,
        reference_seconds, seconds_since(start));
  }
  return 0;
}

/// The timing table printed at the end of a run: min, mean and max seconds over the ranks and
/// the mean's share of the whole run, for the phases that took time, and the rest of training.
std::string format_timing(const TimingTable& t, double total_seconds) {
  std::string text;
  char line[160];
  std::snprintf(line, sizeof line, "timing: %d rank%s x %d thread%s, d = %lld", t.ranks,
                t.ranks == 1 ? "" : "s", t.threads, t.threads == 1 ? "" : "s",
                static_cast<long long>(t.dimension));
  text += line;
  if (t.iterations > 0) {
    std::snprintf(line, sizeof line, ", %lld paths, %lld iterations at %.4g s/iteration",
                  static_cast<long long>(t.paths), static_cast<long long>(t.iterations),
                  t.seconds_per_iteration);
    text += line;
  }
  text += "\nphase              min s     mean s      max s   share\n";
  const auto row = [&](const char* name, double min, double mean, double max) {
    std::snprintf(line, sizeof line, "%-13s %10.3f %10.3f %10.3f %6.1f %%\n", name, min, mean, max,
                  100.0 * mean / total_seconds);
    text += line;
  };
  double training = 0.0;
  for (const PhaseTiming& phase : t.phases) {
    if (phase.max > 0.0) row(phase.phase.c_str(), phase.min, phase.mean, phase.max);
    if (phase.phase != phase_name(Phase::kSampling) && phase.phase != phase_name(Phase::kOutput)) {
      training += phase.mean;
    }
  }
  if (t.iterations > 0) {
    std::snprintf(line, sizeof line, "%-13s %10s %10.3f %10s %6.1f %%\n", "other (train)", "",
                  t.train_seconds - training, "",
                  100.0 * (t.train_seconds - training) / total_seconds);
    text += line;
  }
  std::snprintf(line, sizeof line, "total %29.3f\n", total_seconds);
  return text + line;
}

int run_phases(const Arguments& args, Problem& p, const Communicator& comm, OutputFile* out,
               Clock::time_point start, double setup_seconds, int threads) {
  if (args.command == "reference") {
    return run_reference(p, comm, *out, start, setup_seconds, threads);
  }
  TrainingHistory history;
  double train_seconds = 0.0;
  PhaseTimers timers;
  TimingTable timing;
  timing.ranks = comm.size();
  timing.threads = threads;
  timing.dimension = p.target->dim();
  for (const auto& parameter : p.model->parameters()) timing.parameters += parameter.numel();
  if (args.command == "sample") {
    // Every rank reads the file at this point: a damaged one is reported once.
    collectively(comm,
                 [&] { history = load_model(p.config.model_path(), p.model, p.config.network); });
  } else {
    const auto train_start = Clock::now();
    Trainer trainer(*p.target, p.model, p.config.sde, p.config.train, comm);
    trainer.set_checkpoint_writer(
        [&](const Trainer& t) { save_checkpoint(p.config.checkpoint_path(), t, p.config, comm); });
    if (args.resume) {
      std::vector<std::string> allowed;
      collectively(comm, [&] {
        allowed = resume_checkpoint(p.config.checkpoint_path(), trainer, p.config, comm);
      });
      if (comm.is_root()) {
        std::printf("resuming from %s at iteration %lld\n", p.config.checkpoint_path().c_str(),
                    static_cast<long long>(trainer.next_iteration()));
        for (const std::string& change : allowed) {
          std::printf("  allowed difference from the checkpoint's run: %s\n", change.c_str());
        }
      }
    }
    history = trainer.train();
    train_seconds = seconds_since(train_start);
    timers = trainer.timers();
    timing.paths = p.config.train.paths;
    timing.iterations = trainer.iterations_run();
    if (trainer.stopped()) {
      if (comm.is_root()) {
        std::printf(
            "stopped by a signal after iteration %lld; checkpoint %s\n"
            "continue with: rbsde %s %s --resume (and the same --set options)\n",
            static_cast<long long>(trainer.next_iteration()), p.config.checkpoint_path().c_str(),
            args.command.c_str(), args.config_path.c_str());
      }
      return kStoppedBySignal;
    }
    collectively(comm, [&] {
      if (comm.is_root()) save_model(p.config.model_path(), p.model, p.config.network, history);
    });
  }

  double sample_seconds = 0.0;
  std::optional<Estimates> estimates;
  const auto sample_start = Clock::now();
  if (out) {
    {
      const auto timed = timers.measure(Phase::kOutput);
      out->write_metadata(p.config.resolved_yaml, kVersion);
      TrainingHistory recorded = history;
      if (const AffineTarget* affine = p.target->preconditioned()) {
        out->write_preconditioning(affine->map(), p.config.precondition.kind);
        for (double& c : recorded.log_z) c += affine->map().log_det();  // c_θ estimates log 𝒵̂
      }
      out->write_training(recorded);
    }
    estimates = sample_into(*out, *p.target, p.model, p.schedule, p.config, comm);
    {
      const auto timed = timers.measure(Phase::kOutput);
      out->write_estimates(*estimates);
    }
    timers.add(Phase::kOutput, out->write_seconds());
    timers.add(Phase::kSampling, seconds_since(sample_start) - timers.seconds(Phase::kOutput));
  }
  // Collective: the same seconds (the slowest rank's) in every rank's /timing attributes.
  comm.allreduce_max(&train_seconds, 1);
  timing.train_seconds = train_seconds;
  timing.seconds_per_iteration =
      timing.iterations > 0 ? train_seconds / static_cast<double>(timing.iterations) : NAN;
  timing.phases = reduce_phase_timers(timers, comm);
  if (out) {
    out->write_timing(timing);
    out->commit();
    sample_seconds = seconds_since(sample_start);
  }

  if (comm.is_root()) {
    if (estimates) {
      print_estimates(*estimates, configured(*p.target));
      std::printf("wrote %s\n", p.config.output.path.c_str());
    }
    if (args.command != "sample") std::printf("wrote %s\n", p.config.model_path().c_str());
    if (estimates) {
      const std::string warning = degenerate_weights_warning(*estimates, p.config);
      if (!warning.empty()) std::printf("%s\n", warning.c_str());
    }
    const auto truth = configured(*p.target).log_z();
    std::printf("%s", format_timing(timing, seconds_since(start)).c_str());
    std::printf(
        "rbsde-summary command=%s target=%s dim=%lld ranks=%d threads=%d log_z_is=%.6f "
        "log_z_is_stderr=%.6f log_z_true=%s ess_fraction=%.6f pareto_k=%.4f setup_s=%.2f "
        "train_s=%.2f "
        "sample_s=%.2f total_s=%.2f\n",
        args.command.c_str(), p.target->name().c_str(), static_cast<long long>(p.target->dim()),
        comm.size(), threads, estimates ? estimates->log_z_is : NAN,
        estimates ? estimates->log_z_is_stderr : NAN,
        truth ? std::to_string(*truth).c_str() : "unknown",
        estimates ? estimates->ess_fraction : NAN, estimates ? estimates->pareto_k : NAN,
        setup_seconds, train_seconds, sample_seconds, seconds_since(start));
  }
  return 0;
}

}  // namespace

Estimates sample_into(OutputFile& out, const Target& target, BsdeModel& model,
                      const NoiseSchedule& schedule, const Config& config,
                      const Communicator& comm) {
  const auto& sample = config.sample;
  const SampleSummary drawn = draw_samples(out, target, model, schedule, config, comm);
  Estimates estimates = drawn.estimates;
  // Bias correction (method.md §5), reading back the rows just written.
  std::string written = sample.psis ? "/samples, /log_weights, /paths, /estimates (with "
                                      "posterior_mean, _sd, psis_mean, _sd)"
                                    : "/samples, /log_weights, /paths, /estimates (with "
                                      "posterior_mean, _sd)";
  if (sample.resample) {
    out.synchronise();
    resample_into(out, sample, target.dim(), drawn.max_log_weight, comm);
    written += ", /resampled";
  }
  const int64_t hmc_steps =
      hmc_iterations(config, estimates.pareto_k, estimates.pareto_k_threshold);
  if (hmc_steps > 0) {
    out.synchronise();
    // Where the weights are unreliable the resampled rows are a few repeated points: the
    // chains start from the proposal's own draws instead.
    const bool from_proposal = !(estimates.pareto_k <= estimates.pareto_k_threshold);
    const Refinement refinement = refine_into(
        out, target, sample, hmc_steps, sample.hmc_steps == kHmcStepsAuto, from_proposal,
        drawn.proposal_variance, {model, TimeGrid(schedule, config.sde.steps)}, comm);
    written += ", /refined";
    if (comm.is_root()) {
      char model_moves[96] = "";
      if (refinement.model_moves > 0) {
        std::snprintf(model_moves, sizeof model_moves, ", model moves (every %lld) accepted %.4f",
                      static_cast<long long>(refinement.model_moves),
                      refinement.model_acceptance_rate);
      }
      std::printf(
          "HMC refinement%s: %lld iterations x %lld leapfrog steps (mean) from the %s, "
          "acceptance %.3f, step size %.4g%s; split R^ %.4f, ESS %.0f (%lld chains)\n",
          sample.hmc_steps == kHmcStepsAuto
              ? " (sample.hmc_steps: auto, the weights are unreliable)"
              : "",
          static_cast<long long>(refinement.iterations),
          static_cast<long long>(sample.leapfrog_steps),
          from_proposal ? "proposal's draws (/samples)" : "resampled draws",
          refinement.acceptance_rate, refinement.step_size, model_moves, refinement.rhat,
          refinement.ess, static_cast<long long>(sample.count));
      if (!(refinement.rhat < kMaxSplitRhat)) {
        std::printf(
            "warning: the refined chains have not mixed: split R^ = %.4f (trusted below %.2f); "
            "the refined draws are not to be trusted: raise sample.hmc_steps (now %lld)\n",
            refinement.rhat, kMaxSplitRhat, static_cast<long long>(refinement.iterations));
      }
    }
  }
  if (sample.resample) {
    out.synchronise();
    posterior_into(out, configured(target), config, hmc_steps > 0, comm);
    written += ", /posterior and /sample_stats (InferenceData)";
  }
  if (comm.is_root()) {
    std::printf("sample: %lld paths -> %s\n", static_cast<long long>(sample.count),
                written.c_str());
    std::fflush(stdout);
  }
  return estimates;
}

int run_app(int argc, char** argv, MPI_Comm world) {
  keep_freed_memory();
  install_signal_handlers();
  int rank = 0;
  if (MPI_Comm_rank(world, &rank) != MPI_SUCCESS) return 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      if (rank == 0) std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--help-config") {
      if (rank == 0) std::fputs(options_help().c_str(), stdout);
      return 0;
    }
    if (arg == "--version") {
      if (rank == 0) std::printf("rbsde %s\n", kVersion);
      return 0;
    }
  }
  Arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const Error& e) {  // identical on every rank: report once, all exit
    if (rank == 0) std::fprintf(stderr, "rbsde: error: %s\n", e.what());
    return 2;
  }
  try {
    Communicator comm(world);
    return execute(args, comm);
  } catch (const std::exception& e) {  // one rank: execute() aborts multi-rank failures
    std::fprintf(stderr, "rbsde: error: %s\n", failure_message(e).c_str());
    return 1;
  }
}

}  // namespace rbsde
