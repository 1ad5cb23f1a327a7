#include "rbsde/bsde/independence.hpp"

#include <cmath>

#include "rbsde/bsde/sampler.hpp"
#include "rbsde/bsde/step.hpp"

namespace rbsde {

torch::Tensor noised_path_log_weights(const Target& target, const ModelProposal& proposal,
                                      const torch::Tensor& x, const torch::Tensor& log_target,
                                      const NoiseKey& key, int64_t first) {
  torch::InferenceMode inference;
  BsdeModel model = proposal.model;
  const TimeGrid& grid = proposal.grid;
  const int64_t c = x.size(0), d = x.size(1);
  auto log_weight = log_target.to(torch::kFloat64).clone();
  auto next = x.to(torch::kFloat64).contiguous();  // x_{n+1}, only read
  auto eta = torch::empty({c, d}, torch::kFloat64);
  for (int64_t n = grid.steps - 1; n >= 0; --n) {
    const StepConstants step(grid, n, d);
    fill_normal(eta.data_ptr<double>(), c, d, key, first, static_cast<uint32_t>(n));
    const auto now = (step.a * next + std::sqrt(step.k_variance) * eta).contiguous();
    const auto score = model->has_score() ? score_feature(target, now) : torch::Tensor();
    const auto [z_raw, gain_raw] = model->z_gain(grid.s[n], now.to(torch::kFloat32), score);
    const auto z = z_raw.contiguous();
    const auto gain = gain_raw.defined() ? gain_raw.contiguous() : torch::Tensor();
    path_log_weight_step(step, now.data_ptr<double>(), next.data_ptr<double>(), z.data_ptr<float>(),
                         gain.defined() ? gain.data_ptr<float>() : nullptr,
                         log_weight.data_ptr<double>(), c, d);
    next = now;
  }
  return log_weight - BsdeModelImpl::log_reference(next);
}

torch::Tensor independence_step(const Target& target, const ModelProposal& proposal, Chains& chains,
                                uint64_t seed, uint32_t move) {
  const int64_t c = chains.x.size(0);
  if (c == 0) return torch::zeros({0}, torch::kBool);
  const NoiseKey proposal_key{seed, NoiseStream::kIndependence, 2 * move};
  const NoiseKey noising_key{seed, NoiseStream::kIndependence, 2 * move + 1};
  const auto current = noised_path_log_weights(target, proposal, chains.x, chains.log_prob,
                                               noising_key, chains.first);
  BsdeModel model = proposal.model;
  const SampleBatch proposed =
      simulate_paths(target, model, proposal.grid, proposal_key, chains.first, c);
  auto uniform = torch::empty({c}, torch::kFloat64);
  fill_uniform(uniform.data_ptr<double>(), c, noising_key, chains.first, 0);
  // A NaN on either side compares false: rejected.
  auto accept =
      (uniform.log() < proposed.log_weights - current) & torch::isfinite(proposed.log_target);
  const auto rows = accept.nonzero().squeeze(1);
  if (rows.numel() == 0) return accept;
  const auto x_new = proposed.samples.index_select(0, rows).clone();
  const auto [log_prob, grad] = log_prob_and_gradient(target, x_new, NanGradient::kKeep);
  const auto usable = torch::isfinite(log_prob) & torch::isfinite(grad).all(1);
  const auto kept = rows.masked_select(usable);
  accept = torch::zeros_like(accept).index_fill_(0, kept, true);
  chains.x.index_copy_(0, kept, x_new.index({usable}));
  chains.log_prob.index_copy_(0, kept, log_prob.index({usable}));
  chains.grad.index_copy_(0, kept, grad.index({usable}));
  return accept;
}

}  // namespace rbsde
