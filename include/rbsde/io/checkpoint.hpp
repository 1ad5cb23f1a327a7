#pragma once
/// \file checkpoint.hpp
/// Training checkpoints (output.path with .ckpt): the network, the optimizer's state, the next
/// iteration and the history, with the resolved configuration and the number of ranks of the
/// run they belong to.
#include <string>
#include <vector>

#include "rbsde/bsde/trainer.hpp"
#include "rbsde/core/config.hpp"
#include "rbsde/parallel/communicator.hpp"

namespace rbsde {

/// Collective: rank 0 writes `trainer`'s checkpoint to `path` atomically (temporary file,
/// fsync, rename); every rank waits until it exists. A failure (a full disk) throws
/// CollectiveError on every rank.
void save_checkpoint(const std::string& path, const Trainer& trainer, const Config& config,
                     const Communicator& comm);

/// Continues `trainer` from the checkpoint at `path` (network, optimizer, iteration,
/// history). Throws Error naming the file if it is missing, damaged or from a run that differs
/// in what decides the training trajectory (resume_differences); returns the differences it
/// allowed.
std::vector<std::string> resume_checkpoint(const std::string& path, Trainer& trainer,
                                           const Config& config, const Communicator& comm);

/// Compares the resolved configuration and rank count a checkpoint was written with against
/// the resuming run's. Differences that leave the training trajectory unchanged are returned
/// ("key: old -> new"): output.*, parallel.*, sample.*, reference.*, train.log_every,
/// train.checkpoint_every, and more train.iterations when neither the annealing nor the
/// learning rate is spread over them, and another rank count (the same run up to the rounding
/// of the all-reduced sums). Any other difference throws an Error listing each.
std::vector<std::string> resume_differences(const std::string& stored_yaml, int stored_ranks,
                                            const Config& config, int ranks);

}  // namespace rbsde
