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
		let from = DeadlineCursor::<T>::get().unwrap_or(now);
		let walk = walk_due(
			from,
			now,
			T::MaxDeadlinesPerBlock::get(),
			|at, n| Deadlines::<T>::iter_prefix(at).take(n).collect(),
			|at, (job_id, round)| {
				Deadlines::<T>::remove(at, job_id);
				Self::expire_round(job_id, round, now);
			},
		);
		DeadlineCursor::<T>::put(walk.cursor);
		T::WeightInfo::on_initialize_deadlines(walk.handled).saturating_add(
			T::DbWeight::get().reads_writes(u64::from(walk.scanned).saturating_add(1), 1),
		)
	}
}

/// Where a walk over a block-keyed queue stopped.
pub(crate) struct Walk<B> {
	/// The first block not fully processed.
	pub cursor: B,
	/// Blocks scanned.
	pub scanned: u32,
	/// Entries handled.
	pub handled: u32,
}

/// Walk a queue keyed by block from `from` up to `now`: at most `max` blocks scanned and `max`
/// entries handled, oldest first. `due(at, n)` lists up to `n` entries of block `at`;
/// `handle(at, entry)` removes and processes one. A block with entries left over becomes the
/// cursor, so the rest is carried over to the next block. Used by the deadline and the
/// settlement queues.
pub(crate) fn walk_due<B, K>(
	from: B,
	now: B,
	max: u32,
	mut due: impl FnMut(B, usize) -> Vec<K>,
	mut handle: impl FnMut(B, K),
) -> Walk<B>
where
	B: Copy + PartialOrd + Saturating + One,
{
	let mut budget = max as usize;
	let mut walk = Walk { cursor: from, scanned: 0, handled: 0 };
	while walk.cursor <= now && walk.scanned < max {
		walk.scanned = walk.scanned.saturating_add(1);
		let entries = due(walk.cursor, budget.saturating_add(1));
		let more = entries.len() > budget;
		for entry in entries.into_iter().take(budget) {
			handle(walk.cursor, entry);
			walk.handled = walk.handled.saturating_add(1);
			budget = budget.saturating_sub(1);
		}
		if more {
			break;
		}
		walk.cursor = walk.cursor.saturating_add(One::one());
	}
	walk
}

impl<T: Config> Pallet<T> {}
