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

/// How every contributor and verifier of a job transforms input features before the model:
/// the job metadata's `input=` (see [`crate::plan`]), covered by the model commitment.
///
/// Contributors hold different shards, so statistics each fitted on its own would differ and
/// their updates would not add up. The sponsor fits them once (`trainchain-trainer hash
/// --standardize DATA`) and the job fixes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum InputTransform {
	/// The features as they are (`input=raw`, or no `input=`).
	#[default]
	Raw,
	/// `x' = (x − mean) / std` with the job's statistics: one pair per feature, or a single
	/// pair for every feature (global scope).
	Standard(Standardizer),
}

impl InputTransform {
	/// Prefix of a standardising transform's text form.
	const STANDARD: &'static str = "standard:";

	/// The job transform for statistics fitted by [`Standardizer::fit`]: a global fit (every
	/// feature the same mean and std) is stored as one pair.
	pub fn standard(s: Standardizer) -> Self {
		let global =
			s.mean.windows(2).all(|w| w[0] == w[1]) && s.std.windows(2).all(|w| w[0] == w[1]);
		if global && s.n_features() > 1 {
			return Self::Standard(Standardizer { mean: vec![s.mean[0]], std: vec![s.std[0]] });
		}
		Self::Standard(s)
	}

	/// The standardizer for data of `n_features` features (`None` for [`Self::Raw`]); a
	/// per-feature transform must have exactly that many.
	pub fn standardizer(&self, n_features: usize) -> Result<Option<Standardizer>> {
		let Self::Standard(s) = self else { return Ok(None) };
		if s.n_features() == 1 {
			return Standardizer::new(vec![s.mean[0]; n_features], vec![s.std[0]; n_features])
				.map(Some);
		}
		if s.n_features() != n_features {
			return Err(TrainerError::mismatch(
				"the job's input statistics: features (the data's count)",
				n_features,
				s.n_features(),
			));
		}
		Ok(Some(s.clone()))
	}

	/// `data` transformed (moved through unchanged for [`Self::Raw`]).
	pub fn apply(&self, data: Dataset) -> Result<Dataset> {
		match self.standardizer(data.n_features())? {
			Some(s) => s.apply(&data),
			None => Ok(data),
		}
	}
}

impl std::fmt::Display for InputTransform {
	/// `raw`, or `standard:` and the base64 (URL alphabet, no padding) of the f32
	/// little-endian means followed by the stds. f32 round-trips exactly, so this is the
	/// canonical form the commitment covers.
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		use base64::Engine as _;
		match self {
			Self::Raw => f.write_str("raw"),
			Self::Standard(s) => {
				let bytes: Vec<u8> =
					s.mean.iter().chain(&s.std).flat_map(|x| x.to_le_bytes()).collect();
				let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
				write!(f, "{}{text}", Self::STANDARD)
			},
		}
	}
}

impl std::str::FromStr for InputTransform {
	type Err = TrainerError;
	fn from_str(s: &str) -> Result<Self> {
		use base64::Engine as _;
		if s == "raw" {
			return Ok(Self::Raw);
		}
		let bad = |why: &str| TrainerError::Config(format!("input transform {s:?}: {why}"));
		let Some(text) = s.strip_prefix(Self::STANDARD) else {
			return Err(bad("expected raw or standard:<base64 of f32 means ‖ stds>"));
		};
		let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
			.decode(text)
			.map_err(|e| bad(&format!("not base64: {e}")))?;
		if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
			return Err(bad(&format!(
				"{} bytes is not a whole number of (mean, std) f32 pairs",
				bytes.len()
			)));
		}
		let xs: Vec<f32> = bytes
			.chunks_exact(4)
			.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
			.collect();
		let (mean, std) = xs.split_at(xs.len() / 2);
		Standardizer::new(mean.to_vec(), std.to_vec())
			.map(Self::Standard)
			.map_err(|e| bad(&e.to_string()))
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

	#[test]
	fn job_transforms_round_trip_through_their_text_and_broadcast_a_global_pair() {
		let d = data(&[[1000.0, 5.0, 7.0], [3000.0, 5.0, -1.0], [2000.0, 5.0, 3.0]]);
		let per = InputTransform::standard(Standardizer::fit(&d, Scope::PerFeature).unwrap());
		let text = per.to_string();
		assert!(text.starts_with("standard:") && !text.contains(';') && !text.contains('='));
		assert_eq!(text.parse::<InputTransform>().unwrap(), per);
		assert_eq!(
			per.apply(d.clone()).unwrap(),
			Standardizer::fit(&d, Scope::PerFeature).unwrap().apply(&d).unwrap()
		);
		// A global fit is stored as one pair and applied to every feature.
		let global = InputTransform::standard(Standardizer::fit(&d, Scope::Global).unwrap());
		let InputTransform::Standard(g) = &global else { panic!("not standard") };
		assert_eq!(g.n_features(), 1);
		assert_eq!(global.to_string().parse::<InputTransform>().unwrap(), global);
		assert_eq!(
			global.standardizer(3).unwrap().unwrap(),
			Standardizer::fit(&d, Scope::Global).unwrap()
		);
		assert_eq!(InputTransform::Raw.apply(d.clone()).unwrap(), d);
		assert_eq!("raw".parse::<InputTransform>().unwrap(), InputTransform::Raw);
		// Per-feature statistics for another feature count are an error, not a silent misfit.
		assert!(per.standardizer(4).is_err());
		use base64::Engine as _;
		let b64 = |xs: &[f32]| {
			let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
			format!("standard:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
		};
		assert!(b64(&[0.0, 1.0]).parse::<InputTransform>().is_ok());
		for bad in [
			"standard:".to_string(),
			"standard:!!".to_string(),
			"minmax:0:1".to_string(),
			b64(&[0.0, 1.0, 2.0]),      // not whole pairs
			b64(&[0.0, 0.0]),           // std 0
			b64(&[f32::NAN, 1.0]),      // NaN mean
			b64(&[0.0, f32::INFINITY]), // infinite std
			b64(&[0.0, -1.0]),          // negative std
		] {
			assert!(bad.parse::<InputTransform>().is_err(), "{bad}");
		}
	}
}
