// Counter-based noise: Philox known answers, normal moments, and independence of the split.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "rbsde/core/noise.hpp"

namespace rbsde {
namespace {

// Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors).
TEST(Noise, PhiloxKnownAnswers) {
  struct Case {
    uint32_t counter[4];
    uint32_t key[2];
    uint32_t expected[4];
  };
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& c : cases) {
    uint32_t out[4];
    philox4x32(c.counter, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.expected[i]) << "word " << i;
  }
}

TEST(Noise, StandardNormalMoments) {
  const int64_t rows = 50000, dim = 7;
  std::vector<double> x(rows * dim);
  fill_normal(x.data(), rows, dim, NoiseKey{12345, NoiseStream::kSampling, 0}, 0, 3);
  double m1 = 0, m2 = 0, m4 = 0;
  for (double v : x) {
    m1 += v;
    m2 += v * v;
    m4 += v * v * v * v;
  }
  const double n = static_cast<double>(x.size());
  m1 /= n;
  m2 /= n;
  m4 /= n;
  // Standard errors: mean 1/√n, second moment √2/√n, fourth moment √96/√n; 5 of them.
  EXPECT_NEAR(m1, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(m2, 1.0, 5.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m4, 3.0, 5.0 * std::sqrt(96.0 / n));
}

TEST(Noise, IndependentOfHowPathsAreSplit) {
  const int64_t rows = 101, dim = 5;
  const NoiseKey key{7, NoiseStream::kTraining, 42};
  std::vector<float> whole(rows * dim), parts(rows * dim);
  fill_normal(whole.data(), rows, dim, key, 1000, 9);
  // Three uneven pieces, as three ranks would draw them, and a different thread count.
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  fill_normal(parts.data(), 34, dim, key, 1000, 9);
  fill_normal(parts.data() + 34 * dim, 33, dim, key, 1034, 9);
  fill_normal(parts.data() + 67 * dim, 34, dim, key, 1067, 9);
  omp_set_num_threads(saved);
  EXPECT_EQ(whole, parts);
}

TEST(Noise, UniformsAreUniformAndIndependentOfTheSplit) {
  const int64_t rows = 40000;
  const NoiseKey key{3, NoiseStream::kMcmc, 0};
  std::vector<double> whole(rows), parts(rows);
  fill_uniform(whole.data(), rows, key, 500, 7);
  fill_uniform(parts.data(), 15000, key, 500, 7);
  fill_uniform(parts.data() + 15000, rows - 15000, key, 15500, 7);
  EXPECT_EQ(whole, parts);
  double mean = 0.0, below_tenth = 0.0;
  for (const double u : whole) {
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u / rows;
    below_tenth += u < 0.1 ? 1.0 / rows : 0.0;
  }
  // Standard errors: mean √(1/12 / n) = 0.0014, a tenth's share √(0.09 / n) = 0.0015; 5 each.
  EXPECT_NEAR(mean, 0.5, 5.0 * std::sqrt(1.0 / 12.0 / rows));
  EXPECT_NEAR(below_tenth, 0.1, 5.0 * std::sqrt(0.09 / rows));
  // Another step or stream gives other uniforms.
  std::vector<double> other(rows);
  fill_uniform(other.data(), rows, key, 500, 8);
  EXPECT_NE(other, whole);
  fill_uniform(other.data(), rows, NoiseKey{3, NoiseStream::kResampling, 0}, 500, 7);
  EXPECT_NE(other, whole);
}

TEST(Noise, KeysSeparateStreams) {
  const int64_t dim = 4;
  std::vector<float> a(dim), b(dim);
  auto draw = [&](std::vector<float>& out, uint64_t seed, NoiseStream stream, uint32_t epoch,
                  int64_t path, uint32_t step) {
    fill_normal(out.data(), 1, dim, NoiseKey{seed, stream, epoch}, path, step);
  };
  draw(a, 1, NoiseStream::kTraining, 0, 0, 0);
  for (int variant = 0; variant < 5; ++variant) {
    switch (variant) {
      case 0:
        draw(b, 2, NoiseStream::kTraining, 0, 0, 0);
        break;
      case 1:
        draw(b, 1, NoiseStream::kSampling, 0, 0, 0);
        break;
      case 2:
        draw(b, 1, NoiseStream::kTraining, 1, 0, 0);
        break;
      case 3:
        draw(b, 1, NoiseStream::kTraining, 0, 1, 0);
        break;
      default:
        draw(b, 1, NoiseStream::kTraining, 0, 0, kInitialStep);
        break;
    }
    EXPECT_NE(a, b) << "variant " << variant;
  }
}

TEST(Noise, RademacherSignsAreBalancedAndIndependentOfTheSplit) {
  // 300 coordinates cross the 128-sign Philox blocks.
  const int64_t rows = 400, dim = 300;
  const NoiseKey key{3, NoiseStream::kProbes, 2};
  std::vector<float> whole(rows * dim), parts(rows * dim);
  fill_rademacher(whole.data(), rows, dim, key, 50, 7);
  fill_rademacher(parts.data(), 150, dim, key, 50, 7);
  fill_rademacher(parts.data() + 150 * dim, 250, dim, key, 200, 7);
  EXPECT_EQ(whole, parts);
  double sum = 0.0, lag = 0.0;  // mean and neighbour correlation, each 0 ± 1/√n
  for (size_t i = 0; i < whole.size(); ++i) {
    ASSERT_TRUE(whole[i] == 1.0f || whole[i] == -1.0f) << whole[i];
    sum += whole[i];
    if (i > 0) lag += whole[i] * whole[i - 1];
  }
  const double n = static_cast<double>(whole.size());
  EXPECT_NEAR(sum / n, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(lag / n, 0.0, 5.0 / std::sqrt(n));
  // Another probe index (the epoch) gives other signs.
  std::vector<float> other(rows * dim);
  fill_rademacher(other.data(), rows, dim, NoiseKey{3, NoiseStream::kProbes, 3}, 50, 7);
  EXPECT_NE(whole, other);
}

}  // namespace
}  // namespace rbsde
