#include "rbsde/parallel/communicator.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "rbsde/error.hpp"

namespace rbsde {

void check_mpi(int code, const char* where) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("MPI call failed in ") + where + ": " + std::string(text, length));
}

Communicator::Communicator(MPI_Comm comm) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  // Errors come back as codes (checked by check_mpi) instead of aborting inside MPI.
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

Communicator::~Communicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

namespace {
// MPI counts are int: split very large buffers into pieces that fit.
constexpr int64_t kMaxCount = int64_t{1} << 30;
}  // namespace

void Communicator::allreduce_sum(float* data, int64_t count) const {
  ++float_allreduces_;
  const double start = MPI_Wtime();
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, comm_),
              "MPI_Allreduce(sum, float)");
  }
  float_allreduce_seconds_ += MPI_Wtime() - start;
}

void Communicator::allreduce_sum(double* data, int64_t count) const {
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_DOUBLE, MPI_SUM, comm_),
              "MPI_Allreduce(sum, double)");
  }
}

void Communicator::allreduce_max(double* data, int64_t count) const {
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_DOUBLE, MPI_MAX, comm_),
              "MPI_Allreduce(max, double)");
  }
}

int64_t Communicator::allreduce_sum(int64_t value) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_SUM, comm_),
            "MPI_Allreduce(sum, int64)");
  return value;
}

int64_t Communicator::exscan_sum(int64_t value) const {
  int64_t below = 0;
  check_mpi(MPI_Exscan(&value, &below, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Exscan");
  return rank_ == 0 ? 0 : below;  // MPI leaves rank 0's result undefined
}

std::vector<double> Communicator::allgather(const double* data, int64_t count) const {
  if (count * size_ > std::numeric_limits<int>::max()) {
    throw Error("MPI_Allgather: " + std::to_string(count) + " values per rank exceed MPI's count");
  }
  std::vector<double> all(static_cast<size_t>(count * size_));
  check_mpi(MPI_Allgather(data, static_cast<int>(count), MPI_DOUBLE, all.data(),
                          static_cast<int>(count), MPI_DOUBLE, comm_),
            "MPI_Allgather");
  return all;
}

void Communicator::broadcast(float* data, int64_t count) const {
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    check_mpi(MPI_Bcast(data + done, n, MPI_FLOAT, 0, comm_), "MPI_Bcast");
  }
}

void Communicator::broadcast(double* data, int64_t count) const {
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    check_mpi(MPI_Bcast(data + done, n, MPI_DOUBLE, 0, comm_), "MPI_Bcast(double)");
  }
}

void Communicator::barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

std::string Communicator::first_error(const std::string& error) const {
  int first = error.empty() ? size_ : rank_;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm_),
            "MPI_Allreduce(first error)");
  if (first == size_) return {};
  int length = rank_ == first ? static_cast<int>(std::min<size_t>(error.size(), kMaxCount)) : 0;
  check_mpi(MPI_Bcast(&length, 1, MPI_INT, first, comm_), "MPI_Bcast(error length)");
  std::string message = rank_ == first ? error.substr(0, length) : std::string(length, '\0');
  check_mpi(MPI_Bcast(message.data(), length, MPI_CHAR, first, comm_), "MPI_Bcast(error)");
  return message;
}

PathRange path_range(int64_t total, int rank, int size) {
  const int64_t base = total / size;
  const int64_t extra = total % size;
  PathRange range;
  range.begin = rank * base + std::min<int64_t>(rank, extra);
  range.end = range.begin + base + (rank < extra ? 1 : 0);
  return range;
}

}  // namespace rbsde
