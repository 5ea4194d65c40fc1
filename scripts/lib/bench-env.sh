# Shared by the benchmark scripts (sourced): the release build of the trainer's bench targets,
# in a target dir of its own (the benchmarks' one feature set: the trainer alone, release), and
# the Python environment for the PyTorch comparisons.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-/var/tmp/trainchain-target-trainer}"
export SKIP_WASM_BUILD=1
VENV=${VENV:-/var/tmp/trainchain-venv}

# Install PyTorch into $VENV if it is not there (PyPI).
need_torch() {
	if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
		echo "installing torch into $VENV (PyPI)" >&2
		python3 -m venv "$VENV"
		"$VENV/bin/pip" install -q torch
	fi
}

# Build every bench target of the trainer (release) and print the path of bench `$1`.
bench_binary() {
	nice -n 5 cargo bench -p trainchain-trainer --no-run >&2
	ls -t "$CARGO_TARGET_DIR"/release/deps/"$1"-* | grep -v '\.d$' | head -n1
}
