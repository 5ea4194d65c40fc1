//! Job life cycle: create, cancel, end.

use crate::{pallet::*, types::*};
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::traits::{CheckedMul, Saturating, Zero};

impl<T: Config> Pallet<T> {
	/// Check a spec against itself and the runtime's bounds.
	pub(crate) fn validate_spec(spec: &JobSpecOf<T>) -> DispatchResult {
		ensure!(spec.min_contributors > 0, Error::<T>::ZeroMinContributors);
		ensure!(spec.min_contributors <= spec.max_contributors, Error::<T>::MinAboveMax);
		ensure!(
			spec.max_contributors <= T::MaxContributors::get(),
			Error::<T>::TooManyContributors
		);
		ensure!(!spec.round_length.is_zero(), Error::<T>::ZeroRoundLength);
		ensure!(spec.round_length <= T::MaxRoundLength::get(), Error::<T>::RoundTooLong);
		ensure!(
			!spec.commit_window.is_zero() && spec.commit_window <= spec.round_length,
			Error::<T>::InvalidCommitWindow
		);
		ensure!(spec.max_samples > 0, Error::<T>::ZeroMaxSamples);
		ensure!(spec.max_failed_rounds > 0, Error::<T>::ZeroMaxFailedRounds);
		ensure!(
			spec.max_failed_rounds <= T::MaxFailedRounds::get(),
			Error::<T>::TooManyFailedRounds
		);
		if let Some(v) = &spec.verification {
			let k = v.verifiers_per_round;
			// A challenge needs 2k + 1 fresh verifiers within `MaxCommittee`.
			let fits = k > 0 && k.saturating_mul(2).saturating_add(1) <= T::MaxCommittee::get();
			ensure!(fits, Error::<T>::InvalidVerification);
			let windows =
				v.scoring_window.saturating_mul(2u32.into()).saturating_add(v.challenge_period);
			ensure!(
				!v.scoring_window.is_zero() && !v.challenge_period.is_zero(),
				Error::<T>::InvalidVerification
			);
			// A verifier stays slashable until the last challenge of its rounds is decided.
			ensure!(windows <= T::MaxRoundLength::get(), Error::<T>::InvalidVerification);
			ensure!(!v.challenge_bond.is_zero(), Error::<T>::InvalidVerification);
			if let Some(p) = &v.public_data {
				ensure!(
					p.shards >= 2
						&& p.recompute <= spec.max_contributors
						&& spec.hyperparameters.local_steps > 0,
					Error::<T>::InvalidPublicData
				);
			}
		}
		Ok(())
	}

	pub(crate) fn do_create_job(
		sponsor: T::AccountId,
		spec: JobSpecOf<T>,
		reward_per_round: BalanceOf<T>,
		rounds: u32,
	) -> DispatchResult {
		Self::validate_spec(&spec)?;
		ensure!(rounds > 0, Error::<T>::ZeroRounds);
		ensure!(rounds <= T::MaxRounds::get(), Error::<T>::TooManyRounds);
		ensure!(!reward_per_round.is_zero(), Error::<T>::ZeroReward);
		let escrow = reward_per_round
			.checked_mul(&BalanceOf::<T>::from(rounds))
			.ok_or(Error::<T>::RewardOverflow)?;
		let job_id = NextJobId::<T>::get();
		let next_id = job_id.checked_add(1).ok_or(Error::<T>::Overflow)?;
		let deposit = T::JobDeposit::get();
		T::Currency::hold(&HoldReason::JobEscrow.into(), &sponsor, escrow)
			.map_err(|_| Error::<T>::InsufficientBalance)?;
		if !deposit.is_zero() {
			T::Currency::hold(&HoldReason::JobDeposit.into(), &sponsor, deposit)
				.map_err(|_| Error::<T>::InsufficientBalance)?;
		}
		let job = Job {
			sponsor: sponsor.clone(),
			latest_model: spec.model_commitment,
			spec,
			reward_per_round,
			rounds,
			status: JobStatus::WaitingForContributors,
			created_at: frame_system::Pallet::<T>::block_number(),
			contributors: 0,
			round: RoundState::default(),
			finalized_rounds: 0,
			consecutive_failures: 0,
			escrow: EscrowLedger::deposit(escrow),
			bonds: BondLedger::default(),
			deposit,
			cancel_requested: false,
			verifiers: 0,
			verifier_bonds: BondLedger::default(),
			challenge_bonds: BondLedger::default(),
			open_settlements: 0,
		};
		Jobs::<T>::insert(job_id, job);
		NextJobId::<T>::put(next_id);
		Self::deposit_event(Event::JobCreated {
			job_id,
			sponsor,
			reward_per_round,
			rounds,
			escrow,
		});
		Ok(())
	}

	pub(crate) fn do_cancel_job(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(job.sponsor == who, Error::<T>::NotSponsor);
		ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
		ensure!(!job.cancel_requested, Error::<T>::CancelPending);
		if job.status == JobStatus::Running && job.round.committed > 0 {
			// Committed work in the open round: keep its reward until the round closes.
			let keep = job.reward_per_round.min(job.escrow.free());
			let refund = job.escrow.free().saturating_sub(keep);
			let refunded = Self::release_escrow(&mut job, refund)?;
			job.cancel_requested = true;
			Jobs::<T>::insert(job_id, job);
			Self::deposit_event(Event::CancellationScheduled { job_id, refunded });
			return Ok(());
		}
		if job.status == JobStatus::Running {
			Self::unschedule_deadline(job_id, job.round.deadline);
		}
		Self::end_job(job_id, &mut job, JobStatus::Cancelled);
		Jobs::<T>::insert(job_id, job);
		Ok(())
	}

	/// End `job` with `status`: release the unspent escrow (all but what rounds in
	/// verification reserve; their settlements pay or refund it later) and the storage deposit
	/// to the sponsor and emit the matching event. Releasing a hold of the pallet's own
	/// accounting never fails; if it ever did, it is logged and `do_try_state` reports the
	/// difference.
	pub(crate) fn end_job(job_id: JobId, job: &mut JobOf<T>, status: JobStatus) {
		let unspent = job.escrow.free();
		let refunded = Self::release_escrow(job, unspent).unwrap_or_else(|e| {
			log::error!(target: LOG_TARGET, "escrow release of job {job_id} failed: {e:?}");
			Zero::zero()
		});
		if !job.deposit.is_zero() {
			let released = T::Currency::release(
				&HoldReason::JobDeposit.into(),
				&job.sponsor,
				job.deposit,
				Precision::BestEffort,
			)
			.unwrap_or_else(|_| Zero::zero());
			job.deposit = job.deposit.saturating_sub(released);
		}
		job.status = status;
		let event = match status {
			JobStatus::Completed => Event::JobCompleted { job_id, refunded },
			JobStatus::Failed => Event::JobFailed { job_id, refunded },
			_ => Event::JobCancelled { job_id, refunded },
		};
		Self::deposit_event(event);
	}

	/// Release `amount` of the job's escrow hold to its sponsor and record it as refunded.
	pub(crate) fn release_escrow(
		job: &mut JobOf<T>,
		amount: BalanceOf<T>,
	) -> Result<BalanceOf<T>, DispatchError> {
		if amount.is_zero() {
			return Ok(amount);
		}
		let released = T::Currency::release(
			&HoldReason::JobEscrow.into(),
			&job.sponsor,
			amount,
			Precision::BestEffort,
		)
		.map_err(|_| Error::<T>::TransferFailed)?;
		job.escrow.refund(released).ok_or(Error::<T>::Overflow)?;
		Ok(released)
	}

	pub(crate) fn do_reap_job(job_id: JobId) -> DispatchResult {
		let job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(job.status.is_ended(), Error::<T>::JobNotEnded);
		ensure!(job.open_settlements == 0, Error::<T>::SettlementsOpen);
		ensure!(Contributors::<T>::iter_prefix(job_id).next().is_none(), Error::<T>::MembersRemain);
		ensure!(Verifiers::<T>::iter_prefix(job_id).next().is_none(), Error::<T>::MembersRemain);
		// At most `HistoryDepth` results remain; commitments left with their members. Offence
		// records are cleared up to `MaxContributors` (the weight pays for that many); more
		// would need that many slashed bonds in one job.
		let _ = RoundResults::<T>::clear_prefix(job_id, T::HistoryDepth::get(), None);
		let _ = Offences::<T>::clear_prefix(job_id, T::MaxContributors::get(), None);
		let _ = ApprovedVerifiers::<T>::clear_prefix(job_id, T::MaxVerifiers::get(), None);
		VerifierSets::<T>::remove(job_id);
		Jobs::<T>::remove(job_id);
		Self::deposit_event(Event::JobReaped { job_id });
		Ok(())
	}
}
