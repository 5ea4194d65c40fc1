//! The model state a peer hashes and syncs, with its hash kept once computed.

use std::sync::OnceLock;

use trainchain_primitives::Hash32;

/// The flat model state (the parameters, then the outer optimiser's state) and its hash,
/// computed at most once per state: a state of tens of megabytes is hashed by
/// `prepare_round`, `finish_round`, a certificate's check and `publish_state`, and does not
/// change between them. Every way to change the values forgets the hash.
#[derive(Debug)]
pub(super) struct ModelState {
	values: Vec<f32>,
	hash: OnceLock<Hash32>,
}

impl ModelState {
	pub(super) fn new(values: Vec<f32>) -> Self {
		Self { values, hash: OnceLock::new() }
	}

	/// Replace the state.
	pub(super) fn set(&mut self, values: Vec<f32>) {
		*self = Self::new(values);
	}

	/// The values, to change in place (the hash is forgotten).
	pub(super) fn values_mut(&mut self) -> &mut [f32] {
		self.hash.take();
		&mut self.values
	}

	/// The hash of the current values: `hash_of(values)` the first time, then kept.
	pub(super) fn hash(&self, hash_of: impl FnOnce(&[f32]) -> Hash32) -> Hash32 {
		*self.hash.get_or_init(|| hash_of(&self.values))
	}
}

impl std::ops::Deref for ModelState {
	type Target = [f32];
	fn deref(&self) -> &[f32] {
		&self.values
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn the_hash_follows_every_change() {
		let sum = |v: &[f32]| {
			let mut h = [0u8; 32];
			h[0] = v.iter().sum::<f32>() as u8;
			h
		};
		let mut m = ModelState::new(vec![1.0, 2.0]);
		assert_eq!(m.hash(sum)[0], 3);
		assert_eq!(m.hash(|_| [9; 32])[0], 3, "kept while the values do not change");
		m.values_mut()[0] = 5.0;
		assert_eq!(m.hash(sum)[0], 7, "recomputed after a change in place");
		m.set(vec![4.0]);
		assert_eq!(m.hash(sum)[0], 4, "recomputed after a replacement");
	}
}
