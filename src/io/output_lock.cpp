#include "rbsde/io/output_lock.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

#include "rbsde/error.hpp"

namespace rbsde {

namespace {

constexpr const char* kLockHeader = "rbsde output lock";

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

/// Field 22 of /proc/PID/stat (the start time in clock ticks since boot), or "" where there is
/// no such process.
std::string process_start(long long pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  // The command name (field 2) is in parentheses and may hold spaces: fields 3… follow the
  // last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int index = 3; index <= 22 && fields >> field; ++index) {
    if (index == 22) return field;
  }
  return "";
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::string format_lock(const LockHolder& h) {
  return std::string(kLockHeader) + "\nhost: " + h.host + "\npid: " + std::to_string(h.pid) +
         "\nprocess_start: " + h.process_start + "\nstarted: " + h.started +
         "\ncommand: " + h.command + "\nslurm_job_id: " + h.slurm_job_id +
         "\nslurm_restart_count: " + std::to_string(h.slurm_restart_count) + "\n";
}

std::string describe(const LockHolder& h) {
  return "host " + h.host + ", pid " + std::to_string(h.pid) + ", started " + h.started +
         (h.slurm_job_id.empty() ? std::string() : ", SLURM job " + h.slurm_job_id) + ": " +
         h.command;
}

/// Creates `path` holding `text`, complete, or returns false if it exists: the text goes to a
/// file of this process first, then link(2) gives it the lock's name, atomically and only if
/// the name is free (also on NFS and parallel file systems).
bool create_exclusively(const std::string& path, const std::string& text, const LockHolder& self) {
  const std::string mine = path + "." + self.host + "." + std::to_string(self.pid);
  {
    std::ofstream file(mine, std::ios::trunc);
    file << text;
    file.close();
    if (!file) {
      const int error = errno;
      std::error_code ignored;
      std::filesystem::remove(mine, ignored);
      throw Error("cannot write the lock file '" + path + "': " + std::strerror(error) +
                  "; check that the directory of output.path is writable and has space");
    }
  }
  const int result = ::link(mine.c_str(), path.c_str());
  const int error = errno;
  std::error_code ignored;
  std::filesystem::remove(mine, ignored);
  if (result == 0) return true;
  if (error == EEXIST) return false;
  throw Error("cannot create the lock file '" + path + "': " + std::strerror(error) +
              "; check that the directory of output.path is writable");
}

}  // namespace

LockHolder this_process(const std::string& command) {
  LockHolder self;
  self.host = host_name();
  self.pid = static_cast<long long>(::getpid());
  self.process_start = process_start(self.pid);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char started[32];
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
  self.started = started;
  self.command = command;
  if (const char* job = std::getenv("SLURM_JOB_ID")) self.slurm_job_id = job;
  if (const char* restarts = std::getenv("SLURM_RESTART_COUNT")) {
    self.slurm_restart_count = std::atoll(restarts);
  }
  return self;
}

LockHolder parse_lock(const std::string& text, const std::string& path) {
  std::istringstream lines(text);
  std::string line;
  if (!std::getline(lines, line) || line != kLockHeader) {
    throw Error("'" + path +
                "' exists and is not an rbsde lock file: rbsde keeps its lock next to "
                "output.path; choose another output.path");
  }
  LockHolder holder;
  while (std::getline(lines, line)) {
    const size_t colon = line.find(": ");
    const std::string key = line.substr(0, colon);
    const std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
    if (key == "host") holder.host = value;
    if (key == "pid") holder.pid = std::atoll(value.c_str());
    if (key == "process_start") holder.process_start = value;
    if (key == "started") holder.started = value;
    if (key == "command") holder.command = value;
    if (key == "slurm_job_id") holder.slurm_job_id = value;
    if (key == "slurm_restart_count") holder.slurm_restart_count = std::atoll(value.c_str());
  }
  return holder;
}

bool holder_has_ended(const LockHolder& holder, const LockHolder& self) {
  if (!holder.slurm_job_id.empty() && holder.slurm_job_id == self.slurm_job_id &&
      holder.slurm_restart_count < self.slurm_restart_count) {
    return true;
  }
  if (holder.host != self.host || holder.pid <= 0) return false;
  if (holder.process_start.empty()) {  // written where /proc could not be read
    return ::kill(static_cast<pid_t>(holder.pid), 0) != 0 && errno == ESRCH;
  }
  return process_start(holder.pid) != holder.process_start;
}

OutputLock::OutputLock(const std::string& output_path, const std::string& command,
                       std::string& note)
    : path_(output_path + ".lock") {
  note.clear();
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) {
    throw Error("cannot create the directory '" + parent.string() + "' for the output file '" +
                output_path + "': " + error.message() +
                "; choose an output path in a writable location");
  }
  const LockHolder self = this_process(command);
  text_ = format_lock(self);
  // Two tries: the second after taking over a lock whose holder has ended.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (create_exclusively(path_, text_, self)) return;
    const std::string held = read_text(path_);
    if (held.empty()) continue;  // released (or being taken over) meanwhile
    const LockHolder holder = parse_lock(held, path_);
    if (!holder_has_ended(holder, self)) {
      const bool here = holder.host == self.host;
      throw Error(
          "output.path '" + output_path + "' is in use by another run (" + describe(holder) +
          "): two runs on one path would write over each other's checkpoint, network and "
          "output files. Wait until it ends, or choose another output.path" +
          (here ? std::string(" (that run is still running on this host)")
                : "; if it has ended (it ran on host " + holder.host +
                      ", which this run cannot inspect), remove '" + path_ + "' and start again"));
    }
    note = "took over the lock '" + path_ + "' of a run that has ended (" + describe(holder) + ")";
    std::filesystem::remove(path_, error);
  }
  throw Error("cannot take the lock '" + path_ +
              "': another run took it at the same moment; start again, or choose another "
              "output.path");
}

OutputLock::~OutputLock() {
  // Only the lock this run holds: one removed by hand and taken by another run stays.
  if (read_text(path_) != text_) return;
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

}  // namespace rbsde
