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

use std::time::Instant;

use trainchain_trainer::compress::Compression;
use trainchain_trainer::data::{load_csv, shard_iid, CsvOptions};
use trainchain_trainer::score::{model_metric, score_round, Contribution};
use trainchain_trainer::train::{local_round, OptimizerConfig, TrainConfig};
use trainchain_trainer::{Model, ModelSpec};

fn median(mut v: Vec<f64>) -> f64 {
	v.sort_by(f64::total_cmp);
	v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
	}
	Ok(())
}
