#pragma once
/// \file output_file.hpp
/// The run's HDF5 file, written collectively with MPI-IO. It is created as `<path>.tmp` and
/// renamed to `<path>` by commit(); an uncommitted file is removed, so no partial output
/// file that looks complete is ever left behind.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rbsde/communicator.hpp"

namespace rbsde {

struct Affine;

/// Per-iteration training record, identical on every rank.
struct TrainingHistory {
  std::vector<double> loss;    ///< variance of the terminal residual Y_N − log π̃_γ(X_N)
  std::vector<double> log_z;   ///< the network's estimate c_θ after the iteration
  std::vector<double> time;    ///< wall seconds since training began
  std::vector<double> gamma;   ///< annealing exponent γ used in the iteration
};

/// Evidence and weight diagnostics of a sample (method.md §5), identical on every rank.
struct Estimates {
  int64_t count = 0;
  double log_z_is = 0.0;         ///< logsumexp(log w) − log M
  double log_z_is_stderr = 0.0;  ///< delta-method standard error √(1/ESS − 1/M)
  double log_z_network = 0.0;    ///< c_θ + mean r_θ(X₀)
  double elbo = 0.0;             ///< mean(log w)
  double elbo_stderr = 0.0;
  double ess = 0.0;              ///< (Σw)² / Σw²
  double ess_fraction = 0.0;     ///< ESS / M
  std::string method = "sde";    ///< the sampler: sde (exact weights) | ode (approximate weights)
  std::string divergence;        ///< ode: exact | hutchinson; empty for sde
};

/// One rank's rows of the per-path datasets (each `rows` long; `samples` rows × d).
struct PathRows {
  const float* samples = nullptr;         ///< /samples: X_N
  const double* log_weights = nullptr;    ///< /log_weights
  const double* log_target = nullptr;     ///< /paths/log_target: log π̃(X_N)
  const double* network_log_z = nullptr;  ///< /paths/network_log_z: c_θ + r_θ(X₀)
};

class OutputFile {
 public:
  /// Collective: creates `<path>.tmp` (parent directories too) on all ranks of `comm`.
  OutputFile(const std::string& path, const Communicator& comm);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Collective: root attributes `config` (resolved YAML) and `version`.
  void write_metadata(const std::string& resolved_yaml, const std::string& version);
  /// Collective: /training/{loss,log_z,time,gamma}.
  void write_training(const TrainingHistory& history);
  /// Collective: creates /samples (float32 [count, dim]), /log_weights and the per-path
  /// diagnostics /paths/log_target and /paths/network_log_z (float64 [count]), chunked.
  void create_samples(int64_t count, int64_t dim);
  /// Collective: every rank writes its `rows` rows at global row `offset` (rows may be 0).
  void write_samples(int64_t offset, int64_t rows, const PathRows& data);
  /// Collective: attributes of the group /estimates (`method`, and `divergence` for ode, as
  /// strings).
  void write_estimates(const Estimates& estimates);
  /// Collective: the group /preconditioning of a run on x = m + L x̂ (precondition.kind
  /// `kind`): datasets centre (m, float64 [d]) and scale (the diagonal of L [d], or L [d, d]),
  /// attributes kind, form (diagonal | cholesky) and log_det (log |det L|).
  void write_preconditioning(const Affine& map, const std::string& kind);
  /// Collective: closes the file and renames it to its final path.
  void commit();

  /// Whether HDF5 reported both transfers of the last write_samples() call (samples and log
  /// weights) as collective MPI-IO (H5Pget_mpio_actual_io_mode); tests check it.
  bool last_write_collective() const { return last_write_collective_; }

 private:
  hid_t create_path_dataset(const char* name, hsize_t rows);
  /// One collective write of `rows` rows at `offset`; returns whether HDF5 did it collectively.
  bool write_rows(hid_t dataset, hid_t memory_type, int dims, int64_t offset, int64_t rows,
                  int64_t columns, const void* data, const char* name);

  std::string path_;
  std::string tmp_path_;
  const Communicator& comm_;
  hid_t file_ = -1;
  hid_t samples_ = -1;
  hid_t log_weights_ = -1;
  hid_t log_target_ = -1;
  hid_t network_log_z_ = -1;
  int64_t count_ = 0;
  int64_t dim_ = 0;
  bool committed_ = false;
  bool last_write_collective_ = false;
};

}  // namespace rbsde
