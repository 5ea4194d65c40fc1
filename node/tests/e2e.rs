//! End to end: a real `trainchain-node --dev`, a job created with the sponsor client (real
//! @polkadot/api), three real `trainchain-trainer run` processes on digits shards. At least
//! three rounds finalise on-chain, every trainer's model hash equals the on-chain one each
//! round, the final accuracy is at least 90%, the escrow accounting is exact, and the model a
//! trainer saves at the end (`run --out`) is the job's latest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::trainers::{
	assert_escrow_exact, finalized_rounds, node_with_job, payees, wait_completed, Trainers,
};
use serde_json::{json, Value};
use std::{collections::BTreeMap, time::Duration};

#[test]
fn three_trainers_train_a_sponsored_job_and_get_paid() {
	let (node, job_id) = node_with_job(3);
	let out = std::env::temp_dir().join(format!("trainchain-final-{}.safetensors", node.rpc_port));
	let out_arg = out.display().to_string();
	let mut trainers = Trainers::start_with(&node, job_id, &[&["--out", &out_arg], &[], &[]]);
	wait_completed(&node, job_id, &trainers.logs);
	trainers.finish();

	let finalized = finalized_rounds(&node, job_id);
	assert!(finalized.len() >= 3, "rounds: {finalized:?}");

	// Every trainer's model hash equals the on-chain one for each round it reports.
	let on_chain: BTreeMap<u64, String> = finalized
		.iter()
		.map(|r| (r["round"].as_u64().unwrap(), r["modelHash"].as_str().unwrap().to_string()))
		.collect();
	for i in 0..3 {
		let reports = trainers.round_reports(i);
		assert!(
			!reports.is_empty(),
			"trainer {i} reported no round; see {}",
			trainers.logs.display()
		);
		for r in &reports {
			if let Some(expected) = on_chain.get(&r["round"].as_u64().unwrap()) {
				assert_eq!(
					r["model_hash"].as_str().unwrap(),
					expected,
					"trainer {i} round {}",
					r["round"]
				);
			}
		}
	}
	// Every round paid at least the job's minimum, and every trainer was paid (a trainer that
	// joins after the job started takes part from its next round on).
	for r in &finalized {
		assert!(payees(r).len() >= 2, "round {r}");
	}
	// The model is saved after every finalised round; the last file written is the job's
	// latest model.
	let latest = node.rpc("training_job", json!([job_id]))["latestModel"]
		.as_str()
		.unwrap()
		.to_string();
	let saved = trainers.events(0, "saved");
	assert_eq!(saved.last().map(|e| e["model_hash"].clone()), Some(json!(latest)), "{saved:?}");
	assert!(saved.len() > 1, "saved only when the job ended: {saved:?}");
	assert!(out.exists(), "no checkpoint at {}", out.display());
	for i in 0..3 {
		let who = trainers.account(i);
		assert!(
			finalized.iter().any(|r| payees(r).contains(&who)),
			"trainer {i} ({who}) was never paid: {finalized:?}"
		);
	}

	// Accuracy after the last round (the aggregate's metric, in ppm).
	let metric = finalized.last().unwrap()["metric"]
		.as_u64()
		.expect("the aggregate carries the accuracy");
	assert!(metric >= 900_000, "final accuracy {}%", metric as f64 / 1e4);

	assert_escrow_exact(&node, job_id, &finalized);
}

#[test]
fn a_killed_trainer_is_not_paid_for_rounds_it_missed() {
	let (node, job_id) = node_with_job(4);
	let mut trainers = Trainers::start(&node, job_id);

	// The job starts once two have joined, so Dave may miss the first round. Kill him
	// (SIGKILL) right after the first round that paid him.
	let mut dave_account = String::new();
	node.wait_for(Duration::from_secs(600), "a round that pays Dave", || {
		if dave_account.is_empty() && !trainers.events(2, "joined").is_empty() {
			dave_account = trainers.account(2);
		}
		!dave_account.is_empty()
			&& finalized_rounds(&node, job_id)
				.iter()
				.any(|r| payees(r).contains(&dave_account))
	});
	trainers.kill(2);
	let killed_during = node.rpc("training_job", json!([job_id]))["currentRound"].as_u64().unwrap();

	wait_completed(&node, job_id, &trainers.logs);
	trainers.finish();

	let finalized = finalized_rounds(&node, job_id);
	// Rounds that started after the kill finalise with the other two and do not pay Dave.
	let later: Vec<&Value> = finalized
		.iter()
		.filter(|r| r["round"].as_u64().unwrap() > killed_during)
		.collect();
	assert!(
		!later.is_empty(),
		"no round finalised after the kill (killed during round {killed_during}): {finalized:?}"
	);
	for r in &later {
		let who = payees(r);
		assert_eq!(who.len(), 2, "round {r}");
		assert!(!who.contains(&dave_account), "Dave paid for a missed round: {r}");
	}
	// Dave's recorded earnings are exactly his payouts (and submitter shares) from the rounds
	// he took part in.
	let contributors = node.rpc("training_contributors", json!([job_id]));
	let earned = contributors
		.as_array()
		.unwrap()
		.iter()
		.find(|c| c["who"] == dave_account.as_str())
		.map(|c| c["earned"].as_str().unwrap().parse::<u128>().unwrap());
	let paid: u128 = finalized
		.iter()
		.flat_map(|r| r["payouts"].as_array().unwrap().iter())
		.filter(|p| p["who"] == dave_account.as_str())
		.map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
		.sum();
	let submitter_shares: u128 = finalized
		.iter()
		.filter(|r| r["submitter"] == dave_account.as_str())
		.map(|r| r["submitterReward"].as_str().unwrap().parse::<u128>().unwrap())
		.sum();
	assert_eq!(earned, Some(paid + submitter_shares), "Dave's recorded earnings");
	assert_escrow_exact(&node, job_id, &finalized);
}
