//! `trainchain-trainer train`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use trainchain_trainer::convergence::{self, label_entropy};
use trainchain_trainer::data::{self, Dataset};
use trainchain_trainer::gpt::{self, Sampling};
use trainchain_trainer::standardize::{Scope, Standardizer};
use trainchain_trainer::train::{
	self, EpochReport, OptimizerConfig, Progress, Schedule, SgdParams, TrainConfig,
};
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, eval, Model, ModelSpec, TrainerError};

use super::common::{self, CsvArgs, TextRows};

/// Arguments of `train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
	/// Model: a spec (mlp:64-128-10, logreg:64-10, cnn:1x8x8-8-16-10,
	/// gpt:VOCAB-DMODEL-LAYERS-HEADS-CONTEXT, optionally @seed) or a bare kind (mlp, logreg,
	/// cnn, gpt) sized from the data. A gpt trains on text (--data FILE.txt, bytes as tokens).
	#[arg(long, default_value = "mlp")]
	pub model: String,
	/// Training data: CSV, IDX images (with --labels), or a .txt file for a gpt model.
	#[arg(long)]
	pub data: PathBuf,
	/// IDX label file for --data.
	#[arg(long)]
	pub labels: Option<PathBuf>,
	/// Held-out data evaluated after every epoch: CSV, IDX images (with --test-labels), or text.
	#[arg(long)]
	pub test: Option<PathBuf>,
	/// Text data (gpt): hold out the last 10% of --data as the test set.
	#[arg(long, conflicts_with = "test")]
	pub holdout: bool,
	/// Text data (gpt): bytes between the starts of consecutive rows (default: the context).
	#[arg(long)]
	pub stride: Option<usize>,
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
	/// Optimizer: sgd (with momentum), adam, or adamw (adam with a default --weight-decay of
	/// 0.01). Default: sgd, adamw for a gpt.
	#[arg(long)]
	pub optimizer: Option<String>,
	/// Learning rate (default 0.05 for sgd, 0.001 for adam/adamw).
	#[arg(long)]
	pub lr: Option<f64>,
	/// SGD momentum.
	#[arg(long, default_value_t = 0.9)]
	pub momentum: f64,
	/// Weight decay (L2 for sgd, decoupled for adam/adamw; default 0, 0.01 for adamw).
	#[arg(long)]
	pub weight_decay: Option<f64>,
	/// Learning-rate schedule: constant, or cosine (linear warm-up over --warmup steps, then
	/// cosine decay to --min-lr-ratio × --lr at the last step).
	#[arg(long, default_value = "constant")]
	pub schedule: String,
	/// Warm-up steps of --schedule cosine.
	#[arg(long, default_value_t = 0)]
	pub warmup: usize,
	/// Final learning rate of --schedule cosine, as a fraction of --lr.
	#[arg(long, default_value_t = 0.1)]
	pub min_lr_ratio: f64,
	/// Print the step's training loss (and perplexity for a gpt) every N steps (0: never).
	#[arg(long, default_value_t = 0)]
	pub log_every: usize,
	/// gpt: after training, print a continuation of --prompt this many bytes long (0: none).
	#[arg(long, default_value_t = 200)]
	pub sample: usize,
	/// gpt: the text the sample continues.
	#[arg(long, default_value = "The ")]
	pub prompt: String,
	/// gpt: sampling temperature (0: greedy); draws seeded by --seed.
	#[arg(long, default_value_t = 0.8)]
	pub temperature: f32,
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

/// Rows of a language model's training set its initial loss is measured on.
const INITIAL_LM_ROWS: usize = 512;

pub fn optimizer(
	name: &str,
	lr: Option<f64>,
	momentum: f64,
	weight_decay: Option<f64>,
) -> Result<OptimizerConfig> {
	let adam = |weight_decay| OptimizerConfig::Adam {
		lr: lr.unwrap_or(0.001),
		beta1: 0.9,
		beta2: 0.999,
		eps: 1e-8,
		weight_decay,
	};
	Ok(match name {
		"sgd" => OptimizerConfig::Sgd(SgdParams {
			lr: lr.unwrap_or(0.05),
			momentum,
			weight_decay: weight_decay.unwrap_or(0.0),
		}),
		"adam" => adam(weight_decay.unwrap_or(0.0)),
		"adamw" => adam(weight_decay.unwrap_or(0.01)),
		other => anyhow::bail!("--optimizer {other:?}: expected sgd, adam or adamw"),
	})
}

/// The learning-rate schedule of `--schedule` over a run of `total` steps.
fn schedule(a: &TrainArgs, total: usize) -> Result<Schedule> {
	Ok(match a.schedule.as_str() {
		"constant" => Schedule::Constant,
		"cosine" => Schedule::WarmupCosine { warmup: a.warmup, total, min_ratio: a.min_lr_ratio },
		other => anyhow::bail!("--schedule {other:?}: expected constant or cosine"),
	})
}

/// The training and test sets as loaded.
fn load_sets(a: &TrainArgs) -> Result<(Dataset, Option<Dataset>)> {
	let text = TextRows::for_model(&a.model, a.stride)?;
	if a.holdout {
		let Some(t) = text.filter(|_| a.labels.is_none()) else {
			anyhow::bail!("--holdout splits text data: it needs a gpt model and a .txt file");
		};
		let (train_set, test_set) = data::load_text_split(&a.data, t.context, t.stride)?;
		return Ok((train_set, Some(test_set)));
	}
	let train_set = common::load(&a.data, a.labels.as_ref(), &a.csv, text)?;
	let test_set = match &a.test {
		Some(p) => Some(common::load(p, a.test_labels.as_ref(), &a.csv, text)?),
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
	if a.no_standardize || spec.is_lm() {
		// Token ids are categories, not measurements: never standardised.
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
	let standardize = !a.no_standardize && !spec.is_lm();
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
	let (json_out, epochs, lm, log_every) = (a.json, cfg.epochs, model.spec().is_lm(), a.log_every);
	// A language model's loss is per token: its perplexity exp(loss) is printed with it.
	let ppl = |name: &str, loss: f32| {
		if lm {
			format!(" {name}_ppl={:.3}", loss.exp())
		} else {
			String::new()
		}
	};
	let mut on_progress = |p: &Progress| match p {
		Progress::Step { done, total, loss } => {
			bar.set_position(*done as u64);
			if done % 10 == 0 {
				bar.set_message(format!("loss {loss:.4}"));
			}
			if log_every > 0 && done % log_every == 0 {
				if json_out {
					common::print_json(&json!({"event": "step", "step": done, "loss": loss}));
				} else {
					let p = ppl("train", *loss);
					bar.suspend(|| println!("step {done}/{total} train_loss={loss:.4}{p}"));
				}
			}
		},
		Progress::Epoch(r) => {
			if json_out {
				common::print_json(
					&json!({"event": "epoch", "epoch": r.epoch, "train_loss": r.train_loss,
                    "test_loss": r.test.map(|m| m.loss), "test_accuracy": r.test.map(|m| m.accuracy),
                    "test_perplexity": r.test.filter(|_| lm).map(|m| m.perplexity())}),
				);
			} else {
				let test = r
					.test
					.map(|m| {
						format!(
							" test_loss={:.4}{} test_acc={:.4}",
							m.loss,
							ppl("test", m.loss),
							m.accuracy
						)
					})
					.unwrap_or_default();
				let train = ppl("train", r.train_loss);
				bar.suspend(|| {
					println!(
						"epoch {}/{} train_loss={:.4}{train}{test}",
						r.epoch, epochs, r.train_loss
					)
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
	let default_opt = if spec.is_lm() { "adamw" } else { "sgd" };
	let opt_name = a.optimizer.as_deref().unwrap_or(default_opt);
	let mut cfg = TrainConfig {
		epochs: a.epochs.unwrap_or(train::default_epochs(train_set.len(), a.batch_size)),
		max_steps: a.max_steps,
		batch_size: a.batch_size,
		optimizer: optimizer(opt_name, a.lr, a.momentum, a.weight_decay)?,
		schedule: Schedule::Constant,
		first_step: 0,
	};
	cfg.schedule = schedule(&a, train::total_steps(&cfg, train_set.len()))?;
	let mut model = Model::new(&spec)?;
	let sets = (&train_set, test_set.as_ref());
	print_start(&a, &model, &cfg, sets)?;
	// The baseline of the divergence check (see `convergence`). A language model's initial
	// loss is measured on at most INITIAL_LM_ROWS evenly spaced rows: over a whole corpus it
	// would cost as much as hundreds of training steps, for a figure close to ln(vocab).
	let initial = if spec.is_lm() && train_set.len() > INITIAL_LM_ROWS {
		let every = train_set.len() / INITIAL_LM_ROWS;
		let rows: Vec<usize> = (0..INITIAL_LM_ROWS).map(|i| i * every).collect();
		eval::evaluate(&model, &train_set.subset("initial-loss rows", &rows)?)?.loss
	} else {
		eval::evaluate(&model, &train_set)?.loss
	};
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
	let sample = sample(&a, &model)?;
	if a.json {
		common::print_json(&json!({"event": "done", "spec": spec.to_string(), "seconds": secs,
            "model_hash": state, "out": a.out.as_ref().map(|p| p.display().to_string()),
            "test_loss": last.map(|m| m.loss), "test_accuracy": last.map(|m| m.accuracy),
            "test_perplexity": last.filter(|_| spec.is_lm()).map(|m| m.perplexity()),
            "sample": sample}));
	} else {
		println!("trained in {secs:.2}s; model state hash {state}");
		if let Some(out) = &a.out {
			println!("saved {}", out.display());
		}
		if let Some(s) = sample {
			println!("sample (--prompt {:?}, {} bytes):\n{s}", a.prompt, a.sample);
		}
	}
	Ok(())
}

/// A gpt's continuation of `--prompt` (prompt included), or `None` for other models or
/// `--sample 0`. Bytes that are not UTF-8 print as U+FFFD.
fn sample(a: &TrainArgs, model: &Model) -> Result<Option<String>> {
	sample_text(model, &a.prompt, a.sample, a.temperature, a.seed)
}

/// A gpt's continuation of `prompt`, `n` bytes long (prompt included; `None` for other
/// models or `n = 0`): greedy at temperature 0, else seeded draws.
pub(super) fn sample_text(
	model: &Model,
	prompt: &str,
	n: usize,
	temperature: f32,
	seed: u64,
) -> Result<Option<String>> {
	if !model.spec().is_lm() || n == 0 {
		return Ok(None);
	}
	let prompt: Vec<u32> = prompt.bytes().map(u32::from).collect();
	let how = if temperature == 0.0 {
		Sampling::Greedy
	} else {
		Sampling::Temperature { temperature, seed }
	};
	let out = gpt::sample(model, &prompt, n, how)?;
	let bytes: Vec<u8> =
		prompt.iter().chain(&out).map(|&t| u8::try_from(t).unwrap_or(b'?')).collect();
	Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
