#pragma once
/// \file error.hpp
/// The one error type of rbsde.
#include <stdexcept>
#include <string>

namespace rbsde {

/// Every error rbsde raises. The message names where it came from (a config key, a file,
/// a module) and what the user should change; main() prints it once and exits non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace rbsde
