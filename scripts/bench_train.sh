#!/usr/bin/env bash
# Training throughput, chart vs the same model in PyTorch Python (scripts/reference_model.py),
# side by side in one run on the same config, batch, context and vocabulary size.
#   scripts/bench_train.sh TOKEN_DATASET [CONFIG] [STEPS] [--compile]
# Prints one table row per implementation. chart's figure is the tokens/s of its last logged
# interval (steady state, after warm-up); Python's is timed after 3 warm-up steps.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/bench_train.sh TOKEN_DATASET [CONFIG] [STEPS] [--compile]}
config=${2:-configs/tiny.yaml}
steps=${3:-40}
compile=${4:-}
py=${CHART_PYTHON:-.venv/bin/python}
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
vocab=$(( $(wc -l < "$data/vocab.tsv") - 2 ))
read -r batch context < <("$py" -c "import yaml,sys; c=yaml.safe_load(open('$config')); print(c['train'].get('batch_size',8), c['model'].get('context',256))")
log_every=$(( steps / 4 ))
build/chart train "$config" --set data.dir="$data" --set run.dir="$run/r" --set train.steps="$steps" \
  --set train.log_every="$log_every" --set train.eval_every=0 --set train.checkpoint_every=0 >/dev/null 2>&1
chart_tps=$(tail -n 1 "$run/r/metrics.jsonl" | "$py" -c "import json,sys; print(round(json.loads(sys.stdin.read())['tokens_per_s'],1))")
ref=$("$py" scripts/reference_model.py bench --config "$config" --batch "$batch" --context "$context" \
  --steps "$steps" --vocab "$vocab" ${compile:+--compile})
printf '| implementation | device | config | batch x context | tokens/s | ratio vs Python eager |\n|---|---|---|---|---|---|\n'
"$py" - "$chart_tps" "$ref" "$config" "$batch" "$context" <<'PY'
import json, sys
chart, ref, config, b, l = float(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
eager = ref["eager"]["tokens_per_s"]
dev = ref["gpu"] or f"cpu x{ref['threads']}"
print(f"| chart (C++/LibTorch) | {dev} | {config} | {b} x {l} | {chart:.0f} | {chart / eager:.2f} |")
print(f"| PyTorch eager | {dev} | {config} | {b} x {l} | {eager:.0f} | 1.00 |")
if "compile" in ref:
    c = ref["compile"]
    print(f"| PyTorch torch.compile | {dev} | {config} | {b} x {l} | " +
          (f"{c['tokens_per_s']:.0f} | {c['tokens_per_s'] / eager:.2f} |" if "tokens_per_s" in c else f"failed: {c['error']} | |"))
PY
