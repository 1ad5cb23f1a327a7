#include "rbsde/parallel/timers.hpp"

namespace rbsde {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kNoise:
      return "noise";
    case Phase::kPathKernel:
      return "path_kernel";
    case Phase::kForward:
      return "forward";
    case Phase::kTarget:
      return "target";
    case Phase::kBackward:
      return "backward";
    case Phase::kAllreduce:
      return "allreduce";
    case Phase::kOptimizer:
      return "optimizer";
    case Phase::kSampling:
      return "sampling";
    case Phase::kOutput:
      return "output";
  }
  return "unknown";
}

std::vector<PhaseTiming> reduce_phase_timers(const PhaseTimers& timers, const Communicator& comm) {
  // One all-reduce each for the sums and the maxima; the minimum is minus the maximum of −t.
  double sum[kPhaseCount], max[2 * kPhaseCount];
  for (int p = 0; p < kPhaseCount; ++p) {
    sum[p] = max[p] = timers.seconds(static_cast<Phase>(p));
    max[kPhaseCount + p] = -sum[p];
  }
  comm.allreduce_sum(sum, kPhaseCount);
  comm.allreduce_max(max, 2 * kPhaseCount);
  std::vector<PhaseTiming> phases;
  for (int p = 0; p < kPhaseCount; ++p) {
    phases.push_back(
        {phase_name(static_cast<Phase>(p)), -max[kPhaseCount + p], sum[p] / comm.size(), max[p]});
  }
  return phases;
}

}  // namespace rbsde
