//! Local training: optimizers, one local round → update, and multi-epoch fitting.
//!
//! Determinism: the only randomness is the per-epoch shuffle, drawn from
//! `SplitMix64::derive(seed, &[epoch])`; candle's CPU kernels are deterministic for a fixed
//! thread count, so the same model, data, config and seed give a bit-identical update.

use crate::adamw::AdamW;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Result, TrainerError};
use crate::eval::{evaluate, Metrics};
use crate::model::Model;
use crate::rng::SplitMix64;
use crate::update;

/// SGD with (heavy-ball) momentum and optional L2 weight decay, PyTorch convention:
/// `g ← g + wd·θ; v ← μ·v + g; θ ← θ − lr·v` (the first step uses `v = g`).
#[derive(Debug)]
pub struct SgdMomentum {
	vars: Vec<(Var, Option<Vec<f32>>)>,
	params: SgdParams,
}

/// Parameters of [`SgdMomentum`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdParams {
	/// Learning rate.
	pub lr: f64,
	/// Momentum coefficient μ (0 disables momentum).
	pub momentum: f64,
	/// L2 weight decay.
	pub weight_decay: f64,
}

impl Optimizer for SgdMomentum {
	type Config = SgdParams;

	fn new(vars: Vec<Var>, params: SgdParams) -> candle_core::Result<Self> {
		let vars = vars.into_iter().filter(|v| v.dtype().is_float()).map(|v| (v, None)).collect();
		Ok(Self { vars, params })
	}

	fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
		let p = self.params;
		for (var, velocity) in self.vars.iter_mut() {
			let Some(g) = grads.get(var) else { continue };
			// One fused in-place pass per parameter (see `ops::sgd_momentum_inplace`).
			crate::ops::sgd_momentum_inplace(
				var.as_tensor(),
				g,
				velocity,
				p.lr as f32,
				p.momentum as f32,
				p.weight_decay as f32,
			)?;
		}
		Ok(())
	}

	fn learning_rate(&self) -> f64 {
		self.params.lr
	}

	fn set_learning_rate(&mut self, lr: f64) {
		self.params.lr = lr;
	}
}

impl SgdMomentum {
	/// The velocities, flat in parameter order (zeros for a tensor without one), and which
	/// tensors have one.
	fn velocities(&self) -> (Vec<f32>, Vec<bool>) {
		let mut flat = Vec::new();
		let mut present = Vec::with_capacity(self.vars.len());
		for (var, velocity) in &self.vars {
			match velocity {
				Some(v) => flat.extend_from_slice(v),
				None => flat.resize(flat.len() + var.elem_count(), 0.0),
			}
			present.push(velocity.is_some());
		}
		(flat, present)
	}

	/// Set the velocities from [`SgdMomentum::velocities`]'s output.
	fn set_velocities(
		&mut self,
		flat: &[f32],
		present: &[bool],
	) -> std::result::Result<(), String> {
		let total: usize = self.vars.iter().map(|(v, _)| v.elem_count()).sum();
		if flat.len() != total || present.len() != self.vars.len() {
			return Err(format!(
				"{} values for {} tensors, the model has {total} in {}",
				flat.len(),
				present.len(),
				self.vars.len()
			));
		}
		let mut rest = flat;
		for ((var, velocity), &has) in self.vars.iter_mut().zip(present) {
			let (mine, next) = rest.split_at(var.elem_count());
			*velocity = has.then(|| mine.to_vec());
			rest = next;
		}
		Ok(())
	}
}

/// Which optimizer a round uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
	/// SGD with momentum.
	Sgd(SgdParams),
	/// Adam (AdamW with decoupled weight decay; `weight_decay = 0` is plain Adam).
	/// `--optimizer adamw` is the same with a default decay of 0.01.
	Adam {
		/// Learning rate.
		lr: f64,
		/// β₁.
		beta1: f64,
		/// β₂.
		beta2: f64,
		/// ε.
		eps: f64,
		/// Decoupled weight decay.
		weight_decay: f64,
	},
}

impl OptimizerConfig {
	/// SGD, lr 0.05, momentum 0.9.
	pub fn sgd(lr: f64, momentum: f64) -> Self {
		Self::Sgd(SgdParams { lr, momentum, weight_decay: 0.0 })
	}

	/// Adam with the usual betas and no weight decay.
	pub fn adam(lr: f64) -> Self {
		Self::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
	}

	/// The (base) learning rate.
	pub fn lr(&self) -> f64 {
		match *self {
			Self::Sgd(p) => p.lr,
			Self::Adam { lr, .. } => lr,
		}
	}

	fn build(&self, vars: Vec<Var>) -> Result<AnyOptimizer> {
		Ok(match *self {
			Self::Sgd(p) => {
				if !(p.lr > 0.0 && p.lr.is_finite() && (0.0..1.0).contains(&p.momentum)) {
					return Err(TrainerError::Config(format!("bad SGD parameters {p:?}")));
				}
				AnyOptimizer::Sgd(SgdMomentum::new(vars, p)?)
			},
			Self::Adam { lr, beta1, beta2, eps, weight_decay } => {
				if !(lr > 0.0 && lr.is_finite()) {
					return Err(TrainerError::Config(format!("bad Adam learning rate {lr}")));
				}
				AnyOptimizer::Adam(AdamW::new(
					vars,
					ParamsAdamW { lr, beta1, beta2, eps, weight_decay },
				)?)
			},
		})
	}
}

enum AnyOptimizer {
	Sgd(SgdMomentum),
	Adam(AdamW),
}

/// An inner optimizer's state (momentum; Adam's moments and step count) carried from one
/// local round to the next, as DiLoCo's workers keep theirs. Empty by default: the next round
/// starts a fresh optimizer. The state holds the model's own parameters, so it belongs to the
/// one [`Model`] it was built for.
#[derive(Default)]
pub struct InnerState(Option<AnyOptimizer>);

impl InnerState {
	/// Whether a round has left a state to continue.
	pub fn is_kept(&self) -> bool {
		self.0.is_some()
	}

	/// The state as plain numbers (for a checkpoint), if a round has left one.
	pub fn snapshot(&self) -> Option<InnerSnapshot> {
		Some(match self.0.as_ref()? {
			AnyOptimizer::Sgd(o) => {
				let (first, present) = o.velocities();
				InnerSnapshot { kind: InnerKind::Sgd, step: 0, first, second: Vec::new(), present }
			},
			AnyOptimizer::Adam(o) => {
				let (step, first, second) = o.moments();
				let present = vec![true; o.len()];
				InnerSnapshot { kind: InnerKind::Adam, step, first, second, present }
			},
		})
	}

	/// The state `snapshot` holds, for `model` trained with `optimizer` (a checkpoint's
	/// [`InnerSnapshot`] back into a trainer). Refused when it belongs to another optimizer or
	/// another model's sizes.
	pub fn restore(
		model: &Model,
		optimizer: &OptimizerConfig,
		snapshot: &InnerSnapshot,
	) -> Result<Self> {
		let mut opt = optimizer.build(model.vars().to_vec())?;
		let bad = |msg: String| TrainerError::Config(format!("inner optimizer state: {msg}"));
		match (&mut opt, snapshot.kind) {
			(AnyOptimizer::Sgd(o), InnerKind::Sgd) => {
				o.set_velocities(&snapshot.first, &snapshot.present).map_err(bad)?
			},
			(AnyOptimizer::Adam(o), InnerKind::Adam) => {
				o.set_moments(snapshot.step, &snapshot.first, &snapshot.second).map_err(bad)?
			},
			(_, kind) => {
				return Err(bad(format!("saved for {kind:?}, the plan names another optimizer")))
			},
		}
		Ok(Self(Some(opt)))
	}
}

/// Which optimizer an [`InnerSnapshot`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerKind {
	/// SGD with momentum.
	Sgd,
	/// AdamW.
	Adam,
}

/// An inner optimizer's state as plain numbers, in the model's parameter order: what
/// `peer`/`run --out` save so that `--resume` continues a job that keeps it
/// (`inner_state=kept`) exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct InnerSnapshot {
	/// The optimizer it belongs to.
	pub kind: InnerKind,
	/// AdamW's step count (0 for SGD).
	pub step: u32,
	/// SGD: the velocities (0 for a tensor without one yet); AdamW: the first moments.
	pub first: Vec<f32>,
	/// AdamW: the second moments; SGD: empty.
	pub second: Vec<f32>,
	/// Per parameter tensor, whether it has a state yet (SGD starts a velocity at a tensor's
	/// first gradient; AdamW's are all present).
	pub present: Vec<bool>,
}

impl AnyOptimizer {
	/// Whether this is the optimizer `cfg` names (its state can continue under `cfg`).
	fn is(&self, cfg: &OptimizerConfig) -> bool {
		matches!(
			(self, cfg),
			(Self::Sgd(_), OptimizerConfig::Sgd(_)) | (Self::Adam(_), OptimizerConfig::Adam { .. })
		)
	}

	fn step(&mut self, grads: &GradStore) -> Result<()> {
		match self {
			Self::Sgd(o) => o.step(grads)?,
			Self::Adam(o) => o.step(grads)?,
		}
		Ok(())
	}

	fn set_learning_rate(&mut self, lr: f64) {
		match self {
			Self::Sgd(o) => o.set_learning_rate(lr),
			Self::Adam(o) => o.set_learning_rate(lr),
		}
	}
}

/// Learning-rate schedule: the optimizer's learning rate is `base · factor(step)` at each
/// (0-based) optimizer step of a [`Trainer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
	/// `factor = 1`.
	#[default]
	Constant,
	/// Linear warm-up then cosine decay: `factor = (step + 1) / warmup` for
	/// `step < warmup`, then `min_ratio + (1 − min_ratio) · (1 + cos(π·p)) / 2` with
	/// `p = min(1, (step − warmup) / (total − warmup))`; `min_ratio` after `total` steps.
	WarmupCosine {
		/// Warm-up steps (0: none).
		warmup: usize,
		/// Step at which the decay reaches `min_ratio`.
		total: usize,
		/// Final fraction of the base learning rate (0..=1).
		min_ratio: f64,
	},
}

impl Schedule {
	/// The learning-rate factor at `step` (0-based).
	pub fn factor(&self, step: usize) -> f64 {
		match *self {
			Self::Constant => 1.0,
			Self::WarmupCosine { warmup, total, min_ratio } => {
				if step < warmup {
					return (step + 1) as f64 / warmup as f64;
				}
				let span = total.saturating_sub(warmup).max(1);
				let p = ((step - warmup) as f64 / span as f64).min(1.0);
				min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
			},
		}
	}

	fn check(&self) -> Result<()> {
		if let Self::WarmupCosine { min_ratio, .. } = *self {
			if !(0.0..=1.0).contains(&min_ratio) {
				return Err(TrainerError::Config(format!(
					"schedule min_ratio {min_ratio} must be in 0..=1"
				)));
			}
		}
		Ok(())
	}
}

/// Configuration of local training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
	/// Passes over the local data (ignored when `max_steps` is set).
	pub epochs: usize,
	/// If set, run exactly this many optimizer steps (cycling through epochs as needed).
	pub max_steps: Option<usize>,
	/// Mini-batch size (the last batch of an epoch may be smaller).
	pub batch_size: usize,
	/// Optimizer.
	pub optimizer: OptimizerConfig,
	/// Learning-rate schedule over the steps of one [`Trainer`] (one `fit`, or one
	/// `local_round`: a round restarts it).
	#[serde(default)]
	pub schedule: Schedule,
	/// The schedule's step at this trainer's first step: a round of `H` local steps in a
	/// job starts at `round · H`, so one warm-up + cosine spans the whole job, not each round.
	#[serde(default)]
	pub first_step: usize,
}

impl Default for TrainConfig {
	fn default() -> Self {
		Self {
			epochs: 1,
			max_steps: None,
			batch_size: 32,
			optimizer: OptimizerConfig::sgd(0.05, 0.9),
			schedule: Schedule::Constant,
			first_step: 0,
		}
	}
}

/// Result of [`local_round`].
#[derive(Clone, Debug, PartialEq)]
pub struct RoundOutput {
	/// `new params − old params`, flat, declared order.
	pub update: Vec<f32>,
	/// Mean training loss over the round's steps (sample-weighted).
	pub loss: f32,
	/// Number of local training samples (the data set size); the FedAvg weight.
	pub samples: u64,
	/// Optimizer steps taken.
	pub steps: usize,
}

/// Progress events of [`fit`].
#[derive(Clone, Debug)]
pub enum Progress {
	/// A step finished.
	Step {
		/// Steps done so far.
		done: usize,
		/// Total steps of the run.
		total: usize,
		/// Loss of this step's batch.
		loss: f32,
	},
	/// An epoch finished.
	Epoch(EpochReport),
}

/// Per-epoch figures of [`fit`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochReport {
	/// 1-based epoch.
	pub epoch: usize,
	/// Mean training loss over the epoch.
	pub train_loss: f32,
	/// Held-out metrics, when a test set was given.
	pub test: Option<Metrics>,
}

/// A stateful trainer: one optimizer over the model's vars, reused across epochs.
pub struct Trainer<'m> {
	model: &'m Model,
	opt: AnyOptimizer,
	base_lr: f64,
	schedule: Schedule,
	first_step: usize,
	batch_size: usize,
	steps: usize,
	xbuf: Vec<f32>,
	ybuf: Vec<u32>,
}

impl<'m> Trainer<'m> {
	/// A trainer for `model` with a fresh optimizer state.
	pub fn new(model: &'m Model, cfg: &TrainConfig) -> Result<Self> {
		Self::resume(model, cfg, &mut InnerState::default())
	}

	/// A trainer for `model` that continues the optimizer state in `state` (taken out of it;
	/// give it back with [`Trainer::save_state`]), or starts a fresh one if `state` is empty
	/// or was built for another optimizer.
	pub fn resume(model: &'m Model, cfg: &TrainConfig, state: &mut InnerState) -> Result<Self> {
		if cfg.batch_size == 0 {
			return Err(TrainerError::Config("batch size must be positive".into()));
		}
		cfg.schedule.check()?;
		let opt = match state.0.take() {
			Some(mut opt) if opt.is(&cfg.optimizer) => {
				opt.set_learning_rate(cfg.optimizer.lr());
				opt
			},
			_ => cfg.optimizer.build(model.vars().to_vec())?,
		};
		Ok(Self {
			model,
			opt,
			base_lr: cfg.optimizer.lr(),
			schedule: cfg.schedule,
			first_step: cfg.first_step,
			batch_size: cfg.batch_size,
			steps: 0,
			xbuf: Vec::new(),
			ybuf: Vec::new(),
		})
	}

	/// Put the optimizer's state into `state`, for the next [`Trainer::resume`].
	pub fn save_state(self, state: &mut InnerState) {
		state.0 = Some(self.opt);
	}

	/// Optimizer steps taken so far.
	pub fn steps(&self) -> usize {
		self.steps
	}

	/// One optimizer step on the samples `idx` of `data`; returns the batch's mean loss.
	pub fn step(&mut self, data: &Dataset, idx: &[usize]) -> Result<f32> {
		let f = data.n_features();
		self.xbuf.clear();
		self.ybuf.clear();
		for &i in idx {
			self.xbuf.extend_from_slice(data.row(i));
			self.ybuf.push(data.labels().get(i).copied().unwrap_or(0));
		}
		let b = idx.len();
		let dev = self.model.device();
		let xs = Tensor::from_slice(&self.xbuf, (b, f), dev)?;
		let ys = Tensor::from_slice(&self.ybuf, b, dev)?;
		let (loss, _, _) = self.model.batch_loss(&xs, &ys)?;
		let grads = self.model.backward(&loss)?;
		if self.schedule != Schedule::Constant {
			self.opt.set_learning_rate(
				self.base_lr * self.schedule.factor(self.first_step + self.steps),
			);
		}
		self.opt.step(&grads)?;
		self.steps += 1;
		let l = loss.to_scalar::<f32>()?;
		if !l.is_finite() {
			return Err(TrainerError::Diverged { loss: l, step: self.steps });
		}
		Ok(l)
	}

	/// One shuffled pass over `data` (shuffle seeded by `seed`), at most `max_steps` steps.
	/// Returns (sample-weighted loss sum, samples seen, steps).
	pub fn epoch(
		&mut self,
		data: &Dataset,
		seed: u64,
		max_steps: Option<usize>,
		on_step: &mut dyn FnMut(f32),
	) -> Result<(f64, usize, usize)> {
		let mut order: Vec<usize> = (0..data.len()).collect();
		SplitMix64::new(seed).shuffle(&mut order);
		let (mut loss_sum, mut seen, mut steps) = (0f64, 0usize, 0usize);
		for batch in order.chunks(self.batch_size) {
			if max_steps.is_some_and(|m| steps >= m) {
				break;
			}
			let l = self.step(data, batch)?;
			on_step(l);
			loss_sum += f64::from(l) * batch.len() as f64;
			seen += batch.len();
			steps += 1;
		}
		Ok((loss_sum, seen, steps))
	}
}

fn check_train_inputs(model: &Model, data: &Dataset, cfg: &TrainConfig) -> Result<()> {
	data.check_compatible(model.spec())?;
	if data.is_empty() {
		return Err(TrainerError::Config(format!("{}: no training samples", data.name)));
	}
	if cfg.batch_size == 0 {
		return Err(TrainerError::Config("batch size must be positive".into()));
	}
	if cfg.max_steps.is_none() && cfg.epochs == 0 {
		return Err(TrainerError::Config("need at least one epoch or max_steps".into()));
	}
	Ok(())
}

/// Epochs of `trainchain-trainer train` without `--epochs`, on a large data set.
pub const DEFAULT_EPOCHS: usize = 10;

/// Without `--epochs`, `train` runs at least this many optimizer steps: 10 epochs of a
/// 150-sample data set are only 50 steps, too few to converge (see `scripts/bench-tabular.sh`).
pub const MIN_DEFAULT_STEPS: usize = 500;

/// Default epochs for `n` samples in batches of `batch_size`: [`DEFAULT_EPOCHS`], or more
/// so that the run takes at least [`MIN_DEFAULT_STEPS`] steps.
pub fn default_epochs(n: usize, batch_size: usize) -> usize {
	let per_epoch = n.div_ceil(batch_size.max(1)).max(1);
	DEFAULT_EPOCHS.max(MIN_DEFAULT_STEPS.div_ceil(per_epoch))
}

/// Total steps of a run of `cfg` over `n` samples.
pub fn total_steps(cfg: &TrainConfig, n: usize) -> usize {
	match cfg.max_steps {
		Some(k) => k,
		None => cfg.epochs.saturating_mul(n.div_ceil(cfg.batch_size.max(1))),
	}
}

/// One round of local training from the model's current parameters: `cfg.epochs` epochs
/// (or exactly `cfg.max_steps` steps) with a fresh optimizer, shuffles seeded by `seed`.
/// The model ends at the new parameters; the output carries `new − old`.
pub fn local_round(
	model: &mut Model,
	data: &Dataset,
	cfg: &TrainConfig,
	seed: u64,
) -> Result<RoundOutput> {
	local_round_from(model, data, cfg, seed, &mut InnerState::default())
}

/// [`local_round`] continuing the optimizer state in `state` (a fresh one if it is empty)
/// and leaving the round's final state there.
pub fn local_round_from(
	model: &mut Model,
	data: &Dataset,
	cfg: &TrainConfig,
	seed: u64,
	state: &mut InnerState,
) -> Result<RoundOutput> {
	check_train_inputs(model, data, cfg)?;
	let old = model.flat_params()?;
	let mut trainer = Trainer::resume(model, cfg, state)?;
	let (mut loss_sum, mut seen) = (0f64, 0usize);
	let mut epoch = 0u64;
	loop {
		let remaining = cfg.max_steps.map(|m| m.saturating_sub(trainer.steps()));
		if remaining == Some(0) || (cfg.max_steps.is_none() && epoch >= cfg.epochs as u64) {
			break;
		}
		let (l, s, _) = trainer.epoch(
			data,
			SplitMix64::derive(seed, &[epoch]).next_u64(),
			remaining,
			&mut |_| {},
		)?;
		loss_sum += l;
		seen += s;
		epoch += 1;
	}
	let steps = trainer.steps();
	trainer.save_state(state);
	let new = model.flat_params()?;
	let update = update::diff(&new, &old)?;
	update::check_finite("update", &update)?;
	Ok(RoundOutput {
		update,
		loss: if seen == 0 { 0.0 } else { (loss_sum / seen as f64) as f32 },
		samples: data.len() as u64,
		steps,
	})
}

/// Train for `cfg.epochs` epochs with one optimizer (centralised training), evaluating on
/// `test` after each epoch; progress is reported through `on_progress`.
pub fn fit(
	model: &mut Model,
	data: &Dataset,
	test: Option<&Dataset>,
	cfg: &TrainConfig,
	seed: u64,
	on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<EpochReport>> {
	check_train_inputs(model, data, cfg)?;
	if let Some(t) = test {
		t.check_compatible(model.spec())?;
	}
	let total = total_steps(cfg, data.len());
	let mut trainer = Trainer::new(model, cfg)?;
	let mut reports = Vec::new();
	let mut epoch = 0usize;
	loop {
		let remaining = cfg.max_steps.map(|m| m.saturating_sub(trainer.steps()));
		if remaining == Some(0) || (cfg.max_steps.is_none() && epoch >= cfg.epochs) {
			break;
		}
		let mut done = trainer.steps();
		let (l, s, _) = trainer.epoch(
			data,
			SplitMix64::derive(seed, &[epoch as u64]).next_u64(),
			remaining,
			&mut |loss| {
				done += 1;
				on_progress(&Progress::Step { done, total, loss });
			},
		)?;
		epoch += 1;
		let test = match test {
			Some(t) => Some(evaluate(trainer.model, t)?),
			None => None,
		};
		let report = EpochReport {
			epoch,
			train_loss: if s == 0 { 0.0 } else { (l / s as f64) as f32 },
			test,
		};
		on_progress(&Progress::Epoch(report.clone()));
		reports.push(report);
	}
	Ok(reports)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn warmup_cosine_schedule_values() {
		let s = Schedule::WarmupCosine { warmup: 10, total: 110, min_ratio: 0.1 };
		assert_eq!(Schedule::Constant.factor(12345), 1.0);
		assert!((s.factor(0) - 0.1).abs() < 1e-12);
		assert!((s.factor(4) - 0.5).abs() < 1e-12);
		assert!((s.factor(9) - 1.0).abs() < 1e-12);
		assert!((s.factor(10) - 1.0).abs() < 1e-12);
		assert!((s.factor(60) - 0.55).abs() < 1e-12); // half-way: (1 + 0.1) / 2
		assert!((s.factor(110) - 0.1).abs() < 1e-12);
		assert!((s.factor(1000) - 0.1).abs() < 1e-12);
		let mut prev = f64::INFINITY;
		for step in 10..=110 {
			assert!(s.factor(step) <= prev, "not decreasing at {step}");
			prev = s.factor(step);
		}
		let none = Schedule::WarmupCosine { warmup: 0, total: 4, min_ratio: 0.0 };
		assert!((none.factor(0) - 1.0).abs() < 1e-12 && none.factor(4).abs() < 1e-12);
		assert!((none.factor(2) - 0.5).abs() < 1e-12);
		assert!(Schedule::WarmupCosine { warmup: 0, total: 1, min_ratio: 2.0 }.check().is_err());
	}

	#[test]
	#[allow(clippy::unwrap_used)]
	fn a_round_continues_the_schedule_from_its_first_step() {
		let spec = crate::model::ModelSpec::parse("logreg:2-2").unwrap();
		let data = crate::data::gaussian_blobs(64, 2, 2, 3.0, 1.0, 1).unwrap();
		let cfg = |first_step| TrainConfig {
			max_steps: Some(4),
			optimizer: OptimizerConfig::sgd(0.5, 0.0),
			schedule: Schedule::WarmupCosine { warmup: 0, total: 8, min_ratio: 0.0 },
			first_step,
			..Default::default()
		};
		// Round 0 of 4 steps learns; a round that starts where the schedule has decayed to
		// zero leaves the model where it was.
		let mut m = Model::new(&spec).unwrap();
		let first = local_round(&mut m, &data, &cfg(0), 1).unwrap();
		assert!(first.update.iter().any(|x| *x != 0.0));
		let mut m = Model::new(&spec).unwrap();
		let late = local_round(&mut m, &data, &cfg(8), 1).unwrap();
		assert!(late.update.iter().all(|x| *x == 0.0), "{:?}", late.update);
	}

	#[test]
	#[allow(clippy::unwrap_used)]
	fn a_kept_inner_state_makes_two_rounds_one_run_of_the_optimizer() {
		let spec = crate::model::ModelSpec::parse("mlp:2-8-2").unwrap();
		let data = crate::data::gaussian_blobs(64, 2, 2, 3.0, 1.0, 1).unwrap();
		let cfg = TrainConfig {
			max_steps: Some(3),
			batch_size: 8,
			optimizer: OptimizerConfig::Adam {
				lr: 0.05,
				beta1: 0.9,
				beta2: 0.99,
				eps: 1e-8,
				weight_decay: 0.01,
			},
			..Default::default()
		};
		// One optimizer over both rounds' batches, by hand.
		let by_hand = Model::new(&spec).unwrap();
		let mut one = Trainer::new(&by_hand, &cfg).unwrap();
		for seed in [11, 12] {
			one.epoch(&data, SplitMix64::derive(seed, &[0]).next_u64(), Some(3), &mut |_| {})
				.unwrap();
		}
		let want = by_hand.flat_params().unwrap();
		// Two rounds that keep the state end on the same bits ...
		let mut kept = Model::new(&spec).unwrap();
		let mut state = InnerState::default();
		for seed in [11, 12] {
			local_round_from(&mut kept, &data, &cfg, seed, &mut state).unwrap();
			assert!(state.is_kept());
		}
		assert_eq!(kept.flat_params().unwrap(), want);
		// ... and two fresh rounds do not (Adam's moments and bias correction restart).
		let mut fresh = Model::new(&spec).unwrap();
		for seed in [11, 12] {
			local_round(&mut fresh, &data, &cfg, seed).unwrap();
		}
		assert_ne!(fresh.flat_params().unwrap(), want);
		// A state of another optimizer is not continued: SGD starts afresh.
		let sgd = TrainConfig { optimizer: OptimizerConfig::sgd(0.1, 0.9), ..cfg };
		let (mut a, mut b) = (Model::new(&spec).unwrap(), Model::new(&spec).unwrap());
		local_round_from(&mut a, &data, &sgd, 13, &mut state).unwrap();
		local_round(&mut b, &data, &sgd, 13).unwrap();
		assert_eq!(a.flat_params().unwrap(), b.flat_params().unwrap());
	}

	#[test]
	fn default_epochs_reach_the_minimum_step_count_on_small_data() {
		assert_eq!(default_epochs(112, 32), 125); // iris' training quarter: 4 steps per epoch
		assert_eq!(default_epochs(1347, 32), 12); // digits: 43 steps per epoch
		assert_eq!(default_epochs(60_000, 32), DEFAULT_EPOCHS);
		assert_eq!(default_epochs(0, 32), MIN_DEFAULT_STEPS);
		assert_eq!(default_epochs(10, 0), 50);
	}
}
