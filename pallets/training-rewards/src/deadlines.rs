//! The deadline queue: one `(deadline, job) -> round` entry per open round, removed when the
//! round closes. Scheduling always succeeds; `on_initialize` expires at most
//! `MaxDeadlinesPerBlock` rounds per block, oldest first, and carries the rest over with a
//! cursor. A round whose expiry is processed late is no worse off: every call checks the
//! round's own `commit_until` and `deadline`, and the next round starts from the block the
//! expiry ran in.

use crate::{pallet::*, types::*, weights::WeightInfo};
use alloc::vec::Vec;
use frame_support::pallet_prelude::*;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::{One, Saturating};

impl<T: Config> Pallet<T> {
	pub(crate) fn schedule_deadline(job_id: JobId, round: RoundIndex, at: BlockNumberFor<T>) {
		Deadlines::<T>::insert(at, job_id, round);
	}

	pub(crate) fn unschedule_deadline(job_id: JobId, at: BlockNumberFor<T>) {
		Deadlines::<T>::remove(at, job_id);
	}

	/// Expire due rounds: at most `MaxDeadlinesPerBlock` of them, scanning at most as many
	/// blocks from the cursor. Returns the weight used.
	pub(crate) fn process_deadlines(now: BlockNumberFor<T>) -> Weight {
		let max = T::MaxDeadlinesPerBlock::get();
		let mut budget = max as usize;
		let mut at = DeadlineCursor::<T>::get().unwrap_or(now);
		let mut scanned = 0u32;
		let mut expired = 0u32;
		while at <= now && scanned < max {
			scanned = scanned.saturating_add(1);
			let due: Vec<(JobId, RoundIndex)> =
				Deadlines::<T>::iter_prefix(at).take(budget.saturating_add(1)).collect();
			let more = due.len() > budget;
			for (job_id, round) in due.into_iter().take(budget) {
				Deadlines::<T>::remove(at, job_id);
				Self::expire_round(job_id, round, now);
				expired = expired.saturating_add(1);
				budget = budget.saturating_sub(1);
			}
			if more {
				break;
			}
			at = at.saturating_add(One::one());
		}
		DeadlineCursor::<T>::put(at);
		T::WeightInfo::on_initialize_deadlines(expired).saturating_add(
			T::DbWeight::get().reads_writes(u64::from(scanned).saturating_add(1), 1),
		)
	}
}
