//! The whole system, faults included (issue #13). Four validators of `--chain local` (Alice,
//! Bob, Charlie and Dave) and four `trainchain-trainer run` processes, each process on its own
//! host (a network namespace of a [`netns::Lab`], routed through a "public" namespace), run a
//! five-round digits job created with the sponsor client (real @polkadot/api). Once a round
//! that paid the fourth trainer (Eve) has finalised on-chain, one validator (Dave) and that
//! trainer are killed with SIGKILL. Then:
//! - blocks keep finalising, on every surviving validator, and they agree on the blocks;
//! - the job completes with all its rounds finalised (a model hash each; a round that fails,
//!   e.g. because the kill broke its peer agreement, pays nobody and is re-opened by the
//!   chain), the rounds after the kill paid exactly the three surviving trainers, and every
//!   trainer's model hash matches the chain's;
//! - the escrow is exact: payouts + submitter shares + refund = deposit, nothing left on hold.
//!
//! Why four validators: GRANDPA finalises a block once more than 2/3 of the authorities' votes
//! are for it, i.e. `n - (n - 1) / 3` of `n` equal votes. With four authorities that is three:
//! one may fail. With three it is all three: 2 of 3 is not more than 2/3, so a three-authority
//! chain that loses one validator keeps producing blocks (Aura) but stops finalising them. The
//! `local` chain therefore has four authorities (runtime `local_config_genesis`).
//!
//! Run as root (CI is): creating namespaces needs CAP_SYS_ADMIN; elsewhere the test prints
//! `SKIP` and passes, as the trainer's namespace tests do. Progress and timings go to stderr
//! whether or not the test passes (test-lanes prints a binary's whole output).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
#[path = "../../trainer-offchain/tests/netns/mod.rs"]
mod netns;

use common::{
	trainers::{
		assert_escrow_exact, create_job, finalized_rounds, payees, Placement, TrainerSpec, Trainers,
	},
	workspace_bin, DevNode,
};
use netns::Lab;
use serde_json::{json, Value};
use std::{
	collections::{BTreeMap, BTreeSet},
	path::Path,
	time::{Duration, Instant},
};

/// Print a progress or timing line to stderr, past libtest's capture: the lanes of
/// `scripts/test.sh` show it for a passing run too.
macro_rules! say {
	($($arg:tt)*) => {{
		use std::io::Write as _;
		let _ = writeln!(std::io::stderr(), $($arg)*);
	}};
}

/// The validators' dev keys (`--alice` …), all four authorities of `--chain local`.
const VALIDATORS: [&str; 4] = ["alice", "bob", "charlie", "dave"];
/// The validator that is killed (Dave). The sponsor and the trainers use the others.
const KILLED_VALIDATOR: usize = 3;
/// The trainers' accounts; trainer 0 is everybody's bootstrap.
const TRAINERS: [&str; 4] = ["//Bob", "//Charlie", "//Dave", "//Eve"];
/// The trainer that is killed (Eve).
const KILLED_TRAINER: usize = 3;
const ROUNDS: u64 = 5;
/// Blocks of a round's commit window. After the kill every round waits for the whole window
/// (the killed trainer is still a contributor on-chain, so not everybody commits); the
/// trainers commit within a few blocks of a round's start.
const COMMIT_WINDOW: u32 = 10;
/// Each node's RPC and p2p ports, the trainers' p2p port (every process has its own host).
const RPC_PORT: u16 = 9944;
const P2P_PORT: u16 = 30333;
const TRAINER_PORT: u16 = 30400;

/// Start validator `v` in host namespace `v` of `lab`, with `--bootnodes` `boot` (if any).
fn start_validator(lab: &Lab, v: usize, boot: Option<&str>, logs: &Path) -> DevNode {
	let ns = lab.hosts[v].clone();
	let mut cmd = lab.command(&ns, Path::new(env!("CARGO_BIN_EXE_trainchain-node")));
	// Its database in the test's directory rather than `--tmp`'s: a node killed with SIGKILL
	// never removes its temporary directory, and [`RemoveOnDrop`] removes this one.
	cmd.args(["--chain", "local", &format!("--{}", VALIDATORS[v])])
		.arg("--base-path")
		.arg(logs.join(format!("validator-{v}-db")))
		.args(["--no-telemetry", "--no-mdns", "--no-prometheus"])
		// Reachable from the trainers' hosts: listen on all of this host's interfaces (safe
		// methods only would refuse a validator; this host is the test's own namespace).
		.args(["--unsafe-rpc-external", "--rpc-cors", "all"])
		.args(["--rpc-port", &RPC_PORT.to_string(), "--port", &P2P_PORT.to_string()])
		// A fixed node key: a validator without one refuses to start on a non-dev chain.
		.args(["--node-key", &format!("{:064x}", v + 1)])
		.args(["--public-addr", &format!("/ip4/{}/tcp/{P2P_PORT}", lab.host_ip(v))])
		.env("RUST_LOG", "info");
	if let Some(b) = boot {
		cmd.args(["--bootnodes", b]);
	}
	DevNode::adopt(cmd, RPC_PORT, logs.join(format!("validator-{v}.log")), Some(ns))
}

/// Directories removed when it is dropped (after the processes that used them).
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
	fn drop(&mut self) {
		for d in &self.0 {
			let _ = std::fs::remove_dir_all(d);
		}
	}
}

/// Everything a failure message needs: the tail of every log.
fn context(validators: &[DevNode], trainers: Option<&Trainers>) -> String {
	let mut s = String::new();
	for (v, node) in validators.iter().enumerate() {
		s += &format!("\n--- validator {v} ({}) log tail:\n{}\n", VALIDATORS[v], node.log_tail());
	}
	if let Some(t) = trainers {
		for (i, suri) in TRAINERS.iter().enumerate() {
			s += &format!("\n--- trainer {i} ({suri}) log tail:\n{}\n", t.log_tail(i));
		}
		s += &format!("\n(all logs in {})", t.logs.display());
	}
	s
}

/// Poll `cond` every second until it holds; panic with `ctx()` after `timeout`.
fn poll(timeout: Duration, what: &str, ctx: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
	let start = Instant::now();
	while !cond() {
		if start.elapsed() > timeout {
			panic!("timed out after {timeout:?} waiting for {what}{}", ctx());
		}
		std::thread::sleep(Duration::from_secs(1));
	}
}

/// Number of peers a node is connected to.
fn peers(node: &DevNode) -> u64 {
	node.try_rpc("system_health", json!([]))
		.and_then(|v| v["result"]["peers"].as_u64())
		.unwrap_or(0)
}

/// Hash of block `n` on `node`'s chain.
fn block_hash(node: &DevNode, n: u64) -> String {
	node.rpc("chain_getBlockHash", json!([n]))
		.as_str()
		.unwrap_or_default()
		.to_string()
}

#[test]
fn four_validators_and_four_trainers_survive_a_killed_validator_and_trainer() {
	let t0 = Instant::now();
	let _turn = DevNode::turn();
	// Hosts 0-3: the validators; hosts 4-7: the trainers. All routed through the public one.
	let Some(lab) = Lab::new(VALIDATORS.len() + TRAINERS.len()) else {
		say!("SKIP e2e_faults: no network namespaces here (needs root); nothing was tested");
		return;
	};
	lab.set_forwarding(true);
	let logs = std::env::temp_dir().join(format!("trainchain-faults-{}", lab.public));
	std::fs::create_dir_all(&logs).unwrap();
	say!("logs in {}", logs.display());
	// Declared before the validators, so dropped after them: their databases.
	let _databases = RemoveOnDrop(
		(0..VALIDATORS.len()).map(|v| logs.join(format!("validator-{v}-db"))).collect(),
	);
	let mut validators = start_validators(&lab, &logs);
	say!("[{:>4} s] 4 validators up, connected, finalising", t0.elapsed().as_secs());
	let args = job_args();
	let job_id = create_job(&validators[0], &args.iter().map(String::as_str).collect::<Vec<_>>());
	let mut trainers = start_trainers(&lab, job_id, &logs);
	let mut clock = RoundClock::new(t0, job_id);
	say!("[{:>4} s] job {job_id} created, 4 trainers started", t0.elapsed().as_secs());

	let kill = kill_mid_job(&mut validators, &mut trainers, &mut clock);
	let survivors = survivors();
	let fin_after = wait_for_finality_past(&validators, &trainers, kill.best + 3);
	let finality_resumed = kill.at.elapsed();
	say!(
		"[{:>4} s] finalised #{} -> #{fin_after} {:.0} s after the kill",
		t0.elapsed().as_secs(),
		kill.finalized,
		finality_resumed.as_secs_f64()
	);
	let (fin_end, job_time) = wait_for_the_job_to_end(&validators, &mut trainers, &mut clock);

	let finalized = assert_every_round_has_a_model(&validators[0], job_id);
	let failed = assert_failed_rounds_paid_nobody(&validators[0], job_id);
	assert_survivors_paid_after_the_kill(&trainers, &finalized, kill.during_round);
	assert_trainers_match_the_chain(&trainers, &finalized);
	assert_escrow_exact(&validators[0], job_id, &finalized);
	// Finality went on through the whole job, and the surviving validators agree on the chain.
	for (k, v) in survivors.iter().enumerate() {
		assert!(
			fin_end[k] >= kill.best + 3,
			"validator {v} finalised only #{} (best #{} at the kill)",
			fin_end[k],
			kill.best
		);
	}
	let common_height = *fin_end.iter().min().unwrap();
	let hashes: Vec<String> =
		survivors.iter().map(|v| block_hash(&validators[*v], common_height)).collect();
	assert!(
		hashes.iter().all(|h| !h.is_empty() && *h == hashes[0]),
		"the surviving validators disagree on block #{common_height}: {hashes:?}"
	);

	clock.print();
	say!(
		"fault test: {ROUNDS} rounds in {:.0} s ({:.0} s per round, failed rounds \
		 {failed:?}); finality resumed {:.0} s after the kill (#{} -> #{fin_after}); whole test \
		 {:.0} s",
		job_time.as_secs_f64(),
		job_time.as_secs_f64() / ROUNDS as f64,
		finality_resumed.as_secs_f64(),
		kill.finalized,
		t0.elapsed().as_secs_f64()
	);
}

/// The four validators: Alice first (everybody's bootnode), then the other three at once;
/// returns once each sees the other three and block #2 is finalised.
fn start_validators(lab: &Lab, logs: &Path) -> Vec<DevNode> {
	let mut validators = vec![start_validator(lab, 0, None, logs)];
	validators[0].wait_rpc();
	let alice_id = validators[0].rpc("system_localPeerId", json!([]));
	let boot = format!("/ip4/{}/tcp/{P2P_PORT}/p2p/{}", lab.host_ip(0), alice_id.as_str().unwrap());
	for v in 1..VALIDATORS.len() {
		validators.push(start_validator(lab, v, Some(&boot), logs));
	}
	for node in &validators[1..] {
		node.wait_rpc();
	}
	poll(
		Duration::from_secs(120),
		"every validator to see the other three and block #2 to be finalised",
		|| context(&validators, None),
		|| validators.iter().all(|n| peers(n) >= 3) && validators[0].finalized_number() >= 2,
	);
	validators
}

/// The job, created from Alice's host: min 3 contributors, so it survives the loss of one
/// of four.
fn job_args() -> Vec<String> {
	let window = COMMIT_WINDOW.to_string();
	let length = (2 * COMMIT_WINDOW + 4).to_string();
	let rounds = ROUNDS.to_string();
	[
		("--model", "mlp:64-32-10"),
		("--rounds", &rounds),
		("--reward", "400"),
		("--min", "3"),
		("--max", "4"),
		("--round-length", &length),
		("--commit-window", &window),
		("--bond", "10"),
		("--lr", "0.1"),
		("--batch", "32"),
	]
	.iter()
	.flat_map(|(k, v)| [k.to_string(), v.to_string()])
	.collect()
}

/// The trainers, each on its own host, spread over the validators that stay up.
fn start_trainers(lab: &Lab, job_id: u64, logs: &Path) -> Trainers {
	let shards: Vec<String> =
		(0..TRAINERS.len()).map(|i| format!("{i}/{}", TRAINERS.len())).collect();
	let specs: Vec<TrainerSpec> = (0..TRAINERS.len())
		.map(|i| TrainerSpec { suri: TRAINERS[i], shard: &shards[i], extra: &[] })
		.collect();
	let placed: Vec<Placement> = (0..TRAINERS.len())
		.map(|i| {
			let host = VALIDATORS.len() + i;
			let v = i % KILLED_VALIDATOR;
			Placement {
				command: lab.command(&lab.hosts[host], &workspace_bin("trainchain-trainer")),
				node_url: format!("ws://{}:{RPC_PORT}", lab.host_ip(v)),
				listen: format!("/ip4/{}/tcp/{TRAINER_PORT}", lab.host_ip(host)),
			}
		})
		.collect();
	Trainers::start_placed(job_id, &specs, placed, logs)
}

/// When each round was first seen finalised, counted from the test's and the job's start.
struct RoundClock {
	t0: Instant,
	job_start: Instant,
	job_id: u64,
	seen: BTreeMap<u64, Duration>,
}

impl RoundClock {
	fn new(t0: Instant, job_id: u64) -> Self {
		Self { t0, job_start: Instant::now(), job_id, seen: BTreeMap::new() }
	}

	/// The job's finalised rounds on `node`; a round seen for the first time is noted.
	fn note(&mut self, node: &DevNode) -> Vec<Value> {
		let fin = finalized_rounds(node, self.job_id);
		for r in &fin {
			let round = r["round"].as_u64().unwrap();
			if let std::collections::btree_map::Entry::Vacant(e) = self.seen.entry(round) {
				e.insert(self.job_start.elapsed());
				say!(
					"[{:>4} s] round {round} finalised on-chain (closed at block {}, payees {})",
					self.t0.elapsed().as_secs(),
					r["closedAt"],
					payees(r).len()
				);
			}
		}
		fin
	}

	fn print(&self) {
		let mut prev = Duration::ZERO;
		for (round, at) in &self.seen {
			say!(
				"round {round}: finalised {:.0} s after the trainers started (+{:.0} s)",
				at.as_secs_f64(),
				at.saturating_sub(prev).as_secs_f64()
			);
			prev = *at;
		}
	}
}

/// What the chain looked like when the validator and the trainer were killed.
struct Kill {
	at: Instant,
	/// The job's round in progress.
	during_round: u64,
	/// Finalised and best block numbers on Alice.
	finalized: u64,
	best: u64,
}

/// Mid-job: once a finalised round paid Eve, kill her and Dave's validator (SIGKILL).
fn kill_mid_job(
	validators: &mut [DevNode],
	trainers: &mut Trainers,
	clock: &mut RoundClock,
) -> Kill {
	let mut victim = String::new();
	poll(
		Duration::from_secs(600),
		"a finalised round that paid the fourth trainer",
		|| context(validators, Some(trainers)),
		|| {
			if victim.is_empty() && !trainers.events(KILLED_TRAINER, "joined").is_empty() {
				victim = trainers.account(KILLED_TRAINER);
			}
			let fin = clock.note(&validators[0]);
			!victim.is_empty() && fin.iter().any(|r| payees(r).contains(&victim))
		},
	);
	let job = validators[0].rpc("training_job", json!([clock.job_id]));
	let during_round = job["currentRound"].as_u64().unwrap();
	assert!(
		during_round < ROUNDS,
		"the job ended before the kill (round {during_round}): {job}{}",
		context(validators, Some(trainers))
	);
	let kill = Kill {
		at: Instant::now(),
		during_round,
		finalized: validators[0].finalized_number(),
		best: validators[0].best_number(),
	};
	validators[KILLED_VALIDATOR].kill();
	trainers.kill(KILLED_TRAINER);
	say!(
		"[{:>4} s] killed validator {} and trainer {} ({victim}) during round {during_round}; \
		 finalised #{}, best #{}",
		clock.t0.elapsed().as_secs(),
		VALIDATORS[KILLED_VALIDATOR],
		TRAINERS[KILLED_TRAINER],
		kill.finalized,
		kill.best
	);
	assert!(
		validators[KILLED_VALIDATOR].try_rpc("system_health", json!([])).is_none(),
		"the killed validator still answers"
	);
	kill
}

/// Every round finalised, once, with a model, and the job's model is the last round's.
/// Returns the finalised rounds.
fn assert_every_round_has_a_model(node: &DevNode, job_id: u64) -> Vec<Value> {
	let job = node.rpc("training_job", json!([job_id]));
	let finalized = finalized_rounds(node, job_id);
	let numbers: BTreeSet<u64> = finalized.iter().map(|r| r["round"].as_u64().unwrap()).collect();
	assert_eq!(job["finalizedRounds"].as_u64(), Some(ROUNDS), "{job}");
	assert_eq!(
		(numbers.len(), finalized.len()),
		(ROUNDS as usize, ROUNDS as usize),
		"rounds: {finalized:?}"
	);
	let zero = format!("0x{}", "0".repeat(64));
	for r in &finalized {
		let hash = r["modelHash"].as_str().unwrap_or_default();
		assert!(hash.len() == 66 && hash != zero, "round without a model: {r}");
	}
	assert_eq!(
		job["latestModel"],
		finalized.iter().max_by_key(|r| r["round"].as_u64()).unwrap()["modelHash"],
		"the job's model is not its last round's: {job}"
	);
	finalized
}

/// A round can fail (its deadline passes without an aggregate): the survivors of a kill in
/// the middle of a round's peer agreement may not reach the job's minimum in time. The job
/// then opens the next round; a failed round pays nobody and its reward stays in escrow.
/// Returns the failed rounds' numbers.
fn assert_failed_rounds_paid_nobody(node: &DevNode, job_id: u64) -> Vec<u64> {
	let history = node.rpc("training_rounds", json!([job_id]));
	let failed: Vec<&Value> = history
		.as_array()
		.unwrap()
		.iter()
		.filter(|r| r["outcome"] == "failed")
		.collect();
	for r in &failed {
		assert!(payees(r).is_empty(), "a failed round paid: {r}");
	}
	let numbers: Vec<u64> = failed.iter().filter_map(|r| r["round"].as_u64()).collect();
	say!("failed rounds (re-opened by the chain): {numbers:?}");
	numbers
}

/// The rounds that started after the kill paid exactly the three surviving trainers.
fn assert_survivors_paid_after_the_kill(
	trainers: &Trainers,
	finalized: &[Value],
	killed_during: u64,
) {
	let alive: BTreeSet<String> = (0..TRAINERS.len())
		.filter(|i| *i != KILLED_TRAINER)
		.map(|i| trainers.account(i))
		.collect();
	let later: Vec<&Value> = finalized
		.iter()
		.filter(|r| r["round"].as_u64().unwrap() > killed_during)
		.collect();
	assert!(!later.is_empty(), "no round started after the kill: {finalized:?}");
	for r in &later {
		let paid: BTreeSet<String> = payees(r).into_iter().collect();
		assert_eq!(paid, alive, "round {} after the kill paid {paid:?}: {r}", r["round"]);
	}
}

/// Every surviving trainer's model hash equals the chain's for each round it reports.
fn assert_trainers_match_the_chain(trainers: &Trainers, finalized: &[Value]) {
	let on_chain: BTreeMap<u64, &str> = finalized
		.iter()
		.map(|r| (r["round"].as_u64().unwrap(), r["modelHash"].as_str().unwrap()))
		.collect();
	for i in (0..TRAINERS.len()).filter(|i| *i != KILLED_TRAINER) {
		let reports = trainers.round_reports(i);
		assert!(!reports.is_empty(), "trainer {i} reported no round{}", trainers.log_tail(i));
		for r in &reports {
			if let Some(expected) = on_chain.get(&r["round"].as_u64().unwrap()) {
				assert_eq!(r["model_hash"].as_str(), Some(*expected), "trainer {i}: {r}");
			}
		}
	}
}

/// The validators left after the kill.
fn survivors() -> Vec<usize> {
	(0..VALIDATORS.len()).filter(|v| *v != KILLED_VALIDATOR).collect()
}

/// A failure message after the kill.
fn ctx_after_kill(trainers: &Trainers, validators: &[DevNode]) -> String {
	format!("{}\n(validators still up: {:?})", context(validators, Some(trainers)), survivors())
}

/// Finality goes on with three of four votes, on every surviving validator: waits until
/// block `block` is finalised on each (`block` past the best block at the kill, which the
/// killed validator never saw). With two of four validators killed instead this times out:
/// finality stays where it was while blocks are still produced, the same 1/2 < 2/3 of votes
/// that one of three would leave. Returns Alice's finalised number.
fn wait_for_finality_past(validators: &[DevNode], trainers: &Trainers, block: u64) -> u64 {
	poll(
		Duration::from_secs(90),
		&format!("block #{block} (3 past the best at the kill) to be finalised"),
		|| ctx_after_kill(trainers, validators),
		|| survivors().iter().all(|v| validators[*v].finalized_number() >= block),
	);
	validators[0].finalized_number()
}

/// The job completes with the three trainers left, and the block that closed its last round
/// is finalised on every surviving validator. Returns their finalised numbers and the
/// job's time from the trainers' start to its completion.
fn wait_for_the_job_to_end(
	validators: &[DevNode],
	trainers: &mut Trainers,
	clock: &mut RoundClock,
) -> (Vec<u64>, Duration) {
	let job_id = clock.job_id;
	poll(
		Duration::from_secs(900),
		"the job to complete",
		|| ctx_after_kill(trainers, validators),
		|| {
			clock.note(&validators[0]);
			let job = validators[0].rpc("training_job", json!([job_id]));
			let phase = job["phase"].as_str().unwrap_or_default().to_string();
			assert!(
				!["failed", "cancelled"].contains(&phase.as_str()),
				"job ended as {phase}: {job}{}",
				ctx_after_kill(trainers, validators)
			);
			phase == "completed"
		},
	);
	let job_time = clock.job_start.elapsed();
	trainers.finish();
	let last_close = finalized_rounds(&validators[0], job_id)
		.iter()
		.filter_map(|r| r["closedAt"].as_u64())
		.max()
		.unwrap_or(u64::MAX);
	poll(
		Duration::from_secs(60),
		&format!("block #{last_close} (the job's last round closed) to be finalised"),
		|| ctx_after_kill(trainers, validators),
		|| survivors().iter().all(|v| validators[*v].finalized_number() >= last_close),
	);
	let fin_end: Vec<u64> = survivors().iter().map(|v| validators[*v].finalized_number()).collect();
	say!(
		"[{:>4} s] job completed in {:.0} s (last round closed at #{last_close}); finalised \
		 heads (alice, bob, charlie): {fin_end:?}",
		clock.t0.elapsed().as_secs(),
		job_time.as_secs_f64()
	);
	(fin_end, job_time)
}
