#include "train/report/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace chart {
namespace {

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

template <typename T>
void raw(std::string& out, T v) {  // little-endian fixed-width field
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void bytes_field(std::string& out, int field, const std::string& s) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  varint(out, s.size());
  out += s;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string event_header(int64_t step) {
  std::string e;
  varint(e, (1 << 3) | 1);
  raw(e, now_seconds());
  varint(e, (2 << 3) | 0);
  varint(e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t crc = 0xffffffffu;
  auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  path_ = dir / fmt::format("events.out.tfevents.{}.{}.{}", static_cast<int64_t>(now_seconds()), host, getpid());
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) fail("cannot create {}", path_.string());
  std::string e = event_header(0);
  bytes_field(e, 3, "brain.Event:2");
  record(e);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::record(const std::string& data) {
  std::string rec;
  uint64_t len = data.size();
  raw(rec, len);
  raw(rec, masked(crc32c(&len, sizeof len)));
  rec += data;
  raw(rec, masked(crc32c(data.data(), data.size())));
  if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size()) fail("write to {} failed", path_.string());
}

void TensorBoardWriter::scalar(const std::string& tag, float value, int64_t step) {
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  bytes_field(v, 1, tag);
  varint(v, (2 << 3) | 5);
  raw(v, value);
  std::string summary;
  bytes_field(summary, 1, v);
  std::string e = event_header(step);
  bytes_field(e, 5, summary);
  record(e);
}

void TensorBoardWriter::session_start(int64_t step) {
  // SessionLog { SessionStatus status = 1 (START = 1); }, as Event field 7.
  std::string log;
  varint(log, (1 << 3) | 0);
  varint(log, 1);
  std::string e = event_header(step);
  bytes_field(e, 7, log);
  record(e);
}

void TensorBoardWriter::flush() {
  if (std::fflush(f_) != 0) fail("write to {} failed: {}", path_.string(), std::strerror(errno));
}

}  // namespace chart
