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
		let mut running = 0usize;
		for (job_id, job) in Jobs::<T>::iter() {
			ensure!(job.escrow.is_balanced(), "escrow ledger does not balance");
			ensure!(job.bonds.is_balanced(), "bond ledger does not balance");
			if job.status.is_ended() {
				ensure!(job.escrow.held.is_zero(), "ended job still holds escrow");
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
