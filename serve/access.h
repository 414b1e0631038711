// Who may call the service: the clients file (serve.clients), read at start-up and on reload.
//
//   clients:
//     - id: site-b-ehr                      # named in the audit log and the metrics
//       tasks: [mortality_365d]             # the tasks it may ask for; ["*"]: all
//       jwt_issuer: https://ehr.site-b.org  # bearer JWTs with this `iss`, signed RS384 or ES384
//       jwt_public_key: keys/site-b.pem     # PEM public key; relative to this file
//     - id: analytics
//       tasks: ["*"]
//       api_key_sha256: 5e8848...           # SHA-256 (hex) of the API key: the key itself is never stored
//       admin: true                         # may call POST /v1/admin/reload
//       rate_limit: 120                     # requests a minute for this client (default: serve.rate_limit)
//
// A JWT must carry exp (in the future, 60 s of clock skew allowed), the configured audience in
// aud, and the client's issuer in iss; its alg must be RS384 or ES384 (the SMART Backend
// Services and CDS Hooks algorithms), which also shuts out "none" and HMAC signed with the public key.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace chart::serve {

struct Client {
  std::string id;
  std::set<std::string> tasks;  // "*": every task
  bool admin = false;
  int64_t rate_limit = -1;      // requests a minute; -1: serve.rate_limit
  std::string api_key_sha256;   // one of these two credentials
  std::string jwt_issuer;
  std::string jwt_public_key;   // PEM text
  bool may_use(const std::string& task) const { return tasks.count("*") || tasks.count(task); }
};

class Access {
 public:
  // Throws chart::Error naming the file and the client entry at fault. `audience` is required
  // when any client uses JWTs.
  static Access load(const std::string& path, const std::string& audience);

  // The client an Authorization header belongs to; ApiError 401 (with a reason code) otherwise.
  const Client& authenticate(const std::string& authorization, int64_t now_s) const;
  // ApiError 403 unless the client may use the task.
  static void authorize(const Client& client, const std::string& task);
  size_t size() const { return clients_.size(); }

 private:
  const Client& verify_jwt(const std::string& token, int64_t now_s) const;
  std::vector<Client> clients_;
  std::map<std::string, size_t> by_key_hash_, by_issuer_;
  std::string audience_;
};

// A token bucket per client: `per_minute` requests a minute, bursts up to that many; 0: unlimited.
class RateLimiter {
 public:
  bool allow(const std::string& client, int64_t per_minute, double now_s);  // false: answer 429

 private:
  struct Bucket {
    double tokens = 0, at_s = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace chart::serve
