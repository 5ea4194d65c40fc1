//! Rounds: commit, verify an aggregate (reveals, quorum, signatures), pay it, close the round.

use crate::{pallet::*, types::*};
use alloc::vec::Vec;
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision, Restriction},
	},
	BoundedVec,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::H256;
use sp_runtime::{
	traits::{Saturating, Verify, Zero},
	SaturatedConversion,
};
use trainchain_primitives::{AggregatePayload, IncludedShare};

pub(crate) type PayoutsOf<T> = BoundedVec<
	Payout<<T as frame_system::Config>::AccountId, BalanceOf<T>>,
	<T as Config>::MaxContributors,
>;

/// What paying a round moved out of the escrow.
struct RoundPayment<T: Config> {
	payouts: PayoutsOf<T>,
	paid: BalanceOf<T>,
	submitter_reward: BalanceOf<T>,
}

impl<T: Config> Pallet<T> {
	pub(crate) fn do_commit_update(
		who: T::AccountId,
		job_id: JobId,
		round: RoundIndex,
		commitment: H256,
		samples: u64,
	) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(job.status == JobStatus::Running, Error::<T>::JobNotRunning);
		ensure!(
			Contributors::<T>::get(job_id, &who).is_some_and(|m| m.is_active()),
			Error::<T>::NotContributor
		);
		ensure!(round == job.round.index, Error::<T>::WrongRound);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(now < job.round.commit_until, Error::<T>::CommitWindowClosed);
		ensure!(samples > 0 && samples <= job.spec.max_samples, Error::<T>::InvalidSamples);
		ensure!(
			Commitments::<T>::get(job_id, &who).is_none_or(|prev| prev.round != round),
			Error::<T>::AlreadyCommitted
		);
		// No index of who posted which commitment: `who` is hashed into every commitment, so
		// a copied one can never be opened by the copier, and it cannot block its owner.
		job.round.committed = job.round.committed.checked_add(1).ok_or(Error::<T>::Overflow)?;
		let at = frame_system::Pallet::<T>::block_number();
		Commitments::<T>::insert(job_id, &who, CommitRecord { round, at, commitment, samples });
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::UpdateCommitted { job_id, round, who, commitment, samples });
		Ok(())
	}

	/// The cheap checks of `submit_aggregate`, before any reveal or signature is verified.
	pub(crate) fn check_submission(
		sender: &T::AccountId,
		job_id: JobId,
		round: RoundIndex,
		aggregate: &AggregateOf<T>,
	) -> Result<JobOf<T>, DispatchError> {
		let job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(job.status == JobStatus::Running, Error::<T>::JobNotRunning);
		ensure!(round == job.round.index, Error::<T>::WrongRound);
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(now < job.round.deadline, Error::<T>::DeadlinePassed);
		ensure!(Contributors::<T>::contains_key(job_id, sender), Error::<T>::NotContributor);
		ensure!(
			now >= job.round.commit_until || job.round.committed >= job.contributors,
			Error::<T>::CommitWindowOpen
		);
		ensure!(!aggregate.contributions.is_empty(), Error::<T>::EmptyAggregate);
		ensure!(
			aggregate.contributions.iter().any(|c| c.who == aggregate.submitter),
			Error::<T>::SubmitterNotIncluded
		);
		Ok(job)
	}

	pub(crate) fn do_submit_aggregate(
		job_id: JobId,
		round: RoundIndex,
		mut job: JobOf<T>,
		aggregate: AggregateOf<T>,
	) -> DispatchResult {
		let shares = Self::verify_reveals(job_id, round, &aggregate)?;
		let included = shares.len() as u32;
		ensure!(included >= Self::quorum(&job), Error::<T>::QuorumNotMet);
		Self::verify_signatures(job_id, round, &aggregate, shares.clone())?;
		let now = frame_system::Pallet::<T>::block_number();
		let (payment, metric) = match job.spec.verification.clone() {
			Some(spec) => {
				// Verified job: the model stands; payouts wait for the verifiers.
				let included = shares
					.iter()
					.map(|s| Included {
						who: s.who.clone(),
						samples: s.samples,
						update_hash: H256(s.update_hash),
						committed_at: Commitments::<T>::get(job_id, &s.who).map_or(now, |c| c.at),
					})
					.collect();
				let submitter = aggregate.submitter.clone();
				Self::open_settlement(job_id, round, &mut job, &spec, submitter, included)?;
				let zero = Zero::zero();
				(
					RoundPayment { payouts: BoundedVec::new(), paid: zero, submitter_reward: zero },
					None,
				)
			},
			None => (
				Self::pay_round(job_id, round, &mut job, &aggregate.submitter, &shares)?,
				Self::median_metric(&aggregate),
			),
		};
		Self::record_result(
			job_id,
			round,
			RoundResult {
				outcome: RoundOutcome::Finalized,
				closed_at: now,
				committed: job.round.committed,
				model_hash: Some(aggregate.model_hash),
				metric,
				loss_micro: None,
				scores: BoundedVec::new(),
				verifier_payouts: BoundedVec::new(),
				submitter: Some(aggregate.submitter.clone()),
				submitter_reward: payment.submitter_reward,
				payouts: payment.payouts,
			},
		);
		job.finalized_rounds = job.finalized_rounds.saturating_add(1);
		job.consecutive_failures = 0;
		job.latest_model = aggregate.model_hash;
		Self::deposit_event(Event::RoundFinalized {
			job_id,
			round,
			model_hash: aggregate.model_hash,
			included,
			paid: payment.paid,
			submitter: aggregate.submitter,
			submitter_reward: payment.submitter_reward,
		});
		Self::unschedule_deadline(job_id, job.round.deadline);
		Self::after_round(job_id, &mut job, now);
		Jobs::<T>::insert(job_id, job);
		Ok(())
	}

	/// Each included contributor appears once, committed in this round, and its reveal opens
	/// its commitment. Returns the shares the payload lists, in aggregate order.
	fn verify_reveals(
		job_id: JobId,
		round: RoundIndex,
		aggregate: &AggregateOf<T>,
	) -> Result<Vec<IncludedShare<T::AccountId>>, DispatchError> {
		let mut shares = Vec::with_capacity(aggregate.contributions.len());
		for (i, c) in aggregate.contributions.iter().enumerate() {
			ensure!(
				!aggregate.contributions.iter().take(i).any(|p| p.who == c.who),
				Error::<T>::DuplicateContributor
			);
			let record = Commitments::<T>::get(job_id, &c.who)
				.filter(|r| r.round == round)
				.ok_or(Error::<T>::NotCommitted)?;
			let expected = trainchain_primitives::update_commitment(
				job_id,
				round,
				&c.who,
				&c.update_hash.0,
				&c.salt.0,
			);
			ensure!(record.commitment.0 == expected, Error::<T>::RevealMismatch);
			shares.push(IncludedShare {
				who: c.who.clone(),
				samples: record.samples,
				update_hash: c.update_hash.0,
			});
		}
		Ok(shares)
	}

	/// Every contribution's signature verifies over the payload and its own metric.
	fn verify_signatures(
		job_id: JobId,
		round: RoundIndex,
		aggregate: &AggregateOf<T>,
		shares: Vec<IncludedShare<T::AccountId>>,
	) -> DispatchResult {
		let payload = AggregatePayload::new(
			Self::genesis_hash(),
			job_id,
			round,
			aggregate.model_hash.0,
			aggregate.submitter.clone(),
			shares,
		);
		for c in aggregate.contributions.iter() {
			ensure!(
				c.signature.verify(payload.signing_bytes(c.metric).as_slice(), &c.who),
				Error::<T>::InvalidSignature
			);
		}
		Ok(())
	}

	/// Pay the round's reward: `SubmitterShare` to the named submitter, the rest pro rata to
	/// samples. A payout the currency refuses (below the existential deposit of an account
	/// that does not exist) is skipped and stays in escrow; it never reverts the round.
	fn pay_round(
		job_id: JobId,
		round: RoundIndex,
		job: &mut JobOf<T>,
		submitter: &T::AccountId,
		shares: &[IncludedShare<T::AccountId>],
	) -> Result<RoundPayment<T>, DispatchError> {
		let reward = job.reward_per_round.min(job.escrow.free());
		let submitter_share = T::SubmitterShare::get().mul_floor(reward);
		let distributable = reward.saturating_sub(submitter_share);
		let total_samples: u128 =
			shares.iter().fold(0u128, |acc, s| acc.saturating_add(u128::from(s.samples)));
		let mut payouts = PayoutsOf::<T>::new();
		let mut paid = BalanceOf::<T>::zero();
		for share in shares {
			let due = Self::pro_rata(distributable, share.samples, total_samples);
			let amount = Self::pay_from_escrow(job, &share.who, due);
			job.escrow.pay_contributors(amount).ok_or(Error::<T>::Overflow)?;
			paid = paid.saturating_add(amount);
			Contributors::<T>::mutate(job_id, &share.who, |m| {
				if let Some(m) = m {
					m.earned = m.earned.saturating_add(amount);
					m.rounds_included = m.rounds_included.saturating_add(1);
				}
			});
			payouts
				.try_push(Payout { who: share.who.clone(), samples: share.samples, amount })
				.map_err(|_| Error::<T>::TooManyContributors)?;
			Self::deposit_event(Event::ContributorPaid {
				job_id,
				round,
				who: share.who.clone(),
				amount,
			});
		}
		let submitter_reward = Self::pay_from_escrow(job, submitter, submitter_share);
		job.escrow.pay_submitter(submitter_reward).ok_or(Error::<T>::Overflow)?;
		Contributors::<T>::mutate(job_id, submitter, |m| {
			if let Some(m) = m {
				m.earned = m.earned.saturating_add(submitter_reward);
			}
		});
		Ok(RoundPayment { payouts, paid, submitter_reward })
	}

	/// Move `amount` from the sponsor's escrow hold to `to`; returns what moved (all or 0).
	pub(crate) fn pay_from_escrow(
		job: &JobOf<T>,
		to: &T::AccountId,
		amount: BalanceOf<T>,
	) -> BalanceOf<T> {
		if amount.is_zero() {
			return amount;
		}
		let moved = frame_support::storage::with_storage_layer(|| {
			T::Currency::transfer_on_hold(
				&HoldReason::JobEscrow.into(),
				&job.sponsor,
				to,
				amount,
				Precision::Exact,
				Restriction::Free,
				Fortitude::Polite,
			)
		});
		moved.unwrap_or_else(|e| {
			log::warn!(target: LOG_TARGET, "payout skipped, stays in escrow: {e:?}");
			Zero::zero()
		})
	}

	/// The lower median of the signers' metrics: no single signer sets it.
	fn median_metric(aggregate: &AggregateOf<T>) -> Option<u32> {
		let mut metrics: Vec<u32> =
			aggregate.contributions.iter().filter_map(|c| c.metric).collect();
		metrics.sort_unstable();
		let middle = metrics.len().checked_sub(1)? / 2;
		metrics.get(middle).copied()
	}

	/// Signers an aggregate needs: `max(ceil(2/3 × committed), min_contributors)`.
	pub fn quorum(job: &JobOf<T>) -> u32 {
		let committed = u64::from(job.round.committed);
		let two_thirds = committed.saturating_mul(2).saturating_add(2) / 3;
		(two_thirds as u32).max(job.spec.min_contributors)
	}

	pub(crate) fn pro_rata(amount: BalanceOf<T>, part: u64, total: u128) -> BalanceOf<T> {
		if total == 0 {
			return Zero::zero();
		}
		let amount: u128 = amount.saturated_into();
		sp_runtime::helpers_128bit::multiply_by_rational_with_rounding(
			amount,
			u128::from(part),
			total,
			sp_runtime::Rounding::Down,
		)
		.unwrap_or(0)
		.saturated_into()
	}

	/// Open round `index` of `job` at `now` and queue its deadline.
	pub(crate) fn start_round(
		job_id: JobId,
		job: &mut JobOf<T>,
		index: RoundIndex,
		now: BlockNumberFor<T>,
	) {
		let deadline = now.saturating_add(job.spec.round_length);
		let commit_until = now.saturating_add(job.spec.commit_window);
		Self::schedule_deadline(job_id, index, deadline);
		job.round = RoundState { index, started_at: now, commit_until, deadline, committed: 0 };
		Self::deposit_event(Event::RoundStarted { job_id, round: index, commit_until, deadline });
	}

	/// The open round closed (finalised or failed): end the job or open the next round.
	pub(crate) fn after_round(job_id: JobId, job: &mut JobOf<T>, now: BlockNumberFor<T>) {
		if job.cancel_requested {
			Self::end_job(job_id, job, JobStatus::Cancelled);
		} else if job.finalized_rounds >= job.rounds {
			Self::end_job(job_id, job, JobStatus::Completed);
		} else if job.consecutive_failures >= job.spec.max_failed_rounds {
			Self::end_job(job_id, job, JobStatus::Failed);
		} else {
			let next = job.round.index.saturating_add(1);
			Self::start_round(job_id, job, next, now);
		}
	}

	/// Deadline of `(job, round)` reached: fail the round if it is still open.
	pub(crate) fn expire_round(job_id: JobId, round: RoundIndex, now: BlockNumberFor<T>) {
		let Some(mut job) = Jobs::<T>::get(job_id) else {
			return;
		};
		if job.status != JobStatus::Running || job.round.index != round {
			return;
		}
		job.consecutive_failures = job.consecutive_failures.saturating_add(1);
		Self::record_result(
			job_id,
			round,
			RoundResult {
				outcome: RoundOutcome::Failed,
				closed_at: now,
				committed: job.round.committed,
				model_hash: None,
				metric: None,
				loss_micro: None,
				scores: BoundedVec::new(),
				verifier_payouts: BoundedVec::new(),
				submitter: None,
				submitter_reward: Zero::zero(),
				payouts: BoundedVec::new(),
			},
		);
		Self::deposit_event(Event::RoundFailed {
			job_id,
			round,
			consecutive_failures: job.consecutive_failures,
		});
		Self::after_round(job_id, &mut job, now);
		Jobs::<T>::insert(job_id, job);
	}

	fn record_result(job_id: JobId, round: RoundIndex, result: RoundResultOf<T>) {
		RoundResults::<T>::insert(job_id, round, result);
		if let Some(old) = round.checked_sub(T::HistoryDepth::get()) {
			RoundResults::<T>::remove(job_id, old);
		}
	}

	/// Hash of the genesis block, as signed into aggregate payloads.
	pub fn genesis_hash() -> [u8; 32] {
		let hash = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
		let bytes = hash.encode();
		let mut out = [0u8; 32];
		for (o, b) in out.iter_mut().zip(bytes.iter()) {
			*o = *b;
		}
		out
	}
}
