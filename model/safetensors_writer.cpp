#include "model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/files.h"

namespace chart {

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path, const NamedTensors& tensors,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)), tensors_(tensors) {
  const std::string header = safetensors_header(tensors_, std::move(metadata));
  tmp_ = path_;
  tmp_ += ".tmp-" + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) fail("cannot create {}: {}", tmp_.string(), std::strerror(errno));
  write_bytes(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void SafetensorsWriter::write_bytes(const void* data, size_t n) {
  hash_.update(data, n);
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) fail("write to {} failed: {}", tmp_.string(), std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void SafetensorsWriter::write_all() {
  for (const auto& [name, t] : tensors_) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();  // one tensor on the host at a time
    write_bytes(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
}

std::string SafetensorsWriter::finish() {
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    fail("fsync/close of {} failed: {}", tmp_.string(), std::strerror(errno));
  }
  fd_ = -1;
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) fail("cannot rename {} to {}: {}", tmp_.string(), path_.string(), ec.message());
  finished_ = true;
  fsync_dir(path_.parent_path().empty() ? std::filesystem::path(".") : path_.parent_path());
  return hash_.hex();
}

std::string save_safetensors_hashed(const std::filesystem::path& path, const NamedTensors& tensors,
                                    std::map<std::string, std::string> metadata) {
  SafetensorsWriter w(path, tensors, std::move(metadata));
  w.write_all();
  return w.finish();
}

}  // namespace chart
