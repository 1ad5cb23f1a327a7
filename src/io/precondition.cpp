#include "rbsde/io/precondition.hpp"

#include <hdf5.h>

#include <Eigen/Dense>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <new>
#include <system_error>
#include <utility>
#include <vector>

#include "rbsde/bsde/mcmc.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/hdf5.hpp"

namespace rbsde {
namespace {

/// The extent of a dataset of `rank` dimensions in an open file (an Error otherwise).
std::vector<hsize_t> dataset_extent(hid_t dataset, int rank, const std::string& what) {
  Hdf5Handle space(H5Dget_space(dataset), H5Sclose);
  if (space.get() < 0 || H5Sget_simple_extent_ndims(space.get()) != rank) {
    throw Error(what + " is not a " + std::to_string(rank) + "-dimensional dataset");
  }
  std::vector<hsize_t> extent(rank);
  H5Sget_simple_extent_dims(space.get(), extent.data(), nullptr);
  return extent;
}

/// /samples [n, d] and /log_weights [n] of an rbsde output file, read on this process alone
/// with the default (serial) file access.
void read_pilot(const std::string& path, int64_t d, RowMajorMatrix& samples,
                Eigen::VectorXd& log_weights) {
  const std::string what = "precondition.pilot: '" + path + "'";
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(path, ignored)) {
    throw Error(what + ": no such file (give the output.path of an earlier rbsde run)");
  }
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures are reported as Errors below
  Hdf5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (file.get() < 0) throw Error(what + ": cannot be opened as an HDF5 file");
  if (!is_complete_output(file.get())) {
    throw Error(what + ": is not a complete rbsde output file (no '" +
                std::string(kCompleteAttribute) +
                "' attribute: an interrupted run's, or another program's)");
  }
  Hdf5Handle samples_set(H5Dopen2(file.get(), "samples", H5P_DEFAULT), H5Dclose);
  Hdf5Handle weights_set(H5Dopen2(file.get(), "log_weights", H5P_DEFAULT), H5Dclose);
  if (samples_set.get() < 0 || weights_set.get() < 0) {
    throw Error(what + ": has no /samples or no /log_weights (is it an rbsde output file?)");
  }
  const std::vector<hsize_t> extent = dataset_extent(samples_set.get(), 2, what + ": /samples");
  if (static_cast<int64_t>(extent[1]) != d) {
    throw Error(what + ": /samples has " + std::to_string(extent[1]) +
                " columns but target.dim is " + std::to_string(d) +
                " (a pilot run of another target?)");
  }
  const int64_t n = static_cast<int64_t>(extent[0]);
  if (static_cast<int64_t>(dataset_extent(weights_set.get(), 1, what + ": /log_weights")[0]) != n) {
    throw Error(what + ": /log_weights and /samples have different lengths");
  }
  if (n == 0) throw Error(what + ": /samples has no rows");
  try {
    samples.resize(n, d);
    log_weights.resize(n);
  } catch (const std::bad_alloc&) {
    throw Error(what + ": /samples has " + std::to_string(n) + " rows, more than fit in memory");
  }
  if (H5Dread(samples_set.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, samples.data()) <
          0 ||
      H5Dread(weights_set.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
              log_weights.data()) < 0) {
    throw Error(what + ": reading /samples or /log_weights failed");
  }
  // −∞ log weights are zero weights; NaN or +∞ ones, or non-finite samples, are not data.
  if (!samples.allFinite() || log_weights.array().isNaN().any() ||
      (log_weights.array() == std::numeric_limits<double>::infinity()).any()) {
    throw Error(what + ": /samples or /log_weights hold NaN or infinite values");
  }
  if (!(log_weights.array() > -std::numeric_limits<double>::infinity()).any()) {
    throw Error(what + ": every weight is zero (all /log_weights are -inf)");
  }
}

/// The self-normalised weighted mean and covariance (or variances) of a pilot run's samples.
Affine pilot_map(const PreconditionConfig& config, int64_t d) {
  RowMajorMatrix samples;
  Eigen::VectorXd log_weights;
  read_pilot(config.pilot, d, samples, log_weights);
  const std::string what = "precondition.pilot: '" + config.pilot + "'";
  Affine map = weighted_moment_map(samples, log_weights, resolved_form(config, d), what);
  Eigen::VectorXd w = (log_weights.array() - log_weights.maxCoeff()).exp();
  w /= w.sum();
  std::printf("precondition: pilot %s: %lld samples, ESS %.1f\n", config.pilot.c_str(),
              static_cast<long long>(samples.rows()), 1.0 / w.squaredNorm());
  std::fflush(stdout);
  return map;
}

/// auto's fallback pilot: MALA chains, warm-up and sampling steps per chain, and the seed.
constexpr int64_t kAutoPilotChains = 32;
constexpr int64_t kAutoPilotWarmup = 500;
constexpr int64_t kAutoPilotSteps = 500;
constexpr uint64_t kAutoPilotSeed = 5;

/// auto: the Laplace map when it can be found; else m and diag(L) the mean and sd of a short
/// MALA run (rbsde reference's sampler, on this process alone).
Affine auto_map(const Target& target, const PreconditionConfig& config) {
  try {
    Affine map = laplace_map(target, config);
    check_map(map, target.dim(), "precondition.kind: auto");
    std::printf("precondition: auto: chose the Laplace map\n");
    std::fflush(stdout);
    return map;
  } catch (const std::exception& e) {  // an Error, or the Hessian too large for the memory
    const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
    std::printf(
        "precondition: auto: no Laplace map (%s);\n  falling back to a Gaussian matched "
        "to a short MALA pilot\n",
        torch_error ? torch_error->what_without_backtrace() : e.what());
    std::fflush(stdout);
  }
  ReferenceConfig pilot;
  pilot.chains = kAutoPilotChains;
  pilot.warmup = kAutoPilotWarmup;
  pilot.steps = kAutoPilotSteps;
  pilot.seed = kAutoPilotSeed;
  const Communicator self(MPI_COMM_SELF);
  const ReferenceMoments moments = reference_moments(target, pilot, self, torch::Tensor());
  Affine map;
  map.centre = Eigen::Map<const Eigen::VectorXd>(moments.mean.data(), target.dim());
  map.diagonal = Eigen::Map<const Eigen::VectorXd>(moments.sd.data(), target.dim());
  check_map(map, target.dim(), "precondition.kind: auto (MALA pilot)");
  std::printf(
      "precondition: auto: chose the MALA pilot's mean and sd (diagonal L): %lld chains x %lld "
      "steps after %lld of warm-up, acceptance %.2f\n",
      static_cast<long long>(pilot.chains), static_cast<long long>(pilot.steps),
      static_cast<long long>(pilot.warmup), moments.acceptance_rate);
  std::fflush(stdout);
  return map;
}

Affine compute_map(const Target& target, const PreconditionConfig& config) {
  const int64_t d = target.dim();
  if (config.kind == "none") return identity_map(d);
  if (config.kind == "config") return configured_map(config, d);
  if (config.kind == "prior") return prior_map(target);
  if (config.kind == "laplace") return laplace_map(target, config);
  if (config.kind == "pilot") return pilot_map(config, d);
  if (config.kind == "auto") return auto_map(target, config);
  throw Error("precondition.kind: unknown kind '" + config.kind +
              "' (accepted: none, config, prior, laplace, pilot, auto)");
}

}  // namespace

Affine make_preconditioner(const Target& target, const PreconditionConfig& config,
                           const Communicator& comm) {
  const int64_t d = target.dim();
  Affine map;
  std::exception_ptr failure;
  if (comm.is_root()) {
    try {
      map = compute_map(target, config);
      check_map(map, d, "precondition.kind: " + config.kind);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  // Every rank learns whether rank 0 succeeded, so all throw alike and none waits below.
  double header[2] = {failure ? 1.0 : 0.0, map.is_diagonal() ? 1.0 : 0.0};
  comm.broadcast(header, 2);
  if (header[0] != 0.0) {
    if (failure) std::rethrow_exception(failure);
    throw Error("precondition.kind: " + config.kind + ": failed on rank 0 (see its message)");
  }
  if (!comm.is_root()) {
    map.centre.resize(d);
    if (header[1] != 0.0) {
      map.diagonal.resize(d);
    } else {
      map.cholesky.resize(d, d);
    }
  }
  comm.broadcast(map.centre.data(), d);
  if (map.is_diagonal()) {
    comm.broadcast(map.diagonal.data(), d);
  } else {
    comm.broadcast(map.cholesky.data(), d * d);
  }
  return map;
}

std::unique_ptr<Target> precondition(std::unique_ptr<Target> target,
                                     const PreconditionConfig& config, const Communicator& comm) {
  if (config.kind == "none") return target;
  Affine map = make_preconditioner(*target, config, comm);
  return std::make_unique<AffineTarget>(std::move(target), std::move(map));
}

}  // namespace rbsde
