#!/usr/bin/env bash
# ONE command for a machine with an NVIDIA GPU: build (sm_80, sm_90), run every GPU test, the
# attention benchmarks and a training comparison (custom kernels vs the reference path vs PyTorch
# eager and torch.compile on base.yaml), generation and NCCL, then print a short table. Needs torch
# (+ pyarrow), CUDA, cmake and ninja on the machine, and .gpu-bundle/ from scripts/make_gpu_bundle.sh
# (yaml-cpp, fmt, nlohmann-json, libcrypto, GoogleTest .debs).
#   bash scripts/gpu_check.sh [OUT_DIR]       results also land in OUT_DIR (default out/gpu_check)
# GPU_CHECK_PHASES picks phases (default: all, in order): build tests bench packed train generate
# nccl. A machine with a per-command time limit can run "build tests bench" and then "packed train
# generate nccl" (build-gpu/ stays between calls while the machine is warm). PACKED_ARGS goes to the
# packed phase's script (default --quick: one length per head dim; "" for 2k-8k).
# GPU_CHECK_REHEARSAL=1 runs the phases after the build on this machine's CPU, small: build/ for
# build-gpu/, tiny.yaml for base.yaml, the reference attention, Gloo for NCCL, the packed script's
# --cpu-smoke; no GPU benchmark; GPU_CHECK_BUILD names another build directory. It measures nothing:
# it proves the script itself before a rare GPU session (ctest GpuCheck.RehearsalOnTheCpu).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-out/gpu_check}}
mkdir -p "$out"
log() { printf '\n== %s\n' "$*" | tee -a "$out/gpu_check.log"; }
status=()
if [ "${GPU_CHECK_REHEARSAL:-0}" = 1 ]; then
  rehearsal=1 build=${GPU_CHECK_BUILD:-build} py=${CHART_PYTHON:-.venv/bin/python} data=$out/data
  config=configs/tiny.yaml steps=20 log_every=5 subjects=300 kernels=auto backend=gloo packed_args=--cpu-smoke
  prompts=8 samples=4 slot_counts="8 32"
  phases=" ${GPU_CHECK_PHASES:-tests packed train generate nccl} "
else
  rehearsal=0 build=build-gpu py=python3 data=/tmp/chart-gpu-data
  config=configs/base.yaml steps=200 log_every=20 subjects=20000 kernels=kernels backend=nccl packed_args=${PACKED_ARGS---quick}
  prompts=256 samples=20 slot_counts="256 1024"
  phases=" ${GPU_CHECK_PHASES:-build tests bench packed train generate nccl} "
fi
want() { [[ "$phases" == *" $1 "* ]]; }
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  hopper=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | grep -q '^9\.' && echo 1 || echo 0)
else
  echo "no nvidia-smi: no GPU here$([ $rehearsal = 1 ] && echo ' (a rehearsal)')" | tee "$out/gpu.txt"; hopper=0
fi

log "dependencies from .gpu-bundle"
prefix=/tmp/chart-deps
if [ $rehearsal = 1 ]; then
  echo "rehearsal: this machine's own packages" | tee -a "$out/gpu_check.log"
elif [ -d .gpu-bundle/debs ]; then
  for deb in .gpu-bundle/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
else
  echo "no .gpu-bundle/debs: run scripts/make_gpu_bundle.sh on a build machine and carry .gpu-bundle" | tee -a "$out/gpu_check.log"
fi
export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}

if want build; then
log "build"
start=$(date +%s)
if CHART_PYTHON=python3 CHART_SKIP_APT=1 CHART_BUILD_DIR=build-gpu \
   CMAKE_ARGS="-DCMAKE_PREFIX_PATH=$prefix/usr -DCMAKE_INCLUDE_PATH=$prefix/usr/include" \
   bash scripts/setup.sh >"$out/build.log" 2>&1; then
  status+=("build|ok|$(( $(date +%s) - start )) s")
else
  tail -40 "$out/build.log"; status+=("build|FAILED|see build.log"); printf '%s\n' "${status[@]}"; exit 1
fi
fi
$build/chart --version | tee -a "$out/gpu_check.log"

if want tests; then
log "GPU tests (the wgmma forward too where the GPU is sm_90)"
(cd $build && ctest -R 'AttentionCuda|Attention\.|Model\.' --output-on-failure) >"$out/gpu_tests.log" 2>&1
rc=$?
status+=("gpu tests|$([ $rc -eq 0 ] && echo ok || echo FAILED)|$(grep -E 'tests passed|tests failed' "$out/gpu_tests.log" | tail -1)")
grep -E "Passed|Failed|Skipped|\*\*\*" "$out/gpu_tests.log" | head -20
fi

if want bench; then
log "resource usage per kernel (registers, shared memory, spills)"
cuobjdump -res-usage $build/kernels/libchart_kernels.a 2>/dev/null | grep -E "Function|REG" | sed 's/^ *//' > "$out/kernel_resources.txt"
head -40 "$out/kernel_resources.txt"

log "attention benchmark"
$build/tests/bench_attention | tee "$out/bench_attention.md"
status+=("attention benchmark|$([ -s "$out/bench_attention.md" ] && echo ok || echo FAILED)|bench_attention.md")
fi

if want packed; then
log "packed patients + time bias: chart's kernels vs FlexAttention, SDPA with the mask, varlen (one Python process)"
# torch.ops.chart from $build/ops: the same tensors through each; agreement first, then times.
$py scripts/bench_attention_packed.py $build/ops/libchart_ops.so $packed_args \
  2>"$out/bench_attention_packed.err" | tee "$out/bench_attention_packed.md"
packed_ok=$(grep -q "forward+backward (ms)" "$out/bench_attention_packed.md" && \
            ! grep -q "| chart sm[89]0 | failed" "$out/bench_attention_packed.md" && echo ok || echo FAILED)
status+=("packed attention vs FlexAttention|$packed_ok|bench_attention_packed.md")
fi

if want train || want generate || want nccl; then
  if [ ! -f "$data/tokens/manifest.json" ] || [ $rehearsal = 1 ]; then
    rm -rf "$data"
    $build/chart synth --out "$data/meds" --subjects $subjects --seed 1 >/dev/null 2>&1
    $build/chart prepare --meds "$data/meds" --out "$data/tokens" >/dev/null 2>&1
  fi
fi

if want train; then
log "training: custom kernels vs reference attention, $config, $steps steps"
paths="cuda reference"; [ "$hopper" = 1 ] && paths="cuda sm90 reference"
for path in $paths; do
  # model.attention=kernels: an error, not a fallback, if they cannot run; the self-check
  # (model.attention_check, on by default) compares them with the reference on the first batch.
  # The reference run records its batches for PyTorch to replay (below), so that its file
  # writes stay out of the kernels' tokens/s.
  env_var="CHART_ATTENTION_SM90=0"; mode=$kernels; record=0
  [ $path = reference ] && mode=reference && record=$steps
  [ $path = sm90 ] && env_var="CHART_ATTENTION_SM90=1"
  rm -rf "$data/run_$path"
  env $env_var $build/chart train $config --set model.attention=$mode \
    --set data.dir="$data/tokens" --set run.dir="$data/run_$path" \
    --set train.steps=$steps --set train.log_every=$log_every --set train.eval_every=0 --set train.checkpoint_every=0 \
    --set train.batch_size=8 --set train.save_batches=$record >"$out/train_$path.log" 2>&1
  rc=$?
  cp "$data/run_$path/metrics.jsonl" "$out/metrics_$path.jsonl" 2>/dev/null
  status+=("chart train ($path)|$([ $rc -eq 0 ] && echo ok || echo FAILED)|train_$path.log")
  if [ $path != reference ] && [ $rehearsal = 0 ]; then
    check=$(grep -q "checked against the reference on the first batch" "$out/train_$path.log" && \
            ! grep -q "self-check failed" "$out/train_$path.log" && echo ok || echo FAILED)
    status+=("attention self-check in chart train ($path)|$check|train_$path.log")
  fi
done
$py scripts/gpu_check_report.py kernels "$out" | tee "$out/train_compare.md"
status+=("$config kernels vs reference|$([ "${PIPESTATUS[0]}" = 0 ] && echo ok || echo FAILED)|$(tail -1 "$out/train_compare.md")")

log "the same model in PyTorch, eager and torch.compile, on the reference run's $steps recorded batches"
for mode in eager compile; do
  $py scripts/replay_run.py "$data/run_reference" --mode $mode >"$out/replay_$mode.json" 2>"$out/replay_$mode.err"
done
$py scripts/gpu_check_report.py pytorch "$out" | tee "$out/train_vs_pytorch.md"
status+=("chart kernels vs torch.compile, $config|$([ "${PIPESTATUS[0]}" = 0 ] && echo measured || echo FAILED)|$(tail -1 "$out/train_vs_pytorch.md")")
fi

if want generate; then
log "zero-shot generation: the engine (on a GPU: the decode kernel, bf16), $config from the train phase"
# The kernels' model from the train phase, or a short run of its own when that phase was skipped.
model="$data/run_cuda"
if [ ! -d "$model/checkpoints" ]; then
  model="$data/run_generate_model"; rm -rf "$model"
  $build/chart train $config --set data.dir="$data/tokens" --set run.dir="$model" --set train.steps=50 \
    --set train.eval_every=0 --set train.batch_size=8 >"$out/train_generate_model.log" 2>&1
fi
for slots in $slot_counts; do
  rm -rf "$data/gen_$slots"
  $build/chart generate $config --set init.checkpoint="$model" \
    --set task.labels="$data/meds/labels/mortality_5y" --set run.dir="$data/gen_$slots" \
    --set generate.samples=$samples --set generate.max_examples=$prompts --set generate.batch_size=$slots \
    --set generate.outcome_codes=[MEDS_DEATH] --set generate.horizon=5y >"$out/generate_$slots.log" 2>&1
  rc=$?
  line=$(grep -o '[0-9]* tokens in [0-9.]* s ([0-9]* tokens/s)' "$out/generate_$slots.log" | tail -1)
  status+=("chart generate, up to $prompts prompts x $samples samples, $slots slots|$([ $rc -eq 0 ] && [ -n "$line" ] && echo ok || echo FAILED)|${line:-see generate_$slots.log}")
  grep -E "attention|generate:" "$out/generate_$slots.log" | tail -3
done
fi

if want nccl; then
log "data parallel: world size 1 over $backend (torchrun; NCCL refuses two ranks on one GPU)"
rm -rf "$data/run_nccl"
port=$((29533 + RANDOM % 2000))  # a rehearsal may share the machine with other tests
$py -m torch.distributed.run --nproc-per-node=1 --master-port=$port --no-python $build/chart train configs/tiny.yaml \
  --set data.dir="$data/tokens" --set run.dir="$data/run_nccl" --set train.steps=20 --set train.eval_every=10 \
  --set train.checkpoint_every=10 --set dist.backend=$backend --set dist.bucket_mb=1 >"$out/train_nccl.log" 2>&1
rc=$?
cp "$data/run_nccl/metrics.jsonl" "$out/metrics_nccl.jsonl" 2>/dev/null
nccl_ok=$([ $rc -eq 0 ] && grep -q "$backend process group" "$out/train_nccl.log" && [ -f "$data/run_nccl/checkpoints/step_20/SHA256SUMS" ] && echo ok || echo FAILED)
status+=("$backend world size 1 (torchrun)|$nccl_ok|train_nccl.log")
tail -3 "$out/train_nccl.log"
if [ -x $build/bench_allreduce ] && [ $rehearsal = 0 ]; then
  # One rank measures only the launch cost of a collective; it checks the NCCL path runs.
  $py -m torch.distributed.run --nproc-per-node=1 --master-port=29534 --no-python $build/bench_allreduce cuda \
    | tee "$out/bench_allreduce_nccl.md"
fi
fi

printf '\n| check | result | detail |\n|---|---|---|\n' | tee "$out/summary.md"
for s in "${status[@]}"; do printf '| %s |\n' "${s//|/ | }"; done | tee -a "$out/summary.md"
! grep -q "| FAILED |" "$out/summary.md"
