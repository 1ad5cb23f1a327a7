#include "rbsde/io/posterior.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/config_file.hpp"

namespace rbsde {

namespace {

/// Rounds of `batch` rows that cover the largest rank's share of `total` rows: the same
/// number on every rank, so that every collective read and write is matched.
int64_t rounds_for(int64_t total, int64_t batch, const Communicator& comm) {
  const int64_t largest_share = (total + comm.size() - 1) / comm.size();
  return (largest_share + batch - 1) / batch;
}

/// Split R̂ (Gelman et al., BDA3 §11.4) over J half-chains of h iterations from `sums` [3, d]
/// (Σ of their means, squared means and variances, per coordinate): W the mean within-variance,
/// B/h the variance of the half-chain means, var⁺ = (h − 1)/h W + B/h, R̂ = √(var⁺ / W). The
/// effective sample size J var⁺ / (B/h) counts each half-chain's mean as one batch mean (at
/// most J h); it means something once R̂ is near 1. The largest R̂ and the smallest ESS over
/// the coordinates.
std::pair<double, double> split_rhat_and_ess(const torch::Tensor& sums, int64_t half_chains,
                                             int64_t half) {
  const auto j = static_cast<double>(half_chains);
  const auto h = static_cast<double>(half);
  const auto mean = sums[0] / j;
  const auto between = (sums[1] - j * mean.pow(2)) / (j - 1.0);
  const auto within = sums[2] / j;
  const auto pooled = (h - 1.0) / h * within + between;
  return {(pooled / within).sqrt().max().item<double>(),
          (j * pooled / between).clamp_max(j * h).min().item<double>()};
}

}  // namespace

void resample_into(OutputFile& out, const SampleConfig& sample, int64_t dim, double max_log_weight,
                   const Communicator& comm) {
  if (!std::isfinite(max_log_weight)) {
    throw Error(
        "no sample path has a finite log weight, so there is nothing to resample: "
        "check the target's log density, or set sample.resample: false");
  }
  const int64_t count = sample.count;
  const PathRange mine = path_range(count, comm.rank(), comm.size());
  const int64_t rounds = rounds_for(count, sample.batch, comm);
  const int64_t rows_per_read = std::min(sample.batch, mine.count());
  std::vector<float> rows_in(rows_per_read * dim);
  std::vector<double> log_weights(rows_per_read);
  out.create_resampled();

  // Pass 1: this rank's fixed-point total; then its prefix over the ranks below.
  int64_t my_total = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t rows = std::min(mine.end, begin + sample.batch) - begin;
    out.read_log_weights(begin, rows, log_weights.data());
    for (const int64_t q : fixed_point_weights(log_weights.data(), rows, max_log_weight, count)) {
      my_total += q;
    }
  }
  const int64_t prefix = comm.exscan_sum(my_total);
  const int64_t total = comm.allreduce_sum(my_total);
  double u = 0.0;
  fill_uniform(&u, 1, NoiseKey{sample.seed, NoiseStream::kResampling, 0}, 0, 0);

  // Pass 2: each path's offspring, written in collective rounds of at most `capacity` rows
  // (the same on every rank).
  const int64_t capacity = std::min(sample.batch, count);
  std::vector<float> rows_out(capacity * dim);
  std::vector<int64_t> index(capacity);
  std::vector<double> source_log_weights(capacity);
  int64_t running = prefix;  // fixed-point weight of all paths before the current one
  int64_t position = systematic_position(count, running, total, u);
  int64_t written = position;  // next row of /resampled
  int64_t buffered = 0;
  const auto flush = [&]() {
    out.write_resampled(written, buffered, rows_out.data(), index.data(),
                        source_log_weights.data());
    written += buffered;
    buffered = 0;
  };
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t rows = std::min(mine.end, begin + sample.batch) - begin;
    out.read_samples(begin, rows, rows_in.data(), log_weights.data());
    const auto q = fixed_point_weights(log_weights.data(), rows, max_log_weight, count);
    std::vector<int64_t> offspring(rows);
    int64_t produced = 0;
    for (int64_t i = 0; i < rows; ++i) {
      running += q[i];
      const int64_t next = systematic_position(count, running, total, u);
      offspring[i] = next - position;
      position = next;
      produced += offspring[i];
    }
    // Every rank writes as often as the rank with the most offspring in this round.
    double writes = static_cast<double>((produced + capacity - 1) / capacity);
    comm.allreduce_max(&writes, 1);
    int64_t done_writes = 0;
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t k = 0; k < offspring[i]; ++k) {
        std::copy_n(rows_in.data() + i * dim, dim, rows_out.data() + buffered * dim);
        source_log_weights[buffered] = log_weights[i];
        index[buffered++] = begin + i;
        if (buffered == capacity) {
          flush();
          ++done_writes;
        }
      }
    }
    if (buffered > 0) {
      flush();
      ++done_writes;
    }
    for (; done_writes < static_cast<int64_t>(writes); ++done_writes) flush();  // empty: collective
  }
}

int64_t hmc_iterations(const Config& config, double pareto_k, double threshold) {
  if (config.sample.hmc_steps != kHmcStepsAuto) return config.sample.hmc_steps;
  const bool unreliable = !(pareto_k <= threshold);
  return config.sample.resample && unreliable && is_posterior_target(config.target.name)
             ? kAutoHmcSteps
             : 0;
}

Refinement refine_into(OutputFile& out, const Target& target, const SampleConfig& sample,
                       int64_t iterations, bool extend, bool from_proposal,
                       const std::vector<double>& variance, const ModelProposal& proposal,
                       const Communicator& comm) {
  const int64_t d = target.dim();
  const int64_t model_moves = sample.model_moves;
  auto preconditioner = torch::tensor(variance, torch::kFloat64);
  preconditioner = torch::where(torch::isfinite(preconditioner) & (preconditioner > 0),
                                preconditioner, torch::ones_like(preconditioner));
  const AffineTarget* affine = target.preconditioned();
  const PathRange mine = path_range(sample.count, comm.rank(), comm.size());
  const int64_t rounds = rounds_for(sample.count, sample.batch, comm);
  const NoiseKey key{sample.seed, NoiseStream::kMcmc, 0};
  const NoiseKey length_key{sample.seed, NoiseStream::kMcmc, 1};
  const NoiseKey step_key{sample.seed, NoiseStream::kMcmc, 2};
  const bool adapt = sample.hmc_step_size == 0.0;
  const int64_t adapt_steps = adapt ? iterations / 2 : 0;
  const int64_t metric_step = adapt_steps / 2;  // the preconditioner is measured after it
  const double acceptance = target_acceptance(sample.leapfrog_steps);
  StepSizeAdapter adapter(initial_step_size(d), metric_step > 0 ? metric_step : adapt_steps,
                          acceptance);
  double step_size = adapt ? adapter.current() : sample.hmc_step_size;
  // All ranks' chains of the first round, for the adaptation's acceptance fraction.
  const int64_t first_round_chains = comm.allreduce_sum(std::min(mine.count(), sample.batch));
  // After the adaptation the iterations come in blocks of `block`, each split in two halves of
  // `half`: per coordinate, the sums over the half-chains of the last block of their means,
  // squared means and variances give the split R̂. With `extend`, the first batch's chains
  // run block after block, up to kMaxRefinementBlocks, until their R̂ is below kMaxSplitRhat;
  // every later batch runs as many iterations.
  const int64_t block = iterations - adapt_steps;
  const int64_t half = block / 2;
  int64_t total = iterations;
  const int64_t progress_every = std::max<int64_t>(1, iterations / 10);
  const auto split_sums = [&](const torch::Tensor& moments) {
    auto sums = torch::zeros({3, d}, torch::kFloat64);
    const auto h = static_cast<double>(half);
    for (const int64_t which : {0, 2}) {
      const auto mean = moments[which] / h;
      sums[0] += mean.sum(0);
      sums[1] += mean.pow(2).sum(0);
      sums[2] += ((moments[which + 1] - h * mean.pow(2)) / (h - 1.0)).sum(0);
    }
    return sums;
  };
  auto diagnostic_sums = torch::zeros({3, d}, torch::kFloat64);
  out.create_refined();
  if (comm.is_root()) {
    std::printf(
        "refine: %lld chains from the %s, %lld iterations (the first %lld adapt) of 1 to %lld "
        "leapfrog steps; each chain's step size log-uniform on [%g, 1] x the step size; %s\n",
        static_cast<long long>(sample.count),
        from_proposal ? "proposal's draws" : "resampled draws", static_cast<long long>(iterations),
        static_cast<long long>(adapt_steps), static_cast<long long>(2 * sample.leapfrog_steps - 1),
        sample.hmc_smallest_step,
        model_moves > 0
            ? ("a path of the model proposed every " + std::to_string(model_moves) + " iterations")
                  .c_str()
            : "no model moves");
    std::fflush(stdout);
  }
  std::vector<float> rows(std::min(sample.batch, mine.count()) * d);
  std::vector<double> log_weights(from_proposal ? std::min(sample.batch, mine.count()) : 0);
  int64_t accepted = 0, proposals = 0, model_accepted = 0, model_proposals = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t n = std::min(mine.end, begin + sample.batch) - begin;
    if (from_proposal) {
      out.read_samples(begin, n, rows.data(), log_weights.data());
    } else {
      out.read_resampled(begin, n, rows.data());
    }
    // The rows hold x; the chains run where the sampler did, in x̂ = L⁻¹ (x − m).
    const auto x = torch::from_blob(rows.data(), {n, d}, torch::kFloat32);
    // The target's failures (a NaN gradient) may strike some ranks only: reported once.
    Chains chains;
    comm.all_or_none(
        [&] { chains = start_chains(target, affine ? affine->to_sampler_space(x) : x, begin); });
    auto moments = torch::zeros({4, n, d}, torch::kFloat64);  // Σx, Σx² of each half
    for (int64_t t = 0; t < total; ++t) {
      double u = 0.0;
      fill_uniform(&u, 1, length_key, 0, static_cast<uint32_t>(t));
      const int64_t leapfrog_steps =
          1 + static_cast<int64_t>(u * static_cast<double>(2 * sample.leapfrog_steps - 1));
      const auto step_scale = sample.hmc_smallest_step < 1.0
                                  ? step_size_jitter(sample.hmc_smallest_step, n, step_key, begin,
                                                     static_cast<uint32_t>(t))
                                  : torch::Tensor();
      torch::Tensor accept;
      comm.all_or_none([&] {
        accept = hmc_step(target, chains, step_size, preconditioner, leapfrog_steps, key,
                          static_cast<uint32_t>(t), step_scale);
      });
      const int64_t accepted_now = accept.sum().item<int64_t>();
      if (model_moves > 0 && (t + 1) % model_moves == 0) {
        comm.all_or_none([&] {
          model_accepted += independence_step(target, proposal, chains, sample.seed,
                                              static_cast<uint32_t>(t / model_moves))
                                .sum()
                                .item<int64_t>();
        });
        model_proposals += n;
      }
      if (comm.is_root() && (t + 1) % progress_every == 0) {
        std::printf("refine %6lld/%lld  batch %lld/%lld  step size %.4g%s\n",
                    static_cast<long long>(t + 1), static_cast<long long>(total),
                    static_cast<long long>(round + 1), static_cast<long long>(rounds), step_size,
                    round == 0 && t < adapt_steps ? "  (adapting the step size and metric)" : "");
        std::fflush(stdout);
      }
      if (round == 0 && t < adapt_steps) {
        double fraction = static_cast<double>(accepted_now);
        comm.allreduce_sum(&fraction, 1);
        adapter.update(fraction / static_cast<double>(first_round_chains));
        if (t + 1 == metric_step) {
          // The chains' variance over all ranks becomes the preconditioner; ε starts afresh.
          auto sums = torch::stack({chains.x.sum(0), chains.x.pow(2).sum(0)}).contiguous();
          comm.allreduce_sum(sums.data_ptr<double>(), sums.numel());
          const auto count = static_cast<double>(first_round_chains);
          const auto measured = sums[1] / count - (sums[0] / count).pow(2);
          preconditioner =
              torch::where(torch::isfinite(measured) & (measured > 0), measured, preconditioner);
          adapter =
              StepSizeAdapter(adapter.final_step_size(), adapt_steps - metric_step, acceptance);
          step_size = adapter.current();
        } else {
          step_size = t + 1 < adapt_steps ? adapter.current() : adapter.final_step_size();
        }
        continue;
      }
      accepted += accepted_now;
      proposals += n;
      if (half < 2) continue;
      const int64_t kept = (t - adapt_steps) % block;
      if (kept == 0) moments.zero_();
      if (kept < 2 * half) {
        const int64_t which = kept < half ? 0 : 2;
        moments[which] += chains.x;
        moments[which + 1] += chains.x.pow(2);
      }
      const int64_t blocks = (t + 1 - adapt_steps) / block;
      if (extend && round == 0 && t + 1 == total && blocks < kMaxRefinementBlocks) {
        auto sums = split_sums(moments).contiguous();
        comm.allreduce_sum(sums.data_ptr<double>(), sums.numel());
        const double rhat = split_rhat_and_ess(sums, 2 * first_round_chains, half).first;
        if (!(rhat < kMaxSplitRhat)) {
          total += block;
          if (comm.is_root()) {
            std::printf("refine: split R^ %.4f over the last %lld iterations: %lld more\n", rhat,
                        static_cast<long long>(block), static_cast<long long>(block));
            std::fflush(stdout);
          }
        }
      }
    }
    if (half >= 2 && n > 0) diagnostic_sums += split_sums(moments);
    const auto refined =
        (affine ? affine->to_target_space(chains.x) : chains.x).to(torch::kFloat32).contiguous();
    out.write_refined(begin, n, refined.data_ptr<float>());
  }
  double totals[4] = {static_cast<double>(accepted), static_cast<double>(proposals),
                      static_cast<double>(model_accepted), static_cast<double>(model_proposals)};
  comm.allreduce_sum(totals, 4);
  comm.allreduce_sum(diagnostic_sums.data_ptr<double>(), diagnostic_sums.numel());
  Refinement refinement;
  refinement.iterations = total;
  refinement.leapfrog_steps = sample.leapfrog_steps;
  refinement.from_proposal = from_proposal;
  refinement.acceptance_rate = totals[0] / totals[1];
  refinement.step_size = step_size;
  refinement.model_moves = model_moves;
  refinement.model_acceptance_rate =
      totals[3] > 0 ? totals[2] / totals[3] : std::numeric_limits<double>::quiet_NaN();
  refinement.rhat = refinement.ess = std::numeric_limits<double>::quiet_NaN();
  if (half >= 2) {
    std::tie(refinement.rhat, refinement.ess) =
        split_rhat_and_ess(diagnostic_sums, 2 * sample.count, half);
  }
  out.write_refined_attributes(refinement);
  return refinement;
}

std::vector<std::string> posterior_names(const Target& target, const TargetConfig& config) {
  const auto* module = dynamic_cast<const TorchScriptTarget*>(&target);
  const bool constrained = module && module->has_constrain();
  std::vector<std::string> names = config.names;
  if (names.empty() && module) names = module->parameter_names();
  if (names.empty()) {
    if (constrained) {
      throw Error("target.names: the module '" + config.module +
                  "' has constrain(x) but no `names`; give the parameter names in target.names");
    }
    for (int64_t j = 1; j <= target.dim(); ++j) names.push_back("x[" + std::to_string(j) + "]");
  }
  const int64_t expected = module ? module->parameter_count() : target.dim();
  if (static_cast<int64_t>(names.size()) != expected) {
    throw Error("target.names: " + std::to_string(names.size()) + " names for " +
                std::to_string(expected) +
                (constrained ? " parameters (the outputs of the module's constrain(x))"
                             : " coordinates (target.dim)"));
  }
  return names;
}

std::vector<PosteriorVariable> posterior_variables(const std::vector<std::string>& names) {
  // base[i] → (base, i) for a positive integer i, else (name, 0).
  const auto split = [](const std::string& name) -> std::pair<std::string, int64_t> {
    const size_t open = name.find('[');
    if (open == std::string::npos || open == 0 || name.back() != ']') return {name, 0};
    const std::string index = name.substr(open + 1, name.size() - open - 2);
    if (index.empty() || index.size() > 12 ||
        index.find_first_not_of("0123456789") != std::string::npos || index[0] == '0') {
      return {name, 0};
    }
    return {name.substr(0, open), std::stoll(index)};
  };
  const std::set<std::string> all(names.begin(), names.end());
  std::vector<PosteriorVariable> variables;
  for (size_t i = 0; i < names.size();) {
    const auto [base, index] = split(names[i]);
    size_t end = i + 1;  // the run base[1], base[2], … starting at i
    if (index == 1 && !all.count(base)) {
      while (end < names.size() && split(names[end]) == std::pair{base, int64_t(end - i + 1)}) {
        ++end;
      }
      variables.push_back({base, static_cast<int64_t>(end - i)});
    } else {
      variables.push_back({names[i], 0});
    }
    i = end;
  }
  return variables;
}

void posterior_into(OutputFile& out, const Target& target, const Config& config, bool refined,
                    const Communicator& comm) {
  const SampleConfig& sample = config.sample;
  const int64_t d = target.dim();
  const auto* module = dynamic_cast<const TorchScriptTarget*>(&target);
  const bool constrained = module && module->has_constrain();
  const std::vector<PosteriorVariable> variables =
      posterior_variables(posterior_names(target, config.target));
  if (static_cast<int64_t>(variables.size()) > kMaxPosteriorVariables) {
    if (comm.is_root()) {
      std::printf(
          "note: no /posterior (InferenceData) for %zu variables, more than the %lld this HDF5 "
          "layout takes (name vector parameters name[1], name[2], … to make them one variable "
          "each); the draws are in /%s/samples\n",
          variables.size(), static_cast<long long>(kMaxPosteriorVariables),
          refined ? "refined" : "resampled");
      std::fflush(stdout);
    }
    return;
  }
  out.create_posterior(variables);
  const PathRange mine = path_range(sample.count, comm.rank(), comm.size());
  const int64_t rounds = rounds_for(sample.count, sample.batch, comm);
  std::vector<float> rows(std::min(sample.batch, mine.count()) * d);
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t n = std::min(mine.end, begin + sample.batch) - begin;
    if (refined) {
      out.read_refined(begin, n, rows.data());
    } else {
      out.read_resampled(begin, n, rows.data());
    }
    auto draws = torch::from_blob(rows.data(), {n, d}, torch::kFloat32).to(torch::kFloat64);
    if (constrained && n > 0) draws = module->constrain(draws);
    draws = draws.contiguous();
    out.write_posterior(begin, n, draws.data_ptr<double>());
  }
}

}  // namespace rbsde
