//! Model specs and seeded initialisation (`spec.rs`, [`ModelSpec`]) and the candle models
//! ([`Model`]).

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Result, TrainerError};
use crate::ops::GradSink;
use crate::update;

mod spec;
pub use spec::*;

/// A model: its spec and its parameters as candle [`Var`]s (on the CPU), in declared order.
#[derive(Debug)]
pub struct Model {
	spec: ModelSpec,
	infos: Vec<ParamInfo>,
	vars: Vec<Var>,
	device: Device,
	/// The dense layers' weight and bias gradients of the last backward pass (see
	/// [`Model::backward`]).
	sink: Arc<GradSink>,
}

impl Model {
	/// A model with the spec's deterministic initial weights.
	pub fn new(spec: &ModelSpec) -> Result<Self> {
		let params = spec.initial_params()?;
		Self::from_flat(spec, &params)
	}

	/// A model with the given flat parameters.
	pub fn from_flat(spec: &ModelSpec, params: &[f32]) -> Result<Self> {
		let infos = spec.param_infos()?;
		let device = Device::Cpu;
		let expected: usize = infos.iter().map(ParamInfo::len).sum();
		if params.len() != expected {
			return Err(TrainerError::mismatch(
				format!("parameter count of {spec}"),
				expected,
				params.len(),
			));
		}
		update::check_finite("model parameters", params)?;
		let mut vars = Vec::with_capacity(infos.len());
		let mut off = 0usize;
		for p in &infos {
			let n = p.len();
			let chunk = params.get(off..off + n).unwrap_or_default();
			vars.push(Var::from_tensor(&Tensor::from_slice(chunk, p.shape.as_slice(), &device)?)?);
			off += n;
		}
		Ok(Self { spec: spec.clone(), infos, vars, device, sink: Arc::default() })
	}

	/// A deep copy (fresh storage: training the copy does not touch `self`).
	pub fn try_clone(&self) -> Result<Self> {
		Self::from_flat(&self.spec, &self.flat_params()?)
	}

	/// The spec.
	pub fn spec(&self) -> &ModelSpec {
		&self.spec
	}

	/// The device (always the CPU for now).
	pub fn device(&self) -> &Device {
		&self.device
	}

	/// Names and shapes of the parameters, in declared order.
	pub fn param_infos(&self) -> &[ParamInfo] {
		&self.infos
	}

	/// The parameter variables, in declared order (clones share storage with the model).
	pub fn vars(&self) -> &[Var] {
		&self.vars
	}

	/// Named parameters, in declared order.
	pub fn named_params(&self) -> impl Iterator<Item = (&str, &Var)> {
		self.infos.iter().map(|p| p.name.as_str()).zip(self.vars.iter())
	}

	/// Total number of parameters (length of [`Model::flat_params`]).
	pub fn num_params(&self) -> usize {
		self.infos.iter().map(ParamInfo::len).sum()
	}

	/// All parameters as one flat vector in declared order.
	pub fn flat_params(&self) -> Result<Vec<f32>> {
		let mut out = Vec::with_capacity(self.num_params());
		for v in &self.vars {
			out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
		}
		Ok(out)
	}

	/// Replace all parameters from a flat vector in declared order. Rejects a vector of the
	/// wrong length or with NaN/inf values (the model is left unchanged then).
	pub fn set_flat_params(&mut self, params: &[f32]) -> Result<()> {
		if params.len() != self.num_params() {
			return Err(TrainerError::mismatch(
				format!("parameter count of {}", self.spec),
				self.num_params(),
				params.len(),
			));
		}
		update::check_finite("model parameters", params)?;
		let mut off = 0usize;
		for (p, v) in self.infos.iter().zip(&self.vars) {
			let n = p.len();
			let chunk = params.get(off..off + n).unwrap_or_default();
			v.set(&Tensor::from_slice(chunk, p.shape.as_slice(), &self.device)?)?;
			off += n;
		}
		Ok(())
	}

	/// The gradients of `loss` (computed from this model's outputs) for every tensor it
	/// depends on, the model's parameters included. Use this rather than `loss.backward()`:
	/// the dense layers of a logreg, MLP or CNN leave their parameters' gradients with the
	/// model (no zero tensor and add per parameter, [`GradSink`]), and this moves them into
	/// the store.
	pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
		self.sink.clear();
		let mut grads = loss.backward()?;
		self.sink.drain_into(&mut grads)?;
		Ok(grads)
	}

	/// Logits `[batch, classes]` for inputs `[batch, in_features]` (f32). For a `gpt`, the
	/// inputs are rows of `context + 1` token ids (as f32) and the logits are
	/// `[batch, context, vocab]`, predicting tokens `1..=context` of each row from the ones
	/// before (see [`crate::gpt::forward_tokens`] for raw token ids of any length ≤ context).
	pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
		let (b, f) = xs.dims2()?;
		if f != self.spec.in_features() {
			return Err(TrainerError::mismatch(
				format!("input features of {}", self.spec),
				self.spec.in_features(),
				f,
			));
		}
		let dense = |h: Tensor, vars: &[Var], relu_last: bool| -> Result<Tensor> {
			let mut h = h;
			let n = vars.len() / 2;
			for (i, pair) in vars.chunks_exact(2).enumerate() {
				let [w, bias] = pair else { continue };
				h = crate::ops::dense_into(&h, w.as_tensor(), bias.as_tensor(), &self.sink)?;
				if relu_last || i + 1 < n {
					h = h.relu()?;
				}
			}
			Ok(h)
		};
		match &self.spec.arch {
			Arch::Gpt { context, .. } => {
				let ids = xs.narrow(1, 0, *context as usize)?.to_dtype(DType::U32)?;
				crate::gpt::forward_tokens(self, &ids)
			},
			Arch::Logistic { .. } | Arch::Mlp { .. } => dense(xs.clone(), &self.vars, false),
			Arch::Cnn { channels, height, width, conv, .. } => {
				let mut h =
					xs.reshape((b, *channels as usize, *height as usize, *width as usize))?;
				let n_conv = conv.len();
				for pair in self.vars.chunks_exact(2).take(n_conv) {
					let [w, bias] = pair else { continue };
					let k = bias.as_tensor().dim(0)?;
					h = h
						.conv2d(w.as_tensor(), 1, 1, 1, 1)?
						.broadcast_add(&bias.as_tensor().reshape((1, k, 1, 1))?)?
						.relu()?;
					h = max_pool2x2(&h)?;
				}
				let h = h.flatten_from(1)?;
				let fc = self.vars.get(2 * n_conv..).unwrap_or_default();
				dense(h, fc, false)
			},
		}
	}

	/// The training loss of a batch and what it was computed from, for every arch: the one
	/// place that knows how a language model's loss differs from a classifier's.
	///
	/// `xs [B, in_features]` (f32), `ys [B]` (u32). Returns `(loss, logits, targets)`:
	/// * classifiers: mean cross-entropy of `logits [B, classes]` against `targets = ys`;
	/// * `gpt`: mean cross-entropy over all `B·T` positions of `logits [B·T, vocab]` against
	///   `targets [B·T]` = tokens `1..=T` of each row (`ys` is not used).
	pub fn batch_loss(&self, xs: &Tensor, ys: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
		let logits = self.forward(xs)?;
		let (logits, targets) = match &self.spec.arch {
			Arch::Gpt { vocab, context, .. } => {
				let (b, t) = (xs.dim(0)?, *context as usize);
				let targets =
					xs.narrow(1, 1, t)?.to_dtype(DType::U32)?.reshape(b.saturating_mul(t))?;
				(logits.reshape((b.saturating_mul(t), *vocab as usize))?, targets)
			},
			_ => (logits, ys.clone()),
		};
		let loss = crate::ops::softmax_cross_entropy(&logits, &targets)?;
		Ok((loss, logits, targets))
	}

	/// Convenience: build an input tensor `[batch, in_features]` from row-major data.
	pub fn input_tensor(&self, data: &[f32], batch: usize) -> Result<Tensor> {
		let f = self.spec.in_features();
		if data.len() != batch.saturating_mul(f) {
			return Err(TrainerError::mismatch(
				"input buffer length",
				batch.saturating_mul(f),
				data.len(),
			));
		}
		Ok(Tensor::from_slice(data, (batch, f), &self.device)?)
	}
}

/// 2x2 max-pool with stride 2 (odd trailing rows/columns dropped), built from a reshape and
/// two `max` reductions. candle 0.11's `max_pool2d` backward scales the gradient by the
/// fraction of maxima in each window (÷4 for a unique max), which the finite-difference test
/// caught; the reduction's backward routes the full gradient to the maximum, as it should.
pub fn max_pool2x2(h: &Tensor) -> Result<Tensor> {
	let (b, c, hh, ww) = h.dims4()?;
	let (h2, w2) = (hh / 2, ww / 2);
	let cropped = if hh % 2 == 1 || ww % 2 == 1 {
		h.narrow(2, 0, h2 * 2)?.narrow(3, 0, w2 * 2)?
	} else {
		h.clone()
	};
	Ok(cropped.reshape((b, c, h2, 2, w2, 2))?.max(5)?.max(3)?)
}

/// Dtype of every parameter.
pub const PARAM_DTYPE: DType = DType::F32;
