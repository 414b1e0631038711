#!/usr/bin/env bash
# Quality benchmark on synthetic data with a known oracle: pretrain, then for each task fine-tune
# with each recipe (full, LoRA, linear probe) and predict zero-shot by sampling futures, and score
# all of them on held_out beside the oracle AUROC (the labels' true probabilities).
#   bash scripts/bench_quality.sh [OUT]        (default out/quality)
# Environment: SUBJECTS (20000), PRETRAIN_CONFIG (configs/quality.yaml), PRETRAIN_STEPS (from the
# config), FT_STEPS (300), SAMPLES (10 zero-shot trajectories per label row), ZS_EXAMPLES (0: all).
# Stages whose output exists are skipped, so an interrupted run continues. Prints a markdown table
# (docs/quality.md records one).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/quality}
chart=build/chart
subjects=${SUBJECTS:-20000}
pretrain_config=${PRETRAIN_CONFIG:-configs/quality.yaml}
ft_steps=${FT_STEPS:-300}
samples=${SAMPLES:-10}
zs_examples=${ZS_EXAMPLES:-0}
[ -x "$chart" ] || bash scripts/setup.sh
mkdir -p "$out"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
timed() {  # timed NAME cmd...: runs cmd, appends "NAME seconds" to $out/times.txt
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$out/$name.log" 2>&1 || { tail -20 "$out/$name.log" >&2; exit 1; }
  echo "$name $((SECONDS - t0))" >> "$out/times.txt"
}

[ -d "$out/meds" ] || { log "synth $subjects subjects"; timed synth $chart synth --out "$out/meds" --subjects "$subjects" --seed 1; }
[ -d "$out/tokens" ] || { log "prepare"; timed prepare $chart prepare --meds "$out/meds" --out "$out/tokens"; }
steps_arg=()
[ -n "${PRETRAIN_STEPS:-}" ] && steps_arg=(--set train.steps="$PRETRAIN_STEPS")
if [ ! -f "$out/pretrain/done" ]; then
  log "pretrain $pretrain_config"
  resume=(); [ -e "$out/pretrain/checkpoints/latest" ] && resume=(--resume auto)
  timed pretrain $chart train "$pretrain_config" --set data.dir="$out/tokens" --set run.dir="$out/pretrain" \
    "${steps_arg[@]}" "${resume[@]}"
  touch "$out/pretrain/done"
fi

declare -A outcome=([mortality_365d]=MEDS_DEATH [ckd_onset_180d]=DIAGNOSIS//ICD//10//N18)
declare -A horizon=([mortality_365d]=365d [ckd_onset_180d]=180d)
for task in ${TASKS:-mortality_365d ckd_onset_180d}; do
  labels="$out/meds/labels/$task"
  for recipe in full lora probe; do
    run="$out/$task/$recipe"
    steps=$ft_steps; [ $recipe = probe ] && steps=$((ft_steps * 4))
    if [ ! -e "$run/checkpoints/latest" ]; then
      rm -rf "$run"
      log "$task: fine-tune ($recipe)"
      timed "$task-finetune-$recipe" $chart finetune configs/finetune/$recipe.yaml --set init.checkpoint="$out/pretrain" \
        --set task.labels="$labels" --set run.dir="$run" --set train.steps=$steps
    fi
    [ -f "$run-eval/eval.json" ] || timed "$task-eval-$recipe" $chart eval configs/finetune/$recipe.yaml \
      --set init.checkpoint="$run" --set task.labels="$labels" --set run.dir="$run-eval"
  done
  run="$out/$task/zero-shot"
  if [ ! -f "$run/predictions.parquet" ]; then
    log "$task: zero-shot ($samples samples)"
    timed "$task-generate" $chart generate "$pretrain_config" --set init.checkpoint="$out/pretrain" \
      --set task.labels="$labels" --set run.dir="$run" --set generate.samples="$samples" \
      --set generate.outcome_codes="[${outcome[$task]}]" --set generate.horizon="${horizon[$task]}" \
      --set generate.max_examples="$zs_examples"
  fi
  [ -f "$run-eval/eval.json" ] || timed "$task-eval-zero-shot" $chart eval "$pretrain_config" \
    --set eval.predictions="$run/predictions.parquet" --set task.labels="$labels" --set run.dir="$run-eval"
done

# The table: AUROC [95% CI], AUPRC, oracle AUROC on the same rows, rows and positives.
python3 - "$out" ${TASKS:-mortality_365d ckd_onset_180d} <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
times = dict(l.split() for l in (out / "times.txt").read_text().splitlines())
print("| task | method | AUROC [95% CI] | AUPRC | oracle AUROC | rows (positive) | seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for task in sys.argv[2:]:
    for method in ["full", "lora", "probe", "zero-shot"]:
        e = json.loads((out / task / f"{method}-eval" / "eval.json").read_text())
        m, o = e["model"], e.get("oracle", {})
        key = f"{task}-generate" if method == "zero-shot" else f"{task}-finetune-{method}"
        print(f"| {task} | {method} | {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}] | "
              f"{m['auprc']:.3f} | {o.get('auroc', float('nan')):.3f} | {m['n']} ({m['n_positive']}) | {times.get(key, '-')} |")
PY
