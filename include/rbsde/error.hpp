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

/// An error that every rank raises at the same point with the same message (after they have
/// agreed on it: Communicator::all_or_none). It is printed once, by rank 0, and no rank has to
/// be aborted: they all leave their collectives together.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

}  // namespace rbsde
