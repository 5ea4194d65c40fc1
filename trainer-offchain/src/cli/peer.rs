//! `trainchain-trainer peer`: train on a data shard and average with peers every round.
//!
//! ```text
//! trainchain-trainer peer --listen /ip4/127.0.0.1/tcp/30400 --suri //Alice \
//!     --data testdata/digits-train.csv --shard 0/4 --test testdata/digits-test.csv \
//!     --model mlp --rounds 5 --min-peers 3 --initial-peers 4 --aggregator mean --json
//! ```

use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use trainchain_primitives::RoundIndex;
use trainchain_trainer::aggregate::{Aggregator, RobustConfig};
use trainchain_trainer::compress::Compression;
use trainchain_trainer::model::ModelSpec;
use trainchain_trainer::outer::OuterOptimizer;
use trainchain_trainer::p2p::metrics;
use trainchain_trainer::p2p::net::{self, NetConfig};
use trainchain_trainer::p2p::round::{
	Byzantine, LocalTrainer, Peer, PeerConfig, RoundReport, Scheme,
};
use trainchain_trainer::plan::{InnerOptimizer, PlanSchedule};
use trainchain_trainer::shard::{load_shard, ShardTrainer};
use trainchain_trainer::signing::Keys;
use trainchain_trainer::train::{InnerSnapshot, Schedule, TrainConfig};
use trainchain_trainer::update::model_state_hash;
use trainchain_trainer::{checkpoint, Model};

/// Arguments of `trainchain-trainer peer`.
#[derive(clap::Args, Debug, Clone)]
pub struct PeerArgs {
	/// Listen, bootstrap and external addresses.
	#[command(flatten)]
	pub net: super::common::NetArgs,
	/// sr25519 secret URI of this peer (e.g. //Alice).
	#[arg(long, conflicts_with = "key_file")]
	pub suri: Option<String>,
	/// File holding the secret URI / hex seed.
	#[arg(long)]
	pub key_file: Option<PathBuf>,
	/// Training data CSV (features..., label last).
	#[arg(long)]
	pub data: PathBuf,
	/// Use shard i of n (IID split of --data), written i/n.
	#[arg(long, default_value = "0/1")]
	pub shard: String,
	/// Held-out CSV for per-round accuracy.
	#[arg(long)]
	pub test: Option<PathBuf>,
	/// Model spec (e.g. mlp, logreg, mlp:64-32-10@7).
	#[arg(long, default_value = "mlp")]
	pub model: String,
	/// Seed for shuffles and sharding.
	#[arg(long, default_value_t = 42)]
	pub seed: u64,
	/// Rounds to run.
	#[arg(long, default_value_t = 5)]
	pub rounds: RoundIndex,
	/// Local epochs per round.
	#[arg(long, default_value_t = 1)]
	pub epochs: usize,
	/// Mini-batch size.
	#[arg(long, default_value_t = 32)]
	pub batch_size: usize,
	/// Learning rate of the inner optimiser.
	#[arg(long, default_value_t = 0.05)]
	pub lr: f64,
	/// Inner optimiser: sgd[:MOMENTUM[:WD]] | adamw[:WD[:BETA1:BETA2]].
	#[arg(long, default_value = "sgd:0.9")]
	pub inner: InnerOptimizer,
	/// Local optimiser steps per round (DiLoCo's H); overrides --epochs.
	#[arg(long)]
	pub local_steps: Option<usize>,
	/// Outer optimiser: avg (FedAvg) | nesterov:LR:MOMENTUM (DiLoCo, e.g. nesterov:0.7:0.9).
	/// Every peer of a run must use the same.
	#[arg(long, default_value = "avg")]
	pub outer: OuterOptimizer,
	/// Learning-rate schedule over all rounds' local steps (needs --local-steps):
	/// constant | cosine:WARMUP[:MIN_RATIO].
	#[arg(long, default_value = "constant")]
	pub schedule: PlanSchedule,
	/// Carry the inner optimiser's state (momentum, Adam's moments) from each round into the
	/// next, as DiLoCo's workers do, instead of starting it afresh every round. `--out` saves
	/// it and `--resume` continues it.
	#[arg(long)]
	pub keep_inner_state: bool,
	/// Job id.
	#[arg(long, default_value_t = 0)]
	pub job_id: u64,
	/// Genesis hash of the chain (hex), signed into the aggregate payload.
	#[arg(long)]
	pub genesis_hash: Option<String>,
	/// Fewest participants for a round.
	#[arg(long, default_value_t = 2)]
	pub min_peers: usize,
	/// Peers to wait for before round 0 (default: --min-peers).
	#[arg(long)]
	pub initial_peers: Option<usize>,
	/// Per-phase deadline in seconds.
	#[arg(long, default_value_t = 20.0)]
	pub round_timeout: f64,
	/// Start rounds at least this many seconds apart (0 = as fast as the peers go), so that
	/// peers joining later find the session still running.
	#[arg(long, default_value_t = 0.0)]
	pub min_round_secs: f64,
	/// mean | median | trimmed[:FRACTION].
	#[arg(long, default_value = "mean")]
	pub aggregator: Aggregator,
	/// Reject updates with norm > K × median norm (0 = off).
	#[arg(long, default_value_t = 10.0)]
	pub norm_factor: f32,
	/// Clip updates to this L2 norm.
	#[arg(long)]
	pub clip_norm: Option<f32>,
	/// none | fp16 | int8 | topk:FRACTION | sparse:DENSITY:BITS (e.g. sparse:0.027:1).
	#[arg(long, default_value = "none")]
	pub compression: Compression,
	/// Residual kept per round by error feedback, in (0, 1]: 1 is classic error feedback,
	/// 0.95 SparseLoCo's decayed accumulator (with `--compression sparse:…`).
	#[arg(long, default_value_t = 1.0, value_parser = super::common::parse_decay)]
	pub error_feedback_decay: f32,
	/// chunked (reduce-scatter + all-gather) | all-to-all.
	#[arg(long, default_value = "chunked")]
	pub scheme: Scheme,
	/// Largest accepted network message in bytes.
	#[arg(long, default_value_t = 256 << 20)]
	pub max_message_bytes: usize,
	/// Serve Prometheus counters on this address (e.g. 127.0.0.1:9616).
	#[arg(long)]
	pub metrics_listen: Option<std::net::SocketAddr>,
	/// Print one JSON object per round on stdout.
	#[arg(long)]
	pub json: bool,
	/// Start from the model in this checkpoint (safetensors with its spec, as `--out` or
	/// `train --out` write it) instead of the spec's seeded initial weights; every peer of the
	/// run must start from the same one.
	#[arg(long, value_name = "FILE")]
	pub resume: Option<PathBuf>,
	/// Write the final model here (safetensors with its spec) after the last round.
	#[arg(long, value_name = "FILE")]
	pub out: Option<PathBuf>,
	/// FOR TESTS ONLY: misbehave (scale:FACTOR multiplies updates, nan sends NaNs).
	#[arg(long, hide = true)]
	pub byzantine: Option<Byzantine>,
}

fn report_json(r: &RoundReport) -> serde_json::Value {
	serde_json::json!({
		"event": "round",
		"round": r.round,
		"attempt": r.attempt,
		"participated": r.participated,
		"included": r.included.iter().map(|s| serde_json::json!({"who": hex::encode(s.who), "samples": s.samples})).collect::<Vec<_>>(),
		"rejected": r.rejected.iter().map(|(w, why)| serde_json::json!({"who": hex::encode(w), "reason": why})).collect::<Vec<_>>(),
		"model_hash": hex::encode(r.model_hash),
		"signature": r.signature.map(hex::encode),
		"certificate_signatures": r.certificate.as_ref().map(|q| q.signatures.len()),
		"certificate_complete": r.certificate.as_ref().map(|q| q.is_complete()),
		"bytes_sent": r.bytes_sent,
		"bytes_received": r.bytes_received,
		"messages_sent": r.messages_sent,
		"direct_bytes_sent": r.direct_bytes_sent,
		"update_bytes": r.update_bytes,
		"reduced_bytes": r.reduced_bytes,
		"compute_ms": r.compute_ms,
		"exchange_ms": r.exchange_ms,
		"network_ms": r.network_ms,
		"train_loss": r.train_loss,
		"loss": r.eval.map(|e| e.0),
		"accuracy": r.eval.map(|e| e.1),
	})
}

/// Run the `peer` subcommand (builds its own tokio runtime).
pub fn run(args: PeerArgs) -> Result<()> {
	trainchain_trainer::tuning::one_arena();
	tokio::runtime::Builder::new_multi_thread()
		.enable_all()
		.build()?
		.block_on(run_async(args))
}

/// The `peer` subcommand inside an existing runtime.
async fn run_async(args: PeerArgs) -> Result<()> {
	let keys =
		Keys::from_suri(&super::common::secret_uri(args.suri.as_ref(), args.key_file.as_ref())?)?;
	let (all, shard_i, shard, test) =
		load_shard(&args.data, &args.shard, args.seed, args.test.as_deref(), &args.model)?;
	let spec = ModelSpec::resolve(&args.model, all.n_features(), all.num_classes())?;
	let initial = match &args.resume {
		Some(path) => checkpoint::load(path, Some(&spec))?.flat_params()?,
		None => spec.initial_params()?,
	};
	let trainer =
		ShardTrainer::new(&spec, shard, shard_i as u64, test, train_config(&args), args.seed)?;
	let mut trainer = if args.keep_inner_state { trainer.keep_inner_state()? } else { trainer };
	if let Some(path) = &args.resume {
		trainer.resume_inner(path)?;
	}
	let pcfg = peer_config(&args, keys)?;
	let mut ncfg = NetConfig::for_job(args.job_id).with_addrs(&args.net.addrs()?);
	ncfg.max_message = args.max_message_bytes;
	let (client, events) = net::start(ncfg).await?;
	if let Some(addr) = args.metrics_listen {
		let local = metrics::serve(addr, client.metrics().clone()).await?;
		tracing::info!(%local, "metrics endpoint");
	}
	let me = hex::encode(pcfg.keys.public());
	let addrs = client.listen_addrs().await?;
	if args.json {
		println!(
			"{}",
			serde_json::json!({"event": "listening", "peer_id": client.local_peer_id().to_string(), "who": me,
                "addrs": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()})
		);
	}
	let mut peer = Peer::new(pcfg, client.clone(), events, trainer, initial);
	peer.sync(Duration::from_secs(10)).await?;
	if args.json {
		let model_hash = hex::encode(peer.model_hash_now());
		println!(
			"{}",
			serde_json::json!({"event": "joined", "round": peer.round(), "who": me, "model_hash": model_hash})
		);
	}
	run_rounds(&mut peer, &args).await?;
	if let Some(path) = &args.out {
		save_final(&spec, peer.model(), peer.inner_snapshot().as_ref(), path, args.json)?;
	}
	// Stay a little so slower peers can fetch signatures / state.
	tokio::time::sleep(Duration::from_secs(2)).await;
	if args.json {
		println!("{}", serde_json::json!({"event": "done", "metrics": client.metrics().render()}));
	}
	client.shutdown();
	Ok(())
}

/// The local training of each round, from the command line.
fn train_config(args: &PeerArgs) -> TrainConfig {
	TrainConfig {
		epochs: args.epochs,
		max_steps: args.local_steps,
		batch_size: args.batch_size,
		optimizer: args.inner.with_lr(args.lr),
		schedule: match args.local_steps {
			Some(h) => args.schedule.over(h.saturating_mul(args.rounds as usize)),
			None => Schedule::Constant,
		},
		first_step: 0,
	}
}

/// The round protocol's settings, from the command line.
fn peer_config(args: &PeerArgs, keys: Keys) -> Result<PeerConfig> {
	let mut pcfg = PeerConfig::new(args.job_id, keys);
	if let Some(h) = &args.genesis_hash {
		let v = hex::decode(h.trim_start_matches("0x"))?;
		pcfg.genesis_hash = <[u8; 32]>::try_from(v.as_slice())
			.map_err(|_| anyhow::anyhow!("genesis hash must be 32 bytes"))?;
	}
	pcfg.min_peers = args.min_peers;
	pcfg.initial_peers = args.initial_peers.unwrap_or(args.min_peers);
	pcfg.round_timeout = Duration::from_secs_f64(args.round_timeout);
	pcfg.robust = RobustConfig {
		aggregator: args.aggregator,
		norm_factor: args.norm_factor,
		clip_norm: args.clip_norm,
	};
	pcfg.compression = args.compression;
	pcfg.error_feedback_decay = args.error_feedback_decay;
	pcfg.scheme = args.scheme;
	pcfg.outer = args.outer;
	pcfg.byzantine = args.byzantine;
	if let Some(b) = args.byzantine {
		tracing::warn!(?b, "BYZANTINE TEST MODE: this peer misbehaves on purpose");
	}
	Ok(pcfg)
}

/// Rounds until `--rounds`, each at least `--min-round-secs` long; a failed round is
/// reported and the next one tried.
async fn run_rounds<T: LocalTrainer>(peer: &mut Peer<T>, args: &PeerArgs) -> Result<()> {
	let pace = Duration::try_from_secs_f64(args.min_round_secs)
		.map_err(|_| anyhow::anyhow!("--min-round-secs must be a finite number ≥ 0"))?;
	while peer.round() < args.rounds {
		let started = std::time::Instant::now();
		match peer.run_round().await {
			Ok(r) => {
				if args.json {
					println!("{}", report_json(&r));
				}
			},
			Err(e) => {
				tracing::warn!("round failed: {e:#}");
				if args.json {
					println!(
						"{}",
						serde_json::json!({"event": "round_failed", "round": peer.round().saturating_sub(1), "error": format!("{e:#}")})
					);
				}
			},
		}
		if peer.round() < args.rounds {
			peer.idle(started + pace).await?;
		}
	}
	Ok(())
}

/// Write the final model (`--out`, with the inner optimizer state when the trainer keeps
/// one) and report its hash.
fn save_final(
	spec: &ModelSpec,
	params: &[f32],
	inner: Option<&InnerSnapshot>,
	path: &std::path::Path,
	json: bool,
) -> Result<()> {
	let model = Model::from_flat(spec, params)?;
	checkpoint::save_resumable(&model, None, &[], inner, path)?;
	let model_hash = hex::encode(model_state_hash(&model)?);
	tracing::info!(file = %path.display(), %model_hash, "saved the final model");
	if json {
		println!(
			"{}",
			serde_json::json!({"event": "saved", "file": path.display().to_string(), "model_hash": model_hash})
		);
	}
	Ok(())
}
