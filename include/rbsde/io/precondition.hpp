#pragma once
/// \file precondition.hpp
/// Choosing the affine preconditioner of a run (method.md §4) on every rank: the map that
/// precondition.kind names (core/affine_target.hpp), computed on rank 0 (a pilot run's file is
/// read there) and broadcast.
#include <memory>

#include "rbsde/core/affine_target.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// Collective: the map that precondition.kind names, computed on rank 0 and broadcast, so
/// every rank holds bit-identical m and L.
///   none     the identity (m = 0, L = I)
///   config   precondition.centre and precondition.scale
///   prior    target.prior(); an Error naming the target if it has none
///   laplace  m = argmax log π̃ by L-BFGS (float64, strong Wolfe line search, at most
///            precondition.iterations iterations, from the prior centre or 0), H = −∇² log π̃(m)
///            by autograd; L = chol(H⁻¹), diag(H⁻¹)^½ (form: diagonal) or diag(H)^−½
///            (form: curvature, the auto form above kDenseMapMaxDim dimensions)
///   pilot    self-normalised weighted mean and covariance (variances with form: diagonal,
///            the auto form above kDenseMapMaxDim dimensions)
///            of /samples and /log_weights in the HDF5 file precondition.pilot
///   variational  the Gaussian that maximises the ELBO (bsde/variational.hpp), from the
///            prior or N(0, I); L lower triangular up to kDenseMapMaxDim dimensions, else
///            diagonal (form: auto)
///   auto     laplace where it succeeds and its own importance weights are usable (Pareto k̂
///            of kQualityDraws draws at most 0.7); else the variational Gaussians fitted from
///            the prior (or N(0, I)) and from the Laplace map where there is one, and of all
///            candidates the one with the highest ELBO. It prints each candidate's ELBO, k̂
///            and ESS, and what it chose and why
/// Failures (no convergence, H or the covariance not positive definite, a missing or
/// mismatched pilot file) throw Error naming the key on every rank, rank 0 with the reason.
/// Rank 0 prints what laplace and pilot found.
Affine make_preconditioner(const Target& target, const PreconditionConfig& config,
                           const Communicator& comm);

/// Collective: `target` itself when precondition.kind is none, otherwise an AffineTarget
/// wrapping it with make_preconditioner's map. Training and sampling run on the result.
std::unique_ptr<Target> precondition(std::unique_ptr<Target> target,
                                     const PreconditionConfig& config, const Communicator& comm);

}  // namespace rbsde
