"""Hugging Face transformers generate() on chart's lossless export, the zero-shot workload of
tests/bench_generate.cpp: the same prompts, `samples` sampled continuations of each, exactly
`new_tokens` tokens each (no EOS), prompts batched so that batch x samples ~ `slots` rows.

  python scripts/bench_hf_generate.py EXPORT_DIR PROMPTS --samples 20 --new-tokens 32 --slots 256

--no-cache runs generate(use_cache=False): every new token recomputes the whole sequence, as
ETHOS's sampler does (it keeps no KV cache).

Prints one line: tokens generated, seconds, tokens/s, patients/s, peak resident memory during
generation and its growth over the loaded model (scripts/bench_generate.sh).
"""
import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def status_mib(key):  # /proc/self/status: VmRSS now, VmHWM the peak since the last reset
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_mib():  # writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mib("VmRSS")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("prompts")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--slots", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true", help="recompute the whole sequence per token (ETHOS)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    prompts = [[int(t) for t in line.split()] for line in open(args.prompts) if line.strip()]
    kwargs = {"dtype": torch.float32} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(args.export_dir, **kwargs).eval()
    model.generation_config.eos_token_id = None  # no EOS: every row samples exactly new_tokens
    per_batch = max(1, args.slots // args.samples)
    generated = 0
    rss0 = reset_peak_mib()
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(prompts), per_batch):
            batch = prompts[b:b + per_batch]
            width = max(map(len, batch))
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for i, p in enumerate(batch):  # left padding, as generate() wants for decoder-only models
                ids[i, width - len(p):] = torch.tensor(p)
                mask[i, width - len(p):] = 1
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, temperature=1.0,
                                 num_return_sequences=args.samples, max_new_tokens=args.new_tokens,
                                 pad_token_id=0, bad_words_ids=[[0], [1]], use_cache=not args.no_cache)
            generated += (out.size(1) - width) * out.size(0)
    secs = time.perf_counter() - t0
    peak = status_mib("VmHWM")
    name = "hf-no-cache" if args.no_cache else "hf-generate"
    print(f"bench_generate {name:<10} fixed        examples {len(prompts)} samples {args.samples} tokens {generated} "
          f"seconds {secs:.2f} tokens/s {generated / secs:.0f} patients/s {len(prompts) / secs:.3f} "
          f"peak_rss_mib {peak:.0f} (+{peak - rss0:.0f}) (transformers {transformers.__version__})")


if __name__ == "__main__":
    main()
