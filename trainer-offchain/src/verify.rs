//! Verifying a job (the `verify` subcommand): bond as a verifier, and for every round whose
//! committee names this account, fetch the round's base model and each included update from
//! the trainers over libp2p (by the hashes the chain holds, so a wrong blob is refused),
//! score them on the sponsor's validation set ([`crate::score`]) and submit the sheet.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};
use libp2p::PeerId;
use trainchain_chain_client::{account_of, calls, pair_from_suri, ChainClient, Job, Round};
use trainchain_primitives::{Hash32, RoundIndex};

use crate::compress::{Compressed, Compression};
use crate::data::{self, CsvOptions, Dataset};
use crate::job::{check_input, model_of, plan_of};
use crate::model::{Model, ModelSpec};
use crate::p2p::net::{self, NetAddrs, NetClient, NetConfig};
use crate::public_data::{self, PublicCheck, PublicRole, PublicShards};
use crate::score::{model_metric, score_round, Contribution};
use sp_core::crypto::AccountId32;
use trainchain_primitives::public_data::{assign_shard, comparison_shard, recompute_sample};

/// What `verify` needs from its caller.
pub struct VerifyOptions {
	/// WebSocket RPC of a trainchain node.
	pub node: String,
	/// The verifier's sr25519 secret URI (never printed).
	pub suri: String,
	/// The job to verify.
	pub job: u64,
	/// The sponsor's validation set (CSV); its blake2-256 must equal the job's
	/// `validation_set`.
	pub validation: PathBuf,
	/// Public-data jobs: the public dataset (CSV); split into the job's shards, its root must
	/// be the job's `shards_root`.
	pub data: Option<PathBuf>,
	/// Where to listen, which trainers to dial, what to announce.
	pub net: NetAddrs,
	/// Stop once the job has ended and no round of it is in settlement.
	pub until_settled: bool,
	/// Fault injection for tests: score this account (SS58) as the best contributor.
	pub fault_favour: Option<String>,
	/// Where progress goes.
	pub events: Arc<dyn Fn(VerifyEvent) + Send + Sync>,
}

/// What `verify` reports.
#[derive(Clone, Debug)]
pub enum VerifyEvent {
	/// Bonded as a verifier of the job (or already was).
	Joined {
		/// Job.
		job: u64,
		/// This verifier's account (SS58).
		who: String,
	},
	/// Submitted a score sheet.
	Scored {
		/// Round.
		round: RoundIndex,
		/// One score per included contributor (SS58, score).
		scores: Vec<(String, i32)>,
		/// Validation loss of the round's model (micro-units).
		loss_micro: u32,
		/// Validation accuracy of the round's model (ppm).
		accuracy_ppm: u32,
		/// Public-data jobs: contributions that failed a check (SS58, why).
		rejected: Vec<(String, String)>,
	},
	/// A round could not be scored yet (a blob is not available); retried.
	Waiting {
		/// Round.
		round: RoundIndex,
		/// Why.
		reason: String,
	},
}

/// Run the verifier until the job has ended and all its rounds are settled (or forever).
pub async fn run(opts: VerifyOptions) -> Result<()> {
	let pair = pair_from_suri(&opts.suri)?;
	let me = account_of(&pair);
	let chain = ChainClient::connect(&opts.node, None).await?;
	let job = chain.existing_job(opts.job).await?;
	let (spec, validation) = prepare(&job, &opts.validation)?;
	let public = prepare_public(&job, opts.data.as_deref())?;
	join(&chain, &pair, opts.job).await?;
	let who = sp_core::crypto::Ss58Codec::to_ss58check(&me);
	(opts.events)(VerifyEvent::Joined { job: opts.job, who });
	let ncfg = NetConfig::for_job(opts.job).with_addrs(&opts.net);
	let (net, _events) = net::start(ncfg).await?;
	let favour = opts.fault_favour.as_deref().map(parse_account).transpose()?;
	let mut v = Verifier {
		model: Model::new(&spec)?,
		spec,
		validation,
		public,
		net,
		done: BTreeSet::new(),
	};
	loop {
		let job = chain.existing_job(opts.job).await?;
		let rounds = chain.rounds(opts.job).await?;
		let due: Vec<&Round> = rounds.iter().filter(|r| v.is_due(r, &me)).collect();
		for r in due {
			match v.score(&job, r, &rounds, favour.as_ref()).await {
				Ok(sheet) => {
					let call = calls::submit_scores(
						opts.job,
						r.round,
						me.clone(),
						sheet.scores.iter().map(|(_, s)| *s).collect(),
						sheet.loss_micro,
						sheet.accuracy_ppm,
					);
					chain.submit(&pair, call).await?;
					v.done.insert(r.round);
					(opts.events)(sheet.into_event(r.round));
				},
				Err(e) => {
					(opts.events)(VerifyEvent::Waiting { round: r.round, reason: format!("{e:#}") })
				},
			}
		}
		let ended = matches!(
			job.phase,
			trainchain_chain_client::JobPhase::Completed
				| trainchain_chain_client::JobPhase::Failed
				| trainchain_chain_client::JobPhase::Cancelled
		);
		if opts.until_settled && ended && job.open_settlements == 0 {
			return Ok(());
		}
		tokio::time::sleep(Duration::from_secs(2)).await;
	}
}

/// The job's model spec and the validation set, checked against the job's commitments.
fn prepare(job: &Job, path: &std::path::Path) -> Result<(ModelSpec, Dataset)> {
	let Some(expected) = job.validation_set else {
		bail!("job {} has no verification", job.job_id);
	};
	let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
	let got = sp_crypto_hashing::blake2_256(&bytes);
	if got != expected {
		bail!(
			"{} hashes to 0x{}, but job {} commits to validation set 0x{}",
			path.display(),
			hex::encode(got),
			job.job_id,
			hex::encode(expected)
		);
	}
	let spec = ModelSpec::parse(&model_of(job)?)?;
	// Scored as the contributors train: with the job's input transform.
	let plan = plan_of(job)?;
	check_input(job, &spec, &plan)?;
	let validation = plan.input.apply(data::load_csv(path, CsvOptions::default())?)?;
	Ok((spec, validation))
}

/// A public-data job's shards (checked against the job's root) and training rules.
fn prepare_public(job: &Job, data: Option<&std::path::Path>) -> Result<Option<PublicJob>> {
	let Some((root, shards, recompute)) = job.public_data else {
		return Ok(None);
	};
	let path = data.with_context(|| {
		format!("job {} trains on a public dataset: give it with --data", job.job_id)
	})?;
	Ok(Some(PublicJob {
		shards: PublicShards::load(path, shards, Some(root))?.transformed(&plan_of(job)?.input)?,
		count: shards,
		recompute,
		cfg: public_data::train_config(job.learning_rate_ppm, job.batch_size, job.local_steps),
	}))
}

/// Bond as a verifier unless this account already is one.
async fn join(chain: &ChainClient, pair: &sp_core::sr25519::Pair, job: u64) -> Result<()> {
	match chain.submit(pair, calls::join_as_verifier(job)).await {
		Ok(_) => Ok(()),
		Err(e) if e.dispatch_error() == Some("TrainingRewards.AlreadyVerifier") => Ok(()),
		Err(e) => Err(e.into()),
	}
}

fn parse_account(s: &str) -> Result<sp_core::crypto::AccountId32> {
	use sp_core::crypto::Ss58Codec;
	sp_core::crypto::AccountId32::from_ss58check(s).map_err(|e| anyhow::anyhow!("{s}: {e:?}"))
}

struct Verifier {
	spec: ModelSpec,
	model: Model,
	validation: Dataset,
	public: Option<PublicJob>,
	net: NetClient,
	done: BTreeSet<RoundIndex>,
}

/// What a verifier of a public-data job holds.
struct PublicJob {
	shards: PublicShards,
	count: u32,
	recompute: u32,
	cfg: crate::train::TrainConfig,
}

impl PublicJob {
	/// The checks of each of `r`'s contributions, in aggregate order.
	fn roles(&self, job: u64, r: &Round) -> Result<Vec<PublicRole>> {
		let seed = r.seed.context("a settling round without a seed")?;
		let who: Vec<&AccountId32> = r.updates.iter().map(|(w, _, _)| w).collect();
		let sample = recompute_sample(&seed, &who, self.recompute);
		Ok(who
			.iter()
			.zip(sample)
			.map(|(w, recompute)| {
				let assigned = assign_shard(job, r.round, *w, self.count);
				let compare = comparison_shard(&seed, *w, assigned.shard, self.count);
				PublicRole { assigned, compare, recompute }
			})
			.collect())
	}
}

/// A scored round, ready to submit.
struct Sheet {
	scores: Vec<(String, i32)>,
	loss_micro: u32,
	accuracy_ppm: u32,
	rejected: Vec<(String, String)>,
}

impl Sheet {
	fn into_event(self, round: RoundIndex) -> VerifyEvent {
		VerifyEvent::Scored {
			round,
			scores: self.scores,
			loss_micro: self.loss_micro,
			accuracy_ppm: self.accuracy_ppm,
			rejected: self.rejected,
		}
	}
}

impl Verifier {
	/// Whether `r` waits for this verifier's sheet.
	fn is_due(&self, r: &Round, me: &sp_core::crypto::AccountId32) -> bool {
		r.settling
			&& r.committee.contains(me)
			&& !r.scored.contains(me)
			&& !self.done.contains(&r.round)
	}

	/// Fetch the base model, the updates and the round's model, and score.
	async fn score(
		&mut self,
		job: &Job,
		r: &Round,
		rounds: &[Round],
		favour: Option<&sp_core::crypto::AccountId32>,
	) -> Result<Sheet> {
		let base = match base_hash(rounds, r.round) {
			None => self.spec.initial_params()?,
			Some(h) => self.fetch_state(h).await.context("base model")?,
		};
		let after = self.fetch_state(r.model_hash.context("round has no model")?).await?;
		let roles = match &self.public {
			Some(p) => p.roles(job.job_id, r)?.into_iter().map(Some).collect(),
			None => vec![None; r.updates.len()],
		};
		let mut contributions = Vec::new();
		for ((_, hash, at), public) in r.updates.iter().zip(roles) {
			let (compression, delta) = match self.fetch_update(*hash).await {
				Ok((c, d)) => (c, Some(d)),
				Err(_) => (Compression::None, None),
			};
			contributions.push(Contribution { delta, committed_at: *at, compression, public });
		}
		let check = self.public.as_ref().map(|p| PublicCheck { shards: &p.shards, cfg: p.cfg });
		let scored =
			score_round(&mut self.model, &base, &contributions, &self.validation, check.as_ref())?;
		let rejected = r
			.updates
			.iter()
			.zip(&scored.rejections)
			.filter_map(|((who, _, _), why)| {
				why.map(|w| (sp_core::crypto::Ss58Codec::to_ss58check(who), format!("{w:?}")))
			})
			.collect();
		let (loss_micro, accuracy_ppm) = model_metric(&mut self.model, &after, &self.validation)?;
		let best = scored.scores.iter().copied().max().unwrap_or(0);
		// Test-only lie: a favouring verifier also reports a perfect model.
		let accuracy_ppm = if favour.is_some() { 1_000_000 } else { accuracy_ppm };
		let scores = r
			.updates
			.iter()
			.zip(scored.scores)
			.map(|((who, _, _), s)| {
				// Test-only lie: the favoured account is scored as the best contributor.
				let s = if favour == Some(who) { best.saturating_mul(2).max(100_000) } else { s };
				(sp_core::crypto::Ss58Codec::to_ss58check(who), s)
			})
			.collect();
		Ok(Sheet { scores, loss_micro, accuracy_ppm, rejected })
	}

	/// A model state by its hash, from any connected trainer.
	async fn fetch_state(&self, hash: Hash32) -> Result<Vec<f32>> {
		// A DiLoCo job's state is the parameters followed by the outer momentum: keep the
		// parameters.
		let n = self.spec.num_params()?;
		let parse = |b: &[u8]| {
			(sp_crypto_hashing::blake2_256(b) == hash)
				.then(|| crate::update::decode_state(b).ok())
				.flatten()
				.filter(|s| s.len() >= n)
				.map(|mut s| {
					s.truncate(n);
					s
				})
		};
		self.fetch(hash, parse)
			.await
			.with_context(|| format!("model state 0x{} from no peer", hex::encode(hash)))
	}

	/// An update by its committed hash, from any connected trainer.
	async fn fetch_update(&self, hash: Hash32) -> Result<(Compression, Vec<f32>)> {
		let parse = |b: &[u8]| {
			let u = Compressed::from_blob(b, &hash).ok()?;
			Some((u.compression, u.decode().ok()?))
		};
		self.fetch(hash, parse)
			.await
			.with_context(|| format!("update 0x{} from no peer", hex::encode(hash)))
	}

	/// Ask every connected peer for the blob `hash` until one answers with bytes that `parse`
	/// accepts (they match the hash and decode).
	async fn fetch<V>(&self, hash: Hash32, parse: impl Fn(&[u8]) -> Option<V>) -> Option<V> {
		let peers: Vec<PeerId> = self.net.connected_peers().await.ok()?;
		for p in peers {
			let got = tokio::time::timeout(Duration::from_secs(10), self.net.fetch_blob(p, hash));
			if let Ok(Ok(Some(bytes))) = got.await {
				if let Some(v) = parse(&bytes) {
					return Some(v);
				}
				tracing::warn!(peer = %p, "served a blob that does not match its hash");
			}
		}
		None
	}
}

/// The model round `round` trained from: the model of the latest finalised round before it
/// (`None`: the job's initial model).
fn base_hash(rounds: &[Round], round: RoundIndex) -> Option<Hash32> {
	rounds
		.iter()
		.filter(|r| r.round < round && r.finalized)
		.max_by_key(|r| r.round)
		.and_then(|r| r.model_hash)
}
