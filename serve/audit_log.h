// The audit log: one JSON line per answered request (time, client, task, request id, model
// version, latency, status, outcome), appended and flushed to disk (fdatasync) before the answer
// leaves, so a request that was answered is in the log. No request body unless serve.log_payloads.
#pragma once
#include <filesystem>
#include <mutex>

#include "core/json.h"

namespace chart::serve {

class AuditLog {
 public:
  explicit AuditLog(const std::filesystem::path& path);  // throws chart::Error naming the path
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  void write(const Json& entry);  // throws chart::Error when the disk refuses it
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::mutex mutex_;
};

}  // namespace chart::serve
