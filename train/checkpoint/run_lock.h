// One writer per run.dir: run.dir/RUN_LOCK, created with O_CREAT|O_EXCL and holding the owner's
// host, pid, start time and command. An exclusive create is atomic on local disks, NFS (v3 and
// v4) and Lustre without any mount option, where flock()/fcntl() locks depend on lockd, NFSv4
// lease recovery or Lustre's `flock` mount option and silently become node-local without them.
// A file lock can outlive its holder, so the holder renews the file's mtime (a heartbeat, every
// 15 s) and a lock is stale when its holder is gone from this host, or when its heartbeat is older
// than kStaleAfter by the storage's own clock (no trust in clocks across nodes); a stale lock
// is taken over with a warning naming the old holder. docs/scaling.md says the same for users.
#pragma once
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

namespace chart {

struct LockHolder {
  std::string host;
  long pid = 0;
  std::string since;    // UTC, ISO 8601
  std::string command;  // e.g. "chart train"
  std::string describe() const;  // "chart train, pid 4242 on node17, since 2026-12-02T06:10:00Z"
};

class RunLock {
 public:
  static constexpr std::chrono::seconds kHeartbeat{15};
  static constexpr std::chrono::seconds kStaleAfter{300};

  // Takes run_dir/RUN_LOCK (creating run_dir) or throws chart::Error naming the live holder.
  RunLock(const std::filesystem::path& run_dir, const std::string& command);
  ~RunLock();  // stops the heartbeat; removes the file if it is still this process's
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // False once the file is no longer this process's (another took it over as stale: this
  // process was stalled past kStaleAfter); a writer checks before committing anything.
  bool held() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  void heartbeat_loop();
  std::filesystem::path path_;
  std::string content_;  // what this process wrote: the file is ours while it reads back the same
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
};

// The holder recorded in a lock file; throws chart::Error if it cannot be read.
LockHolder read_lock_holder(const std::filesystem::path& lock_file);

}  // namespace chart
