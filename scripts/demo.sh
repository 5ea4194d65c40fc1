#!/usr/bin/env bash
# The main job, end to end, on one machine:
#   install what is missing, build, start a --dev node, create a job with the sponsor client
#   (polkadot.js), start 3 trainers on digits shards and 2 verifiers holding the held-out set,
#   and print each round once it is paid: contributors, the verifiers' accuracy, model hash,
#   each contributor's score and payout, balance changes; end with a summary table and a plot
#   (out/demo/accuracy.svg). Stops everything it started on exit or Ctrl-C.
#
# Options (environment): ROUNDS=5 TRAINERS=3 VERIFIERS=2 REWARD=1000 RPC_PORT=9944
#   (VERIFIERS=0: an unverified job, paid by committed samples)
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"

ROUNDS="${ROUNDS:-5}"
TRAINERS="${TRAINERS:-3}"
VERIFIERS="${VERIFIERS:-2}"
VALIDATION=trainer-offchain/testdata/digits-test.csv
REWARD="${REWARD:-1000}"
RPC_PORT="${RPC_PORT:-9944}"
OUT="$REPO_ROOT/out/demo"
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.jsonl

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; log "interrupted"; exit 130' INT TERM

T0=$(date +%s)
"$REPO_ROOT/scripts/setup.sh"
log "building trainchain-node and trainchain-trainer (first build: long on 2 cores)"
build_bins
NODE="$BIN_DIR/trainchain-node"
TRAINER="$BIN_DIR/trainchain-trainer"
T_BUILD=$(date +%s)

log "starting trainchain-node --dev on ws://127.0.0.1:$RPC_PORT"
"$NODE" --dev --tmp --no-telemetry --rpc-port "$RPC_PORT" --port 0 --no-prometheus >"$OUT/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
	if curl -s -m 2 -H 'Content-Type: application/json' \
		-d '{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}' \
		"http://127.0.0.1:$RPC_PORT" | grep -q result; then break; fi
	sleep 1
done

MODEL="mlp:64-32-10"
verification=()
if [ "$VERIFIERS" -gt 0 ]; then
	verification=(--verifiers "$VERIFIERS" --validation-set "$VALIDATION" --scoring-window 10
		--challenge-period 3 --verifier-bond 10 --challenge-bond 50)
fi
log "creating a job: model $MODEL, $ROUNDS rounds, $REWARD TRAIN per round, $VERIFIERS verifiers, inputs standardised with the training set's statistics (sponsor //Alice)"
JOB_JSON=$(node scripts/sponsor/sponsor.js create-job --node "ws://127.0.0.1:$RPC_PORT" --suri //Alice \
	--model "$MODEL" --trainer "$TRAINER" --rounds "$ROUNDS" --reward "$REWARD" \
	--standardize trainer-offchain/testdata/digits-train.csv \
	--min 2 --max "$TRAINERS" --round-length 30 --commit-window 15 --bond 10 "${verification[@]}" --json)
JOB=$(jq -r .jobId <<<"$JOB_JSON")
log "job $JOB created: $(jq -c . <<<"$JOB_JSON")"

node scripts/sponsor/sponsor.js watch --node "ws://127.0.0.1:$RPC_PORT" --job "$JOB" --until-ended --json >"$OUT/events.jsonl" &
pids+=($!)

SURIS=(//Bob //Charlie //Dave //Eve //Ferdie)
BASE_PORT=$((30500 + RANDOM % 1000))
for i in $(seq 0 $((TRAINERS - 1))); do
	args=(run --node "ws://127.0.0.1:$RPC_PORT" --suri "${SURIS[$i]}" --job "$JOB"
		--data trainer-offchain/testdata/digits-train.csv --shard "$i/$TRAINERS"
		--listen "/ip4/127.0.0.1/tcp/$((BASE_PORT + i))" --json)
	# An unverified job's metric is the trainers' own; a verified job's comes from the
	# verifiers, who alone hold the held-out set.
	[ "$VERIFIERS" -eq 0 ] && args+=(--test "$VALIDATION")
	[ "$i" -gt 0 ] && args+=(--bootstrap "/ip4/127.0.0.1/tcp/$BASE_PORT")
	"$TRAINER" "${args[@]}" >"$OUT/trainer-$i.jsonl" 2>"$OUT/trainer-$i.log" &
	pids+=($!)
	log "trainer $i (${SURIS[$i]}) started"
done

VSURIS=(//Alice//stash //Bob//stash //Charlie//stash //Dave//stash //Eve//stash)
for i in $(seq 0 $((VERIFIERS - 1))); do
	"$TRAINER" verify --node "ws://127.0.0.1:$RPC_PORT" --suri "${VSURIS[$i]}" --job "$JOB" \
		--validation "$VALIDATION" --bootstrap "/ip4/127.0.0.1/tcp/$BASE_PORT" --until-settled --json \
		>"$OUT/verifier-$i.jsonl" 2>"$OUT/verifier-$i.log" &
	pids+=($!)
	log "verifier $i (${VSURIS[$i]}) started"
done

log "training; per-round results follow"
node scripts/demo-report.js --node "ws://127.0.0.1:$RPC_PORT" --job "$JOB" --out "$OUT" \
	--trainers "$(IFS=,; echo "${SURIS[*]:0:$TRAINERS}")" --sponsor //Alice
T_END=$(date +%s)
log "demo done in $((T_END - T0)) s (build $((T_BUILD - T0)) s, run $((T_END - T_BUILD)) s); plot: $OUT/accuracy.svg"
