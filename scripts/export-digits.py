#!/usr/bin/env python3
"""Export scikit-learn's 8x8 digits to CSV for trainchain-trainer.

Writes DIR/digits-train.csv and DIR/digits-test.csv (default DIR: trainer-offchain/testdata):
a header row `p0,...,p63,label`, then one row per image with the 64 pixels scaled to
[0, 1] (pixel / 16, exact, printed with %g) and the integer label 0-9.
Split: a fixed, stratified 80/20 split with seed 1234 (1437 train / 360 test rows).

Usage: scripts/export-digits.py [DIR]
If scikit-learn is not importable, the script re-runs itself inside the venv
/var/tmp/trainchain-venv (created, and `pip install scikit-learn` from PyPI, if needed).
"""
import os
import subprocess
import sys

VENV = os.environ.get("TRAINCHAIN_VENV", "/var/tmp/trainchain-venv")
SEED = 1234
TEST_FRACTION = 0.2


def ensure_sklearn():
    try:
        import sklearn  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("TRAINCHAIN_EXPORT_REEXEC"):
        sys.exit("scikit-learn still missing inside the venv")
    py = os.path.join(VENV, "bin", "python3")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([py, "-c", "import sklearn"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q", "scikit-learn"])
    env = dict(os.environ, TRAINCHAIN_EXPORT_REEXEC="1")
    os.execve(py, [py, os.path.abspath(__file__), *sys.argv[1:]], env)


def write(path, X, y):
    with open(path, "w") as f:
        f.write(",".join([f"p{i}" for i in range(X.shape[1])] + ["label"]) + "\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:g}" for v in row) + f",{int(label)}\n")


def main():
    ensure_sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "trainer-offchain", "testdata")
    os.makedirs(out, exist_ok=True)
    d = load_digits()
    X = d.data / 16.0
    Xtr, Xte, ytr, yte = train_test_split(
        X, d.target, test_size=TEST_FRACTION, random_state=SEED, stratify=d.target
    )
    write(os.path.join(out, "digits-train.csv"), Xtr, ytr)
    write(os.path.join(out, "digits-test.csv"), Xte, yte)
    print(f"wrote {len(ytr)} train / {len(yte)} test rows to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
