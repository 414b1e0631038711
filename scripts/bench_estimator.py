#!/usr/bin/env python3
"""AUROC of chart generate's two zero-shot risk estimators against the number of samples.

    bench_estimator.py TRAJECTORIES ORACLE_DIR [--ks 1,2,5,10,20,50]

TRAJECTORIES is the trajectories.parquet of a `chart generate --set generate.trajectories=true`
run (one row per sampled trajectory); ORACLE_DIR the synthetic labels' true probabilities
(meds/oracle/<task>/<split>/). For each k, the samples of every row are cut into floor(S / k)
disjoint groups of k; each group gives every row a hit fraction and an expected estimate
(infer/risk.h), and the AUROC of each against the labels is averaged over the groups (so the
figure for k is not one lucky draw). Prints a markdown table with the oracle's AUROC beside it,
and the mean squared error of each estimator against the true probability.
"""
import argparse
import glob
import sys

import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trajectories")
    ap.add_argument("oracle")
    ap.add_argument("--ks", default="1,2,5,10,20,50")
    a = ap.parse_args()
    key = ["subject_id", "prediction_time"]
    t = pq.read_table(a.trajectories).sort_by([(k, "ascending") for k in key + ["sample"]])
    oracle = pq.read_table(sorted(glob.glob(f"{a.oracle}/*.parquet")))
    truth = {(s, p): q for s, p, q in zip(oracle["subject_id"].to_pylist(), oracle["prediction_time"].cast("int64").to_pylist(),
                                          oracle["true_probability"].to_pylist())}
    sid = t["subject_id"].to_numpy()
    ptime = t["prediction_time"].cast("int64").to_numpy()
    # Rows of the same (subject, prediction_time) are consecutive after the sort.
    starts = np.flatnonzero(np.r_[True, (sid[1:] != sid[:-1]) | (ptime[1:] != ptime[:-1])])
    counts = np.diff(np.r_[starts, len(sid)])
    samples = int(counts.min())
    if samples != int(counts.max()):
        sys.exit(f"{a.trajectories}: rows have {counts.min()} to {counts.max()} samples")
    hit = t["hit"].to_numpy(zero_copy_only=False).astype(float).reshape(-1, samples)
    exp = t["expected"].to_numpy().reshape(-1, samples)
    y = t["boolean_value"].to_numpy(zero_copy_only=False)[starts].astype(int)
    missing = [(int(sid[i]), int(ptime[i])) for i in starts if (int(sid[i]), int(ptime[i])) not in truth]
    if missing:
        sys.exit(f"{a.oracle}: no true probability for {len(missing)} of the rows")
    p = np.array([truth[(int(sid[i]), int(ptime[i]))] for i in starts])
    print(f"{len(y)} rows ({y.sum()} positive), {samples} samples each; oracle AUROC "
          f"{roc_auc_score(y, p):.3f}\n")
    print("| samples | AUROC, hit fraction | AUROC, expected | MSE vs true P, hit fraction | MSE, expected | groups |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in [int(x) for x in a.ks.split(",")]:
        if k > samples:
            continue
        groups = samples // k
        au_h, au_e, mse_h, mse_e = [], [], [], []
        for g in range(groups):
            h = hit[:, g * k:(g + 1) * k].mean(axis=1)
            e = np.clip(exp[:, g * k:(g + 1) * k].mean(axis=1), 0, 1)
            au_h.append(roc_auc_score(y, h))
            au_e.append(roc_auc_score(y, e))
            mse_h.append(np.mean((h - p) ** 2))
            mse_e.append(np.mean((e - p) ** 2))
        print(f"| {k} | {np.mean(au_h):.3f} | {np.mean(au_e):.3f} | {np.mean(mse_h):.2e} | {np.mean(mse_e):.2e} | {groups} |")


if __name__ == "__main__":
    main()
