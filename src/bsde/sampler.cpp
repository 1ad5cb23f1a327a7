#include "rbsde/bsde/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "rbsde/bsde/psis.hpp"
#include "rbsde/bsde/step.hpp"
#include "rbsde/core/affine_target.hpp"
#include "rbsde/error.hpp"

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
  fill_normal(x.data_ptr<double>(), rows, d, NoiseKey{seed, NoiseStream::kSampling, 0}, first_path,
              kInitialStep);
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
    const auto x_mid = x + (0.5 * h) * flow_drift(grid.b[n], grid.root_b[n], x, z);
    const auto x_mid32 = x_mid.to(torch::kFloat32);
    ZDivergence mid;
    if (divergence == Divergence::kExact) {
      mid = z_divergence_exact(model, s_mid, x_mid32);
    } else {
      for (int64_t k = 0; k < probes; ++k) {
        fill_rademacher(probe[k].data_ptr<float>(), rows, d,
                        NoiseKey{seed, NoiseStream::kProbes, static_cast<uint32_t>(k)}, first_path,
                        static_cast<uint32_t>(n));
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
                           const NoiseKey& key, int64_t first_path, int64_t rows) {
  torch::InferenceMode inference;
  const int64_t d = model->dim();
  auto x = torch::empty({rows, d}, torch::kFloat64);
  auto xi = torch::empty({rows, d}, torch::kFloat64);
  fill_normal(x.data_ptr<double>(), rows, d, key, first_path, kInitialStep);

  SampleBatch batch;
  batch.y0_offset = model->y0_offset(x);
  auto log_weight = -BsdeModelImpl::log_reference(x);
  for (int64_t n = 0; n < grid.steps; ++n) {
    const auto score = model->has_score() ? score_feature(target, x) : torch::Tensor();
    const auto [z_raw, gain] = model->z_gain(grid.s[n], x.to(torch::kFloat32), score);
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
  double sums[6] = {sum_w_ * scale, sum_w2_ * scale * scale,    sum_lw_, sum_lw2_,
                    sum_y0_,        static_cast<double>(count_)};
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

MomentAccumulator::MomentAccumulator(int64_t dim)
    : centre_(torch::zeros({dim}, torch::kFloat64)),
      sum_wx_(torch::zeros({dim}, torch::kFloat64)),
      sum_wx2_(torch::zeros({dim}, torch::kFloat64)) {}

void MomentAccumulator::add(const torch::Tensor& samples, const torch::Tensor& log_weights) {
  if (samples.size(0) == 0) return;
  const auto x = samples.to(torch::kFloat64);
  auto lw = log_weights.to(torch::kFloat64);
  lw = torch::where(torch::isnan(lw), torch::full_like(lw, -INFINITY), lw);
  if (!has_centre_) {
    centre_ = x[0].clone();
    has_centre_ = true;
  }
  const double batch_max = lw.max().item<double>();
  if (batch_max > max_) {  // rescale what was accumulated against the new maximum
    const double scale = std::exp(max_ - batch_max);
    sum_w_ *= scale;
    sum_wx_ *= scale;
    sum_wx2_ *= scale;
    max_ = batch_max;
  }
  if (!std::isfinite(max_)) return;  // every weight so far is 0
  const auto w = (lw - max_).exp().unsqueeze(1);
  const auto centred = x - centre_;
  sum_w_ += w.sum().item<double>();
  sum_wx_ += (w * centred).sum(0);
  sum_wx2_ += (w * centred.pow(2)).sum(0);
}

MomentAccumulator::Moments MomentAccumulator::reduce(const Communicator& comm) const {
  double global_max = max_;
  comm.allreduce_max(&global_max, 1);
  // This rank's total weight W_r and weighted mean m_r; one reduction gives the global mean.
  const bool weighted = sum_w_ > 0.0;
  const double weight = weighted ? sum_w_ * std::exp(max_ - global_max) : 0.0;
  const auto local_mean = weighted ? centre_ + sum_wx_ / sum_w_ : torch::zeros_like(centre_);
  auto first = torch::cat({torch::full({1}, weight, torch::kFloat64), weight * local_mean});
  comm.allreduce_sum(first.data_ptr<double>(), first.numel());
  const double total_weight = first[0].item<double>();
  const auto mean = (first.slice(0, 1) / total_weight).contiguous();

  // Squared deviations about the global mean: Σ_r W_r (V_r + (m_r − mean)²).
  auto squares = torch::zeros_like(centre_);
  if (weighted) {
    const auto local_variance = (sum_wx2_ / sum_w_ - (sum_wx_ / sum_w_).pow(2)).clamp_min(0.0);
    squares = weight * (local_variance + (local_mean - mean).pow(2));
  }
  squares = squares.contiguous();
  comm.allreduce_sum(squares.data_ptr<double>(), squares.numel());
  const auto sd = (squares / total_weight).sqrt().contiguous();

  Moments moments;
  moments.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  moments.sd.assign(sd.data_ptr<double>(), sd.data_ptr<double>() + sd.numel());
  moments.max_log_weight = global_max;
  moments.total_weight = total_weight;
  return moments;
}

namespace {
/// The paths of the sampling phase whose log π̃(X_N), log weight or sample is not finite.
struct NonFinitePaths {
  enum { kNanTarget, kInfTarget, kMinusInfTarget, kBadWeight, kBadSample, kKinds };
  double count[kKinds] = {};

  void add(const SampleBatch& batch) {
    const auto& target = batch.log_target;
    const auto finite_target = torch::isfinite(target);
    count[kNanTarget] += torch::isnan(target).sum().item<double>();
    count[kInfTarget] += (target == INFINITY).sum().item<double>();
    count[kMinusInfTarget] += (target == -INFINITY).sum().item<double>();
    // A weight that is NaN or +∞ although log π̃ is finite: the network or the ODE's divergence.
    count[kBadWeight] +=
        (finite_target & (torch::isnan(batch.log_weights) | (batch.log_weights == INFINITY)))
            .sum()
            .item<double>();
    count[kBadSample] += (~torch::isfinite(batch.samples).all(1)).sum().item<double>();
  }

  /// Throws CollectiveError, alike on every rank, when any path has a NaN or +∞ log π̃, a NaN or +∞
  /// log weight, or a non-finite sample (after the counts of all ranks are summed).
  void check(int64_t total) const {
    if (count[kNanTarget] + count[kInfTarget] + count[kBadWeight] + count[kBadSample] == 0.0) {
      return;
    }
    auto of = [&](double n) {
      return std::to_string(static_cast<long long>(n)) + " of " + std::to_string(total);
    };
    throw CollectiveError(
        "sampling produced non-finite values: log π̃(X_N) is NaN on " + of(count[kNanTarget]) +
        " paths and +inf on " + of(count[kInfTarget]) + ", the log weight is NaN or +inf on " +
        of(count[kBadWeight]) + " more, and the sample has a non-finite coordinate on " +
        of(count[kBadSample]) +
        "; no output file is written. Check that the target's log-density is finite "
        "(−inf is allowed: weight zero) wherever the sampler may go; the network file "
        "is kept, so `rbsde sample` can retry");
  }
};
}  // namespace

SampleSummary draw_samples(SampleSink& sink, const Target& target, BsdeModel& model,
                           const NoiseSchedule& schedule, const Config& config,
                           const Communicator& comm) {
  const auto& sample = config.sample;
  const TimeGrid grid(schedule, config.sde.steps);
  const int64_t mine = path_range(sample.count, comm.rank(), comm.size()).count();
  const int64_t first_path = comm.exscan_sum(mine);
  const int64_t largest_share = (sample.count + comm.size() - 1) / comm.size();
  const int64_t rounds = (largest_share + sample.batch - 1) / sample.batch;
  sink.create_samples(sample.count, target.dim());
  const bool flow = sample.method == "ode";
  const Divergence divergence = choose_divergence(sample, target.dim());
  if (comm.is_root()) {
    const std::string steps = "N = " + std::to_string(grid.steps);
    const std::string how =
        divergence == Divergence::kExact
            ? "exact divergence"
            : "Hutchinson divergence, " + std::to_string(sample.probes) + " probes";
    std::printf("sampler: %s\n", flow ? ("probability-flow ODE (midpoint rule, " + steps + ", " +
                                         how + "); approximate weights")
                                            .c_str()
                                      : ("reverse SDE (" + steps + "); exact weights").c_str());
    std::fflush(stdout);
  }
  const AffineTarget* affine = target.preconditioned();
  EvidenceAccumulator evidence;
  MomentAccumulator moments(target.dim());
  MomentAccumulator proposal(target.dim());  // equal weights: the proposal's own moments
  const int64_t tail_length = pareto_tail_length(sample.count);
  LargestWeights largest(tail_length + 1, sample.psis ? target.dim() : 0);
  NonFinitePaths non_finite;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t done = round * sample.batch;
    const int64_t rows = std::max<int64_t>(0, std::min(sample.batch, mine - done));
    if (rows == 0) {  // the write is collective: take part with no rows
      sink.write_samples(0, 0, PathRows{});
      continue;
    }
    SampleBatch batch =
        flow ? simulate_flow(target, model, schedule, grid, sample.seed, first_path + done, rows,
                             divergence, sample.probes)
             : simulate_paths(target, model, grid, {sample.seed, NoiseStream::kSampling},
                              first_path + done, rows);
    proposal.add(batch.samples, torch::zeros_like(batch.log_weights));
    if (affine) {
      // Back to the target's coordinates x = m + L x̂. The density of x is that of x̂ divided
      // by |det L|, so each weight (and the network's 𝒵̂ = 𝒵 / |det L|) gains the factor
      // |det L|; log π̃ has the same value in either coordinate.
      batch.samples = affine->to_target_space(batch.samples);
      // Out of place: the batch holds inference tensors.
      batch.log_weights = batch.log_weights + affine->map().log_det();
      batch.y0_offset = batch.y0_offset + affine->map().log_det();
    }
    const auto samples = batch.samples.to(torch::kFloat32).contiguous();
    const auto log_weights = batch.log_weights.contiguous();
    const auto log_target = batch.log_target.contiguous();
    const auto network_log_z = batch.y0_offset.contiguous();
    sink.write_samples(first_path + done, rows,
                       PathRows{samples.data_ptr<float>(), log_weights.data_ptr<double>(),
                                log_target.data_ptr<double>(), network_log_z.data_ptr<double>()});
    non_finite.add(batch);
    evidence.add(batch.log_weights, batch.y0_offset);
    moments.add(batch.samples, batch.log_weights);
    largest.add(batch.log_weights, batch.samples);
    if (comm.is_root() && rounds > 1) {
      std::printf("sample batch %lld/%lld\n", static_cast<long long>(round + 1),
                  static_cast<long long>(rounds));
      std::fflush(stdout);
    }
  }
  comm.allreduce_sum(non_finite.count, NonFinitePaths::kKinds);
  non_finite.check(sample.count);
  Estimates estimates = evidence.reduce(comm);
  estimates.zero_weight_paths =
      static_cast<int64_t>(non_finite.count[NonFinitePaths::kMinusInfTarget]);
  estimates.method = sample.method;
  if (flow) estimates.divergence = divergence == Divergence::kExact ? "exact" : "hutchinson";
  const MomentAccumulator::Moments posterior = moments.reduce(comm);
  estimates.posterior_mean = posterior.mean;
  estimates.posterior_sd = posterior.sd;
  const LargestWeights::Gathered gathered = largest.gather(comm);
  const ParetoTail tail = fit_pareto_tail(gathered.log_weights, sample.count);
  estimates.pareto_k = tail.k;
  estimates.pareto_tail = tail_length;
  estimates.pareto_k_threshold = pareto_k_threshold(sample.count);
  if (sample.psis) {  // a tail of equal weights (k̂ = −∞) has nothing to smooth
    const SmoothedMoments smoothed =
        tail.smoothed.empty() ? SmoothedMoments{posterior.mean, posterior.sd}
                              : smooth_moments(posterior.mean, posterior.sd, posterior.total_weight,
                                               tail, gathered.samples);
    estimates.psis_mean = smoothed.mean;
    estimates.psis_sd = smoothed.sd;
  }
  std::vector<double> proposal_variance;
  for (const double sd : proposal.reduce(comm).sd) proposal_variance.push_back(sd * sd);
  return {estimates, posterior.max_log_weight, proposal_variance};
}

}  // namespace rbsde
