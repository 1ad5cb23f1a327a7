// The SMC reference (smc.hpp) on all ranks of the world against the same configuration on
// one rank (MPI_COMM_SELF): the particles are keyed by global index and resampled by one
// all-gather with exact integer offspring counts, so log 𝒵 and the moments agree up to the
// rounding of the sums over ranks.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../unit/helpers.hpp"
#include "rbsde/bsde/smc.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

/// |a − b| within 1e-9 of |a| (of 1 for |a| < 1): the rounding of sums in another order.
void expect_close(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), 1e-9 * std::max(1.0, std::abs(a))) << what << ": " << a << ", " << b;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t j = 0; j < a.size(); ++j) expect_close(a[j], b[j], what + " " + std::to_string(j));
}

// The correlated Gaussian in d = 5, whose mean is up to 3 sds from the reference's: several
// temperatures, each with a resampling across the ranks. 1,001 particles split unevenly over
// 2 or 3 ranks. Every rank runs the one-rank SMC on MPI_COMM_SELF too and compares.
TEST(SmcRanks, SameEvidenceAndMomentsOnEveryNumberOfRanks) {
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (ranks < 2) GTEST_SKIP() << "one rank: the world is the single-rank run it is compared with";
  const Gaussian target = test::correlated_gaussian();
  ReferenceConfig reference;
  reference.method = "smc";
  reference.particles = 1001;
  reference.runs = 3;
  reference.moves = 5;
  reference.seed = 17;
  const ReferenceMoments one = smc_reference(target, reference, Communicator(MPI_COMM_SELF));
  const ReferenceMoments all = smc_reference(target, reference, Communicator(MPI_COMM_WORLD));
  EXPECT_GE(one.temperatures, 3 * 3);  // several resamplings per run
  EXPECT_EQ(all.temperatures, one.temperatures);
  EXPECT_EQ(all.evaluations, one.evaluations);
  EXPECT_EQ(all.acceptance_rate, one.acceptance_rate);  // a ratio of integer counts
  expect_close(one.log_z, all.log_z, "log Z");
  expect_close(one.log_z_stderr, all.log_z_stderr, "log Z stderr");
  expect_close(one.log_z_runs, all.log_z_runs, "log Z of run");
  expect_close(one.mean, all.mean, "mean");
  expect_close(one.sd, all.sd, "sd");
  expect_close(one.mean_stderr, all.mean_stderr, "mean stderr");
  expect_close(one.step_size, all.step_size, "step size");
}

}  // namespace
}  // namespace rbsde
