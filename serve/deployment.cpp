#include "serve/deployment.h"

#include "core/error.h"
#include "core/log.h"

namespace chart::serve {

const ServedModel* Deployment::find(const std::string& task) const {
  for (const auto& m : models)
    if (m->task() == task) return m.get();
  return nullptr;
}

std::shared_ptr<const Deployment> load_deployment(const ServeSource& src, std::function<void(size_t)> on_batch) {
  Config cfg = load_config(src.config_path, src.overrides);
  if (cfg.serve.models.empty())
    throw Error("serve.models is empty", "name each task and its fine-tuned checkpoint: --set 'serve.models=[TASK=DIR]'");
  auto d = std::make_shared<Deployment>(Deployment{cfg, Access::load(cfg.serve.clients, cfg.serve.audience),
                                                   FhirMapping::load(cfg.serve.fhir_mapping), {}});
  for (const auto& entry : cfg.serve.models) {
    const auto eq = entry.find('=');
    const std::string task = entry.substr(0, eq), dir = entry.substr(eq + 1);
    if (d->find(task)) fail("serve.models names task {} twice", task);
    d->models.push_back(std::make_shared<ServedModel>(task, dir, cfg, on_batch));
    const ServedModel& m = *d->models.back();
    info("serve: task {} from {} (version {}, context {})", task, m.checkpoint(), m.model_sha256().substr(0, 12),
         m.context());
  }
  info("serve: {} client(s) from {}", d->access.size(), cfg.serve.clients);
  return d;
}

}  // namespace chart::serve
