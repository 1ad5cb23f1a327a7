#pragma once
/// \file output_file.hpp
/// The run's HDF5 file, written collectively with MPI-IO. It is created as `<path>.tmp` and
/// renamed to `<path>` by commit(); an uncommitted file is removed, so no partial output
/// file that looks complete is ever left behind.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rbsde/bsde/results.hpp"
#include "rbsde/bsde/sampler.hpp"
#include "rbsde/parallel/communicator.hpp"
#include "rbsde/parallel/timers.hpp"

namespace rbsde {

struct Affine;

/// What HMC refinement (posterior.hpp) reports: the attributes of /refined/samples.
struct Refinement {
  int64_t iterations = 0;        ///< HMC iterations per chain
  int64_t leapfrog_steps = 0;    ///< sample.leapfrog_steps: the mean number per iteration
  bool from_proposal = false;    ///< started from /samples (else /resampled/samples)
  double acceptance_rate = 0.0;  ///< over the iterations taken with the final step size
  double step_size = 0.0;
  int64_t model_moves = 0;  ///< an independence move every this many iterations (0: none)
  double model_acceptance_rate = 0.0;  ///< of the independence moves (NaN without)
  /// Over the iterations after the adaptation, split in halves: the largest split R̂ and the
  /// smallest effective sample size over the coordinates the chains run in (NaN with fewer
  /// than 4 such iterations).
  double rhat = 0.0;
  double ess = 0.0;
};

/// A variable of the InferenceData group /posterior: a scalar parameter, or a vector of `size`
/// parameters (Stan's name[1] … name[size], InferenceData's dimension name_dim_0).
struct PosteriorVariable {
  std::string name;
  int64_t size = 0;  ///< 0: a scalar
  int64_t columns() const { return size == 0 ? 1 : size; }
};

class OutputFile final : public SampleSink {
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
  void create_samples(int64_t count, int64_t dim) override;
  /// Collective: every rank writes its `rows` rows at global row `offset` (rows may be 0).
  void write_samples(int64_t offset, int64_t rows, const PathRows& data) override;
  /// Collective: attributes of the group /estimates (with `method`, and `divergence` for ode,
  /// as strings), and its posterior moment datasets.
  void write_estimates(const Estimates& estimates);
  /// Collective: the group /preconditioning of a run on x = m + L x̂ (precondition.kind
  /// `kind`): datasets centre (m, float64 [d]) and scale (the diagonal of L [d], or L [d, d]),
  /// attributes kind, form (diagonal | cholesky) and log_det (log |det L|).
  void write_preconditioning(const Affine& map, const std::string& kind);
  /// Collective: makes the rows every rank has written so far readable by every rank (the
  /// MPI-IO sync-barrier-sync); call it before reading rows back.
  void synchronise();
  /// Collective: reads rows [offset, offset + rows) of /samples into `samples` [rows, dim]
  /// and of /log_weights into `log_weights` (rows may be 0).
  void read_samples(int64_t offset, int64_t rows, float* samples, double* log_weights);
  /// Collective: reads rows [offset, offset + rows) of /log_weights only.
  void read_log_weights(int64_t offset, int64_t rows, double* log_weights);
  /// Collective: creates /resampled/samples (float32, the shape of /samples) and
  /// /resampled/index (int64 [count], the row of /samples each was drawn from), and the
  /// InferenceData group /sample_stats with log_weight (float64 [chain = 1, draw = count]:
  /// the log weight of the path each draw came from; see create_posterior).
  void create_resampled();
  /// Collective: every rank writes its `rows` resampled rows at `offset` (rows may be 0), with
  /// the log weights of their source paths.
  void write_resampled(int64_t offset, int64_t rows, const float* samples, const int64_t* index,
                       const double* log_weights);
  /// Collective: reads rows [offset, offset + rows) of /resampled/samples.
  void read_resampled(int64_t offset, int64_t rows, float* samples);
  /// Collective: creates /refined/samples (float32, the shape of /samples).
  void create_refined();
  /// Collective: every rank writes its `rows` refined rows at `offset` (rows may be 0).
  void write_refined(int64_t offset, int64_t rows, const float* samples);
  /// Collective: reads rows [offset, offset + rows) of /refined/samples.
  void read_refined(int64_t offset, int64_t rows, float* samples);
  /// Collective: the attributes of /refined/samples: iterations, leapfrog_steps, start
  /// ("proposal" or "resampled"), acceptance_rate, step_size, rhat and ess.
  void write_refined_attributes(const Refinement& refinement);
  /// Collective: the InferenceData group /posterior of the equally weighted draws (ArviZ's
  /// netCDF layout, which xarray.open_dataset(path, group="posterior") and
  /// arviz.from_netcdf read): per variable a float64 dataset [chain = 1, draw = count] (a
  /// scalar) or [chain = 1, draw = count, name_dim_0 = size] (a vector), with the group's chain
  /// and draw coordinates and each vector's name_dim_0 (0 … size − 1) as HDF5 dimension scales.
  void create_posterior(const std::vector<PosteriorVariable>& variables);
  /// Collective: every rank writes `rows` draws at `offset`: `draws` [rows, parameters]
  /// row-major, the variables' columns in order.
  void write_posterior(int64_t offset, int64_t rows, const double* draws);
  /// Collective: the group /reference: datasets mean, sd and mean_stderr [d], attributes
  /// method, acceptance_rate and step_size; for mala chains, warmup and steps; for smc the
  /// dataset log_z_runs [runs] and attributes log_z (the log of the runs' mean 𝒵̂),
  /// log_z_stderr, particles, moves, runs, temperatures and evaluations.
  void write_reference(const ReferenceMoments& reference);
  /// Collective: the group /timing: datasets min, mean and max (float64 [phases], seconds
  /// over the ranks), the string attribute phases (their names, space-separated, in Phase
  /// order), and attributes ranks, threads, paths, dimension, iterations, train_seconds and
  /// seconds_per_iteration.
  void write_timing(const TimingTable& table);
  /// Collective: closes the file and renames it to its final path.
  void commit();
  /// Not collective: removes the uncommitted `<path>.tmp` from this rank, for a failure that
  /// aborts the job before the destructor's collective close could run.
  void remove_uncommitted() const;

  /// Whether HDF5 reported both transfers of the last write_samples() call (samples and log
  /// weights) as collective MPI-IO (H5Pget_mpio_actual_io_mode); tests check it.
  bool last_write_collective() const { return last_write_collective_; }
  /// Seconds this rank spent in the collective writes of rows and draws (the output phase).
  double write_seconds() const { return write_seconds_; }

 private:
  /// A chunked dataset of `rows` rows: 1-D when columns is 0, else [rows, columns].
  hid_t create_row_dataset(const char* name, hid_t file_type, hsize_t element_bytes, hsize_t rows,
                           hsize_t columns);
  /// One collective write of `rows` rows at `offset`; returns whether HDF5 did it collectively.
  bool write_rows(hid_t dataset, hid_t memory_type, int dims, int64_t offset, int64_t rows,
                  int64_t columns, const void* data, const char* name);
  /// Collective: an InferenceData group `name` with its chain [1] and draw [count] coordinate
  /// datasets, made dimension scales.
  hid_t create_draw_group(const char* name);
  /// Collective: a float64 [1, count] dataset `name` in `group` (with `size` > 0: [1, count,
  /// size] and the scale name_dim_0), its dimensions attached to the group's scales.
  hid_t create_draw_variable(hid_t group, const std::string& name, int64_t size,
                             const std::string& what);
  /// One collective write of draws [offset, offset + rows) of a [1, count] dataset, or with
  /// `size` > 0 of a [1, count, size] one (`values` [rows, size] row-major).
  void write_draws(hid_t dataset, int64_t offset, int64_t rows, int64_t size, const double* values,
                   const std::string& what);
  /// One collective read of `rows` rows at `offset` of a dataset with `count_` rows.
  void read_rows(hid_t dataset, hid_t memory_type, int dims, int64_t offset, int64_t rows,
                 int64_t columns, void* data, const char* name);
  /// Throws unless `dataset` was created and [offset, offset + rows) lies within its rows.
  void check_rows(hid_t dataset, const char* method, int64_t offset, int64_t rows) const;

  std::string path_;
  std::string tmp_path_;
  const Communicator& comm_;
  hid_t file_ = -1;
  hid_t samples_ = -1;
  hid_t log_weights_ = -1;
  hid_t log_target_ = -1;
  hid_t network_log_z_ = -1;
  hid_t resampled_samples_ = -1;
  hid_t resampled_index_ = -1;
  hid_t refined_samples_ = -1;
  hid_t sample_stats_log_weight_ = -1;
  std::vector<hid_t> posterior_;  // one dataset per variable
  std::vector<PosteriorVariable> posterior_variables_;
  int64_t count_ = 0;
  int64_t dim_ = 0;
  bool committed_ = false;
  bool last_write_collective_ = false;
  double write_seconds_ = 0.0;
};

}  // namespace rbsde
