//! End to end, a verified job on a **public dataset** (issue #12): a real
//! `trainchain-node --dev`, a job whose spec commits the Merkle root of digits' training set in
//! 8 shards, three `trainchain-trainer run` processes and two `trainchain-trainer verify`
//! processes holding the same public file.
//!
//! * Bob and Charlie train, each round, the shard the chain assigns them;
//! * Dave skips the assignment: he trains the next shard instead (a real update, useful on the
//!   held-out set, just not the work he was given);
//! * the verifiers re-compute every contribution (`--recompute 3`).
//!
//! Asserted: every round is paid; each round's assigned shards are the primitives' rule;
//! both verifiers reject Dave's update by its re-computation and he earns nothing (his bond is
//! not touched); Bob and Charlie receive every unit of the contributor pool; the escrow is
//! exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::trainers::{
	assert_verified_escrow_exact, create_job, finalized_rounds, paid_to, planck, wait_completed,
	TrainerSpec, Trainers, Verifiers,
};
use common::{repo_root, DevNode};
use serde_json::json;
use std::time::Duration;

/// Reward per round: 300 TRAIN in planck.
const REWARD: u128 = 300 * 1_000_000_000_000;
/// The contributor pool: the reward less the 1% submitter and 10% verifier shares.
const POOL: u128 = REWARD - REWARD / 100 - REWARD / 10;

fn public_job(node: &DevNode, data: &str) -> u64 {
	let validation = repo_root().join("trainer-offchain/testdata/digits-test.csv");
	let args = [
		"--model",
		"mlp:64-32-10",
		"--rounds",
		"2",
		"--reward",
		"300",
		"--min",
		"3",
		"--max",
		"3",
		"--round-length",
		"60",
		"--commit-window",
		"30",
		"--bond",
		"10",
		"--lr",
		"0.1",
		"--batch",
		"32",
		"--local-steps",
		"40",
		"--verifiers",
		"2",
		"--validation-set",
		validation.to_str().unwrap(),
		"--verifier-bond",
		"10",
		"--verifier-share",
		"10",
		"--scoring-window",
		"20",
		"--challenge-period",
		"3",
		"--challenge-bond",
		"50",
		"--public-data",
		data,
		"--shards",
		"8",
		"--recompute",
		"3",
		// Every contributor and verifier standardises the rows with the statistics the job
		// fixes: a verifier that did not would re-compute other updates and reject them all.
		"--standardize",
		data,
	];
	create_job(node, &args)
}

#[test]
fn contributors_that_skip_their_assigned_shard_are_not_paid() {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let data = repo_root().join("trainer-offchain/testdata/digits-train.csv");
	let data = data.to_str().unwrap();
	let job_id = public_job(&node, data);
	let job = node.rpc("training_job", json!([job_id]));
	let public = &job["verification"]["publicData"];
	assert_eq!(public["shards"], 8, "{job}");
	assert_eq!(public["recompute"], 3, "{job}");
	let specs = [
		TrainerSpec { suri: "//Bob", shard: "0/1", extra: &[] },
		TrainerSpec { suri: "//Charlie", shard: "0/1", extra: &[] },
		TrainerSpec { suri: "//Dave", shard: "0/1", extra: &["--fault-wrong-shard"] },
	];
	let mut trainers = Trainers::start_specs(&node, job_id, &specs);
	let mut verifiers = Verifiers::start(
		&node,
		job_id,
		trainers.ports[0],
		&[("//Alice//stash", &["--data", data]), ("//Bob//stash", &["--data", data])],
	);
	// Each settling round lists the shards the chain assigned: record them as they show.
	let mut assigned = std::collections::BTreeMap::new();
	node.wait_for(Duration::from_secs(400), "every round settled", || {
		for r in node.rpc("training_rounds", json!([job_id])).as_array().unwrap() {
			if !r["assignedShards"].as_array().unwrap().is_empty() {
				assigned.insert(r["round"].as_u64().unwrap(), r["assignedShards"].clone());
			}
		}
		let job = node.rpc("training_job", json!([job_id]));
		job["phase"] == "completed" && job["verification"]["openSettlements"] == 0
	});
	wait_completed(&node, job_id, &trainers.logs);
	verifiers.finish();
	trainers.finish();

	let accounts: Vec<String> = (0..3).map(|i| trainers.account(i)).collect();
	let dave = &accounts[2];
	let finalized = finalized_rounds(&node, job_id);
	assert_eq!(finalized.len(), 2, "rounds: {finalized:?}");
	assert!(!assigned.is_empty(), "no settling round was seen with its shards");
	for shards in assigned.values() {
		let shards = shards.as_array().unwrap();
		assert_eq!(shards.len(), 3);
		assert!(shards.iter().all(|s| s.as_u64().unwrap() < 8), "{shards:?}");
	}
	for r in &finalized {
		let round = r["round"].as_u64().unwrap();
		assert_eq!(paid_to(r, dave), 0, "Dave trained the wrong shard and was paid: {r}");
		let honest: u128 = accounts[..2].iter().map(|h| paid_to(r, h)).sum();
		assert_eq!(honest, POOL, "Bob and Charlie get every unit of the pool: {r}");
		for v in 0..2 {
			let sheet = verifiers
				.events(v, "scored")
				.into_iter()
				.find(|e| e["round"] == round)
				.unwrap_or_else(|| panic!("verifier {v} has no sheet for round {round}"));
			let rejected: Vec<&str> = sheet["rejected"]
				.as_array()
				.unwrap()
				.iter()
				.map(|x| x["who"].as_str().unwrap())
				.collect();
			assert_eq!(rejected, vec![dave.as_str()], "verifier {v}, round {round}: {sheet}");
		}
	}
	assert_verified_escrow_exact(&node, job_id);
	assert_eq!(planck(&job["bonds"]["slashed"]), 0, "nobody's bond is slashed: {job}");
}
