// GoogleTest main for rbsde's tests: MPI is initialised once for the whole binary, since the
// library takes a communicator; under mpiexec the same binary runs the MPI tests.
#include <gtest/gtest.h>
#include <mpi.h>

#include "rbsde/parallel/runtime.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  rbsde::keep_freed_memory();
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {  // one rank reports; the others still run every test
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int result = 0;
  {
    rbsde::KernelRuntime kernels(argc, argv);
    result = RUN_ALL_TESTS();
  }
  MPI_Finalize();
  return result;
}
