//! Contributors: join (bond), leave (unbond, still slashable), withdraw.

use crate::{pallet::*, types::*};
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::traits::{Saturating, Zero};

impl<T: Config> Pallet<T> {
	pub(crate) fn do_join_job(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
		ensure!(!job.cancel_requested, Error::<T>::CancelPending);
		ensure!(!Contributors::<T>::contains_key(job_id, &who), Error::<T>::AlreadyJoined);
		ensure!(job.contributors < job.spec.max_contributors, Error::<T>::JobFull);
		let bond = job.spec.contributor_bond;
		if !bond.is_zero() {
			T::Currency::hold(&HoldReason::ContributorBond.into(), &who, bond)
				.map_err(|_| Error::<T>::InsufficientBalance)?;
		}
		let now = frame_system::Pallet::<T>::block_number();
		job.contributors = job.contributors.checked_add(1).ok_or(Error::<T>::Overflow)?;
		job.bonds.bond(bond).ok_or(Error::<T>::Overflow)?;
		Contributors::<T>::insert(
			job_id,
			&who,
			Contributor {
				bond,
				joined_at: now,
				earned: Zero::zero(),
				rounds_included: 0,
				unbonding_until: None,
			},
		);
		Self::deposit_event(Event::ContributorJoined { job_id, who, bond });
		Self::start_if_ready(job_id, &mut job, now);
		Jobs::<T>::insert(job_id, job);
		Ok(())
	}

	pub(crate) fn do_leave_job(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let mut member = Contributors::<T>::get(job_id, &who).ok_or(Error::<T>::NotContributor)?;
		ensure!(member.is_active(), Error::<T>::AlreadyLeaving);
		let now = frame_system::Pallet::<T>::block_number();
		if job.status == JobStatus::Running {
			let committed_now =
				Commitments::<T>::get(job_id, &who).is_some_and(|c| c.round == job.round.index);
			let grace_end = job.round.commit_until.saturating_add(T::LeaveGrace::get());
			ensure!(!committed_now || now >= grace_end, Error::<T>::InOpenRound);
		}
		let until = now.saturating_add(T::UnbondingPeriod::get());
		member.unbonding_until = Some(until);
		Contributors::<T>::insert(job_id, &who, member);
		job.contributors = job.contributors.saturating_sub(1);
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::ContributorUnbonding { job_id, who, until });
		Ok(())
	}

	pub(crate) fn do_withdraw_bond(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let member = Contributors::<T>::get(job_id, &who).ok_or(Error::<T>::NotContributor)?;
		let until = member.unbonding_until.ok_or(Error::<T>::NotLeaving)?;
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(now >= until, Error::<T>::StillUnbonding);
		let released = T::Currency::release(
			&HoldReason::ContributorBond.into(),
			&who,
			member.bond,
			Precision::Exact,
		)
		.map_err(|_| Error::<T>::TransferFailed)?;
		job.bonds.release(released).ok_or(Error::<T>::Overflow)?;
		Contributors::<T>::remove(job_id, &who);
		Commitments::<T>::remove(job_id, &who);
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::ContributorLeft { job_id, who, bond: released });
		Ok(())
	}
}
