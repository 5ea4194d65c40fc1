//! Helpers shared by the node's integration tests: start the real `trainchain-node` binary on
//! free ports and talk to it over real JSON-RPC.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
	net::TcpListener,
	path::PathBuf,
	process::{Child, Command, Stdio},
	time::{Duration, Instant},
};

use serde_json::{json, Value};

pub mod trainers;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
	TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Path of a binary built by this workspace (`cargo test --workspace` builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
	let node = PathBuf::from(env!("CARGO_BIN_EXE_trainchain-node"));
	node.parent().unwrap().join(name)
}

/// One dev node (and the trainers of its test) at a time per test binary: the tests of a
/// binary may run on cargo's parallel test threads, but two multi-process jobs at once would
/// share this machine's cores and distort each other's timing.
static ONE_NODE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running `trainchain-node --dev --tmp` (or a node of a multi-node network, see
/// [`DevNode::adopt`]); killed on drop.
pub struct DevNode {
	child: Child,
	pub rpc_port: u16,
	pub log: PathBuf,
	/// The network namespace the node runs in (`None`: the test's own). Its RPC is then
	/// reached on the namespace's loopback, through `ip netns exec`.
	pub netns: Option<String>,
	/// Held while the node lives (see [`ONE_NODE_AT_A_TIME`]); dropped after the node is.
	/// `None` for an adopted node: its test takes one turn for the whole network.
	_turn: Option<std::sync::MutexGuard<'static, ()>>,
}

impl DevNode {
	/// Start a dev node on free ports and wait until its RPC answers.
	pub fn start() -> Self {
		// A test that panicked while holding the turn poisons it; the next may still run.
		let turn = ONE_NODE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
		let rpc_port = free_port();
		let p2p_port = free_port();
		let prom_port = free_port();
		let log = std::env::temp_dir().join(format!("trainchain-node-{rpc_port}.log"));
		let child = Command::new(env!("CARGO_BIN_EXE_trainchain-node"))
			.args(["--dev", "--tmp", "--no-telemetry", "--no-mdns", "--rpc-cors", "all"])
			.args(["--rpc-port", &rpc_port.to_string()])
			.args(["--port", &p2p_port.to_string()])
			.args(["--prometheus-port", &prom_port.to_string()])
			.stdout(Stdio::null())
			.stderr(std::fs::File::create(&log).unwrap())
			.spawn()
			.expect("trainchain-node starts");
		let node = DevNode { child, rpc_port, log, netns: None, _turn: Some(turn) };
		node.wait_for(Duration::from_secs(120), "RPC", || {
			node.try_rpc("system_health", json!([])).is_some()
		});
		node
	}

	/// Take a turn for a test that runs several nodes (see [`ONE_NODE_AT_A_TIME`]): hold it
	/// while they live.
	pub fn turn() -> std::sync::MutexGuard<'static, ()> {
		ONE_NODE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
	}

	/// Spawn `cmd` (a node command line the caller built, e.g. a validator of a `--chain local`
	/// network inside network namespace `netns`) with its stderr in `log`. Its RPC is on port
	/// `rpc_port` (of the namespace's loopback if `netns` is set); [`Self::wait_rpc`] waits for
	/// it, so that several nodes can start at once.
	pub fn adopt(mut cmd: Command, rpc_port: u16, log: PathBuf, netns: Option<String>) -> Self {
		let child = cmd
			.stdout(Stdio::null())
			.stderr(std::fs::File::create(&log).unwrap())
			.stdin(Stdio::null())
			.spawn()
			.expect("trainchain-node starts");
		DevNode { child, rpc_port, log, netns, _turn: None }
	}

	/// Wait until the node's RPC answers (panics with its log after 120 s).
	pub fn wait_rpc(&self) {
		self.wait_for(Duration::from_secs(120), "RPC", || {
			self.try_rpc("system_health", json!([])).is_some()
		});
	}

	/// Kill the node now (SIGKILL: no goodbye to its peers).
	pub fn kill(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
	}

	/// A command that runs `program` where the node is: in its network namespace, if any.
	pub fn host_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
		match &self.netns {
			Some(ns) => {
				let mut c = Command::new("ip");
				c.args(["netns", "exec", ns]).arg(program);
				c
			},
			None => Command::new(program),
		}
	}

	/// The WebSocket URL of its RPC.
	pub fn ws_url(&self) -> String {
		format!("ws://127.0.0.1:{}", self.rpc_port)
	}

	/// The HTTP URL of its RPC.
	pub fn http_url(&self) -> String {
		format!("http://127.0.0.1:{}", self.rpc_port)
	}

	/// A JSON-RPC call over HTTP; `None` on transport failure.
	pub fn try_rpc(&self, method: &str, params: Value) -> Option<Value> {
		let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
		let out = self
			.host_command("curl")
			.args(["-s", "-m", "10", "-H", "Content-Type: application/json", "-d"])
			.arg(body.to_string())
			.arg(self.http_url())
			.output()
			.ok()?;
		serde_json::from_slice::<Value>(&out.stdout).ok()
	}

	/// A JSON-RPC call that must succeed; returns `result`.
	pub fn rpc(&self, method: &str, params: Value) -> Value {
		let v = self
			.try_rpc(method, params.clone())
			.unwrap_or_else(|| panic!("{method} failed; node log: {}", self.log_tail()));
		if let Some(e) = v.get("error") {
			panic!("{method}({params}) returned an error: {e}");
		}
		v["result"].clone()
	}

	/// Number of the finalised head.
	pub fn finalized_number(&self) -> u64 {
		let head = self.rpc("chain_getFinalizedHead", json!([]));
		let header = self.rpc("chain_getHeader", json!([head]));
		u64::from_str_radix(header["number"].as_str().unwrap().trim_start_matches("0x"), 16)
			.unwrap()
	}

	/// Number of the best block.
	pub fn best_number(&self) -> u64 {
		let header = self.rpc("chain_getHeader", json!([]));
		u64::from_str_radix(header["number"].as_str().unwrap().trim_start_matches("0x"), 16)
			.unwrap()
	}

	/// Poll `cond` until it holds or `timeout` passes (then panic with the node's log).
	pub fn wait_for(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
		let start = Instant::now();
		while start.elapsed() < timeout {
			if cond() {
				return;
			}
			std::thread::sleep(Duration::from_millis(500));
		}
		panic!("timed out after {timeout:?} waiting for {what}; node log:\n{}", self.log_tail());
	}

	/// The last lines of the node's log.
	pub fn log_tail(&self) -> String {
		let text = std::fs::read_to_string(&self.log).unwrap_or_default();
		let lines: Vec<&str> = text.lines().collect();
		lines[lines.len().saturating_sub(40)..].join("\n")
	}
}

impl Drop for DevNode {
	fn drop(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
	}
}

/// Run the sponsor client (`scripts/sponsor/sponsor.js`, real @polkadot/api) and return
/// (exit success, stdout, stderr).
pub fn sponsor(node: &DevNode, args: &[&str]) -> (bool, String, String) {
	let script = repo_root().join("scripts/sponsor/sponsor.js");
	let out = node
		.host_command("node")
		.arg(script)
		.args(args)
		.args(["--node", &node.ws_url()])
		.env("TRAINER_BIN", workspace_bin("trainchain-trainer"))
		.output()
		.expect("node (Node.js) runs; scripts/setup.sh installs it");
	(
		out.status.success(),
		String::from_utf8_lossy(&out.stdout).into_owned(),
		String::from_utf8_lossy(&out.stderr).into_owned(),
	)
}
