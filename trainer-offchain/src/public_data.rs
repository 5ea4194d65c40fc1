//! Jobs on a public dataset: its shards and their commitment, and the two checks a verifier
//! adds to the held-out score (`trainchain_primitives::public_data` holds the rules the chain
//! shares).
//!
//! * **Shards.** Row `i` of the file belongs to shard `i mod shards`. A shard's leaf is
//!   `blake2_256` of its rows, each encoded as its features (f32, little-endian) then its
//!   label (u32, little-endian); the spec commits the Merkle root of the leaves.
//! * **Own shard first.** An update applied at its share of the mean should lower the loss on
//!   the contributor's assigned shard by more than on another shard the settlement seed
//!   picks: training on the assigned data fits it best, while an update made elsewhere (or
//!   copied, or made up) has no reason to favour it. The comparison is noisy for honest work
//!   too, so it screens rather than decides: an update that fails it is re-computed.
//! * **Re-computation.** Training is deterministic per (base model, round, shard, seed,
//!   hyperparameters): the verifier trains the contributor's shard itself, compresses the
//!   result as the contributor did, and compares. On the same build and CPU the two are
//!   bit-identical (relative error 0, tested); candle's CPU kernels pick SIMD paths by CPU
//!   features, so across machines sums are ordered differently and the last bits differ. The
//!   rule is therefore a **relative error bound**, `‖u − r‖ / ‖r‖ ≤` [`RECOMPUTE_TOLERANCE`],
//!   far above that noise and far below what skipping work changes (half the steps, another
//!   shard or a scaled update are all ≥ 5 %, tested). Public-data jobs run without error
//!   feedback, so the committed update is the compression of this round's training alone.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use trainchain_primitives::{
	public_data::{shards_root, ShardAssignment},
	Hash32,
};

use crate::compress::{Compressed, Compression};
use crate::data::{self, CsvOptions, Dataset};
use crate::eval::evaluate;
use crate::model::Model;
use crate::train::{local_round, OptimizerConfig, TrainConfig};

/// Largest relative L2 distance between a served update and its re-computation that passes.
pub const RECOMPUTE_TOLERANCE: f64 = 0.01;

/// A public dataset split into the job's shards.
pub struct PublicShards {
	shards: Vec<Dataset>,
	root: Hash32,
}

impl PublicShards {
	/// Split `all` into `n` shards (row `i` into shard `i mod n`).
	pub fn split(all: &Dataset, n: u32) -> Result<Self> {
		let n = n as usize;
		ensure!(n >= 1 && n <= all.len(), "cannot split {} rows into {n} shards", all.len());
		let shards = (0..n)
			.map(|s| {
				let idx: Vec<usize> = (s..all.len()).step_by(n).collect();
				all.subset(format!("{} public shard {s}/{n}", all.name), &idx)
			})
			.collect::<std::result::Result<Vec<_>, _>>()?;
		let leaves: Vec<Hash32> = shards.iter().map(shard_leaf).collect();
		Ok(Self { root: shards_root(&leaves), shards })
	}

	/// Load a CSV and split it; refuse it unless its root is `expected` (when given).
	pub fn load(path: &Path, n: u32, expected: Option<Hash32>) -> Result<Self> {
		let all = data::load_csv(path, CsvOptions::default())
			.with_context(|| format!("public dataset {}", path.display()))?;
		let me = Self::split(&all, n)?;
		if let Some(want) = expected {
			if me.root != want {
				bail!(
					"{} split into {n} shards has root 0x{}, but the job commits to 0x{}",
					path.display(),
					hex::encode(me.root),
					hex::encode(want)
				);
			}
		}
		Ok(me)
	}

	/// The shards with the job's input transform applied. The root stays the one of the
	/// data as published: the commitment is to the rows, the transform is the plan's.
	pub fn transformed(self, input: &crate::standardize::InputTransform) -> Result<Self> {
		let shards = self
			.shards
			.into_iter()
			.map(|d| input.apply(d))
			.collect::<std::result::Result<_, _>>()?;
		Ok(Self { shards, root: self.root })
	}

	/// The Merkle root of the shards.
	pub fn root(&self) -> Hash32 {
		self.root
	}

	/// Number of shards.
	pub fn count(&self) -> u32 {
		self.shards.len() as u32
	}

	/// Shard `i`.
	pub fn shard(&self, i: u32) -> Result<&Dataset> {
		self.shards.get(i as usize).with_context(|| format!("no shard {i}"))
	}
}

/// The leaf hash of one shard (see the module docs).
pub fn shard_leaf(d: &Dataset) -> Hash32 {
	let mut bytes = Vec::with_capacity(d.len() * (d.n_features() * 4 + 4));
	for (i, label) in d.labels().iter().enumerate() {
		for x in d.row(i) {
			bytes.extend_from_slice(&x.to_le_bytes());
		}
		bytes.extend_from_slice(&label.to_le_bytes());
	}
	sp_crypto_hashing::blake2_256(&bytes)
}

/// The training every contributor of a public-data job runs: exactly `local_steps` SGD steps
/// (momentum 0.9) at the spec's learning rate and batch size.
pub fn train_config(learning_rate_ppm: u32, batch_size: u32, local_steps: u32) -> TrainConfig {
	TrainConfig {
		epochs: 1,
		max_steps: Some(local_steps.max(1) as usize),
		batch_size: batch_size.max(1) as usize,
		optimizer: OptimizerConfig::sgd(f64::from(learning_rate_ppm) / 1e6, 0.9),
		..Default::default()
	}
}

/// What a verifier checks of one contribution in a public-data job.
#[derive(Clone, Copy, Debug)]
pub struct PublicRole {
	/// The contributor's assigned shard and shuffle seed.
	pub assigned: ShardAssignment,
	/// The shard it is compared on.
	pub compare: u32,
	/// Whether this contribution is re-computed.
	pub recompute: bool,
}

/// Why a public-data contribution scores nothing: its re-computation differs by more than
/// [`RECOMPUTE_TOLERANCE`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejection {
	/// The relative L2 distance to the re-computed update.
	pub relative_error: f64,
	/// Whether the re-computation was triggered by the shard comparison (the update did not
	/// help its own shard more than the comparison shard) rather than by the sample.
	pub screened: bool,
}

/// The shards and training rules a verifier checks public-data contributions against.
pub struct PublicCheck<'a> {
	/// The dataset.
	pub shards: &'a PublicShards,
	/// The contributors' training.
	pub cfg: TrainConfig,
}

impl PublicCheck<'_> {
	/// Check `delta` (served with `compression`) of a contributor with `role`, trained from
	/// `base` and applied at `share` of the mean. `None`: it passes.
	///
	/// The shard comparison screens, the re-computation decides: an update that does not
	/// lower the loss of its own shard by more than that of the comparison shard is always
	/// re-computed, sampled or not. It is not rejected outright because honest updates fail
	/// the comparison now and then (`tests/ml_public_data.rs` prints how often); an honest
	/// re-computation matches exactly, so honest work is never rejected either way.
	pub fn check(
		&self,
		model: &mut Model,
		base: &[f32],
		delta: &[f32],
		compression: Compression,
		share: f32,
		role: &PublicRole,
	) -> Result<Option<Rejection>> {
		// A sampled update is re-computed anyway: the screen would decide nothing.
		let screened = !role.recompute && !self.own_shard_first(model, base, delta, share, role)?;
		if !(role.recompute || screened) {
			return Ok(None);
		}
		let err = self.recompute_error(model, base, delta, compression, role)?;
		// NaN fails too.
		let matches = err.is_finite() && err <= RECOMPUTE_TOLERANCE;
		Ok((!matches).then_some(Rejection { relative_error: err, screened }))
	}

	/// Whether `delta`, applied at `share`, lowers the loss of the assigned shard by more than
	/// that of the comparison shard.
	pub fn own_shard_first(
		&self,
		model: &mut Model,
		base: &[f32],
		delta: &[f32],
		share: f32,
		role: &PublicRole,
	) -> Result<bool> {
		let own = self.shards.shard(role.assigned.shard)?;
		let other = self.shards.shard(role.compare)?;
		let applied: Vec<f32> = base.iter().zip(delta).map(|(b, x)| b + x * share).collect();
		Ok(gain(model, base, &applied, own)? > gain(model, base, &applied, other)?)
	}

	/// Train the contributor's round again and return `‖delta − r‖ / ‖r‖`, with `r` the
	/// re-computed update after the contributor's compression.
	pub fn recompute_error(
		&self,
		model: &mut Model,
		base: &[f32],
		delta: &[f32],
		compression: Compression,
		role: &PublicRole,
	) -> Result<f64> {
		model.set_flat_params(base)?;
		let shard = self.shards.shard(role.assigned.shard)?;
		let redone = local_round(model, shard, &self.cfg, role.assigned.seed)?.update;
		let redone = Compressed::new(compression, &redone).decode()?;
		Ok(relative_error(delta, &redone))
	}
}

/// `‖a − b‖ / ‖b‖` (infinite when the lengths differ or `b` is zero and `a` is not).
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
	if a.len() != b.len() {
		return f64::INFINITY;
	}
	let (mut diff, mut norm) = (0f64, 0f64);
	for (x, y) in a.iter().zip(b) {
		let (x, y) = (f64::from(*x), f64::from(*y));
		diff += (x - y) * (x - y);
		norm += y * y;
	}
	if diff == 0.0 {
		return 0.0;
	}
	if norm == 0.0 {
		return f64::INFINITY;
	}
	(diff / norm).sqrt()
}

/// Loss decrease on `data` from `base` to `applied`, in micro-units.
fn gain(model: &mut Model, base: &[f32], applied: &[f32], data: &Dataset) -> Result<i64> {
	model.set_flat_params(base)?;
	let before = evaluate(model, data)?.loss;
	model.set_flat_params(applied)?;
	let after = evaluate(model, data)?.loss;
	let g = (f64::from(before) - f64::from(after)) * 1e6;
	Ok(if g.is_finite() { g.round() as i64 } else { i64::MIN })
}
