#pragma once
/// \file model.hpp
/// The deep-BSDE networks (method.md §4):
///   Z_θ(s, x) = √b(s)·(−x) + MLP([x, time features(s)])  [+ √b(s) a_θ(s) φ(x)]
///   Y₀(x)     = log N(x; 0, I) + c_θ + r_θ(x)      (r_θ optional)
/// With network.score the target-score feature φ(x) ≈ ∇log π̃(x) + x (score_feature) enters
/// with a scalar a_θ(s), linear in the time features and starting at 0: at s = T the exact
/// Z = √b ∇log π̃ is a_θ = 1, and for a target N(0, I) φ = 0.
/// With network.blocks = k > 1 the MLP maps each block of d/k consecutive coordinates
/// [x_block, time features] to that block of Z, one MLP shared by the k blocks.
/// The MLP's last layer starts at zero, so the untrained model is the stationary OU process.
///
/// Training (detached paths) evaluates Z in two passes: z_recording() at every grid time
/// without a graph, keeping each hidden layer's pre-activations, then
/// accumulate_gradient(), a hand-written backward over all recorded rows at once that
/// needs no second forward pass. z() is the same network built from differentiable torch
/// operations, for the coupled mode and for tests.
#include <torch/torch.h>

#include <string>

#include "rbsde/bsde/results.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"

namespace rbsde {

/// The bound K of the score feature's coordinates.
inline constexpr double kScoreBound = 10.0;

/// φ(x) = K tanh((∇log π̃(x) + x) / K) [B, d] float32 for x [B, d] (float32 or float64, an
/// inference tensor or not): the feature of network.score, computed in float32 as the network
/// runs. Near the typical set of a preconditioned target φ is the score less the reference's
/// (|φ| ≪ K); bounded, a score that grows fast in the tails (the LGCP's e^x) cannot drive a
/// path to infinity as an explicit Langevin step would.
torch::Tensor score_feature(const Target& target, const torch::Tensor& x);

class BsdeModelImpl : public torch::nn::Module {
 public:
  /// network.activation, parsed once by the constructor.
  enum class Activation { kSilu, kTanh, kRelu, kGelu };

  BsdeModelImpl(int64_t dim, const NetworkConfig& network, const NoiseSchedule& schedule);

  int64_t dim() const { return dim_; }
  /// Time features [τ, sin(kπτ), cos(kπτ)], τ = s/T, for times s [K] (float32): [K, 1 + 2F].
  torch::Tensor time_features(const torch::Tensor& s) const;
  /// Z_θ(s_k, x_{k,i}) for K times s [K] and points x [K, B, d] (float32): [K, B, d].
  /// The first layer is split into an x-part and a time-part, so the time features are
  /// computed once per time and broadcast over the B points. `score` is φ(x) [K, B, d] with
  /// network.score (score_feature), undefined without; likewise below.
  torch::Tensor z(const torch::Tensor& s, const torch::Tensor& x,
                  const torch::Tensor& score = torch::Tensor());
  /// Z_θ(s, x) at one time s for all rows of x [B, d].
  torch::Tensor z(double s, const torch::Tensor& x, const torch::Tensor& score = torch::Tensor());
  /// Z_θ(s, x) and, with network.gain, G_θ(s, x) (contiguous; undefined without), [B, d]
  /// each: the reverse step integrates the gain's linear part exactly (gain_step in
  /// schedule.hpp).
  struct ZGain {
    torch::Tensor z, gain;
  };
  ZGain z_gain(double s, const torch::Tensor& x, const torch::Tensor& score = torch::Tensor());
  bool has_gain() const { return gain_; }
  bool has_score() const { return !score_gain_.is_empty(); }
  /// Number of hidden layers, each of `width()` units.
  int64_t depth() const { return static_cast<int64_t>(hidden_.size()) + 1; }
  int64_t width() const { return input_x_->weight.size(0); }
  /// Rows the MLP sees per point x: network.blocks. Record buffers hold B · blocks() rows.
  int64_t blocks() const { return blocks_; }
  /// What z_recording keeps of hidden layer l for the backward: its input to the
  /// activation (pre[l]) and its output (post[l]), [B · blocks, width] or
  /// [K, B · blocks, width] each.
  struct Record {
    std::vector<torch::Tensor> pre, post;
    torch::Tensor gain;  ///< the last call's G_θ(s, x) [B, d], contiguous (network.gain only)
  };
  /// Z_θ(s, x) for x [B, d] without a graph, writing every hidden layer (and the gain)
  /// into `record`.
  torch::Tensor z_recording(double s, const torch::Tensor& x, Record& record,
                            const torch::Tensor& score = torch::Tensor());
  /// Adds to the parameters' .grad() the gradient of Σ_{k,i} Z_θ(s_k, x_{k,i}) · g_{k,i}
  /// for times s [K], points x [K, B, d], weights g [K, B, d] and what z_recording wrote
  /// for them.
  void accumulate_gradient(const torch::Tensor& s, const torch::Tensor& x, const torch::Tensor& g,
                           const Record& record);
  /// network.score: adds to a_θ's .grad() the gradient of Σ_k √b(s_k) a_θ(s_k) q_k for times
  /// s [K] and q [K], q_k = Σ_i g_{k,i}·φ(x_{k,i}) (the score term of Σ Z_θ · g).
  void accumulate_score_gradient(const torch::Tensor& s, const torch::Tensor& q);
  /// log N(x; 0, I) in x's dtype: [B].
  static torch::Tensor log_reference(const torch::Tensor& x);
  /// Y₀(x₀) = log N(x₀; 0, I) + c_θ + r_θ(x₀) [B] in x₀'s dtype (r_θ sees float32), the
  /// start of the Y recursion.
  torch::Tensor y0(const torch::Tensor& x0);
  /// c_θ + r_θ(x₀) [B] in float64: Y₀ − log N(x₀; 0, I), each path's network estimate of
  /// log 𝒵 (the samplers' y0_offset).
  torch::Tensor y0_offset(const torch::Tensor& x0);
  /// r_θ(x₀) [B], or zeros when the residual network is off.
  torch::Tensor y0_residual(const torch::Tensor& x0);
  bool has_y0_residual() const { return !residual_.is_empty(); }

  /// c_θ, the network's estimate of log 𝒵 (a buffer set by the optimal-constant rule,
  /// not a parameter of the optimiser).
  double constant() const { return constant_.item<double>(); }
  void set_constant(double c);

 private:
  int64_t dim_;
  int64_t blocks_;
  int64_t block_dim_;  // d / blocks: the MLP's input and output width
  int64_t time_features_;
  bool gain_;  // network.gain
  NoiseSchedule schedule_;
  torch::Tensor root_b(const torch::Tensor& s) const;  // schedule_.root_b for times s [K]
  /// z + √b(s_k) a_θ(s_k) φ for times s [K] and z, φ = `score` [K, B, d] (or [B, d] at one
  /// time); z itself without network.score. Throws unless φ is given exactly when
  /// network.score is on.
  torch::Tensor add_score_term(const torch::Tensor& s, const torch::Tensor& z,
                               const torch::Tensor& score);
  /// The output layer for times s [K] and x in blocks [K, B · blocks, d / blocks].
  torch::Tensor output(const torch::Tensor& s, const torch::Tensor& blocks);
  /// The output layer's [.., d/blocks] is A; with the gain it is [A, g], [.., 2 d/blocks],
  /// and the gain G = √b (1 − e^{−g}) < √b: the score of a conditional variance v = e^g is
  /// G = √b (1 − 1/v), and the bound keeps the reverse drift's linear part below ½ b, so an
  /// untrained or fast-moving network cannot drive paths to infinity (G growing with |x|
  /// would: the drift G ⊙ x then grows like |x|²).
  torch::Tensor head_a(const torch::Tensor& out) const;
  /// G / √b = 1 − e^{−g}, multiplied by √b (a number or one per time) where it is used.
  torch::Tensor gain_fraction(const torch::Tensor& out) const;

  Activation activation_;
  torch::nn::Linear input_x_{nullptr};     // first layer, x-part (no bias)
  torch::nn::Linear input_t_{nullptr};     // first layer, time-part (with the bias)
  std::vector<torch::nn::Linear> hidden_;  // width → width, depth − 1 of them
  torch::nn::Linear output_{nullptr};      // width → d (2d with the gain), starts at zero
  torch::nn::Linear score_gain_{nullptr};  // time features → a_θ(s) (network.score)
  torch::nn::Sequential residual_{nullptr};
  torch::Tensor constant_;  // [1] float64 buffer
};
TORCH_MODULE(BsdeModel);

}  // namespace rbsde
