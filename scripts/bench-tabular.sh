#!/usr/bin/env bash
# Tabular benchmark: `trainchain-trainer train` with DEFAULTS on scikit-learn's toy
# classification data sets on their natural (raw) scale, against scikit-learn's scaled
# logistic regression (StandardScaler + LogisticRegression(max_iter=1000)).
#
# Data: iris, wine, breast_cancer, digits, raw features (digits: pixel counts 0-16, not the
# /16 of testdata/), a stratified held-out quarter (random_state=0), exported to CSV
# (features..., label last, header row) by scripts/bench_tabular.py. Prints one line per
# data set and model:
#   bench-tabular data=wine model=mlp acc=0.978 sklearn_acc=1.000 gap_points=2.2 exit=0
# acc = the trainer's test accuracy after the last epoch (`train --test ... --json`),
# gap_points = (sklearn_acc - acc) * 100 (positive: the trainer is behind), exit = the
# exit status of `train` (non-zero: it diverged or did not converge, and saved no model; acc is
# then the last epoch's accuracy of the failed run, nan if none).
#
# Env: DATASETS ("iris wine breast_cancer digits"), MODELS ("mlp logreg"), PROFILE (debug
# or release; debug reuses the test build), TRAIN_ARGS (extra `train` flags, e.g.
# "--no-standardize" to see the behaviour before standardisation), CARGO_TARGET_DIR,
# TRAINCHAIN_VENV (/var/tmp/trainchain-venv; created with `pip install scikit-learn numpy`
# from PyPI if missing), BENCH_DIR (where the CSVs go; default a fresh temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-"iris wine breast_cancer digits"}
MODELS=${MODELS:-"mlp logreg"}
PROFILE=${PROFILE:-debug}
TRAIN_ARGS=${TRAIN_ARGS:-}
VENV=${TRAINCHAIN_VENV:-/var/tmp/trainchain-venv}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /var/tmp/bench-tabular.XXXXXX)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/trainchain-target-trainer}
export SKIP_WASM_BUILD=1

if [[ ! -x "$VENV/bin/python3" ]]; then
  echo "== creating venv $VENV" >&2
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python3" -c "import sklearn, numpy" 2>/dev/null; then
  echo "== pip install scikit-learn numpy (from PyPI)" >&2
  "$VENV/bin/pip" install -q scikit-learn numpy >&2
fi
PY="$VENV/bin/python3"

echo "== building trainchain-trainer ($PROFILE)" >&2
if [[ "$PROFILE" == release ]]; then
  nice -n 10 cargo build --release -p trainchain-trainer --bin trainchain-trainer >&2
else
  nice -n 10 cargo build -p trainchain-trainer --bin trainchain-trainer >&2
fi
BIN="$CARGO_TARGET_DIR/$PROFILE/trainchain-trainer"

echo "== exporting data to $BENCH_DIR" >&2
"$PY" scripts/bench_tabular.py export "$BENCH_DIR"
declare -A SK
while read -r name acc; do SK[$name]=$acc; done < <("$PY" scripts/bench_tabular.py sklearn "$BENCH_DIR")

for data in $DATASETS; do
  for model in $MODELS; do
    log="$BENCH_DIR/$data-$model.jsonl"
    set +e
    # shellcheck disable=SC2086 # TRAIN_ARGS is a list of flags
    "$BIN" train --model "$model" --data "$BENCH_DIR/$data-train.csv" \
      --test "$BENCH_DIR/$data-test.csv" --json --out "$BENCH_DIR/$data-$model.safetensors" \
      $TRAIN_ARGS >"$log" 2>"$BENCH_DIR/$data-$model.err"
    code=$?
    set -e
    [[ $code == 0 ]] || sed 's/^/  /' "$BENCH_DIR/$data-$model.err" >&2
    "$PY" - "$log" "$data" "$model" "${SK[$data]}" "$code" <<'PY'
import json, sys
log, data, model, sk, code = sys.argv[1:]
acc = float("nan")  # the last epoch's test accuracy (also when `train` failed)
for line in open(log):
    ev = json.loads(line)
    if ev.get("event") in ("epoch", "done") and ev.get("test_accuracy") is not None:
        acc = ev["test_accuracy"]
sk = float(sk)
print(f"bench-tabular data={data} model={model} acc={acc:.3f} sklearn_acc={sk:.3f} "
      f"gap_points={(sk - acc) * 100:.1f} exit={code}")
PY
  done
done
