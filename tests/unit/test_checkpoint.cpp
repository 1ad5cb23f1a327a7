// Unit tests of what --resume accepts: the resolved configuration a checkpoint records is
// compared key by key with the resuming run's (checkpoint.hpp, resume_differences).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rbsde/error.hpp"
#include "rbsde/io/checkpoint.hpp"
#include "rbsde/io/config_file.hpp"

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kRun =
    "target: {name: gaussian, dim: 2}\n"
    "train: {iterations: 100, paths: 64}\n"
    "output: {path: results/a.h5}\n";

// The resolved configuration of kRun with `stored` overrides, compared with kRun with
// `current` overrides, both on `ranks` ranks unless told otherwise.
std::vector<std::string> differences(const std::vector<std::string>& stored,
                                     const std::vector<std::string>& current, int stored_ranks = 2,
                                     int ranks = 2) {
  return rbsde::resume_differences(rbsde::parse_config(kRun, stored).resolved_yaml, stored_ranks,
                                   rbsde::parse_config(kRun, current), ranks);
}

std::string refusal(const std::vector<std::string>& stored,
                    const std::vector<std::string>& current) {
  try {
    differences(stored, current);
  } catch (const rbsde::Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(Resume, TheSameConfigurationHasNoDifferences) { EXPECT_TRUE(differences({}, {}).empty()); }

// The defect of issue 19: these three ran to the end, mixing two runs.
TEST(Resume, RefusesEveryKeyThatChangesTheTrajectoryAndNamesEach) {
  const std::string message =
      refusal({}, {"network.activation=tanh", "sde.integrator=euler", "train.lr=0.1"});
  EXPECT_THAT(message, HasSubstr("network.activation: silu -> tanh"));
  EXPECT_THAT(message, HasSubstr("sde.integrator: exponential -> euler"));
  EXPECT_THAT(message, HasSubstr("train.lr: "));
  EXPECT_THAT(message, HasSubstr("without --resume"));
  for (const char* key : {"target.dim=3", "network.width=32", "train.seed=5", "sde.steps=7",
                          "train.paths=32", "train.tilt=0.5", "precondition.kind=prior"}) {
    EXPECT_THAT(refusal({}, {key}),
                HasSubstr(std::string(key).substr(0, std::string(key).find('='))))
        << key;
  }
}

TEST(Resume, AllowsWhatLeavesTheTrajectoryAloneAndSaysSo) {
  EXPECT_THAT(
      differences({}, {"output.path=elsewhere/b.h5", "parallel.threads=3", "train.log_every=7",
                       "train.checkpoint_every=11", "sample.count=99"}),
      ElementsAre("output.path: results/a.h5 -> elsewhere/b.h5", "parallel.threads: 0 -> 3",
                  "sample.count: 10000 -> 99", "train.checkpoint_every: 500 -> 11",
                  "train.log_every: 0 -> 7"));
  EXPECT_THAT(differences({}, {}, 2, 4),
              ElementsAre(HasSubstr("MPI ranks: 2 -> 4 (the same run up to the rounding")));
}

TEST(Resume, MoreIterationsOnlyWhenNoScheduleIsSpreadOverThem) {
  const std::string constant = "train.lr_schedule=constant";
  EXPECT_THAT(differences({constant}, {constant, "train.iterations=300"}),
              ElementsAre("train.iterations: 100 -> 300 (more iterations)"));
  EXPECT_THAT(refusal({constant}, {constant, "train.iterations=50"}),
              HasSubstr("train.iterations: 100 -> 50"));
  // The default learning rate is a cosine.
  EXPECT_THAT(refusal({}, {"train.iterations=300"}),
              HasSubstr("the cosine learning rate is spread over train.iterations"));
  EXPECT_THAT(refusal({constant, "train.anneal_gamma0=0.1"},
                      {constant, "train.anneal_gamma0=0.1", "train.iterations=300"}),
              HasSubstr("the annealing of γ is spread over train.iterations"));
}

}  // namespace
