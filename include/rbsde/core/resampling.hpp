#pragma once
/// \file resampling.hpp
/// Systematic resampling in exact integer arithmetic: the offspring counts of weighted paths
/// (io/posterior) or particles (bsde/smc) are the same on any number of ranks.
#include <cstdint>
#include <vector>

namespace rbsde {

/// Bits of the fixed-point weights: 62 − ⌈log₂ count⌉, so that the weights of up to `count`
/// paths, each at most 2^bits, add up without overflow in int64.
int fixed_point_bits(int64_t count);

/// q_i = round(2^bits exp(log w_i − max_log_weight)) for `rows` log weights (0 for NaN).
/// Integer sums are exact in any order, so prefix sums over ranks, and with them the whole
/// resampling, are bit-identical on any number of ranks. The rounding moves any path's
/// expected offspring count by at most count · 2^−bits of the largest weight's.
std::vector<int64_t> fixed_point_weights(const double* log_weights, int64_t rows,
                                         double max_log_weight, int64_t count);

/// How many of the `count` systematic positions (k + u) / count, k = 0 … count − 1, lie
/// below prefix / total: ⌈count · prefix / total − u⌉ clamped to [0, count], computed exactly
/// in 128-bit integers. u must be a fill_uniform value, (w + ½) / 2³². The offspring count of
/// path i is position(prefix_i + q_i) − position(prefix_i): the counts add up to `count` and
/// each is ⌊count q_i / total⌋ or ⌈count q_i / total⌉. Needs count < 2³¹ and total ≤ 2⁶².
int64_t systematic_position(int64_t count, int64_t prefix, int64_t total, double u);

}  // namespace rbsde
