//! `trainchain-trainer train`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use trainchain_trainer::convergence::{self, label_entropy};
use trainchain_trainer::data::Dataset;
use trainchain_trainer::standardize::{Scope, Standardizer};
use trainchain_trainer::train::{
	self, EpochReport, OptimizerConfig, Progress, SgdParams, TrainConfig,
};
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, eval, Model, ModelSpec, TrainerError};

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
	/// Epochs (default: 10, or more on a small data set so that training takes at least 500
	/// optimizer steps, e.g. 125 epochs of 112 samples in batches of 32).
	#[arg(long)]
	pub epochs: Option<usize>,
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
	/// Train on the data as it is. By default every input feature is standardised with the
	/// mean and std of the training data (one mean/std over all pixels for cnn), and the
	/// statistics are saved in the checkpoint for `eval`.
	#[arg(long)]
	pub no_standardize: bool,
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

/// The training and test sets as loaded.
fn load_sets(a: &TrainArgs) -> Result<(Dataset, Option<Dataset>)> {
	let train_set = common::load(&a.data, a.labels.as_ref(), &a.csv)?;
	let test_set = match &a.test {
		Some(p) => Some(common::load(p, a.test_labels.as_ref(), &a.csv)?),
		None => None,
	};
	Ok((train_set, test_set))
}

/// Standardise both sets with the training set's statistics (see `standardize`), unless
/// `--no-standardize`.
fn standardize(
	a: &TrainArgs,
	spec: &ModelSpec,
	train_set: Dataset,
	test_set: Option<Dataset>,
) -> Result<(Dataset, Option<Dataset>, Option<Standardizer>)> {
	if a.no_standardize {
		return Ok((train_set, test_set, None));
	}
	// Check the shapes first, so a wrong model gives the model's error, not ours.
	train_set.check_compatible(spec)?;
	let scope = Scope::for_spec(spec);
	let s = Standardizer::fit(&train_set, scope)?;
	tracing::info!(?scope, "standardised inputs with the training data's mean and std");
	let test_set = test_set.map(|t| s.apply(&t)).transpose()?;
	Ok((s.apply(&train_set)?, test_set, Some(s)))
}

/// The error of a run that diverged or did not converge, with what to try next.
fn not_learned(e: TrainerError, a: &TrainArgs) -> anyhow::Error {
	let saved = match &a.out {
		Some(p) => format!("; the model was NOT saved to {}", p.display()),
		None => String::new(),
	};
	let hint = if a.no_standardize {
		"the inputs were not standardised (--no-standardize): drop that flag, or lower --lr"
	} else {
		"lower --lr"
	};
	anyhow::anyhow!("{e}{saved}; try: {hint}")
}

fn print_start(
	a: &TrainArgs,
	model: &Model,
	cfg: &TrainConfig,
	sets: (&Dataset, Option<&Dataset>),
) -> Result<()> {
	let spec = model.spec();
	let commitment = hex32(&spec.commitment()?);
	let (train_set, test_set) = sets;
	let standardize = !a.no_standardize;
	if a.json {
		common::print_json(&json!({
			"event": "start", "spec": spec.to_string(), "params": model.num_params(),
			"commitment": commitment, "train_samples": train_set.len(),
			"test_samples": test_set.map(|t| t.len()), "config": cfg, "standardize": standardize,
		}));
	} else {
		println!(
			"model {spec} ({} params), commitment {commitment}\ntrain {} samples{}{}",
			model.num_params(),
			train_set.len(),
			test_set.map(|t| format!(", test {} samples", t.len())).unwrap_or_default(),
			if standardize { ", inputs standardised" } else { "" }
		);
	}
	Ok(())
}

fn progress_bar(total: usize, hidden: bool) -> ProgressBar {
	let bar = ProgressBar::new(total as u64);
	if hidden {
		bar.set_draw_target(ProgressDrawTarget::hidden());
	}
	bar.set_style(
		ProgressStyle::with_template(
			"{bar:40} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
		)
		.unwrap_or_else(|_| ProgressStyle::default_bar()),
	);
	bar
}

/// Fit with a progress bar and per-epoch lines.
fn fit(
	a: &TrainArgs,
	model: &mut Model,
	cfg: &TrainConfig,
	sets: (&Dataset, Option<&Dataset>),
) -> Result<Vec<EpochReport>, TrainerError> {
	let (train_set, test_set) = sets;
	let bar = progress_bar(train::total_steps(cfg, train_set.len()), a.json);
	let (json_out, epochs) = (a.json, cfg.epochs);
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
	let reports = train::fit(model, train_set, test_set, cfg, a.seed, &mut on_progress);
	bar.finish_and_clear();
	reports
}

pub fn run(a: TrainArgs) -> Result<()> {
	let (train_set, test_set) = load_sets(&a)?;
	let mut sets = vec![&train_set];
	sets.extend(test_set.as_ref());
	let spec = common::resolve_spec(&a.model, &sets)?;
	let (train_set, test_set, standardizer) = standardize(&a, &spec, train_set, test_set)?;
	let cfg = TrainConfig {
		epochs: a.epochs.unwrap_or(train::default_epochs(train_set.len(), a.batch_size)),
		max_steps: a.max_steps,
		batch_size: a.batch_size,
		optimizer: optimizer(&a.optimizer, a.lr, a.momentum, a.weight_decay)?,
	};
	let mut model = Model::new(&spec)?;
	let sets = (&train_set, test_set.as_ref());
	print_start(&a, &model, &cfg, sets)?;
	// The baseline of the divergence check (see `convergence`).
	let initial = eval::evaluate(&model, &train_set)?.loss;
	let started = Instant::now();
	let checked = fit(&a, &mut model, &cfg, sets).and_then(|reports| {
		convergence::check_learned(initial, label_entropy(&train_set), &reports)?;
		Ok(reports)
	});
	let reports = match checked {
		Ok(r) => r,
		Err(e @ (TrainerError::Diverged { .. } | TrainerError::NotLearning { .. })) => {
			let e = not_learned(e, &a);
			if a.json {
				common::print_json(&json!({"event": "failed", "error": format!("{e:#}")}));
			}
			return Err(e);
		},
		Err(e) => return Err(e.into()),
	};
	let secs = started.elapsed().as_secs_f64();
	let state = hex32(&model_state_hash(&model)?);
	if let Some(out) = &a.out {
		checkpoint::save_with(&model, standardizer.as_ref(), out)?;
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
