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

/// How often a round is re-run without peers that were included but never committed.
const MAX_RERUNS: u32 = 3;
/// How long included peers get to land their commitments (8 blocks of 3 s).
const COMMIT_WAIT: Duration = Duration::from_secs(24);

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
	let (job, spec, trainer) = prepare_job(&args, &chain, me).await?;
	join_once(&args, &chain, &pair, &job).await?;
	let resume = match &args.resume {
		Some(path) => Some(resume_state(path, &spec, &plan_of(&job)?)?),
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

/// The job, its model (checked against the job's commitment) and this trainer's shard (or,
/// in a public-data job, the dataset checked against the job's shards root).
async fn prepare_job(
	args: &RunOptions,
	chain: &ChainClient,
	me: PublicKey,
) -> Result<(Job, ModelSpec, ShardTrainer)> {
	let job = chain.existing_job(args.job).await?;
	if matches!(job.phase, JobPhase::Completed | JobPhase::Failed | JobPhase::Cancelled) {
		bail!("job {} has ended ({})", job.job_id, job.phase.as_str());
	}
	let model = model_of(&job)?;
	let spec = ModelSpec::parse(&model)
		.with_context(|| format!("job {}: unsupported model {model:?}", job.job_id))?;
	let plan = plan_of(&job)?;
	let commitment = job_commitment(&spec, &plan)?;
	if commitment != job.model_commitment {
		bail!(
			"job {}: model commitment 0x{} is not what this trainer computes for {model:?} with {} (0x{}); refusing the job",
			job.job_id,
			hex::encode(job.model_commitment),
			plan.canonical(),
			hex::encode(commitment)
		);
	}
	check_input(&job, &spec, &plan)?;
	if let Some((root, shards, _)) = job.public_data {
		let data = PublicShards::load(&args.data, shards, Some(root))?.transformed(&plan.input)?;
		let test = args.test.as_deref().map(|p| -> crate::error::Result<data::Dataset> {
			plan.input.apply(data::load_csv(p, CsvOptions::default())?)
		});
		let cfg = public_data::train_config(job.learning_rate_ppm, job.batch_size, job.local_steps);
		let trainer = ShardTrainer::public(
			&spec,
			data,
			job.job_id,
			me,
			test.transpose()?,
			cfg,
			args.fault_wrong_shard,
		)?;
		return Ok((job, spec, trainer));
	}
	let (_, shard_i, shard, test) =
		load_shard(&args.data, &args.shard, args.seed, args.test.as_deref(), &model)?;
	let shard = plan.input.apply(shard)?;
	let test = test.map(|t| plan.input.apply(t)).transpose()?;
	let lr = f64::from(job.learning_rate_ppm) / 1e6;
	let max_steps = plan.names_optimisation().then_some(job.local_steps.max(1) as usize);
	let cfg = TrainConfig {
		epochs: args.epochs,
		max_steps,
		batch_size: job.batch_size.max(1) as usize,
		optimizer: plan.inner.with_lr(lr),
		schedule: plan.schedule(job.rounds, job.local_steps),
		first_step: 0,
	};
	let trainer = ShardTrainer::new(&spec, shard, shard_i as u64, test, cfg, args.seed)?;
	Ok((job, spec, trainer))
}

/// Refuse a plan whose input transform cannot apply to the job's model: token ids are
/// categories, not measurements, and per-feature statistics must match the model's inputs.
pub fn check_input(job: &Job, spec: &ModelSpec, plan: &TrainingPlan) -> Result<()> {
	if plan.input == crate::standardize::InputTransform::Raw {
		return Ok(());
	}
	if spec.is_lm() {
		bail!("job {}: a language model's token ids cannot be standardised (input=)", job.job_id);
	}
	plan.input
		.standardizer(spec.in_features())
		.with_context(|| format!("job {}: its input transform for model {spec}", job.job_id))?;
	Ok(())
}

/// Join the job (bond on hold) unless this account already is a member.
async fn join_once(
	args: &RunOptions,
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	job: &Job,
) -> Result<()> {
	let account = account_of(pair);
	let already = chain.contributors(job.job_id).await?.iter().any(|c| c.who == account);
	if !already {
		chain.submit(pair, calls::join_job(job.job_id)).await.map_err(explain)?;
		(args.events)(JobEvent::Joined { job: job.job_id, who: account.to_string() });
	}
	Ok(())
}

/// Start libp2p and the round runner, and take the job's current model from the peers.
async fn start_peer(
	args: &RunOptions,
	chain: &ChainClient,
	job: &Job,
	keys: Keys,
	spec: &ModelSpec,
	trainer: ShardTrainer,
) -> Result<Peer<ShardTrainer>> {
	let mut pcfg = PeerConfig::new(job.job_id, keys);
	pcfg.genesis_hash = chain.genesis_hash().0;
	pcfg.min_peers = job.min_contributors.max(1) as usize;
	pcfg.initial_peers = job.min_contributors.max(1) as usize;
	pcfg.round_timeout = args.round_timeout;
	pcfg.robust = RobustConfig { aggregator: args.aggregator, ..RobustConfig::default() };
	pcfg.compression = args.compression;
	pcfg.scheme = Scheme::Chunked;
	pcfg.outer = plan_of(job)?.outer;
	pcfg.byzantine = args.fault_byzantine;
	// A public-data update must be this round's training alone, so that it can be re-computed.
	pcfg.error_feedback = job.public_data.is_none();
	let ncfg = NetConfig::for_job(job.job_id).with_addrs(&args.net);
	let (client, events) = net::start(ncfg).await?;
	let addrs = client.listen_addrs().await?;
	let peer_id = client.local_peer_id().to_string();
	(args.events)(JobEvent::Listening { peer_id, addrs });
	// The job's initial model (checked against its commitment); a job that already has
	// finalised rounds gets its current model from the peers in `sync`.
	let initial = spec.initial_params()?;
	let mut peer = Peer::new(pcfg, client, events, trainer, initial);
	peer.set_chain_view(chain_view(chain, job).await?);
	peer.sync(Duration::from_secs(60)).await?;
	Ok(peer)
}

/// A contributor taking part in a job's on-chain rounds.
struct Contributor {
	args: RunOptions,
	chain: ChainClient,
	pair: sp_core::sr25519::Pair,
	me: PublicKey,
	peer: Peer<ShardTrainer>,
	spec: ModelSpec,
	/// The whole model state (parameters, then outer optimiser state) of `--resume`.
	resume: Option<Vec<f32>>,
}

/// The model state stored by `--out` in `path`: the job's spec, its parameters followed by
/// the outer optimiser state the job's plan keeps (zeros if the file has none and the plan
/// keeps none).
fn resume_state(path: &std::path::Path, spec: &ModelSpec, plan: &TrainingPlan) -> Result<Vec<f32>> {
	let (model, _, outer) = crate::checkpoint::load_all(path, Some(spec))
		.with_context(|| format!("--resume {}", path.display()))?;
	let mut state = model.flat_params()?;
	let want = plan.outer.state_len(state.len());
	if outer.len() != want {
		bail!(
			"--resume {}: {} values of outer optimiser state, the job's {} keeps {want}",
			path.display(),
			outer.len(),
			plan.outer
		);
	}
	state.extend(outer);
	Ok(state)
}

/// What one peer round produced: the report, the certificate when this peer has one, and
/// the time spent in peer rounds (re-runs included; commits and chain waits excluded).
type Attempted = (RoundReport, Option<QuorumCertificate>, Duration);

impl Contributor {
	/// One chain round after another until the job ends (or `--max-rounds`).
	async fn run_rounds(&mut self) -> Result<()> {
		let mut rounds_done = 0u32;
		loop {
			let job = self.chain.existing_job(self.args.job).await?;
			match job.phase {
				JobPhase::Completed | JobPhase::Failed | JobPhase::Cancelled => {
					(self.args.events)(JobEvent::JobEnded { phase: job.phase.as_str() });
					self.save_model(&job)?;
					return self.serve_until_settled().await;
				},
				JobPhase::WaitingForContributors | JobPhase::Aggregate => {
					tokio::time::sleep(Duration::from_secs(1)).await;
					continue;
				},
				JobPhase::Commit => {},
			}
			if !self.ready_for(&job).await? {
				self.wait_closed(job.current_round).await?;
				continue;
			}
			self.chain_round(&job).await?;
			rounds_done += 1;
			if self.args.max_rounds.is_some_and(|m| rounds_done >= m) {
				return Ok(());
			}
		}
	}

	/// Whether this peer can take part in the job's open round: it holds the model the
	/// chain finalised last (resyncing from a peer if not), and it did not join after the
	/// round's peer exchange.
	async fn ready_for(&mut self, job: &Job) -> Result<bool> {
		let round = job.current_round;
		self.peer.set_chain_view(chain_view(&self.chain, job).await?);
		// Before the first finalised round, `latest_model` is the commitment (checked above) and
		// the job's model is its initial one. A trainer that joined late may have synced the
		// result of a round the chain never accepted (it was re-run without a member that never
		// committed): kept, that model would leave it out of every later round.
		if job.finalized_rounds == 0 {
			self.back_to_initial_model(round)?;
		}
		if job.finalized_rounds > 0 && self.peer.model_hash_now() != job.latest_model {
			// We missed a round (or restarted): take the state the chain finalised, from our
			// own saved file if it holds it, else from a peer.
			self.resume_from_file(job)?;
		}
		if job.finalized_rounds > 0 && self.peer.model_hash_now() != job.latest_model {
			self.peer.resync().await.context("fetching the current model from a peer")?;
			if self.peer.model_hash_now() != job.latest_model {
				tracing::warn!(round, "after resync the model hash still differs from the chain; sitting this round out");
				return Ok(false);
			}
		}
		// A trainer that joined after this round's peer exchange synced its result from the
		// peers (its state is already for a later round): the exchange ran without it, so it
		// sits this round out and takes part from the next one.
		if self.peer.round() > round {
			tracing::info!(
				round,
				synced_round = self.peer.round(),
				"joined after this round's peer exchange; taking part from the next round"
			);
			return Ok(false);
		}
		Ok(true)
	}

	/// Take the `--resume` state if it is the model the chain finalised last (once: a file
	/// that does not match is dropped with a warning, and the peers are asked instead).
	fn resume_from_file(&mut self, job: &Job) -> Result<()> {
		let Some(state) = self.resume.take() else { return Ok(()) };
		let before = self.peer.checkpoint();
		self.peer.adopt(state, job.current_round)?;
		let hash = self.peer.model_hash_now();
		if hash == job.latest_model {
			(self.args.events)(JobEvent::Resumed { round: job.current_round, model_hash: hash });
			return Ok(());
		}
		tracing::warn!(
			saved = %hex::encode(hash),
			chain = %hex::encode(job.latest_model),
			"the --resume file does not hold the job's latest model; taking it from the peers"
		);
		self.peer.restore(before)
	}

	/// Go back to the job's initial model if this trainer holds another one while the chain
	/// has accepted no round.
	fn back_to_initial_model(&mut self, round: RoundIndex) -> Result<()> {
		let initial = self.spec.initial_params()?;
		let same = self
			.peer
			.model()
			.iter()
			.map(|x| x.to_bits())
			.eq(initial.iter().map(|x| x.to_bits()));
		if !same {
			tracing::warn!(
				round,
				"holding a model the chain never accepted (synced from peers); going back to the \
				 job's initial model"
			);
			self.peer.reset(initial, round)?;
		}
		Ok(())
	}

	/// One on-chain round: run it with the peers (re-running without included peers that
	/// never commit), submit, wait for the chain's result, report, roll back if it failed.
	async fn chain_round(&mut self, job: &Job) -> Result<()> {
		let round = job.current_round;
		let checkpoint = self.peer.checkpoint();
		let Some((report, certificate, t_peer)) = self.attempt_round(job, &checkpoint).await?
		else {
			self.peer.restore(checkpoint)?;
			return self.wait_closed(round).await;
		};
		let t1 = std::time::Instant::now();
		let included_me = report.included.iter().any(|s| s.who == self.me);
		match certificate {
			Some(qc) => submit_if_needed(&self.chain, &self.pair, &qc, self.args.job, round).await,
			None if included_me => tracing::warn!(
				round,
				"no complete certificate reached this peer; it cannot submit the aggregate"
			),
			None => {},
		}
		let closed = wait_round_closed(&self.chain, self.args.job, round).await?;
		report_round(
			&self.args.events,
			&report,
			closed.as_ref(),
			included_me,
			t_peer,
			t1.elapsed(),
		);
		let matches = closed.as_ref().and_then(|r| r.model_hash) == Some(report.model_hash);
		if closed.as_ref().is_some_and(|r| !r.finalized) {
			// The round failed on-chain: the model stays what the chain last finalised.
			self.peer.restore(checkpoint)?;
		} else if !matches {
			tracing::warn!(round, "local model differs from the chain's result; will resync");
		} else if let Err(e) = self.save_model(&self.chain.existing_job(self.args.job).await?) {
			// The round stands; a file that cannot be written only costs the resume point.
			tracing::warn!(round, "cannot save the model: {e:#}");
		}
		Ok(())
	}

	/// Run the peer round; if peers that were included never commit on-chain (crashed, out
	/// of funds, withholding), run it again without them. Training is deterministic per
	/// (model, round), so the re-run reproduces every remaining update and its commitment.
	/// `None`: the round cannot produce an aggregate this peer takes part in.
	async fn attempt_round(
		&mut self,
		job: &Job,
		checkpoint: &crate::p2p::round::Checkpoint,
	) -> Result<Option<Attempted>> {
		let round = job.current_round;
		let mut excluded: BTreeSet<PublicKey> = BTreeSet::new();
		let mut t_peer = Duration::ZERO;
		for attempt in 0..MAX_RERUNS {
			if attempt > 0 {
				self.peer.restore(checkpoint.clone())?;
				self.peer.exclude(excluded.iter().copied());
			}
			self.peer.set_round(round);
			let t = std::time::Instant::now();
			let run = self.peer.run_round().await;
			t_peer += t.elapsed();
			let report = match run {
				Ok(r) => r,
				Err(e) => {
					tracing::warn!(round, "peer round failed: {e:#}");
					return Ok(None);
				},
			};
			emit_signed(&self.args.events, &report);
			if !report.included.iter().any(|s| s.who == self.me) {
				return Ok(Some((report, None, t_peer)));
			}
			if !self.args.fault_commit_delay.is_zero() {
				tokio::time::sleep(self.args.fault_commit_delay).await;
			}
			if !self.args.fault_skip_commit {
				commit_mine(&self.chain, &self.pair, &report, self.args.job, round, &self.me).await;
			}
			let missing = missing_commitments(&self.chain, job, round, &report).await?;
			if missing.contains(&self.me) {
				return Ok(Some((report, None, t_peer)));
			}
			if !missing.is_empty() {
				tracing::warn!(
					round,
					missing = missing.len(),
					"included peers did not commit on-chain; re-running the round without them"
				);
				excluded.extend(missing);
				continue;
			}
			// The holder has the certificate; the other included peers take the copy it
			// broadcasts, so they can submit if the holder does not (see `submit_if_needed`).
			// If it never comes (the holder died after committing), re-run without the holder:
			// every commitment on-chain stays valid.
			let certificate = match report.certificate.clone() {
				Some(qc) => Some(qc),
				None => self
					.peer
					.await_certificate(round, Duration::from_secs(10))
					.await
					.unwrap_or_default(),
			};
			let holder = holder_order(self.args.job, round, &report.included).first().copied();
			match (certificate, holder) {
				(None, Some(holder)) if holder != self.me => {
					tracing::warn!(
						round,
						"no certificate from the holder; re-running the round without it"
					);
					excluded.insert(holder);
				},
				(certificate, _) => return Ok(Some((report, certificate, t_peer))),
			}
		}
		Ok(None)
	}

	/// With `--out`, write the model state this peer holds, which must be the chain's latest
	/// (after each finalised round and when the job ends; see `--resume`).
	fn save_model(&self, job: &Job) -> Result<()> {
		let Some(file) = &self.args.out else { return Ok(()) };
		let model_hash = self.peer.model_hash_now();
		if job.finalized_rounds > 0 && model_hash != job.latest_model {
			bail!(
				"not writing {}: this trainer's model 0x{} is not the job's latest 0x{}",
				file.display(),
				hex::encode(model_hash),
				hex::encode(job.latest_model)
			);
		}
		let model = crate::model::Model::from_flat(&self.spec, self.peer.model())?;
		// The model takes standardised inputs in a job that names them: `eval` must too.
		let input = plan_of(job)?.input.standardizer(self.spec.in_features())?;
		let outer = self.peer.state().get(model.num_params()..).unwrap_or_default();
		crate::checkpoint::save_all(&model, input.as_ref(), outer, file)?;
		(self.args.events)(JobEvent::Saved { file: file.clone(), model_hash });
		Ok(())
	}

	/// In a verified job, keep serving this peer's updates and models (by hash, from the
	/// network task) until the verifiers have scored every round and its payouts are made.
	async fn serve_until_settled(&self) -> Result<()> {
		loop {
			let job = self.chain.existing_job(self.args.job).await?;
			if job.open_settlements == 0 {
				return Ok(());
			}
			tokio::time::sleep(Duration::from_secs(2)).await;
		}
	}

	async fn wait_closed(&self, round: RoundIndex) -> Result<()> {
		wait_round_closed(&self.chain, self.args.job, round).await?;
		Ok(())
	}
}

/// Report one round's outcome: the model against the chain's, accuracy, time split, bytes.
fn report_round(
	events: &EventSink,
	report: &RoundReport,
	closed: Option<&trainchain_chain_client::Round>,
	included_me: bool,
	t_peer: Duration,
	t_chain: Duration,
) {
	events(JobEvent::Round(RoundOutcome {
		round: report.round,
		included: report.included.len(),
		included_me,
		model_hash: report.model_hash,
		chain_model_hash: closed.and_then(|r| r.model_hash),
		finalized: closed.is_some_and(|r| r.finalized),
		eval: report.eval,
		compute_ms: report.compute_ms,
		network_ms: report.network_ms,
		peer_round_ms: t_peer.as_millis() as u64,
		chain_ms: t_chain.as_millis() as u64,
		bytes_sent: report.bytes_sent,
		bytes_received: report.bytes_received,
	}));
}

/// Report the exact statement this peer signed in a round attempt and its signature.
fn emit_signed(events: &EventSink, report: &RoundReport) {
	let (Some(payload), Some(signature)) = (&report.payload, report.signature) else {
		return;
	};
	let statement = payload.signing_bytes(report.eval.map(crate::p2p::round::metric_ppm));
	events(JobEvent::Signed {
		round: report.round,
		included: payload.included.len(),
		statement,
		signature,
	});
}

/// Post this peer's commitment for the round, unless it is already there.
async fn commit_mine(
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	report: &RoundReport,
	job: u64,
	round: RoundIndex,
	me: &PublicKey,
) {
	let Some(update_hash) = report.update_root_of(me) else {
		tracing::warn!(round, "no agreed update root for this peer; not committing");
		return;
	};
	let Some(samples) = report.included.iter().find(|s| &s.who == me).map(|s| s.samples) else {
		return;
	};
	let salt = salt_of(&update_hash, me);
	let commitment = update_commitment(job, round, me, &update_hash, &salt);
	// Never send the same commitment twice (a re-run round reproduces it).
	let on_chain = chain.contributors(job).await.is_ok_and(|cs| {
		cs.iter()
			.any(|c| c.who.as_ref() as &[u8] == me.as_slice() && c.last_commit_round == Some(round))
	});
	if on_chain {
		return;
	}
	match chain.submit(pair, calls::commit_update(job, round, commitment, samples)).await {
		Ok(_) => tracing::info!(round, samples, "committed update"),
		Err(e) if e.dispatch_error() == Some("TrainingRewards.AlreadyCommitted") => {},
		Err(e) => tracing::warn!(round, "commit failed: {e}"),
	}
}

/// The job's members and last finalised model, as the peer protocol checks them.
async fn chain_view(chain: &ChainClient, job: &Job) -> Result<ChainView> {
	let members = chain
		.contributors(job.job_id)
		.await?
		.iter()
		.map(|c| {
			let bytes: &[u8] = c.who.as_ref();
			let mut key = [0u8; 32];
			key.copy_from_slice(bytes);
			key
		})
		.collect();
	let finalized = job.finalized_rounds > 0;
	Ok(ChainView {
		members,
		latest_model: finalized.then_some(job.latest_model),
		open_round: finalized.then_some(job.current_round),
	})
}

/// The commitment `who` must post for `round` if the aggregate includes `share`.
fn expected_commitment(job: u64, round: RoundIndex, share: &IncludedShare<PublicKey>) -> Hash32 {
	let salt = salt_of(&share.update_hash, &share.who);
	update_commitment(job, round, &share.who, &share.update_hash, &salt)
}

/// Included peers whose commitment for `round` is not on-chain after a few blocks (or when
/// the commit window closes), or is not the one the aggregate needs (another update or
/// another sample count than they announced to the peers: the chain would refuse the
/// aggregate).
async fn missing_commitments(
	chain: &ChainClient,
	job: &Job,
	round: RoundIndex,
	report: &RoundReport,
) -> Result<BTreeSet<PublicKey>> {
	let deadline = std::time::Instant::now() + COMMIT_WAIT;
	loop {
		let committed = chain.contributors(job.job_id).await?;
		let missing: BTreeSet<PublicKey> = report
			.included
			.iter()
			.filter(|s| {
				let want = expected_commitment(job.job_id, round, s);
				!committed.iter().any(|c| {
					c.who.as_ref() as &[u8] == s.who.as_slice()
						&& c.last_commit_round == Some(round)
						&& c.current_commitment == Some(want)
						&& c.last_samples == Some(s.samples)
				})
			})
			.map(|s| s.who)
			.collect();
		let window_open = chain
			.existing_job(job.job_id)
			.await
			.is_ok_and(|j| j.current_round == round && j.phase == JobPhase::Commit);
		if missing.is_empty() || !window_open || std::time::Instant::now() > deadline {
			return Ok(missing);
		}
		tokio::time::sleep(Duration::from_millis(500)).await;
	}
}

/// The certificate holder submits; other holders submit as a fallback if the round is still
/// open a few blocks later.
async fn submit_if_needed(
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	qc: &QuorumCertificate,
	job: u64,
	round: RoundIndex,
) {
	if !qc.is_complete() {
		tracing::warn!(round, "the certificate is incomplete; not submitting");
		return;
	}
	let me = pair.public().0;
	let order = holder_order(job, round, &qc.payload.included);
	let position = order.iter().position(|w| *w == me).unwrap_or(usize::MAX);
	if position == usize::MAX {
		return;
	}
	let aggregate = aggregate_of(qc);
	loop {
		if !my_turn_to_submit(chain, job, round, position).await {
			return;
		}
		if position > 0 {
			tracing::info!(round, "fallback: submitting the aggregate");
		}
		match chain.submit(pair, calls::submit_aggregate(job, round, aggregate.clone())).await {
			Ok(_) => return tracing::info!(round, "aggregate accepted on-chain"),
			// A member joined between our read and inclusion: wait for the window again.
			Err(e) if e.dispatch_error() == Some("TrainingRewards.CommitWindowOpen") => {},
			Err(e)
				if matches!(
					e.dispatch_error(),
					Some("TrainingRewards.WrongRound" | "TrainingRewards.JobNotRunning")
				) =>
			{
				return tracing::info!(round, "round already closed on-chain")
			},
			Err(e) => return tracing::warn!(round, "submit_aggregate failed: {e}"),
		}
	}
}

/// Wait, reading the job (which costs nothing), until the chain accepts an aggregate for
/// `round` (every member committed, or the commit window closed; a refused extrinsic would
/// still pay its fee) and then until this peer's turn: the holder (position 0) at once, the
/// fallback at position k 3·k blocks later. False if the round closes first.
async fn my_turn_to_submit(
	chain: &ChainClient,
	job: u64,
	round: RoundIndex,
	position: usize,
) -> bool {
	let mut turn = None;
	loop {
		let Ok(j) = chain.existing_job(job).await else {
			return false;
		};
		if j.current_round != round || !matches!(j.phase, JobPhase::Commit | JobPhase::Aggregate) {
			return false;
		}
		if j.phase == JobPhase::Aggregate || j.committed >= j.contributors {
			let at = *turn.get_or_insert_with(|| {
				std::time::Instant::now() + Duration::from_secs(9 * position as u64)
			});
			if std::time::Instant::now() >= at {
				return true;
			}
		}
		tokio::time::sleep(Duration::from_millis(500)).await;
	}
}

/// The `submit_aggregate` argument for a complete certificate: each included peer's reveal
/// (its update hash, as signed, and its derived salt), metric and signature.
fn aggregate_of(qc: &QuorumCertificate) -> Aggregate {
	let contributions: Vec<SignedContribution> = qc
		.payload
		.included
		.iter()
		.filter_map(|s| {
			let e = qc.endorsement(&s.who)?;
			Some(SignedContribution {
				who: s.who.into(),
				update_hash: H256(s.update_hash),
				salt: H256(salt_of(&s.update_hash, &s.who)),
				metric: e.metric,
				signature: Sr25519Signature(sp_core::sr25519::Signature::from_raw(e.signature)),
			})
		})
		.collect();
	Aggregate {
		model_hash: H256(qc.payload.model_hash),
		submitter: qc.payload.submitter.into(),
		contributions: BoundedVec::truncate_from(contributions),
	}
}

/// Wait until `round` is no longer the job's open round; return its stored result.
async fn wait_round_closed(
	chain: &ChainClient,
	job: u64,
	round: RoundIndex,
) -> Result<Option<trainchain_chain_client::Round>> {
	loop {
		let j = chain.existing_job(job).await?;
		let open =
			j.current_round == round && matches!(j.phase, JobPhase::Commit | JobPhase::Aggregate);
		if !open {
			let rounds = chain.rounds(job).await?;
			return Ok(rounds.into_iter().find(|r| r.round == round));
		}
		tokio::time::sleep(Duration::from_secs(1)).await;
	}
}
