"""Runs chart's MEDS-DEV entry (meds_dev/chart/model.yaml) the way MEDS-DEV runs a model, on
synthetic MEDS data with labels made by ACES (es-aces), and checks the predictions it leaves
with meds-evaluation (tests/test_meds_interop.cpp).

  check_meds_dev.py CHART_BINARY WORKDIR

MEDS-DEV formats each command with str.format ({dataset_dir}, {labels_dir}, {output_dir},
{model_dir}, {model_initialization_dir}, {split}, {demo}) and runs it in a shell; the
supervised train stage starts from the unsupervised stage's output_dir, predict from the
supervised train stage's. Exits 77 (a skip) when es-aces, meds or meds-evaluation is missing.
"""
import os
import pathlib
import subprocess
import sys

import pyarrow.parquet as pq
import yaml

# ACES task: at every outpatient visit, death within a year.
TASK = """\
predicates:
  visit:
    code: VISIT//OUTPATIENT
  death:
    code: MEDS_DEATH
trigger: visit
windows:
  input:
    start: null
    end: trigger
    start_inclusive: True
    end_inclusive: True
    index_timestamp: end
  target:
    start: input.end
    end: start + 365d
    start_inclusive: False
    end_inclusive: True
    label: death
"""


def need_packages():
    try:
        import aces  # noqa: F401
        import meds  # noqa: F401
        import meds_evaluation  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed in {sys.executable} (pip install -r scripts/requirements.txt)")
        sys.exit(77)


def run(cmd, cwd, env):
    print(f"$ {cmd}", flush=True)
    subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, check=True)


def aces_labels(meds_dir, work, env):
    """One ACES label file per data shard, under labels/<shard path>, as MEDS-DEV lays them out."""
    task = work / "task.yaml"
    task.write_text(TASK)
    aces = pathlib.Path(sys.executable).parent / "aces-cli"
    for shard in sorted((meds_dir / "data").rglob("*.parquet")):
        out = work / "labels" / shard.relative_to(meds_dir / "data")
        run(f'"{aces}" config_path="{task}" data.standard=meds data.path="{shard}" output_filepath="{out}" '
            f'cohort_dir="{work}" cohort_name=aces', work, env)
    return work / "labels"


def main(chart, work):
    need_packages()
    from meds_evaluation.evaluate import evaluate_binary_classification
    from meds_evaluation.schema import PredictionSchema
    import polars as pl

    root = pathlib.Path(__file__).resolve().parent.parent
    model_dir = root / "meds_dev" / "chart"
    commands = yaml.safe_load((model_dir / "model.yaml").read_text())["commands"]
    work = pathlib.Path(work).resolve()
    chart = pathlib.Path(chart).resolve()
    env = dict(os.environ, PATH=f"{pathlib.Path(chart).resolve().parent}:{os.environ['PATH']}")
    meds_dir = work / "meds"
    run(f'"{chart}" synth --out "{meds_dir}" --subjects 400 --seed 3', work, env)
    labels = aces_labels(meds_dir, work, env)

    stages = [("unsupervised", "train"), ("supervised", "train"), ("supervised", "predict")]
    kwargs = {"dataset_dir": str(meds_dir), "model_dir": str(model_dir), "demo": True, "labels_dir": str(labels)}
    for kind, mode in stages:
        out = work / "run" / kind / mode
        out.mkdir(parents=True)
        kwargs["output_dir"] = str(out)
        if mode == "predict":
            kwargs["split"] = "held_out"
        run(commands[kind][mode].format(**kwargs), out, env)
        if mode != "predict":
            kwargs["model_initialization_dir"] = str(out)

    predictions = pq.read_table(work / "run" / "supervised" / "predict" / "predictions.parquet")
    PredictionSchema.validate(predictions)
    held_out = pq.read_table(labels / "held_out")
    if predictions.num_rows != held_out.num_rows:
        sys.exit(f"{predictions.num_rows} predictions for {held_out.num_rows} held_out label rows")
    key = lambda t: sorted(zip(t.column("subject_id").to_pylist(), t.column("prediction_time").to_pylist(),
                               t.column("boolean_value").to_pylist()))
    if key(predictions) != key(held_out):
        sys.exit("the predictions' (subject_id, prediction_time, boolean_value) are not the held_out labels'")
    metrics = evaluate_binary_classification(pl.from_arrow(predictions))["samples_equally_weighted"]
    print(f"meds_dev: {predictions.num_rows} held_out predictions pass PredictionSchema; "
          f"meds-evaluation roc_auc_score {metrics.get('roc_auc_score')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
