// make_preconditioner on every rank of the world (method.md §7): rank 0 computes the map and
// the others receive it bit for bit, in both forms of L; a failure on rank 0 becomes an Error
// on every rank, so no rank is left waiting in the broadcast.
#include <gtest/gtest.h>
#include <mpi.h>

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "rbsde/core/config.hpp"
#include "rbsde/core/target.hpp"
#include "rbsde/error.hpp"
#include "rbsde/io/precondition.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {
namespace {

TEST(PreconditionRanks, EveryRankHoldsRankZerosMap) {
  Communicator comm(MPI_COMM_WORLD);
  Eigen::Matrix3d covariance;
  covariance << 0.04, 0.01, -0.005, 0.01, 0.02, 0.003, -0.005, 0.003, 0.01;
  const Gaussian target(Eigen::Vector3d(30.0, -25.0, 12.0), covariance);
  PreconditionConfig config;
  config.kind = "laplace";
  for (const std::string form : {"cholesky", "diagonal"}) {
    config.form = form;
    const Affine map = make_preconditioner(target, config, comm);
    ASSERT_EQ(map.dim(), 3) << form;
    ASSERT_EQ(map.is_diagonal(), form == "diagonal");
    std::vector<double> values(map.centre.data(), map.centre.data() + 3);
    const double* scale = map.is_diagonal() ? map.diagonal.data() : map.cholesky.data();
    values.insert(values.end(), scale, scale + (map.is_diagonal() ? 3 : 9));
    std::vector<double> low = values, high = values;
    MPI_Allreduce(MPI_IN_PLACE, low.data(), static_cast<int>(low.size()), MPI_DOUBLE, MPI_MIN,
                  comm.get());
    MPI_Allreduce(MPI_IN_PLACE, high.data(), static_cast<int>(high.size()), MPI_DOUBLE, MPI_MAX,
                  comm.get());
    EXPECT_EQ(low, values) << form;
    EXPECT_EQ(high, values) << form;
  }
}

TEST(PreconditionRanks, AFailureOnRankZeroIsAnErrorOnEveryRank) {
  Communicator comm(MPI_COMM_WORLD);
  const Gaussian target(Eigen::Vector2d::Zero(), Eigen::MatrixXd::Identity(2, 2));
  PreconditionConfig config;
  config.kind = "pilot";
  config.pilot = "/nonexistent/rbsde_pilot.h5";
  std::string message;
  try {
    make_preconditioner(target, config, comm);
  } catch (const Error& e) {
    message = e.what();
  }
  const std::string expected = comm.is_root() ? "/nonexistent/rbsde_pilot.h5" : "failed on rank 0";
  EXPECT_NE(message.find(expected), std::string::npos) << "rank " << comm.rank() << ": " << message;
  // The ranks are still in step: a collective after the failure completes.
  comm.barrier();
}

}  // namespace
}  // namespace rbsde
