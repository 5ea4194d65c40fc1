//! Evaluation: mean cross-entropy loss and accuracy on a held-out set.

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
	/// Number of samples evaluated.
	pub samples: usize,
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
	let mut correct = 0usize;
	let mut start = 0usize;
	while start < data.len() {
		let end = (start + EVAL_BATCH).min(data.len());
		let b = end - start;
		let xs = Tensor::from_slice(
			data.features().get(start * f..end * f).unwrap_or_default(),
			(b, f),
			model.device(),
		)?;
		let ys_slice = data.labels().get(start..end).unwrap_or_default();
		let ys = Tensor::from_slice(ys_slice, b, model.device())?;
		let logits = model.forward(&xs)?;
		let loss = crate::ops::softmax_cross_entropy(&logits, &ys)?
			.to_dtype(DType::F32)?
			.to_scalar::<f32>()?;
		loss_sum += f64::from(loss) * b as f64;
		let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
		correct += pred.iter().zip(ys_slice).filter(|(p, y)| p == y).count();
		start = end;
	}
	let n = data.len() as f64;
	Ok(Metrics {
		loss: (loss_sum / n) as f32,
		accuracy: (correct as f64 / n) as f32,
		samples: data.len(),
	})
}
