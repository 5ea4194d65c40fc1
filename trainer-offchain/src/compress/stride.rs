//! Strided few-bit blocks (`stride:PERIOD:BITS`): in round `r` every block sends only the
//! values at positions `phase, phase + PERIOD, phase + 2·PERIOD, …` with
//! `phase = r mod PERIOD`, each as a `BITS`-bit code on a per-block scale.
//!
//! Every peer sends the same positions in a round, so the sum of the peers' updates is as
//! sparse as each of them and the owner's reduced chunk compresses the same way: both halves
//! of the exchange shrink by the same factor, and no index is sent. With error feedback a
//! position accumulates what its peer trained over `PERIOD` rounds and is sent whole when its
//! turn comes; with [`crate::p2p::PeerConfig::train_from_unsent`] a peer trains on its own
//! unsent progress meanwhile, so every position is averaged across peers once every `PERIOD`
//! rounds and trained locally in between, the fragment-wise synchronisation of Streaming
//! DiLoCo (Douillard et al. 2025, arXiv:2501.18512) on a finer grain.
//!
//! # Layout of one block of `len` values
//!
//! | field | bytes |
//! | --- | --- |
//! | `period` (1..=255) | 1 |
//! | `phase` (< `period`) | 1 |
//! | `bits` (1..=8) | 1 |
//! | `scale` (f32 LE): the mean magnitude of the sent values | 4 |
//! | `⌈(len − phase) / period⌉` codes, `bits` bits each | |
//!
//! The values are quantised on the mean magnitude `s`, not the largest: a position's value is
//! its accumulated progress and a block's values are of similar size, so one outlier must not
//! blow every other value up to half its size. At 1 bit a code is the sign and decodes to
//! `±s` (scaled sign compression, as in EF-signSGD, Karimireddy et al. 2019). At `bits ≥ 2` a
//! code is a sign bit above a magnitude `q ≤ L = 2^(bits−1) − 1` and decodes to `± q·s`
//! (at 2 bits: `−s`, `0`, `+s`); what a value loses to rounding and clipping, error
//! feedback carries. Codes are packed least significant first; "minus zero" and the last
//! byte's unused bits are refused, so a block has exactly one encoding. A non-finite value
//! makes `scale` NaN, which the receiver's finiteness check refuses.

use super::sparse::{BitReader, BitWriter};
use anyhow::{ensure, Result};

/// Header bytes of a block.
pub const HEADER: usize = 7;

/// Positions of a block of `len` sent at `phase`.
fn positions(len: usize, period: u8, phase: u8) -> impl Iterator<Item = usize> {
	(usize::from(phase)..len).step_by(usize::from(period.max(1)))
}

/// Bytes of one encoded block.
pub fn block_bytes(len: usize, period: u8, phase: u8, bits: u8) -> usize {
	HEADER + (positions(len, period, phase).count() * usize::from(bits)).div_ceil(8)
}

/// `(period, phase, bits)` of an encoded block, if its header is well formed.
pub fn params_of(block: &[u8]) -> Option<(u8, u8, u8)> {
	match block {
		[period, phase, bits, ..] if *period > 0 && phase < period && (1..=8).contains(bits) => {
			Some((*period, *phase, *bits))
		},
		_ => None,
	}
}

/// Largest magnitude code at `bits` bits (0 at 1 bit: the code is the sign alone).
fn max_level(bits: u8) -> u32 {
	(1u32 << (bits - 1)) - 1
}

/// The value of a code.
fn value_of(code: u32, bits: u8, scale: f32) -> f32 {
	let negative = code >> (bits - 1) == 1;
	let magnitude = if bits == 1 { scale } else { (code & max_level(bits)) as f32 * scale };
	if negative {
		-magnitude
	} else {
		magnitude
	}
}

/// Encode one block.
pub fn encode(xs: &[f32], period: u8, phase: u8, bits: u8) -> Vec<u8> {
	let period = period.max(1);
	let phase = phase % period;
	let bits = bits.clamp(1, 8);
	let value = |i: usize| xs.get(i).copied().unwrap_or(0.0);
	let sent = || positions(xs.len(), period, phase).map(value);
	let count = sent().count();
	let scale = if sent().any(|x| !x.is_finite()) {
		f32::NAN
	} else if count == 0 {
		0.0
	} else {
		(sent().map(|x| f64::from(x.abs())).sum::<f64>() / count as f64) as f32
	};
	let mut head = Vec::with_capacity(block_bytes(xs.len(), period, phase, bits));
	head.extend_from_slice(&[period, phase, bits]);
	head.extend_from_slice(&scale.to_le_bytes());
	let mut w = BitWriter::after(head);
	let top = max_level(bits);
	for x in sent() {
		let q = if bits == 1 || !(scale.is_finite() && scale > 0.0) {
			0
		} else {
			(x.abs() / scale).round().min(top as f32) as u32
		};
		// Zero is sent without a sign: every value has one encoding.
		let sign = u32::from(x.is_sign_negative() && (q > 0 || bits == 1));
		w.put((sign << (bits - 1)) | q, u32::from(bits));
	}
	w.finish()
}

/// Decode one block of `len` values. Errors on any malformed byte string (never panics).
pub fn decode(bytes: &[u8], len: usize) -> Result<Vec<f32>> {
	ensure!(bytes.len() >= HEADER, "stride block: {} bytes, header needs {HEADER}", bytes.len());
	let (head, body) = bytes.split_at(HEADER);
	let Some((period, phase, bits)) = params_of(head) else {
		anyhow::bail!("stride block: bad header {head:?}");
	};
	let scale = f32::from_le_bytes(head.get(3..7).unwrap_or_default().try_into()?);
	ensure!(
		bytes.len() == block_bytes(len, period, phase, bits),
		"stride block: {} bytes for {len} values at period {period}",
		bytes.len()
	);
	let mut r = BitReader::new(body);
	let mut out = vec![0f32; len];
	for i in positions(len, period, phase) {
		let code = r.take(u32::from(bits))?;
		ensure!(bits == 1 || code != 1 << (bits - 1), "stride block: minus zero");
		if let Some(slot) = out.get_mut(i) {
			*slot = value_of(code, bits, scale);
		}
	}
	ensure!(r.padding_is_zero(), "stride block: padding bits are not zero");
	Ok(out)
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	fn vec(n: usize) -> Vec<f32> {
		(0..n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 100.0).collect()
	}

	#[test]
	fn sends_only_its_phase_on_levels_of_the_mean_magnitude() {
		let xs = vec(512);
		for phase in [0u8, 3, 7] {
			let b = encode(&xs, 8, phase, 2);
			assert_eq!(b.len(), HEADER + 16, "64 values × 2 bits");
			let d = decode(&b, xs.len()).unwrap();
			let sent: Vec<f32> = (phase as usize..512).step_by(8).map(|i| xs[i]).collect();
			let s = sent.iter().map(|x| x.abs()).sum::<f32>() / sent.len() as f32;
			for (i, (x, y)) in xs.iter().zip(&d).enumerate() {
				if i % 8 == phase as usize {
					// Ternary: 0 below s/2, ±s above (large values clipped to s).
					let want = if x.abs() < s / 2.0 { 0.0 } else { s.copysign(*x) };
					assert!((y - want).abs() < 1e-5, "{i}: {x} → {y}, want {want}");
				} else {
					assert_eq!(*y, 0.0, "{i}");
				}
			}
		}
		// One bit: the sign on the mean magnitude.
		let d = decode(&encode(&xs, 8, 0, 1), 512).unwrap();
		let sent: Vec<f32> = (0..512).step_by(8).map(|i| xs[i]).collect();
		let s = sent.iter().map(|x| x.abs()).sum::<f32>() / sent.len() as f32;
		for (x, y) in sent.iter().zip(d.iter().step_by(8)) {
			assert!((y - s.copysign(*x)).abs() < 1e-5, "{x} → {y}");
		}
	}

	#[test]
	fn one_outlier_does_not_inflate_the_other_values() {
		// With the largest magnitude as the scale, 0.01 would be sent as ±50 (half of 100).
		let mut xs = vec![0.01f32; 64];
		xs[0] = 100.0;
		let d = decode(&encode(&xs, 1, 0, 2), 64).unwrap();
		let mean = (100.0 + 63.0 * 0.01) / 64.0;
		assert!((d[0] - mean).abs() < 1e-4, "the outlier is clipped to the mean: {}", d[0]);
		assert!(d[1..].iter().all(|y| *y == 0.0), "{:?}", &d[1..4]);
	}

	#[test]
	fn compresses_a_block_over_100_times_at_period_16_and_2_bits() {
		let raw = 4 * 512;
		assert!(raw as f64 / block_bytes(512, 16, 0, 2) as f64 > 100.0);
		// Large updates have larger blocks; the header matters less.
		assert!(4.0 * 4096.0 / block_bytes(4096, 16, 5, 2) as f64 > 120.0);
	}

	#[test]
	fn encoding_is_canonical_and_malformed_blocks_are_errors() {
		let xs = vec(100);
		let b = encode(&xs, 5, 2, 3);
		assert_eq!(b, encode(&xs, 5, 2, 3));
		assert_eq!(b.len(), HEADER + 8, "20 codes of 3 bits");
		assert!(decode(&b[..HEADER - 1], 100).is_err(), "short header");
		assert!(decode(&b, 110).is_err(), "length of another block (22 codes)");
		let mut long = b.clone();
		long.push(0);
		assert!(decode(&long, 100).is_err(), "trailing byte");
		for (at, v) in [(0, 0u8), (1, 5), (2, 0), (2, 9)] {
			// (period 0, phase ≥ period, 0 bits, 9 bits)
			let mut bad = b.clone();
			bad[at] = v;
			assert!(decode(&bad, 100).is_err(), "header byte {at} = {v}");
		}
		// 20 codes of 3 bits = 60 bits: the last 4 bits are padding and must be zero.
		let mut pad = b.clone();
		*pad.last_mut().unwrap() |= 0x80;
		assert!(decode(&pad, 100).is_err(), "padding");
		// Minus zero (sign bit over magnitude 0) is not the encoding of zero.
		let zero = encode(&[0.0; 8], 1, 0, 2);
		let mut minus = zero.clone();
		minus[HEADER] = 0b10;
		assert_eq!(decode(&zero, 8).unwrap(), vec![0.0; 8]);
		assert!(decode(&minus, 8).is_err(), "minus zero");
	}

	#[test]
	fn non_finite_values_reach_the_receiver_as_non_finite() {
		let mut xs = vec(64);
		xs[8] = f32::INFINITY;
		let d = decode(&encode(&xs, 8, 0, 2), 64).unwrap();
		assert!(d.iter().any(|x| !x.is_finite()));
		// Not sent this round: the value waits (error feedback), the block stays finite.
		let d = decode(&encode(&xs, 8, 1, 2), 64).unwrap();
		assert!(d.iter().all(|x| x.is_finite()));
	}

	#[test]
	fn an_all_zero_block_decodes_to_zero() {
		let d = decode(&encode(&[0.0; 64], 4, 1, 2), 64).unwrap();
		assert!(d.iter().all(|x| *x == 0.0));
	}
}
