// SHA-256 throughput of chart's checksums (core/sha256.h), as `chart prepare` and checkpoints use
// them: one large buffer in memory, the same buffer fed in 4 KiB pieces, and a large file read
// back through sha256_file() (from the page cache: the file was just written).
//   build/tests/bench_sha256 [MIB] [DIR]      (default 512 MiB, the file in /tmp)
// Prints MB/s (10^6 bytes per second), best of 5, and the digest so that two builds can be
// checked against each other.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "core/files.h"
#include "core/sha256.h"

namespace {

// Best MB/s of 5 runs of f over `bytes` bytes; the digest of the last run in *digest.
double best_mb_per_s(size_t bytes, const std::function<std::string()>& f, std::string* digest) {
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    *digest = f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e6);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 512;
  const std::filesystem::path dir = argc > 2 ? argv[2] : "/tmp";
  std::string data(mib << 20, '\0');
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    const uint64_t v = rng();
    std::copy_n(reinterpret_cast<const char*>(&v), 8, data.data() + i);
  }
  const std::filesystem::path file = dir / "bench_sha256.bin";
  chart::write_file_atomic(file, data);

  std::string digest;
  std::printf("| input | MiB | MB/s | digest |\n|---|---|---|---|\n");
  double r = best_mb_per_s(data.size(), [&] { return chart::sha256_hex(data); }, &digest);
  std::printf("| buffer, one update | %zu | %.0f | %.16s |\n", mib, r, digest.c_str());
  r = best_mb_per_s(data.size(), [&] {
    chart::Sha256 h;
    for (size_t i = 0; i < data.size(); i += 4096) h.update(data.data() + i, std::min<size_t>(4096, data.size() - i));
    return h.hex();
  }, &digest);
  std::printf("| buffer, 4 KiB updates | %zu | %.0f | %.16s |\n", mib, r, digest.c_str());
  r = best_mb_per_s(data.size(), [&] { return chart::sha256_file(file); }, &digest);
  std::printf("| file (page cache), sha256_file | %zu | %.0f | %.16s |\n", mib, r, digest.c_str());
  std::filesystem::remove(file);
  return 0;
}
