//! Error feedback: what lossy compression dropped, carried into the next round, by a
//! contributor for its own update ([`ErrorFeedback`]) and by a chunk's owner for its reduced
//! chunk ([`OwnerFeedback`]).

use super::{Compressed, Compression};
use anyhow::Result;

/// Error feedback for lossy compression: the part of past updates not yet transmitted.
#[derive(Clone, Debug, Default)]
pub struct ErrorFeedback {
	residual: Vec<f32>,
}

impl ErrorFeedback {
	/// Compress `update + decay·residual`; keep the new residual. Returns the compressed
	/// update and its decoded form (what the receivers will see).
	///
	/// `decay` = 1 is classic error feedback (nothing dropped is ever lost). Below 1 it is
	/// SparseLoCo's decayed accumulator (Sarfi et al. 2025, arXiv:2508.15706): the residual
	/// of a coordinate that keeps not being sent fades, and one that keeps growing is sent
	/// with the momentum of its past rounds (SparseLoCo uses 0.95 with plain averaging
	/// outside, in place of DiLoCo's outer momentum).
	pub fn compress(
		&mut self,
		compression: Compression,
		update: &[f32],
		decay: f32,
	) -> Result<(Compressed, Vec<f32>)> {
		let mut corrected = update.to_vec();
		if compression.is_lossy() && self.residual.len() == update.len() {
			for (c, r) in corrected.iter_mut().zip(&self.residual) {
				*c += decay * r;
			}
		}
		let c = Compressed::new(compression, &corrected);
		let decoded = c.decode()?;
		if compression.is_lossy() {
			self.residual = corrected.iter().zip(&decoded).map(|(a, b)| a - b).collect();
			if self.residual.iter().any(|x| !x.is_finite()) {
				self.residual.clear();
			}
		}
		Ok((c, decoded))
	}

	/// Drop the residual (e.g. when an update was not included).
	pub fn reset(&mut self) {
		self.residual.clear();
	}
}

/// Error feedback of a chunk's owner on the all-gather half: what the encoding of its
/// reduced chunk dropped, added to its next reduction of the same elements. The residual of
/// an attempt is kept only once its round is ([`OwnerFeedback::commit`]); a peer that owns
/// other elements in the next round drops the rest.
#[derive(Clone, Debug, Default)]
pub struct OwnerFeedback {
	residual: Vec<f32>,
	pending: Option<Vec<f32>>,
}

impl OwnerFeedback {
	/// `values` (the reduction of elements `elems` of an update of `len`) plus the residual
	/// kept for those elements.
	pub fn corrected(
		&self,
		elems: &std::ops::Range<usize>,
		len: usize,
		values: &[f32],
	) -> Vec<f32> {
		let mut out = values.to_vec();
		if self.residual.len() == len {
			for (o, r) in out.iter_mut().zip(self.residual.get(elems.clone()).unwrap_or_default()) {
				*o += r;
			}
		}
		out
	}

	/// Note what was sent (`sent`, the corrected values) and what the receivers decode.
	pub fn keep(&mut self, elems: &std::ops::Range<usize>, sent: &[f32], decoded: &[f32]) {
		let mut residual = vec![0f32; elems.end];
		for ((r, s), d) in residual.iter_mut().skip(elems.start).zip(sent).zip(decoded) {
			*r = s - d;
		}
		self.pending = residual.iter().all(|x| x.is_finite()).then_some(residual);
	}

	/// The round's aggregate was applied: keep the residual of its last attempt.
	pub fn commit(&mut self, len: usize) {
		match self.pending.take() {
			Some(mut r) => {
				r.resize(len, 0.0);
				self.residual = r;
			},
			None => self.residual.clear(),
		}
	}

	/// Drop everything (a round undone, or no longer an owner).
	pub fn reset(&mut self) {
		self.residual.clear();
		self.pending = None;
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;
	use crate::compress::tests::vec;

	#[test]
	fn decayed_error_feedback_lets_a_steady_small_coordinate_fade() {
		// Top-1 of 10 values (⌈0.09·10⌉ = 1): 1.0 is always sent; 0.3 is not. Classic error
		// feedback lets 0.3 pile up until it is sent (round 4); with decay 0.5 its residual
		// tends to 0.3 / (1 − 0.5) = 0.6 < 1.0, so it never is.
		let comp: Compression = "topk:0.09".parse().unwrap();
		let mut xs = vec![0f32; 10];
		xs[0] = 1.0;
		xs[1] = 0.3;
		let first_sent = |decay: f32| {
			let mut ef = ErrorFeedback::default();
			(1..=20).find(|_| ef.compress(comp, &xs, decay).unwrap().1[1] != 0.0)
		};
		assert_eq!(first_sent(1.0), Some(4));
		assert_eq!(first_sent(0.5), None);
		let mut ef = ErrorFeedback::default();
		for _ in 0..30 {
			ef.compress(comp, &xs, 0.5).unwrap();
		}
		assert!((ef.residual[1] - 0.6).abs() < 1e-4, "{}", ef.residual[1]);
	}

	#[test]
	fn error_feedback_accumulates() {
		let mut ef = ErrorFeedback::default();
		let xs = vec(2000);
		let mut sent = vec![0f32; xs.len()];
		for _ in 0..20 {
			let (_, dec) = ef.compress("topk:0.1".parse().unwrap(), &xs, 1.0).unwrap();
			for (s, d) in sent.iter_mut().zip(&dec) {
				*s += d;
			}
		}
		// After 20 rounds the transmitted total tracks 20·xs up to the bounded residual;
		// without error feedback 90% of the coordinates would never be sent (error ≈ 10).
		let err: f32 = xs.iter().zip(&sent).map(|(x, s)| (20.0 * x - s).abs()).fold(0.0, f32::max);
		assert!(err < 3.0, "{err}");
		let no_ef = Compressed::new("topk:0.1".parse().unwrap(), &xs).decode().unwrap();
		let err0: f32 = xs
			.iter()
			.zip(&no_ef)
			.map(|(x, s)| (20.0 * x - 20.0 * s).abs())
			.fold(0.0, f32::max);
		assert!(err0 > 8.0 && err < err0 / 3.0, "{err0} {err}");
	}
}
