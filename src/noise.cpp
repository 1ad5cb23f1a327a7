#include "rbsde/noise.hpp"

#include <cmath>

#include "rbsde/parallel_for.hpp"

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

template <typename T>
void fill_normal_impl(T* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                      uint32_t step) {
  const uint32_t k[2] = {static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32)};
  // The stream occupies the top 4 bits of the last counter word, the epoch the other 28.
  const uint32_t word3 = (static_cast<uint32_t>(key.stream) << 28) | (key.epoch & 0x0FFFFFFFu);
  const int64_t blocks = (dim + 3) / 4;
  for_each_path(rows, [=](int64_t i) {
    T* row = out + i * dim;
    const uint32_t path = static_cast<uint32_t>(first_path + i);
    for (int64_t block = 0; block < blocks; ++block) {
      const uint32_t counter[4] = {static_cast<uint32_t>(block), step, path, word3};
      uint32_t bits[4];
      philox4x32(counter, k, bits);
      // Box–Muller on two pairs of uniforms in (0, 1).
      double normals[4];
      for (int pair = 0; pair < 2; ++pair) {
        const double u1 = (static_cast<double>(bits[2 * pair]) + 0.5) * kTwoPow32Inv;
        const double u2 = (static_cast<double>(bits[2 * pair + 1]) + 0.5) * kTwoPow32Inv;
        const double radius = std::sqrt(-2.0 * std::log(u1));
        normals[2 * pair] = radius * std::cos(kTwoPi * u2);
        normals[2 * pair + 1] = radius * std::sin(kTwoPi * u2);
      }
      const int64_t j0 = 4 * block;
      const int64_t count = dim - j0 < 4 ? dim - j0 : 4;
      for (int64_t j = 0; j < count; ++j) row[j0 + j] = static_cast<T>(normals[j]);
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

void fill_normal(double* out, int64_t rows, int64_t dim, const NoiseKey& key, int64_t first_path,
                 uint32_t step) {
  fill_normal_impl(out, rows, dim, key, first_path, step);
}

}  // namespace rbsde
