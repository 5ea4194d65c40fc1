//! `trainchain-trainer train`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use trainchain_trainer::train::{self, OptimizerConfig, Progress, SgdParams, TrainConfig};
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, Model};

use super::common::{self, CsvArgs};

/// Arguments of `train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
	/// Model: a spec (mlp:64-128-10, logreg:64-10, cnn:1x8x8-8-16-10, optionally @seed) or a
	/// bare kind (mlp, logreg, cnn) sized from the data.
	#[arg(long, default_value = "mlp")]
	pub model: String,
	/// Training data: CSV, or IDX images (with --labels).
	#[arg(long)]
	pub data: PathBuf,
	/// IDX label file for --data.
	#[arg(long)]
	pub labels: Option<PathBuf>,
	/// Held-out data evaluated after every epoch: CSV, or IDX images (with --test-labels).
	#[arg(long)]
	pub test: Option<PathBuf>,
	/// IDX label file for --test.
	#[arg(long)]
	pub test_labels: Option<PathBuf>,
	#[command(flatten)]
	pub csv: CsvArgs,
	/// Epochs.
	#[arg(long, default_value_t = 10)]
	pub epochs: usize,
	/// Stop after this many optimizer steps instead of counting epochs.
	#[arg(long)]
	pub max_steps: Option<usize>,
	/// Mini-batch size.
	#[arg(long, default_value_t = 32)]
	pub batch_size: usize,
	/// Optimizer: sgd (with momentum) or adam.
	#[arg(long, default_value = "sgd")]
	pub optimizer: String,
	/// Learning rate (default 0.05 for sgd, 0.001 for adam).
	#[arg(long)]
	pub lr: Option<f64>,
	/// SGD momentum.
	#[arg(long, default_value_t = 0.9)]
	pub momentum: f64,
	/// Weight decay (L2 for sgd, decoupled for adam).
	#[arg(long, default_value_t = 0.0)]
	pub weight_decay: f64,
	/// Seed of the shuffles (the initial weights come from the spec's @seed).
	#[arg(long, default_value_t = 0)]
	pub seed: u64,
	/// Where to save the trained weights (safetensors).
	#[arg(long)]
	pub out: Option<PathBuf>,
	/// Machine-readable output: one JSON object per line.
	#[arg(long)]
	pub json: bool,
}

pub fn optimizer(
	name: &str,
	lr: Option<f64>,
	momentum: f64,
	weight_decay: f64,
) -> Result<OptimizerConfig> {
	Ok(match name {
		"sgd" => OptimizerConfig::Sgd(SgdParams { lr: lr.unwrap_or(0.05), momentum, weight_decay }),
		"adam" | "adamw" => OptimizerConfig::Adam {
			lr: lr.unwrap_or(0.001),
			beta1: 0.9,
			beta2: 0.999,
			eps: 1e-8,
			weight_decay,
		},
		other => anyhow::bail!("--optimizer {other:?}: expected sgd or adam"),
	})
}

pub fn run(a: TrainArgs) -> Result<()> {
	let train_set = common::load(&a.data, a.labels.as_ref(), &a.csv)?;
	let test_set = match &a.test {
		Some(p) => Some(common::load(p, a.test_labels.as_ref(), &a.csv)?),
		None => None,
	};
	let mut sets = vec![&train_set];
	sets.extend(test_set.as_ref());
	let spec = common::resolve_spec(&a.model, &sets)?;
	let cfg = TrainConfig {
		epochs: a.epochs,
		max_steps: a.max_steps,
		batch_size: a.batch_size,
		optimizer: optimizer(&a.optimizer, a.lr, a.momentum, a.weight_decay)?,
	};
	let mut model = Model::new(&spec)?;
	let commitment = spec.commitment()?;
	if a.json {
		common::print_json(&json!({
			"event": "start", "spec": spec.to_string(), "params": model.num_params(),
			"commitment": hex32(&commitment), "train_samples": train_set.len(),
			"test_samples": test_set.as_ref().map(|t| t.len()), "config": cfg,
		}));
	} else {
		println!(
			"model {spec} ({} params), commitment {}\ntrain {} samples{}",
			model.num_params(),
			hex32(&commitment),
			train_set.len(),
			test_set
				.as_ref()
				.map(|t| format!(", test {} samples", t.len()))
				.unwrap_or_default()
		);
	}
	let total = train::total_steps(&cfg, train_set.len());
	let bar = ProgressBar::new(total as u64);
	if a.json {
		bar.set_draw_target(ProgressDrawTarget::hidden());
	}
	bar.set_style(
		ProgressStyle::with_template(
			"{bar:40} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
		)
		.unwrap_or_else(|_| ProgressStyle::default_bar()),
	);
	let started = Instant::now();
	let json_out = a.json;
	let epochs = a.epochs;
	let mut on_progress = |p: &Progress| match p {
		Progress::Step { done, loss, .. } => {
			bar.set_position(*done as u64);
			if done % 10 == 0 {
				bar.set_message(format!("loss {loss:.4}"));
			}
		},
		Progress::Epoch(r) => {
			if json_out {
				common::print_json(
					&json!({"event": "epoch", "epoch": r.epoch, "train_loss": r.train_loss,
                    "test_loss": r.test.map(|m| m.loss), "test_accuracy": r.test.map(|m| m.accuracy)}),
				);
			} else {
				let test = r
					.test
					.map(|m| format!(" test_loss={:.4} test_acc={:.4}", m.loss, m.accuracy))
					.unwrap_or_default();
				bar.suspend(|| {
					println!("epoch {}/{} train_loss={:.4}{test}", r.epoch, epochs, r.train_loss)
				});
			}
		},
	};
	let reports =
		train::fit(&mut model, &train_set, test_set.as_ref(), &cfg, a.seed, &mut on_progress)?;
	bar.finish_and_clear();
	let secs = started.elapsed().as_secs_f64();
	let state = hex32(&model_state_hash(&model)?);
	if let Some(out) = &a.out {
		checkpoint::save(&model, out)?;
	}
	let last = reports.last().and_then(|r| r.test);
	if a.json {
		common::print_json(&json!({"event": "done", "spec": spec.to_string(), "seconds": secs,
            "model_hash": state, "out": a.out.as_ref().map(|p| p.display().to_string()),
            "test_loss": last.map(|m| m.loss), "test_accuracy": last.map(|m| m.accuracy)}));
	} else {
		println!("trained in {secs:.2}s; model state hash {state}");
		if let Some(out) = &a.out {
			println!("saved {}", out.display());
		}
	}
	Ok(())
}
