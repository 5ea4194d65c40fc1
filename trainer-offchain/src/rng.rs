//! A tiny, portable, seeded PRNG (splitmix64).
//!
//! Everything that must be identical on every machine (initial weights, shuffles,
//! shards, synthetic data) draws from this generator and uses only exact IEEE
//! operations (no `ln`/`cos` from the platform's libm), so the same seed gives the
//! same bits everywhere.

/// splitmix64 generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
	state: u64,
}

impl SplitMix64 {
	/// A generator seeded with `seed`.
	pub fn new(seed: u64) -> Self {
		Self { state: seed }
	}

	/// A generator for a sub-stream: `derive(seed, &[a, b])` is independent of
	/// `derive(seed, &[a, c])` for all practical purposes.
	pub fn derive(seed: u64, path: &[u64]) -> Self {
		let mut s = Self::new(seed);
		let mut mixed = s.next_u64();
		for p in path {
			s = Self::new(mixed ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
			mixed = s.next_u64();
		}
		Self::new(mixed)
	}

	/// Next 64 random bits.
	pub fn next_u64(&mut self) -> u64 {
		self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
		let mut z = self.state;
		z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
		z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
		z ^ (z >> 31)
	}

	/// Uniform in `[0, 1)` with 24 bits of precision (exactly representable in f32).
	pub fn next_f32(&mut self) -> f32 {
		((self.next_u64() >> 40) as f32) * (1.0 / 16_777_216.0)
	}

	/// Uniform in `[-bound, bound)`.
	pub fn uniform(&mut self, bound: f32) -> f32 {
		(self.next_f32() * 2.0 - 1.0) * bound
	}

	/// Approximately standard normal (Irwin–Hall: sum of 12 uniforms minus 6).
	/// Uses only additions, so it is bit-identical on every machine.
	pub fn normal(&mut self) -> f32 {
		let mut s = 0.0f32;
		for _ in 0..12 {
			s += self.next_f32();
		}
		s - 6.0
	}

	/// Uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
	pub fn below(&mut self, n: usize) -> usize {
		if n == 0 {
			return 0;
		}
		// Lemire's multiply-shift; the tiny bias is irrelevant here and deterministic.
		((u128::from(self.next_u64()) * n as u128) >> 64) as usize
	}

	/// Fisher–Yates shuffle.
	pub fn shuffle<T>(&mut self, xs: &mut [T]) {
		let mut i = xs.len();
		while i > 1 {
			let j = self.below(i);
			i -= 1;
			xs.swap(i, j);
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn known_first_values() {
		// Reference values of splitmix64 with seed 0.
		let mut r = SplitMix64::new(0);
		assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
		assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
	}

	#[test]
	fn shuffle_is_permutation() {
		let mut v: Vec<usize> = (0..100).collect();
		SplitMix64::new(3).shuffle(&mut v);
		let mut s = v.clone();
		s.sort();
		assert_eq!(s, (0..100).collect::<Vec<_>>());
		assert_ne!(v, s);
	}
}
