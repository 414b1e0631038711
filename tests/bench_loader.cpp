// Loader throughput: batches/s and tokens/s of data::Loader over a prepared token dataset,
// consumed as fast as possible (no model), with and without background prefetch.
//   build/tests/bench_loader TOKEN_DATASET [context=2048] [batch=16] [batches=200]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "data/loader.h"
#include "data/token_dataset.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOKEN_DATASET [context] [batch] [batches]\n", argv[0]);
    return 2;
  }
  auto ds = chart::data::TokenDataset::open(argv[1]);
  const int64_t context = argc > 2 ? std::atoll(argv[2]) : 2048;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 16;
  const int64_t n = argc > 4 ? std::atoll(argv[4]) : 200;
  std::printf("| loader | context | batch | batches | tokens/s | batches/s |\n|---|---|---|---|---|---|\n");
  for (bool packing : {true, false})
    for (int prefetch : {0, 2}) {
      chart::data::LoaderOptions o;
      o.context = context;
      o.batch_size = batch;
      o.packing = packing;
      o.prefetch = prefetch;
      chart::data::Loader loader(ds, "train", o);
      auto t0 = std::chrono::steady_clock::now();
      int64_t tokens = 0;
      for (int64_t i = 0; i < n; ++i) tokens += loader.next().tokens.numel();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("| %s, prefetch %d | %lld | %lld | %lld | %.3g | %.1f |\n", packing ? "packed" : "one subject per row",
                  prefetch, (long long)context, (long long)batch, (long long)n, tokens / s, n / s);
    }
  return 0;
}
