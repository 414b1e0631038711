#!/usr/bin/env bash
# ONE command for a machine with an NVIDIA GPU: build (sm_80, sm_90), run every GPU test, the
# attention benchmark and a training comparison (custom kernels vs the reference path on
# base.yaml), then print a short table. Needs torch (+ pyarrow), CUDA, cmake and ninja on the
# machine, and .gpu-bundle/ from scripts/make_gpu_bundle.sh (yaml-cpp, fmt, nlohmann-json, libcrypto,
# GoogleTest .debs).
#   bash scripts/gpu_check.sh [OUT_DIR]       results also land in OUT_DIR (default out/gpu_check)
# GPU_CHECK_PHASES picks phases (default: all, in order): build tests bench packed train generate
# nccl. A machine with a per-command time limit can run "build tests bench" and then "packed train
# generate nccl" (build-gpu/ stays between calls while the machine is warm). PACKED_ARGS goes to the
# packed phase's script (default --quick: one length per head dim; "" for 2k-8k).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-out/gpu_check}}
mkdir -p "$out"
log() { printf '\n== %s\n' "$*" | tee -a "$out/gpu_check.log"; }
status=()
phases=" ${GPU_CHECK_PHASES:-build tests bench packed train generate nccl} "
want() { [[ "$phases" == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

log "dependencies from .gpu-bundle"
prefix=/tmp/chart-deps
if [ -d .gpu-bundle/debs ]; then
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
build-gpu/chart --version | tee -a "$out/gpu_check.log"
hopper=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | grep -q '^9\.' && echo 1 || echo 0)

if want tests; then
log "GPU tests (the wgmma forward too where the GPU is sm_90)"
(cd build-gpu && ctest -R 'AttentionCuda|Attention\.|Model\.' --output-on-failure) >"$out/gpu_tests.log" 2>&1
rc=$?
status+=("gpu tests|$([ $rc -eq 0 ] && echo ok || echo FAILED)|$(grep -E 'tests passed|tests failed' "$out/gpu_tests.log" | tail -1)")
grep -E "Passed|Failed|Skipped|\*\*\*" "$out/gpu_tests.log" | head -20

fi

if want bench; then
log "resource usage per kernel (registers, shared memory, spills)"
cuobjdump -res-usage build-gpu/kernels/libchart_kernels.a 2>/dev/null | grep -E "Function|REG" | sed 's/^ *//' > "$out/kernel_resources.txt"
head -40 "$out/kernel_resources.txt"

log "attention benchmark"
build-gpu/tests/bench_attention | tee "$out/bench_attention.md"
status+=("attention benchmark|$([ -s "$out/bench_attention.md" ] && echo ok || echo FAILED)|bench_attention.md")
fi

if want packed; then
log "packed patients + time bias: chart's kernels vs FlexAttention, SDPA with the mask, varlen (one Python process)"
# torch.ops.chart from build-gpu/ops: the same tensors through each; agreement first, then times.
python3 scripts/bench_attention_packed.py build-gpu/ops/libchart_ops.so ${PACKED_ARGS---quick} \
  2>"$out/bench_attention_packed.err" | tee "$out/bench_attention_packed.md"
packed_ok=$(grep -q "forward+backward (ms)" "$out/bench_attention_packed.md" && \
            ! grep -q "| chart sm[89]0 | failed" "$out/bench_attention_packed.md" && echo ok || echo FAILED)
status+=("packed attention vs FlexAttention|$packed_ok|bench_attention_packed.md")
fi

data=/tmp/chart-gpu-data
if want train || want generate || want nccl; then
  if [ ! -f "$data/tokens/manifest.json" ]; then
    rm -rf "$data"
    build-gpu/chart synth --out "$data/meds" --subjects 20000 --seed 1 >/dev/null 2>&1
    build-gpu/chart prepare --meds "$data/meds" --out "$data/tokens" >/dev/null 2>&1
  fi
fi

if want train; then
log "training: custom kernels vs reference attention, base.yaml, 200 steps"
paths="cuda reference"; [ "$hopper" = 1 ] && paths="cuda sm90 reference"
for path in $paths; do
  # model.attention=kernels: an error, not a fallback, if they cannot run; the self-check
  # (model.attention_check, on by default) compares them with the reference on the first batch.
  env_var="CHART_ATTENTION_SM90=0"; mode=kernels; record=0
  # The reference run records its batches for PyTorch to replay (below): its file writes then
  # stay out of the kernels' tokens/s.
  [ $path = reference ] && mode=reference && record=200
  [ $path = sm90 ] && env_var="CHART_ATTENTION_SM90=1"
  rm -rf "$data/run_$path"
  env $env_var build-gpu/chart train configs/base.yaml --set model.attention=$mode \
    --set data.dir="$data/tokens" --set run.dir="$data/run_$path" \
    --set train.steps=200 --set train.log_every=20 --set train.eval_every=0 --set train.checkpoint_every=0 \
    --set train.batch_size=8 --set train.save_batches=$record >"$out/train_$path.log" 2>&1 || echo "train ($path) FAILED" | tee -a "$out/gpu_check.log"
  cp "$data/run_$path/metrics.jsonl" "$out/metrics_$path.jsonl" 2>/dev/null
  if [ $path != reference ]; then
    check=$(grep -q "checked against the reference on the first batch" "$out/train_$path.log" && \
            ! grep -q "self-check failed" "$out/train_$path.log" && echo ok || echo FAILED)
    status+=("attention self-check in chart train ($path)|$check|train_$path.log")
  fi
done
python3 - "$out" <<'PY' | tee "$out/train_compare.md"
import json, sys, os
out = sys.argv[1]
def load(p):
    try:
        return {r["step"]: r for r in map(json.loads, open(os.path.join(out, f"metrics_{p}.jsonl"))) if r["split"] == "train"}
    except OSError:
        return {}
a, b, c = load("cuda"), load("reference"), load("sm90")
print("| step | loss (kernels) | loss (sm90 fwd) | loss (reference) | diff | diff sm90 | tokens/s kernels | tokens/s sm90 | tokens/s reference | MFU kernels |")
print("|---|---|---|---|---|---|---|---|---|---|")
worst = 0
for s in sorted(set(a) & set(b)):
    d = abs(a[s]["loss"] - b[s]["loss"]); worst = max(worst, d)
    d90 = abs(c[s]["loss"] - b[s]["loss"]) if s in c else None
    if d90 is not None: worst = max(worst, d90)
    f = lambda r, k, fmt: format(r[s][k], fmt) if s in r else "n/a"
    print(f"| {s} | {a[s]['loss']:.4f} | {f(c, 'loss', '.4f')} | {b[s]['loss']:.4f} | {d:.4f} | "
          f"{'n/a' if d90 is None else format(d90, '.4f')} | {a[s]['tokens_per_s']:.0f} | {f(c, 'tokens_per_s', '.0f')} | "
          f"{b[s]['tokens_per_s']:.0f} | {a[s].get('mfu', 0):.3f} |")
print(f"\nmax |loss difference| = {worst:.4f} (bf16 tolerance: 0.05)")
PY
worst=$(grep -o 'max |loss difference| = [0-9.]*' "$out/train_compare.md" | grep -o '[0-9.]*$')
status+=("base.yaml kernels vs reference|$(python3 -c "print('ok' if '$worst' and float('$worst') < 0.05 else 'FAILED')" 2>/dev/null)|max loss diff ${worst:-?}")

log "the same model in PyTorch, eager and torch.compile, on the reference run's 200 recorded batches"
for mode in eager compile; do
  python3 scripts/reference_model.py replay "$data/run_reference" --mode $mode >"$out/replay_$mode.json" 2>"$out/replay_$mode.err"
done
python3 - "$out" <<'PY' | tee "$out/train_vs_pytorch.md"
import json, os, statistics, sys
out = sys.argv[1]
def chart(p):  # median tokens/s over the logged intervals after the first, the last peak memory and MFU
    try:
        rows = [r for r in map(json.loads, open(os.path.join(out, f"metrics_{p}.jsonl"))) if r["split"] == "train"][1:]
        return statistics.median(r["tokens_per_s"] for r in rows), rows[-1].get("peak_gpu_gib"), rows[-1].get("mfu")
    except (OSError, IndexError, statistics.StatisticsError):
        return None, None, None
def replay(m):
    try:
        return json.loads(open(os.path.join(out, f"replay_{m}.json")).read())
    except (OSError, ValueError):
        return {}
runs = {f"chart, {p}": chart(p) for p in ("cuda", "sm90", "reference")}
py = {m: replay(m) for m in ("eager", "compile")}
best = py["compile"].get("tokens_per_s")
print("| implementation | tokens/s | peak GiB | MFU | vs torch.compile | max loss diff vs chart (same batches) |")
print("|---|---|---|---|---|---|")
for name, (tps, gib, mfu) in runs.items():
    if tps is None: continue
    print(f"| {name} | {tps:.0f} | {gib or 0:.2f} | {mfu or 0:.3f} | {f'{tps / best:.2f}x' if best else 'n/a'} | |")
for m, r in py.items():
    if "tokens_per_s" not in r:
        print(f"| PyTorch {m} | failed (replay_{m}.err) | | | | |"); continue
    print(f"| PyTorch {m} | {r['tokens_per_s']:.0f} | {r['peak_gpu_gib'] or 0:.2f} | | {r['tokens_per_s'] / best:.2f}x | {r['max_loss_diff']:.4f} |")
print("\ntarget: chart (kernels) >= 1.3x torch.compile; loss within bf16 tolerance (0.05) of chart's on the same batches")
PY
speedup=$(python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
try:
    rows = [r for r in map(json.loads, open(os.path.join(out, "metrics_cuda.jsonl"))) if r["split"] == "train"][1:]
    c = json.loads(open(os.path.join(out, "replay_compile.json")).read())
    print(f"{statistics.median(r['tokens_per_s'] for r in rows) / c['tokens_per_s']:.2f}x, loss diff {c['max_loss_diff']:.4f}")
except Exception as e:
    print(f"n/a ({type(e).__name__})")
PY
)
status+=("chart kernels vs torch.compile, base.yaml|$(grep -q '^n/a' <<<"$speedup" && echo FAILED || echo measured)|$speedup")
fi

if want generate; then
log "zero-shot generation: the engine on the GPU (decode kernel, bf16), base.yaml from the train phase"
# The kernels' model from the train phase, or a short run of its own when that phase was skipped.
model="$data/run_cuda"
if [ ! -d "$model/checkpoints" ]; then
  model="$data/run_generate_model"; rm -rf "$model"
  build-gpu/chart train configs/base.yaml --set data.dir="$data/tokens" --set run.dir="$model" --set train.steps=50 \
    --set train.eval_every=0 --set train.batch_size=8 >"$out/train_generate_model.log" 2>&1
fi
for slots in 256 1024; do
  rm -rf "$data/gen_$slots"
  build-gpu/chart generate configs/base.yaml --set init.checkpoint="$model" \
    --set task.labels="$data/meds/labels/mortality_5y" --set run.dir="$data/gen_$slots" \
    --set generate.samples=20 --set generate.max_examples=256 --set generate.batch_size=$slots \
    --set generate.outcome_codes=[MEDS_DEATH] --set generate.horizon=5y >"$out/generate_$slots.log" 2>&1
  rc=$?
  line=$(grep -o '[0-9]* tokens in [0-9.]* s ([0-9]* tokens/s)' "$out/generate_$slots.log" | tail -1)
  status+=("chart generate, up to 256 prompts x 20 samples, $slots slots|$([ $rc -eq 0 ] && [ -n "$line" ] && echo ok || echo FAILED)|${line:-see generate_$slots.log}")
  grep -E "attention|generate:" "$out/generate_$slots.log" | tail -3
done
fi

if want nccl; then
log "data parallel: world size 1 over NCCL (torchrun; NCCL refuses two ranks on one GPU)"
rm -rf "$data/run_nccl"
python3 -m torch.distributed.run --nproc-per-node=1 --master-port=29533 --no-python build-gpu/chart train configs/tiny.yaml \
  --set data.dir="$data/tokens" --set run.dir="$data/run_nccl" --set train.steps=20 --set train.eval_every=10 \
  --set train.checkpoint_every=10 --set dist.backend=nccl --set dist.bucket_mb=1 >"$out/train_nccl.log" 2>&1
rc=$?
cp "$data/run_nccl/metrics.jsonl" "$out/metrics_nccl.jsonl" 2>/dev/null
nccl_ok=$([ $rc -eq 0 ] && grep -q "nccl process group" "$out/train_nccl.log" && [ -f "$data/run_nccl/checkpoints/step_20/SHA256SUMS" ] && echo ok || echo FAILED)
status+=("NCCL world size 1 (torchrun)|$nccl_ok|train_nccl.log")
tail -3 "$out/train_nccl.log"
if [ -x build-gpu/bench_allreduce ]; then
  # One rank measures only the launch cost of a collective; it checks the NCCL path runs.
  python3 -m torch.distributed.run --nproc-per-node=1 --master-port=29534 --no-python build-gpu/bench_allreduce cuda \
    | tee "$out/bench_allreduce_nccl.md"
fi
fi

printf '\n| check | result | detail |\n|---|---|---|\n' | tee "$out/summary.md"
for s in "${status[@]}"; do printf '| %s |\n' "${s//|/ | }"; done | tee -a "$out/summary.md"
