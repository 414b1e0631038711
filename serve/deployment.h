// What the service serves at one moment: the config, the clients, the FHIR mapping and the loaded
// models. A reload (SIGHUP or POST /v1/admin/reload) builds a new Deployment beside the old one
// and swaps it in; a request holds the one it started with, so in-flight requests finish on the
// old models, which go when the last of them does.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "serve/access.h"
#include "serve/fhir_input.h"
#include "serve/served_model.h"

namespace chart::serve {

struct ServeSource {
  std::string config_path;
  std::vector<std::string> overrides;
};

struct Deployment {
  Config cfg;
  Access access;
  FhirMapping mapping;
  std::vector<std::shared_ptr<ServedModel>> models;  // serve.models' order
  const ServedModel* find(const std::string& task) const;
};

// Reads the config again and loads every model; chart::Error naming what is wrong.
std::shared_ptr<const Deployment> load_deployment(const ServeSource& src, std::function<void(size_t)> on_batch);

}  // namespace chart::serve
