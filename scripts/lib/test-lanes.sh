#!/usr/bin/env bash
# Run the test binaries of one `cargo test` build in three lanes at once (sourced by test.sh).
#
# `cargo test` runs its test binaries one after another. The node tests spend most of their time
# waiting for 3-second blocks (a warm run used ~3 minutes of CPU in 11 minutes), so running
# several binaries at once cuts the wall time. Lanes 1 and 2 hold the real-node tests, split so
# that at most two multi-process jobs (a dev node and its trainers) run at once: with three at
# once on two cores, a trainer of the silent-member job missed its round deadlines. Lane 3 holds
# everything else. Each binary runs from its package's directory, as cargo runs it, and its
# output is printed whole when it ends (with its wall time), so lanes never interleave.
#
#   run_test_lanes CARGO_TEST_ARGS...      (LANES=1: one binary at a time, cargo's order)

# The real-node binaries of lanes 1 and 2, slowest first; every other binary goes to lane 3.
LANE_1=(e2e_silent_member e2e_public_data dev_node)
LANE_2=(e2e e2e_verified round trainer_errors)

run_test_lanes() {
	local list lanes="${LANES:-3}"
	list=$(mktemp)
	# One line per test binary: "<package dir> <executable> <name>".
	cargo test "$@" --no-run --message-format=json-render-diagnostics \
		| jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
			| "\(.manifest_path | sub("/Cargo.toml$"; "")) \(.executable) \(.target.name)"' \
		>"$list"
	local rc=0
	if [ "$lanes" = 1 ]; then
		log "running $(wc -l <"$list") test binaries one at a time"
		xargs -L 1 bash -c 'run_one_test "$@"' _ <"$list" || rc=$?
		rm -f "$list"
		return "$rc"
	fi
	local l1 l2 l3
	l1=$(mktemp) l2=$(mktemp) l3=$(mktemp)
	for name in "${LANE_1[@]}"; do awk -v n="$name" '$3 == n' "$list"; done >"$l1"
	for name in "${LANE_2[@]}"; do awk -v n="$name" '$3 == n' "$list"; done >"$l2"
	awk 'NR == FNR { taken[$3] = 1; next } !($3 in taken)' <(cat "$l1" "$l2") "$list" >"$l3"
	log "running $(wc -l <"$list") test binaries in 3 lanes"
	local pids=()
	for lane in "$l1" "$l2" "$l3"; do
		xargs -L 1 bash -c 'run_one_test "$@"' _ <"$lane" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=$?; done
	rm -f "$list" "$l1" "$l2" "$l3"
	return "$rc"
}

# Run one test binary from its package dir; print its output when it ends.
run_one_test() {
	local dir="$1" exe="$2" name="$3" out t0 rc=0
	out=$(mktemp)
	t0=$(date +%s)
	(cd "$dir" && "$exe") >"$out" 2>&1 || rc=$?
	{
		printf '\n===== %s (%s s, exit %s) =====\n' "$name" "$(($(date +%s) - t0))" "$rc"
		cat "$out"
	} | flock "${TEST_LANES_LOCK:-/tmp/trainchain-test-lanes.lock}" cat
	rm -f "$out"
	# Every binary runs; xargs exits non-zero if any failed.
	[ "$rc" -eq 0 ]
}
export -f run_one_test
