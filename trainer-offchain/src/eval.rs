//! Evaluation: mean cross-entropy loss and accuracy on a held-out set.
//!
//! For a language model (`gpt`) the loss is the mean per-token cross-entropy over every
//! predicted position, the accuracy is next-token accuracy over those positions, and
//! [`Metrics::perplexity`] is `exp(loss)`.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Result, TrainerError};
use crate::model::Model;

/// Evaluation figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
	/// Mean cross-entropy loss.
	pub loss: f32,
	/// Fraction of samples whose arg-max logit is the label.
	pub accuracy: f32,
	/// Number of samples (rows) evaluated.
	pub samples: usize,
}

impl Metrics {
	/// `exp(loss)`: the perplexity of a language model's per-token loss.
	pub fn perplexity(&self) -> f32 {
		self.loss.exp()
	}
}

/// Rows per forward pass of a language model with context `t` (≈ 16k positions).
fn batch_rows(model: &Model) -> usize {
	if model.spec().is_lm() {
		(16_384 / model.spec().in_features().max(1)).max(1)
	} else {
		EVAL_BATCH
	}
}

/// Rows per forward pass during evaluation.
pub const EVAL_BATCH: usize = 1024;

/// Evaluate `model` on `data` (checks feature count and labels first).
pub fn evaluate(model: &Model, data: &Dataset) -> Result<Metrics> {
	data.check_compatible(model.spec())?;
	if data.is_empty() {
		return Err(TrainerError::Config(format!("{}: no samples to evaluate", data.name)));
	}
	let f = data.n_features();
	let mut loss_sum = 0f64;
	let (mut correct, mut predicted) = (0usize, 0usize);
	let mut start = 0usize;
	let rows = batch_rows(model);
	while start < data.len() {
		let end = (start + rows).min(data.len());
		let b = end - start;
		let xs = Tensor::from_slice(
			data.features().get(start * f..end * f).unwrap_or_default(),
			(b, f),
			model.device(),
		)?;
		let ys_slice = data.labels().get(start..end).unwrap_or_default();
		let ys = Tensor::from_slice(ys_slice, b, model.device())?;
		let (loss, logits, targets) = model.batch_loss(&xs, &ys)?;
		let loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
		let targets = targets.to_vec1::<u32>()?;
		loss_sum += f64::from(loss) * targets.len() as f64;
		let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
		correct += pred.iter().zip(&targets).filter(|(p, y)| p == y).count();
		predicted += targets.len();
		start = end;
	}
	let n = predicted.max(1) as f64;
	Ok(Metrics {
		loss: (loss_sum / n) as f32,
		accuracy: (correct as f64 / n) as f32,
		samples: data.len(),
	})
}
