//! `trainchain-trainer verify`: score a verified job's rounds as a bonded verifier.
//!
//! ```text
//! trainchain-trainer verify --node ws://127.0.0.1:9944 --suri //Ferdie --job 0 \
//!     --validation testdata/digits-test.csv --bootstrap /ip4/127.0.0.1/tcp/30500 --json
//! ```

use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use trainchain_trainer::verify::{self, VerifyEvent, VerifyOptions};

/// Arguments of `trainchain-trainer verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
	/// WebSocket RPC of a trainchain node.
	#[arg(long, default_value = "ws://127.0.0.1:9944", env = "TRAINCHAIN_NODE")]
	pub node: String,
	/// sr25519 secret URI of the verifier (e.g. //Ferdie). Never printed.
	#[arg(long, env = "TRAINCHAIN_SURI", hide_env_values = true, conflicts_with = "key_file")]
	pub suri: Option<String>,
	/// File holding the secret URI.
	#[arg(long)]
	pub key_file: Option<PathBuf>,
	/// The job to verify.
	#[arg(long)]
	pub job: u64,
	/// The sponsor's validation set (CSV, features..., label last); its blake2-256 must be the
	/// job's `validation_set`.
	#[arg(long)]
	pub validation: PathBuf,
	/// Public-data jobs: the public dataset (CSV); split into the job's shards, its Merkle root
	/// must be the job's `shardsRoot`.
	#[arg(long)]
	pub data: Option<PathBuf>,
	/// Listen, bootstrap and external addresses.
	#[command(flatten)]
	pub net: super::common::NetArgs,
	/// Exit once the job has ended and every round of it is settled.
	#[arg(long)]
	pub until_settled: bool,
	/// One JSON object per event on stdout.
	#[arg(long)]
	pub json: bool,
	/// Fault injection for tests: score this account (SS58) as the best contributor.
	#[arg(long, hide = true)]
	pub fault_favour: Option<String>,
}

/// Run the subcommand (builds its own tokio runtime).
pub fn run(a: VerifyArgs) -> Result<()> {
	let suri = super::common::secret_uri(a.suri.as_ref(), a.key_file.as_ref())?;
	let json_out = a.json;
	let opts = VerifyOptions {
		node: a.node,
		suri,
		job: a.job,
		validation: a.validation,
		data: a.data,
		net: a.net.addrs()?,
		until_settled: a.until_settled,
		fault_favour: a.fault_favour,
		events: Arc::new(move |ev| print_event(json_out, &ev)),
	};
	tokio::runtime::Builder::new_multi_thread()
		.enable_all()
		.build()?
		.block_on(verify::run(opts))
}

fn print_event(json_out: bool, ev: &VerifyEvent) {
	let (v, text) = match ev {
		VerifyEvent::Joined { job, who } => (
			json!({"event": "verifier_joined", "job": job, "who": who}),
			format!("verifying job {job} as {who}"),
		),
		VerifyEvent::Scored { round, scores, loss_micro, accuracy_ppm, rejected } => (
			json!({"event": "scored", "round": round, "loss_micro": loss_micro,
				"accuracy_ppm": accuracy_ppm,
				"scores": scores.iter().map(|(w, s)| json!({"who": w, "score": s})).collect::<Vec<_>>(),
				"rejected": rejected.iter().map(|(w, why)| json!({"who": w, "why": why})).collect::<Vec<_>>()}),
			format!(
				"round {round}: scored {} contributions, model accuracy {:.2}%{}",
				scores.len(),
				f64::from(*accuracy_ppm) / 1e4,
				rejected
					.iter()
					.map(|(w, why)| format!("; {w} rejected: {why}"))
					.collect::<String>()
			),
		),
		VerifyEvent::Waiting { round, reason } => (
			json!({"event": "waiting", "round": round, "reason": reason}),
			format!("round {round}: not scored yet ({reason})"),
		),
	};
	if json_out {
		println!("{v}");
	} else {
		println!("{text}");
	}
}
