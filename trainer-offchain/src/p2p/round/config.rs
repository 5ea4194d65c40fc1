//! A peer's settings: how updates travel ([`Scheme`]), test-only misbehaviour
//! ([`Byzantine`]) and [`PeerConfig`], with the warning for settings measured to hurt.

use crate::aggregate::RobustConfig;
use crate::compress::Compression;
use crate::outer::OuterOptimizer;
use crate::signing::Keys;
use anyhow::{bail, Result};
use std::str::FromStr;
use std::time::Duration;
use trainchain_primitives::{Hash32, JobId};

/// How updates travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
	/// Everybody sends its whole update to everybody: `S·(N−1)` per peer.
	AllToAll,
	/// Reduce-scatter to chunk owners + all-gather: `≈ 2·S·(N−1)/N` per peer.
	Chunked,
}

impl FromStr for Scheme {
	type Err = anyhow::Error;
	fn from_str(s: &str) -> Result<Self> {
		match s {
			"all-to-all" | "alltoall" => Ok(Scheme::AllToAll),
			"chunked" | "ring" | "reduce-scatter" => Ok(Scheme::Chunked),
			o => bail!("unknown scheme {o:?} (all-to-all|chunked)"),
		}
	}
}

impl std::fmt::Display for Scheme {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str(match self {
			Scheme::AllToAll => "all-to-all",
			Scheme::Chunked => "chunked",
		})
	}
}

/// Misbehaviour for tests only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Byzantine {
	/// Multiply the honest update by this factor.
	Scale(f32),
	/// Send NaNs.
	Nan,
	/// As a chunk's owner, send a different reduced chunk to every other peer (equivocation).
	SplitReduced,
	/// Free rider: send a zero update and claim three times the samples trained on.
	FreeRide,
}

impl FromStr for Byzantine {
	type Err = anyhow::Error;
	fn from_str(s: &str) -> Result<Self> {
		match s {
			"nan" => return Ok(Byzantine::Nan),
			"split-reduced" => return Ok(Byzantine::SplitReduced),
			"free-ride" => return Ok(Byzantine::FreeRide),
			_ => {},
		}
		match s.strip_prefix("scale:") {
			Some(f) => Ok(Byzantine::Scale(f.parse()?)),
			None => {
				bail!("unknown byzantine mode {s:?} (scale:FACTOR|nan|split-reduced|free-ride)")
			},
		}
	}
}

/// Settings of a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
	/// Job id.
	pub job_id: JobId,
	/// Genesis hash of the chain (goes into the signed payload).
	pub genesis_hash: Hash32,
	/// The peer's key.
	pub keys: Keys,
	/// Fewest participants for a round to count.
	pub min_peers: usize,
	/// Participants to wait for before round 0.
	pub initial_peers: usize,
	/// Deadline for each phase (readiness after own training; each exchange attempt).
	pub round_timeout: Duration,
	/// Aggregation and screening.
	pub robust: RobustConfig,
	/// Compression.
	pub compression: Compression,
	/// Carry what lossy compression dropped into the next round's update (error feedback).
	/// Off in public-data jobs, where each update must be its round's training alone.
	pub error_feedback: bool,
	/// How much of the carried residual is kept each round, in (0, 1]: 1 is classic error
	/// feedback, 0.95 SparseLoCo's decayed accumulator ([`crate::compress::ErrorFeedback`]).
	pub error_feedback_decay: f32,
	/// Exchange scheme.
	pub scheme: Scheme,
	/// Test-only misbehaviour.
	pub byzantine: Option<Byzantine>,
	/// Exchange attempts per round before the round is given up.
	pub max_attempts: u32,
	/// How the averaged update moves the model (FedAvg, or DiLoCo's Nesterov step).
	pub outer: OuterOptimizer,
}

impl PeerConfig {
	/// Defaults for tests and the CLI.
	pub fn new(job_id: JobId, keys: Keys) -> Self {
		Self {
			job_id,
			genesis_hash: [0; 32],
			keys,
			min_peers: 2,
			initial_peers: 2,
			round_timeout: Duration::from_secs(20),
			robust: RobustConfig::default(),
			compression: Compression::None,
			error_feedback: true,
			error_feedback_decay: 1.0,
			scheme: Scheme::Chunked,
			byzantine: None,
			max_attempts: 3,
			outer: OuterOptimizer::Average,
		}
	}
}

impl PeerConfig {
	/// A warning for settings measured to make the model worse than it started: outer
	/// momentum on top of sparse updates with error feedback. The momentum keeps pushing
	/// values that error feedback delivers late; `scripts/bench-diloco.sh` with
	/// `DILOCO_COMPRESSION=sparse:0.0156:2` took the language model's validation loss from
	/// 1.20 to 3.31 (plain averaging: 1.33; uncompressed Nesterov: 0.78).
	pub fn known_bad_combination(&self) -> Option<String> {
		let sparse =
			matches!(self.compression, Compression::TopK { .. } | Compression::Sparse { .. });
		let momentum =
			matches!(self.outer, OuterOptimizer::Nesterov { momentum, .. } if momentum > 0.0);
		(sparse && momentum && self.error_feedback).then(|| {
			format!(
				"compression {} with the job's outer optimiser {}: outer momentum on sparse \
				 updates with error feedback made a language model diverge in our benchmark \
				 (README, compression); prefer --compression int8 or fp16 for this job",
				self.compression, self.outer
			)
		})
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn outer_momentum_on_sparse_updates_is_warned_about() {
		let mut cfg = PeerConfig::new(1, Keys::from_suri("//Alice").unwrap());
		let nesterov = OuterOptimizer::Nesterov { lr: 0.7, momentum: 0.9 };
		for (comp, outer, ef, warned) in [
			("sparse:0.0156:2", nesterov, true, true),
			("topk:0.01", nesterov, true, true),
			("sparse:0.0156:2", nesterov, false, false),
			("sparse:0.0156:2", OuterOptimizer::Average, true, false),
			("int8", nesterov, true, false),
			("none", nesterov, true, false),
		] {
			cfg.compression = comp.parse().unwrap();
			cfg.outer = outer;
			cfg.error_feedback = ef;
			assert_eq!(cfg.known_bad_combination().is_some(), warned, "{comp} {outer} {ef}");
		}
	}
}
