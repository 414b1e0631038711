"""Fixtures for tests/test_finetune.cpp, on a MEDS dataset written by `chart synth`.

  labels MEDS OUT           one label row per subject: prediction_time = the time of the middle
                            timed event, boolean_value = the subject dies later in the record
                            (about one in five do; strongly age-driven, so learnable from little data)
  classes MEDS OUT         the same rows with three-class labels, in two label sets:
                            OUT/categorical (categorical_value: "died" when the subject dies later,
                            else "older" or "younger" than the survivors' median age at
                            prediction_time) and OUT/integer (integer_value: the tertile of the age at
                            prediction_time, 0, 1 or 2); both learnable, and not by one class alone;
                            and OUT/float (float_value: the age at prediction_time in years)
  times MEDS PREDICTIONS     checks a time-to-event predictions.parquet (chart eval, event MEDS_DEATH)
                            against MEDS itself: each row's time_to_event_days is the time from
                            prediction_time to the first MEDS_DEATH after it, else to the subject's
                            last timed event (event_observed false)
  perturb MEDS LABELS OUT WHEN
                            a copy of MEDS in which every held_out subject's events are changed
                            WHEN = after: only events strictly after the subject's prediction_time
                            (codes renamed, values scaled, events added and removed)
                            WHEN = before: only the last event at or before prediction_time
"""
import pathlib
import shutil
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def data_files(meds):
    return sorted(pathlib.Path(meds, "data").rglob("*.parquet"))


def labelled_subjects(meds):
    """(subject, events, prediction_time, dies later) of every subject with two timed events:
    prediction_time is the time of the middle one (births and deaths not counted)."""
    for f in data_files(meds):
        t = pq.read_table(f).to_pydict()
        by_subject = {}
        for s, time, code in zip(t["subject_id"], t["time"], t["code"]):
            by_subject.setdefault(s, []).append((time, code))
        for s, events in by_subject.items():
            timed = [e for e in events if e[0] is not None and e[1] not in ("MEDS_BIRTH", "MEDS_DEATH")]
            if len(timed) < 2:
                continue
            pt = timed[len(timed) // 2][0]
            died = any(code == "MEDS_DEATH" and time is not None and time > pt for time, code in events)
            yield s, events, pt, died


def make_labels(meds, out):
    rows = {"subject_id": [], "prediction_time": [], "boolean_value": []}
    for s, _, pt, died in labelled_subjects(meds):
        rows["subject_id"].append(s)
        rows["prediction_time"].append(pt)
        rows["boolean_value"].append(died)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("subject_id", pa.int64()), ("prediction_time", pa.timestamp("us")),
                        ("boolean_value", pa.bool_())])
    pq.write_table(pa.table(rows, schema=schema), out / "labels.parquet")


def make_class_labels(meds, out):
    rows = []  # (subject, prediction_time, died, age at prediction_time in days)
    for s, events, pt, died in labelled_subjects(meds):
        births = [time for time, code in events if code == "MEDS_BIRTH" and time is not None]
        if births:
            rows.append((s, pt, died, (pt - births[0]).days))
    survivors = sorted(r[3] for r in rows if not r[2])
    median = survivors[len(survivors) // 2]
    ages = sorted(r[3] for r in rows)
    cuts = (ages[len(ages) // 3], ages[2 * len(ages) // 3])
    sets = {
        "categorical": ("categorical_value", pa.string(),
                        ["died" if d else ("older" if a >= median else "younger") for _, _, d, a in rows]),
        "integer": ("integer_value", pa.int64(), [int(a >= cuts[0]) + int(a >= cuts[1]) for _, _, _, a in rows]),
        "float": ("float_value", pa.float32(), [a / 365.25 for _, _, _, a in rows]),
    }
    for name, (column, kind, values) in sets.items():
        d = pathlib.Path(out, name)
        d.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([("subject_id", pa.int64()), ("prediction_time", pa.timestamp("us")), (column, kind)])
        table = {"subject_id": [r[0] for r in rows], "prediction_time": [r[1] for r in rows], column: values}
        pq.write_table(pa.table(table, schema=schema), d / "labels.parquet")


def perturb(meds, labels, out, when):
    shutil.copytree(meds, out)
    pt = {}
    lt = pq.read_table(pathlib.Path(labels) / "labels.parquet").to_pydict()
    for s, p in zip(lt["subject_id"], lt["prediction_time"]):
        pt[s] = min(p, pt.get(s, p))
    changed = 0
    for f in data_files(out):
        if "held_out" not in f.parts:
            continue
        table = pq.read_table(f)
        d = table.to_pydict()
        n = len(d["subject_id"])
        keep = []
        last_before = {}
        for i in range(n):
            s, time = d["subject_id"][i], d["time"][i]
            if s in pt and time is not None and time <= pt[s]:
                last_before[s] = i
        new = {k: [] for k in d}
        for i in range(n):
            s, time = d["subject_id"][i], d["time"][i]
            row = {k: d[k][i] for k in d}
            if s in pt and when == "after" and time is not None and time > pt[s]:
                changed += 1
                if i % 3 == 0:
                    continue  # removed
                row["code"] = "MEDS_DEATH" if i % 3 == 1 else "HOSPITAL_ADMISSION"
                if row["numeric_value"] is not None:
                    row["numeric_value"] = row["numeric_value"] * 3 + 1
            if s in pt and when == "before" and last_before.get(s) == i:
                changed += 1
                row["code"] = "HOSPITAL_ADMISSION" if row["code"] != "HOSPITAL_ADMISSION" else "VISIT//OUTPATIENT"
                row["numeric_value"] = None
            for k in d:
                new[k].append(row[k])
            # An extra event right after the prediction time.
            if s in pt and when == "after" and last_before.get(s) == i:
                extra = dict(row, time=pt[s] + __import__("datetime").timedelta(microseconds=1), code="MEDS_DEATH",
                             numeric_value=None)
                for k in d:
                    new[k].append(extra[k])
                changed += 1
        pq.write_table(pa.table(new, schema=table.schema), f)
    if changed == 0:
        sys.exit("perturb: nothing changed")


def check_times(meds, predictions):
    times = {}
    for f in data_files(meds):
        t = pq.read_table(f).to_pydict()
        for s, time, code in zip(t["subject_id"], t["time"], t["code"]):
            if time is not None:
                times.setdefault(s, []).append((time, code))
    p = pq.read_table(predictions).to_pydict()
    bad = 0
    for s, pt, days, seen in zip(p["subject_id"], p["prediction_time"], p["time_to_event_days"], p["event_observed"]):
        events = sorted(times[s])
        deaths = [t for t, code in events if code == "MEDS_DEATH" and t > pt]
        end = deaths[0] if deaths else events[-1][0]
        want = (end - pt).total_seconds() / 86400
        if bool(deaths) != seen or abs(want - days) > 1e-3 * max(1.0, want):
            bad += 1
            print(f"subject {s} at {pt}: chart says {days:.4f} days, event {seen}; MEDS says {want:.4f}, {bool(deaths)}")
    if bad or not p["subject_id"]:
        sys.exit(f"times: {bad} of {len(p['subject_id'])} rows disagree with {meds}")
    print(f"times: {len(p['subject_id'])} rows agree, {sum(p['event_observed'])} with the event")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "labels":
        make_labels(sys.argv[2], sys.argv[3])
    elif cmd == "classes":
        make_class_labels(sys.argv[2], sys.argv[3])
    elif cmd == "times":
        check_times(sys.argv[2], sys.argv[3])
    elif cmd == "perturb":
        perturb(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(f"unknown command {cmd}")
