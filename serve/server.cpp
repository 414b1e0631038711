#include "serve/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/utc_time.h"
#include "model/device.h"
#include "serve/api_error.h"
#include "serve/audit_log.h"
#include "serve/endpoints.h"
#include "serve/metrics.h"
#include "train/checkpoint/run_lock.h"

namespace chart::serve {
namespace fs = std::filesystem;
namespace {

using httplib::Request;
using httplib::Response;

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The caller's X-Request-Id when it is a plain token, else 128 random bits.
std::string request_id_of(const Request& req) {
  const std::string given = req.get_header_value("X-Request-Id");
  if (!given.empty() && given.size() <= 64 &&
      given.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == std::string::npos)
    return given;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

void set_error(Response& res, int status, const std::string& code, const std::string& message, const std::string& rid) {
  res.status = status;
  res.set_content(Json{{"error", {{"code", code}, {"message", message}, {"request_id", rid}}}}.dump(), "application/json");
}

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "::1" || host == "localhost"; }

// The codes httplib answers by itself (before any handler), as JSON.
std::string status_code_name(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 413: return "body_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    default: return status >= 500 ? "internal" : "http_" + std::to_string(status);
  }
}

class Service {
 public:
  Service(ServeSource source, const Config& cfg)
      : source_(std::move(source)),
        audit_(fs::path(cfg.run.dir) / "audit.jsonl"),
        log_payloads_(cfg.serve.log_payloads) {
    deployment_ = load_deployment(source_, [this](size_t n) { metrics_.batch(n); });
  }

  std::shared_ptr<const Deployment> current() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return deployment_;
  }

  // A new deployment beside the old one; the old one stays if the new one fails to load.
  void reload() {
    std::lock_guard<std::mutex> serialise(reload_mutex_);
    auto next = load_deployment(source_, [this](size_t n) { metrics_.batch(n); });
    std::lock_guard<std::mutex> lock(mutex_);
    deployment_ = std::move(next);
  }

  void set_base_url(std::string url) { base_url_ = std::move(url); }
  std::atomic<bool> draining{false};

  using Body = std::function<Json(CallContext&, const Request&, Json& audit_extra)>;

  // Everything a request goes through: its id, authentication, the rate limit, the body's JSON,
  // errors as JSON, the metrics and the audit log.
  void handle(const char* route, const Request& req, Response& res, const Body& body) {
    const double t0 = steady_s();
    const std::string rid = request_id_of(req);
    const auto dep = current();
    const Client* client = nullptr;
    std::vector<std::string> tasks;
    std::string code = "ok";
    Json extra = Json::object();
    try {
      client = &dep->access.authenticate(req.get_header_value("Authorization"), now_utc_us() / 1000000);
      const int64_t limit = client->rate_limit >= 0 ? client->rate_limit : dep->cfg.serve.rate_limit;
      if (!limiter_.allow(client->id, limit, steady_s()))
        throw ApiError(429, "rate_limited",
                       fmt::format("client {} is over its rate limit ({} requests a minute)", client->id, limit));
      CallContext call{*dep, *client, rid, base_url_of(*dep), tasks};
      const Json out = body(call, req, extra);
      if (res.body.empty()) res.set_content(out.dump(), "application/json");
      if (res.status == -1) res.status = 200;
    } catch (const ApiError& e) {
      code = e.code();
      set_error(res, e.status(), e.code(), e.what(), rid);
    } catch (const Json::parse_error& e) {  // its what() quotes the body: not echoed
      code = "malformed_json";
      set_error(res, 400, code, fmt::format("the body is not valid JSON (at byte {})", e.byte), rid);
    } catch (const Json::exception& e) {
      code = "invalid_request";
      set_error(res, 400, code, fmt::format("the body is not the JSON expected: {}", e.what()), rid);
    } catch (const std::exception& e) {
      code = "internal";
      warn("serve: request {} failed: {}", rid, first_line(e.what()));
      set_error(res, 500, code, "internal error (the server's log names the request id)", rid);
    }
    res.set_header("X-Request-Id", rid);
    finish(route, req, res, rid, client, tasks, *dep, code, extra, steady_s() - t0);
  }

  void finish(const char* route, const Request& req, Response& res, const std::string& rid, const Client* client,
              const std::vector<std::string>& tasks, const Deployment& dep, const std::string& code, const Json& extra,
              double secs) {
    Json line = {{"time", format_utc(now_utc_us())}, {"request_id", rid}, {"client", client ? Json(client->id) : Json()},
                 {"route", route}, {"status", res.status}, {"outcome", code},
                 {"latency_ms", std::round(secs * 1e5) / 100}};
    Json models = Json::array();
    for (const auto& t : tasks) {
      const ServedModel* m = dep.find(t);
      models.push_back({{"task", t.substr(0, 64)}, {"version", m ? Json(m->model_sha256()) : Json()}});
    }
    line["tasks"] = models;
    if (!extra.empty()) line["extra"] = extra;
    if (log_payloads_) line["payload"] = req.body;
    try {
      audit_.write(line);
    } catch (const std::exception& e) {  // an answer the log cannot record does not leave
      warn("serve: {}", e.what());
      set_error(res, 503, "audit_unavailable", "the audit log cannot be written; the request was not answered", rid);
    }
    metrics_.request(route, res.status, secs);
    if (code != "ok") metrics_.error(code);
  }

  // httplib's own answers (404, 413, 400, ...): the handlers' errors have their body already.
  void unrouted(const Request& req, Response& res) {
    if (!res.body.empty()) return;
    const std::string code = status_code_name(res.status);
    metrics_.request("other", res.status, 0);
    metrics_.error(code);
    set_error(res, res.status, code, fmt::format("HTTP {}", res.status), request_id_of(req));
  }

  Metrics& metrics() { return metrics_; }

 private:
  std::string base_url_of(const Deployment& d) const {
    return d.cfg.serve.public_url.empty() ? base_url_ : d.cfg.serve.public_url;
  }

  ServeSource source_;
  mutable std::mutex mutex_;
  std::mutex reload_mutex_;
  std::shared_ptr<const Deployment> deployment_;
  RateLimiter limiter_;
  AuditLog audit_;
  Metrics metrics_;
  bool log_payloads_;
  std::string base_url_;
};

// The body as JSON; 415 for another content type.
Json json_body(const Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  if (type.rfind("application/json", 0) != 0 && type.rfind("application/fhir+json", 0) != 0)
    throw ApiError(415, "unsupported_media_type", "the body must be application/json");
  return Json::parse(req.body);
}

void add_routes(httplib::Server& svr, Service& s) {
  svr.Get("/healthz", [](const Request&, Response& res) { res.set_content(R"({"status":"ok"})", "application/json"); });
  svr.Get("/readyz", [&s](const Request&, Response& res) {
    if (s.draining) {
      res.status = 503;
      res.set_content(R"({"status":"draining"})", "application/json");
    } else {
      res.set_content(R"({"status":"ready"})", "application/json");
    }
  });
  svr.Get("/metrics", [&s](const Request& req, Response& res) {
    s.handle("/metrics", req, res, [&s, &res](CallContext&, const Request&, Json&) {
      res.set_content(s.metrics().prometheus(), "text/plain; version=0.0.4");
      return Json();
    });
  });
  svr.Post("/v1/predict", [&s](const Request& req, Response& res) {
    s.handle("/v1/predict", req, res, [](CallContext& c, const Request& r, Json&) { return predict(c, json_body(r)); });
  });
  svr.Get(R"(/v1/model-card/([A-Za-z0-9_-]+))", [&s](const Request& req, Response& res) {
    s.handle("/v1/model-card/{task}", req, res, [&res](CallContext& c, const Request& r, Json&) {
      const std::string task = r.matches[1];
      c.tasks_used.push_back(task);
      Access::authorize(c.client, task);
      const ServedModel* m = c.deployment.find(task);
      if (!m) throw ApiError(404, "unknown_task", "no task " + task + " is served");
      res.set_content(m->model_card_json(), "application/json");
      return Json();
    });
  });
  svr.Get("/cds-services", [&s](const Request& req, Response& res) {
    s.handle("/cds-services", req, res, [](CallContext& c, const Request&, Json&) { return cds_discovery(c); });
  });
  svr.Post(R"(/cds-services/([A-Za-z0-9_-]+))", [&s](const Request& req, Response& res) {
    s.handle("/cds-services/{id}", req, res,
             [](CallContext& c, const Request& r, Json&) { return cds_hook(c, r.matches[1], json_body(r)); });
  });
  svr.Post(R"(/cds-services/([A-Za-z0-9_-]+)/feedback)", [&s](const Request& req, Response& res) {
    s.handle("/cds-services/{id}/feedback", req, res, [](CallContext& c, const Request& r, Json& extra) {
      Json recorded;
      Json out = cds_feedback(c, r.matches[1], json_body(r), recorded);
      extra["feedback"] = recorded;
      return out;
    });
  });
  svr.Post("/v1/admin/reload", [&s](const Request& req, Response& res) {
    s.handle("/v1/admin/reload", req, res, [&s](CallContext& c, const Request&, Json&) {
      if (!c.client.admin) throw ApiError(403, "forbidden_admin", "client " + c.client.id + " may not reload the service");
      try {
        s.reload();
      } catch (const Error& e) {  // the running models stay; the caller learns why
        throw ApiError(500, "reload_failed", first_line(e.what()));
      }
      Json tasks = Json::array();
      for (const auto& m : s.current()->models) tasks.push_back({{"task", m->task()}, {"version", m->model_sha256()}});
      return Json{{"reloaded", tasks}};
    });
  });
  svr.set_error_handler([&s](const Request& req, Response& res) { s.unrouted(req, res); });
}

std::unique_ptr<httplib::Server> make_server(const Config& cfg) {
  const auto& sc = cfg.serve;
  if (sc.tls_cert.empty() && !is_loopback(sc.host) && !sc.allow_plain_remote)
    throw Error(fmt::format("serve.host {} is not loopback and no TLS certificate is given", sc.host),
                "set serve.tls_cert and serve.tls_key (HTTPS), or serve.allow_plain_remote=true behind a TLS proxy");
  std::unique_ptr<httplib::Server> svr;
  if (!sc.tls_cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(sc.tls_cert.c_str(), sc.tls_key.c_str());
    if (!ssl->is_valid())
      fail("serve: cannot use the TLS certificate {} with the key {} (PEM files that belong together?)", sc.tls_cert,
           sc.tls_key);
    svr = std::move(ssl);
  } else {
    svr = std::make_unique<httplib::Server>();
  }
  const auto timeout = std::chrono::microseconds(static_cast<int64_t>(sc.read_timeout_s * 1e6));
  svr->set_read_timeout(timeout);
  svr->set_write_timeout(timeout);
  svr->set_keep_alive_timeout(5);
  svr->set_keep_alive_max_count(100);
  // Answers go out in two writes (headers, body): without TCP_NODELAY, Nagle's algorithm holds the
  // second until the client's delayed ACK, 40 ms on Linux, on every request.
  svr->set_tcp_nodelay(true);
  svr->set_payload_max_length(static_cast<size_t>(sc.max_body_kb) * 1024);
  // httplib gives each open connection a thread until it closes: serve.threads bounds the clients
  // served at once (more queue for a free thread).
  const size_t threads = static_cast<size_t>(sc.threads);
  svr->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  return svr;
}

}  // namespace

int run_serve(const ServeSource& source) {
  // Signals go to one thread that waits for them: blocked here, before any thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Config cfg = load_config(source.config_path, source.overrides);
  if (cfg.run.dir.empty()) throw Error("run.dir is not set", "pass --set run.dir=DIR (the audit log and serve.json go there)");
  set_cpu_threads(cfg.train.threads);
  auto svr = make_server(cfg);
  RunLock lock(cfg.run.dir, "chart serve");
  Service service(source, cfg);
  add_routes(*svr, service);

  const int port = cfg.serve.port == 0 ? svr->bind_to_any_port(cfg.serve.host)
                                       : (svr->bind_to_port(cfg.serve.host, static_cast<int>(cfg.serve.port))
                                              ? static_cast<int>(cfg.serve.port) : -1);
  if (port < 0) fail("serve: cannot listen on {}:{} (in use, or not an address of this host)", cfg.serve.host, cfg.serve.port);
  const std::string scheme = cfg.serve.tls_cert.empty() ? "http" : "https";
  const std::string host = cfg.serve.host.find(':') != std::string::npos ? "[" + cfg.serve.host + "]" : cfg.serve.host;
  const std::string url = fmt::format("{}://{}:{}", scheme, host, port);
  service.set_base_url(url);
  const fs::path state = fs::path(cfg.run.dir) / "serve.json";
  Json tasks = Json::array();
  for (const auto& m : service.current()->models) tasks.push_back(m->task());
  write_file_atomic(state, dump_json({{"url", url}, {"port", port}, {"pid", static_cast<int64_t>(getpid())}, {"tasks", tasks}}));

  std::thread watcher([&] {
    for (;;) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        info("serve: SIGHUP: reloading {}", source.config_path);
        try {
          service.reload();
          info("serve: reloaded");
        } catch (const std::exception& e) {
          warn("serve: reload failed, still serving the previous models: {}", first_line(e.what()));
        }
        continue;
      }
      info("serve: {}: finishing the requests in flight, then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      service.draining = true;
      for (int i = 0; i < 500 && !svr->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      svr->stop();
      return;
    }
  });
  info("serve: listening on {} ({} task(s); audit log {})", url, tasks.size(), (fs::path(cfg.run.dir) / "audit.jsonl").string());
  const bool ok = svr->listen_after_bind();
  if (!service.draining) pthread_kill(watcher.native_handle(), SIGTERM);  // listen ended by itself: wake the watcher
  watcher.join();
  fs::remove(state);
  if (!ok && !service.draining) fail("serve: the server stopped unexpectedly");
  info("serve: stopped");
  return 0;
}

}  // namespace chart::serve
