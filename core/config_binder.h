// The config's schema, walked three ways: config.cpp's reader (YAML -> Config), writer (Config ->
// YAML) and lister (key names) are Binders, and bind() (config_keys.cpp) names every key once.
#pragma once
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/config.h"

namespace chart::config_schema {

// One description of every key, walked by a reader (YAML -> Config), a writer (Config -> YAML)
// and a lister (key names). Adding a key means adding one line to bind().
class Binder {
 public:
  virtual ~Binder() = default;
  virtual void section(const char* name, const std::function<void()>& body) = 0;
  virtual void field(const char* key, int64_t& v, int64_t lo, int64_t hi) = 0;
  virtual void field(const char* key, double& v, double lo, double hi) = 0;
  virtual void field(const char* key, bool& v) = 0;
  virtual void field(const char* key, std::string& v) = 0;
  virtual void field(const char* key, std::vector<std::string>& v) = 0;
  virtual void choice(const char* key, std::string& v, std::initializer_list<const char*> options) = 0;
};

// Every key of Config with its type and allowed range, in declaration order. Adding a key means
// adding one line here.
void bind(Binder& b, Config& c);

}  // namespace chart::config_schema
