#include "train/distributed/zero.h"

#include <algorithm>
#include <numeric>

namespace chart {

std::vector<int> shard_parameters(const std::vector<torch::Tensor>& params, int world_size) {
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(world_size), 0);
  std::vector<int> owner(params.size(), 0);
  for (size_t i : order) {
    int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[static_cast<size_t>(r)] += params[i].numel();
  }
  return owner;
}

void gather_parameters(Dist& dist, const std::vector<torch::Tensor>& params, const std::vector<int>& owner) {
  if (!dist.active()) return;
  torch::NoGradGuard no_grad;
  std::vector<std::vector<size_t>> mine(static_cast<size_t>(dist.world_size()));
  for (size_t i = 0; i < params.size(); ++i) mine[static_cast<size_t>(owner[i])].push_back(i);
  std::vector<torch::Tensor> flats(mine.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works(mine.size());
  for (size_t r = 0; r < mine.size(); ++r) {
    if (mine[r].empty()) continue;
    if (static_cast<int>(r) == dist.rank()) {
      std::vector<torch::Tensor> parts;
      for (size_t i : mine[r]) parts.push_back(params[i].detach().reshape({-1}));
      flats[r] = torch::cat(parts);
    } else {
      int64_t n = 0;
      for (size_t i : mine[r]) n += params[i].numel();
      flats[r] = torch::empty({n}, params[mine[r][0]].options());
    }
    std::vector<torch::Tensor> v{flats[r]};
    c10d::BroadcastOptions o;
    o.rootRank = static_cast<int64_t>(r);
    works[r] = dist.backend().broadcast(v, o);
  }
  for (size_t r = 0; r < mine.size(); ++r) {
    if (mine[r].empty()) continue;
    works[r]->wait();
    if (static_cast<int>(r) == dist.rank()) continue;
    int64_t off = 0;
    for (size_t i : mine[r]) {
      params[i].detach().copy_(flats[r].narrow(0, off, params[i].numel()).view(params[i].sizes()));
      off += params[i].numel();
    }
  }
}

}  // namespace chart
