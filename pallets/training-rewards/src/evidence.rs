//! Equivocation: the only slashable offence. In the manner of `pallet-grandpa`'s
//! `report_equivocation`, the evidence is one proof argument: two statements signed by the
//! offender that *conflict* (`AggregatePayload::conflicts_with`: same chain, job, round and
//! included contributors, different models). Honest recovery never produces such a pair: a
//! re-run without a silent member has another included list, and a fallback submitter reuses
//! the same payload.

use crate::{pallet::*, types::*};
use codec::DecodeAll;
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision, Restriction},
	},
};
use sp_runtime::traits::{Saturating, Verify, Zero};
use trainchain_primitives::{AggregatePayload, SignedStatement, AGGREGATE_DOMAIN};

impl<T: Config> Pallet<T> {
	pub(crate) fn do_report_equivocation(
		reporter: T::AccountId,
		proof: EquivocationProofOf<T>,
	) -> DispatchResult {
		let EquivocationProof { job_id, round, offender, first, second } = proof;
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let a = Self::decode_statement(job_id, round, &offender, &first.statement)?;
		let b = Self::decode_statement(job_id, round, &offender, &second.statement)?;
		ensure!(a.conflicts_with(&b), Error::<T>::NotEquivocation);
		ensure!(
			first.signature.verify(first.statement.as_slice(), &offender)
				&& second.signature.verify(second.statement.as_slice(), &offender),
			Error::<T>::InvalidSignature
		);
		let member = Contributors::<T>::get(job_id, &offender).ok_or(Error::<T>::NotContributor)?;
		ensure!(
			!Offences::<T>::contains_key(job_id, (round, &offender)),
			Error::<T>::DuplicateOffence
		);

		let (reporter_reward, burned) =
			Self::slash_bond(HoldReason::ContributorBond, &offender, &reporter, member.bond)?;
		job.bonds
			.slash(member.bond, reporter_reward.saturating_add(burned))
			.ok_or(Error::<T>::Overflow)?;
		if member.is_active() {
			job.contributors = job.contributors.saturating_sub(1);
		}
		let committed_now = job.status == JobStatus::Running
			&& Commitments::<T>::get(job_id, &offender).is_some_and(|c| c.round == job.round.index);
		if committed_now {
			job.round.committed = job.round.committed.saturating_sub(1);
		}
		Contributors::<T>::remove(job_id, &offender);
		Commitments::<T>::remove(job_id, &offender);
		Offences::<T>::insert(job_id, (round, offender.clone()), ());
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::EquivocationSlashed {
			job_id,
			round,
			offender,
			reporter,
			reporter_reward,
			burned,
		});
		Ok(())
	}

	/// Decode one signed statement and check it is for this chain, job and round and names
	/// the offender among its included contributors.
	fn decode_statement(
		job_id: JobId,
		round: RoundIndex,
		offender: &T::AccountId,
		bytes: &[u8],
	) -> Result<AggregatePayload<T::AccountId>, DispatchError> {
		let mut input = bytes;
		let (payload, _metric) = SignedStatement::<T::AccountId>::decode_all(&mut input)
			.map_err(|_| Error::<T>::InvalidEvidence)?;
		ensure!(
			payload.domain == *AGGREGATE_DOMAIN
				&& payload.genesis_hash == Self::genesis_hash()
				&& payload.job_id == job_id
				&& payload.round == round
				&& payload.includes(offender),
			Error::<T>::InvalidEvidence
		);
		Ok(payload)
	}

	/// Take `bond` from the offender's hold: `ReporterShare` to the reporter (unless it
	/// reports itself), the rest burned. Returns (paid to the reporter, burned).
	/// Slash `bond` held from `offender` for `reason`: `ReporterShare` of it to `reporter`,
	/// the rest burned. Returns `(rewarded, burned)`.
	pub(crate) fn slash_bond(
		reason: HoldReason,
		offender: &T::AccountId,
		reporter: &T::AccountId,
		bond: BalanceOf<T>,
	) -> Result<(BalanceOf<T>, BalanceOf<T>), DispatchError> {
		let reason: T::RuntimeHoldReason = reason.into();
		let share = T::ReporterShare::get().mul_floor(bond);
		let rewarded = if share.is_zero() || reporter == offender {
			Zero::zero()
		} else {
			T::Currency::transfer_on_hold(
				&reason,
				offender,
				reporter,
				share,
				Precision::BestEffort,
				Restriction::Free,
				Fortitude::Force,
			)
			.map_err(|_| Error::<T>::TransferFailed)?
		};
		let burned = T::Currency::burn_held(
			&reason,
			offender,
			bond.saturating_sub(rewarded),
			Precision::BestEffort,
			Fortitude::Force,
		)
		.map_err(|_| Error::<T>::TransferFailed)?;
		Ok((rewarded, burned))
	}
}
