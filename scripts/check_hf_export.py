"""Checks a `chart export --format hf` directory from Python, as a researcher would load it.

  python scripts/check_hf_export.py EXPORT_DIR BATCH [--checkpoint CKPT] [--tol 1e-4]

BATCH is a safetensors file holding `tokens` [B, L] (int64), `mask` [B, L] (1 where a token is
real, 0 for padding), `ages` [B, L] and `segments` [B, L], and `logits` [B, L, V]: chart's own
forward on that batch (tests/test_export.cpp writes it). The script
  1. loads EXPORT_DIR with transformers' AutoModelForCausalLM (fp32) and requires that no weight
     is missing, unexpected or of the wrong shape;
  2. runs it on (tokens, attention_mask=mask) with positions 0.. and compares the logits at the
     real tokens with chart's: max abs diff < tol;
  3. loads its tokenizer with AutoTokenizer: every token of vocab.json has chart's id, pad/bos/unk
     are 0/1/2, and whitespace-joined tokens encode to their ids;
  4. with --checkpoint, also loads the checkpoint with scripts/reference_model.py (the lossless
     path, time features included) and compares its logits the same way;
  5. with --resave DIR, writes the loaded model with save_pretrained into DIR, and sharded into
     DIR-sharded (small shards, as a large model is saved) (what a researcher does after
     changing it in Python), for chart to import back.
Prints one line per check with the measured difference; exits 0 when all pass, 1 otherwise.
"""
import argparse
import json
import os
import sys

import torch

# A local directory needs no network: never let the hub client try (CI reaches PyPI only).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def check_tokenizer(export_dir, failures):
    """AutoTokenizer gives chart's ids: every token of vocab.json, special tokens, and text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(export_dir)
    vocab = json.load(open(os.path.join(export_dir, "vocab.json")))
    wrong = [t for t, i in vocab.items() if tok.convert_tokens_to_ids(t) != i]
    plain = [t for t in vocab if " " not in t][3:13]
    encoded = tok(" ".join(plain))["input_ids"]
    specials = (tok.pad_token_id, tok.bos_token_id, tok.unk_token_id)
    ok = not wrong and encoded == [vocab[t] for t in plain] and specials == (0, 1, 2) and len(tok) == len(vocab)
    print(f"{'ok  ' if ok else 'FAIL'} AutoTokenizer ({type(tok).__name__}): {len(tok)} tokens, "
          f"{len(wrong)} with another id, pad/bos/unk {specials}, text of 10 tokens -> {encoded[:4]}...")
    if not ok:
        failures.append("tokenizer")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("batch")
    ap.add_argument("--checkpoint", help="also check scripts/reference_model.py on this chart checkpoint")
    ap.add_argument("--resave", help="save_pretrained the loaded model into this directory")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    try:
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:
        print(f"FAIL: transformers is not installed ({e}); pip install -r scripts/requirements.txt")
        return 1
    from safetensors.torch import load_file

    batch = load_file(args.batch)
    tokens, mask, chart_logits = batch["tokens"].long(), batch["mask"].long(), batch["logits"].double()
    real = mask.bool()
    failures = []

    def compare(what, logits):
        diff = (logits.double() - chart_logits).abs()[real].max().item()
        ok = diff < args.tol
        print(f"{'ok  ' if ok else 'FAIL'} {what}: max abs diff {diff:.3g} over {int(real.sum())} tokens (tol {args.tol:g})")
        if not ok:
            failures.append(what)

    config = AutoConfig.from_pretrained(args.export_dir)
    print(f"transformers {transformers.__version__}: {type(config).__name__}, "
          f"chart export of step {config.chart['step']}, dropped: {config.chart['dropped'] or 'nothing'}")
    kwargs = {"dtype": torch.float32} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": torch.float32}
    model, info = AutoModelForCausalLM.from_pretrained(args.export_dir, output_loading_info=True, **kwargs)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        print(f"FAIL loading: {json.dumps({k: sorted(map(str, v)) for k, v in bad.items()})}")
        failures.append("loading")
    model.eval()
    with torch.no_grad():
        positions = torch.arange(tokens.size(1)).expand_as(tokens)
        out = model(input_ids=tokens, attention_mask=mask, position_ids=positions)
    compare(f"transformers {type(model).__name__} vs chart", out.logits)

    check_tokenizer(args.export_dir, failures)

    if args.checkpoint:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import reference_model

        ref, _ = reference_model.load_checkpoint(args.checkpoint)
        with torch.no_grad():
            logits, _ = ref(tokens, batch["ages"].float(), batch["segments"].int())
        compare("scripts/reference_model.py on the checkpoint vs chart", logits)
    if args.resave:
        model.save_pretrained(args.resave)
        # As a large model is saved: several files and model.safetensors.index.json.
        model.save_pretrained(args.resave + "-sharded", max_shard_size="40KB")
    print("PASS" if not failures else f"FAIL: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
