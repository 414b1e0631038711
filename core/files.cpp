#include "core/files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace chart {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("cannot read {}", path.string());
  return ss.str();
}

static void fsync_fd_path(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) fail("cannot open {} to fsync: {}", path.string(), std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some filesystems refuse fsync on directories (EINVAL); the rename is still ordered after data.
  if (rc != 0 && err != EINVAL) fail("fsync {} failed: {}", path.string(), std::strerror(err));
}

void fsync_file(const fs::path& path) { fsync_fd_path(path, O_RDONLY); }
void fsync_dir(const fs::path& dir) { fsync_fd_path(dir, O_RDONLY | O_DIRECTORY); }

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fail("cannot create {}: {}", tmp.string(), std::strerror(errno));
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        ::close(fd);
        fs::remove(tmp);
        fail("write to {} failed: {}", tmp.string(), std::strerror(err));
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      fs::remove(tmp);
      fail("fsync/close of {} failed: {}", tmp.string(), std::strerror(errno));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    fail("cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
  }
  fs::path parent = path.parent_path();
  fsync_dir(parent.empty() ? fs::path(".") : parent);
}

StagingDir::StagingDir(fs::path final_path) : final_(std::move(final_path)) {
  tmp_ = final_;
  tmp_ += ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // a leftover from an earlier crashed run of the same pid
  fs::create_directories(tmp_, ec);
  if (ec) fail("cannot create directory {}: {}", tmp_.string(), ec.message());
}

StagingDir::~StagingDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagingDir::commit(bool replace) {
  for (const auto& entry : fs::recursive_directory_iterator(tmp_)) {
    if (entry.is_regular_file()) fsync_file(entry.path());
    else if (entry.is_directory()) fsync_dir(entry.path());
  }
  fsync_dir(tmp_);
  std::error_code ec;
  if (fs::exists(final_)) {
    if (!replace) fail("{} already exists", final_.string());
    // Move the old one aside first so that there is never a moment with a half-deleted directory.
    fs::path old = final_;
    old += ".old-" + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    if (ec) fail("cannot move {} aside: {}", final_.string(), ec.message());
    fs::rename(tmp_, final_, ec);
    if (ec) fail("cannot rename {} to {}: {}", tmp_.string(), final_.string(), ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, final_, ec);
    if (ec) fail("cannot rename {} to {}: {}", tmp_.string(), final_.string(), ec.message());
  }
  fs::path parent = final_.parent_path();
  fsync_dir(parent.empty() ? fs::path(".") : parent);
  committed_ = true;
}

namespace {

// The pid of "<name>.tmp-<pid>" / "<name>.old-<pid>", or -1 for any other name.
long temporary_owner(const std::string& name) {
  for (const char* tag : {".tmp-", ".old-"}) {
    const auto at = name.rfind(tag);
    if (at == std::string::npos) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    return std::stol(digits);
  }
  return -1;
}

bool process_alive(long pid) { return pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH; }

}  // namespace

std::vector<fs::path> remove_stale_temporaries(const fs::path& dir, const std::vector<fs::path>& also) {
  std::vector<fs::path> removed;
  if (!fs::is_directory(dir)) return removed;
  std::vector<fs::path> stale = also;
  for (const auto& e : fs::directory_iterator(dir)) {
    const long pid = temporary_owner(e.path().filename().string());
    if (pid > 0 && !process_alive(pid)) stale.push_back(e.path());
  }
  for (const auto& p : stale) {
    std::error_code ec;
    if (fs::remove_all(p, ec) > 0 && !ec) removed.push_back(p);
  }
  return removed;
}

}  // namespace chart
