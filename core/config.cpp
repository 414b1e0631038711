#include "core/config.h"

#include <cstdlib>

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>

#include "core/config_binder.h"
#include "core/error.h"

namespace chart {
namespace {
using config_schema::Binder;
using config_schema::bind;
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

// "configs/tiny.yaml:12" for a key read from a file, "--set" for one an override created.
std::string where(const YAML::Node& n, const std::string& file) {
  if (n.Mark().is_null() || n.Mark().line < 0) return "--set";
  return fmt::format("{}:{}", file.empty() ? "<config>" : file, n.Mark().line + 1);
}

class Reader : public Binder {
 public:
  Reader(YAML::Node root, std::string file) : file_(std::move(file)) { stack_.push_back({root, ""}); }

  void section(const char* name, const std::function<void()>& body) override {
    Frame& top = stack_.back();
    top.known.push_back(name);
    std::string path = join(top.path, name);
    // Const access: a missing key must read as undefined, not be inserted.
    const YAML::Node& parent = top.node;
    YAML::Node n = parent[name];
    if (n && !n.IsNull() && !n.IsMap())
      fail("config key '{}' ({}) must be a mapping of keys", path, where(n, file_));
    stack_.push_back({n && n.IsMap() ? n : YAML::Node(YAML::NodeType::Map), path});
    body();
    check_unknown(stack_.back());
    stack_.pop_back();
  }

  void field(const char* key, int64_t& v, int64_t lo, int64_t hi) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    int64_t x;
    try {
      x = n.as<int64_t>();
    } catch (const YAML::Exception&) {
      double d = as_double(n, path, "an integer");  // accept 1e6 for an integer, not 1.5
      if (std::floor(d) != d || std::fabs(d) > 9.0e18) type_error(n, path, "an integer");
      x = static_cast<int64_t>(d);
    }
    if (x < lo || x > hi)
      fail("config key '{}' ({}): {} is out of range [{}, {}]", path, where(n, file_), x, lo,
           hi == kMaxInt ? std::string("inf") : std::to_string(hi));
    v = x;
  }

  void field(const char* key, double& v, double lo, double hi) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    double x = as_double(n, path, "a number");
    if (!(x >= lo && x <= hi))
      fail("config key '{}' ({}): {} is out of range [{}, {}]", path, where(n, file_), x, lo, hi);
    v = x;
  }

  void field(const char* key, bool& v) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    try {
      v = n.as<bool>();
    } catch (const YAML::Exception&) {
      type_error(n, path, "true or false");
    }
  }

  void field(const char* key, std::string& v) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    if (n.IsNull()) { v.clear(); return; }
    if (!n.IsScalar()) type_error(n, path, "a string");
    v = n.Scalar();
  }

  void field(const char* key, std::vector<std::string>& v) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    if (!n.IsSequence()) type_error(n, path, "a list such as [a, b]");
    v.clear();
    for (const auto& item : n) {
      if (!item.IsScalar()) type_error(item, path, "a list of strings");
      v.push_back(item.Scalar());
    }
  }

  void choice(const char* key, std::string& v, std::initializer_list<const char*> options) override {
    auto [n, path] = lookup(key);
    if (!n) return;
    std::string s = n.IsScalar() ? n.Scalar() : "";
    for (const char* o : options)
      if (s == o) { v = s; return; }
    fail("config key '{}' ({}): '{}' is not one of: {}", path, where(n, file_), s,
         fmt::join(options, ", "));
  }

  void finish() { check_unknown(stack_.front()); }

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::vector<std::string> known = {};
  };

  static std::string join(const std::string& a, const char* b) {
    return a.empty() ? std::string(b) : a + "." + b;
  }

  std::pair<YAML::Node, std::string> lookup(const char* key) {
    Frame& top = stack_.back();
    top.known.push_back(key);
    const YAML::Node& parent = top.node;
    return {parent[key], join(top.path, key)};
  }

  [[noreturn]] void type_error(const YAML::Node& n, const std::string& path, const char* want) {
    std::string got = n.IsScalar() ? "'" + n.Scalar() + "'"
                      : n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : "nothing";
    fail("config key '{}' ({}): expected {}, got {}", path, where(n, file_), want, got);
  }

  double as_double(const YAML::Node& n, const std::string& path, const char* want) {
    if (!n.IsScalar()) type_error(n, path, want);
    try {
      double d = n.as<double>();
      if (!std::isfinite(d) && want != std::string("a number")) type_error(n, path, want);
      return d;
    } catch (const YAML::Exception&) {
      type_error(n, path, want);
    }
  }

  void check_unknown(const Frame& f) {
    for (const auto& kv : f.node) {
      std::string key = kv.first.Scalar();
      bool ok = false;
      for (const auto& k : f.known) ok = ok || k == key;
      if (!ok)
        fail("unknown config key '{}' ({}); known keys{}: {}", join(f.path, key.c_str()),
             where(kv.first, file_), f.path.empty() ? "" : " in '" + f.path + "'",
             fmt::join(f.known, ", "));
    }
  }

  std::string file_;
  std::vector<Frame> stack_;
};

class Writer : public Binder {
 public:
  Writer() { out_ << YAML::BeginMap; }
  void section(const char* name, const std::function<void()>& body) override {
    out_ << YAML::Key << name << YAML::Value << YAML::BeginMap;
    body();
    out_ << YAML::EndMap;
  }
  void field(const char* key, int64_t& v, int64_t, int64_t) override { kv(key, v); }
  void field(const char* key, double& v, double, double) override {
    // Shortest text that reads back as the same double.
    out_ << YAML::Key << key << YAML::Value << fmt::format("{}", v);
  }
  void field(const char* key, bool& v) override { kv(key, v); }
  void field(const char* key, std::string& v) override {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  }
  void field(const char* key, std::vector<std::string>& v) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << v;
  }
  void choice(const char* key, std::string& v, std::initializer_list<const char*>) override {
    kv(key, v);
  }
  std::string text() {
    out_ << YAML::EndMap;
    return std::string(out_.c_str()) + "\n";
  }

 private:
  template <typename T>
  void kv(const char* key, const T& v) { out_ << YAML::Key << key << YAML::Value << v; }
  YAML::Emitter out_;
};

class Lister : public Binder {
 public:
  void section(const char* name, const std::function<void()>& body) override {
    prefix_ = std::string(name) + ".";
    body();
    prefix_.clear();
  }
  void field(const char* k, int64_t&, int64_t, int64_t) override { add(k); }
  void field(const char* k, double&, double, double) override { add(k); }
  void field(const char* k, bool&) override { add(k); }
  void field(const char* k, std::string&) override { add(k); }
  void field(const char* k, std::vector<std::string>&) override { add(k); }
  void choice(const char* k, std::string&, std::initializer_list<const char*>) override { add(k); }
  std::vector<std::string> keys;

 private:
  void add(const char* k) { keys.push_back(prefix_ + k); }
  std::string prefix_;
};

// A copy of n built node by node, so that it carries no parse position (errors then say "--set").
YAML::Node unmarked(const YAML::Node& n) {
  if (n.IsScalar()) return YAML::Node(n.Scalar());
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& item : n) out.push_back(unmarked(item));
    return out;
  }
  if (n.IsMap()) {
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& kv : n) out[kv.first.Scalar()] = unmarked(kv.second);
    return out;
  }
  return YAML::Node();
}

// Applies "a.b.c=value" to the tree; the new node carries no file mark, so errors say "--set".
void apply_override(YAML::Node& root, const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set '{}': expected key=value, e.g. --set train.steps=100", spec);
  std::string key = spec.substr(0, eq), text = spec.substr(eq + 1);
  YAML::Node value;
  try {
    value = text.empty() ? YAML::Node(std::string()) : YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("--set {}: value is not valid YAML: {}", key, e.msg);
  }
  value = unmarked(value);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // yaml-cpp nodes are handles: walk down by reassigning a handle, not by reference.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next || next.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    if (!next.IsMap()) fail("--set {}: '{}' is not a section", key, parts[i]);
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root(YAML::NodeType::Map);
  if (!path.empty()) {
    if (!std::filesystem::is_regular_file(path))
      throw Error(fmt::format("config file {} does not exist", path),
                  "configs/ holds the shipped configs, e.g. configs/tiny.yaml");
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
      fail("config file {} is not valid YAML: line {}: {}", path, e.mark.line + 1, e.msg);
    }
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) fail("config file {} must be a mapping of sections (data:, model:, ...)", path);
  }
  for (const auto& spec : overrides) apply_override(root, spec);
  Config config;
  Reader reader(root, path);
  bind(reader, config);
  reader.finish();
  validate(config);
  return config;
}

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  Writer w;
  bind(w, copy);
  return w.text();
}

std::vector<std::string> config_keys() {
  Config c;
  Lister l;
  bind(l, c);
  return l.keys;
}

void validate(const Config& c) {
  const auto& m = c.model;
  if (m.d_model % m.n_heads != 0)
    fail("config: model.d_model ({}) must be divisible by model.n_heads ({})", m.d_model, m.n_heads);
  if ((m.d_model / m.n_heads) % 2 != 0)
    fail("config: head size model.d_model/model.n_heads = {} must be even (rotary embeddings)",
         m.d_model / m.n_heads);
  int64_t kv = m.n_kv_heads == 0 ? m.n_heads : m.n_kv_heads;
  if (m.n_heads % kv != 0)
    fail("config: model.n_heads ({}) must be a multiple of model.n_kv_heads ({})", m.n_heads, kv);
  if (c.train.min_lr > c.train.lr)
    fail("config: train.min_lr ({}) must not exceed train.lr ({})", c.train.min_lr, c.train.lr);
  // A fixed vocabulary needs no train split: an external site may be all held_out.
  const double split_off = c.prepare.tuning_fraction + c.prepare.held_out_fraction;
  if (c.prepare.vocab.empty() ? split_off >= 1.0 : split_off > 1.0)
    fail("config: prepare.tuning_fraction + prepare.held_out_fraction must be {} 1 (got {}){}",
         c.prepare.vocab.empty() ? "below" : "at most", split_off,
         c.prepare.vocab.empty() ? "; the vocabulary is built from the train split" : "");
  if (c.prepare.time_bins.empty()) fail("config: prepare.time_bins must not be empty");
  double previous = -1;
  for (const auto& a : c.eval.age_bands) {
    char* end = nullptr;
    const double v = std::strtod(a.c_str(), &end);
    if (a.empty() || *end != '\0' || !(v > previous) || v > 150)
      fail("config: eval.age_bands: '{}' is not an age in years above the one before it (e.g. [18, 40, 65, 80])", a);
    previous = v;
  }
  for (const auto& m : c.prepare.split_map) {
    const auto eq = m.find('=');
    const std::string to = eq == std::string::npos ? "" : m.substr(eq + 1);
    if (eq == 0 || (to != "train" && to != "tuning" && to != "held_out"))
      fail("config: prepare.split_map: '{}' is not NAME=SPLIT with SPLIT one of train, tuning, held_out "
           "(e.g. [dev=train, val=tuning, test=held_out])", m);
  }
  for (const auto& m : c.serve.models) {
    const auto eq = m.find('=');
    const bool ok = eq != std::string::npos && eq > 0 && eq + 1 < m.size() &&
                    m.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == eq;
    if (!ok)
      fail("config: serve.models: '{}' is not TASK=CHECKPOINT with TASK of letters, digits, '_' and '-' "
           "(e.g. [mortality_365d=runs/ft])", m);
  }
  for (const auto& z : c.serve.zero_shot) {
    const auto eq = z.find('='), at = z.rfind('@');
    if (eq == std::string::npos || eq == 0 || at == std::string::npos || at < eq + 2 || at + 1 == z.size())
      fail("config: serve.zero_shot: '{}' is not TASK=CODE|CODE...@HORIZON (e.g. [death_5y=MEDS_DEATH@5y])", z);
  }
  if (c.serve.tls_cert.empty() != c.serve.tls_key.empty())
    fail("config: serve.tls_cert and serve.tls_key go together (HTTPS needs both)");
  for (const auto& t : c.finetune.lora_targets)
    if (t != "wq" && t != "wk" && t != "wv" && t != "wo" && t != "w_gate" && t != "w_up" && t != "w_down")
      fail("config: finetune.lora_targets: unknown projection '{}' (wq, wk, wv, wo, w_gate, w_up, w_down)", t);
  for (const auto& g : c.train.decay)
    if (g != "matrices" && g != "embeddings" && g != "norms" && g != "other")
      fail("config: train.decay: unknown parameter group '{}' (matrices, embeddings, norms, other)", g);
}

}  // namespace chart
