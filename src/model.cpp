#include "rbsde/model.hpp"

#include <array>
#include <cmath>
#include <filesystem>
#include <utility>

#include "rbsde/error.hpp"

namespace rbsde {

namespace {

constexpr double kPi = 3.14159265358979323846;

torch::nn::AnyModule make_activation(const std::string& name) {
  if (name == "silu") return torch::nn::AnyModule(torch::nn::SiLU());
  if (name == "tanh") return torch::nn::AnyModule(torch::nn::Tanh());
  if (name == "relu") return torch::nn::AnyModule(torch::nn::ReLU());
  if (name == "gelu") return torch::nn::AnyModule(torch::nn::GELU());
  throw Error("network.activation: unknown activation '" + name +
              "' (accepted: silu, tanh, relu, gelu)");
}

/// From the first layer's output: activation, (depth − 1) hidden layers, and an output
/// layer that starts at zero so the untrained Z is the stationary OU drift.
void append_hidden(torch::nn::Sequential& hidden, int64_t width, int64_t depth, int64_t out,
                   const std::string& activation) {
  hidden->push_back(make_activation(activation));
  for (int64_t layer = 1; layer < depth; ++layer) {
    hidden->push_back(torch::nn::Linear(width, width));
    hidden->push_back(make_activation(activation));
  }
  torch::nn::Linear last(width, out);
  torch::NoGradGuard no_grad;
  last->weight.zero_();
  last->bias.zero_();
  hidden->push_back(last);
}

}  // namespace

BsdeModelImpl::BsdeModelImpl(int64_t dim, const NetworkConfig& network,
                             const NoiseSchedule& schedule)
    : dim_(dim), time_features_(network.time_features), schedule_(schedule) {
  const int64_t n_time = 1 + 2 * time_features_;
  // One Linear(d + n_time → width) split in two; both parts get PyTorch's default
  // initialisation for the fan-in of the whole layer.
  input_x_ = register_module("input_x", torch::nn::Linear(
                                            torch::nn::LinearOptions(dim, network.width).bias(false)));
  input_t_ = register_module("input_t", torch::nn::Linear(n_time, network.width));
  {
    torch::NoGradGuard no_grad;
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim + n_time));
    input_x_->weight.uniform_(-bound, bound);
    input_t_->weight.uniform_(-bound, bound);
    input_t_->bias.uniform_(-bound, bound);
  }
  hidden_ = register_module("hidden", torch::nn::Sequential());
  append_hidden(hidden_, network.width, network.depth, dim, network.activation);
  if (network.y0_residual) {
    // A small network: the Gaussian reference already carries Y₀'s main part.
    const int64_t width = std::max<int64_t>(network.width / 2, 8);
    residual_ = register_module("y0_residual", torch::nn::Sequential(torch::nn::Linear(dim, width)));
    append_hidden(residual_, width, /*depth=*/1, /*out=*/1, network.activation);
  }
  constant_ = register_buffer("constant", torch::zeros({1}, torch::kFloat64));
}

torch::Tensor BsdeModelImpl::time_features(const torch::Tensor& s) const {
  const auto tau = (s / schedule_.horizon).unsqueeze(1);  // [K, 1]
  if (time_features_ == 0) return tau;
  const auto k = torch::arange(1, time_features_ + 1, s.options()) * kPi;  // [F]
  const auto phase = tau * k;                                             // [K, F]
  return torch::cat({tau, torch::sin(phase), torch::cos(phase)}, 1);
}

torch::Tensor BsdeModelImpl::z(const torch::Tensor& s, const torch::Tensor& x) {
  // b(s) = β(T − s) is affine in s for both schedules, so it is evaluated on the tensor.
  const double T = schedule_.horizon;
  const auto beta = schedule_.beta_min + (schedule_.beta_max - schedule_.beta_min) * (T - s) / T;
  const auto first = input_x_->forward(x) + input_t_->forward(time_features(s)).unsqueeze(1);
  return hidden_->forward(first) - torch::sqrt(beta).view({-1, 1, 1}) * x;
}

torch::Tensor BsdeModelImpl::z(double s, const torch::Tensor& x) {
  return z(torch::full({1}, s, x.options()), x.unsqueeze(0)).squeeze(0);
}

torch::Tensor BsdeModelImpl::log_reference(const torch::Tensor& x) {
  const double d = static_cast<double>(x.size(1));
  return -0.5 * x.pow(2).sum(1) - 0.5 * d * std::log(2.0 * kPi);
}

torch::Tensor BsdeModelImpl::y0_residual(const torch::Tensor& x0) {
  if (residual_.is_empty()) return torch::zeros({x0.size(0)}, x0.options());
  return residual_->forward(x0).squeeze(1);
}

void BsdeModelImpl::set_constant(double c) {
  torch::NoGradGuard no_grad;
  constant_.fill_(c);
}

namespace {
/// The archive entries of the training history, for saving (const) and loading.
template <typename History>
auto history_fields(History& history) {
  return std::array{std::pair{"history_loss", &history.loss},
                    std::pair{"history_log_z", &history.log_z},
                    std::pair{"history_time", &history.time},
                    std::pair{"history_gamma", &history.gamma}};
}

torch::Tensor shape_record(int64_t dim, const NetworkConfig& network) {
  return torch::tensor({dim, network.width, network.depth, network.time_features,
                        static_cast<int64_t>(network.y0_residual)},
                       torch::kInt64);
}
}  // namespace

void save_model(const std::string& path, BsdeModel& model, const NetworkConfig& network,
                const TrainingHistory& history) {
  const std::string tmp = path + ".tmp";
  try {
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    torch::serialize::OutputArchive archive;
    model->save(archive);
    archive.write("shape", shape_record(model->dim(), network));
    for (const auto& [key, values] : history_fields(history)) {
      archive.write(key, torch::tensor(*values, torch::kFloat64));
    }
    archive.save_to(tmp);
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error("cannot save network parameters to '" + path + "': " + e.what());
  }
}

TrainingHistory load_model(const std::string& path, BsdeModel& model,
                           const NetworkConfig& network) {
  if (!std::filesystem::exists(path)) {
    throw Error("network parameters '" + path +
                "' not found: run `rbsde train` first, or set sample.model");
  }
  TrainingHistory history;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor shape;
    archive.read("shape", shape);
    if (!torch::equal(shape, shape_record(model->dim(), network))) {
      throw Error("network parameters '" + path +
                  "' were trained with other settings (target.dim, network.width, depth, "
                  "time_features, y0_residual must match the training run)");
    }
    model->load(archive);
    for (const auto& [key, values] : history_fields(history)) {
      torch::Tensor stored;
      archive.read(key, stored);
      stored = stored.contiguous();
      values->assign(stored.data_ptr<double>(), stored.data_ptr<double>() + stored.numel());
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("cannot load network parameters from '" + path + "': " + e.what());
  }
  return history;
}

}  // namespace rbsde
