#!/usr/bin/env bash
# Compression benchmark (#14): 4 peers over real loopback sockets (in one process, the
# `p2p_compression_report` bench, release build), every compression with the same seeds as the
# uncompressed run, and one line per configuration:
#   bench-compress data=digits compression=sparse:0.027:1 rounds=50 ratio=... metric_drop=... ...
# ratio = uncompressed / compressed payload bytes per peer per round, both halves of the
# exchange (update chunks to their owners + the owned reduced chunk to every other peer);
# metric_drop = test accuracy points lost against the uncompressed run after the last round.
# `compression-report` lines add the bytes on the wire (envelopes, signatures, proofs included).
#
# Then the same for the language model (data=text): gpt:256-64-2-4-64 on the generated corpus,
# 300 rounds of 5 AdamW steps with the inner optimiser's state kept across rounds
# (`--keep-inner-state`) and error feedback decaying by 0.95 (SparseLoCo's), metric_drop =
# relative increase of the validation loss (400 held-out rows) against the uncompressed run.
# About 13 minutes per configuration on this project's 2-core machine.
#
# Env: ROUNDS (50), COMPRESSIONS (none,int8,sparse:0.0156:2,sparse:0.027:1 — the first one is
# the baseline), MODEL (mlp), EF_DECAY (1); TEXT_MODEL (gpt:256-64-2-4-64@0), TEXT_ROUNDS
# (300), TEXT_LOCAL_STEPS (5), TEXT_COMPRESSIONS (none,sparse:0.027:1), TEXT_EF_DECAY (0.95:
# error feedback's decay, `--error-feedback-decay`), TEXT_KEEP_INNER (1), TEXT=0 to skip the
# language model; BENCH_TARGET_DIR (/var/tmp/trainchain-target-trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-env.sh
bin=$(bench_binary p2p_compression_report)
REPORT_ROUNDS=${ROUNDS:-50} \
	REPORT_COMPRESSIONS=${COMPRESSIONS:-none,int8,sparse:0.0156:2,sparse:0.027:1} \
	REPORT_MODEL=${MODEL:-mlp} \
	REPORT_EF_DECAY=${EF_DECAY:-1} \
	RUST_LOG=${RUST_LOG:-error} \
	"$bin" | grep -E '^(bench-compress|compression-report)'
if [ "${TEXT:-1}" != 0 ]; then
	REPORT_ROUNDS=${TEXT_ROUNDS:-300} \
		REPORT_COMPRESSIONS=${TEXT_COMPRESSIONS:-none,sparse:0.027:1} \
		REPORT_MODEL=${TEXT_MODEL:-gpt:256-64-2-4-64@0} \
		REPORT_LOCAL_STEPS=${TEXT_LOCAL_STEPS:-5} \
		REPORT_EF_DECAY=${TEXT_EF_DECAY:-0.95} \
		REPORT_KEEP_INNER=${TEXT_KEEP_INNER:-1} \
		RUST_LOG=${RUST_LOG:-error} \
		"$bin" | grep -E '^(bench-compress|compression-report)'
fi
