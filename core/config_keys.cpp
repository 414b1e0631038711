#include <limits>

#include "core/config_binder.h"

namespace chart::config_schema {
namespace {
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

void bind(Binder& b, Config& c) {
  b.section("data", [&] { b.field("dir", c.data.dir); });
  b.section("run", [&] { b.field("dir", c.run.dir); });
  b.section("prepare", [&] {
    auto& p = c.prepare;
    b.field("min_subjects", p.min_subjects, 1, kMaxInt);
    b.field("numeric_bins", p.numeric_bins, 1, 1000);
    b.field("time_bins", p.time_bins);
    b.field("text", p.text);
    b.field("threads", p.threads, 0, 4096);
    b.field("subject_id_column", p.subject_id_column);
    b.field("time_column", p.time_column);
    b.field("code_column", p.code_column);
    b.field("numeric_value_column", p.numeric_value_column);
    b.field("text_value_column", p.text_value_column);
    b.field("tuning_fraction", p.tuning_fraction, 0.0, 1.0);
    b.field("held_out_fraction", p.held_out_fraction, 0.0, 1.0);
    b.field("split_seed", p.split_seed, 0, kMaxInt);
    b.field("split_map", p.split_map);
    b.field("vocab", p.vocab);
    b.field("unknown_warning", p.unknown_warning, 0.0, 1.0);
  });
  b.section("model", [&] {
    auto& m = c.model;
    b.field("d_model", m.d_model, 8, 1 << 16);
    b.field("n_layers", m.n_layers, 1, 1024);
    b.field("n_heads", m.n_heads, 1, 1024);
    b.field("n_kv_heads", m.n_kv_heads, 0, 1024);
    b.field("d_ff", m.d_ff, 0, 1 << 20);
    b.field("context", m.context, 2, 1 << 20);
    b.field("rope_theta", m.rope_theta, 1.0, kInf);
    b.field("norm_eps", m.norm_eps, 0.0, 1.0);
    b.choice("time_encoding", m.time_encoding, {"sinusoidal", "none"});
    b.field("time_bias", m.time_bias);
    b.field("tie_embeddings", m.tie_embeddings);
    b.field("time_head", m.time_head);
    b.field("dropout", m.dropout, 0.0, 0.99);
    b.choice("attention", m.attention, {"auto", "kernels", "reference"});
    b.field("attention_check", m.attention_check);
  });
  b.section("train", [&] {
    auto& t = c.train;
    b.field("steps", t.steps, 0, kMaxInt);
    b.field("seed", t.seed, 0, kMaxInt);
    b.field("batch_size", t.batch_size, 1, 1 << 20);
    b.field("grad_accum", t.grad_accum, 1, 1 << 20);
    b.field("lr", t.lr, 0.0, 10.0);
    b.field("min_lr", t.min_lr, 0.0, 10.0);
    b.field("warmup_steps", t.warmup_steps, 0, kMaxInt);
    b.choice("schedule", t.schedule, {"cosine", "wsd", "constant"});
    b.field("decay_fraction", t.decay_fraction, 0.0, 1.0);
    b.field("weight_decay", t.weight_decay, 0.0, 10.0);
    b.field("decay", t.decay);
    b.field("beta1", t.beta1, 0.0, 0.999999);
    b.field("beta2", t.beta2, 0.0, 0.999999);
    b.field("eps", t.eps, 0.0, 1.0);
    b.field("grad_clip", t.grad_clip, 0.0, kInf);
    b.field("eval_every", t.eval_every, 0, kMaxInt);
    b.field("eval_batches", t.eval_batches, 1, kMaxInt);
    b.field("log_every", t.log_every, 1, kMaxInt);
    b.field("checkpoint_every", t.checkpoint_every, 0, kMaxInt);
    b.field("keep_last", t.keep_last, 1, kMaxInt);
    b.field("split_weights_mib", t.split_weights_mib, -1, kMaxInt);
    b.choice("device", t.device, {"auto", "cpu", "cuda"});
    b.choice("precision", t.precision, {"auto", "fp32", "bf16"});
    b.field("packing", t.packing);
    b.field("threads", t.threads, 0, 4096);
    b.field("max_skipped_steps", t.max_skipped_steps, 1, kMaxInt);
    b.field("save_batches", t.save_batches, 0, kMaxInt);
  });
  b.section("init", [&] { b.field("checkpoint", c.init.checkpoint); });
  b.section("task", [&] {
    b.field("labels", c.task.labels);
    b.field("name", c.task.name);
    b.field("event_codes", c.task.event_codes);
    b.field("time_pieces", c.task.time_pieces);
    b.field("multi", c.task.multi);
  });
  b.section("finetune", [&] {
    auto& f = c.finetune;
    b.choice("recipe", f.recipe, {"full", "lora", "probe"});
    b.field("context", f.context, 0, 1 << 20);
    b.field("lora_rank", f.lora_rank, 1, 4096);
    b.field("lora_alpha", f.lora_alpha, 0.0, 1e6);
    b.field("lora_targets", f.lora_targets);
    b.choice("class_weighting", f.class_weighting, {"balanced", "none"});
    b.field("patience", f.patience, 0, kMaxInt);
    b.field("head_lr_scale", f.head_lr_scale, 0.0, 1e6);
  });
  b.section("eval", [&] {
    auto& e = c.eval;
    b.choice("split", e.split, {"train", "tuning", "held_out"});
    b.field("predictions", e.predictions);
    b.field("bootstrap", e.bootstrap, 0, 1000000);
    b.field("ece_bins", e.ece_bins, 1, 1000);
    b.field("threshold", e.threshold, 0.0, 1.0);
    b.field("threshold_rule", e.threshold_rule);
    b.field("tuning_predictions", e.tuning_predictions);
    b.field("batch_size", e.batch_size, 1, 1 << 20);
    b.field("other_task", e.other_task);
    b.field("subgroups", e.subgroups);
    b.field("age_bands", e.age_bands);
    b.field("horizons", e.horizons);
    b.field("interval_coverage", e.interval_coverage, 0.0, 0.999);
  });
  b.section("generate", [&] {
    auto& g = c.generate;
    b.choice("split", g.split, {"train", "tuning", "held_out"});
    b.field("samples", g.samples, 1, 1 << 20);
    b.field("horizon", g.horizon);
    b.field("outcome_codes", g.outcome_codes);
    b.field("stop_codes", g.stop_codes);
    b.field("max_new_tokens", g.max_new_tokens, 0, 1 << 20);
    b.field("prompt_tokens", g.prompt_tokens, 0, 1 << 20);
    b.field("temperature", g.temperature, 1e-6, 100.0);
    b.field("top_k", g.top_k, 0, 1 << 24);
    b.field("batch_size", g.batch_size, 1, 1 << 20);
    b.field("max_examples", g.max_examples, 0, kMaxInt);
    b.choice("engine", g.engine, {"continuous", "batched"});
    b.choice("estimator", g.estimator, {"expected", "hits"});
    b.field("trajectories", g.trajectories);
    b.choice("window", g.window, {"slide", "prefill"});
  });
  b.section("predict", [&] {
    auto& p = c.predict;
    b.choice("times", p.times, {"labels", "last"});
    b.choice("split", p.split, {"all", "train", "tuning", "held_out"});
    b.field("meds", p.meds);
    b.field("batch_size", p.batch_size, 1, 1 << 20);
  });
  b.section("audit", [&] {
    auto& a = c.audit;
    b.field("max_subjects", a.max_subjects, 0, kMaxInt);
    b.field("min_k", a.min_k, 1e-6, 1.0);
    b.field("bootstrap", a.bootstrap, 0, 1000000);
    b.field("k", a.k, 0, kMaxInt);
    b.field("extract_tokens", a.extract_tokens, 0, 1 << 20);
    b.field("batch_size", a.batch_size, 1, 1 << 20);
  });
  b.section("card", [&] { b.field("governance", c.card.governance); });
  b.section("serve", [&] {
    auto& s = c.serve;
    b.field("models", s.models);
    b.field("zero_shot", s.zero_shot);
    b.field("host", s.host);
    b.field("port", s.port, 0, 65535);
    b.field("allow_plain_remote", s.allow_plain_remote);
    b.field("tls_cert", s.tls_cert);
    b.field("tls_key", s.tls_key);
    b.field("clients", s.clients);
    b.field("audience", s.audience);
    b.field("public_url", s.public_url);
    b.field("fhir_mapping", s.fhir_mapping);
    b.field("max_body_kb", s.max_body_kb, 1, 1 << 20);
    b.field("read_timeout_s", s.read_timeout_s, 0.1, 3600.0);
    b.field("rate_limit", s.rate_limit, 0, kMaxInt);
    b.field("threads", s.threads, 1, 1024);
    b.field("batch_size", s.batch_size, 1, 4096);
    b.field("batch_wait_ms", s.batch_wait_ms, 0.0, 10000.0);
    b.field("min_coverage", s.min_coverage, 0.0, 1.0);
    b.field("log_payloads", s.log_payloads);
  });
  b.section("dist", [&] {
    auto& d = c.dist;
    b.choice("backend", d.backend, {"auto", "nccl", "gloo"});
    b.field("timeout_s", d.timeout_s, 1.0, 86400.0);
    b.field("bucket_mb", d.bucket_mb, 0.001, 4096.0);
    b.choice("reduce_dtype", d.reduce_dtype, {"fp32", "bf16"});
    b.field("zero1", d.zero1);
  });
}

}  // namespace chart::config_schema
