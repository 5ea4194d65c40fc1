//! How a verifier scores a round: each included update applied **alone** to the round's base
//! model, measured on the sponsor's held-out validation set.
//!
//! * score = (validation loss of the base − validation loss of base + update / n) × 10⁶, with
//!   `n` the number of included contributions, rounded and clamped to `i32` (micro-units of
//!   loss; positive means the update helped). The update is applied at the scale it has in the
//!   round's mean: applied at full scale, honest updates near convergence overshoot and score
//!   below zero (seen in the demo's fifth round before this scaling);
//! * a missing update (not served, or not matching its committed hash), a zero update and an
//!   update that is not finite score 0;
//! * in a job on a public dataset, a contribution that fails the checks of
//!   [`crate::public_data`] (its update must help its assigned shard more than another, and a
//!   sampled one must match its re-computation) scores 0;
//! * of identical or nearly identical updates (cosine similarity ≥ [`COPY_COSINE`]), only the
//!   one committed in the strictly earliest block keeps its score; if several share that block,
//!   all score 0 (nobody can tell which is the copy). Updates are served only after the round's
//!   exchange, so a same-round copy needs its owner's help.
//!
//! Everything here is deterministic for a given build; different machines may differ in the
//! last bits of a loss, which the chain's agreement tolerance absorbs.

use crate::compress::Compression;
use crate::data::Dataset;
use crate::eval::evaluate;
use crate::model::Model;
use crate::public_data::{PublicCheck, PublicRole, Rejection};
use crate::Result;

/// Cosine similarity from which two updates count as copies of each other.
pub const COPY_COSINE: f64 = 0.999;

/// One included contribution as the verifier received it.
#[derive(Clone, Debug)]
pub struct Contribution {
	/// The decoded update, if it was served and matched its committed hash.
	pub delta: Option<Vec<f32>>,
	/// The block its commitment landed in.
	pub committed_at: u32,
	/// How it was compressed (re-computation compresses the same way).
	pub compression: Compression,
	/// Public-data jobs: what the verifier checks of it.
	pub public: Option<PublicRole>,
}

/// Scores of a round and the validation metric of the aggregated model.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundScores {
	/// One score per contribution, in the given order.
	pub scores: Vec<i32>,
	/// Validation loss of the base model.
	pub base_loss: f32,
	/// Public-data jobs: why a contribution failed its checks (in the given order).
	pub rejections: Vec<Option<Rejection>>,
}

/// Score every contribution against `base` on `validation` (see the module docs); `public`
/// checks the contributions that carry a [`PublicRole`].
pub fn score_round(
	model: &mut Model,
	base: &[f32],
	contributions: &[Contribution],
	validation: &Dataset,
	public: Option<&PublicCheck<'_>>,
) -> anyhow::Result<RoundScores> {
	model.set_flat_params(base)?;
	let base_loss = evaluate(model, validation)?.loss;
	let copies = copied(contributions);
	let share = 1.0 / contributions.len().max(1) as f32;
	let mut scores = Vec::with_capacity(contributions.len());
	let mut rejections = vec![None; contributions.len()];
	for (i, c) in contributions.iter().enumerate() {
		let score = match &c.delta {
			Some(d) if usable(d, base.len()) && !copies.get(i).copied().unwrap_or(true) => {
				let rejected = match (public, &c.public) {
					(Some(check), Some(role)) => {
						check.check(model, base, d, c.compression, share, role)?
					},
					_ => None,
				};
				if let Some(slot) = rejections.get_mut(i) {
					*slot = rejected;
				}
				if rejected.is_some() {
					0
				} else {
					let applied: Vec<f32> =
						base.iter().zip(d).map(|(b, x)| b + x * share).collect();
					model.set_flat_params(&applied)?;
					let loss = evaluate(model, validation)?.loss;
					to_micro(f64::from(base_loss) - f64::from(loss))
				}
			},
			_ => 0,
		};
		scores.push(score);
	}
	Ok(RoundScores { scores, base_loss, rejections })
}

/// `(loss, accuracy)` of `params` on `validation`, as the chain stores them (micro-units of
/// loss, accuracy in parts per million).
pub fn model_metric(model: &mut Model, params: &[f32], validation: &Dataset) -> Result<(u32, u32)> {
	model.set_flat_params(params)?;
	let m = evaluate(model, validation)?;
	let loss = (f64::from(m.loss) * 1e6).round().clamp(0.0, f64::from(u32::MAX)) as u32;
	let accuracy = (f64::from(m.accuracy) * 1e6).round().clamp(0.0, 1e6) as u32;
	Ok((loss, accuracy))
}

fn usable(delta: &[f32], len: usize) -> bool {
	delta.len() == len && delta.iter().all(|x| x.is_finite()) && delta.iter().any(|x| *x != 0.0)
}

fn to_micro(x: f64) -> i32 {
	if !x.is_finite() {
		return 0;
	}
	(x * 1e6).round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// For each contribution, whether it loses its score as a copy: it is (nearly) identical to
/// another one that was not committed strictly later.
fn copied(contributions: &[Contribution]) -> Vec<bool> {
	contributions
		.iter()
		.enumerate()
		.map(|(i, c)| {
			let Some(d) = &c.delta else {
				return false;
			};
			contributions.iter().enumerate().any(|(j, o)| {
				j != i
					&& o.committed_at <= c.committed_at
					&& o.delta.as_ref().is_some_and(|e| cosine(d, e) >= COPY_COSINE)
			})
		})
		.collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
	if a.len() != b.len() {
		return 0.0;
	}
	let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
	for (x, y) in a.iter().zip(b) {
		let (x, y) = (f64::from(*x), f64::from(*y));
		dot += x * y;
		na += x * x;
		nb += y * y;
	}
	if na == 0.0 || nb == 0.0 {
		return 0.0;
	}
	dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;
	use crate::data::gaussian_blobs;
	use crate::model::ModelSpec;
	use crate::train::{local_round, TrainConfig};

	fn c(delta: Option<Vec<f32>>, at: u32) -> Contribution {
		Contribution { delta, committed_at: at, compression: Compression::None, public: None }
	}

	#[test]
	fn trained_updates_score_above_zero_and_useless_ones_do_not() {
		let data = gaussian_blobs(600, 4, 3, 3.0, 1.0, 7).unwrap();
		let spec = ModelSpec::resolve("mlp", data.n_features(), data.num_classes()).unwrap();
		let base = spec.initial_params().unwrap();
		let mut model = Model::from_flat(&spec, &base).unwrap();
		let cfg = TrainConfig::default();
		let honest = local_round(&mut model, &data, &cfg, 1).unwrap().update;
		model.set_flat_params(&base).unwrap();
		let other = local_round(&mut model, &data, &cfg, 2).unwrap().update;
		let random: Vec<f32> =
			(0..base.len()).map(|i| if i % 2 == 0 { 3.0 } else { -3.0 }).collect();
		let round = [
			c(Some(honest.clone()), 5),
			c(Some(vec![0.0; base.len()]), 5),
			c(Some(random), 5),
			c(None, 5),
			c(Some(honest.clone()), 6), // a later copy of the first
			c(Some(other), 5),
		];
		let s = score_round(&mut model, &base, &round, &data, None).unwrap().scores;
		assert!(s[0] > 0, "honest update scored {}", s[0]);
		assert_eq!(s[1], 0, "zero update");
		assert!(s[2] <= 0, "random update scored {}", s[2]);
		assert_eq!(s[3], 0, "withheld update");
		assert_eq!(s[4], 0, "later copy");
		assert!(s[5] > 0);
	}

	#[test]
	fn copies_committed_in_the_same_block_all_score_zero() {
		let a = vec![1.0, 2.0, 3.0];
		let flags = copied(&[c(Some(a.clone()), 4), c(Some(a.clone()), 4), c(Some(a), 9)]);
		assert_eq!(flags, vec![true, true, true]);
		let b = copied(&[c(Some(vec![1.0, 0.0]), 4), c(Some(vec![0.0, 1.0]), 4)]);
		assert_eq!(b, vec![false, false]);
	}
}
