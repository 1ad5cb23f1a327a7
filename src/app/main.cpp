// rbsde: Reverse-BSDE Monte Carlo sampler. Thin driver: MPI set-up and tear-down only.
#include <mpi.h>

#include "rbsde/app/app.hpp"
#include "rbsde/parallel/runtime.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int status = 0;
  {
    rbsde::KernelRuntime kernels(argc, argv);
    status = rbsde::run_app(argc, argv, MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return status;
}
