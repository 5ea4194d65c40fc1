//! Sparse few-bit blocks (`sparse:DENSITY:BITS`): the `k = ⌈DENSITY·len⌉` largest-magnitude
//! values of a block, each sent as a Rice-coded gap to the previous index and a `BITS`-bit
//! code, in the spirit of SparseLoCo's top-k with 2-bit values. With error feedback (the
//! caller's [`super::ErrorFeedback`]) what a block drops is carried into the next round.
//!
//! # Layout of one block of `len` values
//!
//! | field | size |
//! | --- | --- |
//! | `bits` (1..=8) | 1 byte |
//! | `count` (values kept, ≤ `len`) | LEB128, shortest form: 1 byte below 128 |
//! | `scale` (bfloat16 LE): the largest kept magnitude, rounded to nearest | 2 bytes |
//! | `count` gaps between kept indices, Rice-coded with `r = ⌊log2(len / count)⌋` | |
//! | `count` codes, `bits` bits each: sign in the top bit, level `q − 1` below | |
//!
//! The gap of the first index is the index itself, the gap of the next is `i − previous − 1`.
//! A gap `g` is `g >> r` one-bits, a zero-bit, then the low `r` bits of `g`. For `k` values
//! spread over `len` that is about `r + 2` bits an index (`len = 513`, `k = 11`: 7.4 bits),
//! where a fixed-width index takes `⌈log2 len⌉` (10 bits), so the same bytes carry more
//! values; at most `k·(r + 1) + len / 2^r` bits in all, which is below `k·(r + 3)`. The
//! scale is a bfloat16 (f32's exponent range, 8 significant bits): the codes are levels of
//! the scale the receivers decode, so its rounding is part of what error feedback carries.
//!
//! Bits are packed least significant first; the last byte's unused bits are zero, so every
//! block has exactly one encoding. A code decodes to `± q / L · scale` with `L = 2^(bits−1)`
//! levels per sign (`bits = 2`: `±scale/2` or `±scale`). A non-finite input value is kept
//! first and makes `scale` NaN, so the receiver's finiteness check refuses the update.
//!
//! The block carries its own `count` and `bits`, so it decodes without the density. Every
//! step is integer arithmetic or a single IEEE operation, so every peer gets the same bits.

use anyhow::{bail, ensure, Result};
use half::bf16;

/// Values kept of a block of `len` at `density`: `⌈density·len⌉`, at least one.
pub fn kept(len: usize, density: f32) -> usize {
	((len as f64 * f64::from(density)).ceil() as usize).clamp(1, len.max(1))
}

/// The Rice parameter of `count` gaps over `len` values: `⌊log2(len / count)⌋`.
fn rice_param(len: usize, count: usize) -> u32 {
	(len / count.max(1)).max(1).ilog2()
}

/// Bytes of the LEB128 form of `n`.
fn varint_len(n: usize) -> usize {
	(usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
}

/// Most bytes a block of `len` values can take at `density` and `bits`.
pub fn max_block_bytes(len: usize, density: f32, bits: u8) -> usize {
	let k = if len == 0 { 0 } else { kept(len, density) };
	let r = rice_param(len, k) as usize;
	let body = k * (r + 1 + usize::from(bits)) + (len >> r);
	1 + varint_len(k) + 2 + body.div_ceil(8)
}

/// The `(density, bits)` a block of `len` values was encoded with, read from its header
/// (a density that keeps the same count in blocks of this length); `None` if malformed.
pub fn params_of(block: &[u8], len: usize) -> Option<(f32, u8)> {
	let (&bits, rest) = block.split_first()?;
	let (count, _) = read_varint(rest).ok()?;
	let density = ((count.max(1) as f64 - 0.5) / len.max(1) as f64) as f32;
	(len > 0 && (1..=8).contains(&bits) && density > 0.0).then_some((density, bits))
}

/// `n` as LEB128 (seven bits a byte, low first, the top bit set on all but the last byte).
fn put_varint(out: &mut Vec<u8>, mut n: usize) {
	while n >= 0x80 {
		out.push((n as u8 & 0x7f) | 0x80);
		n >>= 7;
	}
	out.push(n as u8);
}

/// A LEB128 number of at most 32 bits in its shortest form, and the bytes after it.
fn read_varint(bytes: &[u8]) -> Result<(usize, &[u8])> {
	let mut n = 0u64;
	for (i, b) in bytes.iter().enumerate().take(5) {
		n |= u64::from(b & 0x7f) << (7 * i);
		if b & 0x80 == 0 {
			ensure!(i == 0 || *b != 0, "sparse block: count not in its shortest form");
			ensure!(n <= u64::from(u32::MAX), "sparse block: count too large");
			return Ok((n as usize, bytes.get(i + 1..).unwrap_or_default()));
		}
	}
	bail!("sparse block: unterminated count")
}

struct BitWriter {
	out: Vec<u8>,
	acc: u64,
	used: u32,
}

impl BitWriter {
	/// The low `width` (≤ 32) bits of `value`.
	fn put(&mut self, value: u32, width: u32) {
		self.acc |= (u64::from(value) & ((1u64 << width) - 1)) << self.used;
		self.used += width;
		while self.used >= 8 {
			self.out.push(self.acc as u8);
			self.acc >>= 8;
			self.used -= 8;
		}
	}

	/// `gap` Rice-coded with parameter `r`.
	fn put_rice(&mut self, gap: usize, r: u32) {
		let mut ones = gap >> r;
		while ones > 0 {
			let n = ones.min(24);
			self.put((1u32 << n) - 1, n as u32);
			ones -= n;
		}
		self.put(0, 1);
		self.put((gap & ((1usize << r) - 1)) as u32, r);
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
	/// `width` (≤ 32) bits.
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

	/// A Rice-coded gap with parameter `r`, refused above `max`.
	fn take_rice(&mut self, r: u32, max: usize) -> Result<usize> {
		let mut q = 0usize;
		while self.take(1)? == 1 {
			q += 1;
			ensure!(q <= max >> r, "sparse block: index gap beyond the block");
		}
		let gap = (q << r) | self.take(r)? as usize;
		ensure!(gap <= max, "sparse block: index gap beyond the block");
		Ok(gap)
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
		bf16::NAN
	} else {
		bf16::from_f32(idx.iter().map(value).fold(0f32, |m, x| m.max(x.abs())))
	};
	// An all-zero block keeps nothing (nor does one whose values round to a zero scale).
	let idx = if scale == bf16::ZERO { Vec::new() } else { idx };
	let (scale_bytes, scale) = (scale.to_le_bytes(), scale.to_f32());
	let mut w =
		BitWriter { out: Vec::with_capacity(max_block_bytes(len, density, bits)), acc: 0, used: 0 };
	w.out.push(bits);
	put_varint(&mut w.out, idx.len());
	w.out.extend_from_slice(&scale_bytes);
	let r = rice_param(len, idx.len());
	let mut next = 0usize;
	for i in &idx {
		w.put_rice(*i as usize - next, r);
		next = *i as usize + 1;
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
	let Some((&bits, rest)) = bytes.split_first() else { bail!("sparse block: empty") };
	ensure!((1..=8).contains(&bits), "sparse block: {bits} bits per value");
	let (count, rest) = read_varint(rest)?;
	ensure!(count <= len, "sparse block: {count} values kept of {len}");
	ensure!(rest.len() >= 2, "sparse block: no scale");
	let (s, body) = rest.split_at(2);
	let scale = bf16::from_le_bytes(s.try_into()?).to_f32();
	let rice = rice_param(len, count);
	let mut reader = BitReader { bytes: body, pos: 0, acc: 0, have: 0 };
	let mut idx = Vec::with_capacity(count);
	let mut next = 0usize;
	for _ in 0..count {
		ensure!(next < len, "sparse block: more indices than values");
		let i = next + reader.take_rice(rice, len - 1 - next)?;
		idx.push(i);
		next = i + 1;
	}
	let levels = 1u32 << (bits - 1);
	let mut out = vec![0f32; len];
	for i in idx {
		let code = reader.take(u32::from(bits))?;
		let q = (code & (levels - 1)) + 1;
		let v = q as f32 / levels as f32 * scale;
		if let Some(slot) = out.get_mut(i) {
			*slot = if code >> (bits - 1) == 1 { -v } else { v };
		}
	}
	ensure!(
		reader.acc == 0 && reader.pos == reader.bytes.len(),
		"sparse block: trailing bytes or padding bits that are not zero"
	);
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
		assert!(b.len() <= max_block_bytes(1000, 0.0025, 2));
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
	fn the_layout_is_the_documented_one() {
		// Density 0.25 of 8 values keeps 2 (indices 2 and 7), r = ⌊log2(8 / 2)⌋ = 2.
		let xs = [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, -1.5];
		let b = encode(&xs, 0.25, 2);
		// bits, count, scale 3.0 (bfloat16 0x4040), then LSB first: gap 2 = `0` + `01`; gap
		// 7 − 3 = 4 = `1 0` + `00`; codes `10` (+, level 2) and `01` (−, level 1):
		// 0b1000_1100, 0b100.
		assert_eq!(b, [2, 2, 0x40, 0x40, 0x8c, 0x04]);
		assert_eq!(decode(&b, 8).unwrap(), [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, -1.5]);
	}

	#[test]
	fn malformed_blocks_are_errors() {
		let xs = vec(2000);
		let b = encode(&xs, 0.02, 2);
		assert!(decode(&b, 2000).is_ok());
		assert!(decode(&b[..b.len() - 1], 2000).is_err());
		let mut padded = b.clone();
		padded.push(0);
		assert!(decode(&padded, 2000).is_err());
		let mut bad_bits = b.clone();
		bad_bits[0] = 9;
		assert!(decode(&bad_bits, 2000).is_err());
		// A count above the block's length, and a count in a longer form than needed.
		let mut too_many = b.clone();
		too_many.splice(1..2, [0xff, 0x7f]);
		assert!(decode(&too_many, 2000).is_err());
		let mut long_count = b.clone();
		long_count.splice(1..2, [b[1] | 0x80, 0x00]);
		assert!(decode(&long_count, 2000).is_err());
		// One gap of all ones runs past the end of the block.
		let mut past_end = vec![2u8, 1, 0x80, 0x3f];
		past_end.extend([0xff; 40]);
		assert!(decode(&past_end, 8).is_err());
		// One gap of 8 (`1 0` + `000`) in a block of 8: an index past the end, which a decoder
		// without the bound would drop silently and accept.
		assert!(decode(&[2, 1, 0x80, 0x3f, 0x01], 8).is_err());
		assert!(decode(&[2, 1, 0x80, 0x3f, 0x00], 8).is_ok());
		// Two values in a block of one.
		assert!(decode(&[2, 2, 0x80, 0x3f, 0, 0], 1).is_err());
		for n in 0..b.len() {
			let _ = decode(&b[..n], 2000);
		}
	}

	#[test]
	fn no_block_is_larger_than_its_bound() {
		// Kept values spread out, packed at the start, packed at the end, and every other one.
		let len = 1000;
		let spread = vec(len);
		let start: Vec<f32> =
			(0..len).map(|i| if i < 30 { 1.0 + i as f32 } else { 0.01 }).collect();
		let end: Vec<f32> = start.iter().rev().copied().collect();
		let alternate: Vec<f32> = (0..len).map(|i| (i % 2) as f32).collect();
		for xs in [&spread, &start, &end, &alternate] {
			for (d, bits) in [(0.001f32, 1u8), (0.021, 2), (0.03, 2), (0.25, 4), (1.0, 8)] {
				let b = encode(xs, d, bits);
				assert!(b.len() <= max_block_bytes(len, d, bits), "{d} {bits}: {}", b.len());
				assert_eq!(encode(&decode(&b, len).unwrap(), d, bits), b);
			}
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
	fn compresses_a_block_over_100_times_at_2_7_percent() {
		// The bound, so whatever the kept indices: 14 values of the 513 in a block of a
		// 120,576-value update take at most 19 bytes at 1 bit (108×) and 20 at 2 bits
		// (102.6×), and 16 at 1 bit take 20; with fixed 10-bit indices and an f32 scale, 8
		// values at 2 bits took 19.
		for (d, bits) in [(0.027f32, 1u8), (0.027, 2), (0.031, 1)] {
			for len in [512usize, 513, 4096, 50_000] {
				let ratio = (4 * len) as f64 / max_block_bytes(len, d, bits) as f64;
				assert!(ratio > 100.0, "{len} at {d}, {bits} bits: {ratio}");
				assert!(encode(&vec(len), d, bits).len() <= max_block_bytes(len, d, bits));
			}
		}
		assert_eq!((kept(513, 0.027), kept(513, 0.031)), (14, 16));
		let bound = |d, bits| max_block_bytes(513, d, bits);
		assert_eq!((bound(0.027, 1), bound(0.027, 2), bound(0.031, 1)), (19, 20, 20));
	}
}
