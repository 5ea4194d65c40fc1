//! A job's training plan: the inner optimiser every contributor runs for its local steps
//! and the outer optimiser that applies the averaged update ([`crate::outer`]).
//!
//! A sponsor names it in the job's metadata next to the model
//! (`model=gpt:…;data=…;inner=adamw:0.1;outer=nesterov:0.7:0.9`); the learning rate, batch
//! size and local steps `H` are the job's on-chain hyperparameters. The model commitment
//! covers the plan ([`job_commitment`]), so a trainer refuses a job whose metadata was
//! changed, and every contributor trains the same way. A job that names no plan trains with
//! SGD (momentum 0.9) and plain averaging, and keeps the model commitment it always had.
//!
//! The plan also fixes the job's input transform (`input=standard:…`, see
//! [`InputTransform`]): the statistics every contributor and verifier standardises features
//! with, fitted once by the sponsor, so that every shard is scaled the same way.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};

use crate::model::ModelSpec;
use crate::outer::OuterOptimizer;
use crate::standardize::InputTransform;
use crate::train::{OptimizerConfig, Schedule, SgdParams};

/// The inner optimiser of a plan (its learning rate comes from the job).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InnerOptimizer {
	/// SGD with momentum and L2 weight decay.
	Sgd {
		/// Momentum.
		momentum: f64,
		/// L2 weight decay.
		weight_decay: f64,
	},
	/// AdamW (β₁ 0.9, β₂ 0.999 for `adamw`; `adamw:WD:B1:B2` sets them).
	AdamW {
		/// Decoupled weight decay.
		weight_decay: f64,
		/// β₁.
		beta1: f64,
		/// β₂.
		beta2: f64,
	},
}

impl Default for InnerOptimizer {
	fn default() -> Self {
		Self::Sgd { momentum: 0.9, weight_decay: 0.0 }
	}
}

impl InnerOptimizer {
	/// The optimiser with learning rate `lr`.
	pub fn with_lr(&self, lr: f64) -> OptimizerConfig {
		match *self {
			Self::Sgd { momentum, weight_decay } => {
				OptimizerConfig::Sgd(SgdParams { lr, momentum, weight_decay })
			},
			Self::AdamW { weight_decay, beta1, beta2 } => {
				OptimizerConfig::Adam { lr, beta1, beta2, eps: 1e-8, weight_decay }
			},
		}
	}
}

impl fmt::Display for InnerOptimizer {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Self::Sgd { momentum, weight_decay } => write!(f, "sgd:{momentum}:{weight_decay}"),
			Self::AdamW { weight_decay, beta1, beta2 } => {
				write!(f, "adamw:{weight_decay}:{beta1}:{beta2}")
			},
		}
	}
}

impl FromStr for InnerOptimizer {
	type Err = anyhow::Error;
	/// `sgd[:MOMENTUM[:WEIGHT_DECAY]]` or `adamw[:WEIGHT_DECAY[:BETA1:BETA2]]`.
	fn from_str(s: &str) -> Result<Self> {
		let mut parts = s.split(':');
		let kind = parts.next().unwrap_or_default();
		let nums: Vec<f64> = parts
			.map(|p| p.parse::<f64>().with_context(|| format!("{s:?}: {p:?} is not a number")))
			.collect::<Result<_>>()?;
		ensure!(nums.iter().all(|x| x.is_finite() && *x >= 0.0), "{s:?}: negative or not finite");
		let opt = match (kind, nums.as_slice()) {
			("sgd", []) => Self::default(),
			("sgd", [m]) => Self::Sgd { momentum: *m, weight_decay: 0.0 },
			("sgd", [m, wd]) => Self::Sgd { momentum: *m, weight_decay: *wd },
			("adamw" | "adam", []) => Self::AdamW { weight_decay: 0.0, beta1: 0.9, beta2: 0.999 },
			("adamw" | "adam", [wd]) => Self::AdamW { weight_decay: *wd, beta1: 0.9, beta2: 0.999 },
			("adamw" | "adam", [wd, b1, b2]) => {
				Self::AdamW { weight_decay: *wd, beta1: *b1, beta2: *b2 }
			},
			_ => bail!(
				"unknown inner optimiser {s:?} (sgd[:MOMENTUM[:WD]] | adamw[:WD[:BETA1:BETA2]])"
			),
		};
		match opt {
			Self::Sgd { momentum, .. } => ensure!(momentum < 1.0, "SGD momentum must be < 1"),
			Self::AdamW { beta1, beta2, .. } => {
				ensure!(beta1 < 1.0 && beta2 < 1.0, "Adam betas must be < 1")
			},
		}
		Ok(opt)
	}
}

/// A plan's learning-rate schedule, stretched over all of a job's inner steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum PlanSchedule {
	/// The job's learning rate throughout.
	#[default]
	Constant,
	/// Linear warm-up over `warmup` steps, then cosine decay to `min_ratio` of the learning
	/// rate at the job's last step.
	Cosine {
		/// Warm-up steps.
		warmup: usize,
		/// Final fraction of the learning rate.
		min_ratio: f64,
	},
}

impl PlanSchedule {
	/// The schedule over `total` inner steps.
	pub fn over(&self, total: usize) -> Schedule {
		match *self {
			Self::Constant => Schedule::Constant,
			Self::Cosine { warmup, min_ratio } => {
				Schedule::WarmupCosine { warmup, total, min_ratio }
			},
		}
	}
}

impl fmt::Display for PlanSchedule {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Self::Constant => f.write_str("constant"),
			Self::Cosine { warmup, min_ratio } => write!(f, "cosine:{warmup}:{min_ratio}"),
		}
	}
}

impl FromStr for PlanSchedule {
	type Err = anyhow::Error;
	/// `constant` or `cosine:WARMUP[:MIN_RATIO]` (min ratio 0.1 by default).
	fn from_str(s: &str) -> Result<Self> {
		if s == "constant" {
			return Ok(Self::Constant);
		}
		let Some(rest) = s.strip_prefix("cosine:") else {
			bail!("unknown schedule {s:?} (constant | cosine:WARMUP[:MIN_RATIO])");
		};
		let (w, m) = rest.split_once(':').unwrap_or((rest, "0.1"));
		let warmup: usize = w.parse().with_context(|| format!("{s:?}: warm-up steps"))?;
		let min_ratio: f64 = m.parse().with_context(|| format!("{s:?}: min ratio"))?;
		ensure!((0.0..=1.0).contains(&min_ratio), "{s:?}: min ratio must be in 0..=1");
		Ok(Self::Cosine { warmup, min_ratio })
	}
}

/// What every contributor of a job does with the job's hyperparameters and its data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingPlan {
	/// Inner optimiser of the local steps.
	pub inner: InnerOptimizer,
	/// Outer optimiser of the averaged update.
	pub outer: OuterOptimizer,
	/// Learning-rate schedule over the job's inner steps.
	pub schedule: PlanSchedule,
	/// Transform of the input features (standardisation with the sponsor's statistics).
	pub input: InputTransform,
	/// Whether each contributor carries its inner optimiser's state (momentum, Adam's
	/// moments) from one round into the next, as DiLoCo's workers do (`inner_state=kept`),
	/// instead of starting it afresh every round (`inner_state=fresh`, the default). Not for
	/// public-data jobs, whose updates are re-computed from the round's model alone.
	pub keep_inner_state: bool,
}

impl TrainingPlan {
	/// The plan named by job metadata `key=value;…` pairs (`inner=`, `outer=`, `schedule=`,
	/// `input=`; absent keys take the defaults).
	pub fn from_metadata(meta: &str) -> Result<Self> {
		let mut plan = Self::default();
		for kv in meta.split(';') {
			if let Some(v) = kv.strip_prefix("inner=") {
				plan.inner = v.parse()?;
			} else if let Some(v) = kv.strip_prefix("outer=") {
				plan.outer = v.parse()?;
			} else if let Some(v) = kv.strip_prefix("schedule=") {
				plan.schedule = v.parse()?;
			} else if let Some(v) = kv.strip_prefix("input=") {
				plan.input = v.parse()?;
			} else if let Some(v) = kv.strip_prefix("inner_state=") {
				plan.keep_inner_state = match v {
					"kept" => true,
					"fresh" => false,
					other => bail!("unknown inner_state {other:?} (kept | fresh)"),
				};
			}
		}
		Ok(plan)
	}

	/// The plan's canonical text (`inner=…;outer=…;schedule=…`, then `;input=…` unless the
	/// input is raw and `;inner_state=kept` if the state is kept), the bytes the commitment
	/// covers.
	pub fn canonical(&self) -> String {
		let mut text =
			format!("inner={};outer={};schedule={}", self.inner, self.outer, self.schedule);
		if self.input != InputTransform::Raw {
			text.push_str(&format!(";input={}", self.input));
		}
		if self.keep_inner_state {
			text.push_str(";inner_state=kept");
		}
		text
	}

	/// Whether the plan names its optimisation (inner, outer or schedule): such a job trains
	/// exactly its `local_steps` per round (DiLoCo's H), one that does not keeps the
	/// epoch-based rounds of the trainer's `--epochs`.
	pub fn names_optimisation(&self) -> bool {
		self.inner != InnerOptimizer::default()
			|| self.outer != OuterOptimizer::default()
			|| self.schedule != PlanSchedule::default()
			|| self.keep_inner_state
	}

	/// The learning-rate schedule of a job of `rounds` rounds of `local_steps` steps.
	pub fn schedule(&self, rounds: u32, local_steps: u32) -> Schedule {
		self.schedule
			.over((rounds as usize).saturating_mul(local_steps.max(1) as usize))
	}
}

/// Domain tag of a commitment that covers a plan.
const PLAN_DOMAIN: &[u8] = b"trainchain/plan/v1";

/// The model commitment of a job training `spec` with `plan`: the spec's own commitment
/// for the default plan, else `blake2_256(PLAN_DOMAIN ‖ spec commitment ‖ plan.canonical())`.
pub fn job_commitment(spec: &ModelSpec, plan: &TrainingPlan) -> crate::error::Result<[u8; 32]> {
	let base = spec.commitment()?;
	if *plan == TrainingPlan::default() {
		return Ok(base);
	}
	Ok(crate::digest::blake2_256_concat(&[PLAN_DOMAIN, &base, plan.canonical().as_bytes()]))
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn plans_parse_from_metadata_and_are_committed_to() {
		let spec = ModelSpec::parse("mlp:4-3-2").unwrap();
		let plain = TrainingPlan::from_metadata("model=mlp:4-3-2;data=x").unwrap();
		assert_eq!(plain, TrainingPlan::default());
		assert_eq!(job_commitment(&spec, &plain).unwrap(), spec.commitment().unwrap());
		let diloco =
			TrainingPlan::from_metadata("model=mlp:4-3-2;inner=adamw:0.1;outer=nesterov:0.7:0.9")
				.unwrap();
		assert_eq!(diloco.outer, OuterOptimizer::Nesterov { lr: 0.7, momentum: 0.9 });
		assert_eq!(
			diloco.inner,
			InnerOptimizer::AdamW { weight_decay: 0.1, beta1: 0.9, beta2: 0.999 }
		);
		let c = job_commitment(&spec, &diloco).unwrap();
		assert_ne!(c, spec.commitment().unwrap());
		// Another outer learning rate is another commitment.
		let other = TrainingPlan::from_metadata("inner=adamw:0.1;outer=nesterov:0.8:0.9").unwrap();
		assert_ne!(job_commitment(&spec, &other).unwrap(), c);
		// The canonical text parses back to the same plan.
		assert_eq!(TrainingPlan::from_metadata(&diloco.canonical()).unwrap(), diloco);
		let cosine =
			TrainingPlan::from_metadata("outer=nesterov:0.7:0.9;schedule=cosine:20").unwrap();
		assert_eq!(cosine.schedule, PlanSchedule::Cosine { warmup: 20, min_ratio: 0.1 });
		assert_eq!(
			cosine.schedule(10, 50),
			Schedule::WarmupCosine { warmup: 20, total: 500, min_ratio: 0.1 }
		);
		assert_ne!(job_commitment(&spec, &cosine).unwrap(), job_commitment(&spec, &other).unwrap());
		for bad in [
			"inner=rmsprop",
			"outer=nesterov:2",
			"inner=sgd:1.5",
			"inner=adamw:x",
			"schedule=cosine:x",
			"schedule=cosine:10:2",
			"schedule=linear",
		] {
			assert!(TrainingPlan::from_metadata(bad).is_err(), "{bad}");
		}
	}

	#[test]
	fn a_kept_inner_state_is_part_of_the_plan_and_of_the_commitment() {
		let spec = ModelSpec::parse("gpt:16-8-1-2-8").unwrap();
		let fresh = TrainingPlan::from_metadata("inner=adamw:0.01;outer=avg").unwrap();
		let kept =
			TrainingPlan::from_metadata("inner=adamw:0.01;outer=avg;inner_state=kept").unwrap();
		assert!(kept.keep_inner_state && !fresh.keep_inner_state);
		assert_eq!(
			TrainingPlan::from_metadata("inner=adamw:0.01;outer=avg;inner_state=fresh").unwrap(),
			fresh
		);
		// Saying "fresh" changes nothing: older jobs keep their commitments.
		assert!(!fresh.canonical().contains("inner_state"));
		assert!(kept.canonical().ends_with(";inner_state=kept"));
		assert_eq!(TrainingPlan::from_metadata(&kept.canonical()).unwrap(), kept);
		assert_ne!(job_commitment(&spec, &kept).unwrap(), job_commitment(&spec, &fresh).unwrap());
		// Keeping the state alone is a named optimisation: rounds of exactly H steps.
		assert!(TrainingPlan::from_metadata("inner_state=kept").unwrap().names_optimisation());
		assert!(TrainingPlan::from_metadata("inner_state=always").is_err());
	}

	#[test]
	fn the_input_transform_is_part_of_the_plan_and_of_the_commitment() {
		use crate::data::Dataset;
		use crate::standardize::{Scope, Standardizer};
		let spec = ModelSpec::parse("mlp:2-3-2").unwrap();
		let d = Dataset::new("t", 2, vec![0.0, 100.0, 4.0, 300.0], vec![0, 1]).unwrap();
		let input = InputTransform::standard(Standardizer::fit(&d, Scope::PerFeature).unwrap());
		let meta = format!("model=mlp:2-3-2;data=x;input={input}");
		let plan = TrainingPlan::from_metadata(&meta).unwrap();
		assert_eq!(plan.input, input);
		assert!(!plan.names_optimisation(), "an input transform alone keeps epoch rounds");
		assert!(plan.canonical().ends_with(&format!(";input={input}")));
		assert_eq!(TrainingPlan::from_metadata(&plan.canonical()).unwrap(), plan);
		let c = job_commitment(&spec, &plan).unwrap();
		assert_ne!(c, spec.commitment().unwrap());
		// Other statistics are another commitment: a sponsor cannot swap them unnoticed.
		let d2 = Dataset::new("t", 2, vec![0.0, 100.0, 4.0, 301.0], vec![0, 1]).unwrap();
		let other = TrainingPlan {
			input: InputTransform::standard(Standardizer::fit(&d2, Scope::PerFeature).unwrap()),
			..plan.clone()
		};
		assert_ne!(job_commitment(&spec, &other).unwrap(), c);
		// `input=raw` is the default plan, with the spec's own commitment.
		let raw = TrainingPlan::from_metadata("model=mlp:2-3-2;input=raw").unwrap();
		assert_eq!(job_commitment(&spec, &raw).unwrap(), spec.commitment().unwrap());
		assert!(TrainingPlan::from_metadata("input=standard:AAAA").is_err());
		// A plan with an optimiser and an input transform still parses back whole.
		let both =
			TrainingPlan::from_metadata(&format!("outer=nesterov:0.7:0.9;input={input}")).unwrap();
		assert!(both.names_optimisation());
		assert_eq!(TrainingPlan::from_metadata(&both.canonical()).unwrap(), both);
	}
}
