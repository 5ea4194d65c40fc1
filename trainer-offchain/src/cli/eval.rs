//! `trainchain-trainer eval`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, eval};

use super::common::{self, CsvArgs};

/// Arguments of `eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
	/// Model spec or bare kind; default: the spec stored in the weights file.
	#[arg(long)]
	pub model: Option<String>,
	/// Weights (safetensors written by `train`).
	#[arg(long)]
	pub weights: PathBuf,
	/// Data: CSV, or IDX images (with --labels).
	#[arg(long)]
	pub data: PathBuf,
	/// IDX label file for --data.
	#[arg(long)]
	pub labels: Option<PathBuf>,
	#[command(flatten)]
	pub csv: CsvArgs,
	/// Machine-readable output.
	#[arg(long)]
	pub json: bool,
}

pub fn run(a: EvalArgs) -> Result<()> {
	let data = common::load(&a.data, a.labels.as_ref(), &a.csv)?;
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
	if a.json {
		common::print_json(&json!({"spec": model.spec().to_string(), "samples": m.samples,
            "loss": m.loss, "accuracy": m.accuracy, "model_hash": state,
            "standardized": standardizer.is_some()}));
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
