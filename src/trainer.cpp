#include "rbsde/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <limits>

#include "rbsde/error.hpp"
#include "rbsde/noise.hpp"
#include "rbsde/parallel_for.hpp"
#include "rbsde/runtime.hpp"

namespace rbsde {

namespace {

constexpr double kPi = 3.14159265358979323846;
/// Rows (path-steps) per chunk of the gradient pass: bounds its temporaries.
constexpr int64_t kRowsPerChunk = int64_t{1} << 16;

/// One reverse step for `rows` paths, in place on raw memory. Paths i < `explorers`
/// follow the reference control u = −√b X (the stationary OU process, whose X_N ~ N(0, I)
/// covers every mode), the others the model's own, u = Z:
///   X_{n+1} = x_gain X_n + z_gain u + noise ξ_n            (TimeGrid: Euler or exponential)
///   Y      += (u·Z − ½|Z|²) h − ½ b d h + √h Z·ξ_n     (the driver for any control u)
/// and, for an explorer, ξ_n is overwritten by ξ_n + (u − Z)√h so that √h ξ_n stays
/// ∂Y_{n+1}/∂Z_n = ΔB_n + (u − Z) h, the weight of the gradient pass (method.md §4).
/// With the network's gain G (network.gain; nullptr without), the model's own paths take
/// gain_step's gains, coordinate by coordinate.
void advance_paths(const float* x, const float* z, const float* gain, float* xi, float* x_next,
                   double* y, int64_t rows, int64_t explorers, int64_t dim, const TimeGrid& grid,
                   int64_t n) {
  const double b = grid.b[n], h = grid.h[n];
  const float drift_x = static_cast<float>(grid.x_gain[n] - 1.0);
  const float drift_z = static_cast<float>(grid.z_gain[n]);
  const float diffusion = static_cast<float>(grid.noise[n]);
  const float reference_gain = static_cast<float>(-std::sqrt(b));
  const float root_h = static_cast<float>(std::sqrt(h));
  const double sqrt_h = std::sqrt(h);
  const double y_constant = -0.5 * b * static_cast<double>(dim) * h;
  for_each_path(rows, [=](int64_t i) {
    float* xi_row = xi + i * dim;
    const float* x_row = x + i * dim;
    const float* z_row = z + i * dim;
    float* next_row = x_next + i * dim;
    double z2 = 0.0, z_xi = 0.0;
    if (i >= explorers) {
      if (gain != nullptr) {
        const float* gain_row = gain + i * dim;
        for (int64_t j = 0; j < dim; ++j) {
          const StepGains step = gain_step(grid, n, gain_row[j]);
          next_row[j] = static_cast<float>(step.x_gain * x_row[j] + step.z_gain * z_row[j] +
                                           step.noise * xi_row[j]);
        }
      } else {
        for (int64_t j = 0; j < dim; ++j) {
          next_row[j] = x_row[j] + drift_x * x_row[j] + drift_z * z_row[j] + diffusion * xi_row[j];
        }
      }
      for (int64_t j = 0; j < dim; ++j) {
        z2 += static_cast<double>(z_row[j]) * z_row[j];
        z_xi += static_cast<double>(z_row[j]) * xi_row[j];
      }
      y[i] += 0.5 * z2 * h + y_constant + sqrt_h * z_xi;  // u = Z: (u·Z − ½|Z|²) = ½|Z|²
      return;
    }
    double u_z = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      const float u = reference_gain * x_row[j];
      next_row[j] = x_row[j] + drift_x * x_row[j] + drift_z * u + diffusion * xi_row[j];
      z2 += static_cast<double>(z_row[j]) * z_row[j];
      z_xi += static_cast<double>(z_row[j]) * xi_row[j];
      u_z += static_cast<double>(u) * z_row[j];
      xi_row[j] += (u - z_row[j]) * root_h;
    }
    y[i] += (u_z - 0.5 * z2) * h + y_constant + sqrt_h * z_xi;
  });
}

std::string format_duration(double seconds) {
  char text[32];
  const long s = static_cast<long>(std::lround(seconds));
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  }
  return text;
}

}  // namespace

Trainer::Trainer(const Target& target, BsdeModel model, const SdeConfig& sde,
                 const TrainConfig& train, const Communicator& comm)
    : target_(target),
      model_(std::move(model)),
      train_(train),
      schedule_(NoiseSchedule::from_config(sde)),
      grid_(schedule_, sde.steps),
      comm_(comm),
      paths_(path_range(train.paths, comm.rank(), comm.size())) {
  if (target_.dim() != model_->dim()) {
    throw Error("target.dim: the target has dimension " + std::to_string(target_.dim()) +
                " but the network " + std::to_string(model_->dim()));
  }
  parameters_ = model_->parameters();  // registration order: the fused buffer's layout
  int64_t total = 0;
  for (const auto& p : parameters_) total += p.numel();
  gradient_buffer_ = torch::zeros({total}, torch::kFloat32);
  if (train_.detach_paths) {
    // Recorded: every step's X, ξ and hidden layers. Constant memory: one step's (and X_{n+1}).
    const int64_t slots = train_.constant_memory ? 1 : grid_.steps;
    x_path_ = torch::empty({slots + 1, paths_.count(), model_->dim()}, torch::kFloat32);
    xi_ = torch::empty({slots, paths_.count(), model_->dim()}, torch::kFloat32);
    for (int64_t l = 0; l < model_->depth(); ++l) {
      for (auto* buffers : {&record_.pre, &record_.post}) {
        buffers->push_back(torch::empty({slots, paths_.count() * model_->blocks(), model_->width()},
                                        torch::kFloat32));
      }
    }
  }
  s_ = torch::tensor(std::vector<double>(grid_.s.begin(), grid_.s.end() - 1)).to(torch::kFloat32);
  sqrt_h_ = torch::tensor(grid_.h).sqrt().to(torch::kFloat32);

  // Every rank starts from rank 0's parameters, whatever its local initialisation.
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& p : parameters_) {
    gradient_buffer_.slice(0, offset, offset + p.numel()).copy_(p.reshape(-1));
    offset += p.numel();
  }
  comm_.broadcast(gradient_buffer_.data_ptr<float>(), total);
  offset = 0;
  for (auto& p : parameters_) {
    p.copy_(gradient_buffer_.slice(0, offset, offset + p.numel()).view_as(p));
    offset += p.numel();
  }
  optimizer_ = std::make_unique<torch::optim::Adam>(parameters_,
                                                    torch::optim::AdamOptions(train_.lr));
}

double Trainer::gamma(int64_t iteration) const {
  if (train_.anneal_gamma0 >= 1.0) return 1.0;
  const double ramp = train_.anneal_fraction * static_cast<double>(train_.iterations);
  const double progress = ramp > 0.0 ? std::min(1.0, static_cast<double>(iteration) / ramp) : 1.0;
  return train_.anneal_gamma0 + (1.0 - train_.anneal_gamma0) * progress;
}

double Trainer::learning_rate(int64_t iteration) const {
  if (train_.lr_schedule == "constant" || train_.iterations <= 1) return train_.lr;
  const double progress = static_cast<double>(iteration) / static_cast<double>(train_.iterations - 1);
  return train_.lr_final + 0.5 * (train_.lr - train_.lr_final) * (1.0 + std::cos(kPi * progress));
}

torch::Tensor Trainer::terminal(const torch::Tensor& x, double gamma) const {
  // bridge: the geometric bridge from the Gaussian reference (where the untrained model is
  // exact) to the target, log π̃_γ = γ log π̃ + (1 − γ) log N(0, I); tempered: γ log π̃.
  auto log_target = target_.log_prob(x);
  if (gamma >= 1.0) return log_target;
  if (train_.anneal_path == "tempered") return gamma * log_target;
  return gamma * log_target + (1.0 - gamma) * BsdeModelImpl::log_reference(x);
}

StepResult Trainer::reduce_diagnostics(const torch::Tensor& residual, double gamma) const {
  const auto r = residual.detach().to(torch::kFloat64);
  const SignalRequests requests = take_signal_requests();
  double sums[4] = {r.sum().item<double>(), r.pow(2).sum().item<double>(),
                    requests.stop ? 1.0 : 0.0, requests.checkpoint ? 1.0 : 0.0};
  comm_.allreduce_sum(sums, 4);
  const double m = static_cast<double>(train_.paths);
  StepResult result;
  result.mean_residual = sums[0] / m;
  // Rounding can make the variance slightly negative; a NaN must stay NaN (std::max would
  // turn it into 0 and hide the divergence).
  const double variance = sums[1] / m - result.mean_residual * result.mean_residual;
  result.loss = variance < 0.0 ? 0.0 : variance;
  result.gamma = gamma;
  // A signal may reach some ranks only: every rank acts on any rank's request.
  result.stop_requested = sums[2] > 0.0;
  result.checkpoint_requested = sums[3] > 0.0;
  return result;
}

torch::Tensor Trainer::gradient_factors(const torch::Tensor& residual,
                                        const StepResult& result) const {
  const auto r = residual.detach().to(torch::kFloat64);
  if (train_.tilt == 0.0) {
    return (r - result.mean_residual) * (2.0 / static_cast<double>(train_.paths));
  }
  // p_i = exp(−κ r_i − shift) / Σ_j exp(−κ r_j − shift), the shift the largest exponent of
  // all ranks, so that no exponential overflows.
  const auto exponent = -train_.tilt * r;
  double shift = r.numel() > 0 ? exponent.max().item<double>()
                               : -std::numeric_limits<double>::infinity();
  comm_.allreduce_max(&shift, 1);
  const auto e = torch::exp(exponent - shift);
  double sums[2] = {e.sum().item<double>(), (e * r).sum().item<double>()};
  comm_.allreduce_sum(sums, 2);
  const double weighted_mean = sums[1] / sums[0];
  return (e / sums[0]) * (r - weighted_mean) * 2.0;
}

void Trainer::allreduce_gradients() {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& p : parameters_) {
    auto slot = gradient_buffer_.slice(0, offset, offset + p.numel());
    if (p.grad().defined()) {
      slot.copy_(p.grad().reshape(-1));
    } else {
      slot.zero_();
    }
    offset += p.numel();
  }
  comm_.allreduce_sum(gradient_buffer_.data_ptr<float>(), gradient_buffer_.numel());
  offset = 0;
  for (auto& p : parameters_) {
    p.mutable_grad() = gradient_buffer_.slice(0, offset, offset + p.numel()).view_as(p).clone();
    offset += p.numel();
  }
}

StepResult Trainer::compute_gradients(int64_t iteration) {
  const double g = gamma(iteration);
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
  return train_.detach_paths ? step_detached(iteration, g) : step_coupled(iteration, g);
}

StepResult Trainer::step(int64_t iteration) {
  StepResult result = compute_gradients(iteration);
  allreduce_gradients();
  if (train_.grad_clip > 0.0) torch::nn::utils::clip_grad_norm_(parameters_, train_.grad_clip);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(learning_rate(iteration));
  }
  optimizer_->step();
  // Optimal constant: c absorbs the mean residual, the loss is the residual's variance.
  model_->set_constant(model_->constant() - result.mean_residual);
  return result;
}

StepResult Trainer::step_detached(int64_t iteration, double gamma) {
  const int64_t m = paths_.count();
  const int64_t n_steps = grid_.steps;
  const int64_t d = model_->dim();
  const int64_t slots = xi_.size(0);  // N when recording, 1 with constant memory
  const NoiseKey key{train_.seed, NoiseStream::kTraining, static_cast<uint32_t>(iteration)};
  // The first round(explore M) global paths follow the reference control.
  const int64_t global_explorers =
      std::llround(train_.explore * static_cast<double>(train_.paths));
  const int64_t explorers = std::clamp<int64_t>(global_explorers - paths_.begin, 0, m);
  auto& x_path = x_path_;
  auto& xi = xi_;

  // One step of the simulation without a graph: Z_n with its hidden layers recorded, ξ_n,
  // X_{n+1} and the Y increment. Step n lives in slot n of the buffers, or in slot 0 (X_n) and
  // 1 (X_{n+1}) with constant memory. The same code runs in both passes of the constant-memory
  // mode, so the re-simulated paths are identical bit for bit.
  const auto slot = [&](int64_t n) { return slots == 1 ? int64_t{0} : n; };
  BsdeModelImpl::Record step_record;
  const auto simulate_step = [&](int64_t n, torch::Tensor& y) {
    torch::InferenceMode inference;
    step_record.pre.clear();
    step_record.post.clear();
    for (size_t l = 0; l < record_.pre.size(); ++l) {
      step_record.pre.push_back(record_.pre[l][slot(n)]);
      step_record.post.push_back(record_.post[l][slot(n)]);
    }
    const auto x_now = x_path[slot(n)];
    const auto z = model_->z_recording(grid_.s[n], x_now, step_record).contiguous();
    fill_normal(xi[slot(n)].data_ptr<float>(), m, d, key, paths_.begin, static_cast<uint32_t>(n));
    advance_paths(x_now.data_ptr<float>(), z.data_ptr<float>(),
                  model_->has_gain() ? step_record.gain.data_ptr<float>() : nullptr,
                  xi[slot(n)].data_ptr<float>(),
                  x_path[slot(n) + 1].data_ptr<float>(), y.data_ptr<double>(), m, explorers, d,
                  grid_, n);
  };
  const auto advance_slot = [&]() {  // constant memory: X_{n+1} becomes the next step's X_n
    if (slots == 1) x_path[0].copy_(x_path[1]);
  };

  // Pass 1: simulate, accumulating Y in float64.
  auto y = torch::zeros({m}, torch::kFloat64);
  fill_normal(x_path[0].data_ptr<float>(), m, d, key, paths_.begin, kInitialStep);
  const auto x0 = x_path[0].clone();
  for (int64_t n = 0; n < n_steps; ++n) {
    simulate_step(n, y);
    if (n + 1 < n_steps) advance_slot();
  }
  torch::Tensor residual;
  {
    torch::NoGradGuard no_grad;
    const auto y0 = BsdeModelImpl::log_reference(x0.to(torch::kFloat64)) + model_->constant() +
                    model_->y0_residual(x0).to(torch::kFloat64);
    residual = y0 + y - terminal(x_path[slot(n_steps - 1) + 1], gamma).to(torch::kFloat64);
  }
  const StepResult result = reduce_diagnostics(residual, gamma);

  // Pass 2: with u detached, ∂Y_N/∂Z_n = ΔB_n + (u − Z) h (just ΔB_n on the model's own
  // paths, u = Z), kept as √h ξ_n by advance_paths, so ∇L = Σ_i g_i Σ_n √h ξ_n·∇Z_θ(s_n, X_n)
  // with g_i = (2/M) r̃_i for the centred residual r̃ (train.tilt 0): a backward over the
  // recorded hidden layers of the (s_n, X_n).
  const auto weight = gradient_factors(residual, result).to(torch::kFloat32).view({1, m, 1});
  if (slots == 1) {
    // Constant memory: re-simulate the same paths (counter-based noise) one step at a time and
    // back-propagate each step as soon as its hidden layers are recorded.
    x_path[0].copy_(x0);
    auto y_again = torch::zeros({m}, torch::kFloat64);
    for (int64_t n = 0; n < n_steps; ++n) {
      simulate_step(n, y_again);
      model_->accumulate_gradient(s_.slice(0, n, n + 1), x_path.slice(0, 0, 1),
                                  xi.slice(0, 0, 1) * sqrt_h_[n] * weight, record_);
      advance_slot();
    }
  } else {
    // Recorded: all (s_n, X_n) in a few large batches instead of N small ones.
    const int64_t rows_per_step = std::max<int64_t>(m * model_->blocks(), 1);
    const int64_t steps_per_chunk = std::max<int64_t>(1, kRowsPerChunk / rows_per_step);
    for (int64_t n0 = 0; n0 < n_steps; n0 += steps_per_chunk) {
      const int64_t n1 = std::min(n_steps, n0 + steps_per_chunk);
      const auto delta_b = xi.slice(0, n0, n1) * sqrt_h_.slice(0, n0, n1).view({-1, 1, 1});
      BsdeModelImpl::Record chunk;
      for (size_t l = 0; l < record_.pre.size(); ++l) {
        chunk.pre.push_back(record_.pre[l].slice(0, n0, n1));
        chunk.post.push_back(record_.post[l].slice(0, n0, n1));
      }
      model_->accumulate_gradient(s_.slice(0, n0, n1), x_path.slice(0, n0, n1), delta_b * weight,
                                  chunk);
    }
  }
  if (model_->has_y0_residual()) {
    (model_->y0_residual(x0) * weight.view({m})).sum().backward();
  }
  return result;
}

StepResult Trainer::step_coupled(int64_t iteration, double gamma) {
  const int64_t m = paths_.count();
  const int64_t d = model_->dim();
  const NoiseKey key{train_.seed, NoiseStream::kTraining, static_cast<uint32_t>(iteration)};
  auto x = torch::empty({m, d}, torch::kFloat32);
  fill_normal(x.data_ptr<float>(), m, d, key, paths_.begin, kInitialStep);
  auto y = BsdeModelImpl::log_reference(x) + static_cast<float>(model_->constant()) +
           model_->y0_residual(x);
  auto xi = torch::empty({m, d}, torch::kFloat32);
  for (int64_t n = 0; n < grid_.steps; ++n) {
    const double b = grid_.b[n], h = grid_.h[n];
    fill_normal(xi.data_ptr<float>(), m, d, key, paths_.begin, static_cast<uint32_t>(n));
    const auto z = model_->z(grid_.s[n], x);
    y = y + 0.5 * h * z.pow(2).sum(1) - 0.5 * b * static_cast<double>(d) * h +
        std::sqrt(h) * (z * xi).sum(1);
    x = grid_.x_gain[n] * x + grid_.z_gain[n] * z + grid_.noise[n] * xi;
    xi = torch::empty({m, d}, torch::kFloat32);  // the old one is saved for backward
  }
  const auto residual = y - terminal(x, gamma);
  const StepResult result = reduce_diagnostics(residual, gamma);
  (residual * gradient_factors(residual, result).to(residual.scalar_type())).sum().backward();
  return result;
}

TrainingHistory Trainer::train() {
  const int64_t total = train_.iterations;
  const int64_t every = train_.log_every > 0 ? train_.log_every : std::max<int64_t>(1, total / 20);
  const int64_t first = next_iteration_;
  const double time_offset = history_.time.empty() ? 0.0 : history_.time.back();
  const auto start = std::chrono::steady_clock::now();
  stopped_ = false;
  for (int64_t k = first; k < total; ++k) {
    const StepResult result = step(k);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history_.loss.push_back(result.loss);
    history_.log_z.push_back(model_->constant());
    history_.time.push_back(time_offset + elapsed);
    history_.gamma.push_back(result.gamma);
    next_iteration_ = k + 1;
    if (!std::isfinite(result.loss)) {
      throw Error("training diverged at iteration " + std::to_string(k + 1) +
                  " (loss is not finite): lower train.lr, lengthen the annealing "
                  "(train.anneal_fraction) or raise sde.steps, and check that the target's "
                  "log-density is finite");
    }
    if (comm_.is_root() && ((k + 1) % every == 0 || k + 1 == total)) {
      const double rate = static_cast<double>(k + 1 - first) / elapsed;
      std::printf("train  %6lld/%lld  loss %10.4e  log_z %11.4f  gamma %.3f  %7.1f it/s  ETA %s\n",
                  static_cast<long long>(k + 1), static_cast<long long>(total), result.loss,
                  model_->constant(), result.gamma, rate,
                  format_duration(static_cast<double>(total - k - 1) / rate).c_str());
      std::fflush(stdout);
    }
    const bool scheduled = train_.checkpoint_every > 0 && (k + 1) % train_.checkpoint_every == 0;
    if (!checkpoint_path_.empty() &&
        (scheduled || result.checkpoint_requested || result.stop_requested)) {
      save_checkpoint();
    }
    if (result.stop_requested) {
      stopped_ = true;
      break;
    }
  }
  return history_;
}

namespace {
/// What a checkpoint must agree on with the run that resumes it.
torch::Tensor run_record(const BsdeModel& model, const TrainConfig& train, int64_t steps) {
  return torch::tensor({model->dim(), model->width(), model->depth(), train.paths,
                        static_cast<int64_t>(train.seed), train.iterations, steps},
                       torch::kInt64);
}
}  // namespace

void Trainer::save_checkpoint() const {
  if (comm_.is_root()) {
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    model_->save(model_archive);
    optimizer_->save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("run", run_record(model_, train_, grid_.steps));
    archive.write("next_iteration", torch::tensor({next_iteration_}, torch::kInt64));
    write_history(archive, history_);
    save_archive(archive, checkpoint_path_, "the checkpoint");
  }
  comm_.barrier();  // the checkpoint exists before any rank goes on (or exits)
}

void Trainer::resume(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw Error("no checkpoint '" + path + "' to resume from: run without --resume first");
  }
  try {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from(path);
    torch::Tensor run, next;
    archive.read("run", run);
    if (!torch::equal(run, run_record(model_, train_, grid_.steps))) {
      throw Error("checkpoint '" + path + "' belongs to another configuration (target.dim, "
                  "network.width, network.depth, train.paths, train.seed, train.iterations and "
                  "sde.steps must match)");
    }
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model_->load(model_archive);
    optimizer_->load(optimizer_archive);
    archive.read("next_iteration", next);
    next_iteration_ = next.item<int64_t>();
    history_ = read_history(archive);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("cannot resume from checkpoint '" + path + "': " + e.what());
  }
}

}  // namespace rbsde
