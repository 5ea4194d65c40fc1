//! `trainchain-trainer run`: take part in a training job on a trainchain node.
//!
//! ```text
//! trainchain-trainer run --node ws://127.0.0.1:9944 --suri //Bob --job 0 \
//!     --data testdata/digits-train.csv --shard 0/3 --test testdata/digits-test.csv \
//!     --listen /ip4/127.0.0.1/tcp/30500 [--bootstrap /ip4/127.0.0.1/tcp/30501] --json
//! ```

use anyhow::{Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trainchain_trainer::aggregate::Aggregator;
use trainchain_trainer::compress::Compression;
use trainchain_trainer::job::{self, JobEvent, RoundOutcome, RunOptions};

/// Arguments of `trainchain-trainer run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
	/// WebSocket RPC of a trainchain node.
	#[arg(long, default_value = "ws://127.0.0.1:9944", env = "TRAINCHAIN_NODE")]
	pub node: String,
	/// Expected genesis hash (hex): refuse a node of another chain.
	#[arg(long)]
	pub genesis: Option<String>,
	/// sr25519 secret URI of the contributor (e.g. //Bob). Never printed.
	#[arg(long, env = "TRAINCHAIN_SURI", hide_env_values = true, conflicts_with = "key_file")]
	pub suri: Option<String>,
	/// File holding the secret URI.
	#[arg(long)]
	pub key_file: Option<PathBuf>,
	/// The job to join.
	#[arg(long)]
	pub job: u64,
	/// Training data CSV (features..., label last). In a public-data job: the job's public
	/// dataset (its shards' root must match the job's), and each round the shard the chain
	/// assigns is trained, --shard and --epochs aside.
	#[arg(long)]
	pub data: PathBuf,
	/// Use shard i of n of --data (IID), written i/n.
	#[arg(long, default_value = "0/1")]
	pub shard: String,
	/// Held-out CSV for per-round accuracy (reported on-chain as the metric).
	#[arg(long)]
	pub test: Option<PathBuf>,
	/// Listen, bootstrap and external addresses.
	#[command(flatten)]
	pub net: super::common::NetArgs,
	/// Seed for shuffles and sharding.
	#[arg(long, default_value_t = 42)]
	pub seed: u64,
	/// Local epochs per round.
	#[arg(long, default_value_t = 1)]
	pub epochs: usize,
	/// mean | median | trimmed[:FRACTION].
	#[arg(long, default_value = "mean")]
	pub aggregator: Aggregator,
	/// none | fp16 | int8 | topk:FRACTION | sparse:DENSITY:BITS.
	#[arg(long, default_value = "none")]
	pub compression: Compression,
	/// Residual kept per round by error feedback, in (0, 1]: 1 is classic error feedback,
	/// 0.95 SparseLoCo's decayed accumulator (with `--compression sparse:…`).
	#[arg(long, default_value_t = 1.0, value_parser = super::common::parse_decay)]
	pub error_feedback_decay: f32,
	/// Per-phase peer deadline in seconds.
	#[arg(long, default_value_t = 20.0)]
	pub round_timeout: f64,
	/// Stop after this many rounds (default: until the job ends).
	#[arg(long)]
	pub max_rounds: Option<u32>,
	/// Write the job's model here after every round the chain finalises and when the job
	/// ends (safetensors with the spec, the job's input statistics and outer optimiser
	/// state; it hashes to the chain's latest model).
	#[arg(long, value_name = "FILE")]
	pub out: Option<PathBuf>,
	/// Start from a file written by --out if it holds the model the chain finalised last
	/// (e.g. after a restart of every trainer, when no peer serves it); otherwise the model
	/// is taken from the peers. Usually the same file as --out.
	#[arg(long, value_name = "FILE")]
	pub resume: Option<PathBuf>,
	/// One JSON object per event on stdout.
	#[arg(long)]
	pub json: bool,
	/// Fault injection for tests: take part in the peer exchange and sign, but never commit
	/// on-chain (a contributor that is included and then withholds or crashes).
	#[arg(long, hide = true)]
	pub fault_skip_commit: bool,
	/// Fault injection for tests: misbehave in the peer protocol (free-ride, scale:F, nan).
	#[arg(long, hide = true)]
	pub fault_byzantine: Option<trainchain_trainer::p2p::round::Byzantine>,
	/// Fault injection for tests: seconds to wait before committing.
	#[arg(long, hide = true, default_value_t = 0.0)]
	pub fault_commit_delay: f64,
	/// Fault injection for tests: in a public-data job, train on the shard after the
	/// assigned one.
	#[arg(long, hide = true)]
	pub fault_wrong_shard: bool,
}

/// Run the subcommand (builds its own tokio runtime).
pub fn run(args: RunArgs) -> Result<()> {
	let opts = options(args)?;
	trainchain_trainer::tuning::one_arena();
	tokio::runtime::Builder::new_multi_thread()
		.enable_all()
		.build()?
		.block_on(job::run(opts))
}

/// The library's options from the command line: the key read, the deadline checked, and
/// events printed as text or (`--json`) one JSON object per line.
fn options(a: RunArgs) -> Result<RunOptions> {
	let suri = super::common::secret_uri(a.suri.as_ref(), a.key_file.as_ref())?;
	let round_timeout = Duration::try_from_secs_f64(a.round_timeout)
		.ok()
		.filter(|d| !d.is_zero())
		.context("--round-timeout must be a positive number of seconds")?;
	let json_out = a.json;
	Ok(RunOptions {
		node: a.node,
		genesis: a.genesis,
		suri,
		job: a.job,
		data: a.data,
		shard: a.shard,
		test: a.test,
		net: a.net.addrs()?,
		seed: a.seed,
		epochs: a.epochs,
		aggregator: a.aggregator,
		compression: a.compression,
		error_feedback_decay: a.error_feedback_decay,
		round_timeout,
		max_rounds: a.max_rounds,
		out: a.out,
		resume: a.resume,
		fault_skip_commit: a.fault_skip_commit,
		fault_byzantine: a.fault_byzantine,
		fault_commit_delay: Duration::try_from_secs_f64(a.fault_commit_delay)
			.context("--fault-commit-delay must be a non-negative number of seconds")?,
		fault_wrong_shard: a.fault_wrong_shard,
		events: Arc::new(move |ev| print_event(json_out, &ev)),
	})
}

fn hex0x(bytes: &[u8]) -> String {
	format!("0x{}", hex::encode(bytes))
}

/// Print one event: a line of text, or with `--json` one JSON object (the signed statements
/// only in JSON: they are for tools, not for reading).
fn print_event(json_out: bool, ev: &JobEvent) {
	let (v, text) = match ev {
		JobEvent::Joined { job, who } => (
			json!({"event": "joined", "job": job, "who": who}),
			format!("joined job {job} as {who}"),
		),
		JobEvent::Listening { peer_id, addrs } => (
			json!({"event": "listening", "peer_id": peer_id,
				"addrs": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()}),
			format!("listening on {addrs:?}"),
		),
		JobEvent::Signed { round, included, statement, signature } => {
			if !json_out {
				return;
			}
			(
				json!({"event": "signed", "round": round, "included": included,
					"statement": hex0x(statement), "signature": hex0x(signature)}),
				String::new(),
			)
		},
		JobEvent::Round(r) => (round_json(r), round_text(r)),
		JobEvent::JobEnded { phase } => {
			(json!({"event": "job_ended", "phase": phase}), format!("job ended: {phase}"))
		},
		JobEvent::Resumed { round, model_hash } => (
			json!({"event": "resumed", "round": round, "model_hash": hex0x(model_hash)}),
			format!("resumed from the saved model {} at round {round}", hex0x(model_hash)),
		),
		JobEvent::Saved { file, model_hash } => (
			json!({"event": "saved", "file": file.display().to_string(), "model_hash": hex0x(model_hash)}),
			format!("saved the model {} to {}", hex0x(model_hash), file.display()),
		),
	};
	if json_out {
		println!("{v}");
	} else {
		println!("{text}");
	}
}

fn round_json(r: &RoundOutcome) -> serde_json::Value {
	json!({
		"event": "round", "round": r.round, "included": r.included, "included_me": r.included_me,
		"model_hash": hex0x(&r.model_hash),
		"chain_model_hash": r.chain_model_hash.map(|h| hex0x(&h)),
		"matches_chain": r.matches_chain(), "finalized": r.finalized,
		"accuracy": r.eval.map(|e| e.1), "loss": r.eval.map(|e| e.0),
		"compute_ms": r.compute_ms, "network_ms": r.network_ms,
		"peer_round_ms": r.peer_round_ms, "chain_ms": r.chain_ms,
		"bytes_sent": r.bytes_sent, "bytes_received": r.bytes_received,
	})
}

fn round_text(r: &RoundOutcome) -> String {
	format!(
		"round {}: {} included, model {} ({}), accuracy {:?}, compute {} ms, peers {} ms, chain {} ms",
		r.round,
		r.included,
		hex0x(&r.model_hash),
		if r.matches_chain() { "matches the chain" } else { "DIFFERS from the chain" },
		r.eval.map(|e| e.1),
		r.compute_ms,
		r.peer_round_ms,
		r.chain_ms
	)
}
