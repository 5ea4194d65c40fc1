//! End to end, models you can keep (issue #14): every trainer of a job is killed, and the job
//! goes on from the models they saved.
//!
//! A real `trainchain-node --dev` and a 3-round digits job with DiLoCo's outer step
//! (`outer=nesterov`, whose momentum is part of the model state the chain finalises) and
//! DiLoCo's kept inner state (`inner_state=kept`, in the commitment: a trainer that ignored it
//! would refuse the job; a restarted trainer starts its inner optimiser afresh), and two
//! `trainchain-trainer run --out FILE` processes, which write the job's model after every
//! finalised round. After a round finalises, both are killed with SIGKILL: no process holds
//! the job's model any more, only its hash is on-chain. Bob restarts with `--resume FILE`,
//! alone, until a round has failed (a job of 2 contributors at least). Charlie's file is
//! deleted and he restarts without one, so he must take the model from Bob, whose state has no
//! certificate and names an earlier round than the chain's open one (the chain's latest model
//! hash vouches for it, and no later round than the open one is accepted).
//!
//! Asserted: the job completes with all 3 rounds finalised; the rounds after the restart pay
//! both trainers and their model hashes are the chain's; the file each trainer last saved is
//! the job's final model; the escrow is exact. Without `--resume` the restarted trainers hold
//! the initial model, no peer serves the finalised one, and no later round can run; without
//! the chain-vouched sync Charlie cannot take part and the job (2 contributors at least)
//! stalls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::trainers::{
	assert_escrow_exact, create_job, finalized_rounds, payees, TrainerSpec, Trainers,
};
use common::DevNode;
use serde_json::json;
use std::time::Duration;

const ROUNDS: u64 = 3;

/// Bob on shard 0/2 and Charlie on 1/2, with `extra` arguments each.
fn specs<'a>(extra: [&'a [&'a str]; 2]) -> Vec<TrainerSpec<'a>> {
	[("//Bob", "0/2"), ("//Charlie", "1/2")]
		.into_iter()
		.zip(extra)
		.map(|((suri, shard), extra)| TrainerSpec { suri, shard, extra })
		.collect()
}

#[test]
fn a_job_goes_on_after_every_trainer_restarts_from_its_saved_model() {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let job_id = create_job(
		&node,
		&[
			"--model",
			"mlp:64-32-10",
			"--rounds",
			"3",
			"--reward",
			"300",
			"--min",
			"2",
			"--max",
			"2",
			"--round-length",
			"30",
			"--commit-window",
			"15",
			"--bond",
			"10",
			"--lr",
			"0.05",
			"--batch",
			"32",
			"--local-steps",
			"30",
			"--outer",
			"nesterov:0.7:0.5",
			"--inner-state",
			"kept",
		],
	);
	let dir = std::env::temp_dir().join(format!("trainchain-resume-{}", node.rpc_port));
	std::fs::create_dir_all(&dir).unwrap();
	let files = [dir.join("bob.safetensors"), dir.join("charlie.safetensors")];
	let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
	let first_args: Vec<[&str; 2]> = file_args.iter().map(|f| ["--out", f.as_str()]).collect();
	let mut first = Trainers::start_specs_in(
		&node,
		job_id,
		&specs([&first_args[0], &first_args[1]]),
		&dir.join("before"),
	);

	// Once a round has finalised and both trainers saved its model, kill both.
	node.wait_for(Duration::from_secs(400), "a finalised round saved by both trainers", || {
		let job = node.rpc("training_job", json!([job_id]));
		let latest = job["latestModel"].clone();
		job["finalizedRounds"].as_u64().unwrap() >= 1
			&& (0..2).all(|i| first.events(i, "saved").iter().any(|e| e["model_hash"] == latest))
	});
	first.kill(0);
	first.kill(1);
	let job = node.rpc("training_job", json!([job_id]));
	let killed_after = job["finalizedRounds"].as_u64().unwrap();
	assert!(killed_after < ROUNDS, "the job ended before the kill: {job}");

	// Bob restarts first, from his file. Alone he cannot make a round (2 contributors at
	// least), so the round he resumed in fails and the chain opens the next with the same
	// model; his state still names the round he resumed in.
	let open_at_kill = job["currentRound"].as_u64().unwrap();
	let bob_args = ["--out", &file_args[0], "--resume", &file_args[0]];
	let bob_spec = [TrainerSpec { suri: "//Bob", shard: "0/2", extra: &bob_args }];
	let mut bob = Trainers::start_specs_in(&node, job_id, &bob_spec, &dir.join("after-bob"));
	let mut resumed_in = None;
	node.wait_for(Duration::from_secs(300), "a round to fail after Bob resumed", || {
		resumed_in = resumed_in.or_else(|| bob.events(0, "resumed").first()?["round"].as_u64());
		let open = node.rpc("training_job", json!([job_id]))["currentRound"].as_u64().unwrap();
		resumed_in.is_some_and(|r| open > r)
	});
	assert!(resumed_in.unwrap() >= open_at_kill);
	// Charlie lost his file. He starts without one and must take the model from Bob, whose
	// state has no certificate and names an earlier round than the one the chain has open.
	std::fs::remove_file(&files[1]).unwrap();
	let boot = format!("/ip4/127.0.0.1/tcp/{}", bob.ports[0]);
	let charlie_args = ["--out", &file_args[1], "--bootstrap", &boot];
	let charlie_spec = [TrainerSpec { suri: "//Charlie", shard: "1/2", extra: &charlie_args }];
	let mut charlie =
		Trainers::start_specs_in(&node, job_id, &charlie_spec, &dir.join("after-charlie"));
	node.wait_for(Duration::from_secs(240), "the job to complete after the restart", || {
		let job = node.rpc("training_job", json!([job_id]));
		assert!(job["phase"] != "failed" && job["phase"] != "cancelled", "{job}");
		job["phase"] == "completed"
	});
	bob.finish();
	charlie.finish();
	let restarted = [&bob, &charlie];

	let finalized = finalized_rounds(&node, job_id);
	assert_eq!(finalized.len() as u64, ROUNDS, "rounds: {finalized:?}");
	let accounts = [first.account(0), first.account(1)];
	let later = &finalized[killed_after as usize..];
	assert!(!later.is_empty());
	for r in later {
		let who = payees(r);
		assert!(accounts.iter().all(|a| who.contains(a)), "a restarted trainer unpaid: {r}");
		let round = r["round"].as_u64().unwrap();
		for (i, trainer) in restarted.iter().enumerate() {
			let report = trainer
				.round_reports(0)
				.into_iter()
				.find(|e| e["round"] == round && e["finalized"] == true)
				.unwrap_or_else(|| panic!("trainer {i} has no report of round {round}"));
			assert_eq!(report["model_hash"], r["modelHash"], "trainer {i} round {round}");
		}
	}
	let latest = node.rpc("training_job", json!([job_id]))["latestModel"].clone();
	for (i, trainer) in restarted.iter().enumerate() {
		let saved = trainer.events(0, "saved");
		assert_eq!(saved.last().map(|e| e["model_hash"].clone()), Some(latest.clone()), "{i}");
	}
	assert_escrow_exact(&node, job_id, &finalized);
}
