//! `trainchain-trainer peer` processes for the multi-process tests and benchmarks: one process
//! per peer (on loopback, or inside a network namespace), its JSON lines written to a file and
//! read back, killed when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The trainer binary cargo built for this test or benchmark, or the one named by
/// `TRAINCHAIN_TRAINER_BIN` (to time two builds against each other with the same benchmark).
pub fn trainer_bin() -> &'static Path {
	static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
	BIN.get_or_init(|| {
		std::env::var_os("TRAINCHAIN_TRAINER_BIN")
			.map(PathBuf::from)
			.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_trainchain-trainer")))
	})
}

/// A file of the trainer's `testdata/`.
pub fn testdata(name: &str) -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// The secret URI of peer `i` (development keys; `//Alice`… for the first four).
pub fn suri(i: usize) -> String {
	const NAMED: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];
	NAMED.get(i).map_or_else(|| format!("//Peer{i}"), |s| s.to_string())
}

/// A `peer` process.
pub struct PeerProc {
	child: Child,
	out: PathBuf,
}

impl PeerProc {
	/// Start peer `i` of `n` on shard `i/n` of the digits: `launcher` is the trainer binary
	/// itself or a command that runs it (`ip netns exec …`). Job 7, JSON, one thread, and
	/// two rounds of the default `mlp` unless `args` give `--rounds` / `--model`.
	pub fn start(launcher: Command, i: usize, n: usize, args: &[String], logs: &Path) -> Self {
		let out = logs.join(format!("peer-{i}.jsonl"));
		let mut cmd = launcher;
		cmd.args(["--threads", "1", "peer", "--suri", &suri(i), "--job-id", "7", "--json"])
			.arg("--data")
			.arg(testdata("digits-train.csv"))
			.args(["--shard", &format!("{i}/{n}")]);
		for (flag, default) in [("--rounds", "2"), ("--model", "mlp")] {
			if !args.iter().any(|a| a == flag) {
				cmd.args([flag, default]);
			}
		}
		cmd.args(args)
			.env("TRAINCHAIN_LOG", std::env::var("PEER_LOG").unwrap_or_else(|_| "warn".into()))
			.stdout(std::fs::File::create(&out).unwrap())
			.stderr(std::fs::File::create(logs.join(format!("peer-{i}.log"))).unwrap())
			.stdin(Stdio::null());
		PeerProc { child: cmd.spawn().unwrap(), out }
	}

	/// The JSON lines printed so far.
	pub fn events(&self) -> Vec<Value> {
		std::fs::read_to_string(&self.out)
			.unwrap_or_default()
			.lines()
			.filter_map(|l| serde_json::from_str(l).ok())
			.collect()
	}

	/// Wait for the process to exit (it does after its rounds); kill it at the deadline.
	pub fn finish(&mut self, deadline: Instant) -> Vec<Value> {
		while Instant::now() < deadline {
			if self.child.try_wait().unwrap().is_some() {
				return self.events();
			}
			std::thread::sleep(Duration::from_millis(200));
		}
		let _ = self.child.kill();
		panic!("peer did not finish: {:?}", self.events());
	}

	/// The `listening` event: the peer id and the listen addresses it printed.
	pub fn wait_listening(&self, timeout: Duration) -> (String, Vec<String>) {
		let deadline = Instant::now() + timeout;
		while Instant::now() < deadline {
			if let Some(e) = self.events().into_iter().find(|v| v["event"] == "listening") {
				let addrs = e["addrs"].as_array().unwrap();
				let addrs = addrs.iter().map(|a| a.as_str().unwrap().to_string()).collect();
				return (e["peer_id"].as_str().unwrap().to_string(), addrs);
			}
			std::thread::sleep(Duration::from_millis(100));
		}
		panic!("no listening event");
	}
}

impl Drop for PeerProc {
	fn drop(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
	}
}

/// The `round` events (rounds this peer completed).
pub fn rounds(events: &[Value]) -> Vec<&Value> {
	events.iter().filter(|e| e["event"] == "round").collect()
}

/// Model hash per completed round.
pub fn model_hashes(events: &[Value]) -> BTreeMap<u64, String> {
	rounds(events)
		.into_iter()
		.map(|e| (e["round"].as_u64().unwrap(), e["model_hash"].as_str().unwrap().to_string()))
		.collect()
}

/// A fresh directory for one test's peer logs.
pub fn log_dir(name: &str) -> PathBuf {
	let dir = std::env::temp_dir().join(format!("trainchain-{name}-{}", std::process::id()));
	std::fs::create_dir_all(&dir).unwrap();
	dir
}
