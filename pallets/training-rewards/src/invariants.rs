//! The accounting and scheduling invariants, checked by `try_state`, after every unit test and
//! after every step of the property tests.

use crate::{pallet::*, types::*};
use alloc::collections::btree_map::BTreeMap;
use frame_support::{ensure, traits::fungible::InspectHold};
use sp_runtime::{traits::Zero, SaturatedConversion};

type Totals<A> = BTreeMap<A, u128>;

fn add<A: Ord>(totals: &mut Totals<A>, who: A, amount: u128) {
	let entry = totals.entry(who).or_default();
	*entry = entry.saturating_add(amount);
}

impl<T: Config> Pallet<T> {
	/// Check the invariants:
	/// * per job: both ledgers balance; `bonds.held` equals the bonds of its members (active
	///   and unbonding) and `contributors` the number of active ones; an ended job holds no
	///   escrow and no deposit; a running job has exactly one deadline entry, for its open
	///   round at its deadline, and an ended or waiting job none;
	/// * per account: the balance on hold for `JobEscrow`, `JobDeposit` and `ContributorBond`
	///   equals what the jobs say.
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		let mut escrow: Totals<T::AccountId> = BTreeMap::new();
		let mut deposits: Totals<T::AccountId> = BTreeMap::new();
		let mut bonds: Totals<T::AccountId> = BTreeMap::new();
		let mut verifier_bonds: Totals<T::AccountId> = BTreeMap::new();
		let mut challenge_bonds: Totals<T::AccountId> = BTreeMap::new();
		let mut running = 0usize;
		for (job_id, job) in Jobs::<T>::iter() {
			ensure!(job.escrow.is_balanced(), "escrow ledger does not balance");
			ensure!(job.bonds.is_balanced(), "bond ledger does not balance");
			ensure!(job.verifier_bonds.is_balanced(), "verifier bond ledger does not balance");
			ensure!(job.challenge_bonds.is_balanced(), "challenge bond ledger does not balance");
			if job.status.is_ended() {
				ensure!(
					job.escrow.held == job.escrow.reserved,
					"ended job holds escrow beyond its open settlements"
				);
				ensure!(job.deposit.is_zero(), "ended job still holds its deposit");
			}
			if job.status == JobStatus::Running {
				running = running.saturating_add(1);
				ensure!(
					Deadlines::<T>::get(job.round.deadline, job_id) == Some(job.round.index),
					"running job without its deadline entry"
				);
			}
			Self::check_members(job_id, &job, &mut bonds)?;
			Self::check_verifiers(job_id, &job, &mut verifier_bonds)?;
			Self::check_settlements(job_id, &job, &mut challenge_bonds)?;
			add(&mut escrow, job.sponsor.clone(), job.escrow.held.saturated_into());
			add(&mut deposits, job.sponsor.clone(), job.deposit.saturated_into());
		}
		ensure!(
			Deadlines::<T>::iter().count() == running,
			"deadline entries of closed rounds remain"
		);
		Self::check_holds(HoldReason::JobEscrow, &escrow, "escrow on hold differs")?;
		Self::check_holds(HoldReason::JobDeposit, &deposits, "deposit on hold differs")?;
		Self::check_holds(HoldReason::ContributorBond, &bonds, "bond on hold differs")?;
		Self::check_holds(HoldReason::VerifierBond, &verifier_bonds, "verifier bond differs")?;
		Self::check_holds(HoldReason::ChallengeBond, &challenge_bonds, "challenge bond differs")?;
		ensure!(
			SettlementQueue::<T>::iter().count() == Settlements::<T>::iter().count(),
			"settlement queue entries without a settlement"
		);
		Ok(())
	}

	/// `verifier_bonds.held` is the bonds of the job's verifiers, `verifiers` the number of
	/// active ones, and exactly the active ones are in the job's `VerifierSets` entry.
	fn check_verifiers(
		job_id: JobId,
		job: &JobOf<T>,
		bonds: &mut Totals<T::AccountId>,
	) -> Result<(), sp_runtime::TryRuntimeError> {
		let set = VerifierSets::<T>::get(job_id);
		let mut active = 0u32;
		let mut held = 0u128;
		for (who, v) in Verifiers::<T>::iter_prefix(job_id) {
			if v.unbonding_until.is_none() {
				active = active.saturating_add(1);
				ensure!(set.contains(&who), "active verifier missing from the set");
			}
			let bond: u128 = v.bond.saturated_into();
			held = held.saturating_add(bond);
			add(bonds, who, bond);
		}
		ensure!(active == job.verifiers && set.len() as u32 == active, "verifier count is off");
		ensure!(held == job.verifier_bonds.held.saturated_into::<u128>(), "verifier bonds off");
		Ok(())
	}

	/// The escrow reserved is the rewards of the job's open settlements, each settlement has
	/// its queue entry, and the challenge bonds on hold are those of challenged rounds.
	fn check_settlements(
		job_id: JobId,
		job: &JobOf<T>,
		challenge_bonds: &mut Totals<T::AccountId>,
	) -> Result<(), sp_runtime::TryRuntimeError> {
		let mut reserved = 0u128;
		let mut open = 0u32;
		let mut challenged = 0u128;
		for (round, s) in Settlements::<T>::iter_prefix(job_id) {
			open = open.saturating_add(1);
			reserved = reserved.saturating_add(s.reward.saturated_into());
			let until = match &s.phase {
				SettlementPhase::Scoring { until } | SettlementPhase::Challengeable { until } => {
					*until
				},
				SettlementPhase::Rescoring { until, challenger, bond } => {
					let bond: u128 = (*bond).saturated_into();
					challenged = challenged.saturating_add(bond);
					add(challenge_bonds, challenger.clone(), bond);
					*until
				},
			};
			ensure!(
				SettlementQueue::<T>::contains_key(until, (job_id, round)),
				"settlement without its queue entry"
			);
		}
		ensure!(open == job.open_settlements, "open settlement count is off");
		ensure!(reserved == job.escrow.reserved.saturated_into::<u128>(), "reserved escrow off");
		ensure!(
			challenged == job.challenge_bonds.held.saturated_into::<u128>(),
			"challenge bonds off"
		);
		Ok(())
	}

	fn check_members(
		job_id: JobId,
		job: &JobOf<T>,
		bonds: &mut Totals<T::AccountId>,
	) -> Result<(), sp_runtime::TryRuntimeError> {
		let mut active = 0u32;
		let mut held = 0u128;
		for (who, m) in Contributors::<T>::iter_prefix(job_id) {
			if m.is_active() {
				active = active.saturating_add(1);
			}
			let bond: u128 = m.bond.saturated_into();
			held = held.saturating_add(bond);
			add(bonds, who, bond);
		}
		ensure!(active == job.contributors, "contributor count is off");
		ensure!(held == job.bonds.held.saturated_into::<u128>(), "job bond total is off");
		Ok(())
	}

	fn check_holds(
		reason: HoldReason,
		expected: &Totals<T::AccountId>,
		message: &'static str,
	) -> Result<(), sp_runtime::TryRuntimeError> {
		let reason: T::RuntimeHoldReason = reason.into();
		for (who, amount) in expected.iter() {
			let on_hold: u128 = T::Currency::balance_on_hold(&reason, who).saturated_into();
			ensure!(on_hold == *amount, message);
		}
		Ok(())
	}
}
