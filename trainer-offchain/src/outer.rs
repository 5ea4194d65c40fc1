//! The outer step of a round: how the peers' averaged update moves the shared model.
//!
//! Every contributor trains `H` local steps from the shared parameters `θ` and sends
//! `Δᵢ = θᵢ − θ`; the exchange gives every peer the same average `Δ`. Then:
//!
//! - **`avg`** (FedAvg): `θ ← θ + Δ`.
//! - **`nesterov:LR:MOMENTUM`** (DiLoCo's outer optimiser, Douillard et al. 2023): the
//!   pseudo-gradient is `g = −Δ`, and with PyTorch's Nesterov SGD convention
//!   `b ← μ·b + g;  θ ← θ − lr·(g + μ·b)`, `b` starting at zero. DiLoCo uses `lr = 0.7`,
//!   `μ = 0.9`; `lr = 1, μ = 0` is `avg`.
//!
//! The momentum `b` is part of the **model state** that peers hash, sign, serve and sync
//! ([`crate::p2p::Peer`] keeps `θ ‖ b`), so a peer that rejoins gets it too and every peer
//! stays bit-identical (each element is updated by the same f32 operations in the same order).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

/// The outer optimiser of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OuterOptimizer {
	/// `θ ← θ + Δ` (FedAvg).
	#[default]
	Average,
	/// Nesterov momentum on the pseudo-gradient `−Δ` (DiLoCo).
	Nesterov {
		/// Outer learning rate.
		lr: f32,
		/// Momentum μ in [0, 1).
		momentum: f32,
	},
}

impl OuterOptimizer {
	/// Length of the optimiser's state for a model of `params` parameters.
	pub fn state_len(&self, params: usize) -> usize {
		match self {
			Self::Average => 0,
			Self::Nesterov { .. } => params,
		}
	}

	/// Apply the averaged update `delta` to `params`, updating the optimiser `state`
	/// (`state_len(params.len())` values).
	pub fn apply(&self, params: &mut [f32], state: &mut [f32], delta: &[f32]) -> Result<()> {
		ensure!(
			delta.len() == params.len(),
			"update has {} values, model {}",
			delta.len(),
			params.len()
		);
		ensure!(
			state.len() == self.state_len(params.len()),
			"outer state has {} values, expected {}",
			state.len(),
			self.state_len(params.len())
		);
		match *self {
			Self::Average => {
				for (p, d) in params.iter_mut().zip(delta) {
					*p += d;
				}
			},
			Self::Nesterov { lr, momentum } => {
				for ((p, b), d) in params.iter_mut().zip(state.iter_mut()).zip(delta) {
					let g = -d;
					*b = momentum * *b + g;
					*p -= lr * (g + momentum * *b);
				}
			},
		}
		Ok(())
	}
}

impl fmt::Display for OuterOptimizer {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Self::Average => f.write_str("avg"),
			Self::Nesterov { lr, momentum } => write!(f, "nesterov:{lr}:{momentum}"),
		}
	}
}

impl FromStr for OuterOptimizer {
	type Err = anyhow::Error;
	fn from_str(s: &str) -> Result<Self> {
		if matches!(s, "avg" | "average" | "fedavg") {
			return Ok(Self::Average);
		}
		let Some(rest) = s.strip_prefix("nesterov:") else {
			bail!(
				"unknown outer optimiser {s:?} (avg | nesterov:LR:MOMENTUM, e.g. nesterov:0.7:0.9)"
			);
		};
		let Some((lr, m)) = rest.split_once(':') else {
			bail!("nesterov takes LR:MOMENTUM, e.g. nesterov:0.7:0.9");
		};
		let (lr, momentum): (f32, f32) = (lr.parse()?, m.parse()?);
		ensure!(lr > 0.0 && lr.is_finite(), "outer learning rate must be positive");
		ensure!((0.0..1.0).contains(&momentum), "outer momentum must be in [0, 1)");
		Ok(Self::Nesterov { lr, momentum })
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	#[test]
	fn nesterov_matches_its_closed_form_over_three_rounds() {
		// One parameter, the same update Δ = 1 every round, lr 0.5, μ 0.5:
		// b₁ = −1, θ₁ = −0.5·(−1 − 0.5) = 0.75
		// b₂ = −1.5, θ₂ = 0.75 + 0.5·(1 + 0.75) = 1.625
		// b₃ = −1.75, θ₃ = 1.625 + 0.5·(1 + 0.875) = 2.5625
		let opt: OuterOptimizer = "nesterov:0.5:0.5".parse().unwrap();
		let (mut p, mut b) = (vec![0f32], vec![0f32]);
		let mut got = Vec::new();
		for _ in 0..3 {
			opt.apply(&mut p, &mut b, &[1.0]).unwrap();
			got.push((p[0], b[0]));
		}
		assert_eq!(got, vec![(0.75, -1.0), (1.625, -1.5), (2.5625, -1.75)]);
	}

	#[test]
	fn nesterov_with_lr_1_and_no_momentum_is_averaging() {
		let delta = [0.25f32, -3.0, 1e-7];
		let (mut a, mut n) = (vec![1f32, 2.0, 3.0], vec![1f32, 2.0, 3.0]);
		OuterOptimizer::Average.apply(&mut a, &mut [], &delta).unwrap();
		let mut b = vec![0f32; 3];
		OuterOptimizer::Nesterov { lr: 1.0, momentum: 0.0 }
			.apply(&mut n, &mut b, &delta)
			.unwrap();
		assert_eq!(a, n);
	}

	#[test]
	fn shapes_and_strings_are_checked() {
		let opt: OuterOptimizer = "nesterov:0.7:0.9".parse().unwrap();
		assert_eq!(opt.to_string().parse::<OuterOptimizer>().unwrap(), opt);
		assert_eq!("avg".parse::<OuterOptimizer>().unwrap(), OuterOptimizer::Average);
		assert!(opt.apply(&mut [0.0; 2], &mut [0.0; 1], &[0.0; 2]).is_err());
		assert!(opt.apply(&mut [0.0; 2], &mut [0.0; 2], &[0.0; 3]).is_err());
		for bad in ["nesterov:0.7", "nesterov:0:0.9", "nesterov:0.7:1", "adam", "nesterov:x:0.9"] {
			assert!(bad.parse::<OuterOptimizer>().is_err(), "{bad}");
		}
	}
}
