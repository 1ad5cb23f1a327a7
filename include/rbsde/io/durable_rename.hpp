#pragma once
/// \file durable_rename.hpp
/// How a finished file takes its final name: its data reach the disk before the rename, and
/// the rename reaches the disk before the caller goes on. A crash at any moment leaves either
/// the previous file or the new one under the final name, never a partial one.
#include <string>

namespace rbsde {

/// fsync(tmp), rename(tmp, path), fsync(path's directory). Throws std::system_error.
void durable_rename(const std::string& tmp, const std::string& path);

}  // namespace rbsde
