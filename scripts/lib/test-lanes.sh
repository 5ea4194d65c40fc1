#!/usr/bin/env bash
# Run the test binaries of one `cargo test` build in LANES parallel lanes (sourced by test.sh).
#
# `cargo test` runs its test binaries one after another. The node tests spend most of their time
# waiting for 3-second blocks (a warm run used ~3 minutes of CPU in 11 minutes), so running
# several binaries at once cuts the wall time without starving any of them. Each binary runs
# from its package's directory, as cargo runs it; the slowest binaries start first, and each
# binary's output is printed whole when it ends (with its wall time), so lanes never interleave.
#
#   run_test_lanes CARGO_TEST_ARGS...      (LANES=3 by default; LANES=1 is cargo's order)

# Binaries known to take longest, started first (the rest follow in cargo's order).
SLOW_TESTS=(e2e_silent_member e2e e2e_verified e2e_public_data round dev_node trainer_errors
	p2p_trust p2p_attacks p2p_digits)

run_test_lanes() {
	local list lanes="${LANES:-3}"
	list=$(mktemp)
	# One line per test binary: "<package dir> <executable> <name>".
	cargo test "$@" --no-run --message-format=json-render-diagnostics \
		| jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
			| "\(.manifest_path | sub("/Cargo.toml$"; "")) \(.executable) \(.target.name)"' \
		>"$list"
	local ordered
	ordered=$(mktemp)
	for name in "${SLOW_TESTS[@]}"; do awk -v n="$name" '$3 == n' "$list"; done >"$ordered"
	awk 'NR == FNR { slow[$3] = 1; next } !($3 in slow)' "$ordered" "$list" >>"$ordered"
	log "running $(wc -l <"$ordered") test binaries in $lanes lanes"
	local rc=0
	xargs -P "$lanes" -L 1 bash -c 'run_one_test "$@"' _ <"$ordered" || rc=$?
	rm -f "$list" "$ordered"
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
