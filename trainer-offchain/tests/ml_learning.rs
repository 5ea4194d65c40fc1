//! Learning: loss falls on synthetic data, the digits MLP reaches ≥ 0.9, FedAvg learns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use trainchain_trainer::data::{gaussian_blobs, load_csv, shard_iid, shard_label_skew, CsvOptions};
use trainchain_trainer::eval::evaluate;
use trainchain_trainer::train::{fit, local_round, OptimizerConfig, TrainConfig};
use trainchain_trainer::{fedavg, Model, ModelSpec};

#[test]
fn synthetic_loss_falls_and_accuracy_rises() {
	let data = gaussian_blobs(600, 10, 4, 1.5, 0.6, 11).unwrap();
	let (train, test) = data.split_at(450).unwrap();
	for (spec, opt) in [
		("logreg:10-4@1", OptimizerConfig::sgd(0.1, 0.9)),
		("mlp:10-32-4@1", OptimizerConfig::adam(0.01)),
		("cnn:1x5x2-4-4@1", OptimizerConfig::adam(0.01)),
	] {
		let spec = ModelSpec::parse(spec).unwrap();
		let mut m = Model::new(&spec).unwrap();
		let before = evaluate(&m, &test).unwrap();
		let cfg = TrainConfig {
			epochs: 8,
			max_steps: None,
			batch_size: 32,
			optimizer: opt,
			..Default::default()
		};
		let reports = fit(&mut m, &train, Some(&test), &cfg, 3, &mut |_| {}).unwrap();
		let after = evaluate(&m, &test).unwrap();
		let first = reports.first().unwrap().train_loss;
		let last = reports.last().unwrap().train_loss;
		eprintln!(
			"{spec}: loss {:.3}->{:.3}, train loss {first:.3}->{last:.3}, acc {:.3}->{:.3}",
			before.loss, after.loss, before.accuracy, after.accuracy
		);
		assert!(last < first, "{spec}: training loss did not fall");
		assert!(after.loss < before.loss * 0.5, "{spec}: test loss did not halve");
		assert!(after.accuracy >= 0.9, "{spec}: accuracy {}", after.accuracy);
	}
}

fn digits() -> (trainchain_trainer::data::Dataset, trainchain_trainer::data::Dataset) {
	let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
	(
		load_csv(root.join("digits-train.csv"), CsvOptions::default()).unwrap(),
		load_csv(root.join("digits-test.csv"), CsvOptions::default()).unwrap(),
	)
}

#[test]
fn digits_mlp_reaches_90_percent() {
	let (train, test) = digits();
	let spec = ModelSpec::parse("mlp:64-128-10@0").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let cfg = TrainConfig {
		epochs: 10,
		max_steps: None,
		batch_size: 32,
		optimizer: OptimizerConfig::sgd(0.05, 0.9),
		..Default::default()
	};
	fit(&mut m, &train, None, &cfg, 0, &mut |_| {}).unwrap();
	let r = evaluate(&m, &test).unwrap();
	eprintln!("digits mlp: test loss {:.4} accuracy {:.4}", r.loss, r.accuracy);
	assert!(r.accuracy >= 0.9, "accuracy {}", r.accuracy);
}

#[test]
fn fedavg_iid_and_label_skew_learn() {
	let (train, test) = digits();
	let spec = ModelSpec::parse("mlp:64-64-10@1").unwrap();
	let cfg = TrainConfig {
		epochs: 1,
		max_steps: None,
		batch_size: 32,
		optimizer: OptimizerConfig::sgd(0.05, 0.9),
		..Default::default()
	};
	let shards = shard_iid(&train, 4, 0).unwrap();
	let mut curve = Vec::new();
	let out = fedavg::simulate(&spec, &shards, 6, &cfg, 0, Some(&test), &mut |r| {
		curve.push(r.test.unwrap().accuracy)
	})
	.unwrap();
	eprintln!("fedavg iid curve {curve:?}");
	assert_eq!(out.rounds.len(), 6);
	assert!(curve.last().unwrap() >= &0.9, "{curve:?}");
	// Reproducible: same inputs → same global model.
	let again = fedavg::simulate(&spec, &shards, 6, &cfg, 0, None, &mut |_| {}).unwrap();
	assert_eq!(again.rounds.last().unwrap().model_hash, out.rounds.last().unwrap().model_hash);
	// Label-skewed shards still learn something, more slowly.
	let skew = shard_label_skew(&train, 5, 2, 0).unwrap();
	let out = fedavg::simulate(&spec, &skew, 6, &cfg, 0, Some(&test), &mut |_| {}).unwrap();
	let acc = out.rounds.last().unwrap().test.unwrap().accuracy;
	eprintln!("fedavg label-skew final accuracy {acc}");
	assert!(acc > 0.5, "{acc}");
}

#[test]
fn one_local_round_improves_the_global_model() {
	let (train, test) = digits();
	let spec = ModelSpec::parse("mlp:64-32-10@2").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let before = evaluate(&m, &test).unwrap();
	let cfg = TrainConfig {
		epochs: 1,
		max_steps: None,
		batch_size: 16,
		optimizer: OptimizerConfig::adam(0.003),
		..Default::default()
	};
	let out = local_round(&mut m, &train, &cfg, 1).unwrap();
	let after = evaluate(&m, &test).unwrap();
	assert_eq!(out.samples, 1437);
	assert!(after.accuracy > before.accuracy + 0.3, "{before:?} -> {after:?}");
}
