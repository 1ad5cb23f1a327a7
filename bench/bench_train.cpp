// rbsde_bench_train: training throughput of the detached two-pass step (design.md), the share
// of step time spent in the gradient all-reduce, and GFLOP/s against the sgemm peak of this
// machine measured in the same run. A benchmark, not a test: it prints figures and asserts
// nothing.
//
//   mpirun -np 2 --bind-to none rbsde_bench_train --dim 100 --width 256 --threads 1
//
// Prints one greppable line, `bench-train key=value ...`, on rank 0.
#include <mpi.h>
#include <omp.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/config_file.hpp"
#include "rbsde/parallel/communicator.hpp"
#include "rbsde/parallel/runtime.hpp"
#include "rbsde/parallel/timers.hpp"

namespace {

constexpr const char* kUsage =
    "usage: rbsde_bench_train [--dim D] [--width W] [--depth L] [--paths M] [--steps N]\n"
    "                         [--iterations K] [--warmup K0] [--threads T] [--gemm-size S]\n"
    "                         [--gemm-repetitions R] [--sample-repetitions Q]\n"
    "  --paths is the global number of paths M (split over the ranks); --threads per rank\n"
    "  (default OMP_NUM_THREADS, else the cores divided among the ranks). The sgemm peak is\n"
    "  the best of R torch::mm calls on S x S matrices; R = 0 skips it (for profiling).\n"
    "  Sampling throughput is the best of Q simulations of the M paths by the trained\n"
    "  network (simulate_paths, the sampler's kernel); Q = 0 skips it.\n";

struct Options {
  int64_t dim = 100;
  int64_t width = 256;
  int64_t depth = 2;
  int64_t paths = 1024;
  int64_t steps = 50;
  int64_t iterations = 10;
  int64_t warmup = 2;
  int threads = 0;
  int64_t gemm_size = 2048;
  int gemm_repetitions = 5;
  int sample_repetitions = 2;
  bool help = false;
};

int64_t positive_integer(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 1) {
    throw rbsde::Error(flag + ": expected a positive integer, got '" + text + "'");
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      o.help = true;
      return o;
    }
    if (i + 1 >= argc) throw rbsde::Error(flag + ": missing value (see --help)");
    if (flag == "--gemm-repetitions" || flag == "--sample-repetitions") {  // may be 0
      const int value =
          std::string(argv[++i]) == "0" ? 0 : static_cast<int>(positive_integer(flag, argv[i]));
      (flag == "--gemm-repetitions" ? o.gemm_repetitions : o.sample_repetitions) = value;
      continue;
    }
    const int64_t value = positive_integer(flag, argv[++i]);
    if (flag == "--dim") {
      o.dim = value;
    } else if (flag == "--width") {
      o.width = value;
    } else if (flag == "--depth") {
      o.depth = value;
    } else if (flag == "--paths") {
      o.paths = value;
    } else if (flag == "--steps") {
      o.steps = value;
    } else if (flag == "--iterations") {
      o.iterations = value;
    } else if (flag == "--warmup") {
      o.warmup = value;
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(value);
    } else if (flag == "--gemm-size") {
      o.gemm_size = value;
    } else {
      throw rbsde::Error("unknown option '" + flag + "' (see --help)");
    }
  }
  return o;
}

/// --threads, else OMP_NUM_THREADS, else this node's cores shared among the ranks.
int choose_threads(const Options& o, const rbsde::Communicator& comm) {
  if (o.threads > 0) return o.threads;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / comm.size());
}

/// Best GFLOP/s of torch::mm on two size × size float32 matrices, with this process's
/// current thread count (the one training uses).
double sgemm_peak_gflops(int64_t size, int repetitions) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({size, size});
  const auto b = torch::randn({size, size});
  auto c = torch::mm(a, b);  // warm-up: thread pool, page faults of c
  double best = 0.0;
  for (int r = 0; r < repetitions; ++r) {
    const double start = MPI_Wtime();
    torch::mm_out(c, a, b);
    const double seconds = MPI_Wtime() - start;
    best = std::max(best, 2.0 * static_cast<double>(size) * size * size / seconds * 1e-9);
  }
  return best;
}

double max_over_ranks(double value, const rbsde::Communicator& comm) {
  comm.allreduce_max(&value, 1);
  return value;
}

int run(int argc, char** argv, const rbsde::Communicator& comm) {
  const Options o = parse_options(argc, argv);
  if (o.help) {
    if (comm.is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  const int threads = choose_threads(o, comm);
  // Every rank trains with `threads` threads: LibTorch's intra-op pool, OpenMP in the
  // path kernels and OpenBLAS (the OpenMP build) all follow these two settings.
  torch::set_num_threads(threads);
  omp_set_num_threads(threads);
  rbsde::keep_freed_memory();  // as the rbsde program does (runtime.hpp)

  // N(0, I) in d dimensions; everything else at the defaults of a training run.
  const auto text = [](int64_t v) { return std::to_string(v); };
  std::string yaml = "target: {name: gaussian, dim: " + text(o.dim) + "}\n";
  yaml += "sde: {steps: " + text(o.steps) + "}\n";
  yaml += "network: {width: " + text(o.width) + ", depth: " + text(o.depth) + "}\n";
  yaml += "train: {paths: " + text(o.paths) + ", iterations: " + text(o.warmup + o.iterations) +
          ", lr_schedule: constant}\n";
  const rbsde::Config config = rbsde::parse_config(yaml, {}, "<bench_train>");
  const auto target = rbsde::make_target(config.target);
  const auto schedule = rbsde::NoiseSchedule::from_config(config.sde);
  torch::manual_seed(config.train.seed);
  rbsde::BsdeModel model(target->dim(), config.network, schedule);

  // The sgemm peak, measured on rank 0 alone with the training thread count, before training
  // (the other ranks wait in the broadcast). Peak per rank × ranks is the machine's bound.
  double peak[1] = {0.0};
  if (comm.is_root() && o.gemm_repetitions > 0) {
    peak[0] = sgemm_peak_gflops(o.gemm_size, o.gemm_repetitions);
  }
  comm.allreduce_max(peak, 1);  // a broadcast from rank 0 (the others hold 0)
  // The same on every rank at once, summed: what the ranks reach together when they share
  // the node's caches, memory bandwidth and clock (a check on peak per rank × ranks).
  double peak_together[1] = {0.0};
  if (comm.size() > 1 && o.gemm_repetitions > 0) {
    comm.barrier();
    peak_together[0] = sgemm_peak_gflops(o.gemm_size, o.gemm_repetitions);
    comm.allreduce_sum(peak_together, 1);
  }

  rbsde::Trainer trainer(*target, model, config.sde, config.train, comm);
  for (int64_t k = 0; k < o.warmup; ++k) trainer.step(k);

  comm.barrier();
  std::vector<double> phase_before(rbsde::kPhaseCount);
  for (int p = 0; p < rbsde::kPhaseCount; ++p) {
    phase_before[static_cast<size_t>(p)] = trainer.timers().seconds(static_cast<rbsde::Phase>(p));
  }
  const double allreduce_before = comm.float_allreduce_seconds();
  const double start = MPI_Wtime();
  double loss = 0.0;
  std::vector<double> iteration_seconds(static_cast<size_t>(o.iterations));
  for (int64_t k = 0; k < o.iterations; ++k) {
    const double before = MPI_Wtime();
    loss = trainer.step(o.warmup + k).loss;
    iteration_seconds[static_cast<size_t>(k)] = MPI_Wtime() - before;
  }
  const double elapsed = MPI_Wtime() - start;
  const double allreduce_local = comm.float_allreduce_seconds() - allreduce_before;
  // Seconds per iteration in each training phase (kNoise to kOptimizer), slowest rank.
  std::vector<double> phase_seconds(static_cast<size_t>(rbsde::Phase::kOptimizer) + 1);
  for (size_t p = 0; p < phase_seconds.size(); ++p) {
    phase_seconds[p] = (trainer.timers().seconds(static_cast<rbsde::Phase>(p)) - phase_before[p]) /
                       static_cast<double>(o.iterations);
  }
  comm.allreduce_max(phase_seconds.data(), static_cast<int64_t>(phase_seconds.size()));
  const double iterations = static_cast<double>(o.iterations);
  const double s_per_iter = max_over_ranks(elapsed, comm) / iterations;
  // The fastest iteration (each the slowest rank's time): robust to another process taking a
  // core for part of the run, which the mean is not.
  comm.allreduce_max(iteration_seconds.data(), o.iterations);
  const double s_min_iter = *std::min_element(iteration_seconds.begin(), iteration_seconds.end());
  // Time inside MPI_Allreduce includes waiting for the slowest rank to arrive.
  const double allreduce_per_iter = max_over_ranks(allreduce_local, comm) / iterations;

  // The same all-reduce alone, every rank arriving together: its pure communication cost.
  const auto parameters = model->parameters();
  int64_t gradient_count = 0;
  for (const auto& p : parameters) gradient_count += p.numel();
  auto buffer = torch::zeros({gradient_count});
  constexpr int kAlone = 20;
  double alone = 0.0;
  for (int r = 0; r < kAlone; ++r) {
    comm.barrier();
    const double before = comm.float_allreduce_seconds();
    comm.allreduce_sum(buffer.data_ptr<float>(), gradient_count);
    alone += comm.float_allreduce_seconds() - before;
  }
  const double allreduce_alone = max_over_ranks(alone, comm) / kAlone;

  // Sampling: this rank's share of the M paths simulated by the trained network, as the
  // sampler does it (X and the log weights in float64, the network in float32); the best of
  // the repetitions, each the slowest rank's time.
  const int64_t rows_per_rank = o.paths / comm.size();
  const rbsde::TimeGrid grid(schedule, o.steps);
  double sample_seconds = NAN;
  for (int r = 0; r < o.sample_repetitions; ++r) {
    comm.barrier();
    const double before = MPI_Wtime();
    rbsde::simulate_paths(*target, model, grid, {config.sample.seed, rbsde::NoiseStream::kSampling},
                          comm.rank() * rows_per_rank, rows_per_rank);
    const double seconds = max_over_ranks(MPI_Wtime() - before, comm);
    sample_seconds = r == 0 ? seconds : std::min(sample_seconds, seconds);
  }

  // Matrix-product FLOPs per iteration over all ranks (rows = path-steps; the time-feature
  // part of the first layer, [N, 1 + 2F] × [1 + 2F, width], is negligible and left out).
  const double d = static_cast<double>(o.dim), w = static_cast<double>(o.width);
  const double rows = static_cast<double>(o.paths) * static_cast<double>(o.steps);
  const double forward = 2.0 * rows * (d * w + static_cast<double>(o.depth - 1) * w * w + w * d);
  // Pass 2 computes every weight gradient and every input gradient except the first layer's
  // (the input x needs none): 2 × forward − 2·rows·d·w.
  const double flops = forward + (2.0 * forward - 2.0 * rows * d * w);
  const double standard_flops = 3.0 * forward;
  const double sample_rows = static_cast<double>(rows_per_rank * comm.size()) * o.steps;
  const double sample_gflops = forward / rows * sample_rows / sample_seconds * 1e-9;
  const double gflops = flops / s_per_iter * 1e-9;
  // NaN fractions when the peak was not measured (--gemm-repetitions 0).
  const double peak_total = o.gemm_repetitions > 0 ? peak[0] * comm.size() : NAN;

  if (comm.is_root()) {
    std::printf(
        "bench-train np=%d threads=%d d=%lld width=%lld depth=%lld paths=%lld steps=%lld "
        "iterations=%lld warmup=%lld s_per_iter=%.5f s_min_iter=%.5f path_steps_per_s=%.4g "
        "allreduce_s_per_iter=%.3g allreduce_share=%.4f allreduce_alone_s=%.3g "
        "gradient_floats=%lld gflop_per_iter=%.4f gflop_per_iter_3x_forward=%.4f gflops=%.2f "
        "gflops_3x_forward=%.2f sgemm_peak_gflops_per_rank=%.2f sgemm_peak_gflops=%.2f "
        "peak_fraction=%.4f peak_fraction_3x_forward=%.4f peak_fraction_min_iter=%.4f "
        "sgemm_peak_all_ranks_together=%.2f sample_s=%.5f sample_path_steps_per_s=%.4g "
        "sample_gflops=%.2f sample_peak_fraction=%.4f",
        comm.size(), threads, static_cast<long long>(o.dim), static_cast<long long>(o.width),
        static_cast<long long>(o.depth), static_cast<long long>(o.paths),
        static_cast<long long>(o.steps), static_cast<long long>(o.iterations),
        static_cast<long long>(o.warmup), s_per_iter, s_min_iter, rows / s_per_iter,
        allreduce_per_iter, allreduce_per_iter / s_per_iter, allreduce_alone,
        static_cast<long long>(gradient_count), flops * 1e-9, standard_flops * 1e-9, gflops,
        standard_flops / s_per_iter * 1e-9, peak[0], peak_total, gflops / peak_total,
        standard_flops / s_per_iter * 1e-9 / peak_total, flops / s_min_iter * 1e-9 / peak_total,
        comm.size() > 1 ? peak_together[0] : peak[0], sample_seconds, sample_rows / sample_seconds,
        sample_gflops, sample_gflops / peak_total);
    // The phase shares of the training step (the rest of it is the loss, the constant update
    // and what the phases leave out).
    for (size_t p = 0; p < phase_seconds.size(); ++p) {
      std::printf(" share_%s=%.4f", rbsde::phase_name(static_cast<rbsde::Phase>(p)),
                  phase_seconds[p] / s_per_iter);
    }
    std::printf(" loss=%.4g\n", loss);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int status = 1;
  {
    rbsde::Communicator comm(MPI_COMM_WORLD);
    try {
      status = run(argc, argv, comm);
    } catch (const std::exception& e) {
      // Options and set-up are identical on every rank, so every rank fails alike; a
      // failure during training (one rank only) must not leave the others waiting.
      std::fprintf(stderr, "rbsde_bench_train: error on rank %d: %s\n", comm.rank(), e.what());
      std::fflush(stderr);
      MPI_Abort(comm.get(), 1);
    }
  }
  MPI_Finalize();
  return status;
}
