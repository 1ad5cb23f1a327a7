#pragma once
/// \file network_file.hpp
/// The trained network's file (output.path with .pt, or sample.model): parameters, c_θ, the
/// network's shape and the training history, in a LibTorch archive.
#include <torch/torch.h>

#include <string>

#include "rbsde/bsde/model.hpp"
#include "rbsde/bsde/results.hpp"
#include "rbsde/core/config.hpp"

namespace rbsde {

/// Writes `archive` to `path` with a checksum trailer, atomically (a temporary file, fsynced
/// and renamed into place; durable_rename), creating parent directories; throws
/// Error("cannot write <what> '<path>': ...").
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path,
                  const std::string& what);
/// Reads what save_archive wrote into `archive`. Throws std::runtime_error (without the path:
/// the caller names the file) when the file is truncated, damaged or has no checksum trailer.
void load_archive(torch::serialize::InputArchive& archive, const std::string& path);

/// The training history in an archive (network files and checkpoints).
void write_history(torch::serialize::OutputArchive& archive, const TrainingHistory& history);
TrainingHistory read_history(torch::serialize::InputArchive& archive);

/// Saves parameters, c_θ and the training history; the archive also records the network
/// shape so load_model can give a clear error on a mismatch.
void save_model(const std::string& path, BsdeModel& model, const NetworkConfig& network,
                const TrainingHistory& history);
/// Loads what save_model wrote into `model` (built from the same network settings) and
/// returns the stored training history. Throws Error naming the file on any mismatch.
TrainingHistory load_model(const std::string& path, BsdeModel& model, const NetworkConfig& network);

}  // namespace rbsde
