// OutputFile: the collective HDF5 writer. Correct at any number of ranks: each rank writes its
// own rows (path_range), only rank 0 reads the committed file back with the serial C API.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "rbsde/error.hpp"
#include "rbsde/io/output_file.hpp"
#include "rbsde/io/posterior.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace {

namespace fs = std::filesystem;

constexpr const char* kConfig = "target:\n  name: gaussian\n  dim: 3\ntraining:\n  iterations: 4\n";

float sample_value(int64_t row, int64_t column) {
  return static_cast<float>(row * 10 + column) + 0.5f;  // exact in float32
}
double log_weight_value(int64_t row) { return -0.25 * static_cast<double>(row); }

/// The rows [range.begin, range.end) of the test sample, row-major [rows, dim].
std::vector<float> sample_rows(rbsde::PathRange range, int64_t dim) {
  std::vector<float> rows;
  for (int64_t i = range.begin; i < range.end; ++i) {
    for (int64_t j = 0; j < dim; ++j) rows.push_back(sample_value(i, j));
  }
  return rows;
}
std::vector<double> log_weight_rows(rbsde::PathRange range, double shift = 0.0) {
  std::vector<double> rows;
  for (int64_t i = range.begin; i < range.end; ++i) rows.push_back(log_weight_value(i) + shift);
  return rows;
}

/// The test values of every per-path dataset for a range of rows.
struct PathData {
  PathData(rbsde::PathRange range, int64_t dim)
      : samples(sample_rows(range, dim)),
        log_weights(log_weight_rows(range)),
        log_target(log_weight_rows(range, 1.0)),
        network_log_z(log_weight_rows(range, 2.0)) {}
  rbsde::PathRows rows() const {
    return {samples.data(), log_weights.data(), log_target.data(), network_log_z.data()};
  }
  std::vector<float> samples;
  std::vector<double> log_weights, log_target, network_log_z;
};

/// Reads a whole dataset of `native` type; `dims` receives its shape and `type_ok` whether the
/// dataset's own type is that native type.
template <typename T>
std::vector<T> read_dataset(hid_t file, const char* name, hid_t native, std::vector<hsize_t>* dims,
                            bool* type_ok) {
  const hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
  EXPECT_GE(dataset, 0) << name;
  if (dataset < 0) return {};
  const hid_t type = H5Dget_type(dataset);
  const hid_t type_native = H5Tget_native_type(type, H5T_DIR_DEFAULT);
  *type_ok = H5Tequal(type_native, native) > 0;
  H5Tclose(type_native);
  H5Tclose(type);
  const hid_t space = H5Dget_space(dataset);
  dims->assign(H5Sget_simple_extent_ndims(space), 0);
  H5Sget_simple_extent_dims(space, dims->data(), nullptr);
  std::vector<T> values(H5Sget_simple_extent_npoints(space));
  if (!values.empty()) {
    EXPECT_GE(H5Dread(dataset, native, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0) << name;
  }
  H5Sclose(space);
  H5Dclose(dataset);
  return values;
}

template <typename T>
T read_attribute(hid_t file, const char* object, const char* name, hid_t native) {
  T value{};
  const hid_t attribute = H5Aopen_by_name(file, object, name, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(attribute, 0) << object << " " << name;
  if (attribute < 0) return value;
  const hid_t type = H5Aget_type(attribute);
  const hid_t type_native = H5Tget_native_type(type, H5T_DIR_DEFAULT);
  EXPECT_GT(H5Tequal(type_native, native), 0) << object << " " << name;
  EXPECT_GE(H5Aread(attribute, native, &value), 0);
  H5Tclose(type_native);
  H5Tclose(type);
  H5Aclose(attribute);
  return value;
}

std::string read_string_attribute(hid_t file, const char* name) {
  const hid_t attribute = H5Aopen_by_name(file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(attribute, 0) << name;
  if (attribute < 0) return {};
  const hid_t type = H5Aget_type(attribute);
  EXPECT_EQ(H5Tget_class(type), H5T_STRING);
  EXPECT_GT(H5Tis_variable_str(type), 0);
  char* text = nullptr;
  EXPECT_GE(H5Aread(attribute, type, &text), 0);
  std::string value = text != nullptr ? text : "";
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(attribute);
  return value;
}

/// Every rank of the test runs the same tests on one file name, chosen by rank 0 (its pid keeps
/// concurrent test processes apart) and removed after the test.
class OutputFileTest : public ::testing::Test {
 protected:
  OutputFileTest() : comm_(MPI_COMM_WORLD) {}

  void SetUp() override {
    int64_t pid = comm_.is_root() ? static_cast<int64_t>(getpid()) : 0;
    MPI_Bcast(&pid, 1, MPI_INT64_T, 0, comm_.get());
    dir_ = fs::temp_directory_path() / ("rbsde_test_output_file_" + std::to_string(pid)) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    // A directory that does not exist yet: the constructor creates it.
    path_ = (dir_ / "nested" / "run.h5").string();
  }

  void TearDown() override {
    comm_.barrier();
    if (comm_.is_root()) {
      std::error_code ignored;
      fs::remove_all(dir_.parent_path(), ignored);
    }
    comm_.barrier();
  }

  rbsde::Communicator comm_;
  fs::path dir_;
  std::string path_;
};

rbsde::TrainingHistory test_history() {
  rbsde::TrainingHistory history;
  history.loss = {4.0, 2.0, 1.0, 0.5};
  history.log_z = {0.1, 0.2, 0.3, 0.4};
  history.time = {1.0, 2.0, 3.0, 4.0};
  history.gamma = {0.25, 0.5, 1.0, 1.0};
  return history;
}

rbsde::Estimates test_estimates(int64_t count) {
  rbsde::Estimates estimates;
  estimates.count = count;
  estimates.log_z_is = 1.25;
  estimates.log_z_is_stderr = 0.03;
  estimates.log_z_network = 1.2;
  estimates.elbo = 1.1;
  estimates.elbo_stderr = 0.02;
  estimates.ess = 30.5;
  estimates.ess_fraction = 30.5 / static_cast<double>(count);
  return estimates;
}

/// Rank 0's check of a committed file holding every part of the test run.
void check_committed_file(const std::string& path, int64_t count, int64_t dim) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0) << path;

  EXPECT_EQ(read_string_attribute(file, "config"), kConfig);
  EXPECT_EQ(read_string_attribute(file, "version"), "0.1.0-test");

  std::vector<hsize_t> dims;
  bool type_ok = false;
  const auto samples = read_dataset<float>(file, "/samples", H5T_NATIVE_FLOAT, &dims, &type_ok);
  EXPECT_TRUE(type_ok) << "/samples is not float32";
  ASSERT_EQ(dims, (std::vector<hsize_t>{static_cast<hsize_t>(count), static_cast<hsize_t>(dim)}));
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t j = 0; j < dim; ++j) {
      ASSERT_EQ(samples[i * dim + j], sample_value(i, j)) << "row " << i << " column " << j;
    }
  }
  const auto log_weights =
      read_dataset<double>(file, "/log_weights", H5T_NATIVE_DOUBLE, &dims, &type_ok);
  EXPECT_TRUE(type_ok) << "/log_weights is not float64";
  ASSERT_EQ(dims, (std::vector<hsize_t>{static_cast<hsize_t>(count)}));
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(log_weights[i], log_weight_value(i)) << i;
  // The per-path diagnostics (written as log w + 1 and log w + 2 by path_rows).
  for (const auto& [name, shift] :
       {std::pair{"/paths/log_target", 1.0}, std::pair{"/paths/network_log_z", 2.0}}) {
    const auto values = read_dataset<double>(file, name, H5T_NATIVE_DOUBLE, &dims, &type_ok);
    EXPECT_TRUE(type_ok) << name << " is not float64";
    ASSERT_EQ(dims, (std::vector<hsize_t>{static_cast<hsize_t>(count)})) << name;
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(values[i], log_weight_value(i) + shift) << name;
  }

  const hid_t samples_set = H5Dopen2(file, "/samples", H5P_DEFAULT);
  const hid_t dcpl = H5Dget_create_plist(samples_set);
  EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
  H5Pclose(dcpl);
  H5Dclose(samples_set);

  const rbsde::TrainingHistory history = test_history();
  const std::pair<const char*, const std::vector<double>*> records[] = {
      {"/training/loss", &history.loss},
      {"/training/log_z", &history.log_z},
      {"/training/time", &history.time},
      {"/training/gamma", &history.gamma},
  };
  for (const auto& [name, expected] : records) {
    EXPECT_EQ(read_dataset<double>(file, name, H5T_NATIVE_DOUBLE, &dims, &type_ok), *expected)
        << name;
    EXPECT_TRUE(type_ok) << name << " is not float64";
    EXPECT_EQ(dims, (std::vector<hsize_t>{expected->size()})) << name;
  }

  const rbsde::Estimates estimates = test_estimates(count);
  const auto estimate = [&](const char* name) {
    return read_attribute<double>(file, "/estimates", name, H5T_NATIVE_DOUBLE);
  };
  EXPECT_EQ(estimate("log_z_is"), estimates.log_z_is);
  EXPECT_EQ(estimate("log_z_is_stderr"), estimates.log_z_is_stderr);
  EXPECT_EQ(estimate("log_z_network"), estimates.log_z_network);
  EXPECT_EQ(estimate("elbo"), estimates.elbo);
  EXPECT_EQ(estimate("elbo_stderr"), estimates.elbo_stderr);
  EXPECT_EQ(estimate("ess"), estimates.ess);
  EXPECT_EQ(estimate("ess_fraction"), estimates.ess_fraction);
  EXPECT_EQ(read_attribute<int64_t>(file, "/estimates", "count", H5T_NATIVE_INT64), count);

  EXPECT_GE(H5Fclose(file), 0);
}

TEST_F(OutputFileTest, WritesEveryPartCollectivelyAndCommits) {
  const int64_t count = 37;  // uneven over 2 or 3 ranks
  const int64_t dim = 3;
  const rbsde::PathRange mine = rbsde::path_range(count, comm_.rank(), comm_.size());
  {
    rbsde::OutputFile output(path_, comm_);
    if (comm_.is_root()) {
      EXPECT_TRUE(fs::exists(path_ + ".tmp"));
      EXPECT_FALSE(fs::exists(path_)) << "the final name must appear only on commit";
    }
    output.write_metadata(kConfig, "0.1.0-test");
    output.write_training(test_history());
    output.create_samples(count, dim);
    EXPECT_FALSE(output.last_write_collective()) << "nothing written yet";

    // Two batches per rank, as the sampler writes them; the split differs between ranks.
    const int64_t first = mine.count() / 2;
    for (const rbsde::PathRange batch : {rbsde::PathRange{mine.begin, mine.begin + first},
                                         rbsde::PathRange{mine.begin + first, mine.end}}) {
      const PathData data(batch, dim);
      output.write_samples(batch.begin, batch.count(), data.rows());
      EXPECT_TRUE(output.last_write_collective())
          << "HDF5 reported an independent transfer for rows [" << batch.begin << ", " << batch.end
          << ") on rank " << comm_.rank();
    }
    output.write_estimates(test_estimates(count));
    output.commit();
    // commit() ends with a reduction: the final file is visible to every rank now.
    EXPECT_TRUE(fs::exists(path_));
    EXPECT_FALSE(fs::exists(path_ + ".tmp"));
  }
  comm_.barrier();  // the destructor of a committed file must not remove anything
  if (comm_.is_root()) {
    EXPECT_TRUE(fs::exists(path_));
    check_committed_file(path_, count, dim);
  }
}

TEST_F(OutputFileTest, RanksWithoutRowsJoinTheCollectiveWrite) {
  // Rank 0 owns every row; the other ranks write nothing but still take part.
  const int64_t count = 5;
  const int64_t dim = 2;
  {
    rbsde::OutputFile output(path_, comm_);
    output.create_samples(count, dim);
    const rbsde::PathRange mine{0, comm_.is_root() ? count : 0};
    const PathData data(mine, dim);
    output.write_samples(0, mine.count(), data.rows());
    EXPECT_TRUE(output.last_write_collective()) << "rank " << comm_.rank();
    output.commit();
  }
  if (comm_.is_root()) {
    const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    std::vector<hsize_t> dims;
    bool type_ok = false;
    const auto samples = read_dataset<float>(file, "/samples", H5T_NATIVE_FLOAT, &dims, &type_ok);
    ASSERT_EQ(samples.size(), static_cast<size_t>(count * dim));
    for (int64_t i = 0; i < count * dim; ++i) EXPECT_EQ(samples[i], sample_value(i / dim, i % dim));
    H5Fclose(file);
  }
}

TEST_F(OutputFileTest, ReadsBackAnotherRanksRowsAndWritesTheBiasCorrection) {
  const int64_t count = 23;
  const int64_t dim = 2;
  const rbsde::PathRange mine = rbsde::path_range(count, comm_.rank(), comm_.size());
  // The rows of the next rank (cyclically), which this rank did not write.
  const rbsde::PathRange next =
      rbsde::path_range(count, (comm_.rank() + 1) % comm_.size(), comm_.size());
  {
    rbsde::OutputFile output(path_, comm_);
    output.create_samples(count, dim);
    const PathData data(mine, dim);
    output.write_samples(mine.begin, mine.count(), data.rows());
    output.synchronise();
    std::vector<float> samples(next.count() * dim);
    std::vector<double> log_weights(next.count());
    output.read_samples(next.begin, next.count(), samples.data(), log_weights.data());
    EXPECT_EQ(samples, sample_rows(next, dim));
    EXPECT_EQ(log_weights, log_weight_rows(next));

    // /resampled: row i holds /samples row count − 1 − i; /refined: those rows plus 1.
    output.create_resampled();
    std::vector<float> reversed;
    std::vector<int64_t> index;
    std::vector<double> source_log_weights;
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      index.push_back(count - 1 - i);
      source_log_weights.push_back(-0.5 * static_cast<double>(count - 1 - i));
      for (int64_t j = 0; j < dim; ++j) reversed.push_back(sample_value(count - 1 - i, j));
    }
    output.write_resampled(mine.begin, mine.count(), reversed.data(), index.data(),
                           source_log_weights.data());
    output.synchronise();
    std::vector<float> back(next.count() * dim);
    output.read_resampled(next.begin, next.count(), back.data());
    for (int64_t i = next.begin; i < next.end; ++i) {
      EXPECT_EQ(back[(i - next.begin) * dim], sample_value(count - 1 - i, 0)) << i;
    }
    output.create_refined();
    std::vector<float> refined = reversed;
    for (float& value : refined) value += 1.0f;
    output.write_refined(mine.begin, mine.count(), refined.data());
    rbsde::Refinement refinement;
    refinement.iterations = 40;
    refinement.leapfrog_steps = 12;
    refinement.acceptance_rate = 0.61;
    refinement.step_size = 0.25;
    refinement.rhat = 1.003;
    refinement.ess = 812.5;
    output.write_refined_attributes(refinement);
    // /posterior: draw i of the scalar "a" is i, of the vector "b" (size 2) is (−i, 10 i).
    output.create_posterior({{"a", 0}, {"b", 2}});
    std::vector<double> draws;
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      draws.push_back(static_cast<double>(i));
      draws.push_back(-static_cast<double>(i));
      draws.push_back(10.0 * static_cast<double>(i));
    }
    output.write_posterior(mine.begin, mine.count(), draws.data());
    rbsde::Estimates estimates = test_estimates(count);
    estimates.posterior_mean = {1.5, -2.5};
    estimates.posterior_sd = {0.5, 0.75};
    output.write_estimates(estimates);
    rbsde::ReferenceMoments reference;
    reference.mean = {0.1, 0.2};
    reference.sd = {1.1, 1.2};
    reference.mean_stderr = {0.01, 0.02};
    reference.acceptance_rate = 0.57;
    reference.step_size = 0.8;
    reference.chains = 64;
    reference.warmup = 100;
    reference.steps = 1000;
    output.write_reference(reference);
    EXPECT_THROW(output.read_resampled(count - 1, 2, back.data()), rbsde::Error) << "past the end";
    output.commit();
  }
  if (comm_.is_root()) {
    const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    std::vector<hsize_t> dims;
    bool type_ok = false;
    const auto index =
        read_dataset<int64_t>(file, "/resampled/index", H5T_NATIVE_INT64, &dims, &type_ok);
    EXPECT_TRUE(type_ok) << "/resampled/index is not int64";
    ASSERT_EQ(index.size(), static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(index[i], count - 1 - i);
    // The InferenceData groups: [chain = 1, draw = count] with dimension scales.
    const auto log_weight =
        read_dataset<double>(file, "/sample_stats/log_weight", H5T_NATIVE_DOUBLE, &dims, &type_ok);
    EXPECT_EQ(dims, (std::vector<hsize_t>{1, static_cast<hsize_t>(count)}));
    for (int64_t i = 0; i < count; ++i) {
      EXPECT_EQ(log_weight[i], -0.5 * static_cast<double>(count - 1 - i));
    }
    const auto b = read_dataset<double>(file, "/posterior/b", H5T_NATIVE_DOUBLE, &dims, &type_ok);
    EXPECT_EQ(dims, (std::vector<hsize_t>{1, static_cast<hsize_t>(count), 2}));
    for (int64_t i = 0; i < count; ++i) {
      EXPECT_EQ(b[2 * i], -static_cast<double>(i));
      EXPECT_EQ(b[2 * i + 1], 10.0 * static_cast<double>(i));
    }
    const auto b_dim =
        read_dataset<int64_t>(file, "/posterior/b_dim_0", H5T_NATIVE_INT64, &dims, &type_ok);
    EXPECT_EQ(b_dim, (std::vector<int64_t>{0, 1}));
    // `scale` is a dimension scale attached to dimension `dimension` of `variable`.
    const auto expect_scale = [&](const char* variable, const char* scale, unsigned dimension) {
      const hid_t set = H5Dopen2(file, variable, H5P_DEFAULT);
      const hid_t scale_set = H5Dopen2(file, scale, H5P_DEFAULT);
      EXPECT_EQ(H5DSis_scale(scale_set), 1) << scale;
      EXPECT_EQ(H5DSis_attached(set, scale_set, dimension), 1) << variable << " " << scale;
      H5Dclose(scale_set);
      H5Dclose(set);
    };
    expect_scale("/posterior/b", "/posterior/b_dim_0", 2);
    const auto draw =
        read_dataset<int64_t>(file, "/posterior/draw", H5T_NATIVE_INT64, &dims, &type_ok);
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(draw[i], i);
    expect_scale("/posterior/a", "/posterior/draw", 1);
    const auto resampled =
        read_dataset<float>(file, "/resampled/samples", H5T_NATIVE_FLOAT, &dims, &type_ok);
    EXPECT_TRUE(type_ok);
    EXPECT_EQ(dims, (std::vector<hsize_t>{static_cast<hsize_t>(count), static_cast<hsize_t>(dim)}));
    const auto refined =
        read_dataset<float>(file, "/refined/samples", H5T_NATIVE_FLOAT, &dims, &type_ok);
    ASSERT_EQ(refined.size(), resampled.size());
    for (size_t i = 0; i < refined.size(); ++i) EXPECT_EQ(refined[i], resampled[i] + 1.0f);
    EXPECT_EQ(
        read_attribute<double>(file, "/refined/samples", "acceptance_rate", H5T_NATIVE_DOUBLE),
        0.61);
    EXPECT_EQ(read_attribute<double>(file, "/refined/samples", "step_size", H5T_NATIVE_DOUBLE),
              0.25);
    EXPECT_EQ(read_attribute<int64_t>(file, "/refined/samples", "leapfrog_steps", H5T_NATIVE_INT64),
              12);
    EXPECT_EQ(read_attribute<int64_t>(file, "/refined/samples", "iterations", H5T_NATIVE_INT64),
              40);
    EXPECT_EQ(read_attribute<double>(file, "/refined/samples", "rhat", H5T_NATIVE_DOUBLE), 1.003);
    EXPECT_EQ(read_attribute<double>(file, "/refined/samples", "ess", H5T_NATIVE_DOUBLE), 812.5);
    EXPECT_EQ(
        read_dataset<double>(file, "/estimates/posterior_mean", H5T_NATIVE_DOUBLE, &dims, &type_ok),
        (std::vector<double>{1.5, -2.5}));
    EXPECT_EQ(
        read_dataset<double>(file, "/estimates/posterior_sd", H5T_NATIVE_DOUBLE, &dims, &type_ok),
        (std::vector<double>{0.5, 0.75}));
    EXPECT_EQ(
        read_dataset<double>(file, "/reference/mean_stderr", H5T_NATIVE_DOUBLE, &dims, &type_ok),
        (std::vector<double>{0.01, 0.02}));
    EXPECT_EQ(read_dataset<double>(file, "/reference/sd", H5T_NATIVE_DOUBLE, &dims, &type_ok),
              (std::vector<double>{1.1, 1.2}));
    EXPECT_EQ(read_attribute<double>(file, "/reference", "step_size", H5T_NATIVE_DOUBLE), 0.8);
    EXPECT_EQ(read_attribute<int64_t>(file, "/reference", "steps", H5T_NATIVE_INT64), 1000);
    H5Fclose(file);
  }
}

TEST_F(OutputFileTest, EmptyTrainingHistoryGivesEmptyDatasets) {
  {
    rbsde::OutputFile output(path_, comm_);
    output.write_training(rbsde::TrainingHistory{});
    output.commit();
  }
  if (comm_.is_root()) {
    const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    for (const char* name :
         {"/training/loss", "/training/log_z", "/training/time", "/training/gamma"}) {
      std::vector<hsize_t> dims;
      bool type_ok = false;
      EXPECT_TRUE(read_dataset<double>(file, name, H5T_NATIVE_DOUBLE, &dims, &type_ok).empty());
      EXPECT_EQ(dims, (std::vector<hsize_t>{0})) << name;
      EXPECT_TRUE(type_ok) << name;
    }
    H5Fclose(file);
  }
}

TEST_F(OutputFileTest, UncommittedFileLeavesNothingBehind) {
  {
    rbsde::OutputFile output(path_, comm_);
    output.write_metadata(kConfig, "0.1.0-test");
    output.create_samples(/*count=*/4, /*dim=*/2);
    const rbsde::PathRange mine = rbsde::path_range(4, comm_.rank(), comm_.size());
    const PathData data(mine, 2);
    output.write_samples(mine.begin, mine.count(), data.rows());
    // No commit: a failed run.
  }
  comm_.barrier();  // rank 0 removed the temporary file in the destructor
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(OutputFileTest, UnwritableLocationThrowsNamingThePath) {
  for (const std::string path : {"/proc/nonexistent/x.h5", "/proc/rbsde_output_test.h5"}) {
    try {
      rbsde::OutputFile output(path, comm_);
      ADD_FAILURE() << "no error for " << path;
    } catch (const rbsde::Error& error) {
      EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    }
  }
}

TEST_F(OutputFileTest, MisuseIsReported) {
  rbsde::OutputFile output(path_, comm_);
  const PathData data(rbsde::PathRange{0, 2}, 1);
  EXPECT_THROW(output.write_samples(0, 1, data.rows()), rbsde::Error)
      << "write_samples before create_samples";
  EXPECT_THROW(output.create_samples(/*count=*/0, /*dim=*/2), rbsde::Error);
  output.create_samples(/*count=*/2, /*dim=*/1);
  EXPECT_THROW(output.write_samples(/*offset=*/1, /*rows=*/2, data.rows()), rbsde::Error)
      << "rows past the end";
  output.commit();
  EXPECT_THROW(output.write_estimates(rbsde::Estimates{}), rbsde::Error) << "after commit";
}

// InferenceData's grouping of Stan's names: runs base[1] … base[k] are vectors, the rest
// scalars.
TEST(PosteriorVariables, GroupsStanVectorNames) {
  const auto variables =
      rbsde::posterior_variables({"mu", "tau", "theta[1]", "theta[2]", "theta[3]", "eta[2]",
                                  "a[1,2]", "x", "x[1]", "y[1]", "y[2]", "y[4]", "z[01]"});
  std::vector<std::pair<std::string, int64_t>> got;
  for (const auto& v : variables) got.emplace_back(v.name, v.size);
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"mu", 0}, {"tau", 0},  {"theta", 3}, {"eta[2]", 0}, {"a[1,2]", 0},
      {"x", 0},  {"x[1]", 0}, {"y", 2},     {"y[4]", 0},   {"z[01]", 0}};
  EXPECT_EQ(got, expected);
  // The built-in targets' x[1] … x[d]: one variable at any d.
  std::vector<std::string> names;
  for (int j = 1; j <= 100000; ++j) names.push_back("x[" + std::to_string(j) + "]");
  const auto x = rbsde::posterior_variables(names);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0].name, "x");
  EXPECT_EQ(x[0].size, 100000);
}

}  // namespace
