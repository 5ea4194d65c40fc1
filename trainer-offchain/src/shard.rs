//! Training on one shard of a CSV data set: the [`LocalTrainer`] of the `peer` and `run`
//! subcommands.

use crate::data::{self, CsvOptions, Dataset};
use crate::model::{Model, ModelSpec};
use crate::p2p::round::{LocalTrainer, LocalUpdate};
use crate::rng::SplitMix64;
use crate::train::{self, TrainConfig};
use anyhow::{bail, Context, Result};
use trainchain_primitives::RoundIndex;

/// Trainer over one shard of a CSV data set.
pub struct ShardTrainer {
	worker: Model,
	shard: Dataset,
	shard_index: u64,
	test: Option<Dataset>,
	cfg: TrainConfig,
	seed: u64,
}

impl ShardTrainer {
	/// Build from a spec and data.
	pub fn new(
		spec: &ModelSpec,
		shard: Dataset,
		shard_index: u64,
		test: Option<Dataset>,
		cfg: TrainConfig,
		seed: u64,
	) -> Result<Self> {
		Ok(Self { worker: Model::new(spec)?, shard, shard_index, test, cfg, seed })
	}
}

impl LocalTrainer for ShardTrainer {
	fn train(&mut self, model: &[f32], round: RoundIndex) -> Result<LocalUpdate> {
		self.worker.set_flat_params(model)?;
		// Same shuffle seeds as `fedavg::simulate` (shard i, round r).
		let s = SplitMix64::derive(self.seed, &[round as u64, self.shard_index]).next_u64();
		let out = train::local_round(&mut self.worker, &self.shard, &self.cfg, s)?;
		Ok(LocalUpdate { delta: out.update, samples: out.samples, train_loss: out.loss })
	}

	fn evaluate(&mut self, model: &[f32]) -> Option<(f32, f32)> {
		let test = self.test.as_ref()?;
		self.worker.set_flat_params(model).ok()?;
		let m = crate::eval::evaluate(&self.worker, test).ok()?;
		Some((m.loss, m.accuracy))
	}
}

/// Load `data`, keep IID shard `i/n` of it (`shard` is written `i/n`), and load the optional
/// held-out set. Returns (all data, i, the shard, the test set).
pub fn load_shard(
	data: &std::path::Path,
	shard: &str,
	seed: u64,
	test: Option<&std::path::Path>,
) -> Result<(Dataset, usize, Dataset, Option<Dataset>)> {
	let (shard_i, shard_n) = parse_shard(shard)?;
	let all = data::load_csv(data, CsvOptions::default())?;
	let mine = data::shard_iid(&all, shard_n, seed)?
		.into_iter()
		.nth(shard_i)
		.context("shard")?;
	let test = match test {
		Some(p) => Some(data::load_csv(p, CsvOptions::default())?),
		None => None,
	};
	Ok((all, shard_i, mine, test))
}

/// Parse `i/n` (shard `i` of `n`).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
	let (i, n) = s.split_once('/').context("--shard must be i/n")?;
	let (i, n): (usize, usize) = (i.parse()?, n.parse()?);
	if n == 0 || i >= n {
		bail!("--shard {s}: need 0 <= i < n");
	}
	Ok((i, n))
}
