#include "rbsde/io/checkpoint.hpp"

#include <filesystem>

#include "rbsde/error.hpp"
#include "rbsde/io/network_file.hpp"

namespace rbsde {

namespace {
/// What a checkpoint must agree on with the run that resumes it.
torch::Tensor run_record(const Trainer& trainer, const Config& config) {
  return torch::tensor({trainer.model()->dim(), trainer.model()->width(), trainer.model()->depth(),
                        config.train.paths, static_cast<int64_t>(config.train.seed),
                        config.train.iterations, config.sde.steps},
                       torch::kInt64);
}
}  // namespace

void save_checkpoint(const std::string& path, const Trainer& trainer, const Config& config,
                     const Communicator& comm) {
  if (comm.is_root()) {
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
    trainer.model()->save(model_archive);
    trainer.optimizer().save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("run", run_record(trainer, config));
    archive.write("next_iteration", torch::tensor({trainer.next_iteration()}, torch::kInt64));
    write_history(archive, trainer.history());
    save_archive(archive, path, "the checkpoint");
  }
  comm.barrier();  // the checkpoint exists before any rank goes on (or exits)
}

void resume_checkpoint(const std::string& path, Trainer& trainer, const Config& config) {
  if (!std::filesystem::exists(path)) {
    throw Error("no checkpoint '" + path + "' to resume from: run without --resume first");
  }
  try {
    torch::serialize::InputArchive archive, model_archive, optimizer_archive;
    archive.load_from(path);
    torch::Tensor run, next;
    archive.read("run", run);
    if (!torch::equal(run, run_record(trainer, config))) {
      throw Error("checkpoint '" + path +
                  "' belongs to another configuration (target.dim, "
                  "network.width, network.depth, train.paths, train.seed, train.iterations and "
                  "sde.steps must match)");
    }
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    trainer.model()->load(model_archive);
    trainer.optimizer().load(optimizer_archive);
    archive.read("next_iteration", next);
    trainer.restore(next.item<int64_t>(), read_history(archive));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("cannot resume from checkpoint '" + path + "': " + e.what());
  }
}

}  // namespace rbsde
