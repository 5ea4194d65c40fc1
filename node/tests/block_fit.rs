//! How many training extrinsics fit in one trainchain block, from the runtime's own limits
//! (`frame_system::Config::BlockWeights`/`BlockLength`), the transaction extensions' weights and
//! the benchmarked `pallet_training_rewards` weights (`weights.rs`).
//!
//! An extrinsic costs its call weight + its extensions' weight + the class's base extrinsic
//! weight, the same sum `frame_system::CheckWeight` adds up, and normal extrinsics may fill the
//! normal class's `max_total`. Run `cargo test -p trainchain-node --test block_fit -- --nocapture`
//! to see the figures.

use codec::Encode;
use frame_support::{
	dispatch::{DispatchClass, GetDispatchInfo},
	traits::Get,
	weights::Weight,
	BoundedVec,
};
use sp_core::{crypto::AccountId32, sr25519, H256};
use trainchain_chain_client::{
	calls, pair_from_suri, signed_extrinsic, Aggregate, SignedContribution, Sr25519Signature,
};
use trainchain_runtime::{Runtime, RuntimeCall};

/// Target of #4: at least this many `commit_update` per block.
const COMMITS_TARGET: u64 = 1_000;
/// Target of #4: a 64-signer `submit_aggregate` takes under this share of a block (percent).
const AGGREGATE_SHARE_TARGET_PERCENT: f64 = 10.0;

/// What one signed extrinsic carrying `call`, built exactly as the trainer sends it, costs the
/// block: (weight, encoded length).
fn extrinsic_cost(call: RuntimeCall) -> (Weight, usize) {
	let signer = pair_from_suri("//Bob").unwrap();
	let xt = signed_extrinsic(&signer, call, 0, H256::zero(), 1, 1);
	let base = <Runtime as frame_system::Config>::BlockWeights::get()
		.get(DispatchClass::Normal)
		.base_extrinsic;
	let (call_weight, ext_weight) =
		(xt.function.get_dispatch_info().call_weight, xt.extension_weight());
	println!(
		"  call {:.1} µs + extensions {:.1} µs + base extrinsic {:.1} µs",
		micros(call_weight),
		micros(ext_weight),
		micros(base)
	);
	(call_weight + ext_weight + base, xt.encoded_size())
}

/// How many extrinsics of this cost fit in the normal class of one block, and which limit binds.
fn fit_per_block(weight: Weight, len: usize) -> (u64, &'static str) {
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let normal = weights.get(DispatchClass::Normal);
	let max_total = normal.max_total.unwrap_or(weights.max_block);
	let by_time = max_total.ref_time() / weight.ref_time().max(1);
	let by_proof = max_total.proof_size() / weight.proof_size().max(1);
	let max_len = *<Runtime as frame_system::Config>::BlockLength::get()
		.max
		.get(DispatchClass::Normal) as u64;
	let by_len = max_len / (len as u64).max(1);
	[(by_time, "ref time"), (by_proof, "proof size"), (by_len, "block length")]
		.into_iter()
		.min_by_key(|(n, _)| *n)
		.unwrap()
}

fn commit_update_call() -> RuntimeCall {
	calls::commit_update(0, 0, [7; 32], 1_000)
}

fn submit_aggregate_call(signers: u32) -> RuntimeCall {
	let contributions = (0..signers)
		.map(|i| SignedContribution {
			who: AccountId32::new([i as u8; 32]),
			update_hash: H256::repeat_byte(1),
			salt: H256::repeat_byte(2),
			metric: Some(900_000),
			signature: Sr25519Signature(sr25519::Signature::from_raw([3; 64])),
		})
		.collect::<Vec<_>>();
	let aggregate: Aggregate = Aggregate {
		model_hash: H256::repeat_byte(9),
		submitter: AccountId32::new([0; 32]),
		contributions: BoundedVec::try_from(contributions).expect("within MaxContributors"),
	};
	calls::submit_aggregate(0, 0, aggregate)
}

fn micros(w: Weight) -> f64 {
	w.ref_time() as f64 / 1_000_000.0
}

#[test]
fn commit_update_fits_a_thousand_times_in_a_block() {
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let normal_max = weights.get(DispatchClass::Normal).max_total.unwrap();
	let (weight, len) = extrinsic_cost(commit_update_call());
	let (fit, binding) = fit_per_block(weight, len);
	println!(
		"commit_update: {:.1} µs per extrinsic (call + extensions + base), {len} bytes; \
         normal class {:.0} ms of a {:.0} ms block: {fit} per block (bound by {binding})",
		micros(weight),
		micros(normal_max) / 1000.0,
		micros(weights.max_block) / 1000.0,
	);
	assert!(
		fit >= COMMITS_TARGET,
		"only {fit} commit_update fit in a block (target {COMMITS_TARGET})"
	);
}

#[test]
fn a_64_signer_aggregate_takes_under_a_tenth_of_a_block() {
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let normal_max = weights.get(DispatchClass::Normal).max_total.unwrap();
	let (weight, len) = extrinsic_cost(submit_aggregate_call(64));
	let of_block = 100.0 * weight.ref_time() as f64 / weights.max_block.ref_time() as f64;
	let of_normal = 100.0 * weight.ref_time() as f64 / normal_max.ref_time() as f64;
	println!(
		"submit_aggregate(64 signers): {:.1} µs, {len} bytes: {of_block:.2}% of the block, \
         {of_normal:.2}% of the normal class",
		micros(weight),
	);
	assert!(
        of_block < AGGREGATE_SHARE_TARGET_PERCENT,
        "a 64-signer aggregate takes {of_block:.2}% of a block (target < {AGGREGATE_SHARE_TARGET_PERCENT}%)"
    );
	// The largest aggregate the runtime accepts must also fit in one extrinsic.
	let max = <Runtime as pallet_training_rewards::Config>::MaxContributors::get();
	let (weight, _) = extrinsic_cost(submit_aggregate_call(max));
	let max_extrinsic = weights.get(DispatchClass::Normal).max_extrinsic.unwrap();
	println!(
		"submit_aggregate({max} signers, MaxContributors): {:.1} µs, max extrinsic {:.1} µs",
		micros(weight),
		micros(max_extrinsic)
	);
	assert!(weight.all_lte(max_extrinsic));
}

#[test]
fn the_deadline_hook_fits_in_a_block_at_its_bound() {
	use pallet_training_rewards::WeightInfo as _;
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let max = <Runtime as pallet_training_rewards::Config>::MaxDeadlinesPerBlock::get();
	let hook =
		<Runtime as pallet_training_rewards::Config>::WeightInfo::on_initialize_deadlines(max);
	let share = 100.0 * hook.ref_time() as f64 / weights.max_block.ref_time() as f64;
	println!(
        "on_initialize with {max} deadlines (MaxDeadlinesPerBlock): {:.1} µs, {share:.2}% of the block",
        micros(hook)
    );
	// Mandatory work must leave the normal class its full share.
	let normal_max = weights.get(DispatchClass::Normal).max_total.unwrap();
	assert!((hook + normal_max).all_lte(weights.max_block));
}

/// Target of #12: five verifiers' score sheets for a 64-contributor round take under this share
/// of a block (percent). Every sheet is charged as the worst one (the last sheet of an
/// overturning challenge, which slashes and pays).
const SHEETS_SHARE_TARGET_PERCENT: f64 = 10.0;

#[test]
fn five_score_sheets_of_64_contributors_take_under_a_tenth_of_a_block() {
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let verifier = AccountId32::new([5; 32]);
	let call = calls::submit_scores(0, 0, verifier, vec![1_000; 64], 300_000, 900_000);
	let (weight, len) = extrinsic_cost(call);
	let five = weight.saturating_mul(5);
	let of_block = 100.0 * five.ref_time() as f64 / weights.max_block.ref_time() as f64;
	let proof = 100.0 * five.proof_size() as f64 / weights.max_block.proof_size() as f64;
	println!(
		"submit_scores(64): {:.1} µs, {len} bytes; 5 sheets: {:.1} µs = {of_block:.2}% of the \
         block's time, {proof:.2}% of its proof size",
		micros(weight),
		micros(five),
	);
	assert!(
		of_block < SHEETS_SHARE_TARGET_PERCENT && proof < SHEETS_SHARE_TARGET_PERCENT,
		"5 sheets of 64 scores take {of_block:.2}% (time) / {proof:.2}% (proof) of a block"
	);
}

#[test]
fn the_settlement_hook_fits_in_a_block_at_its_bound() {
	use pallet_training_rewards::WeightInfo as _;
	let weights = <Runtime as frame_system::Config>::BlockWeights::get();
	let max = <Runtime as pallet_training_rewards::Config>::MaxSettlementsPerBlock::get();
	let hook =
		<Runtime as pallet_training_rewards::Config>::WeightInfo::on_initialize_settlements(max);
	let share = 100.0 * hook.ref_time() as f64 / weights.max_block.ref_time() as f64;
	let proof = 100.0 * hook.proof_size() as f64 / weights.max_block.proof_size() as f64;
	println!(
		"on_initialize with {max} settlements (MaxSettlementsPerBlock, 128 contributors each): \
         {:.1} µs = {share:.2}% of the block's time, {proof:.2}% of its proof size",
		micros(hook)
	);
	let normal_max = weights.get(DispatchClass::Normal).max_total.unwrap();
	assert!(hook.saturating_add(normal_max).all_lte(weights.max_block));
}
