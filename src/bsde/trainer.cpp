#include "rbsde/bsde/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "rbsde/bsde/step.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/error.hpp"
#include "rbsde/parallel/runtime.hpp"

namespace rbsde {

namespace {

/// Rows (path-steps) per chunk of the gradient pass: bounds its temporaries.
constexpr int64_t kRowsPerChunk = int64_t{1} << 16;

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
      paths_(path_range(train.paths, comm.rank(), comm.size())),
      annealing_(train),
      learning_rate_(train),
      loss_(train),
      y_step_(train.y_step == "euler" ? YStep::kEuler : YStep::kExact) {
  if (target_.dim() != model_->dim()) {
    throw CollectiveError("target.dim: the target has dimension " + std::to_string(target_.dim()) +
                          " but the network " + std::to_string(model_->dim()));
  }
  parameters_ = model_->parameters();  // registration order: the fused buffer's layout
  int64_t total = 0;
  for (const auto& p : parameters_) total += p.numel();
  gradient_buffer_ = torch::zeros({total}, torch::kFloat32);
  if (train_.detach_paths) {
    // Recorded: every step's X, ξ and hidden layers. Constant memory: one step's (and X_{n+1}).
    // Collective: sizes too large for the memory fail alike on every rank, reported once.
    const int64_t slots = train_.constant_memory ? 1 : grid_.steps;
    comm_.all_or_none([&] {
      try {
        x_path_ = torch::empty({slots + 1, paths_.count(), model_->dim()}, torch::kFloat32);
        xi_ = torch::empty({slots, paths_.count(), model_->dim()}, torch::kFloat32);
        for (int64_t l = 0; l < model_->depth(); ++l) {
          for (auto* buffers : {&record_.pre, &record_.post}) {
            buffers->push_back(torch::empty(
                {slots, paths_.count() * model_->blocks(), model_->width()}, torch::kFloat32));
          }
        }
      } catch (const std::exception&) {  // std::bad_alloc or LibTorch's allocation error
        const double floats =
            static_cast<double>(slots) * static_cast<double>(paths_.count()) *
            (2.0 * static_cast<double>(model_->dim()) +
             2.0 * static_cast<double>(model_->depth() * model_->blocks() * model_->width()));
        char gib[32];
        std::snprintf(gib, sizeof gib, "%.3g", floats * 4.0 / (1 << 30));
        throw Error(std::string("out of memory: training records ") + gib + " GiB per rank (" +
                    (train_.constant_memory ? "" : "sde.steps x ") +
                    "train.paths per rank x (2 target.dim + 2 network.depth x network.width) "
                    "floats); lower " +
                    (train_.constant_memory ? "train.paths or run on more ranks"
                                            : "sde.steps or train.paths, run on more ranks, or "
                                              "set train.constant_memory: true"));
      }
    });
  }
  if (model_->has_score())
    score_dots_ = torch::empty({grid_.steps, paths_.count()}, torch::kFloat32);
  s_ = torch::tensor(std::vector<double>(grid_.s.begin(), grid_.s.end() - 1)).to(torch::kFloat32);

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
  optimizer_ =
      std::make_unique<torch::optim::Adam>(parameters_, torch::optim::AdamOptions(train_.lr));
}

StepResult Trainer::reduce_diagnostics(const torch::Tensor& residual, const torch::Tensor& terminal,
                                       double gamma) {
  const auto [sum, sum_of_squares] =
      ResidualLoss::local_sums(residual.detach().to(torch::kFloat64));
  const SignalRequests requests = take_signal_requests();
  double sums[7] = {sum,
                    sum_of_squares,
                    requests.stop ? 1.0 : 0.0,
                    requests.checkpoint ? 1.0 : 0.0,
                    torch::isnan(terminal).sum().item<double>(),
                    (terminal == INFINITY).sum().item<double>(),
                    (terminal == -INFINITY).sum().item<double>()};
  {
    const auto timed = timers_.measure(Phase::kAllreduce);
    comm_.allreduce_sum(sums, 7);
  }
  const ResidualLoss::Moments moments = loss_.moments(sums[0], sums[1]);
  StepResult result;
  result.mean_residual = moments.mean;
  result.loss = moments.variance;
  result.gamma = gamma;
  // A signal may reach some ranks only: every rank acts on any rank's request.
  result.stop_requested = sums[2] > 0.0;
  result.checkpoint_requested = sums[3] > 0.0;
  result.terminal_nan = static_cast<int64_t>(sums[4]);
  result.terminal_plus_inf = static_cast<int64_t>(sums[5]);
  result.terminal_minus_inf = static_cast<int64_t>(sums[6]);
  return result;
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
  {
    const auto timed = timers_.measure(Phase::kAllreduce);
    comm_.allreduce_sum(gradient_buffer_.data_ptr<float>(), gradient_buffer_.numel());
  }
  offset = 0;
  for (auto& p : parameters_) {
    p.mutable_grad() = gradient_buffer_.slice(0, offset, offset + p.numel()).view_as(p).clone();
    offset += p.numel();
  }
}

StepResult Trainer::compute_gradients(int64_t iteration) {
  const double g = annealing_.gamma(iteration);
  for (auto& p : parameters_) p.mutable_grad() = torch::Tensor();
  return train_.detach_paths ? step_detached(iteration, g) : step_coupled(iteration, g);
}

StepResult Trainer::step(int64_t iteration) {
  StepResult result = compute_gradients(iteration);
  allreduce_gradients();
  {
    const auto timed = timers_.measure(Phase::kOptimizer);
    if (train_.grad_clip > 0.0) torch::nn::utils::clip_grad_norm_(parameters_, train_.grad_clip);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(learning_rate_.at(iteration));
    }
    optimizer_->step();
  }
  model_->set_constant(ResidualLoss::next_constant(model_->constant(), result.mean_residual));
  return result;
}

StepResult Trainer::step_detached(int64_t iteration, double gamma) {
  const int64_t m = paths_.count();
  const int64_t n_steps = grid_.steps;
  const int64_t d = model_->dim();
  const int64_t slots = xi_.size(0);  // N when recording, 1 with constant memory
  const NoiseKey key{train_.seed, NoiseStream::kTraining, static_cast<uint32_t>(iteration)};
  // The first round(explore M) global paths follow the reference control.
  const int64_t global_explorers = std::llround(train_.explore * static_cast<double>(train_.paths));
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
    torch::Tensor score;  // φ(X_n), by autograd: outside inference mode
    if (model_->has_score()) {
      const auto timed = timers_.measure(Phase::kTarget);
      score = score_feature(target_, x_path[slot(n)]);
    }
    torch::InferenceMode inference;
    step_record.pre.clear();
    step_record.post.clear();
    for (size_t l = 0; l < record_.pre.size(); ++l) {
      step_record.pre.push_back(record_.pre[l][slot(n)]);
      step_record.post.push_back(record_.post[l][slot(n)]);
    }
    const auto x_now = x_path[slot(n)];
    torch::Tensor z;
    {
      const auto timed = timers_.measure(Phase::kForward);
      z = model_->z_recording(grid_.s[n], x_now, step_record, score).contiguous();
    }
    {
      const auto timed = timers_.measure(Phase::kNoise);
      fill_normal(xi[slot(n)].data_ptr<float>(), m, d, key, paths_.begin, static_cast<uint32_t>(n));
    }
    const auto timed = timers_.measure(Phase::kPathKernel);
    training_step(StepConstants(grid_, n, d), y_step_, x_now.data_ptr<float>(), z.data_ptr<float>(),
                  model_->has_gain() ? step_record.gain.data_ptr<float>() : nullptr,
                  xi[slot(n)].data_ptr<float>(), x_path[slot(n) + 1].data_ptr<float>(),
                  y.data_ptr<double>(), m, explorers, d);
    if (score.defined()) score_dots_[n].copy_((xi[slot(n)] * score).sum(1));
  };
  const auto advance_slot = [&]() {  // constant memory: X_{n+1} becomes the next step's X_n
    if (slots == 1) x_path[0].copy_(x_path[1]);
  };

  // Pass 1: simulate, accumulating Y in float64.
  auto y = torch::zeros({m}, torch::kFloat64);
  {
    const auto timed = timers_.measure(Phase::kNoise);
    fill_normal(x_path[0].data_ptr<float>(), m, d, key, paths_.begin, kInitialStep);
  }
  const auto x0 = x_path[0].clone();
  torch::Tensor residual, terminal;
  // The target's failures (a NaN gradient in the score feature, an error raised by a module)
  // may strike some ranks only: reported once, on every rank.
  comm_.all_or_none([&] {
    for (int64_t n = 0; n < n_steps; ++n) {
      simulate_step(n, y);
      if (n + 1 < n_steps) advance_slot();
    }
    torch::NoGradGuard no_grad;
    const auto timed = timers_.measure(Phase::kTarget);
    terminal =
        annealing_.terminal(target_, x_path[slot(n_steps - 1) + 1], gamma).to(torch::kFloat64);
  });
  {
    torch::NoGradGuard no_grad;
    const auto timed = timers_.measure(Phase::kForward);
    residual = model_->y0(x0.to(torch::kFloat64)) + y - floor_outside_support(terminal, comm_);
  }
  const StepResult result = reduce_diagnostics(residual, terminal, gamma);

  // Pass 2: with the paths detached, training_step left ∂Y_N/∂Z_n in ξ_n (ΔB_n on the model's
  // own paths), so ∇L = Σ_i g_i Σ_n ξ_n·∇Z_θ(s_n, X_n) with g_i = (2/M) r̃_i for the centred
  // residual r̃ (train.tilt 0): a backward over the recorded hidden layers of the (s_n, X_n).
  const auto weight = loss_.gradient_factors(residual, result.mean_residual, comm_)
                          .to(torch::kFloat32)
                          .view({1, m, 1});
  if (slots == 1) {
    // Constant memory: re-simulate the same paths (counter-based noise) one step at a time and
    // back-propagate each step as soon as its hidden layers are recorded.
    x_path[0].copy_(x0);
    auto y_again = torch::zeros({m}, torch::kFloat64);
    for (int64_t n = 0; n < n_steps; ++n) {
      simulate_step(n, y_again);
      const auto timed = timers_.measure(Phase::kBackward);
      model_->accumulate_gradient(s_.slice(0, n, n + 1), x_path.slice(0, 0, 1),
                                  xi.slice(0, 0, 1) * weight, record_);
      advance_slot();
    }
  } else {
    // Recorded: all (s_n, X_n) in a few large batches instead of N small ones.
    const auto timed = timers_.measure(Phase::kBackward);
    const int64_t rows_per_step = std::max<int64_t>(m * model_->blocks(), 1);
    const int64_t steps_per_chunk = std::max<int64_t>(1, kRowsPerChunk / rows_per_step);
    for (int64_t n0 = 0; n0 < n_steps; n0 += steps_per_chunk) {
      const int64_t n1 = std::min(n_steps, n0 + steps_per_chunk);
      BsdeModelImpl::Record chunk;
      for (size_t l = 0; l < record_.pre.size(); ++l) {
        chunk.pre.push_back(record_.pre[l].slice(0, n0, n1));
        chunk.post.push_back(record_.post[l].slice(0, n0, n1));
      }
      model_->accumulate_gradient(s_.slice(0, n0, n1), x_path.slice(0, n0, n1),
                                  xi.slice(0, n0, n1) * weight, chunk);
    }
  }
  if (model_->has_score()) {
    const auto timed = timers_.measure(Phase::kBackward);
    model_->accumulate_score_gradient(s_, (score_dots_ * weight.view({1, m})).sum(1));
  }
  if (model_->has_y0_residual()) {
    const auto timed = timers_.measure(Phase::kBackward);
    (model_->y0_residual(x0) * weight.view({m})).sum().backward();
  }
  return result;
}

StepResult Trainer::step_coupled(int64_t iteration, double gamma) {
  const int64_t m = paths_.count();
  const int64_t d = model_->dim();
  const NoiseKey key{train_.seed, NoiseStream::kTraining, static_cast<uint32_t>(iteration)};
  auto x = torch::empty({m, d}, torch::kFloat32);
  {
    const auto timed = timers_.measure(Phase::kNoise);
    fill_normal(x.data_ptr<float>(), m, d, key, paths_.begin, kInitialStep);
  }
  // The path kernel runs inside the graph here: its time counts as forward.
  torch::Tensor y;
  {
    const auto timed = timers_.measure(Phase::kForward);
    y = model_->y0(x);
  }
  auto xi = torch::empty({m, d}, torch::kFloat32);
  for (int64_t n = 0; n < grid_.steps; ++n) {
    const StepConstants step(grid_, n, d);
    {
      const auto timed = timers_.measure(Phase::kNoise);
      fill_normal(xi.data_ptr<float>(), m, d, key, paths_.begin, static_cast<uint32_t>(n));
    }
    const auto timed = timers_.measure(Phase::kForward);
    const auto z = model_->z(grid_.s[n], x);
    const auto x_next = LinearStep<double>(step.grid_gains)(x, z, xi);
    if (y_step_ == YStep::kEuler) {
      const auto z2 = z.pow(2).sum(1);  // u = Z carries the gradient: the coupled deep BSDE
      y = y + y_increment(step, z2, z2, (z * xi).sum(1));
    } else {
      // On its own reparameterised paths q_n's residual is ξ_n: the gradient flows through
      // k_n's residual X_n − a X_{n+1} (and the terminal condition).
      const auto k_residual = x.to(torch::kFloat64) - step.a * x_next.to(torch::kFloat64);
      y = y - log_weight_increment(step, xi.to(torch::kFloat64).pow(2).sum(1), step.grid_log_noises,
                                   k_residual.pow(2).sum(1));
    }
    x = x_next;
    xi = torch::empty({m, d}, torch::kFloat32);  // the old one is saved for backward
  }
  torch::Tensor terminal;
  {
    const auto timed = timers_.measure(Phase::kTarget);
    terminal = annealing_.terminal(target_, x, gamma);
  }
  const auto residual = y - floor_outside_support(terminal, comm_);
  const StepResult result = reduce_diagnostics(residual, terminal.detach(), gamma);
  const auto factors =
      loss_.gradient_factors(residual.detach().to(torch::kFloat64), result.mean_residual, comm_);
  const auto timed = timers_.measure(Phase::kBackward);
  (residual * factors.to(residual.scalar_type())).sum().backward();
  return result;
}

CollectiveError Trainer::diverged(int64_t iteration, const StepResult& result) const {
  const int64_t bad = result.terminal_nan + result.terminal_plus_inf + result.terminal_minus_inf;
  if (bad > 0) {
    return CollectiveError(
        "training diverged at iteration " + std::to_string(iteration) +
        " (loss is not finite): the terminal condition log π̃(X_N) is not finite on " +
        std::to_string(bad) + " of " + std::to_string(train_.paths) + " paths (NaN on " +
        std::to_string(result.terminal_nan) + ", +inf on " +
        std::to_string(result.terminal_plus_inf) + ", -inf on " +
        std::to_string(result.terminal_minus_inf) +
        "); a path ending at -inf (outside the support) only has weight zero, but NaN or +inf "
        "is an error of the target and some path must end where log π̃ is finite: check the "
        "target (its support, overflow), or precondition it");
  }
  return CollectiveError(
      "training diverged at iteration " + std::to_string(iteration) +
      " (loss is not finite, log π̃ finite on every path): lower train.lr, lengthen "
      "the annealing (train.anneal_fraction) or raise sde.steps");
}

/// The longest training goes without a progress line.
constexpr double kQuietSeconds = 60.0;

TrainingHistory Trainer::train() {
  const int64_t total = train_.iterations;
  const int64_t every = train_.log_every > 0 ? train_.log_every : std::max<int64_t>(1, total / 20);
  const int64_t first = next_iteration_;
  const double time_offset = history_.time.empty() ? 0.0 : history_.time.back();
  const auto start = std::chrono::steady_clock::now();
  double last_line = 0.0;  // seconds since start of the last progress line
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
    ++iterations_run_;
    if (!std::isfinite(result.loss)) throw diverged(k + 1, result);
    // A line at the first iteration (the rate and ETA at once), every `every` iterations, at
    // the end, and after kQuietSeconds without one (a slow target).
    if (comm_.is_root() && (k == first || (k + 1) % every == 0 || k + 1 == total ||
                            elapsed - last_line > kQuietSeconds)) {
      last_line = elapsed;
      const double rate = static_cast<double>(k + 1 - first) / elapsed;
      const std::string outside =
          result.terminal_minus_inf > 0
              ? "  outside the support: " + std::to_string(result.terminal_minus_inf) + " paths"
              : "";
      std::printf(
          "train  %6lld/%lld  loss %10.4e  log_z %11.4f  gamma %.3f  %7.1f it/s  ETA %s%s\n",
          static_cast<long long>(k + 1), static_cast<long long>(total), result.loss,
          model_->constant(), result.gamma, rate,
          format_duration(static_cast<double>(total - k - 1) / rate).c_str(), outside.c_str());
      std::fflush(stdout);
    }
    const bool scheduled = train_.checkpoint_every > 0 && (k + 1) % train_.checkpoint_every == 0;
    if (checkpoint_ && (scheduled || result.checkpoint_requested || result.stop_requested)) {
      checkpoint_(*this);
    }
    if (result.stop_requested) {
      stopped_ = true;
      break;
    }
  }
  return history_;
}

void Trainer::restore(int64_t next_iteration, TrainingHistory history) {
  next_iteration_ = next_iteration;
  history_ = std::move(history);
}

}  // namespace rbsde
