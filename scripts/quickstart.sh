#!/usr/bin/env bash
# The main job end to end on an embedded default: set up, then synthetic MEDS data -> prepare ->
# tiny pretraining -> fine-tune -> eval, and zero-shot risk from sampled futures -> eval.
# Everything lands under ${CHART_QUICKSTART_DIR:-out/quickstart}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${CHART_QUICKSTART_DIR:-out/quickstart}
mkdir -p "$out"
chart=build/chart
step() { printf '\n== %s\n' "$*" >&2; }

step "chart --version"
$chart --version

step "synthetic MEDS data: $out/meds"
$chart synth --out "$out/meds" --subjects 2000 --seed 1 --overwrite
step "prepare: $out/tokens"
$chart prepare --meds "$out/meds" --out "$out/tokens" --overwrite
step "pretrain configs/tiny.yaml: $out/pretrain"
rm -rf "$out/pretrain"  # the demo starts over each time; real runs continue with --resume auto
$chart train configs/tiny.yaml --set data.dir="$out/tokens" --set run.dir="$out/pretrain"
labels="$out/meds/labels/mortality_5y"  # 8% positive: 18 held_out positives at 2000 subjects
step "fine-tune configs/finetune/full.yaml on $labels: $out/finetune"
rm -rf "$out/finetune" "$out/eval" "$out/generate" "$out/eval-zero-shot"
$chart finetune configs/finetune/full.yaml --set init.checkpoint="$out/pretrain" --set task.labels="$labels" \
  --set run.dir="$out/finetune" --set train.steps=200
step "eval on held_out: $out/eval (eval.json, predictions.parquet, report.html)"
$chart eval configs/finetune/full.yaml --set init.checkpoint="$out/finetune" --set task.labels="$labels" \
  --set run.dir="$out/eval"
step "zero-shot: sample futures from the pretrained model: $out/generate"
$chart generate configs/tiny.yaml --set init.checkpoint="$out/pretrain" --set task.labels="$labels" \
  --set run.dir="$out/generate" --set generate.samples=10 --set generate.outcome_codes=[MEDS_DEATH] \
  --set generate.horizon=5y
$chart eval configs/tiny.yaml --set eval.predictions="$out/generate/predictions.parquet" \
  --set task.labels="$labels" --set run.dir="$out/eval-zero-shot"
printf '\nquickstart: done; outputs in %s (open %s/eval/report.html)\n' "$out" "$out" >&2
