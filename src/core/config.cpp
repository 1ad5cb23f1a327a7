#include "rbsde/core/config.hpp"

#include <filesystem>

namespace rbsde {

std::string Config::checkpoint_path() const {
  return std::filesystem::path(output.path).replace_extension(".ckpt").string();
}

std::string Config::model_path() const {
  if (!sample.model.empty()) return sample.model;
  return std::filesystem::path(output.path).replace_extension(".pt").string();
}

}  // namespace rbsde
