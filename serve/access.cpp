#include "serve/access.h"

#include <jwt.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "serve/api_error.h"

namespace chart::serve {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kClockSkewS = 60;

[[noreturn]] void unauthorized(const std::string& code, const std::string& message) {
  throw ApiError(401, code, message);
}

bool is_hex_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

Client parse_client(const YAML::Node& n, size_t i, const fs::path& file) {
  const std::string where = fmt::format("{}: clients[{}]", file.string(), i);
  if (!n.IsMap()) fail("{} is not a mapping with id, tasks and a credential", where);
  Client c;
  c.id = n["id"] ? n["id"].as<std::string>() : "";
  if (c.id.empty()) fail("{} has no id", where);
  if (!n["tasks"] || !n["tasks"].IsSequence() || n["tasks"].size() == 0)
    fail("{} ({}): tasks must be a list of task names, or [\"*\"]", where, c.id);
  for (const auto& t : n["tasks"]) c.tasks.insert(t.as<std::string>());
  c.admin = n["admin"] && n["admin"].as<bool>();
  if (n["rate_limit"]) {
    c.rate_limit = n["rate_limit"].as<int64_t>();
    if (c.rate_limit < 0) fail("{} ({}): rate_limit must be requests a minute, 0 for unlimited", where, c.id);
  }
  if (n["api_key_sha256"]) {
    c.api_key_sha256 = n["api_key_sha256"].as<std::string>();
    std::transform(c.api_key_sha256.begin(), c.api_key_sha256.end(), c.api_key_sha256.begin(), ::tolower);
    if (!is_hex_sha256(c.api_key_sha256))
      fail("{} ({}): api_key_sha256 must be 64 hex digits (printf %s KEY | sha256sum)", where, c.id);
  }
  if (n["jwt_issuer"] || n["jwt_public_key"]) {
    if (!n["jwt_issuer"] || !n["jwt_public_key"]) fail("{} ({}): jwt_issuer and jwt_public_key go together", where, c.id);
    c.jwt_issuer = n["jwt_issuer"].as<std::string>();
    fs::path key = n["jwt_public_key"].as<std::string>();
    if (key.is_relative()) key = file.parent_path() / key;
    c.jwt_public_key = read_file(key);
    if (c.jwt_public_key.find("-----BEGIN PUBLIC KEY-----") == std::string::npos)
      fail("{} ({}): {} is not a PEM public key (-----BEGIN PUBLIC KEY-----)", where, c.id, key.string());
  }
  if (c.api_key_sha256.empty() == c.jwt_issuer.empty())
    fail("{} ({}): give exactly one credential, api_key_sha256 or jwt_issuer with jwt_public_key", where, c.id);
  return c;
}

struct JwtDeleter {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

bool audience_matches(jwt_t* jwt, const std::string& audience) {
  char* raw = jwt_get_grants_json(jwt, "aud");
  if (!raw) return false;
  const std::string text(raw);
  free(raw);
  try {
    const Json aud = Json::parse(text);
    if (aud.is_string()) return aud.get<std::string>() == audience;
    if (aud.is_array())
      for (const auto& a : aud)
        if (a.is_string() && a.get<std::string>() == audience) return true;
  } catch (const std::exception&) {
  }
  return false;
}

}  // namespace

Access Access::load(const std::string& path, const std::string& audience) {
  if (path.empty())
    throw Error("serve.clients is not set", "every request is authenticated: write a clients file (docs/serve.md) "
                                            "and pass --set serve.clients=FILE");
  YAML::Node root;
  try {
    root = YAML::Load(read_file(path));
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML: {}", path, e.what());
  }
  if (!root["clients"] || !root["clients"].IsSequence() || root["clients"].size() == 0)
    fail("{}: no clients (a list under `clients:`; see docs/serve.md)", path);
  Access a;
  a.audience_ = audience;
  size_t i = 0;
  for (const auto& n : root["clients"]) {
    Client c;
    try {
      c = parse_client(n, i, path);
    } catch (const YAML::Exception& e) {
      fail("{}: clients[{}]: {}", path, i, e.what());
    }
    for (const auto& other : a.clients_)
      if (other.id == c.id) fail("{}: client id '{}' appears twice", path, c.id);
    if (!c.api_key_sha256.empty() && !a.by_key_hash_.emplace(c.api_key_sha256, a.clients_.size()).second)
      fail("{}: clients[{}] ({}) has the same API key as another client", path, i, c.id);
    if (!c.jwt_issuer.empty()) {
      if (audience.empty())
        throw Error(fmt::format("{}: client {} uses JWTs but serve.audience is not set", path, c.id),
                    "set serve.audience to this service's base URL (the aud its clients sign for)");
      if (!a.by_issuer_.emplace(c.jwt_issuer, a.clients_.size()).second)
        fail("{}: two clients share the JWT issuer {}", path, c.jwt_issuer);
    }
    a.clients_.push_back(std::move(c));
    ++i;
  }
  return a;
}

const Client& Access::authenticate(const std::string& authorization, int64_t now_s) const {
  if (authorization.empty()) unauthorized("missing_credentials", "an Authorization: Bearer header is required");
  static const std::string kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.compare(0, kBearer.size(), kBearer) != 0)
    unauthorized("bad_credentials", "the Authorization header must be 'Bearer <token or API key>'");
  const std::string token = authorization.substr(kBearer.size());
  if (std::count(token.begin(), token.end(), '.') == 2) return verify_jwt(token, now_s);
  // An API key: looked up by its hash, so timing reveals nothing about the stored keys.
  const auto it = by_key_hash_.find(sha256_hex(token));
  if (it == by_key_hash_.end()) unauthorized("bad_credentials", "the API key is not known");
  return clients_[it->second];
}

const Client& Access::verify_jwt(const std::string& token, int64_t now_s) const {
  // The issuer names the key; the signature is checked with that key before any claim is trusted.
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, token.c_str(), nullptr, 0) != 0 || !raw) unauthorized("bad_token", "the bearer JWT does not parse");
  JwtPtr unverified(raw);
  const char* iss = jwt_get_grant(unverified.get(), "iss");
  const auto who = iss ? by_issuer_.find(iss) : by_issuer_.end();
  if (who == by_issuer_.end()) unauthorized("unknown_issuer", "the JWT's issuer (iss) is not a configured client");
  const Client& c = clients_[who->second];
  raw = nullptr;
  const auto* key = reinterpret_cast<const unsigned char*>(c.jwt_public_key.data());
  if (jwt_decode(&raw, token.c_str(), key, static_cast<int>(c.jwt_public_key.size())) != 0 || !raw)
    unauthorized("bad_signature", "the JWT's signature does not verify with the issuer's key");
  JwtPtr jwt(raw);
  const jwt_alg_t alg = jwt_get_alg(jwt.get());
  if (alg != JWT_ALG_RS384 && alg != JWT_ALG_ES384)
    unauthorized("bad_algorithm", fmt::format("JWTs must be signed RS384 or ES384, not {}", jwt_alg_str(alg)));
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0) unauthorized("bad_token", "the JWT has no exp");
  if (now_s > exp + kClockSkewS) unauthorized("expired_token", "the JWT has expired");
  errno = 0;
  const long nbf = jwt_get_grant_int(jwt.get(), "nbf");
  if (errno == 0 && now_s + kClockSkewS < nbf) unauthorized("bad_token", "the JWT is not valid yet (nbf)");
  if (!audience_matches(jwt.get(), audience_))
    unauthorized("wrong_audience", "the JWT's audience (aud) is not this service");
  return c;
}

void Access::authorize(const Client& client, const std::string& task) {
  if (!client.may_use(task))
    throw ApiError(403, "forbidden_task", fmt::format("client {} may not use task {}", client.id, task));
}

bool RateLimiter::allow(const std::string& client, int64_t per_minute, double now_s) {
  if (per_minute <= 0) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  const double cap = static_cast<double>(per_minute);
  auto [it, fresh] = buckets_.try_emplace(client, Bucket{cap, now_s});
  Bucket& b = it->second;
  b.tokens = std::min(cap, b.tokens + (now_s - b.at_s) * cap / 60.0);
  b.at_s = now_s;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

}  // namespace chart::serve
