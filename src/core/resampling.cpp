#include "rbsde/core/resampling.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "rbsde/error.hpp"

namespace rbsde {

namespace {

/// ⌈a / b⌉ for b > 0.
__int128 ceil_div(__int128 a, __int128 b) {
  const __int128 quotient = a / b;  // truncates toward zero
  return quotient + ((a % b != 0 && a > 0) ? 1 : 0);
}

}  // namespace

int fixed_point_bits(int64_t count) {
  int ceil_log2 = 0;
  while ((int64_t{1} << ceil_log2) < count) ++ceil_log2;
  return 62 - ceil_log2;
}

std::vector<int64_t> fixed_point_weights(const double* log_weights, int64_t rows,
                                         double max_log_weight, int64_t count) {
  const int bits = fixed_point_bits(count);
  std::vector<int64_t> q(rows);
  for (int64_t i = 0; i < rows; ++i) {
    const double w = std::exp(log_weights[i] - max_log_weight);  // in [0, 1], or NaN
    q[i] = std::isnan(w) ? 0 : std::llround(std::ldexp(w, bits));
  }
  return q;
}

int64_t systematic_position(int64_t count, int64_t prefix, int64_t total, double u) {
  // u = U / 2³³ with U = 2w + 1 odd; then ⌈count · prefix / total − u⌉
  //   = ⌈(count · prefix · 2³³ − U · total) / (total · 2³³)⌉.
  const double scaled = std::ldexp(u, 33);
  const auto odd = static_cast<int64_t>(scaled);
  if (static_cast<double>(odd) != scaled || odd % 2 == 0 || total <= 0) {
    throw Error(
        "systematic_position: u must be a fill_uniform value (w + 1/2) / 2^32 and the "
        "total weight positive, got u = " +
        std::to_string(u) + ", total = " + std::to_string(total));
  }
  const __int128 numerator = static_cast<__int128>(count) * prefix * (__int128{1} << 33) -
                             static_cast<__int128>(odd) * total;
  const __int128 position = ceil_div(numerator, static_cast<__int128>(total) << 33);
  return static_cast<int64_t>(std::clamp<__int128>(position, 0, count));
}

}  // namespace rbsde
