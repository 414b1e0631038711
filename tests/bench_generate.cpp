// Zero-shot generation throughput, chart's two decoding paths side by side in one process on the
// same model, prompts and sample counts (scripts/bench_generate.sh adds Hugging Face generate()):
//   bench_generate CONFIG PROMPTS_OUT [--set k=v]...   (init.checkpoint, task.labels, generate.*)
// Fixed-length workload: outcome and stop codes and the horizon are switched off, so every
// trajectory samples exactly generate.max_new_tokens tokens, as generate() does with no EOS.
// Then the real workload (generate.horizon, outcome and stop codes). Writes the prompts, one line
// of token ids each, for the Hugging Face side. Prints one line per path and workload.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "train/recipes/generate_run.h"

namespace chart {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Resident memory from /proc/self/status, MiB: "VmRSS" now, "VmHWM" the peak since the last reset.
double status_mib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;  // kB
  return 0;
}

// Writing 5 to clear_refs resets the peak to the current RSS (Linux >= 4.0), so each path's
// peak is its own, not the process's so far.
double reset_peak_mib() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_mib("VmRSS");
}

void bench(const Config& cfg, const std::string& engine, bool fixed_length) {
  Config c = cfg;
  c.generate.engine = engine;
  auto run = open_generate_run(c);
  GenerateRun& r = *run;
  if (fixed_length) {
    std::fill(r.roles.outcome.begin(), r.roles.outcome.end(), 0);
    std::fill(r.roles.stop.begin(), r.roles.stop.end(), 0);
    r.horizon_us = int64_t(1) << 62;
  }
  torch::NoGradGuard no_grad;
  const double rss0 = reset_peak_mib();
  const double t0 = now_s();
  if (engine == "batched") {
    run_batched(r);
  } else {
    // As run_generate() does, with the roles above.
    infer::EngineOptions opt;
    opt.slots = c.generate.batch_size;
    opt.samples = r.K;
    opt.context = r.L;
    opt.prompt_tokens = r.P;
    opt.max_new_tokens = r.budget;
    opt.horizon_us = r.horizon_us;
    opt.temperature = c.generate.temperature;
    opt.top_k = c.generate.top_k;
    opt.seed = uint64_t(c.train.seed);
    std::vector<infer::Prompt> prompts;
    for (size_t x = 0; x < r.examples.size(); ++x) prompts.push_back(example_prompt(r, x));
    infer::generate(r.model, r.roles, opt, r.dev, prompts, r.engine);
    r.generated = r.engine.generated;
  }
  const double secs = now_s() - t0;
  const double peak = status_mib("VmHWM");
  std::printf("bench_generate %-10s %-12s examples %zu samples %ld tokens %ld seconds %.2f tokens/s %.0f patients/s %.3f",
              engine.c_str(), fixed_length ? "fixed" : "zero-shot", r.examples.size(), long(r.K), long(r.generated), secs,
              double(r.generated) / secs, double(r.examples.size()) / secs);
  std::printf(" peak_rss_mib %.0f (+%.0f)", peak, peak - rss0);
  if (engine == "continuous")
    std::printf(" prefills %ld windows %ld", long(r.engine.prefills), long(r.engine.windows));
  std::printf("\n");
  std::fflush(stdout);
}

void write_prompts(const Config& cfg, const std::string& path) {
  auto run = open_generate_run(cfg);
  std::ofstream out(path);
  if (!out) throw Error(fmt::format("{}: cannot write the prompts", path), "check the directory exists");
  for (size_t x = 0; x < run->examples.size(); ++x) {
    const infer::Prompt p = example_prompt(*run, x);
    for (size_t i = 0; i < p.tokens.size(); ++i) out << (i ? " " : "") << p.tokens[i];
    out << "\n";
  }
}

}  // namespace
}  // namespace chart

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_generate CONFIG PROMPTS_OUT [--set k=v]...\n");
    return 2;
  }
  std::vector<std::string> sets;
  for (int i = 3; i < argc; i += 2) {
    if (std::string(argv[i]) != "--set" || i + 1 == argc) {
      std::fprintf(stderr, "bench_generate: expected --set k=v, got '%s'\n", argv[i]);
      return 2;
    }
    sets.push_back(argv[i + 1]);
  }
  try {
    const chart::Config cfg = chart::load_config(argv[1], sets);
    chart::write_prompts(cfg, argv[2]);
    for (bool fixed : {true, false})
      for (const char* engine : {"continuous", "batched"}) chart::bench(cfg, engine, fixed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
