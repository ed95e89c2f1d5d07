#!/usr/bin/python3
"""scikit-learn side of bench/classic_bench.cpp: fits the scikit-learn models equivalent to
genmodels' lda / qda / gnb / bnb on exactly the feature matrices the C++ bench wrote, times fit and
predict, and writes predictions for the agreement check.

  /usr/bin/python3 bench/classic_reference.py --dir DIR --json OUT.json [--repeats 3]

DIR holds manifest.json ({"models": [{"name", "train", "test", "params"}...]}), the float32
feature matrices it names and train_y.npy. Features are converted to float64 before timing (the
genmodels models fit in float64; scikit-learn's LDA would otherwise keep float32).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.naive_bayes import BernoulliNB, GaussianNB


def make(name, p):
    if name == "lda":
        shrink = p["shrinkage"]
        shrink = None if shrink == "none" else ("auto" if shrink == "auto" else float(shrink))
        return LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrink)
    if name == "qda":
        return QuadraticDiscriminantAnalysis(reg_param=p["reg_param"])
    if name == "gnb":
        return GaussianNB(var_smoothing=p["var_smoothing"])
    if name == "bnb":
        return BernoulliNB(alpha=p["alpha"], binarize=p["binarize"])
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with open(os.path.join(a.dir, "manifest.json")) as f:
        man = json.load(f)
    y = np.load(os.path.join(a.dir, "train_y.npy"))
    cache = {}

    def feats(name):
        if name not in cache:
            cache[name] = np.load(os.path.join(a.dir, name + ".npy")).astype(np.float64)
        return cache[name]

    out = {"sklearn": __import__("sklearn").__version__, "numpy": np.__version__, "models": {}}
    for m in man["models"]:
        xtr, xte = feats(m["train"]), feats(m["test"])
        fit_t, pred_t = [], []
        for _ in range(a.repeats):
            clf = make(m["name"], m["params"])
            t0 = time.perf_counter()
            clf.fit(xtr, y)
            fit_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pred = clf.predict(xte)
            pred_t.append(time.perf_counter() - t0)
        np.save(os.path.join(a.dir, "sklearn_pred_" + m["name"] + ".npy"), pred.astype(np.int64))
        r = {"fit_s": statistics.median(fit_t), "predict_s": statistics.median(pred_t),
             "fit_times": fit_t}
        print(f"[sklearn] {m['name']}: fit {r['fit_s']:.3f} s, predict {r['predict_s']:.3f} s",
              flush=True)
        out["models"][m["name"]] = r
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
