#include "rbsde/io/posterior.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/error.hpp"

namespace rbsde {

namespace {

/// Rounds of `batch` rows that cover the largest rank's share of `total` rows: the same
/// number on every rank, so that every collective read and write is matched.
int64_t rounds_for(int64_t total, int64_t batch, const Communicator& comm) {
  const int64_t largest_share = (total + comm.size() - 1) / comm.size();
  return (largest_share + batch - 1) / batch;
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

Refinement refine_into(OutputFile& out, const Target& target, const SampleConfig& sample,
                       const std::vector<double>& variance, const Communicator& comm) {
  const int64_t d = target.dim();
  auto preconditioner = torch::tensor(variance, torch::kFloat64);
  preconditioner = torch::where(torch::isfinite(preconditioner) & (preconditioner > 0),
                                preconditioner, torch::ones_like(preconditioner));
  const AffineTarget* affine = target.preconditioned();
  const PathRange mine = path_range(sample.count, comm.rank(), comm.size());
  const int64_t rounds = rounds_for(sample.count, sample.batch, comm);
  const NoiseKey key{sample.seed, NoiseStream::kMcmc, 0};
  const bool adapt = sample.hmc_step_size == 0.0;
  const int64_t adapt_steps = adapt ? sample.hmc_steps / 2 : 0;
  StepSizeAdapter adapter(initial_step_size(d), adapt_steps,
                          target_acceptance(sample.leapfrog_steps));
  double step_size = adapt ? adapter.current() : sample.hmc_step_size;
  // All ranks' chains of the first round, for the adaptation's acceptance fraction.
  const int64_t first_round_chains = comm.allreduce_sum(std::min(mine.count(), sample.batch));
  out.create_refined();
  std::vector<float> rows(std::min(sample.batch, mine.count()) * d);
  int64_t accepted = 0, proposals = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t n = std::min(mine.end, begin + sample.batch) - begin;
    out.read_resampled(begin, n, rows.data());
    // /resampled holds x; the chains run where the sampler did, in x̂ = L⁻¹ (x − m).
    const auto x = torch::from_blob(rows.data(), {n, d}, torch::kFloat32);
    Chains chains = start_chains(target, affine ? affine->to_sampler_space(x) : x, begin);
    for (int64_t t = 0; t < sample.hmc_steps; ++t) {
      const auto accept = hmc_step(target, chains, step_size, preconditioner, sample.leapfrog_steps,
                                   key, static_cast<uint32_t>(t));
      const int64_t accepted_now = accept.sum().item<int64_t>();
      if (round == 0 && t < adapt_steps) {
        double fraction = static_cast<double>(accepted_now);
        comm.allreduce_sum(&fraction, 1);
        adapter.update(fraction / static_cast<double>(first_round_chains));
        step_size = t + 1 < adapt_steps ? adapter.current() : adapter.final_step_size();
      } else {
        accepted += accepted_now;
        proposals += n;
      }
    }
    const auto refined =
        (affine ? affine->to_target_space(chains.x) : chains.x).to(torch::kFloat32).contiguous();
    out.write_refined(begin, n, refined.data_ptr<float>());
  }
  double totals[2] = {static_cast<double>(accepted), static_cast<double>(proposals)};
  comm.allreduce_sum(totals, 2);
  Refinement refinement;
  refinement.acceptance_rate = totals[0] / totals[1];
  refinement.step_size = step_size;
  out.write_refined_attributes(refinement.acceptance_rate, refinement.step_size,
                               sample.leapfrog_steps);
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

void posterior_into(OutputFile& out, const Target& target, const Config& config,
                    const Communicator& comm) {
  const SampleConfig& sample = config.sample;
  const int64_t d = target.dim();
  const auto* module = dynamic_cast<const TorchScriptTarget*>(&target);
  const bool constrained = module && module->has_constrain();
  const std::vector<std::string> names = posterior_names(target, config.target);
  if (static_cast<int64_t>(names.size()) > kMaxPosteriorVariables) {
    if (comm.is_root()) {
      std::printf(
          "note: no /posterior (InferenceData) for %zu parameters, more than the %lld this HDF5 "
          "layout takes; the draws are in /%s/samples\n",
          names.size(), static_cast<long long>(kMaxPosteriorVariables),
          sample.hmc_steps > 0 ? "refined" : "resampled");
      std::fflush(stdout);
    }
    return;
  }
  out.create_posterior(names);
  const PathRange mine = path_range(sample.count, comm.rank(), comm.size());
  const int64_t rounds = rounds_for(sample.count, sample.batch, comm);
  std::vector<float> rows(std::min(sample.batch, mine.count()) * d);
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t begin = std::min(mine.end, mine.begin + round * sample.batch);
    const int64_t n = std::min(mine.end, begin + sample.batch) - begin;
    if (sample.hmc_steps > 0) {
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
