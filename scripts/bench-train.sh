#!/usr/bin/env bash
# Training-step benchmark: candle (trainchain-trainer, release) vs PyTorch CPU.
#
# For each model (digits MLP 64-128-10, MNIST-sized MLP 784-256-10, wide MLP
# 784-1024-1024-10), batch (64, 256) and thread count (1, 2) it times forward + backward +
# SGD-momentum step, median over STEPS steps after WARMUP warm-up steps, in both frameworks,
# REPEATS times in alternation (candle, torch, candle, torch, ...), and prints
#   bench-train model=... batch=... threads=... candle_ms=... torch_ms=... ratio=... pairs=R ratio_range=LO-HI
# (candle_ms and torch_ms: the fastest of the R runs; ratio = candle_ms / torch_ms, > 1 means
# candle is slower; ratio_range: the lowest and highest ratio of a single pair), then the peak RSS of a
# 784-256-10 batch-64 training run of each.
#
# Then the same for each decoder-only transformer of GPT_MODELS (gpt:V-D-L-H-T, the model of
# src/gpt.rs built again in PyTorch: tied head, pre-LayerNorm, causal attention written out,
# tanh GELU; byte tokens of the generated corpus in candle, random ids in torch; loss over
# every position) at GPT_BATCHES, GPT_STEPS steps after GPT_WARMUP.
#
# Env: STEPS (300), WARMUP (30), MODELS ("64-128-10 784-256-10 784-1024-1024-10"), BATCHES ("64 256"),
# THREADS ("1 2"), GPT_MODELS ("gpt:256-64-2-4-64"; "" to skip), GPT_BATCHES ("16"),
# GPT_STEPS (50), GPT_WARMUP (5), REPEATS (3), CARGO_TARGET_DIR, TRAINCHAIN_VENV (/var/tmp/trainchain-venv),
# SKIP_TORCH=1 to run candle only.
# The venv gets `pip install torch` from PyPI on first use (a large download).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
WARMUP=${WARMUP:-30}
MODELS=${MODELS:-"64-128-10 784-256-10 784-1024-1024-10"}
BATCHES=${BATCHES:-"64 256"}
THREADS=${THREADS:-"1 2"}
GPT_MODELS=${GPT_MODELS-"gpt:256-64-2-4-64"}
GPT_BATCHES=${GPT_BATCHES:-"16"}
GPT_STEPS=${GPT_STEPS:-50}
GPT_WARMUP=${GPT_WARMUP:-5}
REPEATS=${REPEATS:-3}
VENV=${TRAINCHAIN_VENV:-/var/tmp/trainchain-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/trainchain-target-trainer}
export SKIP_WASM_BUILD=1

echo "== building release bench binary" >&2
nice -n 5 cargo bench -p trainchain-trainer --bench train_step --no-run >&2
BENCH=$(ls -t "$CARGO_TARGET_DIR"/release/deps/train_step-* | grep -v '\.d$' | head -n1)

if [[ "${SKIP_TORCH:-0}" != 1 ]]; then
  if [[ ! -x "$VENV/bin/python3" ]]; then
    echo "== creating venv $VENV" >&2
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python3" -c "import torch" 2>/dev/null; then
    echo "== pip install torch (from PyPI; large)" >&2
    "$VENV/bin/pip" install -q torch >&2
  fi
fi

steps_of() { if [[ $1 == gpt:* ]]; then echo "--steps $GPT_STEPS --warmup $GPT_WARMUP"; else echo "--steps $STEPS --warmup $WARMUP"; fi; }
run_candle() { # model batch threads [extra]
  local m=$1; [[ $m == gpt:* ]] || m="mlp:$m"
  # shellcheck disable=SC2046
  RAYON_NUM_THREADS=$3 CANDLE_NUM_THREADS=$3 "$BENCH" --model "$m" --batch "$2" $(steps_of "$1") "${@:4}"
}
run_torch() { # model batch threads [extra]
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=$3 MKL_NUM_THREADS=$3 "$VENV/bin/python3" scripts/bench-train.py --model "$1" --batch "$2" --threads "$3" $(steps_of "$1") "${@:4}"
}
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

fastest() { python3 -c "import sys; print(f'{min(float(x) for x in sys.argv[1:]):.4f}')" "$@"; }

results=()
bench_one() { # model batch threads
  # REPEATS pairs, candle then torch, back to back. Each framework's figure is its fastest
  # run (the least disturbed one: load from outside, on a shared machine, only adds time),
  # so a burst that hits one framework's half of one pair does not decide the row;
  # ratio_range (the ratio of each pair) shows how much the pairs moved.
  local model=$1 batch=$2 threads=$3 c t cms tms ratio r
  local -a cl=() tl=() rl=()
  for ((r = 0; r < REPEATS; r++)); do
    c=$(run_candle "$model" "$batch" "$threads")
    echo "$c"
    cl+=("$(echo "$c" | field median_ms)")
    if [[ "${SKIP_TORCH:-0}" != 1 ]]; then
      t=$(run_torch "$model" "$batch" "$threads")
      echo "$t"
      tl+=("$(echo "$t" | field median_ms)")
      rl+=("$(python3 -c "print(${cl[-1]}/${tl[-1]})")")
    fi
  done
  cms=$(fastest "${cl[@]}")
  if [[ "${SKIP_TORCH:-0}" != 1 ]]; then
    tms=$(fastest "${tl[@]}")
    ratio=$(python3 -c "print(f'{$cms/$tms:.2f}')")
    range=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{min(v):.2f}-{max(v):.2f}')" "${rl[@]}")
  else
    tms=NA; ratio=NA; range=NA
  fi
  results+=("bench-train model=$model batch=$batch threads=$threads candle_ms=$cms torch_ms=$tms ratio=$ratio pairs=$REPEATS ratio_range=$range")
}
for model in $MODELS; do
  for batch in $BATCHES; do
    for threads in $THREADS; do bench_one "$model" "$batch" "$threads"; done
  done
done
for model in $GPT_MODELS; do
  for batch in $GPT_BATCHES; do
    for threads in $THREADS; do bench_one "$model" "$batch" "$threads"; done
  done
done

echo "== peak RSS, 784-256-10 batch 64, 1 thread, $STEPS steps"
run_candle 784-256-10 64 1 --rss | grep rss || true
if [[ "${SKIP_TORCH:-0}" != 1 ]]; then run_torch 784-256-10 64 1 --rss | grep rss || true; fi
printf '%s\n' "${results[@]}"
