#pragma once
/// \file variational.hpp
/// A Gaussian reference fitted by maximising the evidence lower bound (automatic
/// differentiation variational inference, Kucukelbir et al., JMLR 2017), and the measures that
/// compare candidate references (method.md §4).
///
/// Where the posterior has no usable mode (hierarchical models: the density climbs towards a
/// scale parameter near zero, far from the mass) the Laplace map is degenerate or does not
/// exist; the Gaussian q = N(m, L Lᵀ) that maximises
///   ELBO(q) = E_q[log π̃(X)] + H(q),   H(q) = log |det L| + ½ d log 2πe,
/// sits where the mass is, with the spread of the mass: ELBO ≤ log 𝒵, and log 𝒵 − ELBO is
/// KL(q ‖ π), the divergence from the target of the reference that training starts from.
/// The fit is stochastic gradient ascent (Adam, learning rate on a cosine from
/// kVariationalLearningRate to 1/100 of it) with the reparameterisation x = m + L ε,
/// ε ~ N(0, I), on kVariationalDraws draws per iteration from the counter-based generator (a
/// fit is the same on every machine for the same seed), in the whitened coordinates of its
/// start, so that the optimiser's steps are on the start's scale. Draws where log π̃ is not finite
/// (outside the support) are left out of the step; a step whose gradient is not finite is skipped.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "rbsde/core/target.hpp"

namespace rbsde {

/// Draws per iteration of the variational fit.
inline constexpr int64_t kVariationalDraws = 32;
/// The initial learning rate (Adam) of the variational fit; a cosine takes it to 1/100 of that.
inline constexpr double kVariationalLearningRate = 0.05;
/// Draws from a candidate reference that measure it (reference_quality).
inline constexpr int64_t kQualityDraws = 2048;

/// How well N(m, L Lᵀ) fits the target, from `draws` independent draws x_i with importance
/// log weights log w_i = log π̃(x_i) − log q(x_i).
struct ReferenceQuality {
  double elbo = 0.0;         ///< mean log w (−∞ when log π̃ is −∞ on some draw)
  double elbo_stderr = 0.0;  ///< its Monte Carlo standard error over the finite weights
  double pareto_k = 0.0;     ///< k̂ of the weights (psis.hpp); NaN with too few finite ones
  double ess = 0.0;          ///< (Σ w)² / Σ w², of `draws`
  int64_t draws = 0;
  int64_t finite = 0;  ///< draws where log π̃ is finite
};

/// Measures the reference N(map.centre, L Lᵀ) of `target` on `draws` draws of the seed.
ReferenceQuality reference_quality(const Target& target, const Affine& map, int64_t draws,
                                   uint64_t seed);

/// The Gaussian that maximises the ELBO, from `start` (its form, diagonal or lower-triangular
/// L, is kept), after `iterations` iterations of kVariationalDraws draws each; prints its
/// progress. Throws Error (naming `what`) when log π̃ is not finite on any draw of an
/// iteration or the fit ends with non-finite parameters.
Affine variational_map(const Target& target, const Affine& start, int64_t iterations, uint64_t seed,
                       const std::string& what);

}  // namespace rbsde
