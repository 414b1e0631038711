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
    t = pq.read_table(a.trajectories).to_pandas()
    oracle = pq.read_table(sorted(glob.glob(f"{a.oracle}/*.parquet"))).to_pandas()
    key = ["subject_id", "prediction_time"]
    t = t.sort_values(key + ["sample"])
    rows = t.groupby(key, sort=True)
    labels = rows["boolean_value"].first()
    truth = oracle.set_index(key)["true_probability"].reindex(labels.index)
    if truth.isna().any():
        sys.exit(f"{a.oracle}: no true probability for {int(truth.isna().sum())} of the rows")
    samples = int(rows.size().min())
    hit = np.stack(rows["hit"].apply(lambda s: s.to_numpy()[:samples].astype(float)).to_numpy())
    exp = np.stack(rows["expected"].apply(lambda s: s.to_numpy()[:samples]).to_numpy())
    y = labels.to_numpy().astype(int)
    p = truth.to_numpy()
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
