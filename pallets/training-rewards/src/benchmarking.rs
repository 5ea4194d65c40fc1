//! Benchmarks (FRAME v2 macros) with worst-case components; `weights.rs` is generated from
//! them by `scripts/bench-pallet.sh`.
#![allow(
	clippy::unwrap_used,
	clippy::expect_used,
	clippy::arithmetic_side_effects,
	clippy::indexing_slicing
)]

use super::*;
use crate::pallet::{
	AggregateOf, BalanceOf, Commitments, Config, Contributors, DeadlineCursor, Deadlines,
	JobSpecOf, Jobs, NextJobId, Pallet,
};
use alloc::{vec, vec::Vec};
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{
		fungible::{Mutate, MutateHold},
		Get, Hooks,
	},
	BoundedVec,
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::{crypto::KeyTypeId, sr25519, H256};
use sp_runtime::traits::{IdentifyAccount, Saturating};
use trainchain_primitives::{update_commitment, AggregatePayload, IncludedShare};

const KEY_TYPE: KeyTypeId = KeyTypeId(*b"trbn");

fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
	let who: T::AccountId = account(name, index, 0);
	T::Currency::set_balance(&who, rich::<T>());
	who
}

fn rich<T: Config>() -> BalanceOf<T> {
	BalanceOf::<T>::from(u32::MAX).saturating_mul(1_000u32.into())
}

/// A signing key in the benchmark keystore and the account it identifies.
fn signer<T: Config>() -> (sr25519::Public, T::AccountId)
where
	T::Signer: From<sr25519::Public>,
{
	let public = sp_io::crypto::sr25519_generate(KEY_TYPE, None);
	let who = T::Signer::from(public).into_account();
	T::Currency::set_balance(&who, rich::<T>());
	(public, who)
}

fn sign<T: Config>(public: &sr25519::Public, msg: &[u8]) -> T::Signature
where
	T::Signature: From<sr25519::Signature>,
{
	sp_io::crypto::sr25519_sign(KEY_TYPE, public, msg)
		.expect("key is in the keystore")
		.into()
}

fn spec<T: Config>(min: u32, max: u32, max_failed_rounds: u32) -> JobSpecOf<T> {
	JobSpec {
		model_commitment: H256::repeat_byte(1),
		dataset_commitment: H256::repeat_byte(2),
		metadata: BoundedVec::truncate_from(vec![b'm'; T::MaxMetadataLen::get() as usize]),
		hyperparameters: Hyperparameters {
			learning_rate_ppm: 1_000,
			batch_size: 32,
			local_steps: 10,
		},
		min_contributors: min,
		max_contributors: max,
		round_length: 100u32.into(),
		commit_window: 50u32.into(),
		contributor_bond: 1_000u32.into(),
		max_samples: 1_000_000,
		max_failed_rounds,
		verification: None,
	}
}

fn new_job<T: Config>(min: u32, max: u32, rounds: u32, max_failed_rounds: u32) -> JobId {
	new_job_of::<T>(0, min, max, rounds, max_failed_rounds)
}

/// A job of sponsor number `sponsor` (distinct sponsors touch distinct accounts and holds).
fn new_job_of<T: Config>(
	sponsor: u32,
	min: u32,
	max: u32,
	rounds: u32,
	max_failed_rounds: u32,
) -> JobId {
	let sponsor = funded::<T>("sponsor", sponsor);
	let id = NextJobId::<T>::get();
	Pallet::<T>::create_job(
		RawOrigin::Signed(sponsor).into(),
		spec::<T>(min, max, max_failed_rounds),
		1_000_000u32.into(),
		rounds,
	)
	.unwrap();
	id
}

/// A job with one member that committed in the open round, at the first block it may leave.
fn committed_member_past_grace<T: Config>() -> (JobId, T::AccountId) {
	let id = new_job::<T>(1, 2, 3, 3);
	let who = funded::<T>("contributor", 0);
	Pallet::<T>::join_job(RawOrigin::Signed(who.clone()).into(), id).unwrap();
	Pallet::<T>::commit_update(
		RawOrigin::Signed(who.clone()).into(),
		id,
		0,
		H256::repeat_byte(3),
		10,
	)
	.unwrap();
	let job = Jobs::<T>::get(id).unwrap();
	frame_system::Pallet::<T>::set_block_number(
		job.round.commit_until.saturating_add(T::LeaveGrace::get()),
	);
	(id, who)
}

/// A stored result of a failed round.
fn failed_result<T: Config>() -> crate::pallet::RoundResultOf<T> {
	RoundResult {
		outcome: RoundOutcome::Failed,
		closed_at: 1u32.into(),
		committed: 0,
		model_hash: None,
		metric: None,
		submitter: None,
		submitter_reward: 0u32.into(),
		payouts: BoundedVec::new(),
		loss_micro: None,
		scores: BoundedVec::new(),
		verifier_payouts: BoundedVec::new(),
	}
}

/// The largest `k` whose challenge committee (`2k + 1`) fits `MaxCommittee`.
fn max_k<T: Config>() -> u32 {
	(T::MaxCommittee::get().saturating_sub(1) / 2).max(1)
}

/// The verification part of a benchmark spec: `k` verifiers per round, on a public dataset (the
/// largest encoding).
fn verification<T: Config>(k: u32, restricted: bool) -> VerificationSpecOf<T> {
	VerificationSpec {
		verifiers_per_round: k,
		verifier_bond: 1_000u32.into(),
		verifier_share: sp_runtime::Perbill::from_percent(10),
		scoring_window: 10u32.into(),
		challenge_period: 10u32.into(),
		challenge_bond: 1_000u32.into(),
		validation_set: H256::repeat_byte(7),
		restricted,
		public_data: Some(PublicData {
			shards_root: H256::repeat_byte(8),
			shards: 64,
			recompute: 1,
		}),
	}
}

/// A verified job of sponsor `sponsor` for up to `MaxContributors` contributors, needing
/// `k` verifiers per round; `restricted` if the sponsor approves verifiers.
fn verified_job<T: Config>(sponsor: u32, k: u32, restricted: bool) -> JobId {
	let who = funded::<T>("sponsor", sponsor);
	let id = NextJobId::<T>::get();
	let mut spec = spec::<T>(1, T::MaxContributors::get(), 3);
	spec.verification = Some(verification::<T>(k, restricted));
	Pallet::<T>::create_job(RawOrigin::Signed(who).into(), spec, 1_000_000u32.into(), 3).unwrap();
	id
}

/// `n` verifiers (account seed `seed`) joined to `id`.
fn verifiers_of<T: Config>(id: JobId, seed: u32, n: u32) -> Vec<T::AccountId> {
	(0..n)
		.map(|i| {
			let v = funded::<T>("verifier", seed * 1_000 + i);
			Pallet::<T>::join_as_verifier(RawOrigin::Signed(v.clone()).into(), id).unwrap();
			v
		})
		.collect()
}

/// A score sheet of `n` scores, all `score`.
fn sheet_of<T: Config>(
	verifier: &T::AccountId,
	n: u32,
	score: i32,
) -> crate::pallet::ScoreSheetOf<T> {
	ScoreSheet {
		verifier: verifier.clone(),
		scores: BoundedVec::truncate_from(vec![score; n as usize]),
		loss_micro: 1,
		accuracy_ppm: 1,
	}
}

/// Round 0 of job `id` in settlement, as if its aggregate had been accepted at `now`: `s`
/// joined contributors included (seed `seed`), the reward reserved, a result stored.
fn settling_round<T: Config>(
	id: JobId,
	seed: u32,
	s: u32,
	first: Vec<T::AccountId>,
	phase: SettlementPhase<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>,
) -> crate::pallet::SettlementOf<T> {
	let now = frame_system::Pallet::<T>::block_number();
	let mut included = Vec::new();
	for i in 0..s {
		let who = funded::<T>("contributor", seed * 1_000 + i);
		Pallet::<T>::join_job(RawOrigin::Signed(who.clone()).into(), id).unwrap();
		included.push(Included {
			who,
			samples: 1_000,
			update_hash: H256::repeat_byte(i as u8),
			committed_at: now,
		});
	}
	let mut job = Jobs::<T>::get(id).unwrap();
	let reward = job.reward_per_round;
	job.escrow.reserve(reward).unwrap();
	job.open_settlements += 1;
	Jobs::<T>::insert(id, job);
	crate::pallet::RoundResults::<T>::insert(id, 0, failed_result::<T>());
	let settlement = Settlement {
		reward,
		submitter: included[0].who.clone(),
		included: BoundedVec::truncate_from(included),
		first: Panel { committee: BoundedVec::truncate_from(first), sheets: BoundedVec::new() },
		second: None,
		verdict: None,
		phase,
		seed: H256::repeat_byte(9),
	};
	settlement
}

/// Store `settlement` as round 0 of `id` with its queue entry.
fn store_settlement<T: Config>(id: JobId, settlement: crate::pallet::SettlementOf<T>) {
	let until = match &settlement.phase {
		SettlementPhase::Scoring { until }
		| SettlementPhase::Challengeable { until }
		| SettlementPhase::Rescoring { until, .. } => *until,
	};
	crate::pallet::SettlementQueue::<T>::insert(until, (id, 0), ());
	crate::pallet::Settlements::<T>::insert(id, 0, settlement);
}

#[benchmarks(where T::Signature: From<sr25519::Signature>, T::Signer: From<sr25519::Public>)]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn create_job() {
		let sponsor = funded::<T>("sponsor", 0);
		// Worst case: the largest spec, verified on a public dataset.
		let mut spec = spec::<T>(1, T::MaxContributors::get(), T::MaxFailedRounds::get());
		spec.verification = Some(verification::<T>(1, true));
		#[extrinsic_call]
		_(RawOrigin::Signed(sponsor), spec, 1_000_000u32.into(), T::MaxRounds::get());
		assert!(Jobs::<T>::contains_key(0));
	}

	#[benchmark]
	fn cancel_job() {
		let id = new_job::<T>(1, 2, 3, 3);
		let sponsor = Jobs::<T>::get(id).unwrap().sponsor;
		#[extrinsic_call]
		_(RawOrigin::Signed(sponsor), id);
		assert_eq!(Jobs::<T>::get(id).unwrap().status, JobStatus::Cancelled);
	}

	/// Worst case: the join that reaches `min_contributors` and starts the first round.
	#[benchmark]
	fn join_job() {
		let id = new_job::<T>(1, 2, 3, 3);
		let who = funded::<T>("contributor", 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(who), id);
		assert_eq!(Jobs::<T>::get(id).unwrap().status, JobStatus::Running);
	}

	/// Worst case: leaving after committing in the open round, once the grace has passed.
	#[benchmark]
	fn leave_job() {
		let (id, who) = committed_member_past_grace::<T>();
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id);
		assert!(Contributors::<T>::get(id, &who).unwrap().unbonding_until.is_some());
	}

	/// A bond released after unbonding, with a commitment to clean up.
	#[benchmark]
	fn withdraw_bond() {
		let (id, who) = committed_member_past_grace::<T>();
		Pallet::<T>::leave_job(RawOrigin::Signed(who.clone()).into(), id).unwrap();
		let until = Contributors::<T>::get(id, &who).unwrap().unbonding_until.unwrap();
		frame_system::Pallet::<T>::set_block_number(until);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id);
		assert!(!Contributors::<T>::contains_key(id, &who));
		assert!(!Commitments::<T>::contains_key(id, &who));
	}

	/// Worst case: a commitment that replaces the contributor's one from the previous round.
	#[benchmark]
	fn commit_update() {
		let id = new_job::<T>(1, 2, 3, 3);
		let who = funded::<T>("contributor", 0);
		Pallet::<T>::join_job(RawOrigin::Signed(who.clone()).into(), id).unwrap();
		Pallet::<T>::commit_update(
			RawOrigin::Signed(who.clone()).into(),
			id,
			0,
			H256::repeat_byte(3),
			10,
		)
		.unwrap();
		Jobs::<T>::mutate(id, |j| {
			if let Some(j) = j {
				j.round.index = 1;
				j.round.committed = 0;
			}
		});
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id, 1, H256::repeat_byte(4), 1_000);
		assert_eq!(Commitments::<T>::get(id, &who).unwrap().round, 1);
	}

	/// `s` signers, every one verified; the round finalises, prunes history and completes the
	/// job (heavier than starting the next round: two holds are released).
	#[benchmark]
	fn submit_aggregate(s: Linear<1, { T::MaxContributors::get() }>) {
		let max = T::MaxContributors::get();
		// The job's last round, numbered `HistoryDepth`: finalising it prunes the oldest
		// stored result and completes the job (escrow and deposit released).
		let id = new_job::<T>(1, max, 1, 3);
		let mut keys = Vec::new();
		for _ in 0..s {
			let (public, who) = signer::<T>();
			Pallet::<T>::join_job(RawOrigin::Signed(who.clone()).into(), id).unwrap();
			keys.push((public, who));
		}
		let round = T::HistoryDepth::get();
		Jobs::<T>::mutate(id, |j| {
			if let Some(j) = j {
				j.round.index = round;
			}
		});
		crate::pallet::RoundResults::<T>::insert(id, 0, failed_result::<T>());
		let mut shares = Vec::new();
		let mut reveals = Vec::new();
		for (i, (_, who)) in keys.iter().enumerate() {
			let update_hash = H256::repeat_byte(i as u8);
			let salt = H256::repeat_byte(0xff - i as u8);
			let c = update_commitment(id, round, who, &update_hash.0, &salt.0);
			Pallet::<T>::commit_update(
				RawOrigin::Signed(who.clone()).into(),
				id,
				round,
				H256(c),
				1_000,
			)
			.unwrap();
			shares.push(IncludedShare {
				who: who.clone(),
				samples: 1_000,
				update_hash: update_hash.0,
			});
			reveals.push((update_hash, salt));
		}
		let model = H256::repeat_byte(9);
		let submitter = keys[0].1.clone();
		let payload = AggregatePayload::new(
			Pallet::<T>::genesis_hash(),
			id,
			round,
			model.0,
			submitter.clone(),
			shares,
		);
		let contributions: Vec<_> = keys
			.iter()
			.zip(reveals)
			.enumerate()
			.map(|(i, ((public, who), (update_hash, salt)))| SignedContribution {
				who: who.clone(),
				update_hash,
				salt,
				metric: Some(i as u32),
				signature: sign::<T>(public, &payload.signing_bytes(Some(i as u32))),
			})
			.collect();
		let aggregate: AggregateOf<T> = Aggregate {
			model_hash: model,
			submitter: submitter.clone(),
			contributions: BoundedVec::truncate_from(contributions),
		};
		#[extrinsic_call]
		_(RawOrigin::Signed(submitter), id, round, aggregate);
		assert_eq!(Jobs::<T>::get(id).unwrap().status, JobStatus::Completed);
		assert!(!crate::pallet::RoundResults::<T>::contains_key(id, 0));
	}

	/// Two statements of the largest size, both signatures verified; the offender committed
	/// in the open round, so the round's count is corrected too.
	#[benchmark]
	fn report_equivocation() {
		let max = T::MaxContributors::get();
		let id = new_job::<T>(1, max, 2, 3);
		let (public, offender) = signer::<T>();
		Pallet::<T>::join_job(RawOrigin::Signed(offender.clone()).into(), id).unwrap();
		Pallet::<T>::commit_update(
			RawOrigin::Signed(offender.clone()).into(),
			id,
			0,
			H256::repeat_byte(3),
			10,
		)
		.unwrap();
		let shares: Vec<_> = (0..max)
			.map(|_| IncludedShare { who: offender.clone(), samples: 1, update_hash: [3u8; 32] })
			.collect();
		let genesis = Pallet::<T>::genesis_hash();
		let statement = |model: u8| {
			AggregatePayload::new(genesis, id, 0, [model; 32], offender.clone(), shares.clone())
				.signing_bytes(Some(u32::MAX))
		};
		let (a, b) = (statement(1), statement(2));
		let proof = EquivocationProof {
			job_id: id,
			round: 0,
			offender: offender.clone(),
			first: SignedEvidence {
				signature: sign::<T>(&public, &a),
				statement: BoundedVec::truncate_from(a),
			},
			second: SignedEvidence {
				signature: sign::<T>(&public, &b),
				statement: BoundedVec::truncate_from(b),
			},
		};
		let reporter = funded::<T>("reporter", 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(reporter), alloc::boxed::Box::new(proof));
		assert!(!Contributors::<T>::contains_key(id, &offender));
		assert_eq!(Jobs::<T>::get(id).unwrap().round.committed, 0);
	}

	/// `d` rounds expire in one block; each one is the job's last allowed failure, so each
	/// job also ends and releases its escrow and deposit. Every job has its own sponsor, so
	/// every release touches another account and hold.
	#[benchmark]
	fn on_initialize_deadlines(d: Linear<0, { T::MaxDeadlinesPerBlock::get() }>) {
		let now = frame_system::Pallet::<T>::block_number();
		let deadline: BlockNumberFor<T> = now.saturating_add(100u32.into());
		// Each expiring round is number `HistoryDepth`, so recording it also prunes the
		// oldest stored result.
		let history = T::HistoryDepth::get();
		for i in 0..d {
			let id = new_job_of::<T>(i, 1, 2, 2, 1);
			let who = funded::<T>("contributor", i);
			Pallet::<T>::join_job(RawOrigin::Signed(who).into(), id).unwrap();
			Jobs::<T>::mutate(id, |j| {
				if let Some(j) = j {
					j.round.index = history;
				}
			});
			Deadlines::<T>::insert(deadline, id, history);
			crate::pallet::RoundResults::<T>::insert(id, 0, failed_result::<T>());
		}
		assert_eq!(Deadlines::<T>::iter_prefix(deadline).count() as u32, d);
		DeadlineCursor::<T>::put(deadline);
		#[block]
		{
			Pallet::<T>::on_initialize(deadline);
		}
		for id in 0..u64::from(d) {
			assert_eq!(Jobs::<T>::get(id).unwrap().status, JobStatus::Failed);
			assert!(!crate::pallet::RoundResults::<T>::contains_key(id, 0));
		}
	}

	/// An ended job with `h` items to clear (round results, then offence records).
	#[benchmark]
	fn reap_job(h: Linear<0, { T::HistoryDepth::get() + T::MaxContributors::get() }>) {
		let id = new_job::<T>(1, 2, 3, 3);
		let sponsor = Jobs::<T>::get(id).unwrap().sponsor;
		let results = h.min(T::HistoryDepth::get());
		for round in 0..results {
			crate::pallet::RoundResults::<T>::insert(id, round, failed_result::<T>());
		}
		for i in 0..h.saturating_sub(results) {
			let who: T::AccountId = account("offender", i, 0);
			crate::pallet::Offences::<T>::insert(id, (0, who), ());
		}
		Pallet::<T>::cancel_job(RawOrigin::Signed(sponsor.clone()).into(), id).unwrap();
		#[extrinsic_call]
		_(RawOrigin::Signed(sponsor), id);
		assert!(!Jobs::<T>::contains_key(id));
	}

	#[benchmark]
	fn approve_verifier() {
		let id = verified_job::<T>(0, 1, true);
		let sponsor = Jobs::<T>::get(id).unwrap().sponsor;
		let who: T::AccountId = account("verifier", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(sponsor), id, who.clone());
		assert!(crate::pallet::ApprovedVerifiers::<T>::contains_key(id, &who));
	}

	/// Worst case: a restricted job, and the join that completes its `k` verifiers and starts
	/// the first round. (The verifier set's proof size is counted at its maximum anyway.)
	#[benchmark]
	fn join_as_verifier() {
		let k = max_k::<T>();
		let id = verified_job::<T>(0, k, true);
		let sponsor = Jobs::<T>::get(id).unwrap().sponsor;
		for i in 0..k {
			let v: T::AccountId = account("verifier", i, 0);
			Pallet::<T>::approve_verifier(RawOrigin::Signed(sponsor.clone()).into(), id, v)
				.unwrap();
		}
		for i in 0..k - 1 {
			let v = funded::<T>("verifier", i);
			Pallet::<T>::join_as_verifier(RawOrigin::Signed(v).into(), id).unwrap();
		}
		let contributor = funded::<T>("contributor", 0);
		Pallet::<T>::join_job(RawOrigin::Signed(contributor).into(), id).unwrap();
		let last = funded::<T>("verifier", k - 1);
		#[extrinsic_call]
		_(RawOrigin::Signed(last), id);
		assert_eq!(Jobs::<T>::get(id).unwrap().status, JobStatus::Running);
	}

	/// Worst case: leaving a full verifier set.
	#[benchmark]
	fn leave_verifying() {
		let id = verified_job::<T>(0, 1, false);
		let vs = verifiers_of::<T>(id, 0, T::MaxVerifiers::get());
		let who = vs.last().unwrap().clone();
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id);
		assert!(crate::pallet::Verifiers::<T>::get(id, &who).unwrap().unbonding_until.is_some());
	}

	#[benchmark]
	fn withdraw_verifier_bond() {
		let id = verified_job::<T>(0, 1, false);
		let who = verifiers_of::<T>(id, 0, 1)[0].clone();
		Pallet::<T>::leave_verifying(RawOrigin::Signed(who.clone()).into(), id).unwrap();
		let until = crate::pallet::Verifiers::<T>::get(id, &who).unwrap().unbonding_until.unwrap();
		frame_system::Pallet::<T>::set_block_number(until);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), id);
		assert!(!crate::pallet::Verifiers::<T>::contains_key(id, &who));
	}

	/// Worst case: a full verifier set to pick the largest fresh committee from.
	#[benchmark]
	fn challenge_round() {
		let k = max_k::<T>();
		let id = verified_job::<T>(0, k, false);
		let vs = verifiers_of::<T>(id, 0, T::MaxVerifiers::get());
		let until = frame_system::Pallet::<T>::block_number().saturating_add(10u32.into());
		let mut s = settling_round::<T>(
			id,
			0,
			1,
			vs[..k as usize].to_vec(),
			SettlementPhase::Challengeable { until },
		);
		s.verdict = Some(Verdict {
			medians: BoundedVec::truncate_from(vec![1]),
			payouts: BoundedVec::truncate_from(vec![1u32.into()]),
			loss_micro: Some(1),
			accuracy_ppm: Some(1),
		});
		store_settlement::<T>(id, s);
		let challenger = funded::<T>("challenger", 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(challenger), id, 0);
		let s = crate::pallet::Settlements::<T>::get(id, 0).unwrap();
		assert_eq!(s.second.unwrap().committee.len() as u32, 2 * k + 1);
	}

	/// Worst case: the last sheet of a challenge committee of `2k + 1`, which overturns the
	/// first committee's `k` sheets: `k` bonds slashed, `s` contributors, the submitter and
	/// `2k + 1` verifiers paid, the rest refunded.
	#[benchmark]
	fn submit_scores(s: Linear<1, { T::MaxContributors::get() }>) {
		let k = max_k::<T>();
		let id = verified_job::<T>(0, k, false);
		let vs = verifiers_of::<T>(id, 0, 3 * k + 1);
		let (first, second) = vs.split_at(k as usize);
		let challenger = funded::<T>("challenger", 0);
		let bond: BalanceOf<T> = 1_000u32.into();
		T::Currency::hold(&HoldReason::ChallengeBond.into(), &challenger, bond).unwrap();
		Jobs::<T>::mutate(id, |j| {
			if let Some(j) = j {
				j.challenge_bonds.bond(bond).unwrap();
			}
		});
		let until = frame_system::Pallet::<T>::block_number().saturating_add(10u32.into());
		let phase = SettlementPhase::Rescoring { until, challenger, bond };
		let mut st = settling_round::<T>(id, 0, s, first.to_vec(), phase);
		for v in first {
			st.first.sheets.try_push(sheet_of::<T>(v, s, 1_000_000)).unwrap();
		}
		st.verdict = Some(Verdict {
			medians: BoundedVec::truncate_from(vec![1_000_000; s as usize]),
			payouts: BoundedVec::truncate_from(vec![1u32.into(); s as usize]),
			loss_micro: Some(1),
			accuracy_ppm: Some(1),
		});
		let mut panel = Panel {
			committee: BoundedVec::truncate_from(second.to_vec()),
			sheets: BoundedVec::new(),
		};
		for v in &second[..second.len() - 1] {
			panel.sheets.try_push(sheet_of::<T>(v, s, 1_000)).unwrap();
		}
		st.second = Some(panel);
		store_settlement::<T>(id, st);
		let last = second.last().unwrap().clone();
		let sheet = sheet_of::<T>(&last, s, 1_000);
		#[extrinsic_call]
		_(RawOrigin::Signed(last), id, 0, sheet);
		assert!(!crate::pallet::Settlements::<T>::contains_key(id, 0));
		assert_eq!(Jobs::<T>::get(id).unwrap().verifier_bonds.slashed, bond * k.into());
	}

	/// `d` challenge windows end in one block; each pays `MaxContributors` contributors and
	/// `k` verifiers, each in its own job with its own sponsor.
	#[benchmark]
	fn on_initialize_settlements(d: Linear<0, { T::MaxSettlementsPerBlock::get() }>) {
		let k = max_k::<T>();
		let max = T::MaxContributors::get();
		let now = frame_system::Pallet::<T>::block_number();
		let at: BlockNumberFor<T> = now.saturating_add(10u32.into());
		for i in 0..d {
			let id = verified_job::<T>(i, k, false);
			let vs = verifiers_of::<T>(id, i, k);
			let phase = SettlementPhase::Challengeable { until: at };
			let mut st = settling_round::<T>(id, i, max, vs.clone(), phase);
			for v in &vs {
				st.first.sheets.try_push(sheet_of::<T>(v, max, 1_000)).unwrap();
			}
			st.verdict = Some(Verdict {
				medians: BoundedVec::truncate_from(vec![1_000; max as usize]),
				payouts: BoundedVec::truncate_from(vec![1_000u32.into(); max as usize]),
				loss_micro: Some(1),
				accuracy_ppm: Some(1),
			});
			store_settlement::<T>(id, st);
		}
		crate::pallet::SettlementCursor::<T>::put(at);
		#[block]
		{
			Pallet::<T>::on_initialize(at);
		}
		assert_eq!(crate::pallet::Settlements::<T>::iter().count(), 0);
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
