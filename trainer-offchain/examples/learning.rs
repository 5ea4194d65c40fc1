//! Learning figures on the committed digits data:
//!
//! ```text
//! cargo run --release -p trainchain-trainer --example learning [-- --epochs 20 --shards 4 --json]
//! ```
//! 1. centralised: the MLP trained in one process for E epochs, test accuracy per epoch;
//! 2. FedAvg: the same MLP over N IID shards, 1 local epoch per round for E rounds (so the
//!    same total epochs over the data), test accuracy per round;
//! 3. FedAvg over label-skewed shards (2 label pieces per shard), same budget.

use std::path::Path;

use trainchain_trainer::data::{load_csv, shard_iid, shard_label_skew, CsvOptions};
use trainchain_trainer::eval::evaluate;
use trainchain_trainer::train::{fit, OptimizerConfig, Progress, TrainConfig};
use trainchain_trainer::{fedavg, Model, ModelSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Dedicated);
	let mut epochs = 20usize;
	let mut shards = 4usize;
	let mut json = false;
	let mut spec = "mlp:64-128-10@0".to_string();
	let mut it = std::env::args().skip(1);
	while let Some(a) = it.next() {
		match a.as_str() {
			"--epochs" => epochs = it.next().ok_or("--epochs N")?.parse()?,
			"--shards" => shards = it.next().ok_or("--shards N")?.parse()?,
			"--model" => spec = it.next().ok_or("--model SPEC")?,
			"--json" => json = true,
			other => return Err(format!("unknown argument {other}").into()),
		}
	}
	let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
	let train = load_csv(root.join("digits-train.csv"), CsvOptions::default())?;
	let test = load_csv(root.join("digits-test.csv"), CsvOptions::default())?;
	let spec = ModelSpec::parse(&spec)?;
	let cfg = TrainConfig {
		epochs,
		max_steps: None,
		batch_size: 32,
		optimizer: OptimizerConfig::sgd(0.05, 0.9),
		..Default::default()
	};

	println!("# centralised {spec}, {epochs} epochs, batch 32, SGD lr 0.05 momentum 0.9");
	let mut model = Model::new(&spec)?;
	let t = std::time::Instant::now();
	let mut central = Vec::new();
	fit(&mut model, &train, Some(&test), &cfg, 0, &mut |p| {
		if let Progress::Epoch(r) = p {
			let m = r.test.unwrap_or(trainchain_trainer::eval::Metrics {
				loss: f32::NAN,
				accuracy: f32::NAN,
				samples: 0,
			});
			central.push(m.accuracy);
			if json {
				println!("{{\"run\":\"central\",\"epoch\":{},\"train_loss\":{},\"test_loss\":{},\"test_accuracy\":{}}}", r.epoch, r.train_loss, m.loss, m.accuracy);
			} else {
				println!(
					"central epoch {:>2} train_loss={:.4} test_loss={:.4} test_acc={:.4}",
					r.epoch, r.train_loss, m.loss, m.accuracy
				);
			}
		}
	})?;
	let central_final = evaluate(&model, &test)?;
	let central_secs = t.elapsed().as_secs_f64();

	let local = TrainConfig { epochs: 1, ..cfg };
	let mut runs = Vec::new();
	for (name, parts) in [
		("fedavg-iid", shard_iid(&train, shards, 0)?),
		("fedavg-label-skew", shard_label_skew(&train, shards, 2, 0)?),
	] {
		println!("# {name}: {shards} shards, {epochs} rounds x 1 local epoch, same optimizer (fresh state per round)");
		let t = std::time::Instant::now();
		let out = fedavg::simulate(&spec, &parts, epochs, &local, 0, Some(&test), &mut |r| {
			let m = r.test.unwrap_or(trainchain_trainer::eval::Metrics {
				loss: f32::NAN,
				accuracy: f32::NAN,
				samples: 0,
			});
			if json {
				println!("{{\"run\":\"{name}\",\"round\":{},\"train_loss\":{},\"test_loss\":{},\"test_accuracy\":{}}}", r.round, r.train_loss, m.loss, m.accuracy);
			} else {
				println!(
					"{name} round {:>2} train_loss={:.4} test_loss={:.4} test_acc={:.4}",
					r.round, r.train_loss, m.loss, m.accuracy
				);
			}
		})?;
		runs.push((name, evaluate(&out.model, &test)?, t.elapsed().as_secs_f64()));
	}
	println!("# summary");
	println!("learning run=central model={spec} epochs={epochs} test_acc={:.4} test_loss={:.4} seconds={central_secs:.2}", central_final.accuracy, central_final.loss);
	for (name, m, secs) in runs {
		println!(
            "learning run={name} model={spec} shards={shards} rounds={epochs} test_acc={:.4} test_loss={:.4} gap_points={:+.2} seconds={secs:.2}",
            m.accuracy,
            m.loss,
            (m.accuracy - central_final.accuracy) * 100.0
        );
	}
	Ok(())
}
