//! Input standardisation: `x' = (x − mean) / std`, fitted on the training data only.
//!
//! Raw tabular measurements (pixel counts 0–16, chemical concentrations up to ~1,700) make
//! gradient descent with one learning rate either crawl or diverge. `trainchain-trainer
//! train` therefore fits a [`Standardizer`] on its training set by default, trains on the
//! standardised data, stores the statistics in the checkpoint (see [`crate::checkpoint`])
//! and `eval` applies them again.
//!
//! * Dense models (`logreg`, `mlp`): one mean and std **per feature** ([`Scope::PerFeature`]).
//! * CNNs: **one** mean and std over all pixels of all training images ([`Scope::Global`]),
//!   so the relative brightness of pixels (the spatial structure the convolutions see) is
//!   kept and a border pixel that is almost always 0 is not blown up by a tiny std.
//!
//! Statistics are computed in `f64`, population std (divide by `n`, as scikit-learn's
//! `StandardScaler`). A constant feature (std ≤ [`CONSTANT_STD`] × max(1, |mean|)) gets
//! std 1, so it becomes 0 everywhere instead of NaN.

use crate::data::Dataset;
use crate::error::{Result, TrainerError};
use crate::model::{Arch, ModelSpec};

/// A std this small (relative to max(1, |mean|)) marks a feature as constant: its std is 1.
pub const CONSTANT_STD: f64 = 1e-9;

/// Which statistics [`Standardizer::fit`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
	/// One mean and std per feature (column).
	PerFeature,
	/// One mean and std over every value of the data set, repeated for each feature.
	Global,
}

impl Scope {
	/// The scope `train` uses for a model: [`Scope::Global`] for CNNs, else per feature.
	pub fn for_spec(spec: &ModelSpec) -> Self {
		match spec.arch {
			Arch::Cnn { .. } => Self::Global,
			_ => Self::PerFeature,
		}
	}
}

/// Per-feature mean and std (both of length `n_features`; every std finite and positive).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
	mean: Vec<f32>,
	std: Vec<f32>,
}

impl Standardizer {
	/// From stored statistics: same non-zero length, finite means, finite positive stds.
	pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
		if mean.is_empty() || mean.len() != std.len() {
			return Err(TrainerError::mismatch("standardizer: std length", mean.len(), std.len()));
		}
		crate::update::check_finite("standardizer: mean", &mean)?;
		crate::update::check_finite("standardizer: std", &std)?;
		if let Some((i, s)) = std.iter().enumerate().find(|(_, s)| **s <= 0.0) {
			return Err(TrainerError::Config(format!(
				"standardizer: std of feature {i} is {s}, must be positive"
			)));
		}
		Ok(Self { mean, std })
	}

	/// Fit on `data` (the training set): see the module docs.
	pub fn fit(data: &Dataset, scope: Scope) -> Result<Self> {
		if data.is_empty() {
			return Err(TrainerError::Config(format!(
				"{}: no samples to fit the standardizer on",
				data.name
			)));
		}
		let f = data.n_features();
		let (mean, var) = match scope {
			Scope::PerFeature => column_moments(data),
			Scope::Global => {
				let (m, v) = moments(data.features().iter().map(|&x| f64::from(x)));
				(vec![m; f], vec![v; f])
			},
		};
		let std = mean
			.iter()
			.zip(&var)
			.map(|(m, v)| {
				let s = v.max(0.0).sqrt();
				if s <= CONSTANT_STD * m.abs().max(1.0) {
					1.0
				} else {
					s as f32
				}
			})
			.collect();
		Self::new(mean.iter().map(|&m| m as f32).collect(), std)
	}

	/// Per-feature means.
	pub fn mean(&self) -> &[f32] {
		&self.mean
	}

	/// Per-feature stds (constant features: 1).
	pub fn std(&self) -> &[f32] {
		&self.std
	}

	/// Number of features.
	pub fn n_features(&self) -> usize {
		self.mean.len()
	}

	/// Standardise row-major `features` in place (length a multiple of `n_features`).
	pub fn apply_in_place(&self, features: &mut [f32]) -> Result<()> {
		let f = self.n_features();
		if !features.len().is_multiple_of(f) {
			return Err(TrainerError::mismatch(
				"standardizer: feature buffer length (multiple of)",
				f,
				features.len(),
			));
		}
		for row in features.chunks_exact_mut(f) {
			for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
				*x = (*x - m) / s;
			}
		}
		Ok(())
	}

	/// A standardised copy of `data` (same name and labels); its feature count must match.
	pub fn apply(&self, data: &Dataset) -> Result<Dataset> {
		if data.n_features() != self.n_features() {
			return Err(TrainerError::mismatch(
				format!("{}: feature count vs the stored standardizer", data.name),
				self.n_features(),
				data.n_features(),
			));
		}
		let mut xs = data.features().to_vec();
		self.apply_in_place(&mut xs)?;
		Dataset::new(data.name.clone(), data.n_features(), xs, data.labels().to_vec())
	}
}

/// Mean and population variance of a stream (Welford, `f64`).
fn moments(xs: impl Iterator<Item = f64>) -> (f64, f64) {
	let (mut n, mut mean, mut m2) = (0f64, 0f64, 0f64);
	for x in xs {
		n += 1.0;
		let d = x - mean;
		mean += d / n;
		m2 += d * (x - mean);
	}
	if n == 0.0 {
		(0.0, 0.0)
	} else {
		(mean, m2 / n)
	}
}

/// Per-column mean and population variance.
fn column_moments(data: &Dataset) -> (Vec<f64>, Vec<f64>) {
	let f = data.n_features();
	(0..f)
		.map(|j| moments((0..data.len()).filter_map(|i| data.row(i).get(j)).map(|&x| f64::from(x))))
		.unzip()
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	fn data(rows: &[[f32; 3]]) -> Dataset {
		let xs = rows.iter().flatten().copied().collect();
		Dataset::new("t", 3, xs, vec![0; rows.len()]).unwrap()
	}

	#[test]
	fn per_feature_fit_gives_zero_mean_unit_std_and_constant_features_std_one() {
		let d = data(&[[1000.0, 5.0, 7.0], [3000.0, 5.0, -1.0], [2000.0, 5.0, 3.0]]);
		let s = Standardizer::fit(&d, Scope::PerFeature).unwrap();
		assert_eq!(s.mean(), &[2000.0, 5.0, 3.0]);
		let sd0 = (2.0e6f64 / 3.0).sqrt() as f32;
		assert!((s.std()[0] - sd0).abs() < 1e-2, "{:?}", s.std());
		assert_eq!(s.std()[1], 1.0, "constant feature");
		let t = s.apply(&d).unwrap();
		assert_eq!(t.labels(), d.labels());
		let col = |j: usize| (0..3).map(|i| t.row(i)[j]).collect::<Vec<_>>();
		assert_eq!(col(1), vec![0.0; 3]);
		for j in [0, 2] {
			let c = col(j);
			let m: f32 = c.iter().sum::<f32>() / 3.0;
			let v: f32 = c.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / 3.0;
			assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5, "column {j}: {c:?}");
		}
	}

	#[test]
	fn global_fit_uses_one_statistic_for_every_feature() {
		let d = data(&[[0.0, 2.0, 4.0], [0.0, 2.0, 4.0]]);
		let s = Standardizer::fit(&d, Scope::Global).unwrap();
		assert_eq!(s.mean(), &[2.0; 3]);
		let sd = (8.0f32 / 3.0).sqrt();
		assert!(s.std().iter().all(|x| (x - sd).abs() < 1e-6), "{:?}", s.std());
		let t = s.apply(&d).unwrap();
		assert!(t.row(0)[0] < 0.0 && t.row(0)[1] == 0.0 && t.row(0)[2] > 0.0);
	}

	#[test]
	fn statistics_come_from_the_fitted_set_only() {
		let train = data(&[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]);
		let test = data(&[[100.0, 1.0, 1.0]]);
		let s = Standardizer::fit(&train, Scope::PerFeature).unwrap();
		assert_eq!(s.apply(&test).unwrap().row(0), &[99.0, 0.0, 0.0]);
	}

	#[test]
	fn bad_statistics_and_shapes_are_errors() {
		assert!(Standardizer::new(vec![0.0; 2], vec![1.0; 3]).is_err());
		assert!(Standardizer::new(vec![0.0], vec![0.0]).is_err());
		assert!(Standardizer::new(vec![f32::NAN], vec![1.0]).is_err());
		assert!(Standardizer::new(vec![], vec![]).is_err());
		let s = Standardizer::new(vec![0.0; 2], vec![1.0; 2]).unwrap();
		assert!(s.apply(&data(&[[1.0, 2.0, 3.0]])).is_err());
		assert!(s.apply_in_place(&mut [1.0; 3]).is_err());
		let empty = Dataset::new("e", 3, vec![], vec![]).unwrap();
		assert!(Standardizer::fit(&empty, Scope::PerFeature).is_err());
	}
}
