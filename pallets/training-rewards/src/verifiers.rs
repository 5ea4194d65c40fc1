//! Verifiers of a job: approve (restricted jobs), join (bond), leave (unbond, still
//! slashable), withdraw; and picking a round's committee.

use crate::{pallet::*, types::*};
use alloc::vec::Vec;
use codec::Encode;
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{fungible::MutateHold, tokens::Precision},
	BoundedVec,
};
use sp_core::H256;
use sp_runtime::traits::{Saturating, Zero};

impl<T: Config> Pallet<T> {
	pub(crate) fn do_approve_verifier(
		sponsor: T::AccountId,
		job_id: JobId,
		who: T::AccountId,
	) -> DispatchResult {
		let job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		ensure!(job.sponsor == sponsor, Error::<T>::NotSponsor);
		let spec = job.spec.verification.as_ref().ok_or(Error::<T>::NotVerified)?;
		ensure!(spec.restricted, Error::<T>::VerifiersNotRestricted);
		ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
		ApprovedVerifiers::<T>::insert(job_id, &who, ());
		Self::deposit_event(Event::VerifierApproved { job_id, who });
		Ok(())
	}

	pub(crate) fn do_join_as_verifier(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let spec = job.spec.verification.clone().ok_or(Error::<T>::NotVerified)?;
		ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
		ensure!(!job.cancel_requested, Error::<T>::CancelPending);
		ensure!(!Verifiers::<T>::contains_key(job_id, &who), Error::<T>::AlreadyVerifier);
		ensure!(
			!spec.restricted || ApprovedVerifiers::<T>::contains_key(job_id, &who),
			Error::<T>::NotApproved
		);
		let mut set = VerifierSets::<T>::get(job_id);
		set.try_push(who.clone()).map_err(|_| Error::<T>::TooManyVerifiers)?;
		let bond = spec.verifier_bond;
		if !bond.is_zero() {
			T::Currency::hold(&HoldReason::VerifierBond.into(), &who, bond)
				.map_err(|_| Error::<T>::InsufficientBalance)?;
		}
		job.verifier_bonds.bond(bond).ok_or(Error::<T>::Overflow)?;
		job.verifiers = job.verifiers.checked_add(1).ok_or(Error::<T>::Overflow)?;
		VerifierSets::<T>::insert(job_id, set);
		let record = Verifier { bond, earned: Zero::zero(), unbonding_until: None };
		Verifiers::<T>::insert(job_id, &who, record);
		Self::deposit_event(Event::VerifierJoined { job_id, who, bond });
		let now = frame_system::Pallet::<T>::block_number();
		Self::start_if_ready(job_id, &mut job, now);
		Jobs::<T>::insert(job_id, job);
		Ok(())
	}

	pub(crate) fn do_leave_verifying(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let mut record = Verifiers::<T>::get(job_id, &who).ok_or(Error::<T>::NotVerifier)?;
		ensure!(record.unbonding_until.is_none(), Error::<T>::AlreadyLeaving);
		let until =
			frame_system::Pallet::<T>::block_number().saturating_add(T::UnbondingPeriod::get());
		record.unbonding_until = Some(until);
		Verifiers::<T>::insert(job_id, &who, record);
		VerifierSets::<T>::mutate(job_id, |set| set.retain(|v| *v != who));
		job.verifiers = job.verifiers.saturating_sub(1);
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::VerifierUnbonding { job_id, who, until });
		Ok(())
	}

	pub(crate) fn do_withdraw_verifier_bond(who: T::AccountId, job_id: JobId) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let record = Verifiers::<T>::get(job_id, &who).ok_or(Error::<T>::NotVerifier)?;
		let until = record.unbonding_until.ok_or(Error::<T>::NotLeaving)?;
		ensure!(frame_system::Pallet::<T>::block_number() >= until, Error::<T>::StillUnbonding);
		let released = if record.bond.is_zero() {
			Zero::zero()
		} else {
			T::Currency::release(
				&HoldReason::VerifierBond.into(),
				&who,
				record.bond,
				Precision::Exact,
			)
			.map_err(|_| Error::<T>::TransferFailed)?
		};
		job.verifier_bonds.release(released).ok_or(Error::<T>::Overflow)?;
		Verifiers::<T>::remove(job_id, &who);
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::VerifierLeft { job_id, who, bond: released });
		Ok(())
	}

	/// A job starts its first round once `min_contributors` contributors and, for a verified
	/// job, `verifiers_per_round` verifiers have joined.
	pub(crate) fn start_if_ready(
		job_id: JobId,
		job: &mut JobOf<T>,
		now: frame_system::pallet_prelude::BlockNumberFor<T>,
	) {
		let verifiers_needed = job.spec.verification.as_ref().map_or(0, |v| v.verifiers_per_round);
		if job.status == JobStatus::WaitingForContributors
			&& job.contributors >= job.spec.min_contributors
			&& job.verifiers >= verifiers_needed
		{
			job.status = JobStatus::Running;
			Self::start_round(job_id, job, 0, now);
		}
	}

	/// The seed of a settlement: `blake2_256(parent hash ‖ job ‖ round ‖ "settlement")`, drawn
	/// from the same source as the committee.
	pub(crate) fn settlement_seed(job_id: JobId, round: RoundIndex) -> H256 {
		let parent = frame_system::Pallet::<T>::parent_hash();
		H256((parent, job_id, round, b"settlement").using_encoded(sp_io::hashing::blake2_256))
	}

	/// Up to `size` of the job's active verifiers, not in `exclude`, ranked by
	/// `blake2_256(seed ‖ job ‖ round ‖ tag ‖ who)`. The seed is the parent block's hash: it
	/// is unknown while contributors commit (see the README for what a block author can bias).
	pub(crate) fn pick_committee(
		job_id: JobId,
		round: RoundIndex,
		size: u32,
		exclude: &[T::AccountId],
		tag: &[u8],
	) -> BoundedVec<T::AccountId, T::MaxCommittee> {
		let seed = frame_system::Pallet::<T>::parent_hash();
		let mut ranked: Vec<([u8; 32], T::AccountId)> = VerifierSets::<T>::get(job_id)
			.into_iter()
			.filter(|v| !exclude.contains(v))
			.map(|v| {
				let rank = (seed, job_id, round, tag, &v).using_encoded(sp_io::hashing::blake2_256);
				(rank, v)
			})
			.collect();
		ranked.sort_by_key(|r| r.0);
		let take = size.min(T::MaxCommittee::get()) as usize;
		let picked: Vec<T::AccountId> = ranked.into_iter().take(take).map(|(_, v)| v).collect();
		BoundedVec::truncate_from(picked)
	}
}
