#include "rbsde/bsde/objective.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "rbsde/bsde/model.hpp"

namespace rbsde {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

Annealing::Annealing(const TrainConfig& train)
    : gamma0(train.anneal_gamma0),
      fraction(train.anneal_fraction),
      iterations(train.iterations),
      path(train.anneal_path == "tempered" ? Path::kTempered : Path::kBridge) {}

double Annealing::gamma(int64_t iteration) const {
  if (gamma0 >= 1.0) return 1.0;
  const double ramp = fraction * static_cast<double>(iterations);
  const double progress = ramp > 0.0 ? std::min(1.0, static_cast<double>(iteration) / ramp) : 1.0;
  return gamma0 + (1.0 - gamma0) * progress;
}

torch::Tensor Annealing::terminal(const Target& target, const torch::Tensor& x,
                                  double gamma) const {
  auto log_target = target.log_prob(x);
  if (gamma >= 1.0) return log_target;
  if (path == Path::kTempered) return gamma * log_target;
  return gamma * log_target + (1.0 - gamma) * BsdeModelImpl::log_reference(x);
}

torch::Tensor floor_outside_support(const torch::Tensor& terminal, const Communicator& comm) {
  const auto values = terminal.detach();
  const auto finite = torch::isfinite(values);
  // The largest −log π̃ over the finite entries of all ranks is minus the floor.
  double negated_floor = finite.any().item<bool>()
                             ? -values.masked_select(finite).min().item<double>()
                             : -std::numeric_limits<double>::infinity();
  comm.allreduce_max(&negated_floor, 1);
  if (!std::isfinite(negated_floor)) return terminal;
  return torch::where(values == -std::numeric_limits<double>::infinity(),
                      torch::full_like(terminal, -negated_floor), terminal);
}

LearningRate::LearningRate(const TrainConfig& train)
    : initial(train.lr),
      final(train.lr_final),
      cosine(train.lr_schedule == "cosine"),
      iterations(train.iterations) {}

double LearningRate::at(int64_t iteration) const {
  if (!cosine || iterations <= 1) return initial;
  const double progress = static_cast<double>(iteration) / static_cast<double>(iterations - 1);
  return final + 0.5 * (initial - final) * (1.0 + std::cos(kPi * progress));
}

ResidualLoss::ResidualLoss(const TrainConfig& train) : tilt(train.tilt), paths(train.paths) {}

std::array<double, 2> ResidualLoss::local_sums(const torch::Tensor& residual) {
  return {residual.sum().item<double>(), residual.pow(2).sum().item<double>()};
}

ResidualLoss::Moments ResidualLoss::moments(double sum, double sum_of_squares) const {
  const double m = static_cast<double>(paths);
  Moments result;
  result.mean = sum / m;
  // Rounding can make the variance slightly negative; a NaN must stay NaN (std::max would
  // turn it into 0 and hide the divergence).
  const double variance = sum_of_squares / m - result.mean * result.mean;
  result.variance = variance < 0.0 ? 0.0 : variance;
  return result;
}

torch::Tensor ResidualLoss::gradient_factors(const torch::Tensor& residual, double mean,
                                             const Communicator& comm) const {
  if (tilt == 0.0) return (residual - mean) * (2.0 / static_cast<double>(paths));
  // p_i = exp(−κ r_i − shift) / Σ_j exp(−κ r_j − shift), the shift the largest exponent of
  // all ranks, so that no exponential overflows.
  const auto exponent = -tilt * residual;
  double shift = residual.numel() > 0 ? exponent.max().item<double>()
                                      : -std::numeric_limits<double>::infinity();
  comm.allreduce_max(&shift, 1);
  const auto e = torch::exp(exponent - shift);
  double sums[2] = {e.sum().item<double>(), (e * residual).sum().item<double>()};
  comm.allreduce_sum(sums, 2);
  const double weighted_mean = sums[1] / sums[0];
  return (e / sums[0]) * (residual - weighted_mean) * 2.0;
}

}  // namespace rbsde
