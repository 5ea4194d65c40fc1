#!/usr/bin/env python3
"""Helper of scripts/bench-tabular.sh: scikit-learn's toy classification data sets on
their natural (raw) scale, and scikit-learn's scaled logistic-regression baseline.

  bench_tabular.py export DIR   writes DIR/<name>-train.csv and DIR/<name>-test.csv for
                                iris, wine, breast_cancer, digits: a header row
                                f0,...,f{n-1},label, then the raw features (%r, no scaling)
                                and the integer label last. Split: stratified, a held-out
                                quarter, random_state=0.
  bench_tabular.py sklearn DIR  fits StandardScaler + LogisticRegression(max_iter=1000) on
                                each train CSV and prints `<name> <test accuracy>`.

Run it with a Python that has scikit-learn and numpy (bench-tabular.sh uses the venv).
"""
import os
import sys

DATASETS = ["iris", "wine", "breast_cancer", "digits"]
SEED = 0
TEST_FRACTION = 0.25


def load(name):
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    return d.data, d.target


def write(path, X, y):
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(X.shape[1])] + ["label"]) + "\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")


def read(path):
    import numpy as np

    a = np.loadtxt(path, delimiter=",", skiprows=1)
    return a[:, :-1], a[:, -1].astype(int)


def export(out):
    from sklearn.model_selection import train_test_split

    os.makedirs(out, exist_ok=True)
    for name in DATASETS:
        X, y = load(name)
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
        )
        write(os.path.join(out, f"{name}-train.csv"), Xtr, ytr)
        write(os.path.join(out, f"{name}-test.csv"), Xte, yte)
        print(f"{name}: {len(ytr)} train / {len(yte)} test rows, {X.shape[1]} features, "
              f"max |x| {abs(X).max():g}", file=sys.stderr)


def sklearn_baseline(out):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for name in DATASETS:
        Xtr, ytr = read(os.path.join(out, f"{name}-train.csv"))
        Xte, yte = read(os.path.join(out, f"{name}-test.csv"))
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(Xtr, ytr)
        print(f"{name} {clf.score(Xte, yte):.4f}")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "sklearn"):
        sys.exit(__doc__)
    {"export": export, "sklearn": sklearn_baseline}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
