//! The round protocol.
//!
//! One round, from every peer's point of view:
//!
//! 1. **Train** off the network task (`spawn_blocking`), compress the update (with error
//!    feedback) and gossip a signed `Ready` (samples, length, compression, Merkle root of the
//!    compressed blocks).
//! 2. **Agree** on the participant set: the proposer is the peer of lowest proposer rank
//!    ([`crate::p2p::roles`], rotating per round and attempt) among the peers expected this
//!    round (connected, announced, members of the job on-chain, not suspected); it waits until
//!    every expected peer is ready on the same base model (or the deadline) and gossips a
//!    signed `Proposal` listing the participants sorted by key with their roots, each checked
//!    by every peer against the participant's own signed `Ready`. Updates of the wrong shape,
//!    and peers that announced two different roots (equivocation), are left out.
//! 3. **Exchange** ([`Scheme::Chunked`], the default): participant `i` owns chunk `i` (a
//!    fixed range of blocks). Everybody sends chunk `c` of its compressed update, with a
//!    Merkle range proof, to owner `c` (reduce-scatter), so a peer sends `S·(N−1)/N`. The
//!    owner checks the proofs, and reports per-sender partial squared norms / finiteness to
//!    all; every peer screens on the same reports (NaN/inf, malformed, norm outliers,
//!    clipping), the owner aggregates its chunk in sorted-key order and sends the result to
//!    everyone (all-gather, another `S·(N−1)/N`). [`Scheme::AllToAll`] sends whole updates to
//!    everybody and aggregates locally. Exchange messages carry the hash of the proposal they
//!    follow; a peer accepts them only for the proposal it agreed on, `Chunk` only from a
//!    participant and `Norms` / `Reduced` of chunk `c` only from its owner, participant `c`
//!    (anything else is dropped and counted in `exchange_rejected`). Before anybody signs,
//!    the participants compare digests of the reduced chunks they received; an owner proven
//!    (by two of its own signed `Reduced` envelopes) to have sent different reductions to
//!    different peers is excluded and the attempt retried (`exchange/cross_check.rs`).
//! 4. **Finish**: apply the aggregate, hash the model, evaluate it, sign the chain's
//!    `AggregatePayload` with this peer's own metric and send the endorsement to the
//!    certificate holder (lowest holder rank among the included, rotating per round; it is
//!    also the payload's submitter), which gossips the full [`QuorumCertificate`].
//!
//! Each exchange attempt has a deadline; a participant that crashes or stalls is reported as
//! a suspect in the next attempt's `Ready` and left out of its proposal. A peer that was
//! not a participant (it restarted, or was late) fetches the new state from a peer, checks
//! its hash against the certificate and joins the next round.

mod agreement;
mod certify;
mod config;
mod exchange;
mod inbox;
mod model_state;
mod run;
mod sync;

use super::metrics::Metrics;
use super::net::{NetClient, NetEvent};
use super::roles::{self, Role};
use super::wire::{
	proposal_hash, Body, ChunkRef, ChunkStat, Envelope, EnvelopeView, Opened, Participant,
};
use crate::aggregate::{self, Accepted, Stat};
use crate::compress::{self, Compressed, Compression, ErrorFeedback};
use crate::signing::{short, Endorsement, PublicKey, QuorumCertificate, SignatureBytes};
pub use config::{Byzantine, PeerConfig, Scheme};
use exchange::AttemptOutcome;

/// Tries of one round in [`Peer::run`] before it is given up.
const MAX_ROUND_RETRIES: u32 = 3;

/// A received signature share: model hash, included set, the signer's metric, signature.
type SigShareOf = (Hash32, Vec<IncludedShare<PublicKey>>, Option<u32>, SignatureBytes);

/// Accuracy in parts per million, as signed into the aggregate payload.
pub fn metric_ppm(eval: (f32, f32)) -> u32 {
	(eval.1.clamp(0.0, 1.0) * 1e6) as u32
}
use anyhow::{anyhow, bail, ensure, Context, Result};
use codec::{Decode, Encode};
use libp2p::PeerId;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use trainchain_primitives::{AggregatePayload, Hash32, IncludedShare, JobId, RoundIndex};

/// What local training produced.
#[derive(Clone, Debug)]
pub struct LocalUpdate {
	/// `new params − old params`.
	pub delta: Vec<f32>,
	/// Samples trained on.
	pub samples: u64,
	/// Mean training loss.
	pub train_loss: f32,
}

/// The ML side of a peer. Runs on a blocking thread, never on the network task.
pub trait LocalTrainer: Send + 'static {
	/// Train for `round` starting from `model`.
	fn train(&mut self, model: &[f32], round: RoundIndex) -> Result<LocalUpdate>;
	/// `(loss, accuracy)` of `model` on held-out data, if any.
	fn evaluate(&mut self, _model: &[f32]) -> Option<(f32, f32)> {
		None
	}
	/// Hash of a model state (the `model_hash` of the chain's payload).
	fn model_hash(&self, model: &[f32]) -> Hash32 {
		crate::update::state_hash(model)
	}
	/// The inner optimiser state this trainer carries between rounds, if it keeps one (saved
	/// with `--out` so that `--resume` continues it).
	fn inner_snapshot(&self) -> Option<crate::train::InnerSnapshot> {
		None
	}
}

/// The outcome of one round, for logs, JSON output and the chain integration.
#[derive(Clone, Debug)]
pub struct RoundReport {
	/// Round index.
	pub round: RoundIndex,
	/// Exchange attempt that succeeded.
	pub attempt: u32,
	/// Whether this peer contributed (false: it only synced the result).
	pub participated: bool,
	/// Included contributions (sorted by key), as signed.
	pub included: Vec<IncludedShare<PublicKey>>,
	/// Agreed Merkle root of each participant's update (the `update_hash` committed on-chain).
	pub update_roots: Vec<(PublicKey, Hash32)>,
	/// Rejected contributions with reasons.
	pub rejected: Vec<(PublicKey, String)>,
	/// Hash of the new model state.
	pub model_hash: Hash32,
	/// This peer's signature over the payload.
	pub signature: Option<SignatureBytes>,
	/// The full certificate, if this peer holds it.
	pub certificate: Option<QuorumCertificate>,
	/// The signed payload.
	pub payload: Option<AggregatePayload<PublicKey>>,
	/// Bytes this peer sent during the round.
	pub bytes_sent: u64,
	/// Bytes this peer received during the round.
	pub bytes_received: u64,
	/// Messages this peer sent during the round (requests and gossip publishes).
	pub messages_sent: u64,
	/// Of `bytes_sent`, the bytes sent on the direct path.
	pub direct_bytes_sent: u64,
	/// Size of this peer's compressed update.
	pub update_bytes: u64,
	/// Size of the reduced chunk this peer owned and sent to every other participant (one
	/// copy; 0 in the all-to-all scheme).
	pub reduced_bytes: u64,
	/// Local training time.
	pub compute_ms: u64,
	/// The successful attempt's exchange, from the agreed proposal to the aggregate
	/// (reduce-scatter, screening, all-gather, cross-check; 0 for an observer).
	pub exchange_ms: u64,
	/// Everything but training (agreement, exchange, evaluation, certificate, waiting).
	pub network_ms: u64,
	/// Mean training loss.
	pub train_loss: Option<f32>,
	/// Evaluation `(loss, accuracy)` of the new model.
	pub eval: Option<(f32, f32)>,
}

impl RoundReport {
	/// The agreed update root of `who` in this round.
	pub fn update_root_of(&self, who: &PublicKey) -> Option<Hash32> {
		self.update_roots.iter().find(|(w, _)| w == who).map(|(_, r)| *r)
	}
}

/// What a peer serves to `GetState`.
#[derive(Clone, Debug, Encode, Decode)]
pub struct StateSnapshot {
	/// Job.
	pub job: JobId,
	/// Rounds completed (= the next round to run).
	pub next_round: RoundIndex,
	/// Flat parameters.
	pub params: Vec<u32>,
	/// Hash of the parameters.
	pub model_hash: Hash32,
	/// Certificate of round `next_round − 1`, when known.
	pub certificate: Option<QuorumCertificate>,
}

#[derive(Clone, Debug)]
struct ReadyInfo {
	peer_id: PeerId,
	samples: u64,
	len: u32,
	compression: u8,
	root: Hash32,
	base_model: Hash32,
	/// The signature of the envelope that carried it.
	sig: SignatureBytes,
}

/// `(first_block, blocks, proof, leaf hashes of the blocks)` of a received chunk.
type ChunkMsg = (u32, Vec<Vec<u8>>, Vec<Hash32>, Vec<Hash32>);

/// A chunk's reduced blocks, its owner's envelope signature and the digest it signs.
type ReducedMsg = (Vec<Vec<u8>>, SignatureBytes, Hash32);

/// `(attempt, sender, kind)` of an exchange message kept before its attempt is agreed.
type EarlyKey = (u32, PublicKey, &'static str);

/// Most exchange messages kept per round before their attempt is agreed.
const EARLY_CAP: usize = 4096;

#[derive(Default)]
struct RoundState {
	readies: BTreeMap<(u32, PublicKey), ReadyInfo>,
	suspects_reported: BTreeSet<PublicKey>,
	roots: HashMap<PublicKey, Hash32>,
	equivocators: BTreeSet<PublicKey>,
	proposals: HashMap<u32, (PublicKey, Vec<Participant>)>,
	chunks: HashMap<(u32, PublicKey), ChunkMsg>,
	norms: HashMap<(u32, u32), Vec<ChunkStat>>,
	/// Each chunk's reduced blocks with its owner's envelope signature (kept to forward the
	/// owner's own message as evidence if other participants received something else).
	reduced: HashMap<(u32, u32), ReducedMsg>,
	/// Each participant's digests of the reduced chunks it received.
	digests: HashMap<(u32, PublicKey), Vec<Hash32>>,
	/// Chunks whose owner was proven to have sent two different reductions.
	proven_split: BTreeSet<(u32, u32)>,
	/// The proposal this peer follows in each attempt: its hash and participants. Exchange
	/// messages are accepted only if bound to it and sent by the chunk's owner.
	agreed: HashMap<u32, (Hash32, Vec<Participant>)>,
	/// Exchange messages that arrived before this peer agreed on their attempt, one per
	/// `(attempt, sender, kind)`; checked when the attempt's exchange starts.
	early: HashMap<EarlyKey, (Body, Opened)>,
	sigshares: HashMap<PublicKey, SigShareOf>,
	certificate: Option<QuorumCertificate>,
	/// Hash of the model this round trains from (set when the round starts).
	base_model: Option<Hash32>,
}

/// A peer: the round runner. Owns the model, talks to the network task via [`NetClient`].
pub struct Peer<T: LocalTrainer> {
	cfg: PeerConfig,
	me: PublicKey,
	net: NetClient,
	events: mpsc::UnboundedReceiver<NetEvent>,
	trainer: Option<T>,
	/// The model state peers hash and sync: the parameters (`params_len` values), then the
	/// outer optimiser's state ([`OuterOptimizer::state_len`]).
	model: model_state::ModelState,
	params_len: usize,
	/// The owner's error feedback on the all-gather half (sparse compression).
	reduce_feedback: compress::OwnerFeedback,
	round: RoundIndex,
	last_qc: Option<QuorumCertificate>,
	ef: ErrorFeedback,
	bindings: HashMap<PublicKey, PeerId>,
	joining: HashMap<PublicKey, RoundIndex>,
	connected: HashSet<PeerId>,
	future: Vec<(PeerId, bool, Envelope)>,
	st: RoundState,
	/// Peers to leave out of the next round (see [`Peer::exclude`]).
	excluded: BTreeSet<PublicKey>,
	/// What the chain says (see [`Peer::set_chain_view`]); `None` outside `run`.
	chain: Option<ChainView>,
}

/// What the chain says about the job, for a peer in `run` mode.
#[derive(Clone, Debug, Default)]
pub struct ChainView {
	/// Keys of the accounts that joined the job: only they may take part.
	pub members: BTreeSet<PublicKey>,
	/// The model hash of the last finalised round: a synced state that matches it needs no
	/// certificate of its own.
	pub latest_model: Option<Hash32>,
	/// The round the chain has open after `latest_model`: a peer that resumed that model
	/// from a file serves it without a certificate for this round or an earlier one (see
	/// `check_snapshot`).
	pub open_round: Option<RoundIndex>,
}

/// What a peer needs to undo a round that the chain did not accept: the model, round,
/// certificate and error-feedback state from before it.
#[derive(Clone, Debug)]
pub struct Checkpoint {
	model: Vec<f32>,
	round: RoundIndex,
	last_qc: Option<QuorumCertificate>,
	ef: ErrorFeedback,
}

/// `params` followed by a fresh (zero) outer optimiser state.
fn with_outer_state(cfg: &PeerConfig, mut params: Vec<f32>) -> Vec<f32> {
	let n = params.len();
	params.resize(n + cfg.outer.state_len(n), 0.0);
	params
}

fn peer_id_bytes(p: &PeerId) -> Vec<u8> {
	p.to_bytes()
}

fn f32s_to_u32s(xs: &[f32]) -> Vec<u32> {
	xs.iter().map(|x| x.to_bits()).collect()
}

fn elapsed_ms(t: Instant) -> u64 {
	t.elapsed().as_millis() as u64
}

impl<T: LocalTrainer> Peer<T> {
	/// A peer with the job's initial model.
	pub fn new(
		cfg: PeerConfig,
		net: NetClient,
		events: mpsc::UnboundedReceiver<NetEvent>,
		trainer: T,
		initial_model: Vec<f32>,
	) -> Self {
		let me = cfg.keys.public();
		let params_len = initial_model.len();
		if let Some(why) = cfg.known_bad_combination() {
			tracing::warn!("{why}");
		}
		let model = with_outer_state(&cfg, initial_model);
		Self {
			cfg,
			me,
			net,
			events,
			trainer: Some(trainer),
			model: model_state::ModelState::new(model),
			params_len,
			reduce_feedback: compress::OwnerFeedback::default(),
			round: 0,
			last_qc: None,
			ef: ErrorFeedback::default(),
			bindings: HashMap::new(),
			joining: HashMap::new(),
			connected: HashSet::new(),
			future: Vec::new(),
			st: RoundState::default(),
			excluded: BTreeSet::new(),
			chain: None,
		}
	}

	/// The state to return to if the next round does not stand (see [`Peer::restore`]).
	pub fn checkpoint(&self) -> Checkpoint {
		Checkpoint {
			model: self.model.to_vec(),
			round: self.round,
			last_qc: self.last_qc.clone(),
			ef: self.ef.clone(),
		}
	}

	/// Tell the peer what the chain says about the job (call before every round in `run`).
	pub fn set_chain_view(&mut self, view: ChainView) {
		self.chain = Some(view);
	}

	/// False if the chain view is known and `who` has not joined the job.
	fn is_member(&self, who: &PublicKey) -> bool {
		self.chain.as_ref().is_none_or(|c| c.members.contains(who))
	}

	/// Go back to `cp`: the model, round and certificate served to peers are those of the
	/// checkpoint again. Training is deterministic per (model, round), so re-running the
	/// round reproduces this peer's update and its commitment stays valid.
	pub fn restore(&mut self, cp: Checkpoint) -> Result<()> {
		self.model.set(cp.model);
		self.last_qc = cp.last_qc;
		self.ef = cp.ef;
		self.reduce_feedback.reset();
		self.set_round(cp.round);
		self.publish_state()
	}

	/// Start over from the parameters `model` at `round` (no certificate, no error-feedback
	/// residual, a fresh outer optimiser): the job's initial model when the chain has
	/// accepted no round yet.
	pub fn reset(&mut self, model: Vec<f32>, round: RoundIndex) -> Result<()> {
		let model = with_outer_state(&self.cfg, model);
		self.restore(Checkpoint { model, round, last_qc: None, ef: ErrorFeedback::default() })
	}

	/// Take the whole model `state` (parameters, then outer optimiser state, as
	/// [`Peer::state`]) for `round`, without a certificate: the caller checks its hash against
	/// the chain (`run --resume`).
	pub fn adopt(&mut self, state: Vec<f32>, round: RoundIndex) -> Result<()> {
		ensure!(
			state.len() == self.model.len(),
			"a model state of {} values, this job's has {}",
			state.len(),
			self.model.len()
		);
		self.restore(Checkpoint {
			model: state,
			round,
			last_qc: None,
			ef: ErrorFeedback::default(),
		})
	}

	/// Leave these peers out of the next [`Peer::run_round`] (e.g. they were included in an
	/// aggregate but never committed on-chain).
	pub fn exclude(&mut self, peers: impl IntoIterator<Item = PublicKey>) {
		self.excluded.extend(peers);
	}

	/// The current model's parameters.
	pub fn model(&self) -> &[f32] {
		self.model.get(..self.params_len).unwrap_or_default()
	}

	/// The inner optimiser state of this peer's trainer, if it keeps one
	/// ([`LocalTrainer::inner_snapshot`]).
	pub fn inner_snapshot(&self) -> Option<crate::train::InnerSnapshot> {
		self.trainer.as_ref()?.inner_snapshot()
	}

	/// The whole model state: the parameters, then the outer optimiser's state (what
	/// [`Peer::model_hash_now`] hashes).
	pub fn state(&self) -> &[f32] {
		&self.model
	}

	/// The next round to run.
	pub fn round(&self) -> RoundIndex {
		self.round
	}

	/// The network handle.
	pub fn net(&self) -> &NetClient {
		&self.net
	}

	/// The latest certificate this peer has.
	pub fn last_certificate(&self) -> Option<&QuorumCertificate> {
		self.last_qc.as_ref()
	}

	/// Move to another round: per-round state starts empty (messages for later rounds wait
	/// in `future`).
	/// Set the next round to run (the chain's open round, when driven by the chain).
	pub fn set_round(&mut self, round: RoundIndex) {
		self.round = round;
		self.st = RoundState::default();
	}

	/// Hash of the current model state (the chain's `latest_model` once a round finalised).
	pub fn model_hash_now(&self) -> Hash32 {
		self.model_hash()
	}

	fn metrics(&self) -> &Metrics {
		self.net.metrics()
	}

	fn model_hash(&self) -> Hash32 {
		self.model.hash(|m| match &self.trainer {
			Some(t) => t.model_hash(m),
			None => crate::update::state_hash(m),
		})
	}

	/// Serve the current model state, by `GetState` and by its hash (`GetBlob`), so peers can
	/// sync and verifiers can fetch a round's base model by the hash the chain holds.
	fn publish_state(&self) -> Result<()> {
		let model_hash = self.model_hash();
		self.net.put_blob(model_hash, crate::update::encode_state(&self.model))?;
		let snap = StateSnapshot {
			job: self.cfg.job_id,
			next_round: self.round,
			params: f32s_to_u32s(&self.model),
			model_hash,
			certificate: self
				.last_qc
				.clone()
				.filter(|q| q.round().checked_add(1) == Some(self.round)),
		};
		self.net.set_state(snap.encode())
	}

	fn hello(&self) -> Result<()> {
		let body = Body::Hello {
			peer_id: peer_id_bytes(&self.net.local_peer_id()),
			joining_round: self.round,
		};
		self.net
			.set_hello(Envelope::seal_bytes(&self.cfg.keys, self.cfg.job_id, self.round, &body))
	}

	fn seal(&self, body: &Body) -> Vec<u8> {
		Envelope::seal_bytes(&self.cfg.keys, self.cfg.job_id, self.round, body)
	}

	/// Seal a body carrying this peer's own update blocks with their leaf hashes, which it
	/// already has: the blocks are not hashed again.
	fn seal_own_blocks<B: super::wire::Sealable>(&self, body: &B, leaves: &[Hash32]) -> Vec<u8> {
		let (keys, job, round) = (&self.cfg.keys, self.cfg.job_id, self.round);
		Envelope::seal_bytes_with(keys, job, round, body, Some(leaves))
	}

	/// Send one sealed message to every participant but this peer (one buffer shared by all
	/// of them), re-sent after a failed request until the phase's deadline.
	fn send_to_others(&self, parts: &[Participant], sealed: Vec<u8>) {
		let sealed = std::sync::Arc::new(sealed);
		for p in self.others_in_shift_order(parts) {
			self.send_sealed(&p.who, sealed.clone());
		}
	}

	/// The other participants, from the one after this peer onwards (see
	/// [`crate::p2p::roles::shift_order`]); all of them, in order, if this peer is not one.
	fn others_in_shift_order<'a>(&self, parts: &'a [Participant]) -> Vec<&'a Participant> {
		match parts.iter().position(|p| p.who == self.me) {
			Some(me) => crate::p2p::roles::shift_order(me, parts.len())
				.filter_map(|i| parts.get(i))
				.collect(),
			None => parts.iter().collect(),
		}
	}

	fn send_to(&self, who: &PublicKey, body: &Body) {
		self.send_sealed(who, std::sync::Arc::new(self.seal(body)));
	}

	fn send_sealed(&self, who: &PublicKey, sealed: std::sync::Arc<Vec<u8>>) {
		let Some(pid) = self.bindings.get(who) else {
			tracing::warn!(to = %short(who), "no peer id for key");
			return;
		};
		let until = Instant::now() + self.cfg.round_timeout;
		if let Err(e) = self.net.send_retrying(*pid, sealed, until) {
			tracing::warn!("send: {e}");
		}
	}
}

fn log_report(r: &RoundReport) {
	tracing::info!(
		target: "trainchain::round",
		round = r.round,
		attempt = r.attempt,
		participated = r.participated,
		peers = r.included.len(),
		rejected = r.rejected.len(),
		bytes_sent = r.bytes_sent,
		bytes_received = r.bytes_received,
		compute_ms = r.compute_ms,
		exchange_ms = r.exchange_ms,
		network_ms = r.network_ms,
		train_loss = r.train_loss.unwrap_or(f32::NAN),
		eval_loss = r.eval.map(|e| e.0).unwrap_or(f32::NAN),
		accuracy = r.eval.map(|e| e.1).unwrap_or(f32::NAN),
		model_hash = %hex::encode(r.model_hash),
		"round complete"
	);
}

/// The included peers in the order they hold the round's certificate (and submit it).
pub fn holder_order(
	job: JobId,
	round: RoundIndex,
	included: &[IncludedShare<PublicKey>],
) -> Vec<PublicKey> {
	roles::in_rank_order(job, round, Role::Holder, included.iter().map(|s| &s.who))
}
