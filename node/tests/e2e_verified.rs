//! End to end, verified contributions (issue #12): a real `trainchain-node --dev`, a verified
//! digits job created with the sponsor client, five `trainchain-trainer run` processes and
//! three `trainchain-trainer verify` processes.
//!
//! * Bob, Charlie and Dave train honestly on shards 0/3, 1/3 and 2/3;
//! * Eve is a free rider: she sends a zero update and claims three times her samples;
//! * Ferdie is a copier: he trains Bob's shard with Bob's seed, so his update is Bob's, and
//!   commits it after Bob;
//! * of the verifiers, `//Charlie//stash` lies: it scores Eve as the best contributor and
//!   reports a perfect model.
//!
//! Asserted: Eve and Ferdie earn nothing; Bob, Charlie and Dave together receive every unit of
//! each round's contributor pool; the lying verifier earns nothing and moves no payout; the
//! stored metric of each round is the honest verifiers' accuracy; the escrow is exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::trainers::{
	assert_verified_escrow_exact, create_job, finalized_rounds, paid_to, wait_completed,
	TrainerSpec, Trainers, Verifiers,
};
use common::{repo_root, DevNode};
use serde_json::json;
use std::time::Duration;

/// Reward per round: 300 TRAIN in planck.
const REWARD: u128 = 300 * 1_000_000_000_000;
/// The contributor pool: the reward less the 1% submitter and 10% verifier shares.
const POOL: u128 = REWARD - REWARD / 100 - REWARD / 10;

fn verified_job(node: &DevNode) -> u64 {
	let validation = repo_root().join("trainer-offchain/testdata/digits-test.csv");
	let train = repo_root().join("trainer-offchain/testdata/digits-train.csv");
	create_job(
		node,
		&[
			"--model",
			"mlp:64-32-10",
			"--rounds",
			"2",
			"--reward",
			"300",
			"--min",
			"5",
			"--max",
			"5",
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
			"--verifiers",
			"3",
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
			// The job fixes the input standardisation (fitted on the training set): the
			// trainers train, and the verifiers score, on standardised rows.
			"--standardize",
			train.to_str().unwrap(),
		],
	)
}

#[test]
fn verifiers_pay_for_useful_training_only() {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let job_id = verified_job(&node);
	let specs = [
		TrainerSpec { suri: "//Bob", shard: "0/3", extra: &[] },
		TrainerSpec { suri: "//Charlie", shard: "1/3", extra: &[] },
		TrainerSpec { suri: "//Dave", shard: "2/3", extra: &[] },
		TrainerSpec { suri: "//Eve", shard: "1/3", extra: &["--fault-byzantine", "free-ride"] },
		TrainerSpec { suri: "//Ferdie", shard: "0/3", extra: &["--fault-commit-delay", "7"] },
	];
	let mut trainers = Trainers::start_specs(&node, job_id, &specs);
	let eve_ss58 = "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw";
	let mut verifiers = Verifiers::start(
		&node,
		job_id,
		trainers.ports[0],
		&[
			("//Alice//stash", &[]),
			("//Bob//stash", &[]),
			("//Charlie//stash", &["--fault-favour", eve_ss58]),
		],
	);
	wait_completed(&node, job_id, &trainers.logs);
	node.wait_for(Duration::from_secs(300), "every round settled", || {
		let job = node.rpc("training_job", json!([job_id]));
		job["verification"]["openSettlements"] == 0
	});
	verifiers.finish();
	trainers.finish();

	let accounts: Vec<String> = (0..5).map(|i| trainers.account(i)).collect();
	let (honest, eve, ferdie) = (&accounts[..3], &accounts[3], &accounts[4]);
	assert_eq!(eve, eve_ss58);
	let liar = verifiers.account(2);
	let finalized = finalized_rounds(&node, job_id);
	assert_eq!(finalized.len(), 2, "rounds: {finalized:?}");
	for r in &finalized {
		let included: Vec<&str> = r["payouts"]
			.as_array()
			.unwrap()
			.iter()
			.map(|p| p["who"].as_str().unwrap())
			.collect();
		assert!(included.contains(&eve.as_str()), "free rider not included: {r}");
		assert!(included.contains(&ferdie.as_str()), "copier not included: {r}");
		assert_eq!(paid_to(r, eve), 0, "free rider paid: {r}");
		assert_eq!(paid_to(r, ferdie), 0, "copier paid: {r}");
		let honest_paid: u128 = honest.iter().map(|h| paid_to(r, h)).sum();
		assert_eq!(honest_paid, POOL, "the honest trainers get every unit of the pool: {r}");
		let rewarded: Vec<&str> = r["verifierPayouts"]
			.as_array()
			.unwrap()
			.iter()
			.map(|p| p["who"].as_str().unwrap())
			.collect();
		assert!(!rewarded.contains(&liar.as_str()), "lying verifier paid: {r}");
		assert_eq!(rewarded.len(), 2, "both honest verifiers paid: {r}");
		// The stored metric is what the honest verifiers measured.
		let round = r["round"].as_u64().unwrap();
		let honest_accuracy: Vec<u64> = (0..2)
			.flat_map(|i| verifiers.events(i, "scored"))
			.filter(|e| e["round"] == round)
			.map(|e| e["accuracy_ppm"].as_u64().unwrap())
			.collect();
		assert!(!honest_accuracy.is_empty(), "no honest sheet for round {round}");
		assert!(honest_accuracy.iter().all(|a| *a == honest_accuracy[0]));
		assert_eq!(r["metric"].as_u64(), Some(honest_accuracy[0]), "metric of round {round}");
	}
	// The verifiers scored on rows standardised as the trainers trained on them (a model
	// trained on standardised digits scores far lower on raw pixel counts).
	let last = finalized.last().unwrap()["metric"].as_u64().unwrap();
	assert!(last >= 900_000, "final accuracy {}%", last as f64 / 1e4);
	assert_verified_escrow_exact(&node, job_id);
}
