//! The arithmetic of verified payouts, free of storage: medians of score sheets, whether a
//! sheet agrees with them, and pro-rata splits. Everything saturates; nothing panics.

use alloc::vec::Vec;

/// The lower median of `values` (`None` if empty): no single verifier sets it, and with an
/// honest majority it lies between honest values.
pub fn lower_median<V: Ord + Copy>(values: &mut [V]) -> Option<V> {
	values.sort_unstable();
	let middle = values.len().checked_sub(1)? / 2;
	values.get(middle).copied()
}

/// The median score of each of `n` contributors over `sheets` (each sheet has `n` scores).
pub fn median_scores<'a>(sheets: impl Iterator<Item = &'a [i32]> + Clone, n: usize) -> Vec<i32> {
	(0..n)
		.map(|i| {
			let mut column: Vec<i32> = sheets.clone().filter_map(|s| s.get(i).copied()).collect();
			lower_median(&mut column).unwrap_or(0)
		})
		.collect()
}

/// Whether `scores` agree with `medians`: their L1 distance is at most a quarter of the
/// medians' L1 norm plus `tolerance` per contributor. A verifier that calls a useless update
/// useful (or the reverse) by more than that disagrees.
pub fn agrees(scores: &[i32], medians: &[i32], tolerance: u32) -> bool {
	if scores.len() != medians.len() {
		return false;
	}
	let distance: u64 = scores
		.iter()
		.zip(medians)
		.map(|(s, m)| u64::from(s.abs_diff(*m)))
		.fold(0, u64::saturating_add);
	let norm: u64 =
		medians.iter().map(|m| u64::from(m.unsigned_abs())).fold(0, u64::saturating_add);
	let slack = u64::from(tolerance).saturating_mul(medians.len() as u64);
	distance <= (norm / 4).saturating_add(slack)
}

/// Split all of `pool` in proportion to `weights`: each part rounded down, then the units
/// rounding left over go one each to the first entries of positive weight. Nothing is split
/// if every weight is zero.
pub fn pro_rata(pool: u128, weights: &[u64]) -> Vec<u128> {
	let total: u128 = weights.iter().map(|w| u128::from(*w)).fold(0, u128::saturating_add);
	if total == 0 {
		return weights.iter().map(|_| 0).collect();
	}
	let mut parts: Vec<u128> = weights
		.iter()
		.map(|w| {
			sp_runtime::helpers_128bit::multiply_by_rational_with_rounding(
				pool,
				u128::from(*w),
				total,
				sp_runtime::Rounding::Down,
			)
			.unwrap_or(0)
		})
		.collect();
	let mut left = pool.saturating_sub(parts.iter().fold(0, |a, p| a.saturating_add(*p)));
	for (part, w) in parts.iter_mut().zip(weights) {
		if left == 0 {
			break;
		}
		if *w > 0 {
			*part = part.saturating_add(1);
			left = left.saturating_sub(1);
		}
	}
	parts
}

/// Payout weights from median scores: the positive part of each.
pub fn positive_weights(medians: &[i32]) -> Vec<u64> {
	medians.iter().map(|m| u64::from((*m).max(0).unsigned_abs())).collect()
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn lower_median_ignores_one_outlier_of_three() {
		assert_eq!(lower_median(&mut [5, 1_000_000, 6]), Some(6));
		assert_eq!(lower_median(&mut [5, 6]), Some(5));
		assert_eq!(lower_median::<i32>(&mut []), None);
	}

	#[test]
	fn medians_per_contributor() {
		let a = [10, 0, -3];
		let b = [12, 900, -1];
		let c = [11, 1, -2];
		let sheets = [&a[..], &b[..], &c[..]];
		assert_eq!(median_scores(sheets.iter().copied(), 3), vec![11, 1, -2]);
	}

	#[test]
	fn agreement_tolerates_noise_not_lies() {
		let medians = [1000, 1000, 0, 0];
		assert!(agrees(&[1100, 950, 0, 10], &medians, 10));
		// Calling a free rider (median 0) as useful as the honest ones is a lie.
		assert!(!agrees(&[1000, 1000, 1000, 0], &medians, 10));
		assert!(!agrees(&[1000, 1000, 0], &medians, 10));
	}

	#[test]
	fn pro_rata_never_exceeds_the_pool() {
		let parts = pro_rata(100, &[1, 1, 1]);
		assert_eq!(parts, vec![34, 33, 33]);
		assert_eq!(pro_rata(100, &[0, 1, 1, 1]), vec![0, 34, 33, 33]);
		assert_eq!(pro_rata(100, &[0, 0]), vec![0, 0]);
		let big = pro_rata(u128::MAX, &[u64::MAX, u64::MAX]);
		assert_eq!(big.iter().fold(0u128, |a, b| a.saturating_add(*b)), u128::MAX);
		assert_eq!(positive_weights(&[-5, 0, 7]), vec![0, 0, 7]);
	}
}
