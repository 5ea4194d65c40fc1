//! End-to-end: real `trainchain-trainer peer` processes on 127.0.0.1 training on digits
//! shards. Identical model hashes every round, accuracy close to simulated FedAvg, a killed
//! peer rejoining with the right model hash, and Byzantine peers contained by robust
//! aggregation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use trainchain_trainer::data::{self, CsvOptions};
use trainchain_trainer::model::ModelSpec;
use trainchain_trainer::train::{OptimizerConfig, TrainConfig};

const SURIS: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];
const SEED: u64 = 42;

fn testdata(name: &str) -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}
fn train_csv() -> PathBuf {
	testdata("digits-train.csv")
}
fn test_csv() -> PathBuf {
	testdata("digits-test.csv")
}

fn free_port() -> u16 {
	std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc {
	child: Child,
	lines: mpsc::Receiver<Value>,
	seen: Vec<Value>,
}

impl Proc {
	fn spawn(i: usize, port: u16, boot: Option<u16>, rounds: u32, extra: &[&str]) -> Self {
		let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainchain-trainer"));
		cmd.arg("peer")
			.args(["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
			.args(["--suri", SURIS[i]])
			.arg("--data")
			.arg(train_csv())
			.arg("--test")
			.arg(test_csv())
			.args(["--shard", &format!("{i}/4"), "--model", "mlp", "--seed", &SEED.to_string()])
			.args(["--rounds", &rounds.to_string(), "--job-id", "3", "--json"])
			.args(extra)
			.env(
				"TRAINCHAIN_LOG",
				std::env::var("TRAINCHAIN_LOG").unwrap_or_else(|_| "warn".into()),
			)
			.args(["--threads", "1"])
			.stdout(Stdio::piped())
			.stderr(Stdio::inherit());
		if let Some(b) = boot {
			cmd.args(["--bootstrap", &format!("/ip4/127.0.0.1/tcp/{b}")]);
		}
		let mut child = cmd.spawn().expect("spawn trainer");
		let out = child.stdout.take().unwrap();
		let (tx, rx) = mpsc::channel();
		std::thread::spawn(move || {
			for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
				if let Ok(v) = serde_json::from_str::<Value>(&line) {
					if tx.send(v).is_err() {
						break;
					}
				}
			}
		});
		Proc { child, lines: rx, seen: Vec::new() }
	}

	/// Wait for a JSON line matching `f`.
	fn wait_for(&mut self, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
		if let Some(v) = self.seen.iter().find(|v| f(v)) {
			return v.clone();
		}
		let dl = Instant::now() + timeout;
		loop {
			let left = dl.saturating_duration_since(Instant::now());
			match self.lines.recv_timeout(left) {
				Ok(v) => {
					self.seen.push(v.clone());
					if f(&v) {
						return v;
					}
				},
				Err(_) => panic!("timed out; seen: {:?}", self.seen),
			}
		}
	}

	fn finish(&mut self, timeout: Duration) -> Vec<Value> {
		self.wait_for(timeout, |v| v["event"] == "done");
		let _ = self.child.wait();
		self.rounds()
	}

	fn rounds(&self) -> Vec<Value> {
		self.seen.iter().filter(|v| v["event"] == "round").cloned().collect()
	}
}

impl Drop for Proc {
	fn drop(&mut self) {
		let _ = self.child.kill();
		let _ = self.child.wait();
	}
}

fn hashes(rounds: &[Value]) -> BTreeMap<u64, String> {
	rounds
		.iter()
		.map(|r| (r["round"].as_u64().unwrap(), r["model_hash"].as_str().unwrap().to_string()))
		.collect()
}

fn start_four(rounds: u32, extra: impl Fn(usize) -> Vec<String>) -> Vec<Proc> {
	let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
	(0..4)
		.map(|i| {
			let e = extra(i);
			let e: Vec<&str> = e.iter().map(String::as_str).collect();
			Proc::spawn(i, ports[i], (i > 0).then_some(ports[0]), rounds, &e)
		})
		.collect()
}

/// Final test accuracy of simulated FedAvg over the same shards, seeds and settings.
fn simulated_accuracy(rounds: usize) -> f32 {
	let all = data::load_csv(train_csv(), CsvOptions::default()).unwrap();
	let test = data::load_csv(test_csv(), CsvOptions::default()).unwrap();
	let shards = data::shard_iid(&all, 4, SEED).unwrap();
	let spec = ModelSpec::resolve("mlp", all.n_features(), all.num_classes()).unwrap();
	let cfg = TrainConfig { optimizer: OptimizerConfig::sgd(0.05, 0.9), ..Default::default() };
	let out = trainchain_trainer::fedavg::simulate(
		&spec,
		&shards,
		rounds,
		&cfg,
		SEED,
		Some(&test),
		&mut |_| {},
	)
	.unwrap();
	out.rounds.last().unwrap().test.as_ref().unwrap().accuracy
}

const COMMON: [&str; 6] = ["--min-peers", "3", "--initial-peers", "4", "--round-timeout", "6"];

#[test]
fn four_processes_agree_every_round_and_match_fedavg() {
	let rounds = 4;
	let mut procs = start_four(rounds, |_| COMMON.iter().map(|s| s.to_string()).collect());
	let results: Vec<Vec<Value>> =
		procs.iter_mut().map(|p| p.finish(Duration::from_secs(90))).collect();
	let h0 = hashes(&results[0]);
	assert_eq!(h0.len(), rounds as usize, "{:?}", results[0]);
	for r in &results {
		assert_eq!(hashes(r), h0, "peers diverged");
		for x in r {
			assert_eq!(x["included"].as_array().unwrap().len(), 4);
		}
	}
	let acc = results[0].last().unwrap()["accuracy"].as_f64().unwrap() as f32;
	let sim = simulated_accuracy(rounds as usize);
	eprintln!("p2p accuracy {acc:.4}, simulated FedAvg {sim:.4}");
	assert!((acc - sim).abs() <= 0.01, "p2p {acc} vs simulated {sim}");
	// Exactly one complete certificate per round.
	for round in 0..rounds as u64 {
		let holders = results
			.iter()
			.flatten()
			.filter(|x| x["round"] == round && x["certificate_complete"] == true)
			.count();
		assert_eq!(holders, 1, "round {round}");
	}
}

/// A DiLoCo-style run (AdamW inner steps, Nesterov outer step, sparse 2-bit exchange): the
/// outer momentum is part of the state a restarted peer syncs, so it computes the same
/// models as the others afterwards.
#[test]
fn killed_peer_is_left_out_then_rejoins_with_the_right_model() {
	let rounds = 12;
	let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
	// Rounds take milliseconds here: pace them so the session is still running when the
	// restarted peer comes back.
	let mut args: Vec<&str> = COMMON.to_vec();
	args.extend(["--min-round-secs", "1"]);
	args.extend(["--inner", "adamw:0.01", "--lr", "0.003", "--local-steps", "10"]);
	args.extend(["--outer", "nesterov:0.7:0.9", "--compression", "sparse:0.0156:2"]);
	let mut procs: Vec<Proc> = (0..4)
		.map(|i| Proc::spawn(i, ports[i], (i > 0).then_some(ports[0]), rounds, &args))
		.collect();
	// Kill Dave as soon as round 1 is done: the others are already into round 2.
	procs[3].wait_for(Duration::from_secs(60), |v| v["event"] == "round" && v["round"] == 1);
	procs[3].child.kill().unwrap();
	let _ = procs[3].child.wait();
	// The others finish round 2 with 3 peers.
	let r2 =
		procs[0].wait_for(Duration::from_secs(60), |v| v["event"] == "round" && v["round"] == 2);
	assert_eq!(r2["included"].as_array().unwrap().len(), 3, "{r2}");
	// Restart Dave: it fetches the state, checks the hash against the certificate, rejoins.
	let mut dave = Proc::spawn(3, free_port(), Some(ports[0]), rounds, &args);
	let joined = dave.wait_for(Duration::from_secs(30), |v| v["event"] == "joined");
	let join_round = joined["round"].as_u64().unwrap();
	assert!(join_round >= 3, "{joined}");
	let others: Vec<Vec<Value>> =
		procs.iter_mut().take(3).map(|p| p.finish(Duration::from_secs(120))).collect();
	let dave_rounds = dave.finish(Duration::from_secs(60));
	let h0 = hashes(&others[0]);
	for o in &others {
		assert_eq!(hashes(o), h0);
	}
	let hd = hashes(&dave_rounds);
	assert!(
		!hd.is_empty(),
		"restarted peer completed no round; dave: {:?}; alice: {:?}",
		dave.seen,
		others[0]
	);
	for (r, h) in &hd {
		assert_eq!(h0.get(r), Some(h), "restarted peer diverged in round {r}");
	}
	// Dave contributes again after rejoining.
	assert!(
		others[0].iter().any(|x| x["round"].as_u64().unwrap() >= join_round
			&& x["included"].as_array().unwrap().len() == 4),
		"restarted peer never included again; dave: {:?}",
		dave.seen
	);
	assert!(dave_rounds.iter().any(|x| x["participated"] == true));
}

#[test]
fn robust_aggregation_contains_a_byzantine_peer() {
	let rounds = 4;
	let sim = simulated_accuracy(rounds as usize);
	for (agg, byz) in [("median", "scale:-20"), ("trimmed", "scale:50")] {
		let mut procs = start_four(rounds, |i| {
			let mut v: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
			v.extend(["--aggregator", agg, "--norm-factor", "0"].map(String::from));
			if i == 3 {
				v.extend(["--byzantine", byz].map(String::from));
			}
			v
		});
		let results: Vec<Vec<Value>> =
			procs.iter_mut().map(|p| p.finish(Duration::from_secs(90))).collect();
		let h0 = hashes(&results[0]);
		for r in &results {
			assert_eq!(hashes(r), h0);
		}
		let acc = results[0].last().unwrap()["accuracy"].as_f64().unwrap() as f32;
		eprintln!("{agg} with {byz}: accuracy {acc:.4} (honest simulated {sim:.4})");
		assert!(acc >= sim - 0.02, "{agg}: {acc} vs honest {sim}");
	}
}
