//! `trainchain-trainer hash`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use trainchain_trainer::data::{self, CsvOptions};
use trainchain_trainer::outer::OuterOptimizer;
use trainchain_trainer::plan::{job_commitment, InnerOptimizer, PlanSchedule, TrainingPlan};
use trainchain_trainer::public_data::PublicShards;
use trainchain_trainer::standardize::{InputTransform, Scope, Standardizer};
use trainchain_trainer::update::{hex32, model_state_hash};
use trainchain_trainer::{checkpoint, Model, ModelSpec};

/// Arguments of `hash`.
#[derive(clap::Args, Debug)]
pub struct HashArgs {
	/// Model spec (e.g. mlp:64-128-10@0); default: the spec stored in --weights.
	#[arg(long)]
	pub model: Option<String>,
	/// Weights (safetensors): also print their state hash.
	#[arg(long)]
	pub weights: Option<PathBuf>,
	/// A public dataset (CSV): print the Merkle root of its --shards shards, the
	/// `shardsRoot` a public-data job commits to.
	#[arg(long, requires = "shards", conflicts_with_all = ["model", "weights"])]
	pub data: Option<PathBuf>,
	/// Number of shards of --data (row i in shard i mod N).
	#[arg(long, requires = "data")]
	pub shards: Option<u32>,
	/// The job's inner optimiser (`inner=` of its metadata): the commitment covers it.
	#[arg(long)]
	pub inner: Option<InnerOptimizer>,
	/// The job's outer optimiser (`outer=` of its metadata): the commitment covers it.
	#[arg(long)]
	pub outer: Option<OuterOptimizer>,
	/// The job's learning-rate schedule (`schedule=` of its metadata): covered too.
	#[arg(long)]
	pub schedule: Option<PlanSchedule>,
	/// Fit the job's input standardisation on this training data (CSV) and print it as
	/// `input` (the `input=` of the job's metadata, covered by the commitment): per feature
	/// for dense models, one mean and std for CNNs, and for inputs too wide for the job's
	/// metadata.
	#[arg(long, conflicts_with = "input")]
	pub standardize: Option<PathBuf>,
	/// The job's input transform as its metadata names it (`input=`).
	#[arg(long)]
	pub input: Option<InputTransform>,
	/// The job's contributors keep their inner optimiser's state across rounds
	/// (`inner_state=kept` in its metadata): covered too.
	#[arg(long)]
	pub keep_inner_state: bool,
	/// Machine-readable output.
	#[arg(long)]
	pub json: bool,
}

pub fn run(a: HashArgs) -> Result<()> {
	if let (Some(data), Some(shards)) = (&a.data, a.shards) {
		let root = hex32(&PublicShards::load(data, shards, None)?.root());
		if a.json {
			super::common::print_json(&json!({"shards": shards, "shards_root": root}));
		} else {
			println!("shards      {shards}");
			println!("shards_root {root}");
		}
		return Ok(());
	}
	let given = match &a.model {
		Some(m) => Some(ModelSpec::parse(m)?),
		None => None,
	};
	let (spec, weights_hash) = match &a.weights {
		Some(w) => {
			let model = checkpoint::load(w, given.as_ref())?;
			(model.spec().clone(), Some(hex32(&model_state_hash(&model)?)))
		},
		None => match given {
			Some(s) => (s, None),
			None => anyhow::bail!("give --model SPEC (e.g. mlp:64-128-10) and/or --weights FILE"),
		},
	};
	let initial = Model::new(&spec)?;
	let input = match &a.standardize {
		Some(path) => fit_input(&spec, path)?,
		None => a.input.clone().unwrap_or_default(),
	};
	let plan = TrainingPlan {
		inner: a.inner.unwrap_or_default(),
		outer: a.outer.unwrap_or_default(),
		schedule: a.schedule.unwrap_or_default(),
		input,
		keep_inner_state: a.keep_inner_state,
	};
	let commitment = hex32(&job_commitment(&spec, &plan)?);
	let initial_hash = hex32(&model_state_hash(&initial)?);
	if a.json {
		super::common::print_json(
			&json!({"spec": spec.to_string(), "params": initial.num_params(),
			"plan": plan.canonical(), "input": plan.input.to_string(),
			"model_commitment": commitment, "initial_state_hash": initial_hash,
			"weights_state_hash": weights_hash}),
		);
	} else {
		println!("spec             {spec}");
		println!("params           {}", initial.num_params());
		println!("plan             {}", plan.canonical());
		if plan.input != InputTransform::Raw {
			println!("input            {}", plan.input);
		}
		println!("model_commitment {commitment}");
		println!("initial_state    {initial_hash}");
		if let Some(h) = &weights_hash {
			println!("weights_state    {h}");
		}
	}
	Ok(())
}

/// Per-feature statistics in more than this many characters would crowd the job's
/// metadata (1,024 bytes on chain, model and plan included): one global pair is used instead.
const MAX_INPUT_TEXT: usize = 720;

/// The input standardisation a job training `spec` fixes, fitted on `path`.
fn fit_input(spec: &ModelSpec, path: &std::path::Path) -> Result<InputTransform> {
	anyhow::ensure!(!spec.is_lm(), "a language model's token ids are not standardised");
	let data = data::load_csv(path, CsvOptions::default())?;
	anyhow::ensure!(
		data.n_features() == spec.in_features(),
		"{} has {} features, model {spec} takes {}",
		path.display(),
		data.n_features(),
		spec.in_features()
	);
	let fitted = InputTransform::standard(Standardizer::fit(&data, Scope::for_spec(spec))?);
	if fitted.to_string().len() <= MAX_INPUT_TEXT {
		return Ok(fitted);
	}
	eprintln!(
		"note: {} per-feature statistics do not fit in a job's metadata; using one mean and std for every feature",
		data.n_features()
	);
	Ok(InputTransform::standard(Standardizer::fit(&data, Scope::Global)?))
}
