#include "rbsde/bsde/smc.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/bsde/model.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/resampling.hpp"
#include "rbsde/error.hpp"

namespace rbsde {

namespace {

/// The moves of a run key the noise's steps 0, 1, …; the resampling uniform of temperature t
/// step kResamplingStep + t, the start kInitialStep. hmc_step draws its accept uniforms with
/// fill_uniform at the move's step, as resampling does at particle 0, so the moves' steps must
/// stay below kResamplingStep: at most kSmcMaxMoves × kSmcMaxTemperatures of them.
constexpr uint32_t kResamplingStep = 1u << 31;
static_assert(kSmcMaxMoves * kSmcMaxTemperatures <= int64_t{kResamplingStep},
              "the moves' noise steps would reach the resampling steps");
static_assert(int64_t{kResamplingStep} + kSmcMaxTemperatures < int64_t{kInitialStep},
              "the resampling steps would reach the initial step");
/// Bisection steps for the next temperature: the increment to 2^-60 of the interval.
constexpr int kBisections = 60;

/// ℓ = log π̃ − log N(0, I) at x [B, d] without a graph; NaN (no density) counts as −∞.
torch::Tensor log_ratio(const Target& target, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const auto ratio = target.log_prob(x) - BsdeModelImpl::log_reference(x);
  return torch::where(torch::isnan(ratio), torch::full_like(ratio, -INFINITY), ratio);
}

/// The log incremental weights δ ℓ (−∞ stays −∞, also for δ = 0).
torch::Tensor increment(const torch::Tensor& ratio, double delta) {
  return torch::where(torch::isinf(ratio) & (ratio < 0), ratio, delta * ratio);
}

/// Over all ranks: the maximum m of log weights a and the sums Σ e^{a−m}, Σ e^{2(a−m)}.
struct WeightSums {
  double max = -INFINITY, sum = 0.0, sum_of_squares = 0.0;
  double ess() const { return sum * sum / sum_of_squares; }
};
WeightSums weight_sums(const torch::Tensor& log_weights, const Communicator& comm) {
  WeightSums w;
  w.max = log_weights.numel() > 0 ? log_weights.max().item<double>() : -INFINITY;
  comm.allreduce_max(&w.max, 1);
  double sums[2] = {0.0, 0.0};
  if (std::isfinite(w.max)) {
    const auto shifted = (log_weights - w.max).exp();
    sums[0] = shifted.sum().item<double>();
    sums[1] = shifted.pow(2).sum().item<double>();
  }
  comm.allreduce_sum(sums, 2);
  w.sum = sums[0];
  w.sum_of_squares = sums[1];
  return w;
}

/// Systematic resampling of the particles x [m, d] with log weights over all ranks into the
/// rows [mine.begin, mine.end) of the resampled set. The offspring counts come from exact
/// integer weights; the particles travel by one all-gather of M (d + 1) doubles.
torch::Tensor resample(const torch::Tensor& x, const torch::Tensor& log_weights, double max,
                       int64_t particles, PathRange mine, double u, const Communicator& comm) {
  const int64_t m = mine.count(), d = x.size(1);
  const auto weights = log_weights.contiguous();
  const auto q = fixed_point_weights(weights.data_ptr<double>(), m, max, particles);
  int64_t my_total = 0;
  for (const int64_t qi : q) my_total += qi;
  const int64_t prefix = comm.exscan_sum(my_total);
  const int64_t total = comm.allreduce_sum(my_total);
  // Each rank's rows, padded to the largest share: [offspring, x].
  const int64_t width = (particles + comm.size() - 1) / comm.size();
  std::vector<double> rows(width * (d + 1), 0.0);
  const auto xc = x.contiguous();
  int64_t running = prefix, position = systematic_position(particles, running, total, u);
  for (int64_t i = 0; i < m; ++i) {
    running += q[i];
    const int64_t next = systematic_position(particles, running, total, u);
    rows[i * (d + 1)] = static_cast<double>(next - position);
    std::copy_n(xc.data_ptr<double>() + i * d, d, rows.data() + i * (d + 1) + 1);
    position = next;
  }
  const std::vector<double> all = comm.allgather(rows.data(), width * (d + 1));
  auto resampled = torch::empty({m, d}, torch::kFloat64);
  int64_t k = 0;  // global index of the next offspring
  for (int r = 0; r < comm.size() && k < mine.end; ++r) {
    const PathRange theirs = path_range(particles, r, comm.size());
    for (int64_t i = 0; i < theirs.count() && k < mine.end; ++i) {
      const double* row = all.data() + (r * width + i) * (d + 1);
      for (auto c = static_cast<int64_t>(row[0]); c > 0 && k < mine.end; --c, ++k) {
        if (k >= mine.begin)
          std::copy_n(row + 1, d, resampled.data_ptr<double>() + (k - mine.begin) * d);
      }
    }
  }
  return resampled;
}

/// Σ x and Σ x² of each coordinate over all ranks' particles x [m, d]: [2 d].
torch::Tensor global_sums(const torch::Tensor& x, const Communicator& comm) {
  auto sums = torch::cat({x.sum(0), x.pow(2).sum(0)}).contiguous();
  comm.allreduce_sum(sums.data_ptr<double>(), sums.numel());
  return sums;
}

/// The variance of each coordinate over all ranks' particles; 1 where it is not positive.
torch::Tensor particle_variance(const torch::Tensor& x, int64_t particles,
                                const Communicator& comm) {
  const int64_t d = x.size(1);
  const auto sums = global_sums(x, comm);
  const auto mean = sums.slice(0, 0, d) / static_cast<double>(particles);
  const auto variance = sums.slice(0, d, 2 * d) / static_cast<double>(particles) - mean.pow(2);
  return torch::where(torch::isfinite(variance) & (variance > 0), variance,
                      torch::ones_like(variance));
}

/// One run's log 𝒵̂ (of `target` itself), its final particles, and what it took.
struct Run {
  double log_z = 0.0;
  torch::Tensor x;
  int64_t temperatures = 0, evaluations = 0, accepted = 0, proposed = 0;
  double step_size = 0.0;
};

Run smc_run(const Target& target, const ReferenceConfig& reference, int64_t run,
            const Communicator& comm) {
  const int64_t d = target.dim(), particles = reference.particles;
  const PathRange mine = path_range(particles, comm.rank(), comm.size());
  // Run r draws from the epoch r of reference.seed's SMC stream. Keying by epoch rather than
  // by the seed reference.seed + r keeps the runs of different seeds apart: with seed + r, run
  // 1 of seed s would repeat run 0 of seed s + 1. reference.runs <= 10^6 fits the epoch.
  const NoiseKey key{reference.seed, NoiseStream::kSmc, static_cast<uint32_t>(run)};
  Run result;
  comm.all_or_none([&] {
    try {
      result.x = torch::empty({mine.count(), d}, torch::kFloat64);
    } catch (const std::exception&) {  // std::bad_alloc or LibTorch's allocation error
      throw Error("out of memory for the SMC particles: reference.particles = " +
                  std::to_string(particles) + " in d = " + std::to_string(d) +
                  "; lower reference.particles");
    }
  });
  fill_normal(result.x.data_ptr<double>(), mine.count(), d, key, mine.begin, kInitialStep);
  double lambda = 0.0, step_size = initial_step_size(d);
  uint32_t step = 0;  // < reference.moves × kSmcMaxTemperatures <= kResamplingStep
  while (lambda < 1.0) {
    const auto ratio = log_ratio(target, result.x);
    result.evaluations += particles;
    // The particles with a density at all set the ESS to keep.
    double counts[2] = {static_cast<double>(torch::isfinite(ratio).sum().item<int64_t>()),
                        static_cast<double>(torch::isposinf(ratio).sum().item<int64_t>())};
    comm.allreduce_sum(counts, 2);
    const double finite = counts[0];
    if (counts[1] > 0.0) {
      throw Error("SMC reference: log π̃ is +∞ at " + std::to_string(std::llround(counts[1])) +
                  " particles at temperature " + std::to_string(lambda) +
                  "; the target's log density must be finite or −∞");
    }
    if (finite == 0.0) {
      throw Error("SMC reference: log π̃ is −∞ or NaN at every particle at temperature " +
                  std::to_string(lambda) + "; check the target near the reference N(0, I)" +
                  (target.preconditioned() ? " of the preconditioned coordinates" : ""));
    }
    const double wanted = reference.ess * finite;
    double delta = 1.0 - lambda;
    if (weight_sums(increment(ratio, delta), comm).ess() < wanted) {
      double low = 0.0, high = delta;
      for (int b = 0; b < kBisections; ++b) {
        const double middle = 0.5 * (low + high);
        (weight_sums(increment(ratio, middle), comm).ess() >= wanted ? low : high) = middle;
      }
      delta = std::max(low, std::numeric_limits<double>::min());
    }
    if (result.temperatures == kSmcMaxTemperatures) {
      throw Error("SMC reference: still at temperature " + std::to_string(lambda) + " after " +
                  std::to_string(kSmcMaxTemperatures) +
                  " steps; the target is too far from the reference N(0, I): precondition it "
                  "(precondition.kind) or lower reference.ess");
    }
    const auto log_weights = increment(ratio, delta);
    const WeightSums w = weight_sums(log_weights, comm);
    result.log_z += w.max + std::log(w.sum / static_cast<double>(particles));
    lambda = delta >= 1.0 - lambda ? 1.0 : lambda + delta;
    double u = 0.0;
    fill_uniform(&u, 1, key, 0, kResamplingStep + static_cast<uint32_t>(result.temperatures));
    result.x = resample(result.x, log_weights, w.max, particles, mine, u, comm);
    ++result.temperatures;

    const TemperedTarget tempered(target, lambda);
    const auto preconditioner = particle_variance(result.x, particles, comm);
    Chains chains = start_chains(tempered, result.x, mine.begin);
    result.evaluations += particles;
    for (int64_t move = 0; move < reference.moves; ++move) {
      const auto accepted = hmc_step(tempered, chains, step_size, preconditioner, 1, key, step++);
      double count = static_cast<double>(accepted.sum().item<int64_t>());
      comm.allreduce_sum(&count, 1);
      result.accepted += static_cast<int64_t>(count);
      result.proposed += particles;
      result.evaluations += particles;
      step_size *= std::exp(count / static_cast<double>(particles) - kMalaTargetAcceptance);
    }
    result.x = chains.x;
  }
  result.step_size = step_size;
  return result;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

torch::Tensor TemperedTarget::log_prob(const torch::Tensor& x) const {
  if (lambda_ == 1.0) return target_.log_prob(x);
  const auto reference = BsdeModelImpl::log_reference(x);
  if (lambda_ == 0.0) return reference;
  return lambda_ * target_.log_prob(x) + (1.0 - lambda_) * reference;
}

LogEvidence combine_log_z_runs(const std::vector<double>& log_z_runs) {
  LogEvidence result;
  if (log_z_runs.empty()) return result;
  const double max = *std::max_element(log_z_runs.begin(), log_z_runs.end());
  if (!std::isfinite(max)) {
    result.log_z = max;
    return result;
  }
  const auto runs = static_cast<double>(log_z_runs.size());
  double sum = 0.0;
  for (const double z : log_z_runs) sum += std::exp(z - max);
  result.log_z = max + std::log(sum / runs);
  if (log_z_runs.size() > 1) {
    // The ratios 𝒵̂_r / 𝒵̄ have mean 1; the standard error of their mean is that of 𝒵̄ / 𝒵̄,
    // and to first order (the delta method) that of log 𝒵̄.
    double spread = 0.0;
    for (const double z : log_z_runs) spread += std::pow(std::exp(z - result.log_z) - 1.0, 2);
    result.log_z_stderr = std::sqrt(spread / (runs - 1.0) / runs);
  }
  return result;
}

ReferenceMoments smc_reference(const Target& target, const ReferenceConfig& reference,
                               const Communicator& comm) {
  if (reference.moves > kSmcMaxMoves) {
    throw CollectiveError(
        "reference.moves = " + std::to_string(reference.moves) +
        " is too many for the SMC reference: a run of up to " +
        std::to_string(kSmcMaxTemperatures) +
        " temperatures would count more than 2^31 noise steps; set reference.moves <= " +
        std::to_string(kSmcMaxMoves));
  }
  const int64_t d = target.dim(), particles = reference.particles;
  const AffineTarget* affine = target.preconditioned();
  ReferenceMoments result;
  result.method = "smc";
  result.chains = particles;
  result.steps = reference.moves;
  // Per run: Σ x and Σ x² of the final particles in the configured coordinates.
  auto means = torch::zeros({reference.runs, d}, torch::kFloat64);
  auto squares = torch::zeros({d}, torch::kFloat64);
  int64_t accepted = 0, proposed = 0;
  for (int64_t run = 0; run < reference.runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const Run r = smc_run(target, reference, run, comm);
    const auto x = affine ? affine->to_target_space(r.x) : r.x;
    const auto sums = global_sums(x, comm);
    means[run].copy_(sums.slice(0, 0, d) / static_cast<double>(particles));
    squares += sums.slice(0, d, 2 * d);
    const double log_z = r.log_z + (affine ? affine->map().log_det() : 0.0);
    result.log_z_runs.push_back(log_z);
    result.temperatures += r.temperatures;
    result.evaluations += r.evaluations;
    result.step_size = r.step_size;
    accepted += r.accepted;
    proposed += r.proposed;
    if (comm.is_root()) {
      std::printf("smc: run %lld/%lld: %lld temperatures, log Z %.4f, acceptance %.3f, %.1f s\n",
                  static_cast<long long>(run + 1), static_cast<long long>(reference.runs),
                  static_cast<long long>(r.temperatures), log_z,
                  static_cast<double>(r.accepted) / static_cast<double>(r.proposed),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
    }
  }
  const auto runs = static_cast<double>(reference.runs);
  const auto mean = means.mean(0);
  result.mean = to_vector(mean);
  result.sd = to_vector(
      (squares / (runs * static_cast<double>(particles)) - mean.pow(2)).clamp_min(0.0).sqrt());
  result.mean_stderr =
      to_vector(reference.runs > 1 ? means.std(0, /*unbiased=*/true) / std::sqrt(runs)
                                   : torch::full({d}, NAN, torch::kFloat64));
  const LogEvidence evidence = combine_log_z_runs(result.log_z_runs);
  result.log_z = evidence.log_z;
  result.log_z_stderr = evidence.log_z_stderr;
  result.acceptance_rate = static_cast<double>(accepted) / static_cast<double>(proposed);
  return result;
}

}  // namespace rbsde
