"""The tables scripts/gpu_check.sh prints from what its train phase left in OUT_DIR:

  python scripts/gpu_check_report.py kernels OUT_DIR   chart's kernels (mma.sync, wgmma forward) vs its
                                                       reference attention: loss and tokens/s per logged step
  python scripts/gpu_check_report.py pytorch OUT_DIR   chart vs the same model in PyTorch eager and
                                                       torch.compile on the same recorded batches

Each prints markdown, then one last line for the summary: "max loss difference X" or
"chart kernels / torch.compile = Rx, max loss difference Y" ("n/a: why" when it cannot say).
"""
import json
import os
import statistics
import sys

BF16_TOLERANCE = 0.05


def train_rows(out, path):
    """{step: metrics row} of metrics_<path>.jsonl's train lines; {} when absent."""
    try:
        with open(os.path.join(out, f"metrics_{path}.jsonl")) as f:
            return {r["step"]: r for r in map(json.loads, f) if r["split"] == "train"}
    except OSError:
        return {}


def steady_tokens_per_s(rows):
    """Median tokens/s of the logged intervals after the first (which holds start-up and warm-up)."""
    later = [rows[s]["tokens_per_s"] for s in sorted(rows)[1:]]
    return statistics.median(later) if later else None


def kernels(out):
    a, b, c = train_rows(out, "cuda"), train_rows(out, "reference"), train_rows(out, "sm90")
    print("| step | loss (kernels) | loss (sm90 fwd) | loss (reference) | diff | diff sm90 | tokens/s kernels | "
          "tokens/s sm90 | tokens/s reference | MFU kernels |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = None
    for s in sorted(set(a) & set(b)):
        d = abs(a[s]["loss"] - b[s]["loss"])
        d90 = abs(c[s]["loss"] - b[s]["loss"]) if s in c else None
        worst = max(x for x in (worst, d, d90) if x is not None)
        f = lambda r, k, fmt: format(r[s][k], fmt) if s in r else "n/a"
        print(f"| {s} | {a[s]['loss']:.4f} | {f(c, 'loss', '.4f')} | {b[s]['loss']:.4f} | {d:.4f} | "
              f"{'n/a' if d90 is None else format(d90, '.4f')} | {a[s]['tokens_per_s']:.0f} | "
              f"{f(c, 'tokens_per_s', '.0f')} | {b[s]['tokens_per_s']:.0f} | {a[s].get('mfu', 0):.3f} |")
    print(f"\nbf16 tolerance: {BF16_TOLERANCE}")
    print("n/a: no step logged by both runs" if worst is None else f"max loss difference {worst:.4f}")
    return 0 if worst is not None and worst < BF16_TOLERANCE else 1


def replay(out, mode):
    try:
        with open(os.path.join(out, f"replay_{mode}.json")) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def pytorch(out):
    py = {m: replay(out, m) for m in ("eager", "compile")}
    best = py["compile"].get("tokens_per_s")
    print("| implementation | tokens/s | peak GPU GiB | MFU | vs torch.compile | max loss diff vs chart (same batches) |")
    print("|---|---|---|---|---|---|")
    for path in ("cuda", "sm90", "reference"):
        rows = train_rows(out, path)
        tps = steady_tokens_per_s(rows)
        if tps is None:
            continue
        last = rows[max(rows)]
        ratio = f"{tps / best:.2f}x" if best else "n/a"
        print(f"| chart, {path} | {tps:.0f} | {last.get('peak_gpu_gib') or 0:.2f} | {last.get('mfu') or 0:.3f} | {ratio} | |")
    for m, r in py.items():
        if "tokens_per_s" not in r:
            print(f"| PyTorch {m} | failed (replay_{m}.err) | | | | |")
            continue
        print(f"| PyTorch {m} | {r['tokens_per_s']:.0f} | {r['peak_gpu_gib'] or 0:.2f} | | "
              f"{r['tokens_per_s'] / best:.2f}x | {r['max_loss_diff']:.4f} |")
    print("\ntarget: chart (kernels) >= 1.3x torch.compile; losses within bf16 tolerance of chart's on the same batches")
    ours = steady_tokens_per_s(train_rows(out, "cuda"))
    if ours is None or not best:
        print(f"n/a: {'no kernels run' if ours is None else 'no torch.compile replay'}")
        return 1
    print(f"chart kernels / torch.compile = {ours / best:.2f}x, max loss difference {py['compile']['max_loss_diff']:.4f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("kernels", "pytorch"):
        sys.exit(__doc__)
    sys.exit({"kernels": kernels, "pytorch": pytorch}[sys.argv[1]](sys.argv[2]))
