//! `trainchain-trainer eval`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, data, eval};

use super::common::{self, CsvArgs, TextRows};

/// Arguments of `eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
	/// Model spec or bare kind; default: the spec stored in the weights file.
	#[arg(long)]
	pub model: Option<String>,
	/// Weights (safetensors written by `train`).
	#[arg(long)]
	pub weights: PathBuf,
	/// Data: CSV, IDX images (with --labels), or text for a gpt model.
	#[arg(long)]
	pub data: PathBuf,
	/// IDX label file for --data.
	#[arg(long)]
	pub labels: Option<PathBuf>,
	/// Text data (gpt): evaluate only the last 10% of --data (the split `train --holdout`
	/// held out).
	#[arg(long)]
	pub holdout: bool,
	/// Text data (gpt): bytes between the starts of consecutive rows (default: the context).
	#[arg(long)]
	pub stride: Option<usize>,
	#[command(flatten)]
	pub csv: CsvArgs,
	/// Machine-readable output.
	#[arg(long)]
	pub json: bool,
	/// gpt: also print a continuation of --prompt this many bytes long.
	#[arg(long, default_value_t = 0)]
	pub sample: usize,
	/// gpt: the text the sample continues.
	#[arg(long, default_value = "The ")]
	pub prompt: String,
	/// gpt: sampling temperature (0: greedy), draws seeded by --seed.
	#[arg(long, default_value_t = 0.8)]
	pub temperature: f32,
	/// gpt: seed of the sample's draws.
	#[arg(long, default_value_t = 0)]
	pub seed: u64,
}

pub fn run(a: EvalArgs) -> Result<()> {
	// A gpt reads text in rows of its context: from --model, else from the stored spec.
	let model_str = match &a.model {
		Some(m) => Some(m.clone()),
		None => checkpoint::read_spec(&a.weights)?.map(|s| s.to_string()),
	};
	let text = match &model_str {
		Some(m) => TextRows::for_model(m, a.stride)?,
		None => None,
	};
	let data = match text {
		Some(t) if a.holdout => data::load_text_split(&a.data, t.context, t.stride)?.1,
		None if a.holdout => anyhow::bail!("--holdout splits text data for a gpt model"),
		_ => common::load(&a.data, a.labels.as_ref(), &a.csv, text)?,
	};
	let spec = match &a.model {
		Some(m) => Some(common::resolve_spec(m, &[&data])?),
		None => None,
	};
	let (model, standardizer) = checkpoint::load_with(&a.weights, spec.as_ref())?;
	// A checkpoint written by `train` carries the training data's mean/std: the model was
	// trained on standardised inputs, so it must see them here too.
	let data = match &standardizer {
		Some(s) => {
			data.check_compatible(model.spec())?;
			s.apply(&data)?
		},
		None => data,
	};
	let m = eval::evaluate(&model, &data)?;
	let state = hex32(&model_state_hash(&model)?);
	let sample = super::train::sample_text(&model, &a.prompt, a.sample, a.temperature, a.seed)?;
	if a.json {
		common::print_json(&json!({"spec": model.spec().to_string(), "samples": m.samples,
            "loss": m.loss, "accuracy": m.accuracy, "model_hash": state,
            "perplexity": Some(m.perplexity()).filter(|_| model.spec().is_lm()),
            "standardized": standardizer.is_some(), "sample": sample}));
	} else if model.spec().is_lm() {
		println!(
			"model {} on {} ({} rows): loss={:.4} perplexity={:.3} accuracy={:.4} (per token)",
			model.spec(),
			data.name,
			m.samples,
			m.loss,
			m.perplexity(),
			m.accuracy
		);
		println!("model state hash {state}");
		if let Some(s) = sample {
			println!("sample (--prompt {:?}, {} bytes):\n{s}", a.prompt, a.sample);
		}
	} else {
		println!(
			"model {} on {} ({} samples): loss={:.4} accuracy={:.4}",
			model.spec(),
			data.name,
			m.samples,
			m.loss,
			m.accuracy
		);
		println!("model state hash {state}");
	}
	Ok(())
}
