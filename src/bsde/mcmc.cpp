#include "rbsde/bsde/mcmc.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "rbsde/core/affine_target.hpp"
#include "rbsde/error.hpp"

namespace rbsde {

namespace {

/// The mean over all chains of all ranks of x [C_local, d] (an [d] tensor, one reduction).
torch::Tensor global_mean(const torch::Tensor& x, int64_t chains, const Communicator& comm) {
  auto sum = x.sum(0).contiguous();
  comm.allreduce_sum(sum.data_ptr<double>(), sum.numel());
  return sum / static_cast<double>(chains);
}

/// The fraction of all ranks' chains that accepted (one reduction of an integer count).
double global_acceptance(const torch::Tensor& accepted, int64_t chains, const Communicator& comm) {
  double count = static_cast<double>(accepted.sum().item<int64_t>());
  comm.allreduce_sum(&count, 1);
  return count / static_cast<double>(chains);
}

/// Starting points of chains [mine.begin, mine.end): the prior's draws where the target has
/// one, else N(0, I), from the MCMC stream at kInitialStep.
torch::Tensor default_start(const Target& target, PathRange mine, const NoiseKey& key) {
  const int64_t d = target.dim();
  auto x = torch::empty({mine.count(), d}, torch::kFloat64);
  fill_normal(x.data_ptr<double>(), mine.count(), d, key, mine.begin, kInitialStep);
  if (const auto prior = target.prior()) {
    const auto centre =
        torch::from_blob(const_cast<double*>(prior->centre.data()), {d}, torch::kFloat64).clone();
    if (prior->is_diagonal()) {
      const auto diagonal =
          torch::from_blob(const_cast<double*>(prior->diagonal.data()), {d}, torch::kFloat64)
              .clone();
      return centre + x * diagonal;
    }
    // Eigen is column-major: the buffer read row-major is Lᵀ, so x Lᵀ is x.mm(buffer).
    const auto cholesky_t =
        torch::from_blob(const_cast<double*>(prior->cholesky.data()), {d, d}, torch::kFloat64)
            .clone();
    return centre + x.mm(cholesky_t);
  }
  return x;
}

}  // namespace

double initial_step_size(int64_t dim) {
  return 1.65 * std::pow(static_cast<double>(dim), -1.0 / 6.0);
}

Chains start_chains(const Target& target, const torch::Tensor& x, int64_t first) {
  Chains chains;
  chains.x = x.to(torch::kFloat64).contiguous().clone();
  chains.first = first;
  if (chains.x.size(0) == 0) {
    chains.log_prob = torch::empty({0}, torch::kFloat64);
    chains.grad = torch::empty_like(chains.x);
    return chains;
  }
  std::tie(chains.log_prob, chains.grad) = log_prob_and_gradient(target, chains.x);
  return chains;
}

torch::Tensor hmc_step(const Target& target, Chains& chains, double step_size,
                       const torch::Tensor& preconditioner, int64_t leapfrog_steps,
                       const NoiseKey& key, uint32_t step, const torch::Tensor& step_scale) {
  const int64_t c = chains.x.size(0);
  const int64_t d = chains.x.size(1);
  if (c == 0) return torch::zeros({0}, torch::kBool);
  auto xi = torch::empty({c, d}, torch::kFloat64);
  auto uniform = torch::empty({c}, torch::kFloat64);
  fill_normal(xi.data_ptr<double>(), c, d, key, chains.first, step);
  fill_uniform(uniform.data_ptr<double>(), c, key, chains.first, step);

  // Leapfrog in the whitened coordinates x / √P, where the momentum is ξ ~ N(0, I) and the
  // force √P ∇log π̃: positions move by ε √P p, momenta by ε √P ∇log π̃ (half steps at both
  // ends). One step proposes y = x + ½ε²P∇ + ε√P ξ, MALA's proposal, and the energy test
  // below is then MALA's acceptance ratio.
  // ε √P per chain and coordinate: [C, d], or [d] for one step size.
  const auto scaled_root_p = step_scale.defined()
                                 ? (step_size * step_scale).unsqueeze(1) * preconditioner.sqrt()
                                 : step_size * preconditioner.sqrt();
  auto momentum = xi + 0.5 * scaled_root_p * chains.grad;
  auto y = chains.x;
  torch::Tensor log_prob_y, grad_y;
  for (int64_t l = 0; l < leapfrog_steps; ++l) {
    y = y + scaled_root_p * momentum;
    std::tie(log_prob_y, grad_y) = log_prob_and_gradient(target, y, NanGradient::kKeep);
    const double kick = l + 1 < leapfrog_steps ? 1.0 : 0.5;
    momentum = momentum + kick * scaled_root_p * grad_y;
  }
  const auto log_ratio =
      log_prob_y - chains.log_prob - 0.5 * momentum.pow(2).sum(1) + 0.5 * xi.pow(2).sum(1);
  // NaN compares false: a trajectory whose end point has a non-finite log π̃ or gradient is
  // rejected (a NaN gradient on the way spreads to the end point; the start points' gradients
  // are checked in start_chains).
  const auto accept =
      (uniform.log() < log_ratio) & torch::isfinite(log_prob_y) & torch::isfinite(grad_y).all(1);
  const auto keep = accept.unsqueeze(1);
  chains.x = torch::where(keep, y, chains.x);
  chains.grad = torch::where(keep, grad_y, chains.grad);
  chains.log_prob = torch::where(accept, log_prob_y, chains.log_prob);
  return accept;
}

torch::Tensor step_size_jitter(double smallest, int64_t chains, const NoiseKey& key, int64_t first,
                               uint32_t step) {
  auto u = torch::empty({chains}, torch::kFloat64);
  fill_uniform(u.data_ptr<double>(), chains, key, first, step);
  return (std::log(smallest) * u).exp();
}

double target_acceptance(int64_t leapfrog_steps) {
  return leapfrog_steps == 1 ? kMalaTargetAcceptance : kHmcTargetAcceptance;
}

StepSizeAdapter::StepSizeAdapter(double initial, int64_t updates, double acceptance)
    : log_step_(std::log(initial)), updates_(updates), target_(acceptance) {}

void StepSizeAdapter::update(double acceptance) {
  log_step_ += (acceptance - target_) / std::pow(static_cast<double>(done_ + 1), 0.6);
  ++done_;
  if (2 * done_ > updates_) {
    sum_log_step_ += log_step_;
    ++averaged_;
  }
}

double StepSizeAdapter::final_step_size() const {
  return averaged_ > 0 ? std::exp(sum_log_step_ / static_cast<double>(averaged_)) : current();
}

ReferenceMoments reference_moments(const Target& target, const ReferenceConfig& reference,
                                   const Communicator& comm, const torch::Tensor& start) {
  const int64_t d = target.dim();
  const int64_t chains_total = reference.chains;
  // Step numbers key the noise: warm-up and sampling steps must stay below kInitialStep.
  if (reference.warmup + reference.steps >= static_cast<int64_t>(kInitialStep)) {
    throw CollectiveError("reference.warmup + reference.steps must be below 2^32 - 1, got " +
                          std::to_string(reference.warmup + reference.steps));
  }
  const PathRange mine = path_range(chains_total, comm.rank(), comm.size());
  const NoiseKey key{reference.seed, NoiseStream::kMcmc, 0};
  if (start.defined() &&
      (start.dim() != 2 || start.size(0) != chains_total || start.size(1) != d)) {
    throw CollectiveError(
        "reference_moments: the start points must have shape [reference.chains = " +
        std::to_string(chains_total) + ", d = " + std::to_string(d) + "]");
  }
  // Collective: chains too many for the memory fail alike on every rank, reported once.
  torch::Tensor x0;
  comm.all_or_none([&] {
    try {
      x0 =
          start.defined() ? start.slice(0, mine.begin, mine.end) : default_start(target, mine, key);
    } catch (const std::exception&) {  // std::bad_alloc or LibTorch's allocation error
      throw Error("out of memory for the reference chains: reference.chains = " +
                  std::to_string(chains_total) + " over " + std::to_string(comm.size()) +
                  " ranks in d = " + std::to_string(d) + "; lower reference.chains");
    }
  });
  Chains chains = start_chains(target, x0, mine.begin);
  uint32_t step = 0;

  // Warm-up, first half: adapt ε with P = I; collect the variance of the second quarter
  // (about a shift, the chains' mean when it starts, against cancellation).
  const int64_t half = reference.warmup / 2;
  const int64_t quarter = reference.warmup / 4;
  auto preconditioner = torch::ones({d}, torch::kFloat64);
  StepSizeAdapter first_half(initial_step_size(d), half, kMalaTargetAcceptance);
  torch::Tensor shift;
  auto sums = torch::zeros({2, d}, torch::kFloat64);  // Σ (x − shift), Σ (x − shift)²
  for (int64_t t = 0; t < half; ++t) {
    const auto accepted =
        hmc_step(target, chains, first_half.current(), preconditioner, 1, key, step++);
    first_half.update(global_acceptance(accepted, chains_total, comm));
    if (t == quarter) shift = global_mean(chains.x, chains_total, comm);
    if (t >= quarter) {
      const auto centred = chains.x - shift;
      sums[0].add_(centred.sum(0));
      sums[1].add_(centred.pow(2).sum(0));
    }
  }
  comm.allreduce_sum(sums.data_ptr<double>(), sums.numel());
  const double draws = static_cast<double>((half - quarter) * chains_total);
  preconditioner = sums[1] / draws - (sums[0] / draws).pow(2);
  const auto moved = torch::isfinite(preconditioner) & (preconditioner > 0);
  if (!moved.all().item<bool>()) {
    throw Error("reference sampler: the chains did not move in coordinate " +
                std::to_string(torch::logical_not(moved).nonzero()[0].item<int64_t>()) +
                " during the first half of the warm-up (step size " +
                std::to_string(first_half.current()) +
                "); increase reference.warmup or check that log π̃ is finite near the start");
  }

  // Warm-up, second half: adapt ε afresh for the preconditioned target; then fix it.
  StepSizeAdapter second_half(initial_step_size(d), reference.warmup - half, kMalaTargetAcceptance);
  for (int64_t t = half; t < reference.warmup; ++t) {
    const auto accepted =
        hmc_step(target, chains, second_half.current(), preconditioner, 1, key, step++);
    second_half.update(global_acceptance(accepted, chains_total, comm));
  }
  const double step_size = second_half.final_step_size();

  // Sampling: per-chain sums (for the spread of the chains' means) and pooled squares, of the
  // configured coordinates x = m + L x̂ when the chains run on a preconditioned target.
  const AffineTarget* affine = target.preconditioned();
  const auto observed = [&]() { return affine ? affine->to_target_space(chains.x) : chains.x; };
  shift = global_mean(observed(), chains_total, comm);
  auto chain_sums = torch::zeros({mine.count(), d}, torch::kFloat64);
  auto pooled =
      torch::zeros({2 * d + 1}, torch::kFloat64);  // Σ(x − shift), Σ(x − shift)², accepted
  int64_t accepted_count = 0;
  for (int64_t t = 0; t < reference.steps; ++t) {
    accepted_count +=
        hmc_step(target, chains, step_size, preconditioner, 1, key, step++).sum().item<int64_t>();
    const auto centred = observed() - shift;
    chain_sums += centred;
    pooled.slice(0, d, 2 * d).add_(centred.pow(2).sum(0));
  }
  pooled.slice(0, 0, d).copy_(chain_sums.sum(0));
  pooled[2 * d].fill_(static_cast<double>(accepted_count));
  comm.allreduce_sum(pooled.data_ptr<double>(), pooled.numel());
  const double total = static_cast<double>(reference.steps * chains_total);
  const auto mean_shifted = pooled.slice(0, 0, d) / total;
  const auto variance = (pooled.slice(0, d, 2 * d) / total - mean_shifted.pow(2)).clamp_min(0.0);
  auto spread =
      (chain_sums / static_cast<double>(reference.steps) - mean_shifted).pow(2).sum(0).contiguous();
  comm.allreduce_sum(spread.data_ptr<double>(), spread.numel());
  const auto stderr_of_mean =
      (spread / static_cast<double>((chains_total - 1) * chains_total)).sqrt();

  const auto to_vector = [](const torch::Tensor& t) {
    const auto c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  ReferenceMoments result;
  result.mean = to_vector(shift + mean_shifted);
  result.sd = to_vector(variance.sqrt());
  result.mean_stderr = to_vector(stderr_of_mean);
  result.acceptance_rate = pooled[2 * d].item<double>() / total;
  result.step_size = step_size;
  result.chains = chains_total;
  result.warmup = reference.warmup;
  result.steps = reference.steps;
  return result;
}

}  // namespace rbsde
