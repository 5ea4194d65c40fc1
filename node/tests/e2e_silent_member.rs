//! A contributor that is included in the peer exchange and then never commits on-chain
//! (`trainchain-trainer run --fault-skip-commit`, the attack of issue #11.1): the others re-run
//! the round without it and the round finalises without paying it; the two statements an
//! honest peer signed for that round (the first attempt with the silent member, the re-run
//! without) are published by the trainer, and reporting them as equivocation fails with
//! `TrainingRewards.NotEquivocation`: honest recovery is never slashable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::trainers::{
	assert_escrow_exact, finalized_rounds, node_with_job, payees, wait_completed, Trainers,
};
use serde_json::{json, Value};
use sp_core::Pair as _;
use std::collections::BTreeMap;
use trainchain_chain_client::{calls, pair_from_suri, ChainClient, Sr25519Signature};

fn hex_bytes(v: &Value) -> Vec<u8> {
	hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[test]
fn an_included_member_that_never_commits_gets_the_round_rerun_and_nobody_is_slashable() {
	// Two rounds: each includes the silent member and is re-run without it.
	let (node, job_id) = node_with_job(2);
	let mut trainers = Trainers::start_with(&node, job_id, &[&[], &[], &["--fault-skip-commit"]]);
	wait_completed(&node, job_id, &trainers.logs);
	trainers.finish();

	let finalized = finalized_rounds(&node, job_id);
	assert!(!finalized.is_empty(), "no round finalised");
	let silent = trainers.account(2);
	for r in &finalized {
		assert!(!payees(r).contains(&silent), "paid without committing: {r}");
	}
	assert_escrow_exact(&node, job_id, &finalized);

	// Bob's statements per round: a round with the silent member included was re-run, so
	// Bob signed two different statements for it.
	let mut by_round: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
	let signed = trainers.events(0, "signed");
	for s in &signed {
		by_round.entry(s["round"].as_u64().unwrap()).or_default().push(s);
	}
	let (round, pair) = by_round
		.iter()
		.find_map(|(r, v)| {
			let first = v.first()?;
			let other = v.iter().find(|s| s["statement"] != first["statement"])?;
			Some((*r, (*first, *other)))
		})
		.unwrap_or_else(|| {
			panic!("no re-run round signed by Bob: {signed:?}; logs in {}", trainers.logs.display())
		});
	// (The re-run's set can have the first attempt's size: a trainer that joined late takes
	// the silent member's place. The statements differ, which is what a report would use.)

	// Anyone reporting the two as equivocation is refused by name; Bob keeps his bond.
	let bob = pair_from_suri("//Bob").unwrap();
	let ferdie = pair_from_suri("//Ferdie").unwrap();
	let sig = |v: &Value| {
		let raw: [u8; 64] = hex_bytes(&v["signature"]).try_into().unwrap();
		Sr25519Signature(sp_core::sr25519::Signature::from_raw(raw))
	};
	let report = calls::report_equivocation(
		job_id,
		round as u32,
		bob.public().into(),
		(hex_bytes(&pair.0["statement"]), sig(pair.0)),
		(hex_bytes(&pair.1["statement"]), sig(pair.1)),
	);
	let err = tokio::runtime::Runtime::new().unwrap().block_on(async {
		let chain = ChainClient::connect(&node.ws_url(), None).await.unwrap();
		chain.submit(&ferdie, report).await.err()
	});
	assert_eq!(
		err.and_then(|e| e.dispatch_error().map(str::to_string)).as_deref(),
		Some("TrainingRewards.NotEquivocation")
	);
	let job = node.rpc("training_job", json!([job_id]));
	assert_eq!(job["bonds"]["slashed"].as_str(), Some("0"), "{job}");
}
