"""Packed-patient attention benchmark (GPU): chart's kernels against FlexAttention, SDPA with the
materialised mask and varlen attention, in one process on the same bf16 tensors (the clinical
workload: many patients per row, causal within each, the time-decay bias; base.yaml's 12 heads).
First it checks that they compute the same function (forward and gradients against the float64
formula), then it times forward and forward+backward. Prints markdown (docs/perf.md).

  python scripts/bench_attention_packed.py build-gpu/ops/libchart_ops.so [--quick]

What each column excludes, so that no ratio flatters chart: the SDPA mask and the Flex block
mask are built once, outside the timed region (a training step would build both per batch: the
block mask's cost is its own column); varlen gets no bias (it has none), so it is a lower bound
on what a bias would cost there. Ratios are the other's time over chart's best (> 1: chart faster).
Targets (issue 13): >= 1.2x FlexAttention, >= 3x SDPA with the mask.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import packed_attention as pa  # noqa: E402


DEVICE, MODE = "cuda", "kernels"  # mode kernels: an error, never a silent fallback to the reference


def synchronize():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, iters=10, warmup=3, what=""):
    """Median wall milliseconds over `iters` synchronised runs after warm-up; None (and a comment
    in the output saying why) if it raised: a backend that refuses these inputs, or memory."""
    try:
        for _ in range(warmup):
            fn()
        synchronize()
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            synchronize()
            times.append(1e3 * (time.perf_counter() - start))
        return sorted(times)[len(times) // 2]
    except Exception as e:
        print(f"<!-- {what}: {type(e).__name__}: {str(e)[:300]} -->", flush=True)
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        return None


def forward_and_backward(fn, inputs, dout):
    def run():
        out = fn(inputs)
        out.backward(dout)
    return run


def with_sm90(fn, on):
    """fn with CHART_ATTENTION_SM90 set (the wgmma forward), restored after."""
    def run(*a):
        old = os.environ.get("CHART_ATTENTION_SM90")
        os.environ["CHART_ATTENTION_SM90"] = "1" if on else "0"
        try:
            return fn(*a)
        finally:
            os.environ.pop("CHART_ATTENTION_SM90") if old is None else os.environ.__setitem__("CHART_ATTENTION_SM90", old)
    return run


def best_sdpa(run, backends):
    """The fastest SDPA backend that accepts a float mask, and its name."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    best = (None, "none")
    for name in backends:
        with sdpa_kernel(getattr(SDPBackend, name)):
            t = median_ms(run, iters=5, what=f"sdpa {name}")
        if t is not None and (best[0] is None or t < best[0]):
            best = (t, name.lower())
    return best


def relative_error(got, want):
    return float((got.detach().double() - want.detach().double()).abs().max() / want.detach().double().abs().max())


def agreement(ops, head_dim, hopper, length):
    """Max relative error against the float64 formula, forward and each gradient."""
    p = pa.packed_inputs(batch=2, heads=12, kv_heads=12, length=length, head_dim=head_dim, patients=length // 64,
                         dtype=torch.bfloat16, device=DEVICE, requires_grad=True)
    dout = torch.randn_like(p.q)
    want = pa.formula_attention(p)
    want_grads = torch.autograd.grad(want, p.leaves(), dout.double())
    rows = [("chart sm80", with_sm90(lambda x: pa.chart_attention(ops, x, MODE), False))]
    if hopper:
        rows.append(("chart sm90", with_sm90(lambda x: pa.chart_attention(ops, x, MODE), True)))
    rows += [("flex", pa.flex_attention_fn(p)), ("sdpa + mask", pa.sdpa_attention)]
    lines = []
    for name, fn in rows:
        try:
            out = fn(p)
            grads = torch.autograd.grad(out, p.leaves(), dout)
            errs = [relative_error(out, want)] + [relative_error(g, w) for g, w in zip(grads, want_grads)]
            lines.append(f"| {head_dim} | {name} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")
        except Exception as e:
            lines.append(f"| {head_dim} | {name} | failed: {type(e).__name__}: {str(e)[:120]} | | | | |")
    return lines


def time_shape(ops, L, D, patients, hopper):
    B, H = max(1, 16384 // L), 12
    p = pa.packed_inputs(batch=B, heads=H, kv_heads=H, length=L, head_dim=D, patients=patients,
                         dtype=torch.bfloat16, device=DEVICE, seed=L + D, requires_grad=True)
    frozen = p.detached()
    dout = torch.randn_like(p.q)
    row = {"shape": f"| {L} | {D} | {B} x {H} | {patients} |"}

    chart = lambda x: pa.chart_attention(ops, x, MODE)
    row["chart sm80"] = (median_ms(with_sm90(lambda: chart(frozen), False), what="chart sm80 fwd"),
                         median_ms(with_sm90(forward_and_backward(chart, p, dout), False), what="chart sm80 fwd+bwd"))
    row["chart sm90"] = ((median_ms(with_sm90(lambda: chart(frozen), True), what="chart sm90 fwd"),
                          median_ms(with_sm90(forward_and_backward(chart, p, dout), True), what="chart sm90 fwd+bwd"))
                         if hopper else (None, None))

    start = time.perf_counter()
    flex = pa.flex_attention_fn(p)
    flex(frozen)  # compiles
    synchronize()
    compile_s = time.perf_counter() - start
    flex_both = median_ms(forward_and_backward(flex, p, dout), what="flex fwd+bwd")
    if flex_both is None:  # no gradient for a tensor the score_mod captures: time it without dslopes
        q_only = pa.Packed(p.q, p.k, p.v, p.segments, p.ages, p.slopes.detach())
        flex_both = median_ms(forward_and_backward(pa.flex_attention_fn(q_only), q_only, dout), what="flex fwd+bwd, no dslopes")
    row["flex"] = (median_ms(lambda: flex(frozen), what="flex fwd"), flex_both)
    row["block mask"] = median_ms(lambda: pa.flex_attention_fn(p, compile=False), iters=5, warmup=1, what="block mask")

    mask = pa.time_decay_bias(p.ages, p.slopes.detach()).masked_fill(~pa.allowed_mask(p.segments), float("-inf")).to(p.q.dtype)
    sdpa = lambda x: torch.nn.functional.scaled_dot_product_attention(x.q, x.k, x.v, attn_mask=mask)
    row["sdpa"] = (best_sdpa(lambda: sdpa(frozen), ["EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]),
                   best_sdpa(forward_and_backward(sdpa, p, dout), ["EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]))
    del mask
    vq, vk, vv, cu, longest = pa.varlen_inputs(p)
    vq_g, vk_g, vv_g = (x.clone().requires_grad_() for x in (vq, vk, vv))
    dv_out = torch.randn_like(vq)
    row["varlen"] = (median_ms(lambda: pa.varlen_attention(vq, vk, vv, cu, longest), what="varlen fwd"),
                     median_ms(lambda: pa.varlen_attention(vq_g, vk_g, vv_g, cu, longest).backward(dv_out),
                               what="varlen fwd+bwd"))
    row["compile s"] = compile_s
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return row


def show(ms):
    return "n/a" if ms is None else f"{ms:.2f}"


def ratio(other, ours):
    return "n/a" if other is None or ours is None else f"{other / ours:.2f}x"


def table(rows, which):
    """which 0: forward, 1: forward+backward."""
    i = which
    print(f"\n### Packed patients + time-decay bias, bf16, {'forward' if i == 0 else 'forward+backward'} (ms)\n")
    print("| L | D | B x H | patients/row | chart sm80 | chart sm90 | flex (compiled) | sdpa + mask (backend) | "
          "varlen, no bias | vs flex | vs sdpa + mask |" + (" flex block mask | flex compile s |" if i == 0 else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if i == 0 else ""))
    for r in rows:
        ours = [t for t in (r["chart sm80"][i], r["chart sm90"][i]) if t is not None]
        best = min(ours) if ours else None
        sdpa_ms, backend = r["sdpa"][i]
        line = (f"{r['shape']} {show(r['chart sm80'][i])} | {show(r['chart sm90'][i])} | {show(r['flex'][i])} | "
                f"{show(sdpa_ms)} ({backend}) | {show(r['varlen'][i])} | {ratio(r['flex'][i], best)} | {ratio(sdpa_ms, best)} |")
        if i == 0:
            line += f" {show(r['block mask'])} | {r['compile s']:.0f} |"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("library", help="the built ops/libchart_ops.so")
    ap.add_argument("--quick", action="store_true", help="one length per head dim (a first look)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run every step at toy sizes on the CPU (the reference path; Flex forward only): checks "
                         "this script before a GPU session, measures nothing")
    args = ap.parse_args()
    global DEVICE, MODE
    if args.cpu_smoke:
        DEVICE, MODE = "cpu", "auto"
    elif not torch.cuda.is_available():
        sys.exit("bench_attention_packed: no CUDA GPU (tests/torch_ops_check.py is the CPU check; --cpu-smoke "
                 "checks this script)")
    ops = pa.load_chart_ops(args.library)
    import torch._dynamo
    torch._dynamo.config.recompile_limit = 64  # one compile per shape (dynamic=False)
    hopper = DEVICE == "cuda" and torch.cuda.get_device_properties(0).major == 9
    name = torch.cuda.get_device_properties(0).name if DEVICE == "cuda" else "CPU (smoke run: no timing means anything)"
    print(f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    probe = torch.empty(1, 12, 16, 64, dtype=torch.bfloat16, device=DEVICE)
    print(f"\n{ops.attention_path(probe, MODE)}")

    check_length = 128 if args.cpu_smoke else 2048
    print(f"\n### Agreement with the float64 formula, L={check_length}, {check_length // 64} patients/row "
          "(max relative error)\n")
    print("| D | implementation | forward | dq | dk | dv | dslopes |\n|---|---|---|---|---|---|---|")
    for D in (64, 128):
        print("\n".join(agreement(ops, D, hopper, check_length)), flush=True)

    lengths = [256] if args.cpu_smoke else [2048] if args.quick else [2048, 4096, 8192]
    rows = []
    for D in (64, 128):
        for L in lengths:
            rows.append(time_shape(ops, L, D, L // 64, hopper))
            print(f"<!-- L={L} D={D} done -->", flush=True)
    table(rows, 0)
    table(rows, 1)


if __name__ == "__main__":
    main()
