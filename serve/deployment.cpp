#include "serve/deployment.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace chart::serve {

const ServedModel* Deployment::find(const std::string& task) const {
  for (const auto& m : models)
    if (m->task() == task) return m.get();
  return nullptr;
}

namespace {

// serve.zero_shot's "TASK=CODE|CODE...@HORIZON" entries by task.
std::map<std::string, ZeroShotTask> zero_shot_tasks(const ServeConfig& s) {
  std::map<std::string, ZeroShotTask> out;
  for (const auto& z : s.zero_shot) {
    const auto eq = z.find('='), at = z.rfind('@');
    const std::string task = z.substr(0, eq), codes = z.substr(eq + 1, at - eq - 1);
    if (out.count(task)) fail("serve.zero_shot names task {} twice", task);
    ZeroShotTask t;
    t.horizon = z.substr(at + 1);
    for (size_t from = 0; from <= codes.size();) {
      const size_t bar = std::min(codes.find('|', from), codes.size());
      if (bar == from) fail("serve.zero_shot: '{}' has an empty outcome code", z);
      t.outcome_codes.push_back(codes.substr(from, bar - from));
      from = bar + 1;
    }
    const bool served = std::any_of(s.models.begin(), s.models.end(),
                                    [&](const std::string& m) { return m.compare(0, task.size() + 1, task + "=") == 0; });
    if (!served) fail("serve.zero_shot names task {}, which serve.models does not (add {}=PRETRAINED_CHECKPOINT)", task, task);
    out[task] = t;
  }
  return out;
}

}  // namespace

std::shared_ptr<const Deployment> load_deployment(const ServeSource& src, std::function<void(size_t)> on_batch) {
  Config cfg = load_config(src.config_path, src.overrides);
  if (cfg.serve.models.empty())
    throw Error("serve.models is empty", "name each task and its fine-tuned checkpoint: --set 'serve.models=[TASK=DIR]'");
  auto d = std::make_shared<Deployment>(Deployment{cfg, Access::load(cfg.serve.clients, cfg.serve.audience),
                                                   FhirMapping::load(cfg.serve.fhir_mapping), {}});
  const auto zero_shot = zero_shot_tasks(cfg.serve);
  for (const auto& entry : cfg.serve.models) {
    const auto eq = entry.find('=');
    const std::string task = entry.substr(0, eq), dir = entry.substr(eq + 1);
    if (d->find(task)) fail("serve.models names task {} twice", task);
    const auto z = zero_shot.find(task);
    d->models.push_back(std::make_shared<ServedModel>(
        task, dir, cfg, on_batch, z == zero_shot.end() ? std::nullopt : std::optional<ZeroShotTask>(z->second)));
    const ServedModel& m = *d->models.back();
    info("serve: task {} from {} (version {}, context {})", task, m.checkpoint(), m.model_sha256().substr(0, 12),
         m.context());
  }
  info("serve: {} client(s) from {}", d->access.size(), cfg.serve.clients);
  return d;
}

}  // namespace chart::serve
