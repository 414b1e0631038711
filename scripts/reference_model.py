"""chart's clinical transformer in plain PyTorch: the reference the C++ model is checked against.

It reads chart's weights as they are (a safetensors file named like chart's named_parameters) and
computes what model/layers.cpp, model/transformer.cpp, kernels/attention.cpp, train/pretrain/loss.cpp and
train/pretrain/optimizer.cpp compute:

  x = E[token] + W_age sinusoidal(age in days)   (or no age encoding)
  x = x + Attention(RMSNorm(x)); x = x + SwiGLU(RMSNorm(x))   per block
  logits = RMSNorm(x) W_out^T   (W_out = E when tied);   log_rate = RMSNorm(x) w_time + b_time

  python scripts/reference_model.py check DIR
      the parity check tests/test_reference_parity.cpp runs: DIR holds config.json,
      model.safetensors, batch.safetensors, cpp_out.safetensors, cpp_grads.safetensors and
      cpp_after_step.safetensors written by chart; exits 0 when Python agrees, 1 when not.
  python scripts/reference_model.py bench --config configs/tiny.yaml --batch 8 --context 128 --steps 20 [--compile]
      times training steps of this model on random packed batches; prints one JSON line.
Replaying a chart run's recorded batches in this model is scripts/replay_run.py.
"""
import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:  # the model.* keys of core/config.h, with its defaults
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 0  # 0: n_heads
    d_ff: int = 0  # 0: 8/3 d_model rounded up to a multiple of 64
    context: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    time_encoding: str = "sinusoidal"  # sinusoidal | none
    time_bias: bool = False
    tie_embeddings: bool = True
    time_head: bool = False
    dropout: float = 0.0

    # How chart runs attention (its kernels or its reference), not what the model computes.
    RUNTIME_KEYS = ("attention", "attention_check")

    @classmethod
    def from_dict(cls, d):
        d = {k: v for k, v in d.items() if k not in cls.RUNTIME_KEYS}
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise SystemExit(f"reference_model: unknown model keys {sorted(unknown)}")
        return cls(**{f.name: f.type(d[f.name]) for f in fields(cls) if f.name in d})  # 10000 -> 10000.0

    @property
    def kv_heads(self):
        return self.n_kv_heads or self.n_heads

    @property
    def ff(self):
        if self.d_ff > 0:
            return self.d_ff
        return ((8 * self.d_model + 2) // 3 + 63) // 64 * 64


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # in float32 whatever x's dtype
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def rotary_tables(length, head_dim, theta, device):
    """cos, sin [L, D] for positions 0..L-1 (not restarted per packed patient: rotary is relative)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv_freq)
    emb = torch.cat([angles, angles], -1)
    return emb.cos(), emb.sin()


def apply_rotary(x, cos, sin):  # "rotate half" layout, as Llama and Hugging Face
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos.to(x.dtype) + torch.cat([-x2, x1], -1) * sin.to(x.dtype)


def sinusoidal_age(ages_years, d_model):
    """[B, L] ages in years -> [B, L, d_model]: sin and cos of the age in days at d_model/2 frequencies."""
    half = d_model // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=ages_years.device) * (-math.log(10000.0) / half))
    angles = (ages_years.float() * 365.25).unsqueeze(-1) * freq
    enc = torch.cat([angles.sin(), angles.cos()], -1)
    return F.pad(enc, (0, d_model - enc.size(-1)))


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = c.n_heads, c.kv_heads, c.d_model // c.n_heads
        self.wq = nn.Linear(c.d_model, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(c.d_model, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(c.d_model, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, c.d_model, bias=False)
        if c.time_bias:  # ALiBi-like slopes, learned: -slope_h * log(1 + |gap in days|)
            h = torch.arange(1, self.n_heads + 1, dtype=torch.float32)
            self.time_slopes = nn.Parameter(2.0 ** (-8.0 * h / self.n_heads))
        else:
            self.time_slopes = None

    def forward(self, x, cos, sin, segments, ages):
        B, L, _ = x.shape
        q = self.wq(x).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.n_kv_heads != self.n_heads:  # grouped-query: query head h reads KV head h // group
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, 1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, 1)
        # Causal and never across packed patients (padding, segment -1, attends only to padding).
        causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        allowed = ((segments[:, :, None] == segments[:, None, :]) & causal)[:, None]  # [B, 1, L, L]
        mask = allowed
        if self.time_slopes is not None:
            days = ages.float() * 365.25
            decay = torch.log1p((days[:, :, None] - days[:, None, :]).abs())[:, None]  # [B, 1, L, L]
            bias = -self.time_slopes.float().view(1, -1, 1, 1) * decay
            mask = bias.masked_fill(~allowed, float("-inf")).to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, L, self.n_heads * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_ff, bias=False)
        self.w_up = nn.Linear(d_model, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(c.d_model, c.norm_eps)
        self.attn = Attention(c)
        self.mlp_norm = RMSNorm(c.d_model, c.norm_eps)
        self.mlp = SwiGLU(c.d_model, c.ff)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, cos, sin, segments, ages):
        x = x + self.dropout(self.attn(self.attn_norm(x), cos, sin, segments, ages))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class ClinicalTransformer(nn.Module):
    def __init__(self, c: ModelConfig, vocab_size):
        super().__init__()
        self.config = c
        self.tok_emb = nn.Embedding(vocab_size, c.d_model)
        self.age_proj = nn.Linear(c.d_model, c.d_model, bias=False) if c.time_encoding == "sinusoidal" else None
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model, c.norm_eps)
        self.lm_head = None if c.tie_embeddings else nn.Linear(c.d_model, vocab_size, bias=False)
        self.time_head = nn.Linear(c.d_model, 1) if c.time_head else None
        # chart's initialisation (GPT-2 style): N(0, 0.02), residual output projections scaled by
        # 1/sqrt(2 n_layers), biases zero; norms and time slopes keep their values.
        for name, p in self.named_parameters():
            if "norm" in name or "time_slopes" in name:
                continue
            if "bias" in name:
                nn.init.zeros_(p)
            else:
                residual = "attn.wo" in name or "mlp.w_down" in name
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layers) if residual else 0.02)

    def forward(self, tokens, ages, segments):
        """tokens [B, L] int64, ages [B, L] years, segments [B, L] int -> logits [B, L, V], log_rate [B, L] or None"""
        c = self.config
        x = self.tok_emb(tokens)
        if self.age_proj is not None:
            x = x + self.age_proj(sinusoidal_age(ages, c.d_model).to(x.dtype))
        cos, sin = rotary_tables(tokens.size(1), c.d_model // c.n_heads, c.rope_theta, tokens.device)
        for layer in self.layers:
            x = layer(x, cos, sin, segments, ages)
        h = self.norm(x)
        logits = self.lm_head(h) if self.lm_head is not None else F.linear(h, self.tok_emb.weight)
        log_rate = self.time_head(h).squeeze(-1) if self.time_head is not None else None
        return logits, log_rate


def pretraining_loss(logits, log_rate, targets, target_dt):
    """Next-token cross-entropy (+ exponential waiting-time NLL with a time head), as train/pretrain/loss.cpp."""
    V = logits.size(-1)
    next_token = F.cross_entropy(logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=-1)
    if log_rate is None:
        return next_token, next_token, None
    valid = (targets >= 0).float()
    dt = target_dt.clamp_min(1.0 / 1440.0)  # days, floored at one minute
    log_rate = log_rate.float()
    nll = -log_rate + log_rate.exp() * dt
    time_nll = (nll * valid).sum() / valid.sum().clamp_min(1.0)
    return next_token + time_nll, next_token, time_nll


def parameter_group(name, p):  # as train/pretrain/optimizer.cpp
    if name == "tok_emb.weight":
        return "embeddings"
    if "norm.weight" in name:
        return "norms"
    return "matrices" if p.dim() == 2 else "other"


def param_groups(model, weight_decay, decay=("matrices",)):
    """Index 0 decays, index 1 does not (train.decay names the groups that decay)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if parameter_group(n, p) in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if parameter_group(n, p) not in decay], "weight_decay": 0.0},
    ]


class LibTorchAdamW(torch.optim.Optimizer):
    """torch::optim::AdamW (LibTorch's C++ AdamW, decoupled decay) operation for operation."""

    def __init__(self, params, lr, betas, eps):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            beta1, beta2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                if g["weight_decay"] != 0:
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                s = self.state[p]
                if not s:
                    s["step"], s["exp_avg"], s["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                s["step"] += 1
                bc1, bc2 = 1 - beta1 ** s["step"], 1 - beta2 ** s["step"]
                s["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                s["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (s["exp_avg_sq"].sqrt() / math.sqrt(bc2)).add_(g["eps"])
                p.addcdiv_(s["exp_avg"], denom, value=-g["lr"] / bc1)


# ---------------------------------------------------------------------------------------------
# check: parity with chart's C++ model on the files tests/test_reference_parity.cpp writes

# Tolerances (fp32 on the CPU). chart's CPU path runs the same ATen kernels as this file and the
# test measures no difference at all; the bounds leave room for a different summation order. The
# parameter bound is the tightest: the first AdamW step moves a weight by lr * g / (|g| + eps), so
# where a gradient is near eps a rounding-level difference dg moves it by up to lr * dg / eps
# (computing attention with an explicit softmax instead of SDPA here gives up to 5e-7).
TOL = {"logits": 1e-4, "log_rate": 1e-4, "loss": 1e-5, "grad": 1e-5, "param": 1e-6}  # grad: x max(1, max|grad|)


# ---------------------------------------------------------------------------------------------
# The lossless path from Python: a chart checkpoint (or a chart Hugging Face export, dropped time
# features included) loaded as this module, age encoding, time bias and time head and all.

# Llama name (after "model.layers.<i>.") -> chart name (after "layers.<i>."); train/interop/hf_names.cpp
LAYER_NAMES = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn.wq.weight",
               "self_attn.k_proj.weight": "attn.wk.weight", "self_attn.v_proj.weight": "attn.wv.weight",
               "self_attn.o_proj.weight": "attn.wo.weight", "post_attention_layernorm.weight": "mlp_norm.weight",
               "mlp.gate_proj.weight": "mlp.w_gate.weight", "mlp.up_proj.weight": "mlp.w_up.weight",
               "mlp.down_proj.weight": "mlp.w_down.weight"}
TOP_NAMES = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "norm.weight",
             "lm_head.weight": "lm_head.weight"}


def chart_name(hf_name):
    if hf_name in TOP_NAMES:
        return TOP_NAMES[hf_name]
    parts = hf_name.split(".", 3)  # model, layers, i, rest
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in LAYER_NAMES:
        return f"layers.{parts[2]}.{LAYER_NAMES[parts[3]]}"
    raise ValueError(f"{hf_name}: not a tensor chart exports")


def load_checkpoint(path):
    """A chart run dir, checkpoints/step_<N> dir or `chart export` dir -> (ClinicalTransformer in eval
    mode with its weights, the chart config as a dict)."""
    from pathlib import Path

    import yaml
    from safetensors.torch import load_file

    p = Path(path)
    if (p / "checkpoints" / "latest").exists():
        p = p / "checkpoints" / (p / "checkpoints" / "latest").read_text().strip()
    if (p / "trainer_state.yaml").exists():  # a checkpoint: chart's own names
        cfg = yaml.safe_load((p / "config.yaml").read_text())
        weights = load_file(str(p / "model.safetensors"))
    elif (p / "chart_config.yaml").exists():  # an export: Llama names, plus the dropped time features
        cfg = yaml.safe_load((p / "chart_config.yaml").read_text())
        weights = {chart_name(k): v for k, v in load_file(str(p / "model.safetensors")).items()}
        if cfg["model"].get("tie_embeddings", True):
            weights.pop("lm_head.weight", None)
        if (p / "chart_extra.safetensors").exists():
            weights.update(load_file(str(p / "chart_extra.safetensors")))
    else:
        raise SystemExit(f"{p}: neither a chart checkpoint nor a chart export")
    model = ClinicalTransformer(ModelConfig.from_dict(cfg["model"]), weights["tok_emb.weight"].shape[0])
    model.load_state_dict(weights, strict=True)
    return model.eval(), cfg


def load(path):
    from safetensors.torch import load_file  # the Hugging Face reader: chart's files must load in it

    return load_file(str(path))


def check(dirpath):
    from pathlib import Path

    d = Path(dirpath)
    cfg = json.loads((d / "config.json").read_text())
    tc = cfg["train"]
    model = ClinicalTransformer(ModelConfig.from_dict(cfg["model"]), cfg["vocab_size"])
    weights = load(d / "model.safetensors")
    names = [n for n, _ in model.named_parameters()]
    if sorted(weights) != sorted(names):
        print(f"FAIL: parameter names differ: only in chart {sorted(set(weights) - set(names))}, "
              f"only in Python {sorted(set(names) - set(weights))}")
        return 1
    model.load_state_dict(weights, strict=True)
    batch, cpp = load(d / "batch.safetensors"), load(d / "cpp_out.safetensors")
    failures = []

    def compare(what, pairs, tol, relative=False):  # pairs: name -> (python, chart); reports the worst
        diffs, tols = {}, {}
        for n, (a, b) in pairs.items():
            diffs[n] = (a.detach().double() - b.double()).abs().max().item() if a.numel() else 0.0
            tols[n] = tol * max(1.0, b.abs().max().item()) if relative and b.numel() else tol
        worst = max(diffs, key=lambda n: (math.isnan(diffs[n]), diffs[n] / tols[n]))
        ok = all(diffs[n] <= tols[n] for n in diffs)  # NaN fails
        print(f"{'ok  ' if ok else 'FAIL'} {what}: max abs diff {diffs[worst]:.3g} (tol {tols[worst]:.3g})"
              + (f" at {worst}" if len(pairs) > 1 else ""))
        if not ok:
            failures.append(what)

    model.train()
    logits, log_rate = model(batch["tokens"].long(), batch["ages"], batch["segments"])
    total, next_token, time_nll = pretraining_loss(logits, log_rate, batch["targets"].long(), batch["target_dt"])
    compare("logits", {"logits": (logits, cpp["logits"])}, TOL["logits"])
    if (log_rate is None) != ("log_rate" not in cpp):
        print("FAIL log_rate: present on one side only")
        failures.append("log_rate")
    elif log_rate is not None:
        compare("log_rate", {"log_rate": (log_rate, cpp["log_rate"])}, TOL["log_rate"])
    losses = {"total": (total, cpp["loss"]), "next_token": (next_token, cpp["loss_next_token"])}
    if time_nll is not None:
        losses["time"] = (time_nll, cpp["loss_time"])
    compare("loss", losses, TOL["loss"])

    opt = LibTorchAdamW(param_groups(model, tc["weight_decay"], tc["decay"]), tc["lr"],
                        (tc["beta1"], tc["beta2"]), tc["eps"])
    opt.zero_grad()
    total.backward()
    grads = load(d / "cpp_grads.safetensors")
    params = dict(model.named_parameters())
    compare("gradients", {n: (p.grad, grads[n]) for n, p in params.items()}, TOL["grad"], relative=True)
    opt.step()
    after = load(d / "cpp_after_step.safetensors")
    compare("parameters after one AdamW step", {n: (p, after[n]) for n, p in params.items()}, TOL["param"])

    if failures:
        print(f"FAIL: chart's C++ model and the Python reference disagree on {', '.join(failures)}")
        return 1
    print("PASS")
    return 0


# ---------------------------------------------------------------------------------------------
# bench: training steps per second of this model on random packed batches


def random_batch(B, L, vocab, device, gen):
    """Rows of 2-4 packed patients, ages increasing within each, a padded tail, like data/loader.cpp."""
    tokens = torch.randint(4, vocab, (B, L), generator=gen)
    segments = torch.full((B, L), -1, dtype=torch.int32)
    ages = torch.zeros(B, L)
    for r in range(B):
        end = L - int(torch.randint(0, max(1, L // 8), (1,), generator=gen))  # a padded tail
        cuts = sorted(torch.randint(1, max(2, end), (3,), generator=gen).tolist()) + [end]
        start = 0
        for s, end in enumerate(cuts):
            segments[r, start:end] = s
            gaps = torch.rand(end - start, generator=gen) * 0.1  # years between events
            ages[r, start:end] = 20 + 60 * torch.rand(1, generator=gen) + gaps.cumsum(0)
            start = end
        tokens[r, start:] = 0
    same_next = torch.cat([segments[:, 1:] == segments[:, :-1], torch.zeros(B, 1, dtype=torch.bool)], 1)
    same_next &= segments >= 0
    targets = torch.where(same_next, torch.roll(tokens, -1, 1), -1)
    target_dt = torch.where(same_next, (torch.roll(ages, -1, 1) - ages) * 365.25, 0.0)
    return [t.to(device) for t in (tokens, ages, segments, targets, target_dt)]


def bench(args):
    import yaml

    with open(args.config) as f:
        y = yaml.safe_load(f) or {}
    mc = ModelConfig.from_dict(y.get("model") or {})
    tc = {"lr": 1e-3, "weight_decay": 0.1, "decay": ["matrices"], "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
          "grad_clip": 1.0}  # core/config.h's defaults, then the file's train section
    tc.update({k: v for k, v in (y.get("train") or {}).items() if k in tc})
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = device.type == "cuda"  # chart's train.precision=auto: bf16 on a GPU, fp32 on a CPU
    results = {"impl": "python-reference", "config": args.config, "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "precision": "bf16-autocast" if bf16 else "fp32", "threads": torch.get_num_threads(),
               "batch": args.batch, "context": args.context, "vocab": args.vocab, "steps": args.steps,
               "torch": torch.__version__, "load_avg_1m": round(os.getloadavg()[0], 2)}  # a busy machine times slower
    gen = torch.Generator().manual_seed(0)
    batches = [random_batch(args.batch, args.context, args.vocab, device, gen) for _ in range(4)]

    for mode in ["eager"] + (["compile"] if args.compile else []):
        torch.manual_seed(0)
        model = ClinicalTransformer(mc, args.vocab).to(device)
        results["params"] = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(param_groups(model, tc["weight_decay"], tc["decay"]), lr=tc["lr"],
                                betas=(tc["beta1"], tc["beta2"]), eps=tc["eps"], fused=device.type == "cuda")
        fwd = torch.compile(model) if mode == "compile" else model

        def step(i):
            tokens, ages, segments, targets, target_dt = batches[i % len(batches)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, log_rate = fwd(tokens, ages, segments)
            loss = pretraining_loss(logits, log_rate, targets, target_dt)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
            opt.step()
            return loss

        try:
            for i in range(args.warmup):  # compilation, allocator and thread pool warm-up
                step(i)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for i in range(args.steps):
                loss = step(i)
            loss = loss.item()  # waits for the device
            dt = time.perf_counter() - t0
        except Exception as e:  # torch.compile may not work on every machine
            results[mode] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            continue
        results[mode] = {"tokens_per_s": round(args.batch * args.context * args.steps / dt, 1),
                         "ms_per_step": round(1000 * dt / args.steps, 3), "final_loss": round(loss, 4)}
    print(json.dumps(results))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="parity with chart's C++ model on a directory the C++ test wrote")
    c.add_argument("dir")
    b = sub.add_parser("bench", help="time training steps; prints one JSON line")
    b.add_argument("--config", required=True, help="a chart YAML config (its model and train sections)")
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--context", type=int, default=128)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--vocab", type=int, default=1024, help="random tokens are drawn from this vocabulary")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--compile", action="store_true", help="also time the torch.compile'd model")
    args = ap.parse_args()
    return check(args.dir) if args.cmd == "check" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
