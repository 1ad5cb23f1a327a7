#pragma once
/// \file noise.hpp
/// Counter-based Gaussian noise (Philox4x32-10 with Box–Muller), keyed by
/// (seed, stream, epoch, global path index, step): the noise of a path does not depend on
/// how paths are split over ranks or threads (method.md §7).
#include <cstdint>

namespace rbsde {

/// What a noise draw is for; different streams never share a counter. kProbes: the
/// Rademacher probes of the ODE sampler's Hutchinson divergence (epoch = probe index);
/// kMcmc keys the MALA chains (reference sampler and refinement), kResampling the one uniform
/// of systematic resampling, kSmc the SMC reference (epoch = run), kIndependence the
/// independence moves of the refinement (epoch 2 m for move m's proposed paths, 2 m + 1 for
/// its noising paths and accept test).
enum class NoiseStream : uint32_t {
  kTraining = 1,
  kSampling = 2,
  kProbes = 3,
  kMcmc = 4,
  kResampling = 5,
  kSmc = 6,
  kVariational = 7,
  kIndependence = 8
};

/// The step index that keys the initial point X₀ (steps 0 … N−1 key the increments ξ_n).
inline constexpr uint32_t kInitialStep = 0xFFFFFFFFu;

struct NoiseKey {
  uint64_t seed = 0;
  NoiseStream stream = NoiseStream::kTraining;
  uint32_t epoch = 0;  ///< training iteration, or 0 when sampling
};

/// Fills out[i * dim + j] for i < rows with standard normals of global path first_path + i,
/// coordinate j, at `step`. OpenMP-parallel over rows.
void fill_normal(float* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                 uint32_t step);
void fill_normal(double* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                 uint32_t step);

/// Fills out[i * dim + j] for i < rows with independent signs ±1 (Rademacher) of global path
/// first_path + i, coordinate j, at `step`: bit j % 128 of Philox block j / 128. OpenMP-parallel
/// over rows.
void fill_rademacher(float* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                     uint32_t step);
/// Fills out[i] for i < rows with a uniform on (0, 1) of global path (or chain) first_path + i
/// at `step`: u = (w + ½) / 2³² for the first word w of one Philox block whose coordinate block
/// is 2³² − 1, a block fill_normal never uses, so u is independent of that path's normals.
void fill_uniform(double* out, int64_t rows, const NoiseKey& key, int64_t first_path,
                  uint32_t step);

/// One Philox4x32-10 block: 4 uniform 32-bit words for a 128-bit counter and 64-bit key.
void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

}  // namespace rbsde
