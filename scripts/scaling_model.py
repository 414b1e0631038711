#!/usr/bin/env python3
"""Step time of data-parallel chart training: compute + the communication backward does not hide.

docs/scaling.md derives the model and checks it against measured runs. Standard library only.

  python3 scripts/scaling_model.py                          # the docs' table: base and large, 8..512 GPUs
  python3 scripts/scaling_model.py --params 3.2e6 --compute-s 0.80 --bus-gbs 1.1 --gpus 2 --gpus-per-node 2
                                                             # one configuration (e.g. the 2-rank CPU check)
Model, per optimizer step on W ranks (ring all-reduce, the algorithm NCCL and Gloo use for large
messages; bus bandwidth as nccl-tests reports it):
  compute      T_c = 6 N_mat + 12 L d ctx FLOPs per token x tokens per rank / (peak x MFU)
               (or a measured --compute-s), of which backward is 2/3
  all-reduce   T_ar = 2 (W-1)/W x N x bytes_per_grad / B_bus + n_buckets x 2 ceil(log2 W) x latency
  exposed      max(0, T_ar - T_backward) + the last bucket (it starts when backward ends)
  ZeRO-1       gradients reduce-scattered instead (half the ring: (W-1)/W x N x bytes_per_grad / B_bus,
               overlapped with backward as the all-reduce is), then + (W-1)/W x N x 4 bytes / B_bus
               for all-gathering the updated parameters (after the step: not hidden)
  B_bus        intra-node bandwidth while W <= gpus_per_node, else the inter-node one.
"""
import argparse
import math


def step_time(N, tokens, W, *, flops_per_token=None, compute_s=None, peak=989e12, mfu=0.4,
              bus_intra=360e9, bus_inter=45e9, gpus_per_node=8, grad_bytes=4, bucket_mb=25,
              latency=30e-6, zero1=False):
    t_c = compute_s if compute_s is not None else flops_per_token * tokens / (peak * mfu)
    t_bwd = 2.0 / 3.0 * t_c
    if W == 1:
        return dict(compute=t_c, allreduce=0.0, exposed=0.0, total=t_c)
    bus = bus_intra if W <= gpus_per_node else bus_inter
    size = N * grad_bytes
    bucket = min(size, bucket_mb * 2**20)
    n_buckets = max(1, -(-size // bucket))
    ring = lambda nbytes: 2.0 * (W - 1) / W * nbytes / bus
    hop = latency * 2 * math.ceil(math.log2(W))  # start-up of one collective (tree-like at scale)
    if zero1:  # a reduce-scatter is half a ring all-reduce
        ring = lambda nbytes: (W - 1) / W * nbytes / bus
    t_ar = ring(size) + n_buckets * hop
    exposed = max(0.0, t_ar - t_bwd) + ring(bucket) + hop
    if zero1:
        exposed += (W - 1) / W * N * 4 / bus + hop  # every bucket in flight at once
    return dict(compute=t_c, allreduce=t_ar, exposed=exposed, total=t_c + exposed)


MODELS = {
    # name: (parameters, matrix parameters, layers, d_model, context, tokens per GPU per step)
    "base": (45e6, 43e6, 6, 768, 2048, 16 * 2048),
    "large": (930e6, 900e6, 20, 2048, 4096, 4 * 4096),
}


def table(args):
    print("| model | GPUs | tokens/step | compute ms | all-reduce ms | exposed ms | step ms | scaling efficiency |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (N, N_mat, L, d, ctx, tok) in MODELS.items():
        fpt = 6 * N_mat + 12 * L * d * ctx
        for W in (8, 16, 32, 64, 128, 256, 512):
            r = step_time(N, tok, W, flops_per_token=fpt, peak=args.peak_tflops * 1e12, mfu=args.mfu,
                          bus_intra=args.bus_intra_gbs * 1e9, bus_inter=args.bus_inter_gbs * 1e9,
                          gpus_per_node=args.gpus_per_node, grad_bytes=args.grad_bytes,
                          bucket_mb=args.bucket_mb, latency=args.latency_us * 1e-6, zero1=args.zero1)
            print(f"| {name} | {W} | {tok * W / 1e6:.2f}M | {r['compute'] * 1e3:.1f} | {r['allreduce'] * 1e3:.1f} | "
                  f"{r['exposed'] * 1e3:.1f} | {r['total'] * 1e3:.1f} | {r['compute'] / r['total']:.0%} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=float, help="one configuration: parameters N (else the docs' table)")
    p.add_argument("--flops-per-token", type=float, help="default 6 N")
    p.add_argument("--tokens", type=float, default=32768, help="tokens per rank per step")
    p.add_argument("--compute-s", type=float, help="measured compute seconds per step (1 rank, same tokens)")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--bus-gbs", type=float, help="one configuration: bus bandwidth GB/s")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="H100 SXM dense bf16")
    p.add_argument("--mfu", type=float, default=0.4)
    p.add_argument("--bus-intra-gbs", type=float, default=360.0, help="NVLink all-reduce bus bandwidth")
    p.add_argument("--bus-inter-gbs", type=float, default=45.0, help="per GPU across nodes (400 Gb/s NIC per GPU)")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--grad-bytes", type=int, default=4, help="4: dist.reduce_dtype=fp32, 2: bf16")
    p.add_argument("--bucket-mb", type=float, default=25)
    p.add_argument("--latency-us", type=float, default=30)
    p.add_argument("--zero1", action="store_true")
    args = p.parse_args()
    if args.params is None:
        table(args)
        return
    bus = (args.bus_gbs or args.bus_intra_gbs) * 1e9
    r = step_time(args.params, args.tokens, args.gpus, flops_per_token=args.flops_per_token or 6 * args.params,
                  compute_s=args.compute_s, peak=args.peak_tflops * 1e12, mfu=args.mfu, bus_intra=bus, bus_inter=bus,
                  gpus_per_node=max(args.gpus, args.gpus_per_node), grad_bytes=args.grad_bytes,
                  bucket_mb=args.bucket_mb, latency=args.latency_us * 1e-6, zero1=args.zero1)
    print(" ".join(f"{k}={v * 1e3:.1f}ms" for k, v in r.items()))


if __name__ == "__main__":
    main()
