#!/usr/bin/env bash
# Run only the fault test (issue #13, node/tests/e2e_faults.rs): four `--chain local` validators
# and four trainers, each in its own network namespace; one validator and one trainer are
# killed mid-job. scripts/test.sh runs it too (phase 1 of scripts/lib/test-lanes.sh).
#
# Builds with the project's one feature set (`build_bins`: `cargo test --test e2e_faults` would
# resolve features differently and rebuild the node's networking crates), then runs the test
# binary from node/, as cargo does. Needs root for the namespaces; elsewhere it prints SKIP.
set -euo pipefail
source "$(dirname "$0")/lib/env.sh"
cd "$REPO_ROOT"
log "building the node, the chain client and the trainer (tests included)"
exe=$(cargo test "${CHAIN_PACKAGES[@]}" --no-run --message-format=json-render-diagnostics \
	| jq -r 'select(.reason == "compiler-artifact" and .target.name == "e2e_faults"
		and .executable != null) | .executable')
[ -n "$exe" ] || { echo "no e2e_faults test binary in the build" >&2; exit 1; }
log "running $exe"
cd node
exec "$exe" --nocapture "$@"
