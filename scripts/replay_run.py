"""A chart run replayed in PyTorch: the plain-PyTorch model of scripts/reference_model.py trained on
the batches the run recorded (train.save_batches=N), from the weights it started with, with chart's
schedule, clipping and PyTorch's own AdamW (fused on a GPU), eager or torch.compile'd. Compares each
logged step's loss with the run's metrics.jsonl and times the steps (tokens/s after warm-up, peak
GPU memory); prints one JSON line.

  python scripts/replay_run.py RUN_DIR [--mode eager|compile] [--device auto|cpu|cuda] [--tolerance T]
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import yaml

from reference_model import ClinicalTransformer, ModelConfig, load, param_groups, pretraining_loss


def learning_rate(tc, step):
    """train/pretrain/optimizer.cpp's learning_rate(): the rate of the step after `step` steps."""
    lr, warmup = tc["lr"], tc["warmup_steps"]
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if tc["schedule"] == "constant":
        return lr
    t = min(1.0, max(0.0, (step - warmup) / max(1, tc["steps"] - warmup)))
    if tc["schedule"] == "cosine":
        return tc["min_lr"] + 0.5 * (lr - tc["min_lr"]) * (1 + math.cos(math.pi * t))
    stable = 1.0 - tc["decay_fraction"]  # wsd
    if t <= stable or tc["decay_fraction"] <= 0:
        return lr
    return lr + (tc["min_lr"] - lr) * (t - stable) / tc["decay_fraction"]


def recorded_steps(run):
    """[(step, batch dict)] from run/batches/step_<N>.rank<r>.safetensors, each step's ranks'
    rows stacked in rank order (the loss divides by the step's targets over every rank)."""
    by_step = {}
    for f in sorted(run.glob("batches/step_*.rank*.safetensors")):
        step, rank = f.name.split(".")[0].split("_")[1], f.name.split(".")[1][4:]
        by_step.setdefault(int(step), []).append((int(rank), load(f)))
    steps = []
    for step in sorted(by_step):
        parts = [b for _, b in sorted(by_step[step], key=lambda x: x[0])]
        steps.append((step, {k: torch.cat([p[k] for p in parts]) for k in parts[0]}))
    return steps


def replay(args):
    run = Path(args.run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    mc, tc = ModelConfig.from_dict(cfg["model"]), dict(cfg["train"])
    for k in ("lr", "min_lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip", "decay_fraction"):
        tc[k] = float(tc[k])  # PyYAML reads 1e-08 (no dot) as a string
    if mc.dropout > 0:
        raise SystemExit("replay: model.dropout > 0: chart's dropout masks cannot be replayed")
    weights_files = sorted(run.glob("batches/weights_step_*.safetensors"))
    steps = recorded_steps(run)
    if not weights_files or not steps:
        raise SystemExit(f"{run / 'batches'}: no recorded weights or batches; train with --set train.save_batches=N")
    start = int(weights_files[0].name.split("_")[2].split(".")[0])
    steps = [(s, b) for s, b in steps if s > start]
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = tc["precision"] == "bf16" or (tc["precision"] == "auto" and device.type == "cuda")
    weights = load(weights_files[0])
    model = ClinicalTransformer(mc, weights["tok_emb.weight"].shape[0]).to(device)
    model.load_state_dict({k: v.to(device) for k, v in weights.items()}, strict=True)
    model.train()
    # PyTorch's own AdamW at its fastest (fused on a GPU): the same update as LibTorch's, up to rounding.
    opt = torch.optim.AdamW(param_groups(model, tc["weight_decay"], tc["decay"]), lr=tc["lr"],
                            betas=(tc["beta1"], tc["beta2"]), eps=tc["eps"], fused=device.type == "cuda")
    fwd = torch.compile(model) if args.mode == "compile" else model
    batches = [(s, {k: v.to(device) for k, v in b.items()}) for s, b in steps]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    losses, t0 = {}, None
    for i, (step, b) in enumerate(batches):
        if i == min(args.warmup, len(batches) - 1):  # compilation and allocator warm-up are not timed
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0, timed = time.perf_counter(), len(batches) - i
        for g in opt.param_groups:
            g["lr"] = learning_rate(tc, step - 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, log_rate = fwd(b["tokens"].long(), b["ages"], b["segments"])
        total, next_token, _ = pretraining_loss(logits, log_rate, b["targets"].long(), b["target_dt"])
        opt.zero_grad(set_to_none=True)
        total.backward()
        if tc["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        losses[step] = next_token.detach()  # read at the end: no host sync inside the loop
    losses = {s: float(v) for s, v in losses.items()}
    dt = time.perf_counter() - t0

    chart = {}
    with open(run / "metrics.jsonl") as f:
        for r in map(json.loads, f):
            if r.get("split") == "train" and r["step"] in losses:
                chart[r["step"]] = r
    diffs = {s: abs(losses[s] - chart[s]["loss"]) for s in chart}
    chart_tps = sorted(r["tokens_per_s"] for s, r in chart.items() if s != min(chart))  # the first interval warms up
    positions = batches[0][1]["tokens"].numel()
    result = {"impl": f"pytorch-{args.mode}", "run": str(run), "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "precision": "bf16-autocast" if bf16 else "fp32", "torch": torch.__version__,
              "steps": len(batches), "timed_steps": timed, "tokens_per_s": round(positions * timed / dt, 1),
              "ms_per_step": round(1000 * dt / timed, 3),
              "chart_tokens_per_s": chart_tps[len(chart_tps) // 2] if chart_tps else None,
              "peak_gpu_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None,
              "compared_steps": len(diffs), "max_loss_diff": max(diffs.values()) if diffs else None,
              "losses": {s: round(losses[s], 5) for s in sorted(chart)},
              "chart_losses": {s: round(chart[s]["loss"], 5) for s in sorted(chart)}}
    print(json.dumps(result))
    if not diffs:
        print("replay: no logged train step of metrics.jsonl was replayed", file=sys.stderr)
        return 1
    if args.tolerance is not None and result["max_loss_diff"] > args.tolerance:
        worst = max(diffs, key=diffs.get)
        print(f"FAIL: loss differs by {diffs[worst]:.3g} at step {worst} (tolerance {args.tolerance})", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a run.dir trained with train.save_batches=N (config.yaml, metrics.jsonl, batches/)")
    ap.add_argument("--mode", default="eager", choices=["eager", "compile"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--warmup", type=int, default=3, help="steps run before the clock starts")
    ap.add_argument("--tolerance", type=float, help="exit 1 when a logged loss differs by more")
    return replay(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
