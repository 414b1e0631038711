#include "infer/prefill.h"

#include "model/autocast.h"

namespace chart::infer {

PrefilledPrompt prefill(ClinicalTransformer& model, const std::vector<int64_t>& tokens, const std::vector<float>& ages,
                        const DeviceChoice& dev) {
  const auto n = static_cast<int64_t>(tokens.size());
  TORCH_CHECK(n > 0 && ages.size() == tokens.size(), "prefill: a prompt needs one age per token and a token");
  PrefilledPrompt p;
  p.cache = model->new_cache(1, n);
  auto t = torch::tensor(tokens, torch::kInt64).view({1, n}).to(dev.device);
  auto a = torch::tensor(ages, torch::kFloat32).view({1, n}).to(dev.device);
  AutocastGuard autocast(dev);
  p.logits = model->decode(t, a, torch::ones({1, n}, torch::dtype(torch::kBool).device(dev.device)), p.cache);
  return p;
}

void copy_into_slot(const PrefilledPrompt& prompt, KVCache& pool, int64_t slot) {
  const int64_t n = prompt.cache.length;
  TORCH_CHECK(n <= pool.capacity, "copy_into_slot: a prompt of ", n, " positions in a cache of ", pool.capacity);
  for (size_t l = 0; l < pool.k.size(); ++l) {
    pool.k[l][slot].narrow(1, 0, n).copy_(prompt.cache.k[l][0]);
    pool.v[l][slot].narrow(1, 0, n).copy_(prompt.cache.v[l][0]);
  }
  pool.ages[slot].narrow(0, 0, n).copy_(prompt.cache.ages[0]);
  pool.valid[slot].narrow(0, 0, n).copy_(prompt.cache.valid[0]);
}

}  // namespace chart::infer
