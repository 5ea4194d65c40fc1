//! Events of a block and the outcome of one extrinsic in it.

use crate::{ChainError, Result};
use frame_system::Phase;
use sp_runtime::DispatchError;
use trainchain_runtime::{RuntimeError, RuntimeEvent};

/// An event record of this runtime.
pub type EventRecord = frame_system::EventRecord<RuntimeEvent, sp_core::H256>;

/// A readable name of a dispatch error: `Pallet.Variant` for module errors.
pub fn dispatch_error_name(err: &DispatchError) -> String {
	if let DispatchError::Module(_) = err {
		if let Some(e) = RuntimeError::from_dispatch_error(*err) {
			// `TrainingRewards(AlreadyJoined)` -> `TrainingRewards.AlreadyJoined`.
			let dbg = format!("{e:?}");
			return dbg.replacen('(', ".", 1).trim_end_matches(')').to_string();
		}
	}
	format!("{err:?}")
}

/// The events of extrinsic `index`; an error if it failed.
pub(crate) fn outcome_of(records: Vec<EventRecord>, index: u32) -> Result<Vec<RuntimeEvent>> {
	let mut events = Vec::new();
	for r in records {
		if r.phase != Phase::ApplyExtrinsic(index) {
			continue;
		}
		if let RuntimeEvent::System(frame_system::Event::ExtrinsicFailed {
			dispatch_error, ..
		}) = &r.event
		{
			return Err(ChainError::Dispatch(dispatch_error_name(dispatch_error)));
		}
		events.push(r.event);
	}
	Ok(events)
}
