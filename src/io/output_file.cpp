#include "rbsde/io/output_file.hpp"

#include <hdf5_hl.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <system_error>
#include <utility>

#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/durable_rename.hpp"
#include "rbsde/io/hdf5.hpp"

namespace rbsde {

std::string hdf5_error_detail() {
  std::string detail;
  // H5E_WALK_UPWARD starts at the innermost error, the one that says what actually went wrong.
  auto innermost = [](unsigned n, const H5E_error2_t* error, void* data) -> herr_t {
    if (n == 0 && error->desc != nullptr) *static_cast<std::string*>(data) = error->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &detail);
  return detail;
}

namespace {

/// Target size of one chunk of /samples or /log_weights.
constexpr hsize_t kChunkBytes = hsize_t{1} << 20;

/// The space left to unprivileged users on the file system holding `file`, as "N MiB free on
/// its file system", or "" if it cannot be read.
std::string free_space(const std::string& file) {
  const std::filesystem::path parent = std::filesystem::path(file).parent_path();
  struct statvfs fs {};
  if (::statvfs(parent.empty() ? "." : parent.c_str(), &fs) != 0) return "";
  char text[64];
  std::snprintf(text, sizeof text, "%.1f MiB free on its file system",
                static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) / 1048576.0);
  return text;
}

/// Returns `value` (an hid_t or herr_t) unless it is negative, the HDF5 C API's failure value.
template <typename T>
T checked(T value, const std::string& operation, const std::string& file) {
  if (value >= 0) return value;
  const std::string detail = hdf5_error_detail();
  const std::string space = free_space(file);
  throw Error("HDF5 output file '" + file + "': " + operation + " failed" +
              (detail.empty() ? std::string() : " (" + detail + ")") +
              "; check that the file system has space" +
              (space.empty() ? std::string() : " (" + space + ")") +
              " and supports MPI-IO (a parallel file system or a local disk), or choose another "
              "output path");
}

/// Collective: closes `file`. HDF5 1.10 leaves a file whose close failed half-destroyed yet
/// registered, and its own clean-up at MPI_Finalize then crashes on it (SIGSEGV in
/// H5F__close_cb); no clean exit is left after such a failure, so the job ends here, with
/// status 1, after the message.
void close_or_end_job(hid_t file, const std::string& path, const Communicator& comm) {
  if (H5Fclose(file) >= 0) return;
  const std::string detail = hdf5_error_detail();
  const std::string space = free_space(path);
  std::fprintf(stderr,
               "rbsde: error on rank %d: HDF5 output file '%s': closing the file failed%s%s; "
               "check that the file system has space%s%s%s; the job ends here (status 1)\n",
               comm.rank(), path.c_str(), detail.empty() ? "" : ": ", detail.c_str(),
               space.empty() ? "" : " (", space.c_str(), space.empty() ? "" : ")");
  std::fflush(stderr);
  MPI_Abort(comm.get(), 1);
}

void require_open(hid_t file, const char* method, const std::string& path) {
  if (file < 0) {
    throw Error(std::string("OutputFile::") + method + " called after commit() for '" + path +
                "': write every part before committing");
  }
}

/// A transfer property list that makes H5Dwrite collective over all ranks of the file.
hid_t collective_transfer(const std::string& file) {
  const hid_t dxpl = checked(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate(dataset transfer)", file);
  if (H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
    H5Pclose(dxpl);
    checked(-1, "H5Pset_dxpl_mpio(collective)", file);
  }
  return dxpl;
}

void write_string_attribute(hid_t object, const char* name, const std::string& value,
                            const std::string& file) {
  const std::string what = std::string("writing string attribute '") + name + "'";
  // Variable length: no 64 KiB object-header limit for a long resolved configuration, and
  // h5py reads it back as str.
  Hdf5Handle type(checked(H5Tcopy(H5T_C_S1), what, file), H5Tclose);
  checked(H5Tset_size(type.get(), H5T_VARIABLE), what, file);
  checked(H5Tset_cset(type.get(), H5T_CSET_UTF8), what, file);
  Hdf5Handle space(checked(H5Screate(H5S_SCALAR), what, file), H5Sclose);
  Hdf5Handle attribute(
      checked(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), what,
              file),
      H5Aclose);
  const char* data = value.c_str();
  checked(H5Awrite(attribute.get(), type.get(), &data), what, file);
}

template <typename T>
void write_scalar_attribute(hid_t object, const char* name, hid_t file_type, hid_t memory_type,
                            T value, const std::string& file) {
  const std::string what = std::string("writing attribute '") + name + "'";
  Hdf5Handle space(checked(H5Screate(H5S_SCALAR), what, file), H5Sclose);
  Hdf5Handle attribute(
      checked(H5Acreate2(object, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), what,
              file),
      H5Aclose);
  checked(H5Awrite(attribute.get(), memory_type, &value), what, file);
}

/// A float64 dataset of extent `dims` (1-D or 2-D) holding `values` (row-major), identical on
/// every rank: rank 0 writes it, the other ranks join the collective transfer with empty
/// selections. `what` names it in errors.
void write_array(hid_t group, const char* name, const std::vector<hsize_t>& dims,
                 const double* values, const Communicator& comm, const std::string& what,
                 const std::string& file) {
  const int rank = static_cast<int>(dims.size());
  Hdf5Handle file_space(checked(H5Screate_simple(rank, dims.data(), nullptr), what, file),
                        H5Sclose);
  Hdf5Handle dataset(checked(H5Dcreate2(group, name, H5T_IEEE_F64LE, file_space.get(), H5P_DEFAULT,
                                        H5P_DEFAULT, H5P_DEFAULT),
                             what, file),
                     H5Dclose);
  // An empty array: nothing to transfer (alike on every rank).
  if (H5Sget_simple_extent_npoints(file_space.get()) == 0) return;
  Hdf5Handle memory_space(checked(H5Screate_simple(rank, dims.data(), nullptr), what, file),
                          H5Sclose);
  if (!comm.is_root()) {
    checked(H5Sselect_none(memory_space.get()), what, file);
    checked(H5Sselect_none(file_space.get()), what, file);
  }
  Hdf5Handle dxpl(collective_transfer(file), H5Pclose);
  comm.all_or_none([&] {
    checked(H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(),
                     dxpl.get(), values),
            what, file);
  });
}

/// A 1-D float64 dataset /`group_name`/`name`.
void write_vector(hid_t group, const char* group_name, const char* name,
                  const std::vector<double>& values, const Communicator& comm,
                  const std::string& file) {
  write_array(group, name, {values.size()}, values.data(), comm,
              std::string("writing dataset /") + group_name + "/" + name, file);
}

/// Creation properties of a chunked dataset with `rows` rows per chunk.
hid_t chunked_creation(int rank, const hsize_t* chunk, const std::string& what,
                       const std::string& file) {
  const hid_t dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), what, file);
  // Every row is written before commit(), so filling the (early-allocated, in parallel HDF5)
  // chunks with a fill value first would only double the I/O.
  if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
    H5Pclose(dcpl);
    checked(-1, what, file);
  }
  return dcpl;
}

/// True when HDF5 reports that the last transfer with `dxpl` was collective MPI-IO. A
/// collective call whose chunks were all written independently (H5D_MPIO_CHUNK_INDEPENDENT)
/// does not count.
bool was_collective(hid_t dxpl, const std::string& file) {
  H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
  checked(H5Pget_mpio_actual_io_mode(dxpl, &mode), "H5Pget_mpio_actual_io_mode", file);
  return mode != H5D_MPIO_NO_COLLECTIVE && mode != H5D_MPIO_CHUNK_INDEPENDENT;
}

/// A collective transfer of rows [offset, offset + rows) of a dataset with `columns` columns
/// (`dims` = 1: a 1-D dataset): its transfer list and its file and memory selections. A rank
/// without rows still joins the collective transfer, with empty selections.
struct RowSelection {
  RowSelection(hid_t dataset, int dims, int64_t offset, int64_t rows, int64_t columns,
               const std::string& what, const std::string& file)
      : dxpl(collective_transfer(file), H5Pclose),
        file_space(checked(H5Dget_space(dataset), what, file), H5Sclose),
        memory_space(
            checked(H5Screate_simple(dims, extent(rows, columns).data(), nullptr), what, file),
            H5Sclose) {
    const hsize_t start[2] = {static_cast<hsize_t>(offset), 0};
    if (rows > 0) {
      checked(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr,
                                  extent(rows, columns).data(), nullptr),
              what, file);
    } else {
      checked(H5Sselect_none(file_space.get()), what, file);
      checked(H5Sselect_none(memory_space.get()), what, file);
    }
  }
  static std::array<hsize_t, 2> extent(int64_t rows, int64_t columns) {
    return {static_cast<hsize_t>(rows), static_cast<hsize_t>(columns)};
  }
  Hdf5Handle dxpl, file_space, memory_space;
};

}  // namespace

OutputFile::OutputFile(const std::string& path, const Communicator& comm)
    : path_(path), tmp_path_(path + ".tmp"), comm_(comm) {
  // We report HDF5 failures ourselves, once, as an Error with the innermost HDF5 message.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);

  // Rank 0 creates the parent directories; all ranks learn the outcome, so all throw alike.
  double failed = 0.0;
  std::string reason;
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (comm_.is_root() && !parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      failed = 1.0;
      reason = ": " + error.message();
    }
  }
  comm_.allreduce_max(&failed, 1);
  if (failed != 0.0) {
    throw Error("cannot create the directory '" + parent.string() + "' for the output file '" +
                path_ + "'" + (reason.empty() ? " (on rank 0)" : reason) +
                "; choose an output path in a writable location");
  }

  Hdf5Handle fapl(checked(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)", tmp_path_),
                  H5Pclose);
  checked(H5Pset_fapl_mpio(fapl.get(), comm_.get(), MPI_INFO_NULL), "H5Pset_fapl_mpio", tmp_path_);
  // Metadata reads and writes collective too: one rank reads and broadcasts, instead of every
  // rank hitting the file system with small requests.
  checked(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops",
          tmp_path_);
  checked(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write", tmp_path_);
  file_ = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (file_ < 0) {
    const std::string detail = hdf5_error_detail();
    throw Error("cannot create the HDF5 output file '" + tmp_path_ + "' (for '" + path_ + "')" +
                (detail.empty() ? std::string() : ": " + detail) +
                "; check that its directory is writable and on a file system with MPI-IO "
                "support, or choose another output path");
  }
}

OutputFile::~OutputFile() {
  // Never throws. The closes are collective, as the constructor was: every rank destroys its
  // OutputFile, also when a failure (detected alike on all ranks) unwinds the stack.
  for (hid_t dataset : {samples_, log_weights_, log_target_, network_log_z_, resampled_samples_,
                        resampled_index_, refined_samples_, sample_stats_log_weight_}) {
    if (dataset >= 0) H5Dclose(dataset);
  }
  for (hid_t dataset : posterior_) H5Dclose(dataset);
  if (file_ >= 0) {
    // A file still open here was not committed and is discarded: it is emptied first
    // (collectively), so that its close, which writes the metadata, finds space again where the
    // failure was a full file system.
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file_, H5P_DEFAULT, &handle) >= 0) {
      MPI_File_set_size(*static_cast<MPI_File*>(handle), 0);
    }
    close_or_end_job(file_, tmp_path_, comm_);
  }
  if (comm_.is_root()) remove_uncommitted();
}

void OutputFile::remove_uncommitted() const {
  if (committed_) return;
  std::error_code ignored;  // the file may not exist if creation itself failed
  std::filesystem::remove(tmp_path_, ignored);
}

void OutputFile::write_metadata(const std::string& resolved_yaml, const std::string& version) {
  require_open(file_, "write_metadata", path_);
  write_string_attribute(file_, "config", resolved_yaml, tmp_path_);
  write_string_attribute(file_, "version", version, tmp_path_);
}

void OutputFile::write_training(const TrainingHistory& history) {
  require_open(file_, "write_training", path_);
  Hdf5Handle group(checked(H5Gcreate2(file_, "training", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating group /training", tmp_path_),
                   H5Gclose);
  write_vector(group.get(), "training", "loss", history.loss, comm_, tmp_path_);
  write_vector(group.get(), "training", "log_z", history.log_z, comm_, tmp_path_);
  write_vector(group.get(), "training", "time", history.time, comm_, tmp_path_);
  write_vector(group.get(), "training", "gamma", history.gamma, comm_, tmp_path_);
}

hid_t OutputFile::create_row_dataset(const char* name, hid_t file_type, hsize_t element_bytes,
                                     hsize_t rows, hsize_t columns) {
  const std::string what = std::string("creating /") + name;
  const int dims = columns == 0 ? 1 : 2;
  const hsize_t extent[2] = {rows, columns};
  const hsize_t chunk[2] = {
      std::clamp<hsize_t>(kChunkBytes / (std::max<hsize_t>(columns, 1) * element_bytes), 1, rows),
      columns};
  Hdf5Handle space(checked(H5Screate_simple(dims, extent, nullptr), what, tmp_path_), H5Sclose);
  Hdf5Handle dcpl(chunked_creation(dims, chunk, what, tmp_path_), H5Pclose);
  return checked(
      H5Dcreate2(file_, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), what,
      tmp_path_);
}

void OutputFile::create_samples(int64_t count, int64_t dim) {
  require_open(file_, "create_samples", path_);
  if (count < 1 || dim < 1 || samples_ >= 0) {
    throw Error("OutputFile::create_samples(count=" + std::to_string(count) +
                ", dim=" + std::to_string(dim) + ") for '" + path_ +
                "': needs count >= 1 and dim >= 1, once per file");
  }
  const hsize_t rows = static_cast<hsize_t>(count);
  samples_ =
      create_row_dataset("samples", H5T_IEEE_F32LE, sizeof(float), rows, static_cast<hsize_t>(dim));
  log_weights_ = create_row_dataset("log_weights", H5T_IEEE_F64LE, sizeof(double), rows, 0);
  Hdf5Handle paths(checked(H5Gcreate2(file_, "paths", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating /paths", tmp_path_),
                   H5Gclose);
  log_target_ = create_row_dataset("paths/log_target", H5T_IEEE_F64LE, sizeof(double), rows, 0);
  network_log_z_ =
      create_row_dataset("paths/network_log_z", H5T_IEEE_F64LE, sizeof(double), rows, 0);
  count_ = count;
  dim_ = dim;
}

bool OutputFile::write_rows(hid_t dataset, hid_t memory_type, int dims, int64_t offset,
                            int64_t rows, int64_t columns, const void* data, const char* name) {
  const std::string what = std::string("writing rows of /") + name;
  const ScopedSeconds timed(write_seconds_);
  const RowSelection selection(dataset, dims, offset, rows, columns, what, tmp_path_);
  const double nothing = 0.0;  // H5Dwrite wants a non-null buffer even for an empty selection
  comm_.all_or_none([&] {
    checked(H5Dwrite(dataset, memory_type, selection.memory_space.get(), selection.file_space.get(),
                     selection.dxpl.get(), rows > 0 ? data : &nothing),
            what, tmp_path_);
  });
  return was_collective(selection.dxpl.get(), tmp_path_);
}

void OutputFile::write_samples(int64_t offset, int64_t rows, const PathRows& data) {
  check_rows(samples_, "write_samples", offset, rows);
  bool collective =
      write_rows(samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, data.samples, "samples");
  collective &= write_rows(log_weights_, H5T_NATIVE_DOUBLE, 1, offset, rows, 1, data.log_weights,
                           "log_weights");
  collective &= write_rows(log_target_, H5T_NATIVE_DOUBLE, 1, offset, rows, 1, data.log_target,
                           "paths/log_target");
  collective &= write_rows(network_log_z_, H5T_NATIVE_DOUBLE, 1, offset, rows, 1,
                           data.network_log_z, "paths/network_log_z");
  last_write_collective_ = collective;
}

void OutputFile::write_estimates(const Estimates& estimates) {
  require_open(file_, "write_estimates", path_);
  Hdf5Handle group(checked(H5Gcreate2(file_, "estimates", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating group /estimates", tmp_path_),
                   H5Gclose);
  const std::pair<const char*, double> values[] = {
      {"log_z_is", estimates.log_z_is},
      {"log_z_is_stderr", estimates.log_z_is_stderr},
      {"log_z_network", estimates.log_z_network},
      {"elbo", estimates.elbo},
      {"elbo_stderr", estimates.elbo_stderr},
      {"ess", estimates.ess},
      {"ess_fraction", estimates.ess_fraction},
      {"pareto_k", estimates.pareto_k},
      {"pareto_k_threshold", estimates.pareto_k_threshold},
  };
  for (const auto& [name, value] : values) {
    write_scalar_attribute(group.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value, tmp_path_);
  }
  write_scalar_attribute(group.get(), "count", H5T_STD_I64LE, H5T_NATIVE_INT64, estimates.count,
                         tmp_path_);
  write_scalar_attribute(group.get(), "zero_weight_paths", H5T_STD_I64LE, H5T_NATIVE_INT64,
                         estimates.zero_weight_paths, tmp_path_);
  write_scalar_attribute(group.get(), "pareto_tail", H5T_STD_I64LE, H5T_NATIVE_INT64,
                         estimates.pareto_tail, tmp_path_);
  write_string_attribute(group.get(), "method", estimates.method, tmp_path_);
  if (!estimates.divergence.empty()) {
    write_string_attribute(group.get(), "divergence", estimates.divergence, tmp_path_);
  }
  if (!estimates.posterior_mean.empty()) {
    write_vector(group.get(), "estimates", "posterior_mean", estimates.posterior_mean, comm_,
                 tmp_path_);
    write_vector(group.get(), "estimates", "posterior_sd", estimates.posterior_sd, comm_,
                 tmp_path_);
  }
  if (!estimates.psis_mean.empty()) {
    write_vector(group.get(), "estimates", "psis_mean", estimates.psis_mean, comm_, tmp_path_);
    write_vector(group.get(), "estimates", "psis_sd", estimates.psis_sd, comm_, tmp_path_);
  }
}

void OutputFile::write_preconditioning(const Affine& map, const std::string& kind) {
  require_open(file_, "write_preconditioning", path_);
  Hdf5Handle group(
      checked(H5Gcreate2(file_, "preconditioning", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              "creating group /preconditioning", tmp_path_),
      H5Gclose);
  const hsize_t d = static_cast<hsize_t>(map.dim());
  write_array(group.get(), "centre", {d}, map.centre.data(), comm_,
              "writing dataset /preconditioning/centre", tmp_path_);
  // L row-major, as h5py and numpy read it (Eigen stores column-major).
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> cholesky =
      map.cholesky;
  write_array(group.get(), "scale",
              map.is_diagonal() ? std::vector<hsize_t>{d} : std::vector<hsize_t>{d, d},
              map.is_diagonal() ? map.diagonal.data() : cholesky.data(), comm_,
              "writing dataset /preconditioning/scale", tmp_path_);
  write_string_attribute(group.get(), "kind", kind, tmp_path_);
  write_string_attribute(group.get(), "form", map.is_diagonal() ? "diagonal" : "cholesky",
                         tmp_path_);
  write_scalar_attribute(group.get(), "log_det", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, map.log_det(),
                         tmp_path_);
}

void OutputFile::synchronise() {
  require_open(file_, "synchronise", path_);
  // H5Fflush calls MPI_File_sync on every rank: sync, barrier, sync is the MPI-IO recipe for
  // making writes, done by whichever ranks aggregated them, visible to reads on all ranks. The
  // all-reduce of the outcome after the first sync is the barrier.
  for (int pass = 0; pass < 2; ++pass) {
    comm_.all_or_none([&] {
      checked(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flushing before a read-back", tmp_path_);
    });
  }
}

void OutputFile::check_rows(hid_t dataset, const char* method, int64_t offset, int64_t rows) const {
  require_open(file_, method, path_);
  if (dataset < 0 || offset < 0 || rows < 0 || offset + rows > count_) {
    throw Error(std::string("OutputFile::") + method + "(offset=" + std::to_string(offset) +
                ", rows=" + std::to_string(rows) + ") for '" + path_ +
                "': create the dataset first and keep the rows within [0, " +
                std::to_string(count_) + ")");
  }
}

void OutputFile::read_rows(hid_t dataset, hid_t memory_type, int dims, int64_t offset, int64_t rows,
                           int64_t columns, void* data, const char* name) {
  const std::string what = std::string("reading rows of /") + name;
  const RowSelection selection(dataset, dims, offset, rows, columns, what, tmp_path_);
  double nothing = 0.0;
  checked(H5Dread(dataset, memory_type, selection.memory_space.get(), selection.file_space.get(),
                  selection.dxpl.get(), rows > 0 ? data : &nothing),
          what, tmp_path_);
}

void OutputFile::read_samples(int64_t offset, int64_t rows, float* samples, double* log_weights) {
  check_rows(samples_, "read_samples", offset, rows);
  read_rows(samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, samples, "samples");
  read_rows(log_weights_, H5T_NATIVE_DOUBLE, 1, offset, rows, 1, log_weights, "log_weights");
}

void OutputFile::read_log_weights(int64_t offset, int64_t rows, double* log_weights) {
  check_rows(log_weights_, "read_log_weights", offset, rows);
  read_rows(log_weights_, H5T_NATIVE_DOUBLE, 1, offset, rows, 1, log_weights, "log_weights");
}

void OutputFile::create_resampled() {
  require_open(file_, "create_resampled", path_);
  if (samples_ < 0 || resampled_samples_ >= 0) {
    throw Error("OutputFile::create_resampled for '" + path_ +
                "': call create_samples first, and create_resampled once");
  }
  Hdf5Handle group(checked(H5Gcreate2(file_, "resampled", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating /resampled", tmp_path_),
                   H5Gclose);
  const hsize_t rows = static_cast<hsize_t>(count_);
  resampled_samples_ = create_row_dataset("resampled/samples", H5T_IEEE_F32LE, sizeof(float), rows,
                                          static_cast<hsize_t>(dim_));
  resampled_index_ = create_row_dataset("resampled/index", H5T_STD_I64LE, sizeof(int64_t), rows, 0);
  Hdf5Handle stats(create_draw_group("sample_stats"), H5Gclose);
  sample_stats_log_weight_ =
      create_draw_variable(stats.get(), "log_weight", 0, "creating /sample_stats/log_weight");
}

void OutputFile::write_resampled(int64_t offset, int64_t rows, const float* samples,
                                 const int64_t* index, const double* log_weights) {
  check_rows(resampled_samples_, "write_resampled", offset, rows);
  write_rows(resampled_samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, samples,
             "resampled/samples");
  write_rows(resampled_index_, H5T_NATIVE_INT64, 1, offset, rows, 1, index, "resampled/index");
  write_draws(sample_stats_log_weight_, offset, rows, 0, log_weights,
              "writing /sample_stats/log_weight");
}

hid_t OutputFile::create_draw_group(const char* name) {
  const std::string what = std::string("creating the InferenceData group /") + name;
  Hdf5Handle group(
      checked(H5Gcreate2(file_, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), what, tmp_path_),
      H5Gclose);
  // chain = [0] (rank 0 writes it); draw = [0, count), each rank its own rows.
  const hsize_t one = 1, rows = static_cast<hsize_t>(count_);
  Hdf5Handle chain_space(checked(H5Screate_simple(1, &one, nullptr), what, tmp_path_), H5Sclose);
  Hdf5Handle chain(checked(H5Dcreate2(group.get(), "chain", H5T_STD_I64LE, chain_space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           what, tmp_path_),
                   H5Dclose);
  const hsize_t chunk = std::clamp<hsize_t>(kChunkBytes / sizeof(int64_t), 1, rows);
  Hdf5Handle draw_space(checked(H5Screate_simple(1, &rows, nullptr), what, tmp_path_), H5Sclose);
  Hdf5Handle dcpl(chunked_creation(1, &chunk, what, tmp_path_), H5Pclose);
  Hdf5Handle draw(checked(H5Dcreate2(group.get(), "draw", H5T_STD_I64LE, draw_space.get(),
                                     H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                          what, tmp_path_),
                  H5Dclose);
  const int64_t zero = 0;
  write_rows(chain.get(), H5T_NATIVE_INT64, 1, 0, comm_.is_root() ? 1 : 0, 1, &zero, "chain");
  const PathRange mine = path_range(count_, comm_.rank(), comm_.size());
  std::vector<int64_t> draws(static_cast<size_t>(mine.count()));
  std::iota(draws.begin(), draws.end(), mine.begin);
  write_rows(draw.get(), H5T_NATIVE_INT64, 1, mine.begin, mine.count(), 1, draws.data(), "draw");
  checked(H5DSset_scale(chain.get(), "chain"), what, tmp_path_);
  checked(H5DSset_scale(draw.get(), "draw"), what, tmp_path_);
  return group.release();
}

hid_t OutputFile::create_draw_variable(hid_t group, const std::string& name, int64_t size,
                                       const std::string& what) {
  const int dims = size > 0 ? 3 : 2;
  const hsize_t columns = static_cast<hsize_t>(std::max<int64_t>(size, 1));
  const hsize_t extent[3] = {1, static_cast<hsize_t>(count_), columns};
  const hsize_t chunk[3] = {
      1, std::clamp<hsize_t>(kChunkBytes / (sizeof(double) * columns), 1, extent[1]), columns};
  Hdf5Handle space(checked(H5Screate_simple(dims, extent, nullptr), what, tmp_path_), H5Sclose);
  Hdf5Handle dcpl(chunked_creation(dims, chunk, what, tmp_path_), H5Pclose);
  Hdf5Handle variable(checked(H5Dcreate2(group, name.c_str(), H5T_IEEE_F64LE, space.get(),
                                         H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                              what, tmp_path_),
                      H5Dclose);
  Hdf5Handle chain(checked(H5Dopen2(group, "chain", H5P_DEFAULT), what, tmp_path_), H5Dclose);
  Hdf5Handle draw(checked(H5Dopen2(group, "draw", H5P_DEFAULT), what, tmp_path_), H5Dclose);
  checked(H5DSattach_scale(variable.get(), chain.get(), 0), what, tmp_path_);
  checked(H5DSattach_scale(variable.get(), draw.get(), 1), what, tmp_path_);
  if (size > 0) {
    // The coordinate name_dim_0 = 0 … size − 1, written by rank 0.
    const std::string scale_name = name + "_dim_0";
    Hdf5Handle scale_space(checked(H5Screate_simple(1, &columns, nullptr), what, tmp_path_),
                           H5Sclose);
    Hdf5Handle scale(checked(H5Dcreate2(group, scale_name.c_str(), H5T_STD_I64LE, scale_space.get(),
                                        H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                             what, tmp_path_),
                     H5Dclose);
    std::vector<int64_t> index(comm_.is_root() ? columns : 0);
    std::iota(index.begin(), index.end(), int64_t{0});
    write_rows(scale.get(), H5T_NATIVE_INT64, 1, 0, static_cast<int64_t>(index.size()), 1,
               index.data(), scale_name.c_str());
    checked(H5DSset_scale(scale.get(), scale_name.c_str()), what, tmp_path_);
    checked(H5DSattach_scale(variable.get(), scale.get(), 2), what, tmp_path_);
  }
  return variable.release();
}

void OutputFile::write_draws(hid_t dataset, int64_t offset, int64_t rows, int64_t size,
                             const double* values, const std::string& what) {
  const ScopedSeconds timed(write_seconds_);
  const int dims = size > 0 ? 3 : 2;
  Hdf5Handle file_space(checked(H5Dget_space(dataset), what, tmp_path_), H5Sclose);
  const hsize_t extent[3] = {1, static_cast<hsize_t>(rows),
                             static_cast<hsize_t>(std::max<int64_t>(size, 1))};
  Hdf5Handle memory_space(checked(H5Screate_simple(dims, extent, nullptr), what, tmp_path_),
                          H5Sclose);
  if (rows > 0) {
    const hsize_t start[3] = {0, static_cast<hsize_t>(offset), 0};
    checked(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, extent, nullptr),
            what, tmp_path_);
  } else {
    checked(H5Sselect_none(file_space.get()), what, tmp_path_);
    checked(H5Sselect_none(memory_space.get()), what, tmp_path_);
  }
  Hdf5Handle dxpl(collective_transfer(tmp_path_), H5Pclose);
  const double nothing = 0.0;
  comm_.all_or_none([&] {
    checked(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), dxpl.get(),
                     rows > 0 ? values : &nothing),
            what, tmp_path_);
  });
}

void OutputFile::create_posterior(const std::vector<PosteriorVariable>& variables) {
  require_open(file_, "create_posterior", path_);
  if (samples_ < 0 || !posterior_.empty() || variables.empty()) {
    throw Error("OutputFile::create_posterior for '" + path_ +
                "': call create_samples first, with parameter names, and create_posterior once");
  }
  Hdf5Handle group(create_draw_group("posterior"), H5Gclose);
  for (const PosteriorVariable& variable : variables) {
    posterior_.push_back(create_draw_variable(group.get(), variable.name, variable.size,
                                              "creating /posterior/" + variable.name));
  }
  posterior_variables_ = variables;
}

void OutputFile::write_posterior(int64_t offset, int64_t rows, const double* draws) {
  require_open(file_, "write_posterior", path_);
  if (posterior_.empty() || offset < 0 || rows < 0 || offset + rows > count_) {
    throw Error("OutputFile::write_posterior(offset=" + std::to_string(offset) +
                ", rows=" + std::to_string(rows) + ") for '" + path_ +
                "': call create_posterior first and keep the draws within [0, " +
                std::to_string(count_) + ")");
  }
  int64_t p = 0;
  for (const PosteriorVariable& variable : posterior_variables_) p += variable.columns();
  std::vector<double> block;
  int64_t first = 0;  // the variable's first column in `draws`
  for (size_t v = 0; v < posterior_.size(); ++v) {
    const int64_t k = posterior_variables_[v].columns();
    block.resize(static_cast<size_t>(rows * k));
    for (int64_t i = 0; i < rows; ++i) {
      std::copy_n(draws + i * p + first, k, block.begin() + i * k);
    }
    write_draws(posterior_[v], offset, rows, posterior_variables_[v].size, block.data(),
                "writing /posterior");
    first += k;
  }
}

void OutputFile::read_resampled(int64_t offset, int64_t rows, float* samples) {
  check_rows(resampled_samples_, "read_resampled", offset, rows);
  read_rows(resampled_samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, samples,
            "resampled/samples");
}

void OutputFile::create_refined() {
  require_open(file_, "create_refined", path_);
  if (samples_ < 0 || refined_samples_ >= 0) {
    throw Error("OutputFile::create_refined for '" + path_ +
                "': call create_samples first, and create_refined once");
  }
  Hdf5Handle group(checked(H5Gcreate2(file_, "refined", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating /refined", tmp_path_),
                   H5Gclose);
  refined_samples_ = create_row_dataset("refined/samples", H5T_IEEE_F32LE, sizeof(float),
                                        static_cast<hsize_t>(count_), static_cast<hsize_t>(dim_));
}

void OutputFile::write_refined(int64_t offset, int64_t rows, const float* samples) {
  check_rows(refined_samples_, "write_refined", offset, rows);
  write_rows(refined_samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, samples, "refined/samples");
}

void OutputFile::read_refined(int64_t offset, int64_t rows, float* samples) {
  check_rows(refined_samples_, "read_refined", offset, rows);
  read_rows(refined_samples_, H5T_NATIVE_FLOAT, 2, offset, rows, dim_, samples, "refined/samples");
}

void OutputFile::write_refined_attributes(const Refinement& refinement) {
  require_open(file_, "write_refined_attributes", path_);
  if (refined_samples_ < 0) {
    throw Error("OutputFile::write_refined_attributes for '" + path_ +
                "': call create_refined first");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"acceptance_rate", refinement.acceptance_rate},
        {"step_size", refinement.step_size},
        {"rhat", refinement.rhat},
        {"ess", refinement.ess},
        {"model_acceptance_rate", refinement.model_acceptance_rate}}) {
    write_scalar_attribute(refined_samples_, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value,
                           tmp_path_);
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"iterations", refinement.iterations},
        {"leapfrog_steps", refinement.leapfrog_steps},
        {"model_moves", refinement.model_moves}}) {
    write_scalar_attribute(refined_samples_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, value,
                           tmp_path_);
  }
  write_string_attribute(refined_samples_, "start",
                         refinement.from_proposal ? "proposal" : "resampled", tmp_path_);
}

void OutputFile::write_reference(const ReferenceMoments& reference) {
  require_open(file_, "write_reference", path_);
  Hdf5Handle group(checked(H5Gcreate2(file_, "reference", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating group /reference", tmp_path_),
                   H5Gclose);
  write_vector(group.get(), "reference", "mean", reference.mean, comm_, tmp_path_);
  write_vector(group.get(), "reference", "sd", reference.sd, comm_, tmp_path_);
  write_vector(group.get(), "reference", "mean_stderr", reference.mean_stderr, comm_, tmp_path_);
  write_string_attribute(group.get(), "method", reference.method, tmp_path_);
  const bool smc = reference.method == "smc";
  std::vector<std::pair<const char*, double>> reals = {
      {"acceptance_rate", reference.acceptance_rate}, {"step_size", reference.step_size}};
  std::vector<std::pair<const char*, int64_t>> integers;
  if (smc) {
    write_vector(group.get(), "reference", "log_z_runs", reference.log_z_runs, comm_, tmp_path_);
    reals.insert(reals.end(),
                 {{"log_z", reference.log_z}, {"log_z_stderr", reference.log_z_stderr}});
    integers = {{"particles", reference.chains},
                {"moves", reference.steps},
                {"runs", static_cast<int64_t>(reference.log_z_runs.size())},
                {"temperatures", reference.temperatures},
                {"evaluations", reference.evaluations}};
  } else {
    integers = {
        {"chains", reference.chains}, {"warmup", reference.warmup}, {"steps", reference.steps}};
  }
  for (const auto& [name, value] : reals) {
    write_scalar_attribute(group.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value, tmp_path_);
  }
  for (const auto& [name, value] : integers) {
    write_scalar_attribute(group.get(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, value, tmp_path_);
  }
}

void OutputFile::write_timing(const TimingTable& table) {
  require_open(file_, "write_timing", path_);
  Hdf5Handle group(checked(H5Gcreate2(file_, "timing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "creating group /timing", tmp_path_),
                   H5Gclose);
  std::vector<double> min, mean, max;
  std::string phases;
  for (const PhaseTiming& p : table.phases) {
    min.push_back(p.min);
    mean.push_back(p.mean);
    max.push_back(p.max);
    phases += (phases.empty() ? "" : " ") + p.phase;
  }
  write_vector(group.get(), "timing", "min", min, comm_, tmp_path_);
  write_vector(group.get(), "timing", "mean", mean, comm_, tmp_path_);
  write_vector(group.get(), "timing", "max", max, comm_, tmp_path_);
  write_string_attribute(group.get(), "phases", phases, tmp_path_);
  for (const auto& [name, value] : {std::pair<const char*, int64_t>{"ranks", table.ranks},
                                    {"threads", table.threads},
                                    {"paths", table.paths},
                                    {"dimension", table.dimension},
                                    {"parameters", table.parameters},
                                    {"iterations", table.iterations}}) {
    write_scalar_attribute(group.get(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, value, tmp_path_);
  }
  for (const auto& [name, value] :
       {std::pair{"train_seconds", table.train_seconds},
        std::pair{"seconds_per_iteration", table.seconds_per_iteration}}) {
    write_scalar_attribute(group.get(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value, tmp_path_);
  }
}

void OutputFile::commit() {
  require_open(file_, "commit", path_);
  // Each handle is forgotten before its close is checked: a failed close is not retried by the
  // destructor.
  std::vector<hid_t> datasets = {
      samples_,           log_weights_,     log_target_,      network_log_z_,
      resampled_samples_, resampled_index_, refined_samples_, sample_stats_log_weight_};
  datasets.insert(datasets.end(), posterior_.begin(), posterior_.end());
  samples_ = log_weights_ = log_target_ = network_log_z_ = resampled_samples_ = resampled_index_ =
      refined_samples_ = sample_stats_log_weight_ = -1;
  posterior_.clear();
  for (const hid_t id : datasets) {
    if (id >= 0) checked(H5Dclose(id), "closing a dataset", tmp_path_);
  }
  // Written last: a reader (the pilot reader, postprocess/) takes a file without it for an
  // interrupted or foreign one. The flush (MPI_File_sync) puts every rank's data on disk.
  write_scalar_attribute(file_, kCompleteAttribute, H5T_STD_I32LE, H5T_NATIVE_INT, 1, tmp_path_);
  comm_.all_or_none(
      [&] { checked(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flushing the file", tmp_path_); });
  const hid_t file = file_;
  file_ = -1;
  close_or_end_job(file, tmp_path_, comm_);

  // Rank 0 renames; the reduction of its outcome is also the barrier after which every rank
  // may rely on the final file.
  double failed = 0.0;
  std::string reason;
  if (comm_.is_root()) {
    try {
      durable_rename(tmp_path_, path_);
    } catch (const std::exception& e) {
      failed = 1.0;
      reason = std::string(": ") + e.what();
    }
  }
  comm_.allreduce_max(&failed, 1);
  if (failed != 0.0) {
    throw Error("cannot rename the finished output file '" + tmp_path_ + "' to '" + path_ + "'" +
                (reason.empty() ? " (on rank 0)" : reason) +
                "; check that the destination is writable and not a directory");
  }
  committed_ = true;
}

}  // namespace rbsde
