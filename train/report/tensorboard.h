// TensorBoard event files written directly: TFRecord framing (length, masked CRC-32C, data,
// masked CRC-32C) around hand-encoded Event protobufs holding scalar summaries. No protobuf or
// TensorFlow dependency; `tensorboard --logdir RUN_DIR/tb` reads them.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace chart {

uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path& dir);  // creates events.out.tfevents.*
  ~TensorBoardWriter();
  void scalar(const std::string& tag, float value, int64_t step);
  // A SessionLog START at `step`: TensorBoard drops what earlier files logged at steps >= step,
  // so a resumed run shows each step once.
  void session_start(int64_t step);
  void flush();  // throws chart::Error when the data cannot be written (a full disk)
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::filesystem::path path_;
  FILE* f_ = nullptr;
};

}  // namespace chart
