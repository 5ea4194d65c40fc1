//! Robust, deterministic aggregation of flat updates.
//!
//! Aggregation happens in two steps so it can be split across peers (each chunk owner
//! aggregates its coordinates, see `p2p::round`):
//!
//! 1. [`screen`]: from per-contributor statistics (length ok, all finite, squared norm)
//!    decide who is rejected (wrong length, NaN/inf, norm above `k × median norm`) and the
//!    clipping factor of everybody else. Every peer runs this on the same statistics and so
//!    reaches the same decision.
//! 2. [`aggregate_columns`]: coordinate-wise mean (sample-weighted), median or trimmed mean
//!    over the accepted contributions, always in the given (sorted-by-key) order with f64
//!    accumulation, so the result is bit-identical on every peer.

use crate::signing::{short, PublicKey};
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// The aggregation rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregator {
	/// Sample-weighted mean (FedAvg).
	Mean,
	/// Coordinate-wise median (unweighted).
	Median,
	/// Coordinate-wise trimmed mean: drop `trim·n` lowest and highest values (at least one
	/// each when n ≥ 3).
	Trimmed {
		/// Fraction trimmed at each end.
		trim: f32,
	},
}

impl fmt::Display for Aggregator {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Aggregator::Mean => write!(f, "mean"),
			Aggregator::Median => write!(f, "median"),
			Aggregator::Trimmed { trim } => write!(f, "trimmed:{trim}"),
		}
	}
}

impl FromStr for Aggregator {
	type Err = anyhow::Error;
	fn from_str(s: &str) -> Result<Self> {
		Ok(match s {
			"mean" => Aggregator::Mean,
			"median" => Aggregator::Median,
			"trimmed" => Aggregator::Trimmed { trim: 0.25 },
			other => match other.strip_prefix("trimmed:") {
				Some(t) => {
					let trim: f32 = t.parse()?;
					if !(0.0..0.5).contains(&trim) {
						bail!("trim fraction must be in [0, 0.5)");
					}
					Aggregator::Trimmed { trim }
				},
				None => bail!("unknown aggregator {other:?} (mean|median|trimmed[:FRACTION])"),
			},
		})
	}
}

/// Screening and aggregation settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustConfig {
	/// The rule.
	pub aggregator: Aggregator,
	/// Reject an update whose norm exceeds `norm_factor × median norm` (0 disables; needs at
	/// least 3 valid updates).
	pub norm_factor: f32,
	/// Clip every accepted update to this L2 norm.
	pub clip_norm: Option<f32>,
}

impl Default for RobustConfig {
	fn default() -> Self {
		Self { aggregator: Aggregator::Mean, norm_factor: 10.0, clip_norm: None }
	}
}

/// What is known about one contribution before aggregation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
	/// Sender.
	pub who: PublicKey,
	/// Samples the sender trained on.
	pub samples: u64,
	/// Squared L2 norm (f64 sum in index order).
	pub sq_norm: f64,
	/// All values finite.
	pub finite: bool,
	/// Right length / decodable / matches its commitment.
	pub well_formed: bool,
}

impl Stat {
	/// Compute the statistics of a full update.
	pub fn of(who: PublicKey, samples: u64, update: &[f32], expected_len: usize) -> Self {
		let (sq_norm, finite) = partial_stat(update);
		Self { who, samples, sq_norm, finite, well_formed: update.len() == expected_len }
	}
}

/// `(sum of squares, all finite)` of a slice.
pub fn partial_stat(xs: &[f32]) -> (f64, bool) {
	// Eight running sums, one per lane (they vectorise; one sum is a chain of dependent
	// additions), added up at the end. The order of the additions is fixed, so every peer
	// gets the same bits for the same values.
	const LANES: usize = 8;
	let mut sums = [0f64; LANES];
	let mut finite = true;
	let rows = xs.chunks_exact(LANES);
	let rest = rows.remainder();
	for row in rows {
		for (s, x) in sums.iter_mut().zip(row) {
			finite &= x.is_finite();
			*s += f64::from(*x) * f64::from(*x);
		}
	}
	for x in rest {
		finite &= x.is_finite();
		sums[0] += f64::from(*x) * f64::from(*x);
	}
	(sums.iter().sum(), finite)
}

/// Why a contribution was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
	/// Wrong length, undecodable, or not matching its commitment.
	Malformed,
	/// Contains NaN or infinity.
	NonFinite,
	/// Norm far above the others.
	NormOutlier {
		/// Its norm.
		norm: f64,
		/// The median norm.
		median: f64,
	},
}

impl fmt::Display for Rejection {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Rejection::Malformed => write!(f, "malformed (wrong length or commitment)"),
			Rejection::NonFinite => write!(f, "NaN/inf values"),
			Rejection::NormOutlier { norm, median } => {
				write!(f, "norm {norm:.4} > k x median {median:.4}")
			},
		}
	}
}

/// Accepted contribution: sender, samples and clip scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accepted {
	/// Sender.
	pub who: PublicKey,
	/// Samples.
	pub samples: u64,
	/// Multiplier applied to the update (norm clipping; 1 otherwise).
	pub scale: f32,
}

/// The screening decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Screening {
	/// Accepted, in input order.
	pub accepted: Vec<Accepted>,
	/// Rejected with reasons.
	pub rejected: Vec<(PublicKey, Rejection)>,
}

fn median_f64(v: &mut [f64]) -> f64 {
	v.sort_by(|a, b| a.total_cmp(b));
	let n = v.len();
	match n {
		0 => 0.0,
		_ if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(0.0),
		_ => {
			(v.get(n / 2 - 1).copied().unwrap_or(0.0) + v.get(n / 2).copied().unwrap_or(0.0)) / 2.0
		},
	}
}

/// Decide who is accepted (deterministic in the input).
pub fn screen(stats: &[Stat], cfg: &RobustConfig) -> Screening {
	let mut out = Screening::default();
	let valid: Vec<&Stat> = stats
		.iter()
		.filter(|s| {
			if !s.well_formed {
				out.rejected.push((s.who, Rejection::Malformed));
				false
			} else if !s.finite || !s.sq_norm.is_finite() {
				out.rejected.push((s.who, Rejection::NonFinite));
				false
			} else {
				true
			}
		})
		.collect();
	let mut norms: Vec<f64> = valid.iter().map(|s| s.sq_norm.sqrt()).collect();
	let median = median_f64(&mut norms);
	for s in valid {
		let norm = s.sq_norm.sqrt();
		if cfg.norm_factor > 0.0
			&& stats.len() >= 3
			&& norm > cfg.norm_factor as f64 * median
			&& norm > 0.0
		{
			tracing::warn!(who = %short(&s.who), norm, median, "rejecting update: norm outlier");
			out.rejected.push((s.who, Rejection::NormOutlier { norm, median }));
			continue;
		}
		let scale = match cfg.clip_norm {
			Some(c) if norm > c as f64 && norm > 0.0 => (c as f64 / norm) as f32,
			_ => 1.0,
		};
		out.accepted.push(Accepted { who: s.who, samples: s.samples, scale });
	}
	for (who, why) in &out.rejected {
		tracing::warn!(who = %short(who), reason = %why, "update rejected");
	}
	out
}

/// Aggregate coordinate-wise. `columns[i]` is the (same-length) slice of accepted
/// contribution `accepted[i]`. Order matters only through determinism: callers pass
/// contributions sorted by public key.
pub fn aggregate_columns(
	aggregator: Aggregator,
	accepted: &[Accepted],
	columns: &[&[f32]],
) -> Result<Vec<f32>> {
	if accepted.len() != columns.len() || accepted.is_empty() {
		bail!("aggregate of {} accepted / {} columns", accepted.len(), columns.len());
	}
	let len = columns.first().map(|c| c.len()).unwrap_or(0);
	if columns.iter().any(|c| c.len() != len) {
		bail!("columns of different lengths");
	}
	let n = columns.len();
	let mut out = Vec::with_capacity(len);
	match aggregator {
		Aggregator::Mean => {
			let total: f64 = accepted.iter().map(|a| a.samples as f64).sum();
			let weights: Vec<f64> = if total > 0.0 {
				accepted.iter().map(|a| a.samples as f64 / total * a.scale as f64).collect()
			} else {
				accepted.iter().map(|a| a.scale as f64 / n as f64).collect()
			};
			// A tile at a time, so that the running sums stay in cache: each value gets the
			// same additions in the same order as over whole columns.
			const TILE: usize = 2048;
			let mut acc = [0f64; TILE];
			for start in (0..len).step_by(TILE) {
				let end = (start + TILE).min(len);
				let acc = acc.get_mut(..end - start).unwrap_or_default();
				acc.fill(0.0);
				for (col, w) in columns.iter().zip(&weights) {
					for (a, x) in acc.iter_mut().zip(col.get(start..end).unwrap_or_default()) {
						*a += *x as f64 * w;
					}
				}
				out.extend(acc.iter().map(|a| *a as f32));
			}
		},
		Aggregator::Median | Aggregator::Trimmed { .. } => {
			let trim = match aggregator {
				Aggregator::Trimmed { trim } => {
					let t = (trim as f64 * n as f64).floor() as usize;
					let t = if n >= 3 { t.max(1) } else { 0 };
					t.min((n - 1) / 2)
				},
				_ => 0,
			};
			let mut vals = vec![0f64; n];
			for j in 0..len {
				for ((v, col), a) in vals.iter_mut().zip(columns).zip(accepted) {
					*v = col.get(j).copied().unwrap_or(0.0) as f64 * a.scale as f64;
				}
				let x = if matches!(aggregator, Aggregator::Median) {
					median_f64(&mut vals)
				} else {
					vals.sort_by(|a, b| a.total_cmp(b));
					let kept = vals.get(trim..n - trim).unwrap_or_default();
					kept.iter().sum::<f64>() / kept.len().max(1) as f64
				};
				out.push(x as f32);
			}
		},
	}
	Ok(out)
}

/// Screen and aggregate full updates (`contribs` sorted by key). Returns the aggregate
/// (`None` when nobody is accepted) and the screening.
pub fn aggregate(
	contribs: &[(PublicKey, u64, &[f32])],
	expected_len: usize,
	cfg: &RobustConfig,
) -> Result<(Option<Vec<f32>>, Screening)> {
	let stats: Vec<Stat> =
		contribs.iter().map(|(w, s, u)| Stat::of(*w, *s, u, expected_len)).collect();
	let screening = screen(&stats, cfg);
	if screening.accepted.is_empty() {
		return Ok((None, screening));
	}
	let cols: Vec<&[f32]> = screening
		.accepted
		.iter()
		.filter_map(|a| contribs.iter().find(|c| c.0 == a.who).map(|c| c.2))
		.collect();
	let agg = aggregate_columns(cfg.aggregator, &screening.accepted, &cols)?;
	Ok((Some(agg), screening))
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	fn k(i: u8) -> PublicKey {
		[i; 32]
	}

	#[test]
	fn mean_is_sample_weighted() {
		let a = [1.0f32, 2.0];
		let b = [3.0f32, 6.0];
		let cfg = RobustConfig::default();
		let (agg, s) = aggregate(&[(k(1), 1, &a), (k(2), 3, &b)], 2, &cfg).unwrap();
		assert_eq!(agg.unwrap(), vec![2.5, 5.0]);
		assert!(s.rejected.is_empty());
	}

	#[test]
	fn partial_stat_sums_squares_and_finds_non_finite_values_in_every_lane() {
		for n in [0usize, 1, 7, 8, 9, 1000, 1003] {
			let xs: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
			let naive: f64 = xs.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
			let (s, finite) = partial_stat(&xs);
			assert!(finite);
			assert!((s - naive).abs() <= 1e-12 * naive.max(1.0), "n={n}: {s} vs {naive}");
			for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
				for at in (0..n).step_by(5).chain(n.checked_sub(1)) {
					let mut ys = xs.clone();
					ys[at] = bad;
					assert!(!partial_stat(&ys).1, "n={n}: {bad} at {at} missed");
				}
			}
		}
	}

	#[test]
	fn rejects_nan_wrong_length_and_outliers() {
		let good = [[1.0f32, 1.0], [1.1, 0.9], [0.9, 1.2]];
		let nan = [f32::NAN, 1.0];
		let short = [1.0f32];
		let huge = [1000.0f32, -1000.0];
		let cfg = RobustConfig::default();
		let contribs: Vec<(PublicKey, u64, &[f32])> = vec![
			(k(1), 1, &good[0]),
			(k(2), 1, &good[1]),
			(k(3), 1, &good[2]),
			(k(4), 1, &nan),
			(k(5), 1, &short),
			(k(6), 1, &huge),
		];
		let (agg, s) = aggregate(&contribs, 2, &cfg).unwrap();
		let agg = agg.unwrap();
		assert!((agg[0] - 1.0).abs() < 1e-6 && (agg[1] - 1.0333333).abs() < 1e-6, "{agg:?}");
		let rejected: Vec<PublicKey> = s.rejected.iter().map(|r| r.0).collect();
		assert_eq!(rejected.len(), 3);
		for w in [k(4), k(5), k(6)] {
			assert!(rejected.contains(&w));
		}
	}

	#[test]
	fn median_and_trimmed_resist_a_scaled_update() {
		let ups: Vec<[f32; 1]> = vec![[1.0], [2.0], [3.0], [400.0]];
		let contribs: Vec<(PublicKey, u64, &[f32])> =
			ups.iter().enumerate().map(|(i, u)| (k(i as u8), 1, &u[..])).collect();
		let off = |aggregator| RobustConfig { aggregator, norm_factor: 0.0, clip_norm: None };
		let (m, _) = aggregate(&contribs, 1, &off(Aggregator::Median)).unwrap();
		assert_eq!(m.unwrap(), vec![2.5]);
		let (t, _) = aggregate(&contribs, 1, &off(Aggregator::Trimmed { trim: 0.25 })).unwrap();
		assert_eq!(t.unwrap(), vec![2.5]);
		let (mean, _) = aggregate(&contribs, 1, &off(Aggregator::Mean)).unwrap();
		assert!(mean.unwrap()[0] > 100.0);
	}

	#[test]
	fn clipping_scales_down() {
		let a = [3.0f32, 4.0];
		let cfg = RobustConfig { clip_norm: Some(1.0), ..Default::default() };
		let (agg, s) = aggregate(&[(k(1), 1, &a)], 2, &cfg).unwrap();
		assert_eq!(s.accepted[0].scale, 0.2);
		let agg = agg.unwrap();
		assert!((agg[0] - 0.6).abs() < 1e-6 && (agg[1] - 0.8).abs() < 1e-6);
	}
}
