#!/usr/bin/env bash
# The language-model job, end to end, on one machine (#14):
#   build, start a --dev node, create a job for a byte-level transformer (gpt:256-64-2-4-64,
#   120,576 parameters) with a DiLoCo training plan (AdamW inner steps, H = LOCAL_STEPS per
#   round, Nesterov outer step 0.7/0.9, warm-up + cosine over the job; the model commitment
#   covers the plan), start 3 trainers on IID shards of the generated corpus
#   (trainer-offchain/testdata/corpus.txt), each with a validation text of the same grammar but
#   another seed, and print each round once it is paid (the on-chain metric is the median of
#   the trainers' next-byte accuracy on it). At the end: the validation loss per round as every
#   trainer reported it, the final model (written by `run --out`, checked against the chain's
#   latestModel), its evaluation, and a sampled continuation.
#
# Options (environment): ROUNDS=8 LOCAL_STEPS=50 COMPRESSION=none RPC_PORT=9944
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

ROUNDS="${ROUNDS:-8}"
LOCAL_STEPS="${LOCAL_STEPS:-50}"
COMPRESSION="${COMPRESSION:-none}"
RPC_PORT="${RPC_PORT:-9944}"
TRAINERS=3
MODEL="gpt:256-64-2-4-64@0"
CORPUS=trainer-offchain/testdata/corpus.txt
OUT="$REPO_ROOT/out/demo-lm"
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.jsonl "$OUT"/*.safetensors

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; log "interrupted"; exit 130' INT TERM

T0=$(date +%s)
"$REPO_ROOT/scripts/setup.sh"
log "building trainchain-node and trainchain-trainer"
build_bins
NODE="$BIN_DIR/trainchain-node"
TRAINER="$BIN_DIR/trainchain-trainer"

VALIDATION="$OUT/validation.txt"
"$TRAINER" corpus --seed 1001 --bytes 30000 --out "$VALIDATION" >/dev/null
log "validation text: $(wc -c <"$VALIDATION") bytes of the corpus grammar with seed 1001"

log "starting trainchain-node --dev on ws://127.0.0.1:$RPC_PORT"
"$NODE" --dev --tmp --no-telemetry --rpc-port "$RPC_PORT" --port 0 --no-prometheus >"$OUT/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
	if curl -s -m 2 -H 'Content-Type: application/json' \
		-d '{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}' \
		"http://127.0.0.1:$RPC_PORT" | grep -q result; then break; fi
	sleep 1
done

PLAN=(--inner adamw:0.01 --outer nesterov:0.7:0.9 --schedule cosine:20)
log "creating a job: $MODEL, $ROUNDS rounds of $LOCAL_STEPS AdamW steps, plan ${PLAN[*]} (sponsor //Alice)"
JOB_JSON=$(node scripts/sponsor/sponsor.js create-job --node "ws://127.0.0.1:$RPC_PORT" --suri //Alice \
	--model "$MODEL" --dataset corpus --trainer "$TRAINER" --rounds "$ROUNDS" --reward 1000 \
	--min "$TRAINERS" --max "$TRAINERS" --round-length 60 --commit-window 40 --bond 10 \
	--lr 0.003 --batch 16 --local-steps "$LOCAL_STEPS" "${PLAN[@]}" --json)
JOB=$(jq -r .jobId <<<"$JOB_JSON")
log "job $JOB created: $(jq -c . <<<"$JOB_JSON")"

SURIS=(//Bob //Charlie //Dave)
BASE_PORT=$((30500 + RANDOM % 1000))
for i in $(seq 0 $((TRAINERS - 1))); do
	args=(run --node "ws://127.0.0.1:$RPC_PORT" --suri "${SURIS[$i]}" --job "$JOB"
		--data "$CORPUS" --shard "$i/$TRAINERS" --test "$VALIDATION" --compression "$COMPRESSION"
		--round-timeout 60 --listen "/ip4/127.0.0.1/tcp/$((BASE_PORT + i))" --out "$OUT/model-$i.safetensors" --json)
	[ "$i" -gt 0 ] && args+=(--bootstrap "/ip4/127.0.0.1/tcp/$BASE_PORT")
	"$TRAINER" "${args[@]}" >"$OUT/trainer-$i.jsonl" 2>"$OUT/trainer-$i.log" &
	pids+=($!)
	log "trainer $i (${SURIS[$i]}) started"
done

log "training; per-round results follow (metric: next-byte accuracy on the validation text)"
node scripts/demo-report.js --node "ws://127.0.0.1:$RPC_PORT" --job "$JOB" --out "$OUT" \
	--trainers "$(IFS=,; echo "${SURIS[*]}")" --sponsor //Alice
for _ in $(seq 1 60); do
	[ -s "$OUT/model-0.safetensors" ] && break
	sleep 1
done

log "validation loss per round (nats per byte; the trainers' own evaluation of the agreed model)"
jq -r 'select(.event == "round" and .loss != null) | "  round \(.round): loss \(.loss * 1000 | round / 1000), accuracy \(.accuracy * 1000 | round / 1000), model \(.model_hash[0:16])"' \
	"$OUT/trainer-0.jsonl"
log "the final model (trainer 0, checked against the chain's latestModel by run --out), and a sample:"
"$TRAINER" eval --weights "$OUT/model-0.safetensors" --data "$VALIDATION" --sample 300 --prompt "The "
log "demo done in $(($(date +%s) - T0)) s; plot: $OUT/accuracy.svg"
