"""The clinical attention workload (patients packed into a row, causal within each patient, a
time-decay bias) written the ways PyTorch can run it, beside chart's own operator:

  chart      torch.ops.chart.attention (ops/torch_ops.cpp: kernels/attention.h's function)
  flex       FlexAttention: a block mask for the patient boundaries, a score_mod for the bias
  sdpa       scaled_dot_product_attention with the materialised [B, H, L, L] float mask
  varlen     torch.nn.attention.varlen.varlen_attn over the patients (no bias: it has none)
  formula    the definition in a few lines of tensor math, float64, for the checks

The function (kernels/attention.h):
  out[b,h,i] = sum_j softmax_j(q[b,h,i].k[b,g(h),j] / sqrt(D) + bias[b,h,i,j]) v[b,g(h),j]
  over j <= i in i's patient;  bias = -slopes[h] * log(1 + |age_i - age_j| in days)
Used by scripts/bench_attention_packed.py and tests/torch_ops_check.py.
"""
import math
from dataclasses import dataclass

import torch

DAYS_PER_YEAR = 365.25  # core/time.h


def load_chart_ops(library):
    """Registers torch.ops.chart from the built ops/libchart_ops.so."""
    torch.ops.load_library(library)
    return torch.ops.chart


@dataclass
class Packed:
    q: torch.Tensor         # [B, Hq, L, D]
    k: torch.Tensor         # [B, Hkv, L, D]
    v: torch.Tensor         # [B, Hkv, L, D]
    segments: torch.Tensor  # [B, L] int32, contiguous runs per patient (padding -1 at the end)
    ages: torch.Tensor      # [B, L] float32 years, non-decreasing within a patient
    slopes: torch.Tensor    # [Hq] float32

    def leaves(self):
        return [self.q, self.k, self.v, self.slopes]

    def detached(self):
        return Packed(*(x.detach() for x in (self.q, self.k, self.v, self.segments, self.ages, self.slopes)))


def packed_inputs(batch, heads, kv_heads, length, head_dim, patients, dtype, device, seed=0,
                  padding=0, requires_grad=False):
    """Random inputs of the loader's shape: `patients` patients of unequal length per row (the
    last `padding` positions of the last row are padding), ages rising along each timeline."""
    g = torch.Generator().manual_seed(seed)
    shape = lambda h: (batch, h, length, head_dim)
    q, k, v = (torch.randn(shape(h), generator=g) for h in (heads, kv_heads, kv_heads))
    # Patient boundaries at sorted random cut points: lengths vary as real timelines do.
    segments = torch.empty(batch, length, dtype=torch.int32)
    for b in range(batch):
        cuts = torch.randperm(length - 1, generator=g)[: patients - 1] + 1
        starts = torch.zeros(length, dtype=torch.int32)
        starts[cuts] = 1
        segments[b] = starts.cumsum(0).to(torch.int32)
    if padding:
        segments[-1, length - padding:] = -1
    ages = 30 + (torch.rand(batch, length, generator=g) * 0.02).cumsum(1)
    slopes = torch.rand(heads, generator=g) * 0.5
    t = [x.to(device=device, dtype=dtype) for x in (q, k, v)]
    p = Packed(*t, segments.to(device), ages.to(device), slopes.to(device))
    if requires_grad:
        for x in p.leaves():
            x.requires_grad_()
    return p


def allowed_mask(segments):
    """[B, 1, L, L] bool: causal and within one patient."""
    L = segments.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=segments.device).tril()
    return ((segments[:, :, None] == segments[:, None, :]) & causal)[:, None]


def time_decay_bias(ages, slopes):
    days = ages.float() * DAYS_PER_YEAR
    gap = (days[:, :, None] - days[:, None, :]).abs()
    return -slopes.float().view(1, -1, 1, 1) * torch.log1p(gap)[:, None]


def chart_attention(ops, p, mode="kernels"):
    return ops.attention(p.q, p.k, p.v, p.segments, p.ages, p.slopes, mode)


def sdpa_attention(p):
    mask = time_decay_bias(p.ages, p.slopes).masked_fill(~allowed_mask(p.segments), -math.inf).to(p.q.dtype)
    return torch.nn.functional.scaled_dot_product_attention(p.q, p.k, p.v, attn_mask=mask,
                                                            enable_gqa=p.k.shape[1] != p.q.shape[1])


def formula_attention(p):
    """The definition, float64, no library attention: the oracle of the checks."""
    q, k, v = (x.double() for x in (p.q, p.k, p.v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    days = p.ages.double() * DAYS_PER_YEAR
    bias = -p.slopes.double().view(1, -1, 1, 1) * torch.log1p((days[:, :, None] - days[:, None, :]).abs())[:, None]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    scores = scores.masked_fill(~allowed_mask(p.segments), -math.inf)
    return torch.softmax(scores, -1) @ v


def flex_attention_fn(p, compile=True):
    """FlexAttention for these inputs' segments and ages: the block mask is built once (as a
    training step would reuse it for the batch); returns a function of the Packed inputs."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    seg, days = p.segments, p.ages.float() * DAYS_PER_YEAR
    B, L = seg.shape

    def same_patient_causal(b, h, qi, ki):
        return (seg[b, qi] == seg[b, ki]) & (ki <= qi)

    block_mask = create_block_mask(same_patient_causal, B, None, L, L, device=seg.device)
    flex = torch.compile(flex_attention, dynamic=False) if compile else flex_attention
    gqa = p.k.shape[1] != p.q.shape[1]

    def run(x):
        def time_decay(score, b, h, qi, ki):
            return score - x.slopes[h] * torch.log1p((days[b, qi] - days[b, ki]).abs())
        return flex(x.q, x.k, x.v, score_mod=time_decay, block_mask=block_mask, enable_gqa=gqa)
    return run


def varlen_inputs(p):
    """(q, k, v as [T, H, D], cumulative patient starts) for varlen_attn; padding dropped, KV
    heads repeated (it has no grouped-query form). Built outside the timed region."""
    B, L = p.segments.shape
    seg = p.segments.cpu()
    keep = (seg >= 0).reshape(-1)
    ids = (seg + torch.arange(B)[:, None] * (L + 1)).reshape(-1)[keep]  # a patient id unique across rows
    counts = torch.unique_consecutive(ids, return_counts=True)[1]
    cu = torch.zeros(len(counts) + 1, dtype=torch.int32)
    cu[1:] = counts.cumsum(0)
    group = p.q.shape[1] // p.k.shape[1]
    flat = lambda x: x.transpose(1, 2).reshape(B * L, x.shape[1], x.shape[3])[keep.to(x.device)].detach().contiguous()
    q, k, v = flat(p.q), flat(p.k.repeat_interleave(group, 1)), flat(p.v.repeat_interleave(group, 1))
    return q, k, v, cu.to(p.q.device), int(counts.max())


def varlen_attention(q, k, v, cu, longest):
    from torch.nn.attention.varlen import varlen_attn
    return varlen_attn(q, k, v, cu, cu, longest, longest, window_size=(-1, 0))
