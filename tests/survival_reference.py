"""scikit-survival's metrics on survival curves chart scored: the reference for
tests/test_time_to_event.cpp.

  survival_reference.py IN.json OUT.json
IN: time, event (per row), score (a risk score per row, for Harrell's C), grid and survival
([row][grid] S(t)) for Brier scores, horizons and risk ([row][horizon] 1 - S(h)) for the AUROC.
OUT: harrell_c, brier (per grid point), auroc (per horizon).
"""
import json
import sys

import numpy as np
from sksurv.metrics import brier_score, concordance_index_censored, cumulative_dynamic_auc
from sksurv.util import Surv


def main(src, dst):
    d = json.load(open(src))
    y = Surv.from_arrays(event=np.array(d["event"], dtype=bool), time=np.array(d["time"], dtype=float))
    c = concordance_index_censored(y["event"], y["time"], np.array(d["score"]))[0]
    _, brier = brier_score(y, y, np.array(d["survival"]), np.array(d["grid"]))
    auroc, _ = cumulative_dynamic_auc(y, y, np.array(d["risk"]), np.array(d["horizons"]))
    json.dump({"harrell_c": float(c), "brier": [float(b) for b in brier], "auroc": [float(a) for a in auroc]},
              open(dst, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
