//! Did training learn? The check `trainchain-trainer train` runs after fitting.
//!
//! Rule: a run **fails** when a step's loss is not finite ([`TrainerError::Diverged`], raised
//! during training), or when the last epoch's mean training loss is not at least
//! [`MIN_IMPROVEMENT`] (1%) below **both**
//! * the loss of the initial model on the training data, and
//! * the loss of the best constant guess, i.e. predicting the training set's class
//!   frequencies: the entropy of its labels (skipped when there is one class only).
//!
//! A model that fails it is no better than guessing the most common classes (the loss stuck
//! at ln(classes)), or got worse than its random start (the loss blew up into the thousands):
//! in practice a learning rate too high for the data, or unscaled features.
//! ([`TrainerError::NotLearning`]).

use crate::data::Dataset;
use crate::error::{Result, TrainerError};
use crate::train::EpochReport;

/// Minimum relative improvement of the final training loss over the baselines (1%).
pub const MIN_IMPROVEMENT: f32 = 0.01;

/// Entropy (nats) of `data`'s label distribution: the mean cross-entropy of always
/// predicting the class frequencies, the best a model that ignores its input can do.
pub fn label_entropy(data: &Dataset) -> f32 {
	let n = data.len() as f64;
	if n == 0.0 {
		return 0.0;
	}
	let h: f64 = data
		.class_counts()
		.iter()
		.filter(|&&c| c > 0)
		.map(|&c| {
			let p = c as f64 / n;
			-p * p.ln()
		})
		.sum();
	h as f32
}

/// Apply the rule of the module docs to a finished run: `initial_loss` is the initial model's
/// mean loss on the training data, `entropy` its [`label_entropy`], `reports` the epochs.
pub fn check_learned(initial_loss: f32, entropy: f32, reports: &[EpochReport]) -> Result<()> {
	let Some(last) = reports.last() else {
		return Err(TrainerError::Config("training ran no epoch".into()));
	};
	let baseline = if entropy > 0.0 { initial_loss.min(entropy) } else { initial_loss };
	let loss = last.train_loss;
	if loss.is_finite() && loss < (1.0 - MIN_IMPROVEMENT) * baseline {
		return Ok(());
	}
	Err(TrainerError::NotLearning { loss, epoch: last.epoch, initial: initial_loss, entropy })
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	fn run(losses: &[f32]) -> Vec<EpochReport> {
		losses
			.iter()
			.enumerate()
			.map(|(i, &l)| EpochReport { epoch: i + 1, train_loss: l, test: None })
			.collect()
	}

	#[test]
	fn entropy_of_labels() {
		let d = Dataset::new("d", 1, vec![0.0; 4], vec![0, 1, 2, 3]).unwrap();
		assert!((label_entropy(&d) - 4f32.ln()).abs() < 1e-6);
		let one = Dataset::new("d", 1, vec![0.0; 3], vec![2, 2, 2]).unwrap();
		assert_eq!(label_entropy(&one), 0.0);
	}

	#[test]
	fn a_falling_loss_passes_and_a_stuck_or_exploding_one_fails() {
		let ln10 = 10f32.ln();
		assert!(check_learned(2.5, ln10, &run(&[1.0, 0.3, 0.1])).is_ok());
		// Stuck at chance (the unscaled MLP of issue #14).
		let stuck = check_learned(2.5, ln10, &run(&[2.35, 2.303, 2.302])).unwrap_err();
		assert!(matches!(stuck, TrainerError::NotLearning { epoch: 3, .. }), "{stuck}");
		assert!(stuck.to_string().contains("learning rate"), "{stuck}");
		// Exploding (the unscaled logistic regression): above the initial loss.
		assert!(check_learned(300.0, ln10, &run(&[9e3, 2e4])).is_err());
		// Below the initial loss but not below the constant guess.
		assert!(check_learned(300.0, ln10, &run(&[50.0, 2.4])).is_err());
		assert!(check_learned(2.5, ln10, &run(&[f32::NAN])).is_err());
		assert!(check_learned(2.5, ln10, &run(&[])).is_err());
		// One class: only the initial loss counts.
		assert!(check_learned(1.0, 0.0, &run(&[0.5])).is_ok());
		assert!(check_learned(1.0, 0.0, &run(&[1.0])).is_err());
	}
}
