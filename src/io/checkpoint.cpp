#include "rbsde/io/checkpoint.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>

#include "rbsde/error.hpp"
#include "rbsde/io/network_file.hpp"

namespace rbsde {

namespace {
/// The resolved configuration as "section.key" → the value's YAML text (flow style).
std::map<std::string, std::string> flatten(const std::string& resolved_yaml) {
  std::map<std::string, std::string> keys;
  for (const auto& section : YAML::Load(resolved_yaml)) {
    const std::string name = section.first.as<std::string>();
    if (!section.second.IsMap()) {
      YAML::Emitter out;
      out << YAML::Flow << section.second;
      keys[name] = out.c_str();
      continue;
    }
    for (const auto& entry : section.second) {
      YAML::Emitter out;
      out << YAML::Flow << entry.second;
      keys[name + "." + entry.first.as<std::string>()] = out.c_str();
    }
  }
  return keys;
}

/// True for the keys that do not enter the training trajectory: where the results go, the
/// threads, how often training reports and checkpoints, and the settings of the sampling
/// phase and of the reference sampler, which come after training.
bool outside_training(const std::string& key) {
  for (const char* section : {"output.", "parallel.", "sample.", "reference."}) {
    if (key.rfind(section, 0) == 0) return true;
  }
  return key == "train.log_every" || key == "train.checkpoint_every";
}

/// Why more iterations would change the steps already taken, or "" when they would not.
std::string iterations_enter_schedules(const TrainConfig& train) {
  if (train.anneal_gamma0 < 1.0 && train.anneal_fraction > 0.0) {
    return "the annealing of γ is spread over train.iterations";
  }
  if (train.lr_schedule == "cosine")
    return "the cosine learning rate is spread over train.iterations";
  return "";
}
}  // namespace

std::vector<std::string> resume_differences(const std::string& stored_yaml, int stored_ranks,
                                            const Config& config, int ranks) {
  const auto stored = flatten(stored_yaml);
  const auto current = flatten(config.resolved_yaml);
  std::vector<std::string> allowed, refused;
  auto value = [](const std::map<std::string, std::string>& keys, const std::string& key) {
    const auto found = keys.find(key);
    return found == keys.end() ? std::string("(absent)") : found->second;
  };
  std::set<std::string> keys;
  for (const auto& entry : stored) keys.insert(entry.first);
  for (const auto& entry : current) keys.insert(entry.first);
  for (const std::string& key : keys) {
    const std::string was = value(stored, key), now = value(current, key);
    if (was == now) continue;
    const std::string change = key + ": " + was + " -> " + now;
    if (outside_training(key)) {
      allowed.push_back(change);
    } else if (key == "train.iterations" && std::stoll(now) > std::stoll(was) &&
               iterations_enter_schedules(config.train).empty()) {
      allowed.push_back(change + " (more iterations)");
    } else if (key == "train.iterations" && std::stoll(now) > std::stoll(was)) {
      refused.push_back(change + " (" + iterations_enter_schedules(config.train) +
                        ", so every step would change)");
    } else {
      refused.push_back(change);
    }
  }
  if (ranks != stored_ranks) {
    allowed.push_back("MPI ranks: " + std::to_string(stored_ranks) + " -> " +
                      std::to_string(ranks) +
                      " (the same run up to the rounding of the all-reduced sums)");
  }
  if (!refused.empty()) {
    std::string list;
    for (const std::string& change : refused) list += "\n  " + change;
    throw Error(
        "the checkpoint was written by a run that differs in what decides the training "
        "trajectory; a resumed run must continue the same run:" +
        list + "\nresume with the checkpoint's settings, or start a new run without --resume");
  }
  return allowed;
}

void save_checkpoint(const std::string& path, const Trainer& trainer, const Config& config,
                     const Communicator& comm) {
  // The outcome is shared: a failure on rank 0 (a full disk) stops every rank alike. The
  // all-reduce is also the barrier: the checkpoint exists before any rank goes on (or exits).
  comm.all_or_none([&] {
    if (!comm.is_root()) return;
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    trainer.model()->save(model_archive);
    trainer.optimizer().save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("config", c10::IValue(config.resolved_yaml));
    archive.write("ranks", torch::tensor({static_cast<int64_t>(comm.size())}, torch::kInt64));
    archive.write("next_iteration", torch::tensor({trainer.next_iteration()}, torch::kInt64));
    write_history(archive, trainer.history());
    save_archive(archive, path, "the checkpoint");
  });
}

std::vector<std::string> resume_checkpoint(const std::string& path, Trainer& trainer,
                                           const Config& config, const Communicator& comm) {
  if (!std::filesystem::exists(path)) {
    throw Error("no checkpoint '" + path + "' to resume from: run without --resume first");
  }
  try {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    load_archive(archive, path);
    c10::IValue stored_config;
    if (!archive.try_read("config", stored_config) || !stored_config.isString()) {
      throw Error(
          "it records no configuration (written by an earlier rbsde, or not a checkpoint): "
          "start a new run without --resume");
    }
    torch::Tensor ranks, next;
    archive.read("ranks", ranks);
    const auto allowed = resume_differences(
        stored_config.toStringRef(), static_cast<int>(ranks.item<int64_t>()), config, comm.size());
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    trainer.model()->load(model_archive);
    trainer.optimizer().load(optimizer_archive);
    archive.read("next_iteration", next);
    trainer.restore(next.item<int64_t>(), read_history(archive));
    return allowed;
  } catch (const c10::Error& e) {
    throw Error("cannot resume from checkpoint '" + path + "': it is not an rbsde checkpoint (" +
                e.what_without_backtrace() + ")");
  } catch (const std::exception& e) {
    throw Error("cannot resume from checkpoint '" + path + "': " + e.what());
  }
}

}  // namespace rbsde
