//! Training on one shard of a data set (CSV, IDX or text, see [`load_data`]): the [`LocalTrainer`] of the `peer` and `run`
//! subcommands. The shard is the contributor's own, or, in a public-data job, the one the
//! chain assigns it each round ([`crate::public_data`]).

use std::path::Path;

use crate::data::{self, CsvOptions, Dataset};
use crate::model::{Model, ModelSpec};
use crate::p2p::round::{LocalTrainer, LocalUpdate};
use crate::public_data::PublicShards;
use crate::rng::SplitMix64;
use crate::train::{self, InnerSnapshot, InnerState, TrainConfig};
use anyhow::{bail, Context, Result};
use trainchain_primitives::{public_data::assign_shard, JobId, RoundIndex};

/// Trainer over one shard of a CSV data set.
pub struct ShardTrainer {
	worker: Model,
	source: Source,
	test: Option<Dataset>,
	cfg: TrainConfig,
	/// The inner optimizer's state between rounds, if the job keeps it
	/// ([`ShardTrainer::keep_inner_state`]); `None`: every round starts a fresh optimizer.
	inner: Option<InnerState>,
}

/// Where a [`ShardTrainer`]'s data comes from.
enum Source {
	/// The contributor's own shard `index`, shuffled from `seed`.
	Own { shard: Dataset, index: u64, seed: u64 },
	/// A public dataset: each round, the shard and seed the chain assigns `who` in `job`.
	Public {
		shards: PublicShards,
		job: JobId,
		who: [u8; 32],
		/// Test-only fault: train on the shard after the assigned one.
		wrong_shard: bool,
	},
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
		let source = Source::Own { shard, index: shard_index, seed };
		Ok(Self { worker: Model::new(spec)?, source, test, cfg, inner: None })
	}

	/// A trainer of a public-data job: account `who` of `job` trains each round on the shard
	/// the chain assigns it (`wrong_shard`: a test-only fault, the next shard instead).
	pub fn public(
		spec: &ModelSpec,
		shards: PublicShards,
		job: JobId,
		who: [u8; 32],
		test: Option<Dataset>,
		cfg: TrainConfig,
		wrong_shard: bool,
	) -> Result<Self> {
		let source = Source::Public { shards, job, who, wrong_shard };
		Ok(Self { worker: Model::new(spec)?, source, test, cfg, inner: None })
	}

	/// Carry the inner optimizer's state from each round into the next, as DiLoCo's workers
	/// do. Only for a contributor's own shard: a public-data job's updates are re-computed
	/// from the round's model alone, which this state would make impossible.
	pub fn keep_inner_state(mut self) -> Result<Self> {
		if matches!(self.source, Source::Public { .. }) {
			bail!("a public-data job's updates must be re-computable, so its rounds cannot keep the inner optimizer's state");
		}
		self.inner = Some(InnerState::default());
		Ok(self)
	}

	/// Whether this trainer carries its inner optimizer state from round to round.
	pub fn keeps_inner_state(&self) -> bool {
		self.inner.is_some()
	}

	/// `--resume path`: continue the inner optimizer state stored in the checkpoint, if it has
	/// one. A trainer that starts every round afresh ignores it, with a warning.
	pub fn resume_inner(&mut self, path: &Path) -> Result<()> {
		let resume = || format!("--resume {}", path.display());
		let Some(snapshot) = crate::checkpoint::load_inner(path).with_context(resume)? else {
			return Ok(());
		};
		if !self.keeps_inner_state() {
			tracing::warn!(file = %path.display(), "this trainer starts each round afresh (inner_state=fresh): not using the saved inner optimizer state");
			return Ok(());
		}
		self.restore_inner(&snapshot).with_context(resume)
	}

	/// Continue from a saved inner optimizer state (`--resume` of a checkpoint that has one).
	/// Refused unless this trainer keeps its state, and when the state belongs to another
	/// optimizer or model.
	pub fn restore_inner(&mut self, snapshot: &InnerSnapshot) -> Result<()> {
		let Some(inner) = &mut self.inner else {
			bail!("this trainer does not keep an inner optimizer state (inner_state=fresh)");
		};
		*inner = InnerState::restore(&self.worker, &self.cfg.optimizer, snapshot)?;
		Ok(())
	}
}

impl LocalTrainer for ShardTrainer {
	fn train(&mut self, model: &[f32], round: RoundIndex) -> Result<LocalUpdate> {
		self.worker.set_flat_params(model)?;
		let (data, s) = match &self.source {
			// Same shuffle seeds as `fedavg::simulate` (shard i, round r).
			Source::Own { shard, index, seed } => {
				(shard, SplitMix64::derive(*seed, &[round as u64, *index]).next_u64())
			},
			Source::Public { shards, job, who, wrong_shard } => {
				let a = assign_shard(*job, round, who, shards.count());
				let shard = if *wrong_shard { (a.shard + 1) % shards.count() } else { a.shard };
				(shards.shard(shard)?, a.seed)
			},
		};
		// A round of H steps continues the job's schedule where the last one ended.
		let mut cfg = self.cfg;
		if let Some(h) = cfg.max_steps {
			cfg.first_step = (round as usize).saturating_mul(h);
		}
		let out = match &mut self.inner {
			Some(state) => train::local_round_from(&mut self.worker, data, &cfg, s, state)?,
			None => train::local_round(&mut self.worker, data, &cfg, s)?,
		};
		Ok(LocalUpdate { delta: out.update, samples: out.samples, train_loss: out.loss })
	}

	fn inner_snapshot(&self) -> Option<InnerSnapshot> {
		self.inner.as_ref()?.snapshot()
	}

	fn evaluate(&mut self, model: &[f32]) -> Option<(f32, f32)> {
		let test = self.test.as_ref()?;
		self.worker.set_flat_params(model).ok()?;
		let m = crate::eval::evaluate(&self.worker, test).ok()?;
		Some((m.loss, m.accuracy))
	}
}

/// Load the data set `path` names, for the model `model` (a spec or a bare kind):
/// * `IMAGES,LABELS` (two paths joined by a comma): an IDX pair ([`data::load_idx`]);
/// * a `.txt` file: byte-level language-modelling rows ([`data::load_text`]) with the
///   context of `model`, which must be a `gpt` (stride = context: every byte after the first
///   is predicted once);
/// * anything else: CSV with the label last and an automatic header ([`data::load_csv`]).
pub fn load_data(path: &Path, model: &str) -> Result<Dataset> {
	let s = path.to_string_lossy();
	if let Some((images, labels)) = s.split_once(',') {
		return Ok(data::load_idx(images, labels)?);
	}
	if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
		let Some(context) = ModelSpec::lm_context(model)? else {
			bail!("{}: text data needs a gpt model, not {model:?}", path.display());
		};
		return Ok(data::load_text(path, context, context)?);
	}
	Ok(data::load_csv(path, CsvOptions::default())?)
}

/// Load `data` (see [`load_data`] for the syntax; `model` is the model spec or bare kind,
/// which sets the context of text data), keep IID shard `i/n` of it (`shard` is written
/// `i/n`), and load the optional held-out set. Returns (all data, i, the shard, the test
/// set).
pub fn load_shard(
	data: &Path,
	shard: &str,
	seed: u64,
	test: Option<&Path>,
	model: &str,
) -> Result<(Dataset, usize, Dataset, Option<Dataset>)> {
	let (shard_i, shard_n) = parse_shard(shard)?;
	let all = load_data(data, model)?;
	let mine = data::shard_iid(&all, shard_n, seed)?
		.into_iter()
		.nth(shard_i)
		.context("shard")?;
	let test = match test {
		Some(p) => Some(load_data(p, model)?),
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
