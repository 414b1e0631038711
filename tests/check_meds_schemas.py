"""Checks chart's files with the MEDS ecosystem's own schemas (tests/test_meds_interop.cpp).

  labels DIR...          every *.parquet under each DIR passes meds.LabelSchema (no extra column)
  predictions FILE...    each file passes meds_evaluation's PredictionSchema, and
                         meds_evaluation.evaluate_binary_classification scores it
  data FILE...           each file passes meds.DataSchema (the sampled futures chart generate writes)
  float64 IN OUT         writes IN with predicted_boolean_probability as float64 (another tool's file)

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


def to_float64(src, dst):
    t = pq.read_table(src)
    i = t.schema.get_field_index("predicted_boolean_probability")
    t = t.set_column(i, "predicted_boolean_probability", t.column(i).cast(pa.float64()))
    pq.write_table(t, dst)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "float64":
        to_float64(*args)
    else:
        need_packages()
        {"labels": check_labels, "predictions": check_predictions, "data": check_data}[cmd](args)
