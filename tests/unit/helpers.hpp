#pragma once
// Helpers shared by the unit tests: a correlated Gaussian, a target given by a function,
// Eigen/torch conversions, a fixed SPD matrix, and a private temporary directory per test.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "rbsde/core/target.hpp"

namespace rbsde::test {

/// A target given by a function of the batch, with an optional prior.
class FunctionTarget final : public Target {
 public:
  FunctionTarget(int64_t dim, std::function<torch::Tensor(const torch::Tensor&)> log_prob,
                 std::optional<Affine> prior = std::nullopt)
      : dim_(dim), log_prob_(std::move(log_prob)), prior_(std::move(prior)) {}
  std::string name() const override { return "function"; }
  int64_t dim() const override { return dim_; }
  torch::Tensor log_prob(const torch::Tensor& x) const override { return log_prob_(x); }
  std::optional<Affine> prior() const override { return prior_; }

 private:
  int64_t dim_;
  std::function<torch::Tensor(const torch::Tensor&)> log_prob_;
  std::optional<Affine> prior_;
};

/// A correlated Gaussian in d = 5 with a non-zero mean (covariance eigenvalues 0.09 to 2.1).
inline Gaussian correlated_gaussian() {
  Eigen::VectorXd mean(5);
  mean << 1.0, -2.0, 0.5, 3.0, 0.0;
  Eigen::MatrixXd a(5, 5);
  a << 1.0, 0.0, 0.0, 0.0, 0.0,  //
      0.6, 0.8, 0.0, 0.0, 0.0,   //
      -0.3, 0.2, 0.5, 0.0, 0.0,  //
      0.0, 0.5, -0.4, 1.2, 0.0,  //
      0.2, 0.0, 0.3, -0.2, 0.4;
  return Gaussian(mean, a * a.transpose());
}

inline Eigen::MatrixXd to_eigen(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  Eigen::MatrixXd m(c.size(0), c.size(1));
  const auto a = c.accessor<double, 2>();
  for (int64_t i = 0; i < m.rows(); ++i) {
    for (int64_t j = 0; j < m.cols(); ++j) m(i, j) = a[i][j];
  }
  return m;
}

inline torch::Tensor to_torch(const Eigen::MatrixXd& m) {
  auto t = torch::empty({m.rows(), m.cols()}, torch::kFloat64);
  auto a = t.accessor<double, 2>();
  for (int64_t i = 0; i < m.rows(); ++i) {
    for (int64_t j = 0; j < m.cols(); ++j) a[i][j] = m(i, j);
  }
  return t;
}

/// A fixed, well-conditioned, non-diagonal 3 x 3 covariance.
inline Eigen::MatrixXd spd_3x3() {
  Eigen::MatrixXd a(3, 3);
  a << 1.0, 0.2, -0.4, 0.5, 1.5, 0.3, -0.1, 0.7, 0.9;
  return a * a.transpose() + 0.5 * Eigen::MatrixXd::Identity(3, 3);
}

/// A fixture with a private directory per test suite and process (the binaries may run under
/// mpiexec, one process a rank), removed afterwards.
class TempDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string suite = ::testing::UnitTest::GetInstance()->current_test_suite()->name();
    directory_ = std::filesystem::temp_directory_path() /
                 ("rbsde_test_" + suite + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  /// Writes `text` to a file `name` in the directory; returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::filesystem::path path = directory_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::filesystem::path directory_;
};

}  // namespace rbsde::test
