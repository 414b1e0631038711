#!/usr/bin/env bash
# Zero-shot generation throughput, side by side in one run on the same model, prompts and sample
# counts: chart's engine (infer/), chart's previous batched loop, and Hugging Face transformers
# generate() on chart's lossless export, with its KV cache and without (every token recomputes
# the whole sequence, as ETHOS samples); each path's peak resident memory (docs/perf.md).
#   scripts/bench_generate.sh [EXAMPLES] [SAMPLES] [NEW_TOKENS] [SLOTS] [TRAIN_STEPS]
# Builds its own data and model in a temporary directory: `chart synth` (2000 subjects), labels,
# prepare, a short small.yaml run without the age encoding (so the export is lossless);
# BENCH_DIR=DIR keeps them there and reuses what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-16}; samples=${2:-20}; new_tokens=${3:-32}; slots=${4:-256}; steps=${5:-30}
py=${CHART_PYTHON:-.venv/bin/python}
threads=${CHART_THREADS:-2}
if [ -n "${BENCH_DIR:-}" ]; then w=$BENCH_DIR; mkdir -p "$w"; else w=$(mktemp -d); trap 'rm -rf "$w"' EXIT; fi
[ -d "$w/meds" ] || build/chart synth --out "$w/meds" --subjects 2000 --seed 5 >/dev/null 2>&1
[ -d "$w/labels" ] || "$py" tests/finetune_fixture.py labels "$w/meds" "$w/labels" >/dev/null
[ -d "$w/tok" ] || build/chart prepare --meds "$w/meds" --out "$w/tok" >/dev/null 2>&1
[ -d "$w/pre" ] || build/chart train configs/small.yaml --set data.dir="$w/tok" --set run.dir="$w/pre" \
  --set train.steps="$steps" --set model.time_encoding=none --set train.eval_every=0 --set train.threads="$threads" \
  >/dev/null 2>&1
[ -d "$w/hf" ] || build/chart export --checkpoint "$w/pre" --out "$w/hf" >/dev/null 2>&1
sets=(--set init.checkpoint="$w/pre" --set task.labels="$w/labels" --set generate.samples="$samples"
      --set generate.max_new_tokens="$new_tokens" --set generate.batch_size="$slots"
      --set generate.max_examples="$examples" --set train.threads="$threads" --set run.dir="$w/gen"
      --set generate.outcome_codes=[MEDS_DEATH])
echo "# $(date -u +%F) $(nproc) cores, $threads threads; small.yaml (time_encoding=none), $examples prompts x $samples samples, $new_tokens new tokens, $slots slots"
build/bench_generate configs/small.yaml "$w/prompts.txt" "${sets[@]}" 2>/dev/null
"$py" scripts/bench_hf_generate.py "$w/hf" "$w/prompts.txt" --samples "$samples" --new-tokens "$new_tokens" \
  --slots "$slots" --threads "$threads" 2>/dev/null
"$py" scripts/bench_hf_generate.py "$w/hf" "$w/prompts.txt" --samples "$samples" --new-tokens "$new_tokens" \
  --slots "$slots" --threads "$threads" --no-cache 2>/dev/null
