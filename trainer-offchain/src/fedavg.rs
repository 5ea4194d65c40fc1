//! Simulated federated averaging (one process, no network), for tests and benchmarks.
//!
//! Each round every shard trains locally ([`crate::train::local_round`]) from the same
//! global model, the updates are averaged weighted by sample count
//! ([`crate::update::weighted_average`]) and applied to the global model.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Result, TrainerError};
use crate::eval::{evaluate, Metrics};
use crate::model::{Model, ModelSpec};
use crate::rng::SplitMix64;
use crate::train::{local_round, TrainConfig};
use crate::update;

/// Figures of one FedAvg round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundStats {
	/// 1-based round.
	pub round: usize,
	/// Sample-weighted mean of the shards' local training losses.
	pub train_loss: f32,
	/// Held-out metrics of the global model after the round, when a test set was given.
	pub test: Option<Metrics>,
	/// Hash of the global model state after the round.
	pub model_hash: String,
}

/// Result of [`simulate`].
#[derive(Debug)]
pub struct FedAvgOutput {
	/// The final global model.
	pub model: Model,
	/// Per-round figures.
	pub rounds: Vec<RoundStats>,
}

/// Run `rounds` rounds of FedAvg over `shards` from the spec's initial model. Shard `i` in
/// round `r` shuffles with seed `derive(seed, [r, i])`. `on_round` sees each round's stats.
pub fn simulate(
	spec: &ModelSpec,
	shards: &[Dataset],
	rounds: usize,
	cfg: &TrainConfig,
	seed: u64,
	test: Option<&Dataset>,
	on_round: &mut dyn FnMut(&RoundStats),
) -> Result<FedAvgOutput> {
	if shards.is_empty() {
		return Err(TrainerError::Config("FedAvg needs at least one shard".into()));
	}
	let mut global = Model::new(spec)?;
	let mut worker = Model::new(spec)?;
	let mut stats = Vec::with_capacity(rounds);
	for r in 0..rounds {
		let start = global.flat_params()?;
		let mut outs = Vec::with_capacity(shards.len());
		for (i, shard) in shards.iter().enumerate() {
			worker.set_flat_params(&start)?;
			let s = SplitMix64::derive(seed, &[r as u64, i as u64]).next_u64();
			outs.push(local_round(&mut worker, shard, cfg, s)?);
		}
		let list: Vec<(&[f32], u64)> =
			outs.iter().map(|o| (o.update.as_slice(), o.samples)).collect();
		let avg = update::weighted_average(&list)?;
		update::apply_update(&mut global, &avg)?;
		let total: u64 = outs.iter().map(|o| o.samples).sum();
		let train_loss = outs.iter().map(|o| f64::from(o.loss) * o.samples as f64).sum::<f64>()
			/ total.max(1) as f64;
		let st = RoundStats {
			round: r + 1,
			train_loss: train_loss as f32,
			test: match test {
				Some(t) => Some(evaluate(&global, t)?),
				None => None,
			},
			model_hash: update::hex32(&update::model_state_hash(&global)?),
		};
		on_round(&st);
		stats.push(st);
	}
	Ok(FedAvgOutput { model: global, rounds: stats })
}
