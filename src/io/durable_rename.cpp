#include "rbsde/io/durable_rename.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace rbsde {

namespace {
void sync(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw std::system_error(error, std::generic_category(), "fsync " + path);
}
}  // namespace

void durable_rename(const std::string& tmp, const std::string& path) {
  sync(tmp, O_RDONLY);
  std::filesystem::rename(tmp, path);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  sync(parent.empty() ? std::string(".") : parent.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace rbsde
