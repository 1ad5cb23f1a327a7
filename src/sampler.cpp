#include "rbsde/sampler.hpp"

#include <cmath>

#include "rbsde/parallel_for.hpp"

namespace rbsde {

namespace {


/// One reverse-SDE step n in float64 for `rows` paths, in place, with the step's log-weight:
///   X_{n+1} = x_gain X_n + z_gain Z_n + noise ξ_n      (TimeGrid: Euler or exponential)
///   log w  += log k_n(X_n | X_{n+1}) − log q_n(X_{n+1} | X_n)
/// with q_n = N(x_gain X_n + z_gain Z_n, noise² I) (so its exponent is −½|ξ_n|²) and
/// k_n = N(a X_{n+1}, (1 − a²) I), every Gaussian normalising constant kept. With the
/// network's gain G (network.gain; nullptr without) the gains are gain_step's, coordinate by
/// coordinate, and so is q_n's variance.
void advance_weighted(double* x, const float* z, const float* gain, const double* xi,
                      double* log_weight, int64_t rows, int64_t dim, const TimeGrid& grid,
                      int64_t n) {
  const double a = grid.a[n];
  const double k_variance = -std::expm1(2.0 * std::log(a));  // 1 − a², accurate for a ≈ 1
  const double d = static_cast<double>(dim);
  // log q_n's normalisers enter per coordinate with the gain, at once without.
  const double normalisers =
      gain != nullptr ? -0.5 * d * std::log(k_variance)
                      : d * (std::log(grid.noise[n]) - 0.5 * std::log(k_variance));
  const StepGains grid_step{grid.x_gain[n], grid.z_gain[n], grid.noise[n]};
  for_each_path(rows, [=](int64_t i) {
    double* x_row = x + i * dim;
    const float* z_row = z + i * dim;
    const double* xi_row = xi + i * dim;
    double xi2 = 0.0, k_residual2 = 0.0, log_noises = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      const double x_now = x_row[j];
      StepGains step = grid_step;
      if (gain != nullptr) {
        step = gain_step(grid, n, gain[i * dim + j]);
        log_noises += std::log(step.noise);
      }
      const double x_next =
          x_now + (step.x_gain - 1.0) * x_now + step.z_gain * z_row[j] + step.noise * xi_row[j];
      const double k_residual = x_now - a * x_next;
      xi2 += xi_row[j] * xi_row[j];
      k_residual2 += k_residual * k_residual;
      x_row[j] = x_next;
    }
    log_weight[i] += -0.5 * k_residual2 / k_variance + 0.5 * xi2 + log_noises + normalisers;
  });
}

/// The probability-flow drift f = ½ b x + ½ √b Z in float64 for x [B, d] float64, Z float32.
torch::Tensor flow_drift(const torch::Tensor& x, const torch::Tensor& z, double b) {
  return 0.5 * b * x + (0.5 * std::sqrt(b)) * z.to(torch::kFloat64);
}

}  // namespace

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
  batch.y0_offset = model->y0_residual(x.to(torch::kFloat32)).to(torch::kFloat64) +
                    model->constant();
  auto log_q = BsdeModelImpl::log_reference(x);
  for (int64_t n = 0; n < grid.steps; ++n) {
    // Midpoint rule on (X, log q): one divergence per step, and no evaluation at s = T,
    // where training never evaluates the network.
    const double h = grid.h[n], s_mid = grid.s[n] + 0.5 * h, b_mid = schedule.b(s_mid);
    const auto x_mid =
        x + (0.5 * h) * flow_drift(x, model->z(grid.s[n], x.to(torch::kFloat32)), grid.b[n]);
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
    x = x + h * flow_drift(x_mid, mid.z, b_mid);
    // div f = ½ b d + ½ √b div Z (the −√b x part of Z contributes −√b d to div Z).
    log_q -= h * (0.5 * b_mid * static_cast<double>(d) +
                  0.5 * std::sqrt(b_mid) * mid.divergence.to(torch::kFloat64));
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
  batch.y0_offset = model->y0_residual(x.to(torch::kFloat32)).to(torch::kFloat64) +
                    model->constant();
  auto log_weight = -BsdeModelImpl::log_reference(x);
  for (int64_t n = 0; n < grid.steps; ++n) {
    const auto [z_raw, gain] = model->z_gain(grid.s[n], x.to(torch::kFloat32));
    const auto z = z_raw.contiguous();
    fill_normal(xi.data_ptr<double>(), rows, d, key, first_path, static_cast<uint32_t>(n));
    advance_weighted(x.data_ptr<double>(), z.data_ptr<float>(),
                     gain.defined() ? gain.data_ptr<float>() : nullptr, xi.data_ptr<double>(),
                     log_weight.data_ptr<double>(), rows, d, grid, n);
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
