#!/usr/bin/env bash
# Fuzzes chart's safetensors reader with libFuzzer (clang, AddressSanitizer + UBSan) for a
# bounded time; exits non-zero on any crash, sanitizer report or uncaught exception.
#   bash scripts/fuzz_safetensors.sh [SECONDS]      (default 600, per target)
#   FUZZ_TARGETS="safetensors vocab serve_request"  which targets, one after the other (default: safetensors)
#   FUZZ_DIR=build-fuzz  where the binaries, corpora and any crash files go
#   FUZZ_SEEDS=DIR       more seed files (*.safetensors, vocab.tsv), e.g. a run's checkpoint
# tests/fuzz/fuzz_safetensors.cpp drives parse_safetensors_layout(), the torch-free validation
# that parse_safetensors() runs before it copies any byte (model/safetensors_layout.h);
# tests/fuzz/fuzz_vocab.cpp drives data::Vocab::parse() (vocab.tsv, which exports carry);
# tests/fuzz/fuzz_serve_request.cpp drives what `chart serve` parses from a request body.
# Not part of CI (too long); tests/test_safe_loading.cpp holds the crafted files CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
out=${FUZZ_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-safetensors}
say() { printf 'fuzz: %s\n' "$*" >&2; }

# 1. clang with libFuzzer (Debian: clang pulls libclang-common-NN-dev, which holds it), fmt and
#    nlohmann-json (the header parser).
cxx=$(command -v clang++ || true)
if [ -z "$cxx" ] || [ ! -f /usr/include/fmt/format.h ] || [ ! -f /usr/include/nlohmann/json.hpp ]; then
  say "installing clang, libfmt-dev and nlohmann-json3-dev"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang libfmt-dev \
    nlohmann-json3-dev >/dev/null
  cxx=$(command -v clang++)
fi

# 2. Build (fmt header-only: no ABI question between the system's libfmt and clang).
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DFMT_HEADER_ONLY -I.)
for t in $targets; do
  mkdir -p "$out/$t/corpus" "$out/$t/seeds" "$out/$t/crashes"
  say "building $out/fuzz_$t with $($cxx --version | head -1)"
  case $t in
    safetensors) srcs=(model/safetensors_layout.cpp) ;;
    vocab) srcs=(data/vocab.cpp core/files.cpp) ;;
    serve_request) srcs=(serve/patient.cpp serve/fhir_input.cpp core/utc_time.cpp core/files.cpp) ;;
    *) say "unknown target $t (safetensors, vocab, serve_request)"; exit 2 ;;
  esac
  libs=(); [ "$t" = serve_request ] && libs=(-lyaml-cpp)
  "$cxx" "${flags[@]}" "${srcs[@]}" "tests/fuzz/fuzz_$t.cpp" -o "$out/fuzz_$t" "${libs[@]}"
done

# 3. Seeds: valid files of every dtype, written here byte by byte, and crafted near-misses; a
#    file written by the Hugging Face safetensors writer when a Python with it is at hand.
python3 - "$out/safetensors/seeds" "$out/vocab/seeds" <<'PY'
import json, struct, sys, os
d, vd = sys.argv[1], sys.argv[2]
os.makedirs(d, exist_ok=True); os.makedirs(vd, exist_ok=True)
head = "# chart vocabulary v1\nid\ttoken\tkind\tsubjects\tcuts\n"
rows = ["[PAD]\tspecial\t0\t", "[BOS]\tspecial\t0\t", "[UNK]\tspecial\t0\t", "5m\ttime\t0\t",
        "Q1\tquantile\t0\t", "Q2\tquantile\t0\t", "LAB//x\tcode\t40\t0.5,1.25", "DX//1\tcode\t12\t"]
open(os.path.join(vd, "vocab.tsv"), "w").write(head + "".join(f"{i}\t{r}\n" for i, r in enumerate(rows)))
open(os.path.join(vd, "bad_number.tsv"), "w").write(head + "0\t[PAD]\tspecial\tx\t1e99\n")
sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
def st(tensors, meta=None, pad=True):
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape in tensors:
        n = 1
        for s in shape: n *= s
        b = bytes((i * 37) & 0xff for i in range(n * sizes[dtype]))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
seeds = {
    "all_dtypes": st([(f"t_{k.lower()}", k, [2, 3]) for k in sizes], {"format": "pt"}),
    "chart_like": st([("tok_emb.weight", "F32", [8, 4]), ("layers.0.attn.wq.weight", "F32", [4, 4]),
                      ("norm.weight", "F32", [4]), ("step/x", "I64", [])], {"format": "pt", "step": "3"}),
    "empty": st([]),
    "scalar_and_zero": st([("s", "F64", []), ("z", "F32", [0, 5])]),
    "escapes": st([("a\\\"b\\u00e9\\n", "U8", [3])], {"k\\t": "v\\/"}),
    "zero_header": struct.pack("<Q", 0),
}
for name, b in seeds.items():
    open(os.path.join(d, name + ".safetensors"), "wb").write(b)
# near misses: each valid seed with its first offset off by one, truncated, with trailing bytes
good = seeds["chart_like"]
open(os.path.join(d, "truncated.safetensors"), "wb").write(good[:-5])
open(os.path.join(d, "trailing.safetensors"), "wb").write(good + b"\0\0\0\0")
open(os.path.join(d, "lying_offsets.safetensors"), "wb").write(good.replace(b'"data_offsets":[0,128]', b'"data_offsets":[0,129]'))
PY
py=${CHART_PYTHON:-.venv/bin/python}
if [ -x "$py" ] && "$py" -c "import safetensors.torch, torch" 2>/dev/null; then
  "$py" -c "
import torch, sys
from safetensors.torch import save_file
torch.manual_seed(0)
save_file({'model.embed_tokens.weight': torch.randn(6, 4), 'model.norm.weight': torch.ones(4),
           'b': torch.zeros(3, dtype=torch.bfloat16), 'i': torch.arange(5)}, sys.argv[1], metadata={'format': 'pt'})
" "$out/safetensors/seeds/hf_writer.safetensors"
fi
if [ -n "${FUZZ_SEEDS:-}" ]; then
  find "$FUZZ_SEEDS" -name '*.safetensors' -size -64k -exec cp {} "$out/safetensors/seeds/" \;
  find "$FUZZ_SEEDS" -name 'vocab.tsv' -size -64k -exec cp {} "$out/vocab/seeds/" \;
fi
cat > "$out/vocab.dict" <<'DICT'
"# chart vocabulary v1\x0a"
"id\x09token\x09kind\x09subjects\x09cuts\x0a"
"[PAD]"
"[BOS]"
"[UNK]"
"special"
"time"
"quantile"
"code"
"\x09"
"1e39"
"nan"
DICT
cat > "$out/safetensors.dict" <<'DICT'
"__metadata__"
"dtype"
"shape"
"data_offsets"
"format"
"pt"
"F64"
"F32"
"F16"
"BF16"
"I64"
"I32"
"I16"
"I8"
"U8"
"BOOL"
"\\u00"
"18446744073709551615"
"9223372036854775807"
DICT

# Request bodies: MEDS rows, a FHIR Bundle, a CDS Hooks prefetch object.
mkdir -p "$out/serve_request/seeds"
cat > "$out/serve_request/seeds/meds_rows.json" <<'JSON'
{"subject_id": 7, "prediction_time": "2020-01-31T00:00:00Z", "events": [{"code": "GENDER//F"},
 {"code": "MEDS_BIRTH", "time": "1950-01-01"}, {"code": "LAB//glucose//mg/dL", "time": "2019-05-01T10:00:00.5+02:00",
 "numeric_value": 104.5}, {"code": "DIAGNOSIS//ICD//10//I10", "time": "2021-01-01T00:00:00Z"}]}
JSON
cat > "$out/serve_request/seeds/bundle.json" <<'JSON'
{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "gender": "male",
 "birthDate": "1960-03-01"}}, {"resource": {"resourceType": "Condition", "onsetDateTime": "2018-04-01T10:00:00Z",
 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}}},
 {"resource": {"resourceType": "Observation", "effectiveDateTime": "2018-04-01", "code": {"coding": [{"system":
 "http://loinc.org", "code": "2345-7"}]}, "valueQuantity": {"value": 180, "unit": "mg/dL"}}}]}
JSON
cat > "$out/serve_request/seeds/prefetch.json" <<'JSON'
{"patient": {"resourceType": "Patient", "id": "p1"}, "encounters": {"resourceType": "Bundle", "entry": [{"resource":
 {"resourceType": "Encounter", "period": {"start": "2018-04-01T09:00:00Z"}, "class": {"system":
 "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}}]}, "conditions": null}
JSON
cat > "$out/serve_request.dict" <<'DICT'
"subject_id"
"prediction_time"
"events"
"code"
"time"
"numeric_value"
"resourceType"
"Bundle"
"entry"
"resource"
"Patient"
"Observation"
"valueQuantity"
"coding"
"system"
"2020-02-29T23:59:60.999999-23:59"
DICT

# 4. Run each target. libFuzzer exits non-zero and writes crash-* into crashes/ on any failure.
status=0
for t in $targets; do
  d=$out/$t
  say "$t: running for ${secs}s: corpus $d/corpus ($(ls "$d/corpus" | wc -l) files), seeds $(ls "$d/seeds" | wc -l)"
  log=$d/fuzz.log
  set +e
  "$out/fuzz_$t" "$d/corpus" "$d/seeds" -dict="$out/$t.dict" -max_total_time="$secs" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$d/crashes/" \
    >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -2 >&2 || true
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  speed=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -Eo 'cov: [0-9]+' | grep -Eo '[0-9]+' || echo "?")
  ft=$(echo "$last" | grep -Eo 'ft: [0-9]+' | grep -Eo '[0-9]+' || echo "?")
  corp=$(echo "$last" | grep -Eo 'corp: [0-9]+/[0-9]+[a-zA-Z]*' | cut -d' ' -f2 || echo "?")
  if [ $rc -ne 0 ]; then
    tail -40 "$log" >&2
    say "$t: FAILED (exit $rc): crash inputs in $d/crashes/ (log $log)"
    status=1
    continue
  fi
  say "$t: clean: ${secs}s, ${execs} executions (${speed}/s), coverage ${cov} edges, ${ft} features, corpus ${corp} (inputs/size) (log $log)"
done
exit $status
