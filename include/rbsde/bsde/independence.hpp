#pragma once
/// \file independence.hpp
/// Independence moves: the trained model as a global proposal inside the refinement's MCMC
/// (method.md §5; Gabrié, Rotskoff & Vanden-Eijnden, PNAS 2022, do the same with a
/// normalising flow beside local Langevin moves).
///
/// The weight of method.md §5 is a ratio of two measures on paths x_0 … x_N: P, the noising
/// process run backwards from X_N ~ π (density π̃(x_N) Π_n k_n(x_n | x_{n+1}) / 𝒵), and Q, the
/// model's reverse SDE (N(x_0; 0, I) Π_n q_n(x_{n+1} | x_n)): w = 𝒵 dP/dQ on every path, the
/// sampler's own or not. A chain at x moves in two steps that each keep P, so that its end
/// point keeps π: (1) a path ending at x is drawn from P's conditional given x_N = x (the
/// noising process started at x, one k_n at a time) and its log weight computed
/// (noised_path_log_weights); (2) a fresh path of Q is proposed and accepted with probability
/// min(1, w′ / w): independence Metropolis–Hastings for P. The acceptance is high where the
/// model's weights are good and low where they are poor, but an accepted move goes anywhere
/// the model reaches in one step: into the neck of a funnel that local HMC steps hardly enter,
/// or to another mode.
#include <torch/torch.h>

#include <cstdint>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/bsde/model.hpp"
#include "rbsde/core/noise.hpp"
#include "rbsde/core/schedule.hpp"
#include "rbsde/core/target.hpp"

namespace rbsde {

/// The trained model and its time grid: the proposal of independence moves.
struct ModelProposal {
  BsdeModel model;
  TimeGrid grid;
};

/// log w of a path of the noising process from each row of x [C, d] (float64, log π̃ there in
/// log_target [C]) back to s = 0: x_n = a_n x_{n+1} + √(1 − a_n²) η_n, η_n the normals of
/// global path first + i at step n of `key`; each step is scored by path_log_weight_step with
/// Z_θ(s_n, x_n) evaluated as the sampler evaluates it, and log N(x_0; 0, I) is subtracted at
/// the end. Without a graph; memory O(C d).
torch::Tensor noised_path_log_weights(const Target& target, const ModelProposal& proposal,
                                      const torch::Tensor& x, const torch::Tensor& log_target,
                                      const NoiseKey& key, int64_t first);

/// Independence move number `move` of every chain (noise of the kIndependence stream of
/// `seed`, keyed by the global chain index): steps (1) and (2) above. A proposed end point with
/// a non-finite log π̃ or gradient is rejected, like an HMC trajectory ending there. Returns
/// the accept flags [C] (bool).
torch::Tensor independence_step(const Target& target, const ModelProposal& proposal, Chains& chains,
                                uint64_t seed, uint32_t move);

}  // namespace rbsde
