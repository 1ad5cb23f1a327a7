#pragma once
/// \file runtime.hpp
/// Process-wide settings made once at start-up, and the signals a long run responds to.

namespace rbsde {

/// Keeps large freed blocks in the heap instead of returning them to the kernel. Each
/// training step allocates and frees the same tens of megabytes of tensors; with glibc's
/// defaults they are unmapped and faulted in again every step, which cost 15–20 % of the
/// step time (page clearing in the kernel, measured with perf).
void keep_freed_memory();

/// How many of this node's cores other work keeps busy: the non-idle share of all CPUs' time
/// (/proc/stat) over the next `seconds`, which this call sleeps, times the number of CPUs; NaN
/// where /proc/stat cannot be read. A process that calls it adds nothing while it sleeps.
double busy_cores(double seconds);

/// Holds the in-node kernel back end for the life of the process: initialises Kokkos (and
/// reads its --kokkos-* options) when rbsde is built with it; nothing for OpenMP. Create it
/// after MPI_Init and destroy it before MPI_Finalize.
class KernelRuntime {
 public:
  KernelRuntime(int& argc, char** argv);
  ~KernelRuntime();
  KernelRuntime(const KernelRuntime&) = delete;
  KernelRuntime& operator=(const KernelRuntime&) = delete;
};

/// What signals asked of a training run since the last take_signal_requests().
struct SignalRequests {
  bool stop = false;        ///< SIGTERM or SIGINT: write a checkpoint and stop
  bool checkpoint = false;  ///< SIGUSR1: write a checkpoint and go on
};

/// Installs handlers for SIGTERM and SIGINT (checkpoint, then stop) and SIGUSR1
/// (checkpoint, then go on), as SLURM sends them before a time limit (`--signal`, scancel).
void install_signal_handlers();

/// The requests received since the last call; clears them.
SignalRequests take_signal_requests();

}  // namespace rbsde
