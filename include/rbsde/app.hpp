#pragma once
/// \file app.hpp
/// The rbsde command line: `rbsde run|train|sample CONFIG [--set key=value ...]`.
#include <mpi.h>

namespace rbsde {

/// Runs one command on the ranks of `comm` and returns the process exit status. Errors are
/// reported once and make every rank return non-zero (or abort the job when only some
/// ranks failed, so no rank is left waiting in a collective).
int run_app(int argc, char** argv, MPI_Comm comm);

}  // namespace rbsde
