//! One complete training round against the real `--dev` node, driven by the trainer's chain
//! client: three dev accounts join, commit, sign the aggregate payload; one submits it; the
//! payouts show in balances and events. Bad input through the real node gets named errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::DevNode;
use frame_support::BoundedVec;
use pallet_training_rewards::{Hyperparameters, JobSpec};
use sp_core::{Pair, H256};
use std::time::Duration;
use trainchain_chain_client::{
	calls, pair_from_suri, Aggregate, ChainClient, SignedContribution, Sr25519Signature,
};
use trainchain_primitives::{update_commitment, AggregatePayload, IncludedShare};
use trainchain_runtime::{RuntimeEvent, UNIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_on_the_real_node_pays_the_contributors() {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let chain = ChainClient::connect(&node.ws_url(), None).await.unwrap();

	// A node of another chain is refused.
	let err = ChainClient::connect(&node.ws_url(), Some(H256::repeat_byte(7)))
		.await
		.err()
		.unwrap();
	assert!(err.to_string().contains("another chain"), "{err}");

	let sponsor = pair_from_suri("//Alice").unwrap();
	let members: Vec<_> = ["//Bob", "//Charlie", "//Dave"]
		.iter()
		.map(|s| pair_from_suri(s).unwrap())
		.collect();
	let reward_per_round = 90 * UNIT;
	let spec = JobSpec {
		model_commitment: H256::repeat_byte(1),
		dataset_commitment: H256::repeat_byte(2),
		metadata: BoundedVec::truncate_from(b"model=mlp:64-32-10;data=digits".to_vec()),
		hyperparameters: Hyperparameters {
			learning_rate_ppm: 100_000,
			batch_size: 32,
			local_steps: 10,
		},
		min_contributors: 3,
		max_contributors: 3,
		round_length: 100,
		commit_window: 60,
		contributor_bond: 5 * UNIT,
		max_samples: 10_000,
		max_failed_rounds: 3,
		verification: None,
	};
	let included = chain
		.submit(&sponsor, calls::create_job(spec, reward_per_round, 2))
		.await
		.unwrap();
	let job_id = included
		.events
		.iter()
		.find_map(|e| match e {
			RuntimeEvent::TrainingRewards(pallet_training_rewards::Event::JobCreated {
				job_id,
				..
			}) => Some(*job_id),
			_ => None,
		})
		.expect("JobCreated");

	// Join; the third join starts round 0.
	for m in &members {
		chain.submit(m, calls::join_job(job_id)).await.unwrap();
	}
	let err = chain.submit(&members[0], calls::join_job(job_id)).await.err().unwrap();
	assert_eq!(err.dispatch_error(), Some("TrainingRewards.AlreadyJoined"), "{err}");
	let job = chain.existing_job(job_id).await.unwrap();
	assert_eq!(job.current_round, 0);
	assert_eq!(job.contributors, 3);

	// Commit.
	let samples = [100u64, 200, 300];
	let reveals: Vec<([u8; 32], [u8; 32])> =
		(0..3u8).map(|i| ([i + 10; 32], [i + 20; 32])).collect();
	for (i, m) in members.iter().enumerate() {
		let who = m.public().0;
		let c = update_commitment(job_id, 0, &who, &reveals[i].0, &reveals[i].1);
		chain.submit(m, calls::commit_update(job_id, 0, c, samples[i])).await.unwrap();
	}
	// Committing twice is refused by name.
	let c = update_commitment(job_id, 0, &members[0].public().0, &[9; 32], &[9; 32]);
	let err = chain
		.submit(&members[0], calls::commit_update(job_id, 0, c, 1))
		.await
		.err()
		.unwrap();
	assert_eq!(err.dispatch_error(), Some("TrainingRewards.AlreadyCommitted"));
	assert_eq!(
		chain
			.contributors(job_id)
			.await
			.unwrap()
			.iter()
			.filter(|c| c.current_commitment.is_some())
			.count(),
		3
	);

	// Everybody signs the payload (naming Bob the submitter) with its own metric.
	let model_hash = [42u8; 32];
	let shares: Vec<_> = members
		.iter()
		.zip(samples)
		.enumerate()
		.map(|(i, (m, s))| IncludedShare {
			who: m.public().0,
			samples: s,
			update_hash: reveals[i].0,
		})
		.collect();
	let payload = AggregatePayload::new(
		chain.genesis_hash().0,
		job_id,
		0,
		model_hash,
		members[0].public().0,
		shares,
	);
	let metrics = [912_345u32, 900_000, 950_000];
	let contributions: Vec<SignedContribution> = members
		.iter()
		.enumerate()
		.map(|(i, m)| SignedContribution {
			who: m.public().into(),
			update_hash: H256(reveals[i].0),
			salt: H256(reveals[i].1),
			metric: Some(metrics[i]),
			signature: Sr25519Signature(m.sign(&payload.signing_bytes(Some(metrics[i])))),
		})
		.collect();
	let aggregate = Aggregate {
		model_hash: H256(model_hash),
		submitter: members[0].public().into(),
		contributions: BoundedVec::truncate_from(contributions.clone()),
	};

	// A replay for another round is refused.
	let err = chain
		.submit(&members[0], calls::submit_aggregate(job_id, 1, aggregate.clone()))
		.await
		.err()
		.unwrap();
	assert_eq!(err.dispatch_error(), Some("TrainingRewards.WrongRound"));
	// Too few signers (quorum is 3 here: min_contributors).
	let short = Aggregate {
		contributions: BoundedVec::truncate_from(contributions[..2].to_vec()),
		..aggregate.clone()
	};
	let err = chain
		.submit(&members[0], calls::submit_aggregate(job_id, 0, short))
		.await
		.err()
		.unwrap();
	assert_eq!(err.dispatch_error(), Some("TrainingRewards.QuorumNotMet"));

	let before: Vec<u128> = futures_join(&chain, &members).await;
	let included = chain
		.submit(&members[0], calls::submit_aggregate(job_id, 0, aggregate))
		.await
		.unwrap();
	let after: Vec<u128> = futures_join(&chain, &members).await;

	let paid: Vec<(sp_runtime::AccountId32, u128)> =
		included
			.events
			.iter()
			.filter_map(|e| match e {
				RuntimeEvent::TrainingRewards(
					pallet_training_rewards::Event::ContributorPaid { who, amount, .. },
				) => Some((who.clone(), *amount)),
				_ => None,
			})
			.collect();
	assert_eq!(paid.len(), 3);
	// 1% submitter share; the rest 1:2:3.
	let pot = reward_per_round - reward_per_round / 100;
	assert_eq!(paid[0].1, pot / 6);
	assert_eq!(paid[1].1, pot * 2 / 6);
	assert_eq!(paid[2].1, pot * 3 / 6);
	// Balances: Charlie and Dave gain exactly their payout; Bob gains payout + submitter share
	// minus his transaction fee.
	assert_eq!(after[1] - before[1], paid[1].1);
	assert_eq!(after[2] - before[2], paid[2].1);
	assert!(after[0] > before[0] + paid[0].1, "submitter share exceeds the fee");

	let rounds = chain.rounds(job_id).await.unwrap();
	assert_eq!(rounds.len(), 1);
	assert!(rounds[0].finalized);
	assert_eq!(rounds[0].model_hash, Some(model_hash));
	// The stored metric is the signers' median, not a submitter's claim.
	assert_eq!(rounds[0].metric, Some(912_345));
	let job = chain.existing_job(job_id).await.unwrap();
	assert_eq!(job.current_round, 1);
	assert_eq!(job.latest_model, model_hash);
	assert_eq!(
		job.escrow_held + job.paid_contributors + job.paid_submitters + job.refunded,
		job.escrow_deposited
	);
}

async fn futures_join(chain: &ChainClient, members: &[sp_core::sr25519::Pair]) -> Vec<u128> {
	let mut out = Vec::new();
	for m in members {
		out.push(chain.free_balance(&m.public().into()).await.unwrap());
	}
	out
}
