//! blake2-256 without building the bytes first: of several slices in a row, and of a value's
//! SCALE encoding. The results equal `sp_crypto_hashing::blake2_256` of the concatenation or of
//! the encoding; they only skip the copy (on the exchange's path every byte of an update is
//! hashed, and a copy costs as much as the hash).

use codec::Encode;

/// A blake2-256 state that SCALE can encode into.
pub struct Blake2Writer(blake2b_simd::State);

impl Default for Blake2Writer {
	fn default() -> Self {
		Self(blake2_256_state())
	}
}

impl Blake2Writer {
	/// The hash of everything written.
	pub fn finish(&self) -> [u8; 32] {
		finish(&self.0)
	}
}

fn blake2_256_state() -> blake2b_simd::State {
	blake2b_simd::Params::new().hash_length(32).to_state()
}

fn finish(state: &blake2b_simd::State) -> [u8; 32] {
	let mut out = [0u8; 32];
	out.copy_from_slice(state.finalize().as_bytes());
	out
}

/// blake2-256 of `prefix ‖ input` for each of `inputs`, hashed side by side: blake2b's SIMD
/// code compresses four independent inputs at once, about twice the throughput of hashing
/// them one after another.
pub fn blake2_256_prefixed_many(prefix: &[u8], inputs: &[Vec<u8>]) -> Vec<[u8; 32]> {
	let mut states: Vec<blake2b_simd::State> = inputs
		.iter()
		.map(|_| {
			let mut s = blake2_256_state();
			s.update(prefix);
			s
		})
		.collect();
	blake2b_simd::many::update_many(states.iter_mut().zip(inputs));
	states.iter().map(finish).collect()
}

impl codec::Output for Blake2Writer {
	fn write(&mut self, bytes: &[u8]) {
		self.0.update(bytes);
	}
}

/// blake2-256 of `parts` concatenated.
pub fn blake2_256_concat(parts: &[&[u8]]) -> [u8; 32] {
	let mut w = Blake2Writer::default();
	for p in parts {
		codec::Output::write(&mut w, p);
	}
	w.finish()
}

/// blake2-256 of `value`'s SCALE encoding.
pub fn blake2_256_scale<T: Encode + ?Sized>(value: &T) -> [u8; 32] {
	let mut w = Blake2Writer::default();
	value.encode_to(&mut w);
	w.finish()
}

#[cfg(test)]
mod tests {
	use super::*;
	use sp_crypto_hashing::blake2_256;

	#[test]
	fn equal_to_hashing_the_bytes() {
		let blocks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
		assert_eq!(blake2_256_scale(&blocks), blake2_256(&blocks.encode()));
		let (a, b) = (vec![0u8], vec![7u8; 300]);
		assert_eq!(blake2_256_concat(&[&a, &b]), blake2_256(&[a.clone(), b.clone()].concat()));
		assert_eq!(blake2_256_concat(&[]), blake2_256(&[]));
	}
}
