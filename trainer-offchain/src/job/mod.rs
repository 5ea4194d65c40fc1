//! Taking part in a training job on a trainchain node (the `run` subcommand).
//!
//! ```text
//! trainchain-trainer run --node ws://127.0.0.1:9944 --suri //Bob --job 0 \
//!     --data testdata/digits-train.csv --shard 0/3 --test testdata/digits-test.csv \
//!     --listen /ip4/127.0.0.1/tcp/30500 [--bootstrap /ip4/127.0.0.1/tcp/30501] --json
//! ```
//!
//! Per on-chain round `r` (phase `commit`):
//! 1. train on the local shard and average with the peers over libp2p ([`crate::p2p`]); every
//!    honest peer ends with the same model hash and signs the chain's aggregate payload;
//! 2. commit on-chain: `update_hash` is the Merkle root of this peer's update as the peers
//!    agreed on it, `salt = blake2_256("trainchain/salt/v1" ‖ update_hash ‖ who)`, so the
//!    submitter can reveal every included commitment;
//! 3. the certificate holder (rotating per round, see `p2p::roles`) waits until every included contributor's
//!    commitment is on-chain and submits `submit_aggregate`; if the round is still open a few
//!    blocks later, the next included peer that holds the certificate submits (fallback);
//! 4. every peer waits for the round to close and checks that its model hash equals the
//!    on-chain result.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use libp2p::Multiaddr;
use sp_core::{Pair as _, H256};
use trainchain_chain_client::{
	account_of, calls, pair_from_suri, Aggregate, BoundedVec, ChainClient, ChainError, Job,
	JobPhase, SignedContribution, Sr25519Signature,
};
use trainchain_primitives::{update_commitment, Hash32, IncludedShare, RoundIndex};

use crate::aggregate::{Aggregator, RobustConfig};
use crate::compress::Compression;

use crate::data::{self, CsvOptions};
use crate::model::ModelSpec;
use crate::p2p::net::{self, NetAddrs, NetConfig};
use crate::p2p::round::{holder_order, ChainView, Peer, PeerConfig, RoundReport, Scheme};
use crate::plan::{job_commitment, TrainingPlan};
use crate::public_data::{self, PublicShards};
use crate::shard::{load_shard, ShardTrainer};
use crate::signing::{Keys, PublicKey, QuorumCertificate};
use crate::train::TrainConfig;

mod contributor;
mod onchain;
mod setup;

use contributor::*;
use onchain::*;
pub use setup::check_input;
use setup::*;

/// What `run` needs from its caller (the binary's `run` subcommand parses it).
pub struct RunOptions {
	/// WebSocket RPC of a trainchain node.
	pub node: String,
	/// Expected genesis hash (hex): refuse a node of another chain.
	pub genesis: Option<String>,
	/// The contributor's sr25519 secret URI (never printed).
	pub suri: String,
	/// The job to join.
	pub job: u64,
	/// Training data CSV (features..., label last).
	pub data: PathBuf,
	/// Shard `i/n` of `data` (IID).
	pub shard: String,
	/// Held-out CSV for per-round accuracy (reported on-chain as the metric).
	pub test: Option<PathBuf>,
	/// Where to listen, which peers to dial, what to announce.
	pub net: NetAddrs,
	/// Seed for shuffles and sharding.
	pub seed: u64,
	/// Local epochs per round.
	pub epochs: usize,
	/// How the owners of chunks aggregate.
	pub aggregator: Aggregator,
	/// Update compression.
	pub compression: Compression,
	/// Residual kept per round by error feedback ([`crate::p2p::PeerConfig`]).
	pub error_feedback_decay: f32,
	/// Per-phase peer deadline.
	pub round_timeout: Duration,
	/// Stop after this many rounds (default: until the job ends).
	pub max_rounds: Option<u32>,
	/// Where to write the job's model (safetensors with its spec, input statistics and outer
	/// optimiser state) after every round the chain finalises and when the job ends.
	pub out: Option<PathBuf>,
	/// A file written by `--out`: when it holds the model the chain finalised last, start
	/// from it instead of fetching the model from peers (e.g. after every trainer restarted).
	pub resume: Option<PathBuf>,
	/// Fault injection for tests: take part in the peer exchange and sign, but never commit.
	pub fault_skip_commit: bool,
	/// Fault injection for tests: misbehave in the peer protocol (see `Byzantine`).
	pub fault_byzantine: Option<crate::p2p::round::Byzantine>,
	/// Fault injection for tests: wait this long before committing (a copier that obtained
	/// its update after its owner).
	pub fault_commit_delay: Duration,
	/// Fault injection for tests: in a public-data job, train on the shard after the one the
	/// chain assigns.
	pub fault_wrong_shard: bool,
	/// Where progress goes (the binary prints it as text or JSON).
	pub events: EventSink,
}

/// Receives [`JobEvent`]s as they happen.
pub type EventSink = std::sync::Arc<dyn Fn(JobEvent) + Send + Sync>;

/// What `run` reports as it goes.
#[derive(Clone, Debug)]
pub enum JobEvent {
	/// This account joined the job (its bond is on hold).
	Joined {
		/// Job.
		job: u64,
		/// SS58 address of the account.
		who: String,
	},
	/// libp2p listens on these addresses.
	Listening {
		/// Local peer id.
		peer_id: String,
		/// Listen addresses.
		addrs: Vec<Multiaddr>,
	},
	/// The exact statement this peer signed in a round attempt and its signature: the
	/// evidence anyone would need to report it, published so that it can be checked that
	/// honest recovery never signs two conflicting statements.
	Signed {
		/// Round.
		round: RoundIndex,
		/// Contributions included in the payload.
		included: usize,
		/// The signed bytes.
		statement: Vec<u8>,
		/// The signature.
		signature: crate::signing::SignatureBytes,
	},
	/// A round closed on-chain (or its wait ended).
	Round(RoundOutcome),
	/// The job ended in this phase.
	JobEnded {
		/// `completed`, `failed` or `cancelled`.
		phase: &'static str,
	},
	/// The model was written to `file` (`--out`); its hash is the chain's latest model.
	Saved {
		/// The checkpoint.
		file: PathBuf,
		/// Its model state hash.
		model_hash: Hash32,
	},
	/// The `--resume` file held the chain's latest model: this trainer starts from it.
	Resumed {
		/// The chain's open round when it did.
		round: RoundIndex,
		/// The model state hash.
		model_hash: Hash32,
	},
}

/// One round's outcome: the model against the chain's, accuracy, time split, bytes.
#[derive(Clone, Debug)]
pub struct RoundOutcome {
	/// Round.
	pub round: RoundIndex,
	/// Contributions included.
	pub included: usize,
	/// Whether this peer's contribution was included.
	pub included_me: bool,
	/// This peer's model hash after the round.
	pub model_hash: Hash32,
	/// The model hash the chain finalised for the round, if any.
	pub chain_model_hash: Option<Hash32>,
	/// Whether the round finalised on-chain.
	pub finalized: bool,
	/// `(loss, accuracy)` of the new model on this peer's test set.
	pub eval: Option<(f32, f32)>,
	/// Local training time.
	pub compute_ms: u64,
	/// Peer exchange and waiting within the peer round.
	pub network_ms: u64,
	/// All peer rounds of this chain round (re-runs included).
	pub peer_round_ms: u64,
	/// Submitting and waiting for the chain.
	pub chain_ms: u64,
	/// Bytes sent to peers.
	pub bytes_sent: u64,
	/// Bytes received from peers.
	pub bytes_received: u64,
}

impl RoundOutcome {
	/// Whether this peer's model equals the chain's result.
	pub fn matches_chain(&self) -> bool {
		self.chain_model_hash == Some(self.model_hash)
	}
}

/// The model spec a job's metadata names (`model=<spec>;data=<name>`).
pub fn model_of(job: &Job) -> Result<String> {
	let meta = String::from_utf8_lossy(&job.metadata).to_string();
	meta.split(';')
		.find_map(|kv| kv.strip_prefix("model="))
		.map(str::to_string)
		.ok_or_else(|| {
			anyhow!(
				"job {}: its metadata names no model (expected model=<spec>): {meta:?}",
				job.job_id
			)
		})
}

/// The training plan a job's metadata names (`inner=…;outer=…`; defaults when absent).
pub fn plan_of(job: &Job) -> Result<TrainingPlan> {
	TrainingPlan::from_metadata(&String::from_utf8_lossy(&job.metadata))
		.with_context(|| format!("job {}: its training plan", job.job_id))
}

/// The salt that goes with `update_hash`: public once the update hash is revealed.
pub fn salt_of(update_hash: &Hash32, who: &PublicKey) -> Hash32 {
	let mut bytes = b"trainchain/salt/v1".to_vec();
	bytes.extend_from_slice(update_hash);
	bytes.extend_from_slice(who);
	sp_crypto_hashing::blake2_256(&bytes)
}

/// Map chain errors of joining to what the user must do.
fn explain(e: ChainError) -> anyhow::Error {
	match e.dispatch_error() {
		Some("TrainingRewards.InsufficientBalance") =>
			anyhow!("the account cannot cover the job's contributor bond (TrainingRewards.InsufficientBalance)"),
		Some("TrainingRewards.JobFull") => anyhow!("the job already has max_contributors (TrainingRewards.JobFull)"),
		Some("TrainingRewards.JobEnded") => anyhow!("the job has ended (TrainingRewards.JobEnded)"),
		_ => anyhow!(e),
	}
}

/// Take part in a job: prepare it, join it, start the peer, then take part in every
/// on-chain round until the job ends (or `max_rounds`).
pub async fn run(args: RunOptions) -> Result<()> {
	let (keys, pair) = load_keys(&args)?;
	let chain = connect(&args).await?;
	let me = keys.public();
	let (job, spec, mut trainer) = prepare_job(&args, &chain, me).await?;
	join_once(&args, &chain, &pair, &job).await?;
	let resume = match &args.resume {
		Some(path) => {
			trainer.resume_inner(path)?;
			Some(resume_state(path, &spec, &plan_of(&job)?)?)
		},
		None => None,
	};
	let peer = start_peer(&args, &chain, &job, keys, &spec, trainer).await?;
	let mut contributor = Contributor { args, chain, pair, me, peer, spec, resume };
	contributor.run_rounds().await
}

/// The sr25519 key as the peer protocol and the chain client use it.
fn load_keys(args: &RunOptions) -> Result<(Keys, sp_core::sr25519::Pair)> {
	Ok((Keys::from_suri(&args.suri)?, pair_from_suri(&args.suri)?))
}

/// Connect to the node, refusing another chain when `--genesis` is given.
async fn connect(args: &RunOptions) -> Result<ChainClient> {
	let expected_genesis = match &args.genesis {
		Some(h) => Some(H256::from_slice(
			&hex::decode(h.trim_start_matches("0x"))
				.ok()
				.filter(|b| b.len() == 32)
				.context("--genesis must be 32 bytes of hex")?,
		)),
		None => None,
	};
	Ok(ChainClient::connect(&args.node, expected_genesis).await?)
}
