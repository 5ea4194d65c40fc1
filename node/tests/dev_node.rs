//! The real `trainchain-node --dev` binary: it produces and finalises blocks, accepts a signed
//! `create_job` from a real polkadot.js client, refuses bad input with named errors, and serves
//! the job through the `training_*` RPC and through storage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use codec::{Decode, Encode};
use common::{sponsor, DevNode};
use serde_json::json;
use std::time::Duration;

fn storage_key_of_job(job_id: u64) -> String {
	let mut key = sp_crypto_hashing::twox_128(b"TrainingRewards").to_vec();
	key.extend(sp_crypto_hashing::twox_128(b"Jobs"));
	let id = job_id.encode();
	key.extend(sp_crypto_hashing::blake2_128(&id));
	key.extend(id);
	format!("0x{}", hex::encode(key))
}

#[test]
fn dev_node_produces_finalises_and_serves_jobs() {
	let node = DevNode::start();

	// Blocks are produced and finalised.
	node.wait_for(Duration::from_secs(90), "finalised block #2", || node.finalized_number() >= 2);
	assert!(node.best_number() >= 2);
	let props = node.rpc("system_properties", json!([]));
	assert_eq!(props["tokenSymbol"], "TRAIN");

	// A sponsor registers a job with polkadot.js.
	let commitment = format!("0x{}", "ab".repeat(32));
	let (ok, stdout, stderr) = sponsor(
		&node,
		&[
			"create-job",
			"--model",
			"mlp:64-32-10",
			"--model-commitment",
			&commitment,
			"--rounds",
			"3",
			"--reward",
			"100",
			"--min",
			"2",
			"--max",
			"5",
			"--json",
		],
	);
	assert!(ok, "create-job failed: {stderr}");
	let created: serde_json::Value =
		serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
	let job_id = created["jobId"].as_u64().unwrap();
	assert_eq!(created["escrow"], "300000000000000");

	// The training RPC shows it.
	let job = node.rpc("training_job", json!([job_id]));
	assert_eq!(job["jobId"], job_id);
	assert_eq!(job["sponsor"], "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
	assert_eq!(job["modelCommitment"], commitment);
	assert_eq!(job["phase"], "waiting_for_contributors");
	assert_eq!(job["rewardPerRound"], "100000000000000");
	assert_eq!(job["escrow"]["held"], "300000000000000");
	assert_eq!(job["metadata"], "model=mlp:64-32-10;data=digits");
	let jobs = node.rpc("training_jobs", json!([]));
	assert!(jobs.as_array().unwrap().iter().any(|j| j["jobId"] == job_id));
	assert!(node.rpc("training_job", json!([job_id + 1000])).is_null());

	// Storage holds the same job, decoded with the runtime's own types.
	let raw = node.rpc("state_getStorage", json!([storage_key_of_job(job_id)]));
	let bytes = hex::decode(raw.as_str().unwrap().trim_start_matches("0x")).unwrap();
	let stored =
		pallet_training_rewards::JobOf::<trainchain_runtime::Runtime>::decode(&mut &bytes[..])
			.unwrap();
	assert_eq!(stored.rounds, 3);
	assert_eq!(stored.escrow.deposited, 300 * trainchain_runtime::UNIT);
	assert_eq!(stored.spec.min_contributors, 2);
	assert_eq!(stored.status, pallet_training_rewards::JobStatus::WaitingForContributors);

	// Bad input: a named error, a non-zero exit, nothing created.
	let (ok, _, stderr) = sponsor(
		&node,
		&[
			"create-job",
			"--model",
			"m",
			"--model-commitment",
			&commitment,
			"--rounds",
			"0",
			"--reward",
			"1",
		],
	);
	assert!(!ok);
	assert!(stderr.contains("trainingRewards.ZeroRounds"), "stderr: {stderr}");
	let (ok, _, stderr) = sponsor(
		&node,
		&[
			"create-job",
			"--model",
			"m",
			"--model-commitment",
			&commitment,
			"--rounds",
			"2",
			"--reward",
			"1",
			"--min",
			"4",
			"--max",
			"3",
		],
	);
	assert!(!ok);
	assert!(stderr.contains("trainingRewards.MinAboveMax"), "stderr: {stderr}");
	let (ok, _, stderr) =
		sponsor(&node, &["cancel", "--job", &job_id.to_string(), "--suri", "//Bob"]);
	assert!(!ok);
	assert!(stderr.contains("trainingRewards.NotSponsor"), "stderr: {stderr}");
	assert_eq!(node.rpc("training_jobs", json!([])).as_array().unwrap().len(), 1);

	// The sponsor cancels and gets the escrow back.
	let (ok, stdout, stderr) = sponsor(&node, &["cancel", "--job", &job_id.to_string(), "--json"]);
	assert!(ok, "cancel failed: {stderr}");
	assert!(stdout.contains("\"refunded\":\"300000000000000\""), "stdout: {stdout}");
	assert_eq!(node.rpc("training_job", json!([job_id]))["phase"], "cancelled");
}
