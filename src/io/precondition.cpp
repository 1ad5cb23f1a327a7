#include "rbsde/io/precondition.hpp"

#include <hdf5.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "rbsde/bsde/psis.hpp"
#include "rbsde/bsde/variational.hpp"
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

/// The seed of the variational fit and of the draws that measure the candidates.
constexpr uint64_t kReferenceSeed = 5;

void print_quality(const char* candidate, const ReferenceQuality& quality) {
  std::printf(
      "precondition: %s: ELBO %.6g +- %.2g, Pareto k^ %s, ESS %.1f of %lld draws (log pi "
      "finite on %lld)\n",
      candidate, quality.elbo, quality.elbo_stderr,
      pareto_k_text(quality.pareto_k, quality.draws, quality.finite).c_str(), quality.ess,
      static_cast<long long>(quality.draws), static_cast<long long>(quality.finite));
  std::fflush(stdout);
}

/// The start of the variational fit when there is no Laplace map: the prior, else N(0, I),
/// in the form the configuration resolves to.
Affine variational_start(const Target& target, const PreconditionConfig& config) {
  const int64_t d = target.dim();
  Affine start = target.prior().value_or(identity_map(d));
  const bool dense = resolved_form(config, d) == "cholesky";
  if (dense && start.is_diagonal()) {
    start.cholesky = start.diagonal.asDiagonal();
    start.diagonal.resize(0);
  } else if (!dense && !start.is_diagonal()) {
    start.diagonal = start.cholesky.rowwise().norm();  // the marginal standard deviations
    start.cholesky.resize(0, 0);
  }
  return start;
}

/// variational: the Gaussian that maximises the ELBO, from the prior (or N(0, I)).
Affine variational_kind_map(const Target& target, const PreconditionConfig& config) {
  Affine map = variational_map(target, variational_start(target, config),
                               config.variational_iterations, kReferenceSeed,
                               "precondition.kind: variational: target '" + target.name() + "'");
  print_quality("variational", reference_quality(target, map, kQualityDraws, kReferenceSeed));
  return map;
}

/// A candidate reference of auto, with its measures.
struct Candidate {
  std::string name;
  Affine map;
  ReferenceQuality quality;
};

/// auto: the Laplace map where its own importance weights are usable (k̂ at most
/// pareto_k_threshold); else the Gaussians that maximise the ELBO fitted from the prior (or
/// N(0, I)) and, where there is one, from the Laplace map, and of all candidates the one with
/// the highest ELBO. A degenerate mode (a hierarchical model's scale near zero) can pass the
/// Laplace map's checks yet be a poor start: the fit from it stays in the funnel's neck, the
/// one from the prior finds the mass. Each candidate is measured on the same kQualityDraws
/// draws.
Affine auto_map(const Target& target, const PreconditionConfig& config) {
  const double threshold = pareto_k_threshold(kQualityDraws);
  const auto describe = [](const std::exception& e) -> std::string {
    const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
    return torch_error ? torch_error->what_without_backtrace() : e.what();
  };
  std::vector<Candidate> candidates;
  try {
    Affine laplace = laplace_map(target, config);
    check_map(laplace, target.dim(), "precondition.kind: auto");
    const ReferenceQuality quality =
        reference_quality(target, laplace, kQualityDraws, kReferenceSeed);
    print_quality("laplace", quality);
    if (quality.pareto_k <= threshold) {
      // k̂ = −∞ where the largest weights are equal (an exact map): its text says why.
      char bound[32] = "";
      if (std::isfinite(quality.pareto_k)) {
        std::snprintf(bound, sizeof bound, " <= %.2f", threshold);
      }
      std::printf(
          "precondition: auto: chose the Laplace map (its importance weights are usable: k^ "
          "%s%s)\n",
          pareto_k_text(quality.pareto_k, quality.draws, quality.finite).c_str(), bound);
      std::fflush(stdout);
      return laplace;
    }
    candidates.push_back({"laplace", std::move(laplace), quality});
  } catch (const std::exception& e) {  // an Error, or the Hessian too large for the memory
    std::printf("precondition: auto: no Laplace map (%s)\n", describe(e).c_str());
    std::fflush(stdout);
  }
  std::vector<std::pair<std::string, Affine>> starts = {
      {"variational from the prior", variational_start(target, config)}};
  if (!candidates.empty())
    starts.emplace_back("variational from the Laplace map", candidates[0].map);
  for (const auto& [name, start] : starts) {
    std::printf("precondition: auto: fitting the Gaussian that maximises the ELBO (%s)\n",
                name.c_str());
    std::fflush(stdout);
    try {
      Affine fitted = variational_map(target, start, config.variational_iterations, kReferenceSeed,
                                      "precondition.kind: auto: " + name);
      check_map(fitted, target.dim(), "precondition.kind: auto (" + name + ")");
      const ReferenceQuality quality =
          reference_quality(target, fitted, kQualityDraws, kReferenceSeed);
      print_quality(name.c_str(), quality);
      candidates.push_back({name, std::move(fitted), quality});
    } catch (const Error& e) {
      std::printf("precondition: auto: no %s (%s)\n", name.c_str(), e.what());
      std::fflush(stdout);
    }
  }
  if (candidates.empty()) {
    throw Error("precondition.kind: auto: target '" + target.name() +
                "': neither the Laplace map nor a variational Gaussian could be found (see the "
                "lines above); use precondition.kind: config with a centre and scale where the "
                "posterior's mass is");
  }
  // −∞ compares below any finite ELBO; NaN (no finite draw) never wins.
  const Candidate* best = &candidates[0];
  for (const Candidate& c : candidates) {
    if (c.quality.elbo > best->quality.elbo || std::isnan(best->quality.elbo)) best = &c;
  }
  std::string others;
  for (const Candidate& c : candidates) {
    if (&c != best) others += ", " + c.name + " " + std::to_string(c.quality.elbo);
  }
  std::printf("precondition: auto: chose the %s (the highest ELBO: %.6g%s)\n", best->name.c_str(),
              best->quality.elbo, others.empty() ? "" : ("; " + others.substr(2)).c_str());
  std::fflush(stdout);
  return best->map;
}

Affine compute_map(const Target& target, const PreconditionConfig& config) {
  const int64_t d = target.dim();
  if (config.kind == "none") return identity_map(d);
  if (config.kind == "config") return configured_map(config, d);
  if (config.kind == "prior") return prior_map(target);
  if (config.kind == "laplace") return laplace_map(target, config);
  if (config.kind == "pilot") return pilot_map(config, d);
  if (config.kind == "variational") return variational_kind_map(target, config);
  if (config.kind == "auto") return auto_map(target, config);
  throw Error("precondition.kind: unknown kind '" + config.kind +
              "' (accepted: none, config, prior, laplace, pilot, variational, auto)");
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
