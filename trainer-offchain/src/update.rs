//! Flat update vectors: canonical encoding, hashing, application and averaging.
//!
//! # Canonical encodings
//!
//! * **update** (`new params − old params`): `b"TCU1"` ‖ `u32 LE` element count ‖ the
//!   elements as little-endian IEEE-754 `f32`, in the model's declared parameter order
//!   (see [`crate::model`]). Length `8 + 4·n` bytes.
//! * **model state** (the flat parameters): `b"TCM1"` ‖ `u32 LE` count ‖ LE `f32`s.
//!
//! Hashes are `blake2_256` of these bytes ([`hash`], [`state_hash`], [`model_state_hash`]),
//! computed with `sp-crypto-hashing`, the same function the chain uses. Decoding rejects a
//! wrong magic, a length that does not match the header (or the expected parameter count),
//! and NaN/inf values.

use crate::error::{Result, TrainerError};
use crate::model::Model;

/// Magic that starts an encoded update.
pub const UPDATE_MAGIC: [u8; 4] = *b"TCU1";
/// Magic that starts an encoded model state.
pub const STATE_MAGIC: [u8; 4] = *b"TCM1";
/// Bytes before the first element.
pub const HEADER_LEN: usize = 8;

/// The header: `magic ‖ u32 LE count`. Lengths above `u32::MAX` cannot be produced by a valid
/// model (see MAX_PARAMS); such a vector gets a saturated header that `decode` rejects.
fn header(magic: [u8; 4], n: usize) -> [u8; HEADER_LEN] {
	let mut h = [0u8; HEADER_LEN];
	h[..4].copy_from_slice(&magic);
	h[4..].copy_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
	h
}

fn encode_with(magic: [u8; 4], xs: &[f32]) -> Vec<u8> {
	let mut out = Vec::with_capacity(HEADER_LEN + 4 * xs.len());
	out.extend_from_slice(&header(magic, xs.len()));
	for x in xs {
		out.extend_from_slice(&x.to_le_bytes());
	}
	out
}

/// `blake2_256(encode_with(magic, xs))` without building the bytes: a model state is tens of
/// megabytes, hashed every round, and a fresh buffer of that size costs page faults and a copy
/// on top of the hash.
fn hash_with(magic: [u8; 4], xs: &[f32]) -> [u8; 32] {
	const PIECE: usize = 4096;
	let mut w = crate::digest::Blake2Writer::default();
	codec::Output::write(&mut w, &header(magic, xs.len()));
	let mut buf = [0u8; 4 * PIECE];
	for piece in xs.chunks(PIECE) {
		for (b, x) in buf.chunks_exact_mut(4).zip(piece) {
			b.copy_from_slice(&x.to_le_bytes());
		}
		codec::Output::write(&mut w, buf.get(..4 * piece.len()).unwrap_or_default());
	}
	w.finish()
}

fn decode_with(
	what: &'static str,
	magic: [u8; 4],
	bytes: &[u8],
	expected: Option<usize>,
) -> Result<Vec<f32>> {
	let err = |msg: String| TrainerError::Decode { what, msg };
	let (head, body) = bytes.split_at_checked(HEADER_LEN).ok_or_else(|| {
		err(format!("{} bytes is shorter than the {HEADER_LEN}-byte header", bytes.len()))
	})?;
	let (m, len) = head.split_at(4);
	if m != magic {
		return Err(err(format!(
			"magic is {m:02x?}, expected {:?}",
			String::from_utf8_lossy(&magic)
		)));
	}
	let mut len_bytes = [0u8; 4];
	len_bytes.copy_from_slice(len);
	let n = u32::from_le_bytes(len_bytes) as usize;
	if let Some(expected) = expected {
		if n != expected {
			return Err(TrainerError::mismatch(format!("{what} length"), expected, n));
		}
	}
	if body.len() != n.saturating_mul(4) {
		return Err(err(format!(
			"header says {n} values ({} bytes) but {} bytes follow",
			n.saturating_mul(4),
			body.len()
		)));
	}
	let xs: Vec<f32> = body
		.chunks_exact(4)
		.map(|c| {
			let mut b = [0u8; 4];
			b.copy_from_slice(c);
			f32::from_le_bytes(b)
		})
		.collect();
	check_finite(what, &xs)?;
	Ok(xs)
}

/// Error if any value is NaN or infinite, naming the first bad index.
pub fn check_finite(what: &str, xs: &[f32]) -> Result<()> {
	match xs.iter().position(|x| !x.is_finite()) {
		None => Ok(()),
		Some(index) => Err(TrainerError::NonFinite {
			what: what.to_string(),
			index,
			value: xs.get(index).copied().unwrap_or(f32::NAN),
		}),
	}
}

/// Error unless `update` has exactly `expected` finite values.
pub fn validate(update: &[f32], expected: usize) -> Result<()> {
	if update.len() != expected {
		return Err(TrainerError::mismatch("update length", expected, update.len()));
	}
	check_finite("update", update)
}

/// Canonical bytes of an update.
pub fn encode(update: &[f32]) -> Vec<u8> {
	encode_with(UPDATE_MAGIC, update)
}

/// Decode [`encode`]d bytes; rejects bad magic/length and NaN/inf.
pub fn decode(bytes: &[u8]) -> Result<Vec<f32>> {
	decode_with("update", UPDATE_MAGIC, bytes, None)
}

/// Decode an update that must have exactly `expected` values (the model's parameter count).
pub fn decode_expected(bytes: &[u8], expected: usize) -> Result<Vec<f32>> {
	decode_with("update", UPDATE_MAGIC, bytes, Some(expected))
}

/// `blake2_256(encode(update))`.
pub fn hash(update: &[f32]) -> [u8; 32] {
	hash_with(UPDATE_MAGIC, update)
}

/// Canonical bytes of a model state (flat parameters).
pub fn encode_state(params: &[f32]) -> Vec<u8> {
	encode_with(STATE_MAGIC, params)
}

/// Decode [`encode_state`]d bytes; rejects bad magic/length and NaN/inf.
pub fn decode_state(bytes: &[u8]) -> Result<Vec<f32>> {
	decode_with("model state", STATE_MAGIC, bytes, None)
}

/// `blake2_256(encode_state(params))`.
pub fn state_hash(params: &[f32]) -> [u8; 32] {
	hash_with(STATE_MAGIC, params)
}

/// Hash of a model's current state: `state_hash(model.flat_params())`. This is the
/// `model_hash` of the chain's aggregate payload.
pub fn model_state_hash(model: &Model) -> Result<[u8; 32]> {
	Ok(state_hash(&model.flat_params()?))
}

/// `new − old`, element-wise.
pub fn diff(new: &[f32], old: &[f32]) -> Result<Vec<f32>> {
	if new.len() != old.len() {
		return Err(TrainerError::mismatch("parameter vector length", old.len(), new.len()));
	}
	Ok(new.iter().zip(old).map(|(n, o)| n - o).collect())
}

/// `params += update` (validated: right length, all finite).
pub fn apply_update(model: &mut Model, update: &[f32]) -> Result<()> {
	validate(update, model.num_params())?;
	let params = model.flat_params()?;
	let new: Vec<f32> = params.iter().zip(update).map(|(p, u)| p + u).collect();
	model.set_flat_params(&new)
}

/// Sample-weighted average of updates: `Σ wᵢ·uᵢ / Σ wᵢ`, accumulated in f64 in the given
/// order (so every peer that averages the same list gets the same bits).
pub fn weighted_average(updates: &[(&[f32], u64)]) -> Result<Vec<f32>> {
	let Some((first, _)) = updates.first() else {
		return Err(TrainerError::Config("no updates to average".into()));
	};
	let n = first.len();
	let total: u64 = updates
		.iter()
		.try_fold(0u64, |a, (_, w)| a.checked_add(*w))
		.ok_or_else(|| TrainerError::Config("sample counts overflow".into()))?;
	if total == 0 {
		return Err(TrainerError::Config("all updates have zero samples".into()));
	}
	let mut acc = vec![0f64; n];
	for (u, w) in updates {
		validate(u, n)?;
		let w = *w as f64;
		for (a, x) in acc.iter_mut().zip(u.iter()) {
			*a += w * f64::from(*x);
		}
	}
	let total = total as f64;
	Ok(acc.into_iter().map(|a| (a / total) as f32).collect())
}

/// `0x`-prefixed lowercase hex of a hash.
pub fn hex32(h: &[u8; 32]) -> String {
	format!("0x{}", hex::encode(h))
}

#[cfg(test)]
mod tests {
	use super::*;
	use sp_crypto_hashing::blake2_256;

	#[test]
	fn hashes_streamed_equal_hashes_of_the_encoded_bytes() {
		// Around the 4,096-value pieces the hash is streamed in, and empty.
		for n in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 5] {
			let xs: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
			assert_eq!(hash(&xs), blake2_256(&encode(&xs)), "update of {n} values");
			assert_eq!(state_hash(&xs), blake2_256(&encode_state(&xs)), "state of {n} values");
		}
	}
}
