// `chart serve CONFIG`: the fine-tuned models of serve.models behind HTTP/1.1 (cpp-httplib; HTTPS
// with serve.tls_cert and serve.tls_key). Plain HTTP binds only to loopback unless
// serve.allow_plain_remote. Every request but /healthz and /readyz is authenticated (access.h),
// rate-limited per client, answered in JSON (errors: {"error": {"code", "message", "request_id"}}),
// counted (/metrics) and written to run.dir/audit.jsonl before its answer leaves.
// SIGHUP reloads the config and the checkpoints without dropping a request; SIGTERM or SIGINT
// stops accepting, lets the requests in flight finish and exits 0. run.dir/serve.json names the
// address bound while the server runs. docs/serve.md has the endpoints and curl lines.
#pragma once
#include "serve/deployment.h"

namespace chart::serve {

int run_serve(const ServeSource& source);

}  // namespace chart::serve
