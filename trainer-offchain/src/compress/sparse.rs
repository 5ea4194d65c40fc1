//! Sparse few-bit blocks (`sparse:DENSITY:BITS`): the `k = ⌈DENSITY·len⌉` largest-magnitude
//! values of a block, each sent as a bit-packed index and a `BITS`-bit code, in the spirit of
//! SparseLoCo's top-k with 2-bit values. With error feedback (the caller's
//! [`super::ErrorFeedback`]) what a block drops is carried into the next round.
//!
//! # Layout of one block of `len` values
//!
//! | field | bytes |
//! | --- | --- |
//! | `count` (values kept) | 2 (u16 LE) if `len ≤ 65 536`, else 4 (u32 LE) |
//! | `bits` (1..=8) | 1 |
//! | `scale` (f32 LE): the largest kept magnitude | 4 |
//! | `count` indices, strictly increasing, `w = ⌈log2 len⌉` bits each | |
//! | `count` codes, `bits` bits each: sign in the top bit, level `q − 1` below | |
//!
//! Bits are packed least significant first; the last byte's unused bits are zero, so every
//! block has exactly one encoding. A code decodes to `± q / L · scale` with `L = 2^(bits−1)`
//! levels per sign (`bits = 2`: `±scale/2` or `±scale`). A non-finite input value is kept
//! first and makes `scale` NaN, so the receiver's finiteness check refuses the update.
//!
//! The block carries its own `count` and `bits`, so it decodes without the density. Every
//! step is integer arithmetic or a single IEEE operation, so every peer gets the same bits.

use anyhow::{bail, ensure, Result};

/// Values kept of a block of `len` at `density`: `⌈density·len⌉`, at least one.
pub fn kept(len: usize, density: f32) -> usize {
	((len as f64 * f64::from(density)).ceil() as usize).clamp(1, len.max(1))
}

/// Bits of one index into a block of `len` values.
fn index_width(len: usize) -> u32 {
	(usize::BITS - len.saturating_sub(1).leading_zeros()).max(1)
}

fn count_width(len: usize) -> usize {
	if len > 1 << 16 {
		4
	} else {
		2
	}
}

/// Header bytes of a block of `len` values.
pub fn header_len(len: usize) -> usize {
	count_width(len) + 1 + 4
}

/// Encoded size of a block of `len` values at `density` and `bits`.
pub fn block_bytes(len: usize, density: f32, bits: u8) -> usize {
	let k = kept(len, density);
	header_len(len) + (k * (index_width(len) as usize + usize::from(bits))).div_ceil(8)
}

/// The `(density, bits)` a block of `len` values was encoded with, read from its header
/// (a density that keeps the same count in blocks of this length); `None` if malformed.
pub fn params_of(block: &[u8], len: usize) -> Option<(f32, u8)> {
	let cw = count_width(len);
	let count = match block {
		[a, b, ..] if cw == 2 => usize::from(u16::from_le_bytes([*a, *b])),
		[a, b, c, d, ..] if cw == 4 => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
		_ => return None,
	};
	let bits = *block.get(cw)?;
	let density = ((count.max(1) as f64 - 0.5) / len.max(1) as f64) as f32;
	(len > 0 && (1..=8).contains(&bits) && density > 0.0).then_some((density, bits))
}

struct BitWriter {
	out: Vec<u8>,
	acc: u64,
	used: u32,
}

impl BitWriter {
	fn put(&mut self, value: u32, width: u32) {
		self.acc |= u64::from(value) << self.used;
		self.used += width;
		while self.used >= 8 {
			self.out.push(self.acc as u8);
			self.acc >>= 8;
			self.used -= 8;
		}
	}

	fn finish(mut self) -> Vec<u8> {
		if self.used > 0 {
			self.out.push(self.acc as u8);
		}
		self.out
	}
}

struct BitReader<'a> {
	bytes: &'a [u8],
	pos: usize,
	acc: u64,
	have: u32,
}

impl BitReader<'_> {
	fn take(&mut self, width: u32) -> Result<u32> {
		while self.have < width {
			let Some(b) = self.bytes.get(self.pos) else { bail!("sparse block: bits run out") };
			self.acc |= u64::from(*b) << self.have;
			self.pos += 1;
			self.have += 8;
		}
		let v = (self.acc & ((1u64 << width) - 1)) as u32;
		self.acc >>= width;
		self.have -= width;
		Ok(v)
	}
}

/// Magnitude used to rank values: NaN ranks above everything.
fn rank(x: f32) -> f32 {
	if x.is_nan() {
		f32::INFINITY
	} else {
		x.abs()
	}
}

/// The indices of the `k` largest magnitudes of `xs`, ascending (ties: lower index first).
fn top_indices(xs: &[f32], k: usize) -> Vec<u32> {
	let mut idx: Vec<u32> = (0..xs.len() as u32).collect();
	let key = |i: &u32| rank(xs.get(*i as usize).copied().unwrap_or(0.0));
	let order = |a: &u32, b: &u32| key(b).total_cmp(&key(a)).then(a.cmp(b));
	if k < idx.len() {
		idx.select_nth_unstable_by(k, order);
		idx.truncate(k);
	}
	idx.sort_unstable();
	idx
}

/// Encode one block.
pub fn encode(xs: &[f32], density: f32, bits: u8) -> Vec<u8> {
	let bits = bits.clamp(1, 8);
	let len = xs.len();
	let idx = if len == 0 { Vec::new() } else { top_indices(xs, kept(len, density)) };
	let value = |i: &u32| xs.get(*i as usize).copied().unwrap_or(0.0);
	let scale = if idx.iter().any(|i| !value(i).is_finite()) {
		f32::NAN
	} else {
		idx.iter().map(value).fold(0f32, |m, x| m.max(x.abs()))
	};
	// An all-zero block keeps nothing.
	let idx = if scale == 0.0 { Vec::new() } else { idx };
	let mut w =
		BitWriter { out: Vec::with_capacity(block_bytes(len, density, bits)), acc: 0, used: 0 };
	if count_width(len) == 2 {
		w.out.extend_from_slice(&(idx.len() as u16).to_le_bytes());
	} else {
		w.out.extend_from_slice(&(idx.len() as u32).to_le_bytes());
	}
	w.out.push(bits);
	w.out.extend_from_slice(&scale.to_le_bytes());
	let iw = index_width(len);
	for i in &idx {
		w.put(*i, iw);
	}
	let levels = 1u32 << (bits - 1);
	for i in &idx {
		let x = value(i);
		let q = if scale.is_finite() {
			((x.abs() / scale) * levels as f32).round().clamp(1.0, levels as f32) as u32
		} else {
			levels
		};
		let sign = u32::from(x.is_sign_negative());
		w.put((sign << (bits - 1)) | (q - 1), u32::from(bits));
	}
	w.finish()
}

/// Decode one block of `len` values. Errors on any malformed byte string (never panics):
/// wrong length, non-canonical padding, indices not strictly increasing or out of range.
pub fn decode(bytes: &[u8], len: usize) -> Result<Vec<f32>> {
	let h = header_len(len);
	ensure!(bytes.len() >= h, "sparse block: {} bytes, header needs {h}", bytes.len());
	let (head, body) = bytes.split_at(h);
	let cw = count_width(len);
	let count = match head {
		[a, b, ..] if cw == 2 => usize::from(u16::from_le_bytes([*a, *b])),
		[a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
		_ => bail!("sparse block: short header"),
	};
	let bits = head.get(cw).copied().unwrap_or(0);
	ensure!((1..=8).contains(&bits), "sparse block: {bits} bits per value");
	let s = head.get(cw + 1..cw + 5).unwrap_or_default();
	let scale = f32::from_le_bytes(s.try_into()?);
	ensure!(count <= len, "sparse block: {count} values kept of {len}");
	let iw = index_width(len);
	let total_bits = count * (iw as usize + usize::from(bits));
	ensure!(
		body.len() == total_bits.div_ceil(8),
		"sparse block: {} body bytes for {count} values",
		body.len()
	);
	let mut r = BitReader { bytes: body, pos: 0, acc: 0, have: 0 };
	let mut idx = Vec::with_capacity(count);
	for _ in 0..count {
		let i = r.take(iw)? as usize;
		ensure!(i < len, "sparse block: index {i} out of range {len}");
		ensure!(idx.last().is_none_or(|l| i > *l), "sparse block: indices not increasing");
		idx.push(i);
	}
	let levels = 1u32 << (bits - 1);
	let mut out = vec![0f32; len];
	for i in idx {
		let code = r.take(u32::from(bits))?;
		let q = (code & (levels - 1)) + 1;
		let v = q as f32 / levels as f32 * scale;
		if let Some(slot) = out.get_mut(i) {
			*slot = if code >> (bits - 1) == 1 { -v } else { v };
		}
	}
	ensure!(r.acc == 0, "sparse block: padding bits are not zero");
	Ok(out)
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;
	use crate::compress::tests::vec;

	#[test]
	fn keeps_the_largest_values_on_few_levels() {
		let mut xs = vec![0.01f32; 1000];
		xs[3] = -4.0;
		xs[500] = 2.1;
		xs[999] = 3.9;
		let b = encode(&xs, 0.0025, 2);
		assert_eq!(b.len(), block_bytes(1000, 0.0025, 2));
		let back = decode(&b, 1000).unwrap();
		// Levels ±2 and ±4 (scale 4, two levels per sign).
		assert_eq!(back[3], -4.0);
		assert_eq!(back[500], 2.0);
		assert_eq!(back[999], 4.0);
		assert_eq!(back.iter().filter(|x| **x != 0.0).count(), 3);
	}

	#[test]
	fn encoding_is_deterministic_and_canonical() {
		let xs = vec(4096);
		for bits in 1..=8u8 {
			let a = encode(&xs, 0.0156, bits);
			assert_eq!(a, encode(&xs, 0.0156, bits));
			let back = decode(&a, xs.len()).unwrap();
			assert_eq!(encode(&back, 0.0156, bits), a, "bits {bits}");
			// More bits, smaller error on the kept values.
			let kept_err = back
				.iter()
				.zip(&xs)
				.filter(|(b, _)| **b != 0.0)
				.map(|(b, x)| (b - x).abs())
				.fold(0f32, f32::max);
			assert!(kept_err <= 0.5 / (1 << (bits - 1)) as f32 + 1e-6, "bits {bits}: {kept_err}");
		}
	}

	#[test]
	fn malformed_blocks_are_errors() {
		let xs = vec(2000);
		let b = encode(&xs, 0.02, 2);
		assert!(decode(&b[..b.len() - 1], 2000).is_err());
		let mut padded = b.clone();
		padded.push(0);
		assert!(decode(&padded, 2000).is_err());
		let mut bad_bits = b.clone();
		bad_bits[2] = 9;
		assert!(decode(&bad_bits, 2000).is_err());
		let mut too_many = b.clone();
		too_many[0] = 0xff;
		too_many[1] = 0xff;
		assert!(decode(&too_many, 2000).is_err());
		// Swapping the first two indices breaks the strict order.
		let mut swapped = encode(&[0.0, 1.0, 2.0, 0.0], 0.5, 8);
		swapped[7] = (swapped[7] & 0xf0) | 0b0010 | 0b0001 << 2;
		assert!(decode(&swapped, 4).is_err());
		for n in 0..b.len() {
			let _ = decode(&b[..n], 2000);
		}
	}

	#[test]
	fn a_block_tells_its_parameters() {
		for (len, d, bits) in [(533usize, 0.0156f32, 2u8), (4096, 0.01, 3), (70_000, 0.02, 8)] {
			let b = encode(&vec(len), d, bits);
			let (d2, bits2) = params_of(&b, len).unwrap();
			assert_eq!(bits2, bits);
			assert_eq!(kept(len, d2), kept(len, d), "{len}");
			assert_eq!(encode(&vec(len), d2, bits2), b);
		}
	}

	#[test]
	fn non_finite_values_reach_the_receiver_as_non_finite() {
		let mut xs = vec(1000);
		xs[10] = f32::NAN;
		let back = decode(&encode(&xs, 0.01, 2), 1000).unwrap();
		assert!(back.iter().any(|x| !x.is_finite()));
	}

	#[test]
	fn compresses_a_block_over_100_times_at_1_56_percent_and_2_bits() {
		for len in [512usize, 533, 4096, 50_000] {
			let ratio = (4 * len) as f64 / block_bytes(len, 0.0156, 2) as f64;
			assert!(ratio > 100.0, "{len}: {ratio}");
			assert_eq!(encode(&vec(len), 0.0156, 2).len(), block_bytes(len, 0.0156, 2));
		}
	}
}
