#!/usr/bin/env bash
# DiLoCo against synchronous data-parallel training on the generated corpus (#14): 4 peers over
# real loopback sockets (the `diloco` bench, release build), the language model, one line per H:
#   bench-diloco h=50 peers=4 loss=L sync_loss=L1 loss_ratio=L/L1 bytes_ratio=B ...
# plus the learning curves (`bench-diloco-curve run=... step=... loss=...`) and an SVG plot.
# See benches/diloco.rs for what each figure is.
#
# Env: DILOCO_H (50; a comma list runs several), DILOCO_WARMSTART (400: both runs start from the
# model after that many synchronous steps, as the DiLoCo paper starts from a pretrained one; 0
# starts from the seeded model), DILOCO_STEPS (1200, after the warm start), DILOCO_OUTER
# (nesterov:0.7:0.9), DILOCO_COMPRESSION (none), DILOCO_EF_DECAY (1; error feedback's decay with a
# lossy compression), DILOCO_SYNC_LOSS (skip the synchronous run, use this loss), DILOCO_MODEL, DILOCO_BATCH (16), DILOCO_LR
# (0.003), DILOCO_PLOT (out/diloco.svg), BENCH_TARGET_DIR (/var/tmp/trainchain-target-trainer).
# About 9 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-env.sh
bin=$(bench_binary diloco)
DILOCO_WARMSTART=${DILOCO_WARMSTART:-400} DILOCO_STEPS=${DILOCO_STEPS:-1200} \
	DILOCO_PLOT=${DILOCO_PLOT:-$REPO_ROOT/out/diloco.svg} RUST_LOG=${RUST_LOG:-error} \
	"$bin" | grep -E '^bench-diloco'
