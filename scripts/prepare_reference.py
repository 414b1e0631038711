"""chart's MEDS tokenization (`chart prepare`) in plain Python (pyarrow + numpy): the reference
scripts/bench_prepare.sh times chart against, and checks chart's token shards with.

It computes what data/timeline.cpp, data/vocab_builder.cpp, data/vocab.cpp, data/time_bins.cpp
and data/tokenizer.cpp compute (rules: docs/data.md), on a MEDS root with split folders
(DIR/data/{train,tuning,held_out}/**.parquet), one input file at a time, vectorised over rows:

  vocabulary   keys (codes; MEDS_BIRTH -> BIRTH_YEAR//<5-year bucket>) in >= min_subjects distinct
               train subjects, most subjects first, ties by key; [PAD] [BOS] [UNK], TIME//..., Q1..Qn
               before them
  quantiles    per numeric code, cut points from its train values. By default the same bounded
               sample chart keeps (the 8192 values with the smallest splitmix64 priority of
               (subject, position)), so cut points equal chart's bit for bit; --quantiles exact
               uses every train value instead (equal to chart's only for codes with <= 8192 values)
  tokens       per subject [BOS] <static tokens> then per timed event <gap tokens> <code> [Qk];
               static tokens and [BOS] carry the birth time, the others their event's time

  python scripts/prepare_reference.py prepare --meds DIR --out OUT [--jobs N] [--quantiles sample|exact]
      writes OUT/vocab.tsv (same columns as chart's), OUT/<split>/shard_NNNNN.{tokens,times,subjects}.npy
      (uint32 token ids, int64 times in microseconds, and per subject (subject_id, start, n_tokens,
      birth_us)) and OUT/summary.json (rows, events, tokens, [UNK]s per split, seconds).
  python scripts/prepare_reference.py compare CHART_OUT PY_OUT [--sample N] [--seed S]
      reads chart's token dataset (vocab.tsv and the shard layout of data/token_shard.h) and the
      Python output, and compares the vocabulary (tokens, subject counts, cut points) and, for every
      subject (or a random sample of N), the token strings and times. Prints a JSON report; exits 0
      when they agree, 1 when not.

Input checks chart makes (types, NaN, time order, contiguous subjects, ...) are not repeated here:
the input is assumed valid MEDS. prepare.text (text_value tokens) is not implemented (chart's
default is off).
"""
import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SPLITS = ("train", "tuning", "held_out")
BIRTH_CODE = "MEDS_BIRTH"
BIRTH_BUCKET = 5
SAMPLE_SIZE = 8192  # chart's kValueSampleSize
# chart's prepare defaults (core/config.h)
MIN_SUBJECTS = 10
NUMERIC_BINS = 10
TIME_BINS = ["5m", "15m", "1h", "2h", "6h", "12h", "1d", "3d", "1w", "2w", "30d", "90d", "180d", "365d"]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 31557600}
PAD, BOS, UNK = 0, 1, 2
INDEX_DTYPE = np.dtype([("subject_id", "<i8"), ("token_start", "<u8"), ("n_tokens", "<u4"),
                        ("reserved", "<u4"), ("birth_us", "<i8")])


def parse_duration(text):
    i = 0
    while i < len(text) and text[i].isdigit():
        i += 1
    return int(text[:i]) * UNITS[text[i:]] * 1_000_000


def time_names(edges):
    return [f"TIME//{a}-{b}" for a, b in zip(edges, edges[1:])] + [f"TIME//>={edges[-1]}"]


def mix(x):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def find_files(meds):
    root = Path(meds) / "data"
    if not root.is_dir():
        sys.exit(f"{meds}: not a MEDS root with split folders (no data/ directory)")
    files = []
    for split_dir in sorted(root.iterdir()):
        if split_dir.is_dir():
            if split_dir.name not in SPLITS:
                sys.exit(f"{split_dir}: unknown split folder")
            files += [(p, split_dir.name) for p in split_dir.rglob("*.parquet")]
    files.sort(key=lambda f: str(f[0]))  # chart's order: by path
    if not files:
        sys.exit(f"{meds}: no parquet files under data/<split>/")
    return files


class Rows:
    """One MEDS file as numpy arrays, and its rows as chart's timeline items (static first)."""

    def __init__(self, path):
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        cols = ["subject_id", "time", "code"] + (["numeric_value"] if "numeric_value" in names else [])
        t = pf.read(columns=cols)
        self.n = t.num_rows
        sid = t.column("subject_id").to_numpy()
        tcol = t.column("time").combine_chunks()
        has_time = tcol.is_valid().to_numpy(zero_copy_only=False)
        us = tcol.cast(pa.int64()).fill_null(0).to_numpy()
        unit = tcol.type.unit
        if unit == "s":
            us = us * 1_000_000
        elif unit == "ms":
            us = us * 1000
        elif unit == "ns":
            us = us // 1000  # floor, as chart
        code = t.column("code").combine_chunks()
        if not pa.types.is_dictionary(code.type):
            code = pc.dictionary_encode(code)
        code_idx = code.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        dictionary = code.dictionary.to_pylist()
        if "numeric_value" in cols:
            v = t.column("numeric_value").combine_chunks()
            has_value = v.is_valid().to_numpy(zero_copy_only=False)
            value = v.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float32)
        else:
            has_value = np.zeros(self.n, bool)
            value = np.zeros(self.n, np.float32)
        del t, tcol, code

        # Subjects: contiguous runs of subject_id.
        new = np.empty(self.n, bool)
        new[0] = True
        np.not_equal(sid[1:], sid[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        g = np.cumsum(new) - 1  # subject index of each row
        self.subject_ids = sid[starts]
        self.n_subjects = len(starts)

        # The birth row: each subject's first timed MEDS_BIRTH row -> BIRTH_YEAR//<bucket>.
        birth_dict = np.array([c == BIRTH_CODE for c in dictionary] + [False])
        cand = np.flatnonzero(birth_dict[code_idx] & has_time)
        first = np.ones(len(cand), bool)
        first[1:] = g[cand[1:]] != g[cand[:-1]]
        birth_rows = cand[first]
        is_birth = np.zeros(self.n, bool)
        is_birth[birth_rows] = True
        years = us[birth_rows].astype("datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
        buckets = years - years % BIRTH_BUCKET
        ubuckets, binv = np.unique(buckets, return_inverse=True)
        self.keys = dictionary + [f"BIRTH_YEAR//{b}" for b in ubuckets]  # local key strings
        key = code_idx
        key[birth_rows] = len(dictionary) + binv

        # Birth time: the birth row's, else the first timed row's, else 0.
        birth_us = np.zeros(self.n_subjects, np.int64)
        timed = np.flatnonzero(has_time)
        tfirst = np.ones(len(timed), bool)
        tfirst[1:] = g[timed[1:]] != g[timed[:-1]]
        birth_us[g[timed[tfirst]]] = us[timed[tfirst]]
        birth_us[g[birth_rows]] = us[birth_rows]
        self.birth_us = birth_us

        # Items: static rows (no time, or the birth row) first, each group in file order.
        is_static = ~has_time | is_birth
        order_key = 2 * g + (~is_static)
        if np.any(order_key[1:] < order_key[:-1]):
            perm = np.argsort(order_key, kind="stable")
            key, us, value, has_value, is_static, is_birth = (
                a[perm] for a in (key, us, value, has_value, is_static, is_birth))
        self.g = g
        self.starts = starts
        self.key = key
        self.us = us
        self.value = value
        self.has_value = has_value & ~is_birth  # the birth item carries no value
        self.is_static = is_static


def count_file(path, quantiles):
    """Pass 1 over one train file: distinct subjects per key, and each numeric key's values (the
    bottom-k sample by priority, or all of them)."""
    r = Rows(path)
    nk = len(r.keys)
    pairs = np.unique(r.g * nk + r.key)
    subjects = np.bincount(pairs % nk, minlength=nk)
    counts = {r.keys[k]: int(subjects[k]) for k in np.flatnonzero(subjects)}
    vi = np.flatnonzero(r.has_value)
    vkey = r.key[vi]
    vals = r.value[vi]
    if quantiles == "sample":
        pos = (vi - r.starts[r.g[vi]]).astype(np.uint64)  # the item's position in its timeline
        pri = mix(mix(r.subject_ids[r.g[vi]].astype(np.uint64)) ^ pos)
        order = np.lexsort((pri, vkey))
        vkey, pri, vals = vkey[order], pri[order], vals[order]
        keep = bottom_k(vkey)
        vkey, pri, vals = vkey[keep], pri[keep], vals[keep]
    else:
        order = np.argsort(vkey, kind="stable")
        vkey, vals = vkey[order], vals[order]
        pri = np.zeros(len(vals), np.uint64)
    b = np.flatnonzero(np.r_[True, vkey[1:] != vkey[:-1], True]) if len(vkey) else np.zeros(1, np.int64)
    samples = {r.keys[vkey[i]]: (pri[i:j], vals[i:j]) for i, j in zip(b[:-1], b[1:])}
    return counts, samples, r.n


def bottom_k(sorted_keys):
    """Mask of the first SAMPLE_SIZE entries of each run of equal keys."""
    n = len(sorted_keys)
    new = np.ones(n, bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    return np.arange(n) - run_start < SAMPLE_SIZE


def tokenize_file(job):
    """Pass 2 over one file: tokens, times and the subject index, saved as .npy."""
    path, split, index, out, vocab, cuts, time_base, q_base, edges_us = job
    r = Rows(path)
    lut = np.array([vocab.get(k, UNK) for k in r.keys], np.uint32)
    tok = lut[r.key]
    unknown = int(np.count_nonzero(tok == UNK))

    # Quantile tokens: upper_bound in the code's cut points, capped at the last bin.
    q = np.full(r.n, -1, np.int64)
    vi = np.flatnonzero(r.has_value & (tok != UNK))
    vi = vi[np.argsort(tok[vi], kind="stable")]
    vt = tok[vi]
    bounds = np.flatnonzero(np.r_[True, vt[1:] != vt[:-1], True]) if len(vt) else np.zeros(1, np.int64)
    for a, b in zip(bounds[:-1], bounds[1:]):
        c = cuts[vt[a]]
        if len(c):
            rows = vi[a:b]
            q[rows] = q_base + np.minimum(np.searchsorted(c, r.value[rows], side="right"), NUMERIC_BINS - 1)
    has_q = q >= 0

    # Gap tokens before each timed item, from the previous timed item of the same subject.
    n_gap = np.zeros(r.n, np.int64)
    gap_tok = np.zeros(r.n, np.uint32)
    ti = np.flatnonzero(~r.is_static)
    same = r.g[ti[1:]] == r.g[ti[:-1]]
    cur = ti[1:][same]
    gap = r.us[cur] - r.us[ti[:-1][same]]
    last = edges_us[-1]
    n_gap[cur] = np.where(gap < edges_us[0], 0, np.where(gap >= last, gap // last, 1))
    gap_tok[cur] = time_base + np.searchsorted(edges_us, gap, side="right") - 1

    # Lay out [BOS] then per item <gaps> <code> [Q], subject after subject.
    per_item = n_gap + 1 + has_q
    item_off = np.cumsum(per_item) - per_item + r.g + 1
    n_tokens = int(per_item.sum()) + r.n_subjects
    tokens = np.empty(n_tokens, np.uint32)
    times = np.empty(n_tokens, np.int64)
    item_time = np.where(r.is_static, r.birth_us[r.g], r.us)
    subj_start = item_off[r.starts] - 1
    tokens[subj_start] = BOS
    times[subj_start] = r.birth_us
    gi = np.flatnonzero(n_gap)
    reps = n_gap[gi]
    within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    gpos = np.repeat(item_off[gi], reps) + within
    tokens[gpos] = np.repeat(gap_tok[gi], reps)
    times[gpos] = np.repeat(item_time[gi], reps)
    cpos = item_off + n_gap
    tokens[cpos] = tok
    times[cpos] = item_time
    qi = np.flatnonzero(has_q)
    tokens[cpos[qi] + 1] = q[qi]
    times[cpos[qi] + 1] = item_time[qi]

    subj = np.zeros(r.n_subjects, INDEX_DTYPE)
    subj["subject_id"] = r.subject_ids
    subj["token_start"] = subj_start
    subj["n_tokens"] = np.diff(np.r_[subj_start, n_tokens])
    subj["birth_us"] = r.birth_us
    stem = Path(out) / split / f"shard_{index:05d}"
    np.save(f"{stem}.tokens.npy", tokens)
    np.save(f"{stem}.times.npy", times)
    np.save(f"{stem}.subjects.npy", subj)
    return split, r.n_subjects, r.n, n_tokens, unknown


def fmt_float(x):
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def prepare(args):
    start = time.perf_counter()
    files = find_files(args.meds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        (out / s).mkdir(exist_ok=True)
    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    run = pool.map if pool else map

    # Pass 1: vocabulary from the train split.
    train = [p for p, s in files if s == "train"]
    counts, samples, train_rows = {}, {}, 0
    for c, smp, n in run(count_file, train, [args.quantiles] * len(train)):
        train_rows += n
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v  # a subject lives in one file: per-file counts add up
        for k, v in smp.items():
            samples.setdefault(k, []).append(v)
    kept = sorted(((k, s) for k, s in counts.items() if s >= args.min_subjects), key=lambda kv: (-kv[1], kv[0]))
    edges = TIME_BINS
    edges_us = np.array([parse_duration(e) for e in edges], np.int64)
    names = time_names(edges)
    tokens = ["[PAD]", "[BOS]", "[UNK]"] + names + [f"Q{q}" for q in range(1, NUMERIC_BINS + 1)]
    kinds = ["special"] * 3 + ["time"] * len(names) + ["quantile"] * NUMERIC_BINS
    subjects = [0] * len(tokens)
    time_base, q_base = 3, 3 + len(names)
    cuts = [np.zeros(0, np.float32)] * len(tokens)
    for k, s in kept:
        c = np.zeros(0, np.float32)
        if k in samples:
            pri = np.concatenate([p for p, _ in samples[k]])
            vals = np.concatenate([v for _, v in samples[k]])
            if args.quantiles == "sample" and len(vals) > SAMPLE_SIZE:
                vals = vals[np.argsort(pri, kind="stable")[:SAMPLE_SIZE]]
            vals = np.sort(vals)
            n = len(vals)
            picked = vals[np.minimum(n - 1, np.arange(1, NUMERIC_BINS) * n // NUMERIC_BINS)]
            c = [picked[0]]
            for x in picked[1:]:
                if x > c[-1]:
                    c.append(x)
            c = np.array(c, np.float32)
        tokens.append(k)
        kinds.append("code")
        subjects.append(s)
        cuts.append(c)
    vocab = {t: i for i, t in enumerate(tokens)}
    with open(out / "vocab.tsv", "w") as f:
        f.write("# chart vocabulary v1\nid\ttoken\tkind\tsubjects\tcuts\n")
        for i, (t, k, s, c) in enumerate(zip(tokens, kinds, subjects, cuts)):
            f.write(f"{i}\t{t}\t{k}\t{s}\t{','.join(fmt_float(x) for x in c)}\n")
    vocab_s = time.perf_counter() - start

    # Pass 2: tokens for every split.
    jobs = [(p, s, i, str(out), vocab, cuts, time_base, q_base, edges_us) for i, (p, s) in enumerate(files)]
    per_split = {s: {"subjects": 0, "events": 0, "tokens": 0, "unknown": 0, "shards": 0} for s in SPLITS}
    rows = 0
    for split, n_subj, n_rows, n_tok, unk in run(tokenize_file, jobs):
        d = per_split[split]
        d["subjects"] += n_subj
        d["events"] += n_rows  # with text off, one item per row
        d["tokens"] += n_tok
        d["unknown"] += unk
        d["shards"] += 1
        rows += n_rows
    if pool:
        pool.shutdown()
    summary = {"rows": rows, "train_rows": train_rows, "vocab_size": len(tokens), "codes_seen": len(counts),
               "splits": per_split, "jobs": args.jobs, "quantiles": args.quantiles,
               "seconds": round(time.perf_counter() - start, 3), "vocab_seconds": round(vocab_s, 3)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


# ---------------------------------------------------------------------------------------------
# compare: chart's token dataset vs this script's output


def read_vocab(path):
    lines = Path(path).read_text().split("\n")
    assert lines[0] == "# chart vocabulary v1" and lines[1] == "id\ttoken\tkind\tsubjects\tcuts", path
    toks, kinds, subjects, cuts = [], [], [], []
    for line in lines[2:]:
        if not line:
            continue
        i, t, k, s, c = line.split("\t")
        assert int(i) == len(toks)
        toks.append(t)
        kinds.append(k)
        subjects.append(int(s))
        cuts.append(np.array([np.float32(x) for x in c.split(",")] if c else [], np.float32))
    return toks, kinds, subjects, cuts


def read_chart_shard(path, vocab_sha):
    """A chart token shard (data/token_shard.h): 256-byte header, uint32 tokens, int64 times,
    32-byte subject entries."""
    raw = np.fromfile(path, np.uint8)
    h = raw[:256]
    if bytes(h[:8]) != b"CHARTTOK":
        raise ValueError(f"{path}: bad magic")
    version, header_bytes = h[8:16].view("<u4")
    n_subjects, n_tokens, tok_off, times_off, index_off, file_bytes = h[16:64].view("<u8")
    if version != 1 or header_bytes != 256 or file_bytes != len(raw):
        raise ValueError(f"{path}: unexpected header (version {version}, {file_bytes} bytes)")
    if bytes(h[64:96]).hex() != vocab_sha:
        raise ValueError(f"{path}: vocabulary hash differs from vocab.tsv's")
    tokens = raw[tok_off:tok_off + 4 * n_tokens].view("<u4")
    times = raw[times_off:times_off + 8 * n_tokens].view("<i8")
    index = raw[index_off:index_off + 32 * n_subjects].view(INDEX_DTYPE)
    return tokens, times, index


def load_all(shards):
    """Concatenated tokens/times and a subject index over several shards: {split: (tok, time, idx)}."""
    out = {}
    for split, parts in shards.items():
        toks, times, idx, base = [], [], [], 0
        for tk, tm, ix in parts:
            ix = ix.copy()
            ix["token_start"] += base
            base += len(tk)
            toks.append(tk)
            times.append(tm)
            idx.append(ix)
        if parts:
            out[split] = (np.concatenate(toks), np.concatenate(times), np.concatenate(idx))
    return out


def compare(args):
    chart_dir, py_dir = Path(args.chart_out), Path(args.py_out)
    report = {"vocab": {}, "subjects_compared": 0, "tokens_compared": 0, "mismatched_subjects": 0,
              "mismatch_kinds": {}, "examples": []}
    ct, ck, cs, cc = read_vocab(chart_dir / "vocab.tsv")
    pt, pk, ps, pc_ = read_vocab(py_dir / "vocab.tsv")
    v = report["vocab"]
    v["chart_size"], v["python_size"] = len(ct), len(pt)
    v["same_tokens_in_order"] = ct == pt
    v["same_kinds"] = ck == pk
    pidx = {t: i for i, t in enumerate(pt)}
    v["subject_count_diffs"] = sum(1 for i, t in enumerate(ct) if t in pidx and cs[i] != ps[pidx[t]])
    diff_cuts = [t for i, t in enumerate(ct) if t in pidx and not np.array_equal(cc[i], pc_[pidx[t]])]
    v["cut_point_diffs"] = len(diff_cuts)
    v["codes_with_cut_point_diffs"] = diff_cuts[:20]
    v["numeric_codes"] = sum(1 for c in cc if len(c))

    sha = hashlib.sha256((chart_dir / "vocab.tsv").read_bytes()).hexdigest()
    chart_sh = {s: [read_chart_shard(p, sha) for p in sorted((chart_dir / s).glob("shard_*.bin"))] for s in SPLITS}
    py_sh = {s: [(np.load(p), np.load(str(p).replace(".tokens.", ".times.")),
                  np.load(str(p).replace(".tokens.", ".subjects.")))
                 for p in sorted((py_dir / s).glob("shard_*.tokens.npy"))] for s in SPLITS}
    chart_all, py_all = load_all(chart_sh), load_all(py_sh)
    # chart token id -> the Python id of the same token string (-1: not in Python's vocabulary)
    c2p = np.array([pidx.get(t, -1) for t in ct], np.int64)
    q_ids = {i for i, k in enumerate(pk) if k == "quantile"}
    rng = np.random.default_rng(args.seed)
    for split in SPLITS:
        if split not in chart_all and split not in py_all:
            continue
        if (split in chart_all) != (split in py_all):
            report["mismatch_kinds"][f"{split}: split missing on one side"] = 1
            continue
        c_tok, c_time, c_idx = chart_all[split]
        p_tok, p_time, p_idx = py_all[split]
        c_ids, p_ids = c_idx["subject_id"], p_idx["subject_id"]
        if not np.array_equal(np.sort(c_ids), np.sort(p_ids)):
            report["mismatch_kinds"][f"{split}: different subject sets"] = 1
        common, ci, pi = np.intersect1d(c_ids, p_ids, return_indices=True)
        if args.sample and len(common) > args.sample:
            pick = np.sort(rng.choice(len(common), args.sample, replace=False))
            ci, pi = ci[pick], pi[pick]
        ce, pe = c_idx[ci], p_idx[pi]
        bad = (ce["n_tokens"] != pe["n_tokens"]) | (ce["birth_us"] != pe["birth_us"])
        # Gather every compared subject's tokens on both sides (equal lengths only).
        ok_len = ce["n_tokens"] == pe["n_tokens"]
        lens = ce["n_tokens"][ok_len].astype(np.int64)
        within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        cpos = np.repeat(ce["token_start"][ok_len].astype(np.int64), lens) + within
        ppos = np.repeat(pe["token_start"][ok_len].astype(np.int64), lens) + within
        owner = np.repeat(np.flatnonzero(ok_len), lens)
        ct_mapped = c2p[c_tok[cpos]]
        tok_bad = ct_mapped != p_tok[ppos].astype(np.int64)
        time_bad = c_time[cpos] != p_time[ppos]
        bad[owner[tok_bad | time_bad]] = True
        report["subjects_compared"] += len(ci)
        report["tokens_compared"] += int(ce["n_tokens"].sum())
        report["mismatched_subjects"] += int(bad.sum())
        kinds = report["mismatch_kinds"]
        if (~ok_len).any():
            kinds["token count"] = kinds.get("token count", 0) + int((~ok_len).sum())
        if (ce["birth_us"] != pe["birth_us"]).any():
            kinds["birth time"] = kinds.get("birth time", 0) + int((ce["birth_us"] != pe["birth_us"]).sum())
        if time_bad.any():
            kinds["token time"] = kinds.get("token time", 0) + int(time_bad.sum())
        if tok_bad.any():
            wrong = np.flatnonzero(tok_bad)
            q_arr = np.array(sorted(q_ids))
            isq = np.isin(ct_mapped[wrong], q_arr) & np.isin(p_tok[ppos[wrong]], q_arr)
            kinds["quantile token"] = kinds.get("quantile token", 0) + int(isq.sum())
            kinds["other token"] = kinds.get("other token", 0) + int((~isq).sum())
        for j in np.flatnonzero(bad)[:3]:
            if len(report["examples"]) >= 5:
                break
            a, b = ce[j], pe[j]
            cs_ = c_tok[a["token_start"]:a["token_start"] + a["n_tokens"]]
            ps_ = p_tok[b["token_start"]:b["token_start"] + b["n_tokens"]]
            cstr, pstr = [ct[t] for t in cs_], [pt[t] for t in ps_]
            first = next((k for k in range(min(len(cstr), len(pstr))) if cstr[k] != pstr[k]), min(len(cstr), len(pstr)))
            report["examples"].append({"split": split, "subject_id": int(a["subject_id"]), "at": first,
                                       "chart": cstr[max(0, first - 3):first + 4],
                                       "python": pstr[max(0, first - 3):first + 4]})
    # Per-split counts: chart's manifest vs Python's summary.
    man = json.loads((chart_dir / "manifest.json").read_text())["splits"]
    summ = json.loads((py_dir / "summary.json").read_text())["splits"]
    report["count_diffs"] = {s: {k: [man[s][k], summ[s][k]] for k in ("subjects", "events", "tokens", "unknown")
                                 if man[s][k] != summ[s][k]} for s in SPLITS if s in man}
    report["count_diffs"] = {s: d for s, d in report["count_diffs"].items() if d}
    report["agree"] = (v["same_tokens_in_order"] and v["same_kinds"] and not v["subject_count_diffs"]
                       and not v["cut_point_diffs"] and not report["mismatched_subjects"]
                       and not report["mismatch_kinds"] and not report["count_diffs"])
    print(json.dumps(report, indent=1))
    return 0 if report["agree"] else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--meds", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--jobs", type=int, default=1, help="processes, one input file each (default 1)")
    p.add_argument("--quantiles", choices=["sample", "exact"], default="sample")
    p.add_argument("--min-subjects", type=int, default=MIN_SUBJECTS)
    c = sub.add_parser("compare")
    c.add_argument("chart_out")
    c.add_argument("py_out")
    c.add_argument("--sample", type=int, default=0, help="subjects per split to compare (0: all)")
    c.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args)
    else:
        sys.exit(compare(args))


if __name__ == "__main__":
    main()
