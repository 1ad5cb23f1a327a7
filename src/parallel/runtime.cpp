#include "rbsde/parallel/runtime.hpp"

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <string>
#include <thread>
#include <utility>

#ifdef RBSDE_USE_KOKKOS
#include <Kokkos_Core.hpp>
#endif

namespace rbsde {

namespace {
// Lock-free atomics are safe to write from a signal handler, and exchange() reads and
// clears a request without losing one that arrives in between.
std::atomic<bool> stop_requested{false};
std::atomic<bool> checkpoint_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_signal(int signal) {
  if (signal == SIGUSR1) {
    checkpoint_requested = true;
  } else {
    stop_requested = true;
  }
}
}  // namespace

namespace {
/// All CPUs' time in clock ticks from the first line of /proc/stat: {busy, total}; {0, 0}
/// where it cannot be read.
std::pair<double, double> cpu_ticks() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  if (cpu != "cpu") return {0.0, 0.0};
  // user nice system idle iowait irq softirq steal (guest time is counted in user already)
  double ticks[8] = {};
  for (double& t : ticks) stat >> t;
  if (!stat) return {0.0, 0.0};
  double total = 0.0;
  for (const double t : ticks) total += t;
  return {total - ticks[3] - ticks[4], total};
}
}  // namespace

double busy_cores(double seconds) {
  const auto before = cpu_ticks();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto after = cpu_ticks();
  const double total = after.second - before.second;
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (!(total > 0.0) || cpus < 1) return NAN;
  return static_cast<double>(cpus) * (after.first - before.first) / total;
}

void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // serve blocks up to 1 GiB from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and do not trim it while less than 1 GiB is free
}

#ifdef RBSDE_USE_KOKKOS
KernelRuntime::KernelRuntime(int& argc, char** argv) { Kokkos::initialize(argc, argv); }
KernelRuntime::~KernelRuntime() { Kokkos::finalize(); }
#else
KernelRuntime::KernelRuntime(int& /*argc*/, char** /*argv*/) {}
KernelRuntime::~KernelRuntime() = default;
#endif

void install_signal_handlers() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGUSR1, on_signal);
}

SignalRequests take_signal_requests() {
  SignalRequests requests;
  requests.stop = stop_requested.exchange(false);
  requests.checkpoint = checkpoint_requested.exchange(false);
  return requests;
}

}  // namespace rbsde
