//! Unit tests: every call, every error, the round protocol, attacks and the accounting
//! invariant (checked after every test by `mock::test`).
#![allow(
	clippy::unwrap_used,
	clippy::expect_used,
	clippy::indexing_slicing,
	clippy::arithmetic_side_effects,
	clippy::panic
)]

use crate::{mock::*, pallet::*, types::*, Error, Event, WeightInfo};
use frame_support::{
	assert_noop, assert_ok,
	traits::fungible::{Inspect, InspectHold},
	BoundedVec,
};
use sp_core::H256;
use sp_runtime::{traits::Zero, DispatchError};
use trainchain_primitives::{update_commitment, AggregatePayload, IncludedShare};

/// Every signer's metric in the helpers' aggregates.
const METRIC: u32 = 900_000;

const SPONSOR: u8 = 0;
const REWARD: Balance = 10_000;
const BOND: Balance = 100;

fn spec() -> JobSpecOf<Test> {
	JobSpec {
		model_commitment: H256::repeat_byte(1),
		dataset_commitment: H256::repeat_byte(2),
		metadata: BoundedVec::truncate_from(b"model=mlp:64-32-10".to_vec()),
		hyperparameters: Hyperparameters {
			learning_rate_ppm: 50_000,
			batch_size: 32,
			local_steps: 20,
		},
		min_contributors: 2,
		max_contributors: 4,
		round_length: 10,
		commit_window: 5,
		contributor_bond: BOND,
		max_samples: 1_000,
		max_failed_rounds: 2,
		verification: None,
	}
}

fn origin(n: u8) -> RuntimeOrigin {
	RuntimeOrigin::signed(account(n))
}

fn create(rounds: u32) -> JobId {
	let id = NextJobId::<Test>::get();
	assert_ok!(TrainingRewards::create_job(origin(SPONSOR), spec(), REWARD, rounds));
	id
}

fn held(reason: HoldReason, n: u8) -> Balance {
	Balances::balance_on_hold(&RuntimeHoldReason::TrainingRewards(reason), &account(n))
}

fn free(n: u8) -> Balance {
	Balances::balance(&account(n))
}

fn job(id: JobId) -> JobOf<Test> {
	Jobs::<Test>::get(id).unwrap()
}

fn update_hash(n: u8) -> H256 {
	H256::repeat_byte(100 + n)
}

fn salt(n: u8) -> H256 {
	H256::repeat_byte(200 + n)
}

fn commitment(id: JobId, round: RoundIndex, n: u8) -> H256 {
	H256(update_commitment(id, round, &account(n), &update_hash(n).0, &salt(n).0))
}

fn commit(id: JobId, round: RoundIndex, n: u8, samples: u64) {
	assert_ok!(TrainingRewards::commit_update(
		origin(n),
		id,
		round,
		commitment(id, round, n),
		samples
	));
}

/// The payload the contributors `members` (with their committed samples) sign; the first
/// member is the submitter.
fn payload_of(
	id: JobId,
	round: RoundIndex,
	model: H256,
	members: &[(u8, u64)],
) -> AggregatePayload<AccountId> {
	AggregatePayload::new(
		TrainingRewards::genesis_hash(),
		id,
		round,
		model.0,
		account(members.first().map_or(1, |m| m.0)),
		members
			.iter()
			.map(|(n, s)| IncludedShare {
				who: account(*n),
				samples: *s,
				update_hash: update_hash(*n).0,
			})
			.collect(),
	)
}

/// The bytes each member signs (payload and the metric `METRIC`).
fn payload(id: JobId, round: RoundIndex, model: H256, members: &[(u8, u64)]) -> Vec<u8> {
	payload_of(id, round, model, members).signing_bytes(Some(METRIC))
}

fn aggregate(
	id: JobId,
	round: RoundIndex,
	model: H256,
	members: &[(u8, u64)],
) -> AggregateOf<Test> {
	let bytes = payload(id, round, model, members);
	Aggregate {
		model_hash: model,
		submitter: account(members.first().map_or(1, |m| m.0)),
		contributions: BoundedVec::truncate_from(
			members
				.iter()
				.map(|(n, _)| SignedContribution {
					who: account(*n),
					update_hash: update_hash(*n),
					salt: salt(*n),
					metric: Some(METRIC),
					signature: sign(*n, &bytes),
				})
				.collect(),
		),
	}
}

/// `submit_aggregate` by `who`, with the error alone (early failures also carry a weight).
fn submit_agg(
	who: u8,
	id: JobId,
	round: RoundIndex,
	agg: AggregateOf<Test>,
) -> frame_support::dispatch::DispatchResult {
	TrainingRewards::submit_aggregate(origin(who), id, round, agg)
		.map(|_| ())
		.map_err(|e| e.error)
}

/// `report_equivocation` by `reporter` with statements `a` and `b` signed as given.
fn report(
	reporter: u8,
	id: JobId,
	round: RoundIndex,
	offender: u8,
	(a, sa): (&[u8], Sr25519Signature),
	(b, sb): (&[u8], Sr25519Signature),
) -> frame_support::dispatch::DispatchResult {
	TrainingRewards::report_equivocation(
		origin(reporter),
		Box::new(EquivocationProof {
			job_id: id,
			round,
			offender: account(offender),
			first: SignedEvidence {
				statement: BoundedVec::truncate_from(a.to_vec()),
				signature: sa,
			},
			second: SignedEvidence {
				statement: BoundedVec::truncate_from(b.to_vec()),
				signature: sb,
			},
		}),
	)
}

/// `offender` signs `a` and `b` and `reporter` reports them.
fn report_signed(
	reporter: u8,
	id: JobId,
	round: RoundIndex,
	offender: u8,
	a: &[u8],
	b: &[u8],
) -> frame_support::dispatch::DispatchResult {
	report(reporter, id, round, offender, (a, sign(offender, a)), (b, sign(offender, b)))
}

/// Release `n`'s bond: leave, wait out the unbonding period, withdraw.
fn leave_and_withdraw(n: u8, id: JobId) {
	assert_ok!(TrainingRewards::leave_job(origin(n), id));
	let until = Contributors::<Test>::get(id, account(n)).unwrap().unbonding_until.unwrap();
	run_to_block(until);
	assert_ok!(TrainingRewards::withdraw_bond(origin(n), id));
}

/// A running job with contributors 1, 2, 3 joined and committed in round 0.
fn running_job_with_commits(rounds: u32) -> JobId {
	let id = create(rounds);
	for n in 1..=3 {
		assert_ok!(TrainingRewards::join_job(origin(n), id));
	}
	commit(id, 0, 1, 100);
	commit(id, 0, 2, 300);
	commit(id, 0, 3, 600);
	id
}

fn last_event() -> RuntimeEvent {
	System::events().pop().expect("an event").event
}

// ---------------------------------------------------------------- create_job

#[test]
fn create_job_escrows_reward_and_emits_event() {
	test(|| {
		let before = free(SPONSOR);
		let id = create(5);
		assert_eq!(id, 0);
		assert_eq!(held(HoldReason::JobEscrow, SPONSOR), REWARD * 5);
		assert_eq!(held(HoldReason::JobDeposit, SPONSOR), JobDeposit::get());
		assert_eq!(free(SPONSOR), before - REWARD * 5 - JobDeposit::get());
		let j = job(id);
		assert_eq!(j.status, JobStatus::WaitingForContributors);
		assert_eq!(j.escrow.deposited, REWARD * 5);
		assert_eq!(j.latest_model, spec().model_commitment);
		assert_eq!(NextJobId::<Test>::get(), 1);
		System::assert_last_event(
			Event::JobCreated {
				job_id: 0,
				sponsor: account(SPONSOR),
				reward_per_round: REWARD,
				rounds: 5,
				escrow: REWARD * 5,
			}
			.into(),
		);
	});
}

#[test]
fn create_job_rejects_bad_specs() {
	test(|| {
		let s = origin(SPONSOR);
		let with = |f: fn(&mut JobSpecOf<Test>)| {
			let mut sp = spec();
			f(&mut sp);
			sp
		};
		assert_noop!(
			TrainingRewards::create_job(s.clone(), spec(), REWARD, 0),
			Error::<Test>::ZeroRounds
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), spec(), REWARD, 1001),
			Error::<Test>::TooManyRounds
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), spec(), 0, 3),
			Error::<Test>::ZeroReward
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), spec(), Balance::MAX / 2, 3),
			Error::<Test>::RewardOverflow
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.min_contributors = 0), REWARD, 3),
			Error::<Test>::ZeroMinContributors
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.min_contributors = 5), REWARD, 3),
			Error::<Test>::MinAboveMax
		);
		assert_noop!(
			TrainingRewards::create_job(
				s.clone(),
				with(|x| {
					x.max_contributors = 65;
				}),
				REWARD,
				3
			),
			Error::<Test>::TooManyContributors
		);
		assert_noop!(
			TrainingRewards::create_job(
				s.clone(),
				with(|x| {
					x.round_length = 0;
					x.commit_window = 0;
				}),
				REWARD,
				3
			),
			Error::<Test>::ZeroRoundLength
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.commit_window = 0), REWARD, 3),
			Error::<Test>::InvalidCommitWindow
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.commit_window = 11), REWARD, 3),
			Error::<Test>::InvalidCommitWindow
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.max_samples = 0), REWARD, 3),
			Error::<Test>::ZeroMaxSamples
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.max_failed_rounds = 0), REWARD, 3),
			Error::<Test>::ZeroMaxFailedRounds
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.max_failed_rounds = 11), REWARD, 3),
			Error::<Test>::TooManyFailedRounds
		);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), with(|x| x.round_length = 101), REWARD, 3),
			Error::<Test>::RoundTooLong
		);
		// Escrow affordable, storage deposit not: nothing stays on hold.
		assert_noop!(
			TrainingRewards::create_job(origin(99), spec(), 4, 1),
			Error::<Test>::InsufficientBalance
		);
		NextJobId::<Test>::put(u64::MAX);
		assert_noop!(
			TrainingRewards::create_job(s.clone(), spec(), REWARD, 3),
			Error::<Test>::Overflow
		);
		NextJobId::<Test>::put(0);
		assert_noop!(
			TrainingRewards::create_job(s, spec(), ENDOWMENT, 3),
			Error::<Test>::InsufficientBalance
		);
		assert_noop!(
			TrainingRewards::create_job(origin(99), spec(), 10, 1),
			Error::<Test>::InsufficientBalance
		);
		assert!(held(HoldReason::JobEscrow, SPONSOR).is_zero());
	});
}

#[test]
fn oversized_metadata_is_refused_at_decoding() {
	use codec::{Decode, Encode};
	test(|| {
		// A spec whose metadata is over `MaxMetadataLen` cannot even be decoded as a call
		// argument, so it never reaches the runtime logic.
		let mut raw = spec().encode();
		let long = vec![7u8; 300];
		let meta_start = 64;
		let old_len = spec().metadata.encode().len();
		raw.splice(meta_start..meta_start + old_len, long.encode());
		assert!(JobSpecOf::<Test>::decode(&mut &raw[..]).is_err());
		// Converting the same bytes in Rust fails with a clear error too.
		assert!(BoundedVec::<u8, <Test as Config>::MaxMetadataLen>::try_from(long).is_err());
	});
}

// ---------------------------------------------------------------- cancel_job

#[test]
fn cancel_job_refunds_unspent_escrow() {
	test(|| {
		let id = create(3);
		let before = free(SPONSOR);
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		assert_eq!(free(SPONSOR), before + REWARD * 3 + JobDeposit::get());
		assert!(held(HoldReason::JobEscrow, SPONSOR).is_zero());
		assert!(held(HoldReason::JobDeposit, SPONSOR).is_zero());
		assert_eq!(job(id).status, JobStatus::Cancelled);
		System::assert_last_event(Event::JobCancelled { job_id: id, refunded: REWARD * 3 }.into());
		assert_noop!(TrainingRewards::join_job(origin(1), id), Error::<Test>::JobEnded);
		assert_noop!(TrainingRewards::cancel_job(origin(SPONSOR), id), Error::<Test>::JobEnded);
	});
}

#[test]
fn cancel_job_errors() {
	test(|| {
		let id = create(3);
		assert_noop!(TrainingRewards::cancel_job(origin(1), id), Error::<Test>::NotSponsor);
		assert_noop!(TrainingRewards::cancel_job(origin(SPONSOR), 42), Error::<Test>::UnknownJob);
	});
}

#[test]
fn cancel_after_a_paid_round_refunds_only_the_rest() {
	test(|| {
		let id = running_job_with_commits(3);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		let before = free(SPONSOR);
		// Nobody committed in the open round 1: the job ends now.
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		assert_eq!(free(SPONSOR), before + REWARD * 2 + JobDeposit::get());
		let j = job(id);
		assert_eq!(j.status, JobStatus::Cancelled);
		assert_eq!(j.escrow.refunded, REWARD * 2);
		// Contributors keep their bonds until they leave and unbond.
		assert_eq!(held(HoldReason::ContributorBond, 1), BOND);
		leave_and_withdraw(1, id);
		assert!(held(HoldReason::ContributorBond, 1).is_zero());
	});
}

// ---------------------------------------------------------------- join / leave

#[test]
fn join_holds_bond_and_starts_first_round_at_minimum() {
	test(|| {
		let id = create(3);
		assert_ok!(TrainingRewards::join_job(origin(1), id));
		assert_eq!(held(HoldReason::ContributorBond, 1), BOND);
		assert_eq!(job(id).status, JobStatus::WaitingForContributors);
		assert_ok!(TrainingRewards::join_job(origin(2), id));
		let j = job(id);
		assert_eq!(j.status, JobStatus::Running);
		assert_eq!(
			j.round,
			RoundState { index: 0, started_at: 1, commit_until: 6, deadline: 11, committed: 0 }
		);
		System::assert_last_event(
			Event::RoundStarted { job_id: id, round: 0, commit_until: 6, deadline: 11 }.into(),
		);
		assert_eq!(Deadlines::<Test>::get(11, id), Some(0));
	});
}

#[test]
fn join_errors() {
	test(|| {
		let id = create(3);
		assert_noop!(TrainingRewards::join_job(origin(1), 7), Error::<Test>::UnknownJob);
		assert_ok!(TrainingRewards::join_job(origin(1), id));
		assert_noop!(TrainingRewards::join_job(origin(1), id), Error::<Test>::AlreadyJoined);
		for n in 2..=4 {
			assert_ok!(TrainingRewards::join_job(origin(n), id));
		}
		assert_noop!(TrainingRewards::join_job(origin(5), id), Error::<Test>::JobFull);
		let id2 = create(3);
		assert_noop!(
			TrainingRewards::join_job(origin(99), id2),
			Error::<Test>::InsufficientBalance
		);
	});
}

#[test]
fn leave_releases_bond_but_not_in_open_round() {
	test(|| {
		let id = running_job_with_commits(3);
		assert_noop!(TrainingRewards::leave_job(origin(1), id), Error::<Test>::InOpenRound);
		assert_noop!(TrainingRewards::leave_job(origin(5), id), Error::<Test>::NotContributor);
		assert_noop!(TrainingRewards::leave_job(origin(5), 9), Error::<Test>::UnknownJob);
		assert_noop!(TrainingRewards::withdraw_bond(origin(1), id), Error::<Test>::NotLeaving);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		let before = free(1);
		assert_ok!(TrainingRewards::leave_job(origin(1), id));
		System::assert_last_event(
			Event::ContributorUnbonding { job_id: id, who: account(1), until: 201 }.into(),
		);
		// Out of the job at once, bond still on hold (slashable) until unbonded.
		assert_eq!(job(id).contributors, 2);
		assert_eq!(held(HoldReason::ContributorBond, 1), BOND);
		assert_noop!(TrainingRewards::leave_job(origin(1), id), Error::<Test>::AlreadyLeaving);
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 1, commitment(id, 1, 1), 10),
			Error::<Test>::NotContributor
		);
		assert_noop!(TrainingRewards::withdraw_bond(origin(1), id), Error::<Test>::StillUnbonding);
		System::set_block_number(201);
		assert_ok!(TrainingRewards::withdraw_bond(origin(1), id));
		assert_eq!(free(1), before + BOND);
		System::assert_last_event(
			Event::ContributorLeft { job_id: id, who: account(1), bond: BOND }.into(),
		);
	});
}

// ---------------------------------------------------------------- commit_update

#[test]
fn commit_records_and_counts() {
	test(|| {
		let id = running_job_with_commits(3);
		assert_eq!(job(id).round.committed, 3);
		let rec = Commitments::<Test>::get(id, account(2)).unwrap();
		let expected =
			CommitRecord { round: 0, at: 1, commitment: commitment(id, 0, 2), samples: 300 };
		assert_eq!(rec, expected);
		assert!(matches!(
			System::events().iter().rev().find_map(|e| match &e.event {
				RuntimeEvent::TrainingRewards(Event::UpdateCommitted { who, samples, .. }) => Some((who.clone(), *samples)),
				_ => None,
			}),
			Some((w, 600)) if w == account(3)
		));
	});
}

#[test]
fn commit_errors() {
	test(|| {
		let id = create(3);
		assert_ok!(TrainingRewards::join_job(origin(1), id));
		let c = commitment(id, 0, 1);
		// Job not running yet.
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 0, c, 10),
			Error::<Test>::JobNotRunning
		);
		assert_ok!(TrainingRewards::join_job(origin(2), id));
		assert_noop!(
			TrainingRewards::commit_update(origin(1), 9, 0, c, 10),
			Error::<Test>::UnknownJob
		);
		assert_noop!(
			TrainingRewards::commit_update(origin(5), id, 0, c, 10),
			Error::<Test>::NotContributor
		);
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 1, c, 10),
			Error::<Test>::WrongRound
		);
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 0, c, 0),
			Error::<Test>::InvalidSamples
		);
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 0, c, 1001),
			Error::<Test>::InvalidSamples
		);
		assert_ok!(TrainingRewards::commit_update(origin(1), id, 0, c, 10));
		assert_noop!(
			TrainingRewards::commit_update(origin(1), id, 0, c, 10),
			Error::<Test>::AlreadyCommitted
		);
		run_to_block(6);
		assert_noop!(
			TrainingRewards::commit_update(origin(2), id, 0, commitment(id, 0, 2), 10),
			Error::<Test>::CommitWindowClosed
		);
	});
}

// ---------------------------------------------------------------- submit_aggregate

#[test]
fn aggregate_finalises_and_pays_pro_rata() {
	test(|| {
		let id = running_job_with_commits(3);
		let before: Vec<Balance> = (1..=3).map(free).collect();
		let model = H256::repeat_byte(9);
		let agg = aggregate(id, 0, model, &[(1, 100), (2, 300), (3, 600)]);
		// Sent by 2; the payload names 1 as the submitter.
		assert_ok!(submit_agg(2, id, 0, agg));
		// 2% to the submitter, 98% split 1:3:6.
		let submitter_reward = REWARD * 2 / 100;
		let pot = REWARD - submitter_reward;
		assert_eq!(free(1), before[0] + pot / 10 + submitter_reward);
		assert_eq!(free(2), before[1] + pot * 3 / 10);
		assert_eq!(free(3), before[2] + pot * 6 / 10);
		let j = job(id);
		assert_eq!(j.finalized_rounds, 1);
		assert_eq!(j.latest_model, model);
		assert_eq!(j.round.index, 1);
		assert_eq!(j.round.committed, 0);
		assert_eq!(j.escrow.held, REWARD * 2);
		assert_eq!(held(HoldReason::JobEscrow, SPONSOR), REWARD * 2);
		let r = RoundResults::<Test>::get(id, 0).unwrap();
		assert_eq!(r.outcome, RoundOutcome::Finalized);
		assert_eq!(r.model_hash, Some(model));
		assert_eq!(r.payouts.len(), 3);
		assert_eq!(Contributors::<Test>::get(id, account(3)).unwrap().earned, pot * 6 / 10);
		System::assert_has_event(
			Event::RoundFinalized {
				job_id: id,
				round: 0,
				model_hash: model,
				included: 3,
				paid: pot,
				submitter: account(1),
				submitter_reward,
			}
			.into(),
		);
	});
}

#[test]
fn rounding_remainder_stays_in_escrow_and_returns_on_completion() {
	test(|| {
		let id = create(1);
		for n in 1..=3 {
			assert_ok!(TrainingRewards::join_job(origin(n), id));
		}
		// 1/3 shares of 9_800 leave a remainder of 2 (3 × 3266 = 9798).
		for n in 1..=3 {
			commit(id, 0, n, 7);
		}
		let sponsor_before = free(SPONSOR);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 7), (2, 7), (3, 7)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		let j = job(id);
		assert_eq!(j.status, JobStatus::Completed);
		assert_eq!(j.escrow.paid_contributors, 3 * 3266);
		assert_eq!(j.escrow.paid_submitters, 200);
		assert_eq!(j.escrow.refunded, 2);
		assert_eq!(free(SPONSOR), sponsor_before + 2 + JobDeposit::get());
		assert!(held(HoldReason::JobEscrow, SPONSOR).is_zero());
		System::assert_last_event(Event::JobCompleted { job_id: id, refunded: 2 }.into());
	});
}

#[test]
fn job_completes_after_all_rounds() {
	test(|| {
		let id = running_job_with_commits(2);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		commit(id, 1, 1, 100);
		commit(id, 1, 2, 100);
		// Member 3 did not commit: the aggregate waits for the commit window to close.
		let agg = aggregate(id, 1, H256::repeat_byte(8), &[(1, 100), (2, 100)]);
		assert_noop!(submit_agg(1, id, 1, agg.clone()), Error::<Test>::CommitWindowOpen);
		run_to_block(6);
		assert_ok!(submit_agg(1, id, 1, agg));
		let j = job(id);
		assert_eq!(j.status, JobStatus::Completed);
		assert_eq!(j.finalized_rounds, 2);
		assert_eq!(
			j.escrow.paid_contributors + j.escrow.paid_submitters + j.escrow.refunded,
			REWARD * 2
		);
		let again = aggregate(id, 1, H256::repeat_byte(8), &[(1, 100), (2, 100)]);
		assert_noop!(submit_agg(1, id, 1, again), Error::<Test>::JobNotRunning);
	});
}

#[test]
fn quorum_is_two_thirds_of_committed_and_at_least_min() {
	test(|| {
		let id = create(3);
		for n in 1..=4 {
			assert_ok!(TrainingRewards::join_job(origin(n), id));
		}
		for n in 1..=4 {
			commit(id, 0, n, 10);
		}
		// ceil(2/3 × 4) = 3.
		assert_eq!(TrainingRewards::quorum(&job(id)), 3);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 10), (2, 10)]);
		assert_noop!(submit_agg(1, id, 0, agg), Error::<Test>::QuorumNotMet);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 10), (2, 10), (4, 10)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		// Contributor 3 committed but was left out: paid nothing.
		assert!(Contributors::<Test>::get(id, account(3)).unwrap().earned.is_zero());
	});
}

#[test]
fn aggregate_attacks_are_refused() {
	test(|| {
		let id = running_job_with_commits(3);
		let model = H256::repeat_byte(9);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let submit = |who: u8, agg: AggregateOf<Test>| submit_agg(who, id, 0, agg);

		// Unknown job, wrong round, non-contributor submitter, empty aggregate.
		assert_noop!(submit_agg(1, 5, 0, aggregate(id, 0, model, &all)), Error::<Test>::UnknownJob);
		assert_noop!(
			submit_agg(1, id, 1, aggregate(id, 1, model, &all)),
			Error::<Test>::WrongRound
		);
		assert_noop!(submit(5, aggregate(id, 0, model, &all)), Error::<Test>::NotContributor);
		assert_noop!(submit(1, aggregate(id, 0, model, &[])), Error::<Test>::EmptyAggregate);

		// Duplicated signer.
		let mut dup = aggregate(id, 0, model, &all);
		let first = dup.contributions[0].clone();
		dup.contributions.try_push(first).unwrap();
		assert_noop!(submit(1, dup), Error::<Test>::DuplicateContributor);

		// A signature by a non-contributor (never committed).
		let mut stranger = aggregate(id, 0, model, &[(1, 100), (2, 300), (5, 1)]);
		stranger.contributions[2].update_hash = update_hash(5);
		assert_noop!(submit(1, stranger), Error::<Test>::NotCommitted);

		// A reveal that does not open the commitment.
		let mut bad_reveal = aggregate(id, 0, model, &all);
		bad_reveal.contributions[1].salt = H256::repeat_byte(0xee);
		assert_noop!(submit(1, bad_reveal), Error::<Test>::RevealMismatch);

		// Claiming the update of another contributor (copying its reveal).
		let mut stolen = aggregate(id, 0, model, &all);
		stolen.contributions[1].update_hash = update_hash(3);
		stolen.contributions[1].salt = salt(3);
		assert_noop!(submit(1, stolen), Error::<Test>::RevealMismatch);

		// A signature over a different model hash.
		let mut forged = aggregate(id, 0, model, &all);
		forged.contributions[2].signature = sign(3, &payload(id, 0, H256::repeat_byte(7), &all));
		assert_noop!(submit(1, forged), Error::<Test>::InvalidSignature);

		// Replays: signatures over another round, another job, another chain, other shares.
		for bytes in [
			payload(id, 1, model, &all),
			payload(id + 1, 0, model, &all),
			{
				let mut other_chain = payload_of(id, 0, model, &all);
				other_chain.genesis_hash = [0xab; 32];
				other_chain.signing_bytes(Some(METRIC))
			},
			payload(id, 0, model, &[(1, 100), (2, 300), (3, 601)]),
			{
				// Another submitter, or another update hash, or another metric.
				let mut p = payload_of(id, 0, model, &all);
				p.submitter = account(3);
				p.signing_bytes(Some(METRIC))
			},
			{
				let mut p = payload_of(id, 0, model, &all);
				p.included[1].update_hash = [0xcd; 32];
				p.signing_bytes(Some(METRIC))
			},
			payload_of(id, 0, model, &all).signing_bytes(Some(METRIC + 1)),
		] {
			let mut replay = aggregate(id, 0, model, &all);
			replay.contributions[0].signature = sign(1, &bytes);
			assert_noop!(submit(1, replay), Error::<Test>::InvalidSignature);
		}

		// Someone else's key signing for contributor 2.
		let mut impostor = aggregate(id, 0, model, &all);
		impostor.contributions[1].signature = sign(3, &payload(id, 0, model, &all));
		assert_noop!(submit(1, impostor), Error::<Test>::InvalidSignature);

		// The named submitter must be one of the included.
		let mut outsider = aggregate(id, 0, model, &all);
		outsider.submitter = account(5);
		assert_noop!(submit(1, outsider), Error::<Test>::SubmitterNotIncluded);

		// At the deadline block, before the expiry runs.
		System::set_block_number(11);
		assert_noop!(submit(1, aggregate(id, 0, model, &all)), Error::<Test>::DeadlinePassed);
		// After the deadline.
		System::set_block_number(10);
		run_to_block(11);
		assert_noop!(submit(1, aggregate(id, 0, model, &all)), Error::<Test>::WrongRound);
	});
}

#[test]
fn a_losing_fallback_submitter_pays_only_for_the_early_check() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		assert_ok!(submit_agg(1, id, 0, aggregate(id, 0, H256::repeat_byte(9), &all)));
		// The fallback's copy arrives after the round closed.
		let late = aggregate(id, 0, H256::repeat_byte(9), &all);
		let declared = <Test as Config>::WeightInfo::submit_aggregate(3);
		let err = TrainingRewards::submit_aggregate(origin(2), id, 0, late).unwrap_err();
		assert_eq!(err.error, Error::<Test>::WrongRound.into());
		let charged = err.post_info.actual_weight.unwrap();
		assert_eq!(charged, <Test as Config>::WeightInfo::submit_aggregate(0));
		assert!(charged.ref_time() < declared.ref_time());
	});
}

#[test]
fn aggregate_in_last_block_before_deadline_is_accepted() {
	test(|| {
		let id = running_job_with_commits(3);
		run_to_block(10);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		// The stale deadline entry of round 0 does nothing at block 11.
		run_to_block(11);
		assert_eq!(job(id).round.index, 1);
		assert_eq!(job(id).consecutive_failures, 0);
	});
}

// ---------------------------------------------------------------- deadlines

#[test]
fn missed_deadline_fails_round_and_carries_escrow_over() {
	test(|| {
		let id = running_job_with_commits(3);
		run_to_block(11);
		let j = job(id);
		assert_eq!(j.round.index, 1);
		assert_eq!(j.round.started_at, 11);
		assert_eq!(j.consecutive_failures, 1);
		assert_eq!(j.escrow.held, REWARD * 3);
		assert_eq!(RoundResults::<Test>::get(id, 0).unwrap().outcome, RoundOutcome::Failed);
		System::assert_has_event(
			Event::RoundFailed { job_id: id, round: 0, consecutive_failures: 1 }.into(),
		);
		// Nobody was paid, nobody slashed.
		assert_eq!(held(HoldReason::ContributorBond, 1), BOND);
		// Contributors can commit again in round 1.
		commit(id, 1, 1, 10);
	});
}

#[test]
fn too_many_failed_rounds_end_the_job_and_refund() {
	test(|| {
		let id = running_job_with_commits(3);
		let before = free(SPONSOR);
		run_to_block(21);
		let j = job(id);
		assert_eq!(j.status, JobStatus::Failed);
		assert_eq!(free(SPONSOR), before + REWARD * 3 + JobDeposit::get());
		assert!(held(HoldReason::JobEscrow, SPONSOR).is_zero());
		System::assert_has_event(Event::JobFailed { job_id: id, refunded: REWARD * 3 }.into());
		// Contributors get their bonds back.
		leave_and_withdraw(1, id);
		assert!(held(HoldReason::ContributorBond, 1).is_zero());
	});
}

#[test]
fn success_resets_the_failure_count() {
	test(|| {
		let id = running_job_with_commits(5);
		run_to_block(11);
		commit(id, 1, 1, 10);
		commit(id, 1, 2, 10);
		run_to_block(16);
		let agg = aggregate(id, 1, H256::repeat_byte(9), &[(1, 10), (2, 10)]);
		assert_ok!(submit_agg(1, id, 1, agg));
		assert_eq!(job(id).consecutive_failures, 0);
		assert_eq!(job(id).status, JobStatus::Running);
	});
}

#[test]
fn full_deadline_blocks_spill_over() {
	test(|| {
		// MaxDeadlinesPerBlock is 4 in the mock: five rounds due in block 11 all keep their
		// deadline; four expire in block 11, the fifth in block 12.
		let mut ids = vec![];
		for _ in 0..5 {
			let id = create(1);
			assert_ok!(TrainingRewards::join_job(origin(1), id));
			assert_ok!(TrainingRewards::join_job(origin(2), id));
			ids.push(id);
		}
		assert_eq!(Deadlines::<Test>::iter_prefix(11).count(), 5);
		assert!(ids.iter().all(|id| job(*id).round.deadline == 11));
		run_to_block(11);
		let expired =
			|ids: &[JobId]| ids.iter().filter(|id| job(**id).consecutive_failures == 1).count();
		assert_eq!(expired(&ids), 4);
		// The late one is still past its deadline: nothing can be submitted for it.
		let late = *ids.iter().find(|id| job(**id).consecutive_failures == 0).unwrap();
		assert_noop!(
			TrainingRewards::commit_update(origin(2), late, 0, commitment(late, 0, 2), 10),
			Error::<Test>::CommitWindowClosed
		);
		let agg = aggregate(late, 0, H256::repeat_byte(9), &[(1, 10)]);
		assert_noop!(submit_agg(1, late, 0, agg), Error::<Test>::DeadlinePassed);
		assert_eq!(DeadlineCursor::<Test>::get(), Some(11));
		run_to_block(12);
		assert_eq!(expired(&ids), 5);
		assert_eq!(DeadlineCursor::<Test>::get(), Some(13));
	});
}

#[test]
fn history_keeps_the_last_rounds_only() {
	test(|| {
		let id = create(20);
		assert_ok!(TrainingRewards::join_job(origin(1), id));
		assert_ok!(TrainingRewards::join_job(origin(2), id));
		let mut spec2 = spec();
		spec2.max_failed_rounds = 100;
		Jobs::<Test>::mutate(id, |j| j.as_mut().unwrap().spec.max_failed_rounds = 100);
		run_to_block(1 + 10 * 10);
		assert_eq!(job(id).round.index, 10);
		assert!(RoundResults::<Test>::get(id, 1).is_none());
		assert!(RoundResults::<Test>::get(id, 2).is_some());
		assert_eq!(RoundResults::<Test>::iter_prefix(id).count(), 8);
	});
}

// ---------------------------------------------------------------- equivocation

#[test]
fn equivocation_slashes_half_to_reporter_half_burned() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let a = payload(id, 0, H256::repeat_byte(9), &all);
		let b = payload(id, 0, H256::repeat_byte(8), &all);
		let issuance = Balances::total_issuance();
		let reporter_before = free(5);
		assert_ok!(report_signed(5, id, 0, 2, &a, &b));
		assert_eq!(free(5), reporter_before + BOND / 2);
		assert!(held(HoldReason::ContributorBond, 2).is_zero());
		assert_eq!(Balances::total_issuance(), issuance - BOND / 2);
		assert!(Contributors::<Test>::get(id, account(2)).is_none());
		assert_eq!(job(id).bonds.slashed, BOND);
		assert_eq!(
			last_event(),
			Event::EquivocationSlashed {
				job_id: id,
				round: 0,
				offender: account(2),
				reporter: account(5),
				reporter_reward: BOND / 2,
				burned: BOND / 2,
			}
			.into()
		);
	});
}

#[test]
fn equivocation_needs_real_evidence() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let a = payload(id, 0, H256::repeat_byte(9), &all);
		let b = payload(id, 0, H256::repeat_byte(8), &all);
		let other_round = payload(id, 1, H256::repeat_byte(8), &all);
		assert_noop!(report_signed(5, id, 0, 2, &a, &a), Error::<Test>::NotEquivocation);
		assert_noop!(report_signed(5, id, 0, 2, &a, &other_round), Error::<Test>::InvalidEvidence);
		assert_noop!(report_signed(5, id, 0, 2, &a, &[1, 2, 3]), Error::<Test>::InvalidEvidence);
		// A statement that does not include the offender.
		let without_2 = payload(id, 0, H256::repeat_byte(8), &[(1, 100), (3, 600)]);
		assert_noop!(report_signed(5, id, 0, 2, &a, &without_2), Error::<Test>::InvalidEvidence);
		assert_noop!(
			report(5, id, 0, 2, (&a, sign(2, &a)), (&b, sign(3, &b))),
			Error::<Test>::InvalidSignature
		);
		let with_7 = [(1u8, 100u64), (7, 1)];
		let a7 = payload(id, 0, H256::repeat_byte(9), &with_7);
		let b7 = payload(id, 0, H256::repeat_byte(8), &with_7);
		assert_noop!(report_signed(5, id, 0, 7, &a7, &b7), Error::<Test>::NotContributor);
		assert_noop!(report_signed(5, 9, 0, 2, &a, &b), Error::<Test>::UnknownJob);
	});
}

// ---------------------------------------------------------------- views

#[test]
fn views_reflect_state() {
	test(|| {
		let id = running_job_with_commits(3);
		let v = TrainingRewards::job_view(id).unwrap();
		assert_eq!(v.phase, pallet_training_rewards_runtime_api::JobPhase::Commit);
		assert_eq!(v.committed, 3);
		assert_eq!(v.quorum, 2);
		assert_eq!(TrainingRewards::jobs_page(0, 10).len(), 1);
		assert_eq!(TrainingRewards::jobs_page(id + 1, 10).len(), 0);
		let cs = TrainingRewards::contributor_views(id);
		assert_eq!(cs.len(), 3);
		assert!(cs.iter().all(|c| c.current_commitment.is_some()));
		run_to_block(6);
		assert_eq!(
			TrainingRewards::job_view(id).unwrap().phase,
			pallet_training_rewards_runtime_api::JobPhase::Aggregate
		);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		let rounds = TrainingRewards::round_views(id);
		assert_eq!(rounds.len(), 1);
		assert!(rounds[0].finalized);
		assert_eq!(
			rounds[0].payouts.iter().map(|p| p.amount).sum::<Balance>(),
			REWARD - REWARD * 2 / 100
		);
		assert!(TrainingRewards::job_view(77).is_none());
	});
}

// ---------------------------------------------------------------- invariant

#[test]
fn invariant_detects_a_broken_ledger() {
	new_test_ext().execute_with(|| {
		let id = create(2);
		assert_ok!(TrainingRewards::do_try_state());
		Jobs::<Test>::mutate(id, |j| j.as_mut().unwrap().escrow.paid_contributors += 1);
		assert!(TrainingRewards::do_try_state().is_err());
		Jobs::<Test>::mutate(id, |j| {
			let j = j.as_mut().unwrap();
			j.escrow.paid_contributors -= 1;
			j.escrow.held -= 1;
			j.escrow.refunded += 1;
		});
		// The ledger balances but the hold on the account no longer matches.
		assert_eq!(
			TrainingRewards::do_try_state(),
			Err(DispatchError::Other("escrow on hold differs"))
		);
	});
}

mod adversarial;
mod attacks;
mod verification;
