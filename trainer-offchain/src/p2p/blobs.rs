//! A small content-addressed store of what a peer serves by hash (`GetBlob`): its own
//! compressed update of recent rounds (published only after the round's exchange, so nobody
//! can copy it into the same round) and its recent model states. Verifiers fetch both by the
//! hashes the chain holds and check them, so who serves a blob does not matter.

use std::collections::VecDeque;
use std::sync::Arc;
use trainchain_primitives::Hash32;

/// Blobs kept per peer: a few rounds of updates and states.
pub const MAX_BLOBS: usize = 32;

/// Bounded, oldest-out store of blobs by hash.
#[derive(Default)]
pub struct BlobStore {
	entries: VecDeque<(Hash32, Arc<Vec<u8>>)>,
}

impl BlobStore {
	/// Keep `bytes` under `hash` (replacing an older copy), dropping the oldest beyond
	/// [`MAX_BLOBS`].
	pub fn put(&mut self, hash: Hash32, bytes: Arc<Vec<u8>>) {
		self.entries.retain(|(h, _)| *h != hash);
		self.entries.push_back((hash, bytes));
		while self.entries.len() > MAX_BLOBS {
			self.entries.pop_front();
		}
	}

	/// The blob stored under `hash`.
	pub fn get(&self, hash: &Hash32) -> Option<Arc<Vec<u8>>> {
		self.entries.iter().find(|(h, _)| h == hash).map(|(_, b)| b.clone())
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn keeps_the_newest_blobs() {
		let mut s = BlobStore::default();
		for i in 0..(MAX_BLOBS + 3) {
			s.put([i as u8; 32], Arc::new(vec![i as u8]));
		}
		assert!(s.get(&[0; 32]).is_none());
		assert_eq!(
			s.get(&[(MAX_BLOBS + 2) as u8; 32]).unwrap().as_slice(),
			&[(MAX_BLOBS + 2) as u8]
		);
		s.put([5; 32], Arc::new(vec![9]));
		assert_eq!(s.get(&[5; 32]).unwrap().as_slice(), &[9]);
	}
}
