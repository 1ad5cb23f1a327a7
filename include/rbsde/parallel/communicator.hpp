#pragma once
/// \file communicator.hpp
/// RAII owner of a duplicated MPI communicator with the few collectives rbsde uses.
/// Every MPI return code is checked and turned into an Error.
#include <mpi.h>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "rbsde/error.hpp"

namespace rbsde {

class Communicator {
 public:
  /// Duplicates `comm` (MPI_Comm_dup); the duplicate is freed on destruction.
  explicit Communicator(MPI_Comm comm);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  /// In-place sum over ranks.
  void allreduce_sum(float* data, int64_t count) const;
  void allreduce_sum(double* data, int64_t count) const;
  /// In-place maximum over ranks.
  void allreduce_max(double* data, int64_t count) const;
  /// The sum of `value` over all ranks (exact: integers).
  int64_t allreduce_sum(int64_t value) const;
  /// Exclusive prefix sum: the sum of `value` over the ranks below this one (0 on rank 0).
  int64_t exscan_sum(int64_t value) const;
  /// Broadcast from rank 0.
  void broadcast(float* data, int64_t count) const;
  void broadcast(double* data, int64_t count) const;
  void barrier() const;
  /// Every rank's `count` values (`count` alike on every rank), rank after rank.
  std::vector<double> allgather(const double* data, int64_t count) const;
  /// Collective: the message of the lowest rank whose `error` is not empty, on every rank;
  /// empty when every `error` is.
  std::string first_error(const std::string& error) const;
  /// Collective: runs `step` on every rank; if it throws on any, every rank throws
  /// CollectiveError with the lowest failing rank's message. For steps every rank takes at the
  /// same point whose failure may strike alike on all (a size too large for the memory) or on
  /// some only (a file one rank cannot read): reported once, and no rank left waiting.
  /// `describe` turns an exception into its message.
  template <typename Step, typename Describe>
  void all_or_none(Step&& step, Describe&& describe) const {
    std::string error;
    try {
      step();
    } catch (const std::exception& e) {
      error = describe(e);
      if (error.empty()) error = "unknown error";
    }
    const std::string first = first_error(error);
    if (!first.empty()) throw CollectiveError(first);
  }
  template <typename Step>
  void all_or_none(Step&& step) const {
    all_or_none(std::forward<Step>(step), [](const std::exception& e) { return e.what(); });
  }
  /// Number of gradient all-reduces performed (allreduce_sum on float data) since creation.
  int64_t float_allreduce_count() const { return float_allreduces_; }
  /// Wall-clock seconds (MPI_Wtime) spent inside those all-reduces since creation, waiting
  /// for the slowest rank included: the communication share of a training step (bench/).
  double float_allreduce_seconds() const { return float_allreduce_seconds_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  mutable int64_t float_allreduces_ = 0;
  mutable double float_allreduce_seconds_ = 0.0;
};

/// The contiguous range [begin, end) of global path indices that `rank` of `size` owns;
/// the first (total mod size) ranks get one path more.
struct PathRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t count() const { return end - begin; }
};
PathRange path_range(int64_t total, int rank, int size);

/// Throws Error("MPI call failed in <where>: <MPI error string>") unless code == MPI_SUCCESS.
void check_mpi(int code, const char* where);

}  // namespace rbsde
