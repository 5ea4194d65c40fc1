//! The trainer side of the end-to-end tests: a dev node with a digits job created by the
//! sponsor client, `trainchain-trainer run` processes on its shards, and readers for what
//! they and the chain report.
#![allow(
	dead_code,
	clippy::unwrap_used,
	clippy::expect_used,
	clippy::panic,
	clippy::indexing_slicing
)]

use super::{free_port, repo_root, sponsor, workspace_bin, DevNode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::{
	process::{Child, Command, Stdio},
	time::Duration,
};

/// `trainchain-trainer run` processes; killed on drop.
pub struct Trainers {
	children: Vec<Option<Child>>,
	pub logs: PathBuf,
	/// The TCP port each trainer listens on (trainer 0 is everybody's bootstrap).
	pub ports: Vec<u16>,
}

/// One trainer to start: its account, its shard `i/n` of digits and extra arguments.
pub struct TrainerSpec<'a> {
	pub suri: &'a str,
	pub shard: &'a str,
	pub extra: &'a [&'a str],
}

/// Where [`Trainers::start_placed`] runs one trainer.
pub struct Placement {
	/// A command that starts the trainer binary (e.g. `ip netns exec NS trainchain-trainer`).
	pub command: Command,
	/// The WebSocket RPC of the node it uses.
	pub node_url: String,
	/// Its `--listen` multiaddress (`/ip4/…/tcp/PORT`).
	pub listen: String,
}

impl Trainers {
	const SURIS: [&'static str; 3] = ["//Bob", "//Charlie", "//Dave"];

	/// Start one trainer per dev account on shard i/3 of digits; trainer 0 is the bootstrap.
	pub fn start(node: &DevNode, job_id: u64) -> Self {
		Self::start_with(node, job_id, &[&[], &[], &[]])
	}

	/// As [`Self::start`], with extra command-line arguments for each trainer.
	pub fn start_with(node: &DevNode, job_id: u64, extra: &[&[&str]; 3]) -> Self {
		let shards = ["0/3", "1/3", "2/3"];
		let specs: Vec<TrainerSpec> = (0..3)
			.map(|i| TrainerSpec { suri: Self::SURIS[i], shard: shards[i], extra: extra[i] })
			.collect();
		Self::start_specs(node, job_id, &specs)
	}

	/// Start one trainer per spec; trainer 0 is the bootstrap.
	pub fn start_specs(node: &DevNode, job_id: u64, specs: &[TrainerSpec]) -> Self {
		let logs = std::env::temp_dir().join(format!("trainchain-e2e-{}", node.rpc_port));
		Self::start_specs_in(node, job_id, specs, &logs)
	}

	/// [`Self::start_specs`], writing the trainers' output to `logs`.
	pub fn start_specs_in(
		node: &DevNode,
		job_id: u64,
		specs: &[TrainerSpec],
		logs: &std::path::Path,
	) -> Self {
		let logs = logs.to_path_buf();
		let trainer = workspace_bin("trainchain-trainer");
		assert!(
			trainer.exists(),
			"{} is built by `cargo test -p trainchain-trainer --features chain`",
			trainer.display()
		);
		let data = repo_root().join("trainer-offchain/testdata");
		let ports: Vec<u16> = specs.iter().map(|_| free_port()).collect();
		std::fs::create_dir_all(&logs).unwrap();
		let mut children = Vec::new();
		for (i, spec) in specs.iter().enumerate() {
			let mut cmd = Command::new(&trainer);
			cmd.args(["run", "--node", &node.ws_url(), "--suri", spec.suri])
				.args(["--job", &job_id.to_string()])
				.arg("--data")
				.arg(data.join("digits-train.csv"))
				.arg("--test")
				.arg(data.join("digits-test.csv"))
				.args(["--shard", spec.shard])
				.args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", ports[i])])
				.args(["--epochs", "2", "--json"])
				.stdout(std::fs::File::create(logs.join(format!("trainer-{i}.jsonl"))).unwrap())
				.stderr(std::fs::File::create(logs.join(format!("trainer-{i}.log"))).unwrap())
				.env("TRAINCHAIN_LOG", "info,libp2p_kad=warn,libp2p_gossipsub=warn")
				.stdin(Stdio::null());
			if i > 0 {
				cmd.args(["--bootstrap", &format!("/ip4/127.0.0.1/tcp/{}", ports[0])]);
			}
			cmd.args(spec.extra);
			children.push(Some(cmd.spawn().unwrap()));
		}
		Trainers { children, logs, ports }
	}

	/// Start one trainer per spec where `placed` says (its command, e.g. inside a network
	/// namespace, the node it uses and its listen address), writing its output to `logs`;
	/// trainer 0's listen address is every other's bootstrap.
	pub fn start_placed(
		job_id: u64,
		specs: &[TrainerSpec],
		placed: Vec<Placement>,
		logs: &std::path::Path,
	) -> Self {
		assert_eq!(specs.len(), placed.len(), "one placement per trainer");
		let data = repo_root().join("trainer-offchain/testdata");
		std::fs::create_dir_all(logs).unwrap();
		let boot = placed[0].listen.clone();
		let ports = placed
			.iter()
			.map(|p| p.listen.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0))
			.collect();
		let mut children = Vec::new();
		for (i, (spec, mut p)) in specs.iter().zip(placed).enumerate() {
			p.command
				.args(["run", "--node", &p.node_url, "--suri", spec.suri])
				.args(["--job", &job_id.to_string()])
				.arg("--data")
				.arg(data.join("digits-train.csv"))
				.arg("--test")
				.arg(data.join("digits-test.csv"))
				.args(["--shard", spec.shard])
				.args(["--listen", &p.listen])
				.args(["--epochs", "2", "--json"])
				.stdout(std::fs::File::create(logs.join(format!("trainer-{i}.jsonl"))).unwrap())
				.stderr(std::fs::File::create(logs.join(format!("trainer-{i}.log"))).unwrap())
				.env("TRAINCHAIN_LOG", "info,libp2p_kad=warn,libp2p_gossipsub=warn")
				.stdin(Stdio::null());
			if i > 0 {
				p.command.args(["--bootstrap", &boot]);
			}
			p.command.args(spec.extra);
			children.push(Some(p.command.spawn().unwrap()));
		}
		Trainers { children, logs: logs.to_path_buf(), ports }
	}

	/// The last lines of trainer `i`'s log (stderr).
	pub fn log_tail(&self, i: usize) -> String {
		let text =
			std::fs::read_to_string(self.logs.join(format!("trainer-{i}.log"))).unwrap_or_default();
		let lines: Vec<&str> = text.lines().collect();
		lines[lines.len().saturating_sub(20)..].join("\n")
	}

	/// Kill trainer `i` (SIGKILL: no goodbye to the peers or the chain).
	pub fn kill(&mut self, i: usize) {
		if let Some(mut c) = self.children[i].take() {
			c.kill().unwrap();
			let _ = c.wait();
		}
	}

	/// Let the trainers exit on their own (they stop when the job ends), then kill stragglers.
	pub fn finish(&mut self) {
		for c in self.children.iter_mut().flatten() {
			let _ = c.wait_timeout_or_kill(Duration::from_secs(30));
		}
	}

	/// The events trainer `i` printed (one JSON object per line).
	pub fn events(&self, i: usize, kind: &str) -> Vec<Value> {
		let text = std::fs::read_to_string(self.logs.join(format!("trainer-{i}.jsonl"))).unwrap();
		text.lines()
			.filter_map(|l| serde_json::from_str::<Value>(l).ok())
			.filter(|v| v["event"] == kind)
			.collect()
	}

	/// The `round` events trainer `i` printed.
	pub fn round_reports(&self, i: usize) -> Vec<Value> {
		self.events(i, "round")
	}

	/// The SS58 account trainer `i` joined with (from its `joined` event).
	pub fn account(&self, i: usize) -> String {
		let joined = self.events(i, "joined");
		joined[0]["who"].as_str().unwrap().to_string()
	}
}

impl Drop for Trainers {
	fn drop(&mut self) {
		for c in self.children.iter_mut().flatten() {
			let _ = c.kill();
			let _ = c.wait();
		}
	}
}

/// Start a dev node and create a digits job with the sponsor client (real @polkadot/api).
pub fn node_with_job(rounds: u32) -> (DevNode, u64) {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let rounds = rounds.to_string();
	let job_id = create_job(
		&node,
		&[
			"--model",
			"mlp:64-32-10",
			"--rounds",
			&rounds,
			"--reward",
			"300",
			"--min",
			"2",
			"--max",
			"3",
			"--round-length",
			"40",
			"--commit-window",
			"20",
			"--bond",
			"10",
			"--lr",
			"0.1",
			"--batch",
			"32",
		],
	);
	(node, job_id)
}

/// Wait until the job completes (panics if it fails or is cancelled).
pub fn wait_completed(node: &DevNode, job_id: u64, logs: &std::path::Path) {
	node.wait_for(Duration::from_secs(900), "the job to complete", || {
		let job = node.rpc("training_job", json!([job_id]));
		let phase = job["phase"].as_str().unwrap_or_default().to_string();
		assert!(
			!["failed", "cancelled"].contains(&phase.as_str()),
			"job ended as {phase}; trainer logs in {}",
			logs.display()
		);
		phase == "completed"
	});
}

/// The finalised rounds of the job's history.
pub fn finalized_rounds(node: &DevNode, job_id: u64) -> Vec<Value> {
	let history = node.rpc("training_rounds", json!([job_id]));
	history
		.as_array()
		.unwrap()
		.iter()
		.filter(|r| r["outcome"] == "finalized")
		.cloned()
		.collect()
}

/// Create a job with `sponsor.js create-job ARGS --json` and return its id.
pub fn create_job(node: &DevNode, args: &[&str]) -> u64 {
	let mut all = vec!["create-job"];
	all.extend_from_slice(args);
	all.push("--json");
	let (ok, stdout, stderr) = sponsor(node, &all);
	assert!(ok, "create-job: {stderr}");
	serde_json::from_str::<Value>(stdout.trim().lines().last().unwrap()).unwrap()["jobId"]
		.as_u64()
		.unwrap()
}

/// An amount the RPC prints as a decimal string of planck.
pub fn planck(v: &Value) -> u128 {
	v.as_str().unwrap().parse().unwrap()
}

/// What `who` was paid as a contributor in `round`.
pub fn paid_to(round: &Value, who: &str) -> u128 {
	round["payouts"]
		.as_array()
		.unwrap()
		.iter()
		.filter(|p| p["who"] == who)
		.map(|p| planck(&p["amount"]))
		.sum()
}

/// A verified job's escrow: contributors + submitters + verifiers + refunds = deposit, exactly,
/// and nothing left on hold.
pub fn assert_verified_escrow_exact(node: &DevNode, job_id: u64) {
	let job = node.rpc("training_job", json!([job_id]));
	let e = &job["escrow"];
	assert_eq!(
		planck(&e["paidContributors"])
			+ planck(&e["paidSubmitters"])
			+ planck(&e["paidVerifiers"])
			+ planck(&e["refunded"]),
		planck(&e["deposited"]),
		"escrow ledger: {e}"
	);
	assert_eq!(planck(&e["held"]), 0, "escrow left on hold: {e}");
}

/// Payouts + submitter shares + refund = deposit, exactly; nothing left on hold; the per-round
/// payouts add up to the job's total.
pub fn assert_escrow_exact(node: &DevNode, job_id: u64, finalized: &[Value]) {
	let job = node.rpc("training_job", json!([job_id]));
	let e = &job["escrow"];
	let n = |k: &str| e[k].as_str().unwrap().parse::<u128>().unwrap();
	assert_eq!(
		n("paidContributors") + n("paidSubmitters") + n("refunded"),
		n("deposited"),
		"escrow ledger: {e}"
	);
	assert_eq!(n("held"), 0);
	let paid_in_rounds: u128 = finalized
		.iter()
		.flat_map(|r| r["payouts"].as_array().unwrap().iter())
		.map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
		.sum();
	assert_eq!(paid_in_rounds, n("paidContributors"));
}

pub fn payees(round: &Value) -> Vec<String> {
	round["payouts"]
		.as_array()
		.unwrap()
		.iter()
		.map(|p| p["who"].as_str().unwrap().to_string())
		.collect()
}

pub trait WaitTimeout {
	fn wait_timeout_or_kill(&mut self, t: Duration) -> std::io::Result<()>;
}
impl WaitTimeout for Child {
	fn wait_timeout_or_kill(&mut self, t: Duration) -> std::io::Result<()> {
		let start = std::time::Instant::now();
		while start.elapsed() < t {
			if self.try_wait()?.is_some() {
				return Ok(());
			}
			std::thread::sleep(Duration::from_millis(200));
		}
		self.kill()
	}
}

/// `trainchain-trainer verify` processes; killed on drop.
pub struct Verifiers {
	children: Vec<Child>,
	pub logs: PathBuf,
}

impl Verifiers {
	/// One verifier per `(suri, extra args)`, bootstrapping to the trainer on `boot_port`,
	/// scoring with digits' held-out file as the validation set.
	pub fn start(node: &DevNode, job_id: u64, boot_port: u16, specs: &[(&str, &[&str])]) -> Self {
		let bin = workspace_bin("trainchain-trainer");
		let validation = repo_root().join("trainer-offchain/testdata/digits-test.csv");
		let logs = std::env::temp_dir().join(format!("trainchain-verifiers-{}", node.rpc_port));
		std::fs::create_dir_all(&logs).unwrap();
		let children = specs
			.iter()
			.enumerate()
			.map(|(i, (suri, extra))| {
				Command::new(&bin)
					.args(["verify", "--node", &node.ws_url(), "--suri", suri])
					.args(["--job", &job_id.to_string(), "--until-settled", "--json"])
					.arg("--validation")
					.arg(&validation)
					.args(["--bootstrap", &format!("/ip4/127.0.0.1/tcp/{boot_port}")])
					.args(*extra)
					.stdout(
						std::fs::File::create(logs.join(format!("verifier-{i}.jsonl"))).unwrap(),
					)
					.stderr(std::fs::File::create(logs.join(format!("verifier-{i}.log"))).unwrap())
					.env("TRAINCHAIN_LOG", "info,libp2p_kad=warn,libp2p_gossipsub=warn")
					.stdin(Stdio::null())
					.spawn()
					.unwrap()
			})
			.collect();
		Verifiers { children, logs }
	}

	/// The events verifier `i` printed.
	pub fn events(&self, i: usize, kind: &str) -> Vec<Value> {
		let text = std::fs::read_to_string(self.logs.join(format!("verifier-{i}.jsonl")))
			.unwrap_or_default();
		text.lines()
			.filter_map(|l| serde_json::from_str::<Value>(l).ok())
			.filter(|v| v["event"] == kind)
			.collect()
	}

	/// The account verifier `i` verifies as.
	pub fn account(&self, i: usize) -> String {
		self.events(i, "verifier_joined")[0]["who"].as_str().unwrap().to_string()
	}

	/// Let the verifiers exit (they stop once every round is settled), then kill stragglers.
	pub fn finish(&mut self) {
		for c in self.children.iter_mut() {
			let _ = c.wait_timeout_or_kill(Duration::from_secs(30));
		}
	}
}

impl Drop for Verifiers {
	fn drop(&mut self) {
		for c in self.children.iter_mut() {
			let _ = c.kill();
			let _ = c.wait();
		}
	}
}
