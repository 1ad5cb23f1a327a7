#include "rbsde/io/network_file.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "rbsde/error.hpp"
#include "rbsde/io/durable_rename.hpp"

namespace rbsde {

namespace {
/// The archive entries of the training history, for saving (const) and loading.
template <typename History>
auto history_fields(History& history) {
  return std::array{
      std::pair{"history_loss", &history.loss}, std::pair{"history_log_z", &history.log_z},
      std::pair{"history_time", &history.time}, std::pair{"history_gamma", &history.gamma}};
}

}  // namespace

void write_history(torch::serialize::OutputArchive& archive, const TrainingHistory& history) {
  for (const auto& [key, values] : history_fields(history)) {
    archive.write(key, torch::tensor(*values, torch::kFloat64));
  }
}

TrainingHistory read_history(torch::serialize::InputArchive& archive) {
  TrainingHistory history;
  for (const auto& [key, values] : history_fields(history)) {
    torch::Tensor stored;
    archive.read(key, stored);
    stored = stored.contiguous();
    values->assign(stored.data_ptr<double>(), stored.data_ptr<double>() + stored.numel());
  }
  return history;
}

namespace {
// The gain's entry: 2 since G = √b (1 − e^{−g}) (model.hpp); a file of the earlier unbounded
// gain (1) would load into another function and is refused.
constexpr int64_t kBoundedGain = 2;

/// What a saved network must agree on with the settings that load it.
torch::Tensor shape_record(int64_t dim, const NetworkConfig& network) {
  const std::array<const char*, 4> activations = {"silu", "tanh", "relu", "gelu"};
  const auto activation =
      std::find(activations.begin(), activations.end(), network.activation) - activations.begin();
  return torch::tensor(
      {dim, network.width, network.depth, network.time_features,
       static_cast<int64_t>(network.y0_residual), activation, network.blocks,
       int64_t{network.gain ? kBoundedGain : 0}, static_cast<int64_t>(network.score)},
      torch::kInt64);
}
}  // namespace

namespace {
/// An archive file ends with this marker and the FNV-1a hash of the bytes before it: a
/// truncated or damaged file is refused instead of loading wrong numbers (LibTorch's zip
/// reader does not check its CRCs).
constexpr char kTrailerMarker[8] = {'r', 'b', 's', 'd', 'e', 'f', 'n', 'v'};
constexpr size_t kTrailerSize = sizeof(kTrailerMarker) + sizeof(uint64_t);

uint64_t fnv1a(const char* data, size_t size) {
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < size; ++i) {
    hash = (hash ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  }
  return hash;
}
}  // namespace

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path,
                  const std::string& what) {
  const std::string tmp = path + ".tmp";
  try {
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::ostringstream stream;
    archive.save_to(stream);
    std::string bytes = stream.str();
    const uint64_t hash = fnv1a(bytes.data(), bytes.size());
    bytes.append(kTrailerMarker, sizeof(kTrailerMarker));
    bytes.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.close();
    if (!file) throw std::runtime_error(std::generic_category().message(errno));
    durable_rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error("cannot write " + what + " '" + path + "': " + e.what());
  }
}

void load_archive(torch::serialize::InputArchive& archive, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file && !file.eof()) throw std::runtime_error(std::generic_category().message(errno));
  if (bytes.size() < kTrailerSize ||
      bytes.compare(bytes.size() - kTrailerSize, sizeof(kTrailerMarker), kTrailerMarker,
                    sizeof(kTrailerMarker)) != 0) {
    throw std::runtime_error(
        "it is truncated, or was not written by this version of rbsde (no checksum)");
  }
  uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - sizeof(stored), sizeof(stored));
  bytes.resize(bytes.size() - kTrailerSize);
  if (fnv1a(bytes.data(), bytes.size()) != stored) {
    throw std::runtime_error("it is damaged (its checksum does not match its contents)");
  }
  std::istringstream stream(std::move(bytes));
  archive.load_from(stream);
}

void save_model(const std::string& path, BsdeModel& model, const NetworkConfig& network,
                const TrainingHistory& history) {
  torch::serialize::OutputArchive archive;
  model->save(archive);
  archive.write("shape", shape_record(model->dim(), network));
  write_history(archive, history);
  save_archive(archive, path, "the network parameters");
}

TrainingHistory load_model(const std::string& path, BsdeModel& model,
                           const NetworkConfig& network) {
  if (!std::filesystem::exists(path)) {
    throw Error("network parameters '" + path +
                "' not found: run `rbsde train` first, or set sample.model");
  }
  TrainingHistory history;
  try {
    torch::serialize::InputArchive archive;
    load_archive(archive, path);
    torch::Tensor shape;
    archive.read("shape", shape);
    // Files written before network.blocks, network.gain and network.score existed record
    // six, seven or eight entries: one block, no gain, no score.
    if (shape.numel() == 6) shape = torch::cat({shape, torch::ones({1}, torch::kInt64)});
    if (shape.numel() == 7) shape = torch::cat({shape, torch::zeros({1}, torch::kInt64)});
    if (shape.numel() == 8) shape = torch::cat({shape, torch::zeros({1}, torch::kInt64)});
    if (!torch::equal(shape, shape_record(model->dim(), network))) {
      throw Error("network parameters '" + path +
                  "' were trained with other settings (target.dim, network.width, depth, "
                  "activation, time_features, y0_residual, blocks, gain, score must match the "
                  "training run)");
    }
    model->load(archive);
    history = read_history(archive);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error("cannot load network parameters from '" + path +
                "': it is not an rbsde network file (" + e.what_without_backtrace() + ")");
  } catch (const std::exception& e) {
    throw Error("cannot load network parameters from '" + path + "': " + e.what());
  }
  return history;
}

}  // namespace rbsde
