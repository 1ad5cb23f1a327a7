#include "rbsde/core/noise.hpp"

#include <math.h>

#include <algorithm>

#include "rbsde/parallel/parallel_for.hpp"

namespace rbsde {

namespace {

constexpr uint32_t kMultiplier0 = 0xD2511F53u;
constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kTwoPow32Inv = 1.0 / 4294967296.0;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

/// Rows are drawn in chunks of this many Box–Muller pairs (2 per Philox block).
constexpr int64_t kPairsPerChunk = 128;

// Box–Muller on pairs (u1, u2) of uniform words: radius √(−2 log u1), angle 2π u2. Two
// SIMD loops each, which GCC vectorises through glibc's vector math library (this file is
// compiled with -ffast-math, under which glibc declares those variants). float: 24-bit
// uniforms (tails cut at 5.9 standard deviations, probability 4e-9), for training; double:
// 32-bit uniforms (cut at 6.7, probability 2e-11), for sampling. Not inlined: inside the
// path loop GCC 12 no longer vectorises the sin/cos loop.
[[gnu::noinline]] void box_muller(const uint32_t* first, const uint32_t* second, int64_t pairs,
                                  float* radius, float* angle, float* cosine, float* sine) {
  constexpr float kScale = 1.0f / 16777216.0f;  // 2^-24
#pragma omp simd
  for (int64_t p = 0; p < pairs; ++p) {
    const float u1 = (static_cast<float>(static_cast<int32_t>(first[p] >> 8)) + 0.5f) * kScale;
    radius[p] = sqrtf(-2.0f * logf(u1));
    angle[p] = static_cast<float>(kTwoPi) *
               (static_cast<float>(static_cast<int32_t>(second[p] >> 8)) * kScale);
  }
#pragma omp simd
  for (int64_t p = 0; p < pairs; ++p) {
    cosine[p] = radius[p] * cosf(angle[p]);
    sine[p] = radius[p] * sinf(angle[p]);
  }
}

[[gnu::noinline]] void box_muller(const uint32_t* first, const uint32_t* second, int64_t pairs,
                                  double* radius, double* angle, double* cosine, double* sine) {
#pragma omp simd
  for (int64_t p = 0; p < pairs; ++p) {
    radius[p] = sqrt(-2.0 * log((static_cast<double>(first[p]) + 0.5) * kTwoPow32Inv));
    angle[p] = kTwoPi * (static_cast<double>(second[p]) * kTwoPow32Inv);
  }
#pragma omp simd
  for (int64_t p = 0; p < pairs; ++p) {
    cosine[p] = radius[p] * cos(angle[p]);
    sine[p] = radius[p] * sin(angle[p]);
  }
}

/// The last counter word: the stream in the top 4 bits, the epoch in the other 28.
uint32_t stream_word(const NoiseKey& key) {
  return (static_cast<uint32_t>(key.stream) << 28) | (key.epoch & 0x0FFFFFFFu);
}

/// The coordinate block of fill_uniform's draws (fill_normal would need d > 2³⁴ to reach it).
constexpr uint32_t kUniformBlock = 0xFFFFFFFFu;

template <typename T>
void fill_normal_impl(T* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                      uint32_t step) {
  const uint32_t k[2] = {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
  const uint32_t word3 = stream_word(key);
  for_each_path(rows, [=](int64_t i) {
    T* row = out + i * dim;
    const uint32_t path = static_cast<uint32_t>(first_path + i);
    uint32_t first[kPairsPerChunk], second[kPairsPerChunk];
    T radius[kPairsPerChunk], angle[kPairsPerChunk], cosine[kPairsPerChunk], sine[kPairsPerChunk];
    // Coordinate j is normal j % 4 of Philox block j / 4; in a block, (word 0, word 1) and
    // (word 2, word 3) are the two Box–Muller pairs, giving normals (cos, sin) each.
    for (int64_t j0 = 0; j0 < dim; j0 += 2 * kPairsPerChunk) {
      const int64_t count = std::min<int64_t>(2 * kPairsPerChunk, dim - j0);
      const int64_t blocks = (count + 3) / 4;
      for (int64_t b = 0; b < blocks; ++b) {
        const uint32_t counter[4] = {static_cast<uint32_t>(j0 / 4 + b), step, path, word3};
        uint32_t bits[4];
        philox4x32(counter, k, bits);
        first[2 * b] = bits[0];
        second[2 * b] = bits[1];
        first[2 * b + 1] = bits[2];
        second[2 * b + 1] = bits[3];
      }
      box_muller(first, second, 2 * blocks, radius, angle, cosine, sine);
      for (int64_t j = 0; j < count; ++j) row[j0 + j] = j % 2 == 0 ? cosine[j / 2] : sine[j / 2];
    }
  });
}

}  // namespace

void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMultiplier0, c0, hi0, lo0);
    mulhilo(kMultiplier1, c2, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void fill_normal(float* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                 uint32_t step) {
  fill_normal_impl(out, rows, dim, key, first_path, step);
}

void fill_rademacher(float* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                     uint32_t step) {
  const uint32_t k[2] = {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
  const uint32_t word3 = stream_word(key);
  for_each_path(rows, [=](int64_t i) {
    float* row = out + i * dim;
    const uint32_t path = static_cast<uint32_t>(first_path + i);
    uint32_t bits[4] = {};
    for (int64_t j = 0; j < dim; ++j) {
      if (j % 128 == 0) {
        const uint32_t counter[4] = {static_cast<uint32_t>(j / 128), step, path, word3};
        philox4x32(counter, k, bits);
      }
      const uint32_t word = bits[(j % 128) / 32];
      row[j] = (word >> (j % 32)) & 1u ? 1.0f : -1.0f;
    }
  });
}

void fill_normal(double* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                 uint32_t step) {
  fill_normal_impl(out, rows, dim, key, first_path, step);
}

void fill_uniform(double* out, int64_t rows, const NoiseKey& key, int64_t first_path,
                  uint32_t step) {
  const uint32_t k[2] = {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
  const uint32_t word3 = stream_word(key);
  for_each_path(rows, [=](int64_t i) {
    const uint32_t counter[4] = {kUniformBlock, step, static_cast<uint32_t>(first_path + i), word3};
    uint32_t bits[4];
    philox4x32(counter, k, bits);
    out[i] = (static_cast<double>(bits[0]) + 0.5) * kTwoPow32Inv;
  });
}

}  // namespace rbsde
