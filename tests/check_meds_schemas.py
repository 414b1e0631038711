"""Checks chart's files with the MEDS ecosystem's own schemas (tests/test_meds_interop.cpp).

  labels DIR...          every *.parquet under each DIR passes meds.LabelSchema (no extra column)
  predictions FILE...    each file passes meds_evaluation's PredictionSchema, and
                         meds_evaluation.evaluate_binary_classification scores it
  data FILE...           each file passes meds.DataSchema (the sampled futures chart generate writes)
  unlabelled FILE...     each file passes PredictionSchema and has no boolean_value (chart predict)
  float64 IN OUT         writes IN with predicted_boolean_probability as float64 (another tool's file)
  shift SRC DST          copies the MEDS dataset SRC to DST as "another site": every third event
                         (but births, deaths and sex) gets a local code the first site never had
                         ("SITE_B//<code>")

Exits 77 (a skip for the test) when the meds or meds-evaluation package is not installed.
"""
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def need_packages():
    try:
        import meds  # noqa: F401
        import meds_evaluation  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed in {sys.executable} (pip install -r scripts/requirements.txt)")
        sys.exit(77)


def check_labels(dirs):
    from meds import LabelSchema

    n = 0
    for d in dirs:
        for f in sorted(pathlib.Path(d).rglob("*.parquet")):
            LabelSchema.validate(pq.read_table(f))
            n += 1
    if n == 0:
        sys.exit(f"no label files under {dirs}")
    print(f"labels: {n} files pass meds.LabelSchema")


def check_predictions(files):
    import polars as pl
    from meds_evaluation.evaluate import evaluate_binary_classification
    from meds_evaluation.schema import PredictionSchema

    for f in files:
        table = pq.read_table(f)
        PredictionSchema.validate(table)
        metrics = evaluate_binary_classification(pl.from_arrow(table))["samples_equally_weighted"]
        print(f"predictions: {f} passes PredictionSchema ({table.num_rows} rows); "
              f"meds-evaluation roc_auc_score {metrics.get('roc_auc_score')}")


def check_data(files):
    from meds import DataSchema

    for f in files:
        table = pq.read_table(f)
        DataSchema.validate(table)
        print(f"data: {f} passes meds.DataSchema ({table.num_rows} rows, columns {table.column_names})")


def check_unlabelled(files):
    from meds_evaluation.schema import PredictionSchema

    for f in files:
        table = pq.read_table(f)
        PredictionSchema.validate(table)
        if "boolean_value" in table.column_names:
            sys.exit(f"{f}: predictions without labels carry a boolean_value column")
        print(f"unlabelled: {f} passes PredictionSchema ({table.num_rows} rows, columns {table.column_names})")


def shift_site(src, dst):
    import shutil

    src, dst = pathlib.Path(src), pathlib.Path(dst)
    shutil.copytree(src / "metadata", dst / "metadata")
    if (src / "labels").exists():
        shutil.copytree(src / "labels", dst / "labels")
    for f in sorted((src / "data").rglob("*.parquet")):
        t = pq.read_table(f)
        codes = t.column("code").to_pylist()
        shifted = [("SITE_B//" + c) if i % 3 == 0 and not c.startswith("MEDS_") and not c.startswith("GENDER")
                   else c for i, c in enumerate(codes)]
        t = t.set_column(t.schema.get_field_index("code"), t.schema.field("code"), pa.array(shifted, t.schema.field("code").type))
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, out)
    print(f"shift: {dst} written")


def to_float64(src, dst):
    t = pq.read_table(src)
    i = t.schema.get_field_index("predicted_boolean_probability")
    t = t.set_column(i, "predicted_boolean_probability", t.column(i).cast(pa.float64()))
    pq.write_table(t, dst)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "float64":
        to_float64(*args)
    elif cmd == "shift":
        shift_site(*args)
    else:
        need_packages()
        {"labels": check_labels, "predictions": check_predictions, "data": check_data,
         "unlabelled": check_unlabelled}[cmd](args)
