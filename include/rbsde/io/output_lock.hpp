#pragma once
/// \file output_lock.hpp
/// One run per output path. A run holds `<output.path>.lock` from set-up to exit: a second run
/// on the same path (a double submission, a resumed run while the first still goes) refuses at
/// start-up, naming the run that holds it, instead of both writing the same checkpoint, network
/// and output files. A lock left by a run that died (SIGKILL, a node lost) never blocks for
/// good: on the host that wrote it, a holder that no longer runs is recognised and the lock
/// taken over, as it is by a requeued SLURM job (the same job id, a higher restart count);
/// elsewhere the refusal says how to clear it.
#include <string>

namespace rbsde {

/// Who holds a lock: the lines of its file.
struct LockHolder {
  std::string host;
  long long pid = 0;
  /// The process's start time in clock ticks since boot (/proc/PID/stat, field 22): with the
  /// pid it names one process, also after the pid has been reused.
  std::string process_start;
  std::string started;                ///< wall-clock start, UTC, ISO 8601
  std::string command;                ///< the command line
  std::string slurm_job_id;           ///< SLURM_JOB_ID, empty outside SLURM
  long long slurm_restart_count = 0;  ///< SLURM_RESTART_COUNT: how often the job was requeued
};

class OutputLock {
 public:
  /// Takes `<output_path>.lock` (creating its directory) for `command`, or throws an Error
  /// naming the run that holds it and what to do. A lock whose holder is known to have ended is
  /// taken over; `note` receives what was found then (else it is left empty).
  OutputLock(const std::string& output_path, const std::string& command, std::string& note);
  /// Removes the lock file.
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string text_;  ///< what this run wrote into it
};

/// This process as a lock holder (host, pid, process start, now, `command`, SLURM_JOB_ID and
/// SLURM_RESTART_COUNT).
LockHolder this_process(const std::string& command);
/// The holder recorded in a lock file's text; throws an Error if it is not an rbsde lock.
LockHolder parse_lock(const std::string& text, const std::string& path);
/// Whether `holder` is known to have ended: it ran on this host and its process (pid and start
/// time) no longer exists, or it ran in an earlier start of the SLURM job this process runs in
/// (a requeued job: the same job id, a lower restart count).
bool holder_has_ended(const LockHolder& holder, const LockHolder& self);

}  // namespace rbsde
