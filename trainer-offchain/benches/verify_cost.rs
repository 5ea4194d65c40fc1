//! What verifying a round costs against training one contribution (harness = false).
//!
//! ```text
//! cargo bench -p trainchain-trainer --bench verify_cost
//! ```
//! For digits (`mlp:64-32-10`, one local epoch at batch 32, lr 0.1 as in the demo) and
//! `n` = 3 and 16 contributors on IID shards, prints one line per `n`:
//! `verify-cost contributors=n train_ms_median=.. verify_ms_median=.. ratio=..` where
//! `train_ms` is one contributor's local round and `verify_ms` one verifier's whole round:
//! every update scored alone on the held-out set, plus the aggregated model's metric.
//!
//! Then the same for a public-data job (digits' training set in `n` shards, each contributor
//! on its chain-assigned shard for 40 steps, int8): `verify-cost public contributors=n
//! recompute=r ...` with every update also screened on two shards and `r` re-computed.

use std::time::Instant;

use trainchain_primitives::public_data::{assign_shard, comparison_shard, recompute_sample};
use trainchain_trainer::compress::{Compressed, Compression};
use trainchain_trainer::data::{load_csv, shard_iid, CsvOptions, Dataset};
use trainchain_trainer::public_data::{train_config, PublicCheck, PublicRole, PublicShards};
use trainchain_trainer::score::{model_metric, score_round, Contribution};
use trainchain_trainer::train::{local_round, OptimizerConfig, TrainConfig};
use trainchain_trainer::{Model, ModelSpec};

fn median(mut v: Vec<f64>) -> f64 {
	v.sort_by(f64::total_cmp);
	v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Shared);
	let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
	let train = load_csv(dir.join("digits-train.csv"), CsvOptions::default())?;
	let test = load_csv(dir.join("digits-test.csv"), CsvOptions::default())?;
	let spec = ModelSpec::parse("mlp:64-32-10")?;
	let base = spec.initial_params()?;
	let cfg = TrainConfig {
		epochs: 1,
		batch_size: 32,
		optimizer: OptimizerConfig::sgd(0.1, 0.9),
		..Default::default()
	};
	for n in [3usize, 16] {
		let shards = shard_iid(&train, n, 42)?;
		let mut model = Model::from_flat(&spec, &base)?;
		let mut train_ms = Vec::new();
		let mut contributions = Vec::new();
		for (i, shard) in shards.iter().enumerate() {
			model.set_flat_params(&base)?;
			let t = Instant::now();
			let out = local_round(&mut model, shard, &cfg, i as u64)?;
			train_ms.push(t.elapsed().as_secs_f64() * 1e3);
			contributions.push(Contribution {
				delta: Some(out.update),
				committed_at: 1,
				compression: Compression::None,
				public: None,
			});
		}
		let mean: Vec<f32> = (0..base.len())
			.map(|j| {
				let s: f32 = contributions
					.iter()
					.filter_map(|c| c.delta.as_ref().and_then(|d| d.get(j)))
					.sum();
				base.get(j).copied().unwrap_or(0.0) + s / n as f32
			})
			.collect();
		let mut verify_ms = Vec::new();
		for _ in 0..5 {
			let t = Instant::now();
			let scores = score_round(&mut model, &base, &contributions, &test, None)?;
			let metric = model_metric(&mut model, &mean, &test)?;
			verify_ms.push(t.elapsed().as_secs_f64() * 1e3);
			std::hint::black_box((scores, metric));
		}
		let (tr, ve) = (median(train_ms), median(verify_ms));
		println!(
			"verify-cost contributors={n} train_ms_median={tr:.2} verify_ms_median={ve:.2} ratio={:.2}",
			ve / tr
		);
		public_round(&spec, &train, &test, n as u32)?;
	}
	Ok(())
}

/// The public-data variant (see the module docs), re-computing 1 contributor.
fn public_round(
	spec: &ModelSpec,
	train: &Dataset,
	test: &Dataset,
	n: u32,
) -> Result<(), Box<dyn std::error::Error>> {
	let shards = PublicShards::split(train, n)?;
	let cfg = train_config(100_000, 32, 40);
	let base = spec.initial_params()?;
	let mut model = Model::from_flat(spec, &base)?;
	let (mut train_ms, mut contributions) = (Vec::new(), Vec::new());
	let seed = [5u8; 32];
	let who: Vec<[u8; 32]> = (0..n).map(|i| [i as u8 + 1; 32]).collect();
	let sample = recompute_sample(&seed, &who, 1);
	for (w, recompute) in who.iter().zip(sample) {
		let assigned = assign_shard(1, 0, w, n);
		model.set_flat_params(&base)?;
		let t = Instant::now();
		let out = local_round(&mut model, shards.shard(assigned.shard)?, &cfg, assigned.seed)?;
		train_ms.push(t.elapsed().as_secs_f64() * 1e3);
		let compare = comparison_shard(&seed, w, assigned.shard, n);
		contributions.push(Contribution {
			delta: Some(Compressed::new(Compression::Int8, &out.update).decode()?),
			committed_at: 1,
			compression: Compression::Int8,
			public: Some(PublicRole { assigned, compare, recompute }),
		});
	}
	let check = PublicCheck { shards: &shards, cfg };
	let mut verify_ms = Vec::new();
	for _ in 0..5 {
		let t = Instant::now();
		let scores = score_round(&mut model, &base, &contributions, test, Some(&check))?;
		verify_ms.push(t.elapsed().as_secs_f64() * 1e3);
		std::hint::black_box(scores);
	}
	let (tr, ve) = (median(train_ms), median(verify_ms));
	println!(
		"verify-cost public contributors={n} recompute=1 train_ms_median={tr:.2} verify_ms_median={ve:.2} ratio={:.2}",
		ve / tr
	);
	Ok(())
}
