#include "rbsde/sampler.hpp"

#include <cmath>

#include "rbsde/step.hpp"

namespace rbsde {

Divergence choose_divergence(const SampleConfig& sample, int64_t dim) {
  if (sample.divergence == "exact") return Divergence::kExact;
  if (sample.divergence == "hutchinson") return Divergence::kHutchinson;
  return dim <= kExactDivergenceMaxDim ? Divergence::kExact : Divergence::kHutchinson;
}

ZDivergence z_divergence_exact(BsdeModel& model, double s, const torch::Tensor& x) {
  torch::AutoGradMode enable(true);
  const auto input = x.detach().requires_grad_(true);
  const auto z = model->z(s, input);
  const int64_t d = x.size(1);
  auto divergence = torch::zeros({x.size(0)}, x.options());
  for (int64_t j = 0; j < d; ++j) {
    const auto jacobian_row =
        torch::autograd::grad({z.select(1, j).sum()}, {input}, {}, /*retain_graph=*/j + 1 < d)[0];
    divergence += jacobian_row.select(1, j);
  }
  return {z.detach(), divergence};
}

ZDivergence z_divergence_hutchinson(BsdeModel& model, double s, const torch::Tensor& x,
                                    const torch::Tensor& probes) {
  torch::AutoGradMode enable(true);
  const auto input = x.detach().requires_grad_(true);
  const auto z = model->z(s, input);
  const int64_t count = probes.size(0);
  auto divergence = torch::zeros({x.size(0)}, x.options());
  for (int64_t k = 0; k < count; ++k) {
    const auto vjp =
        torch::autograd::grad({z}, {input}, {probes[k]}, /*retain_graph=*/k + 1 < count)[0];
    divergence += (vjp * probes[k]).sum(1);
  }
  return {z.detach(), divergence / static_cast<double>(count)};
}

SampleBatch simulate_flow(const Target& target, BsdeModel& model, const NoiseSchedule& schedule,
                          const TimeGrid& grid, uint64_t seed, int64_t first_path, int64_t rows,
                          Divergence divergence, int64_t probes) {
  // Not InferenceMode: the divergence needs autograd through the network for a moment.
  torch::NoGradGuard no_grad;
  const int64_t d = model->dim();
  auto x = torch::empty({rows, d}, torch::kFloat64);
  fill_normal(x.data_ptr<double>(), rows, d, NoiseKey{seed, NoiseStream::kSampling, 0},
              first_path, kInitialStep);
  auto probe = divergence == Divergence::kHutchinson
                   ? torch::empty({probes, rows, d}, torch::kFloat32)
                   : torch::Tensor();

  SampleBatch batch;
  batch.y0_offset = model->y0_offset(x);
  auto log_q = BsdeModelImpl::log_reference(x);
  for (int64_t n = 0; n < grid.steps; ++n) {
    // Midpoint rule on (X, log q): one divergence per step, and no evaluation at s = T,
    // where training never evaluates the network.
    const double h = grid.h[n], s_mid = grid.s[n] + 0.5 * h;
    const double b_mid = schedule.b(s_mid), root_b_mid = schedule.root_b(s_mid);
    const auto z = model->z(grid.s[n], x.to(torch::kFloat32)).to(torch::kFloat64);
    const auto x_mid =
        x + (0.5 * h) * flow_drift(grid.b[n], schedule.root_b(grid.s[n]), x, z);
    const auto x_mid32 = x_mid.to(torch::kFloat32);
    ZDivergence mid;
    if (divergence == Divergence::kExact) {
      mid = z_divergence_exact(model, s_mid, x_mid32);
    } else {
      for (int64_t k = 0; k < probes; ++k) {
        fill_rademacher(probe[k].data_ptr<float>(), rows, d,
                        NoiseKey{seed, NoiseStream::kProbes, static_cast<uint32_t>(k)},
                        first_path, static_cast<uint32_t>(n));
      }
      mid = z_divergence_hutchinson(model, s_mid, x_mid32, probe);
    }
    x = x + h * flow_drift(b_mid, root_b_mid, x_mid, mid.z.to(torch::kFloat64));
    log_q -= h * flow_divergence(b_mid, root_b_mid, d, mid.divergence.to(torch::kFloat64));
  }
  batch.log_target = target.log_prob(x);
  batch.log_weights = batch.log_target - log_q;
  batch.samples = x;
  return batch;
}

SampleBatch simulate_paths(const Target& target, BsdeModel& model, const TimeGrid& grid,
                           uint64_t seed, int64_t first_path, int64_t rows) {
  torch::InferenceMode inference;
  const int64_t d = model->dim();
  const NoiseKey key{seed, NoiseStream::kSampling, 0};
  auto x = torch::empty({rows, d}, torch::kFloat64);
  auto xi = torch::empty({rows, d}, torch::kFloat64);
  fill_normal(x.data_ptr<double>(), rows, d, key, first_path, kInitialStep);

  SampleBatch batch;
  batch.y0_offset = model->y0_offset(x);
  auto log_weight = -BsdeModelImpl::log_reference(x);
  for (int64_t n = 0; n < grid.steps; ++n) {
    const auto [z_raw, gain] = model->z_gain(grid.s[n], x.to(torch::kFloat32));
    const auto z = z_raw.contiguous();
    fill_normal(xi.data_ptr<double>(), rows, d, key, first_path, static_cast<uint32_t>(n));
    weighted_step(StepConstants(grid, n, d), x.data_ptr<double>(), z.data_ptr<float>(),
                  gain.defined() ? gain.data_ptr<float>() : nullptr, xi.data_ptr<double>(),
                  log_weight.data_ptr<double>(), rows, d);
  }
  batch.log_target = target.log_prob(x);
  batch.log_weights = log_weight + batch.log_target;
  batch.samples = x;
  return batch;
}

void EvidenceAccumulator::add(const torch::Tensor& log_weights, const torch::Tensor& y0_offset) {
  const auto lw = log_weights.to(torch::kFloat64).contiguous();
  if (lw.numel() == 0) return;
  const double batch_max = lw.max().item<double>();
  if (batch_max > max_) {  // rescale what was accumulated against the new maximum
    const double scale = std::exp(max_ - batch_max);
    sum_w_ *= scale;
    sum_w2_ *= scale * scale;
    max_ = batch_max;
  }
  const auto shifted = lw - max_;
  sum_w_ += shifted.exp().sum().item<double>();
  sum_w2_ += (2.0 * shifted).exp().sum().item<double>();
  sum_lw_ += lw.sum().item<double>();
  sum_lw2_ += lw.pow(2).sum().item<double>();
  sum_y0_ += y0_offset.to(torch::kFloat64).sum().item<double>();
  count_ += lw.numel();
}

Estimates EvidenceAccumulator::reduce(const Communicator& comm) const {
  double global_max = max_;
  comm.allreduce_max(&global_max, 1);
  const double scale = count_ > 0 ? std::exp(max_ - global_max) : 0.0;
  double sums[6] = {sum_w_ * scale, sum_w2_ * scale * scale, sum_lw_, sum_lw2_, sum_y0_,
                    static_cast<double>(count_)};
  comm.allreduce_sum(sums, 6);
  Estimates e;
  e.count = static_cast<int64_t>(sums[5]);
  const double m = sums[5];
  e.log_z_is = global_max + std::log(sums[0]) - std::log(m);
  e.ess = sums[0] * sums[0] / sums[1];
  e.ess_fraction = e.ess / m;
  // Delta method: Var(log Ẑ) ≈ Var(w) / (M E[w]²) = 1/ESS − 1/M.
  e.log_z_is_stderr = std::sqrt(std::max(0.0, 1.0 / e.ess - 1.0 / m));
  e.elbo = sums[2] / m;
  e.elbo_stderr = std::sqrt(std::max(0.0, sums[3] / m - e.elbo * e.elbo) / m);
  e.log_z_network = sums[4] / m;
  return e;
}

}  // namespace rbsde
