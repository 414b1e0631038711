// Writing a safetensors file as a stream: the header first (it needs only names, dtypes and
// shapes), then each tensor's bytes in order, each copied to the host on its own, so no whole
// file is ever built in memory; SHA-256 is computed over the bytes as they are written, so a
// checkpoint's SHA256SUMS needs no second read. The file appears under its name only when
// finish() has fsynced it (a temporary sibling until then, removed on error).
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/sha256.h"
#include "model/safetensors.h"

namespace chart {

class SafetensorsWriter {
 public:
  // `tensors` fixes the header (names, dtypes, shapes, order); their data is read by write_all().
  SafetensorsWriter(std::filesystem::path path, const NamedTensors& tensors, std::map<std::string, std::string> metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void write_all();  // each tensor, in header order: to the host, then to the file and the hash
  // fsync, rename into place, fsync the directory; returns the file's SHA-256 (hex).
  std::string finish();

 private:
  void write_bytes(const void* data, size_t n);

  std::filesystem::path path_, tmp_;
  NamedTensors tensors_;
  int fd_ = -1;
  Sha256 hash_;
  bool finished_ = false;
};

// The whole sequence: header, tensors, finish. Returns the SHA-256 of what was written.
std::string save_safetensors_hashed(const std::filesystem::path& path, const NamedTensors& tensors,
                                    std::map<std::string, std::string> metadata = {});

}  // namespace chart
