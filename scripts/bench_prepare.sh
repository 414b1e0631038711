#!/usr/bin/env bash
# Tokenization throughput, `chart prepare` (C++) vs the same tokenization in plain Python
# (scripts/prepare_reference.py: pyarrow + numpy), side by side in one run on the same synthetic
# MEDS data, with a check that both produce the same tokens.
#   scripts/bench_prepare.sh [SUBJECTS]          (default 100000)
# Steps: `chart synth --subjects N --seed 1` (kept in out/bench_prepare/N/meds and reused), then
# chart prepare with every core and with one thread, the Python version in one process and in one
# process per core, each under /usr/bin/time (wall seconds, peak RSS); then the Python output is
# checked against chart's shards subject by subject. Prints a markdown table.
# Environment: CHART_BIN (default build/chart), CHART_PYTHON (default .venv/bin/python),
# BENCH_DIR (default out/bench_prepare), BENCH_REPEATS (runs per row, best kept; default 1),
# COMPARE_SAMPLE (subjects per split to check; default 0 = all).
set -euo pipefail
cd "$(dirname "$0")/.."
subjects=${1:-100000}
chart=${CHART_BIN:-build/chart}
py=${CHART_PYTHON:-.venv/bin/python}
repeats=${BENCH_REPEATS:-1}
work=${BENCH_DIR:-out/bench_prepare}/$subjects
cores=$(nproc)
meds=$work/meds
mkdir -p "$work"
[ -x /usr/bin/time ] || { echo "bench_prepare: needs GNU time at /usr/bin/time" >&2; exit 1; }

if [ ! -f "$meds/metadata/dataset.json" ]; then
  echo "generating $subjects synthetic subjects in $meds" >&2
  "$chart" synth --out "$meds" --subjects "$subjects" --seed 1 --overwrite >&2
fi
cat "$meds"/data/*/*.parquet > /dev/null  # both sides start from a warm page cache
results=$work/results.tsv
: > "$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# run NAME THREADS OUTDIR CMD...: best wall time of $repeats runs, the largest peak RSS.
# OUTDIR's basename also names the log, OUTDIR.log.
run() {
  local name=$1 threads=$2 out=$3; shift 3
  local best="" cpu="" rss=0 i s k u y
  for ((i = 0; i < repeats; i++)); do
    rm -rf "$out"
    /usr/bin/time -f "%e %M %U %S" -o "$work/time.txt" "$@" > "$out.log" 2>&1 ||
      { echo "bench_prepare: $name failed, see $out.log" >&2; exit 1; }
    read -r s k u y < "$work/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($s < $best)}"; then
      best=$s
      cpu=$(awk "BEGIN{print $u + $y}")
      cp "$out.log" "$out.best.log"  # its own timing (without process start-up) is in the log
      [ -f "$out/summary.json" ] && cp "$out/summary.json" "$out.best.json"
    fi
    [ "$k" -gt "$rss" ] && rss=$k
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$threads" "$best" "$rss" "$(basename "$out")" "$cpu" >> "$results"
}
# Startup: what each process holds before reading any data (chart maps LibTorch and CUDA libraries).
/usr/bin/time -f "%M %e" -o "$work/time.txt" "$chart" --version > /dev/null
chart_base=$(tr ' ' : < "$work/time.txt")
/usr/bin/time -f "%M %e" -o "$work/time.txt" "$py" -c "import numpy, pyarrow, pyarrow.parquet, pyarrow.compute"
py_base=$(tr ' ' : < "$work/time.txt")

echo "timing chart prepare and the Python reference on $meds ($cores cores, load $load_before)" >&2
run "chart prepare (C++)" "$cores" "$work/chart" "$chart" prepare --meds "$meds" --out "$work/chart" --set prepare.threads="$cores"
run "chart prepare (C++)" 1 "$work/chart1" "$chart" prepare --meds "$meds" --out "$work/chart1" --set prepare.threads=1
run "Python (pyarrow+numpy)" 1 "$work/py" "$py" scripts/prepare_reference.py prepare --meds "$meds" --out "$work/py" --jobs 1
run "Python (pyarrow+numpy)" "$cores" "$work/py$cores" "$py" scripts/prepare_reference.py prepare --meds "$meds" --out "$work/py$cores" --jobs "$cores"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "checking Python's tokens against chart's shards" >&2
check=0
"$py" scripts/prepare_reference.py compare "$work/chart" "$work/py" --sample "${COMPARE_SAMPLE:-0}" > "$work/compare.json" || check=$?
"$py" scripts/prepare_reference.py compare "$work/chart" "$work/py$cores" --sample "${COMPARE_SAMPLE:-0}" > "$work/compare_jobs.json" || check=$?

"$py" - "$results" "$work" "$chart_base" "$py_base" "$cores" "$load_before" "$load_after" "$check" <<'PY'
import json, re, sys
from pathlib import Path
results, work, chart_base, py_base, cores, load_before, load_after, check = sys.argv[1:]
work = Path(work)
(chart_rss, chart_s), (py_rss, py_s) = [(int(b.split(":")[0]), float(b.split(":")[1])) for b in (chart_base, py_base)]
man = json.loads((work / "chart" / "manifest.json").read_text())
events = sum(s["events"] for s in man["splits"].values())
tokens = sum(s["tokens"] for s in man["splits"].values())
subjects = sum(s["subjects"] for s in man["splits"].values())
summary = json.loads((work / "py" / "summary.json").read_text())
rows = [l.split("\t") for l in Path(results).read_text().splitlines()]
py1 = next(float(r[2]) for r in rows if r[0].startswith("Python") and r[1] == "1")
gib = 1024 ** 2  # kB per GiB


def inner_seconds(name, out):  # the run's own timing, without process start-up
    if name.startswith("chart"):
        m = re.search(r"wrote .* in ([0-9.]+)s", (work / f"{out}.best.log").read_text())
        return float(m.group(1)) if m else float("nan")
    return json.loads((work / f"{out}.best.json").read_text())["seconds"]


print(f"MEDS: {subjects:,} subjects, {events:,} events (rows), {tokens:,} tokens, vocabulary {man['vocab_size']:,}; "
      f"{int(cores)} cores, load average {load_before} before, {load_after} after\n")
print("| implementation | threads | events | seconds | events/s | peak RSS GiB | RSS above startup GiB | "
      "seconds without start-up | CPU seconds | speed vs Python (1 process) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, threads, sec, rss, out, cpu in rows:
    sec, rss = float(sec), int(rss)
    base = chart_rss if name.startswith("chart") else py_rss
    note = " (largest process)" if name.startswith("Python") and threads != "1" else ""
    print(f"| {name} | {threads} | {events:,} | {sec:.2f} | {events / sec / 1e6:.2f}M | {rss / gib:.2f}{note} | "
          f"{(rss - base) / gib:.2f} | {inner_seconds(name, out):.2f} | {float(cpu):.2f} | {py1 / sec:.2f}x |")
print(f"\nstart-up (no data): chart {chart_rss / gib:.2f} GiB, {chart_s:.2f} s (`chart --version`: LibTorch and CUDA "
      f"libraries loaded); Python + numpy + pyarrow {py_rss / gib:.2f} GiB, {py_s:.2f} s")
if summary["rows"] != events:
    print(f"WARNING: Python counted {summary['rows']:,} events, chart {events:,}")
for f in ("compare.json", "compare_jobs.json"):
    c = json.loads((work / f).read_text())
    v = c["vocab"]
    print(f"correctness ({f}): {'AGREE' if c['agree'] else 'DISAGREE'}: vocabulary {v['chart_size']} tokens "
          f"(same order: {v['same_tokens_in_order']}, subject-count diffs {v['subject_count_diffs']}, "
          f"cut-point diffs {v['cut_point_diffs']} of {v['numeric_codes']} numeric codes); "
          f"{c['subjects_compared']:,} subjects / {c['tokens_compared']:,} tokens compared, "
          f"{c['mismatched_subjects']} subjects differ {c['mismatch_kinds'] or ''}{c['count_diffs'] or ''}")
a, b = [{k: v for k, v in json.loads((work / d / "manifest.json").read_text())["files"].items() if k != "prepare.yaml"}
        for d in ("chart", "chart1")]
print(f"chart output with {cores} threads and with 1 thread: {'identical' if a == b else 'DIFFERENT'} "
      "(sha256 of vocab.tsv and every shard)")
sys.exit(1 if int(check) else 0)
PY
