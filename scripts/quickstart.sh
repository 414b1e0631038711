#!/usr/bin/env bash
# The main job end to end on an embedded default: set up, then synthetic MEDS data -> prepare ->
# tiny pretraining -> fine-tune -> eval, each stage as it exists in this version of chart.
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

built() { $chart --help | grep -E "^  $1 " | grep -vq 'not built yet'; }

if built synth; then
  step "synthetic MEDS data: $out/meds"
  $chart synth --out "$out/meds" --subjects 2000 --seed 1 --overwrite
fi
if built prepare; then
  step "prepare: $out/tokens"
  $chart prepare --meds "$out/meds" --out "$out/tokens" --overwrite
fi
if built train; then
  step "pretrain configs/tiny.yaml: $out/pretrain"
  rm -rf "$out/pretrain"  # the demo starts over each time; real runs continue with --resume auto
  $chart train configs/tiny.yaml --set data.dir="$out/tokens" --set run.dir="$out/pretrain"
fi
for cmd in synth prepare train finetune eval; do
  built $cmd || printf '\n(%s is not built yet in this version; the quickstart stops before it)\n' "$cmd" >&2
done
printf '\nquickstart: done; outputs in %s\n' "$out" >&2
