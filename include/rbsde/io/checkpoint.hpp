#pragma once
/// \file checkpoint.hpp
/// Training checkpoints (output.path with .ckpt): the network, the optimizer's state, the next
/// iteration and the history, with a record of the run they belong to.
#include <string>

#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// Collective: rank 0 writes `trainer`'s checkpoint to `path` atomically (temporary file, then
/// rename); every rank waits until it exists.
void save_checkpoint(const std::string& path, const Trainer& trainer, const Config& config,
                     const Communicator& comm);

/// Continues `trainer` from the checkpoint at `path` (network, optimizer, iteration,
/// history). Throws Error naming the file if it is missing or from another configuration.
void resume_checkpoint(const std::string& path, Trainer& trainer, const Config& config);

}  // namespace rbsde
