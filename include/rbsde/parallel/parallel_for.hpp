#pragma once
/// \file parallel_for.hpp
/// The in-node back end of the path kernels (noise, X update, weight accumulation): one
/// body per path, run as an OpenMP loop (default) or as a Kokkos parallel_for on the host
/// execution space (CMake option RBSDE_KOKKOS). Each path's result depends on that path
/// alone, so both back ends and every thread count give identical results.
#include <cstdint>

#ifdef RBSDE_USE_KOKKOS
#include <Kokkos_Core.hpp>
#endif

namespace rbsde {

/// Calls body(i) for every path i in [0, rows), in parallel.
template <typename Body>
void for_each_path(int64_t rows, const Body& body) {
#ifdef RBSDE_USE_KOKKOS
  Kokkos::parallel_for(
      "rbsde::for_each_path",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<int64_t>>(0, rows),
      body);
  Kokkos::fence();
#else
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) body(i);
#endif
}

/// The name of the back end, for the start-up report.
inline const char* kernel_backend() {
#ifdef RBSDE_USE_KOKKOS
  return "Kokkos";
#else
  return "OpenMP";
#endif
}

}  // namespace rbsde
