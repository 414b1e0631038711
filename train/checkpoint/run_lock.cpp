#include "train/checkpoint/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

std::string this_host() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "unknown-host";
  return host;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Now by the storage's clock: the mtime of a file just created beside the lock.
std::optional<std::time_t> storage_now(const fs::path& dir) {
  const fs::path probe = dir / fmt::format(".RUN_LOCK.clock.{}.{}", this_host(), ::getpid());
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok) return std::nullopt;
  return st.st_mtime;
}

// Why the lock at `file` (held by `h`) is stale, or "" if its holder may be alive.
std::string stale_reason(const fs::path& file, const LockHolder& h) {
  if (h.host == this_host() && h.pid > 0 && ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH)
    return "its process is gone";
  struct stat st {};
  const auto now = storage_now(file.parent_path());
  if (::stat(file.c_str(), &st) != 0 || !now) return "";
  const auto silent = *now - st.st_mtime;
  if (silent > RunLock::kStaleAfter.count())
    return fmt::format("its heartbeat stopped {} s ago (a lock is stale after {} s)", silent,
                       RunLock::kStaleAfter.count());
  return "";
}

bool create_exclusive(const fs::path& file, const std::string& content) {
  const int fd = ::open(file.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    fail("cannot create the run lock {}: {}", file.string(), std::strerror(errno));
  }
  const bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(file.c_str());
    fail("cannot write the run lock {}: {}", file.string(), std::strerror(errno));
  }
  return true;
}

}  // namespace

std::string LockHolder::describe() const {
  return fmt::format("{}, pid {} on {}, since {}", command.empty() ? "a chart process" : command, pid, host, since);
}

LockHolder read_lock_holder(const fs::path& lock_file) {
  const Json j = parse_json(read_file(lock_file), lock_file.string());
  LockHolder h;
  h.host = j.value("host", "");
  h.pid = j.value("pid", 0L);
  h.since = j.value("since", "");
  h.command = j.value("command", "");
  return h;
}

RunLock::RunLock(const fs::path& run_dir, const std::string& command) : path_(run_dir / "RUN_LOCK") {
  fs::create_directories(run_dir);
  content_ = dump_json(Json{{"host", this_host()}, {"pid", static_cast<long>(::getpid())}, {"since", utc_now()},
                            {"command", command}}) + "\n";
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (create_exclusive(path_, content_)) {
      heartbeat_ = std::thread([this] { heartbeat_loop(); });
      return;
    }
    LockHolder holder;
    try {
      holder = read_lock_holder(path_);
    } catch (const Error&) {
      continue;  // being written or removed right now: look again
    }
    const std::string why = stale_reason(path_, holder);
    if (why.empty())
      throw Error(fmt::format("{} is in use: {} holds {}", run_dir.string(), holder.describe(), path_.string()),
                  "wait for that run to end, or choose another run.dir; if that process is surely gone (its "
                  "host died), remove the lock file; a lock whose heartbeat stopped is taken over after " +
                      std::to_string(kStaleAfter.count()) + " s");
    // Move the stale lock aside (one taker wins the rename), then create ours as usual.
    const fs::path aside = path_.string() + fmt::format(".stale-{}-{}", this_host(), ::getpid());
    if (::rename(path_.c_str(), aside.c_str()) == 0) {
      warn("run lock: taking over {} from {}: {}", path_.string(), holder.describe(), why);
      std::error_code ec;
      fs::remove(aside, ec);
    }
  }
  fail("cannot take the run lock {}: other processes keep taking it", path_.string());
}

RunLock::~RunLock() {
  stop_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
  if (held()) ::unlink(path_.c_str());
}

bool RunLock::held() const {
  try {
    return read_file(path_) == content_;
  } catch (const Error&) {
    return false;
  }
}

void RunLock::heartbeat_loop() {
  auto next = std::chrono::steady_clock::now() + kHeartbeat;
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (std::chrono::steady_clock::now() < next) continue;
    next += kHeartbeat;
    // UTIME_NOW: the storage's clock, as stale_reason() reads it.
    if (::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0) != 0)
      warn("run lock: cannot renew {}: {}", path_.string(), std::strerror(errno));
  }
}

}  // namespace chart
