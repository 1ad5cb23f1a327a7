#include "rbsde/bsde/model.hpp"

#include <algorithm>
#include <cmath>

#include "rbsde/error.hpp"

namespace rbsde {

namespace {

constexpr double kPi = 3.14159265358979323846;

using Activation = BsdeModelImpl::Activation;

/// network.activation, parsed once.
Activation parse_activation(const std::string& name) {
  if (name == "silu") return Activation::kSilu;
  if (name == "tanh") return Activation::kTanh;
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGelu;
  throw Error("network.activation: unknown activation '" + name +
              "' (accepted: silu, tanh, relu, gelu)");
}

torch::Tensor activate(Activation activation, const torch::Tensor& x) {
  switch (activation) {
    case Activation::kSilu:
      return torch::silu(x);
    case Activation::kTanh:
      return torch::tanh(x);
    case Activation::kRelu:
      return torch::relu(x);
    case Activation::kGelu:
      break;
  }
  return torch::gelu(x);
}

/// activation(x) written into `out`.
void activate_into(Activation activation, const torch::Tensor& x, torch::Tensor& out) {
  switch (activation) {
    case Activation::kSilu:
      at::silu_out(out, x);
      return;
    case Activation::kTanh:
      at::tanh_out(out, x);
      return;
    case Activation::kRelu:
      at::clamp_min_out(out, x, 0);
      return;
    case Activation::kGelu:
      break;
  }
  at::gelu_out(out, x);
}

/// ∂/∂a of Σ grad · activation(a) from a = pre and activation(a) = post, by ATen's fused
/// backward kernels.
torch::Tensor activate_backward(Activation activation, const torch::Tensor& grad,
                                const torch::Tensor& pre, const torch::Tensor& post) {
  switch (activation) {
    case Activation::kSilu:
      return at::silu_backward(grad, pre);
    case Activation::kTanh:
      return at::tanh_backward(grad, post);
    case Activation::kRelu:
      return at::threshold_backward(grad, pre, 0);
    case Activation::kGelu:
      break;
  }
  return at::gelu_backward(grad, pre);
}

/// A linear layer that starts as the zero map.
torch::nn::Linear zero_linear(int64_t in, int64_t out, bool bias) {
  torch::nn::Linear layer(torch::nn::LinearOptions(in, out).bias(bias));
  torch::NoGradGuard no_grad;
  layer->weight.zero_();
  if (bias) layer->bias.zero_();
  return layer;
}

void accumulate(torch::Tensor& parameter, const torch::Tensor& gradient) {
  if (parameter.grad().defined()) {
    parameter.mutable_grad().add_(gradient);
  } else {
    parameter.mutable_grad() = gradient.contiguous();
  }
}

}  // namespace

torch::Tensor score_feature(const Target& target, const torch::Tensor& x) {
  // In float32, as the network and the training paths run; on a copy made outside inference
  // mode, so that autograd can run on it.
  c10::InferenceMode normal_mode(false);
  const auto x32 = x.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
  const auto phi = log_prob_and_gradient(target, x32).second + x32;
  return kScoreBound * torch::tanh(phi / kScoreBound);
}

BsdeModelImpl::BsdeModelImpl(int64_t dim, const NetworkConfig& network,
                             const NoiseSchedule& schedule)
    : dim_(dim),
      blocks_(network.blocks),
      block_dim_(dim / network.blocks),
      time_features_(network.time_features),
      gain_(network.gain),
      schedule_(schedule),
      activation_(parse_activation(network.activation)) {
  if (dim % blocks_ != 0) {
    throw Error("network.blocks: " + std::to_string(blocks_) +
                " blocks do not divide the target's dimension " + std::to_string(dim));
  }
  const int64_t n_time = 1 + 2 * time_features_;
  // One Linear(d/blocks + n_time → width) split in two; both parts get PyTorch's default
  // initialisation for the fan-in of the whole layer.
  input_x_ = register_module(
      "input_x",
      torch::nn::Linear(torch::nn::LinearOptions(block_dim_, network.width).bias(false)));
  input_t_ = register_module("input_t", torch::nn::Linear(n_time, network.width));
  {
    torch::NoGradGuard no_grad;
    const double bound = 1.0 / std::sqrt(static_cast<double>(block_dim_ + n_time));
    input_x_->weight.uniform_(-bound, bound);
    input_t_->weight.uniform_(-bound, bound);
    input_t_->bias.uniform_(-bound, bound);
  }
  for (int64_t layer = 1; layer < network.depth; ++layer) {
    hidden_.push_back(register_module("hidden" + std::to_string(layer),
                                      torch::nn::Linear(network.width, network.width)));
  }
  output_ = register_module(
      "output", zero_linear(network.width, gain_ ? 2 * block_dim_ : block_dim_, /*bias=*/true));
  if (network.score) {
    score_gain_ = register_module("score", zero_linear(n_time, 1, /*bias=*/true));
  }
  if (network.y0_residual) {
    // A small network: the Gaussian reference already carries Y₀'s main part. No output
    // bias: a constant shift is c's, and a second one would have no gradient at all.
    const int64_t width = std::max<int64_t>(network.width / 2, 8);
    residual_ = register_module(
        "y0_residual",
        torch::nn::Sequential(
            torch::nn::Linear(dim, width),
            torch::nn::Functional([activation = activation_](const torch::Tensor& x) {
              return activate(activation, x);
            }),
            zero_linear(width, 1, /*bias=*/false)));
  }
  constant_ = register_buffer("constant", torch::zeros({1}, torch::kFloat64));
}

torch::Tensor BsdeModelImpl::time_features(const torch::Tensor& s) const {
  const auto tau = (s / schedule_.horizon).unsqueeze(1);  // [K, 1]
  if (time_features_ == 0) return tau;
  const auto k = torch::arange(1, time_features_ + 1, s.options()) * kPi;  // [F]
  const auto phase = tau * k;                                              // [K, F]
  return torch::cat({tau, torch::sin(phase), torch::cos(phase)}, 1);
}

torch::Tensor BsdeModelImpl::root_b(const torch::Tensor& s) const {
  const auto times = s.to(torch::kFloat64).contiguous();
  auto root_b = torch::empty_like(times);
  for (int64_t k = 0; k < times.numel(); ++k) {
    root_b.data_ptr<double>()[k] = schedule_.root_b(times.data_ptr<double>()[k]);
  }
  return root_b.to(s.scalar_type());
}

torch::Tensor BsdeModelImpl::output(const torch::Tensor& s, const torch::Tensor& blocks) {
  auto h = activate(activation_,
                    input_x_->forward(blocks) + input_t_->forward(time_features(s)).unsqueeze(1));
  for (auto& layer : hidden_) h = activate(activation_, layer->forward(h));
  return output_->forward(h);
}

torch::Tensor BsdeModelImpl::add_score_term(const torch::Tensor& s, const torch::Tensor& z,
                                            const torch::Tensor& score) {
  if (score.defined() != has_score()) {
    throw Error(has_score() ? "internal: network.score's Z_θ needs the feature φ(x)"
                            : "internal: φ(x) given to a network without network.score");
  }
  if (!has_score()) return z;
  const auto coefficient = root_b(s) * score_gain_->forward(time_features(s)).squeeze(1);
  return z + (z.dim() == 3 ? coefficient.view({-1, 1, 1}) : coefficient) * score;
}

torch::Tensor BsdeModelImpl::z(const torch::Tensor& s, const torch::Tensor& x,
                               const torch::Tensor& score) {
  const auto blocks = x.reshape({x.size(0), x.size(1) * blocks_, block_dim_});
  const auto root_b_s = root_b(s).view({-1, 1, 1});
  const auto out = output(s, blocks);
  const auto z = gain_ ? head_a(out) + gain_fraction(out) * root_b_s * blocks : out;
  return add_score_term(s, z.view_as(x) - root_b_s * x, score);
}

torch::Tensor BsdeModelImpl::z(double s, const torch::Tensor& x, const torch::Tensor& score) {
  return z_gain(s, x, score).z;
}

BsdeModelImpl::ZGain BsdeModelImpl::z_gain(double s, const torch::Tensor& x,
                                           const torch::Tensor& score) {
  const auto time = torch::full({1}, s, x.options());
  const auto blocks = x.reshape({1, x.size(0) * blocks_, block_dim_});
  const auto out = output(time, blocks);
  const double root_b_s = schedule_.root_b(s);
  if (!gain_) return {add_score_term(time, out.view_as(x) - root_b_s * x, score), torch::Tensor()};
  const auto g = gain_fraction(out) * root_b_s;
  return {add_score_term(time, (head_a(out) + g * blocks).view_as(x) - root_b_s * x, score),
          g.contiguous().view_as(x)};
}

torch::Tensor BsdeModelImpl::z_recording(double s, const torch::Tensor& x, Record& record,
                                         const torch::Tensor& score) {
  const auto time = torch::full({1}, s, x.options());
  at::addmm_out(record.pre[0], input_t_->forward(time_features(time)),
                x.reshape({x.size(0) * blocks_, block_dim_}), input_x_->weight.t());
  activate_into(activation_, record.pre[0], record.post[0]);
  for (size_t l = 0; l < hidden_.size(); ++l) {
    at::addmm_out(record.pre[l + 1], hidden_[l]->bias, record.post[l], hidden_[l]->weight.t());
    activate_into(activation_, record.pre[l + 1], record.post[l + 1]);
  }
  const auto out = torch::addmm(output_->bias, record.post.back(), output_->weight.t());
  const double root_b_s = schedule_.root_b(s);
  if (!gain_) return add_score_term(time, out.view_as(x) - root_b_s * x, score);
  record.gain = (gain_fraction(out) * root_b_s).contiguous().view_as(x);
  return add_score_term(time, head_a(out).view_as(x) + (record.gain - root_b_s) * x, score);
}

torch::Tensor BsdeModelImpl::head_a(const torch::Tensor& out) const {
  return out.narrow(out.dim() - 1, 0, block_dim_);
}

torch::Tensor BsdeModelImpl::gain_fraction(const torch::Tensor& out) const {
  // G / √b = 1 − e^{−g} = −expm1(−g): g = log v for a conditional variance v.
  return -torch::expm1(-out.narrow(out.dim() - 1, block_dim_, block_dim_));
}

void BsdeModelImpl::accumulate_gradient(const torch::Tensor& s, const torch::Tensor& x,
                                        const torch::Tensor& g, const Record& record) {
  torch::NoGradGuard no_grad;
  // One row per (time, point, block).
  const int64_t times = s.size(0), rows = x.size(0) * x.size(1) * blocks_, width = this->width();
  std::vector<torch::Tensor> pre, post;
  for (size_t l = 0; l < record.pre.size(); ++l) {
    pre.push_back(record.pre[l].reshape({rows, width}));
    post.push_back(record.post[l].reshape({rows, width}));
  }
  const auto x_rows = x.reshape({rows, block_dim_});
  auto g_rows = g.reshape({rows, block_dim_});
  // Output layer: Z = A + G ⊙ x − √b x with [A, g] = W_o h + b_o and G = √b (1 − e^{−g})
  // (A alone without the gain), so ∂Z/∂g = √b e^{−g} ⊙ x.
  if (gain_) {
    const auto g_raw = torch::addmm(output_->bias.narrow(0, block_dim_, block_dim_), post.back(),
                                    output_->weight.narrow(0, block_dim_, block_dim_).t());
    const auto slope =
        (torch::exp(-g_raw).view({times, rows / times, block_dim_}) * root_b(s).view({-1, 1, 1}))
            .view({rows, block_dim_});
    g_rows = torch::cat({g_rows, g_rows * slope * x_rows}, 1);
  }
  accumulate(output_->weight, g_rows.t().mm(post.back()));
  accumulate(output_->bias, g_rows.sum(0));
  auto grad_h = g_rows.mm(output_->weight);
  // Hidden layers, last to first: h_l = act(W_l h_{l−1} + b_l).
  for (size_t l = hidden_.size(); l-- > 0;) {
    const auto grad_pre = activate_backward(activation_, grad_h, pre[l + 1], post[l + 1]);
    accumulate(hidden_[l]->weight, grad_pre.t().mm(post[l]));
    accumulate(hidden_[l]->bias, grad_pre.sum(0));
    grad_h = grad_pre.mm(hidden_[l]->weight);
  }
  // First layer: W_x x + (W_t features(s) + b), the time-part shared by each time's rows.
  const auto grad_pre = activate_backward(activation_, grad_h, pre[0], post[0]);
  accumulate(input_x_->weight, grad_pre.t().mm(x_rows));
  const auto per_time = grad_pre.view({times, rows / times, width}).sum(1);  // [K, width]
  accumulate(input_t_->weight, per_time.t().mm(time_features(s)));
  accumulate(input_t_->bias, per_time.sum(0));
}

void BsdeModelImpl::accumulate_score_gradient(const torch::Tensor& s, const torch::Tensor& q) {
  torch::NoGradGuard no_grad;
  const auto weight = (root_b(s) * q).view({1, -1});  // √b(s_k) q_k, [1, K]
  accumulate(score_gain_->weight, weight.mm(time_features(s)));
  accumulate(score_gain_->bias, weight.sum(1));
}

torch::Tensor BsdeModelImpl::log_reference(const torch::Tensor& x) {
  const double d = static_cast<double>(x.size(1));
  return -0.5 * x.pow(2).sum(1) - 0.5 * d * std::log(2.0 * kPi);
}

torch::Tensor BsdeModelImpl::y0(const torch::Tensor& x0) {
  return log_reference(x0) + constant() + y0_residual(x0.to(torch::kFloat32)).to(x0.scalar_type());
}

torch::Tensor BsdeModelImpl::y0_offset(const torch::Tensor& x0) {
  return y0_residual(x0.to(torch::kFloat32)).to(torch::kFloat64) + constant();
}

torch::Tensor BsdeModelImpl::y0_residual(const torch::Tensor& x0) {
  if (residual_.is_empty()) return torch::zeros({x0.size(0)}, x0.options());
  return residual_->forward(x0).squeeze(1);
}

void BsdeModelImpl::set_constant(double c) {
  torch::NoGradGuard no_grad;
  constant_.fill_(c);
}

}  // namespace rbsde
