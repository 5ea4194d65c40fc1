//! The round protocol.
//!
//! One round, from every peer's point of view:
//!
//! 1. **Train** off the network task (`spawn_blocking`), compress the update (with error
//!    feedback) and gossip a signed `Ready` (samples, length, compression, Merkle root of the
//!    compressed blocks).
//! 2. **Agree** on the participant set: the proposer is the lowest key among the peers
//!    expected this round (connected, announced, not suspected); it waits until every
//!    expected peer is ready (or the deadline) and gossips a signed `Proposal` listing the
//!    participants sorted by key with their roots. Updates of the wrong shape, and peers that
//!    announced two different roots (equivocation), are left out.
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
//!    (anything else is dropped and counted in `exchange_rejected`).
//! 4. **Finish**: apply the aggregate, hash the model, sign the chain's
//!    `AggregatePayload` and send the signature to the certificate holder (the lowest
//!    included key), which gossips the full [`QuorumCertificate`].
//!
//! Each exchange attempt has a deadline; a participant that crashes or stalls is reported as
//! a suspect in the next attempt's `Ready` and left out of its proposal. A peer that was
//! not a participant (it restarted, or was late) fetches the new state from a peer, checks
//! its hash against the certificate and joins the next round.

use super::metrics::Metrics;
use super::net::{NetClient, NetEvent};
use super::wire::{proposal_hash, Body, ChunkStat, Envelope, Participant};
use crate::aggregate::{self, Accepted, RobustConfig, Stat};
use crate::compress::{self, Compressed, Compression, ErrorFeedback};
use crate::signing::{short, Endorsement, Keys, PublicKey, QuorumCertificate, SignatureBytes};

/// Tries of one round in [`Peer::run`] before it is given up.
const MAX_ROUND_RETRIES: u32 = 3;

/// A received signature share: model hash, included set, the signer's metric, signature.
type SigShareOf = (Hash32, Vec<IncludedShare<PublicKey>>, Option<u32>, SignatureBytes);

/// Accuracy in parts per million, as signed into the aggregate payload.
pub fn metric_ppm(eval: (f32, f32)) -> u32 {
    (eval.1.clamp(0.0, 1.0) * 1e6) as u32
}
use anyhow::{anyhow, bail, Context, Result};
use codec::{Decode, Encode};
use libp2p::PeerId;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
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
}

/// How updates travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Everybody sends its whole update to everybody: `S·(N−1)` per peer.
    AllToAll,
    /// Reduce-scatter to chunk owners + all-gather: `≈ 2·S·(N−1)/N` per peer.
    Chunked,
}

impl FromStr for Scheme {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all-to-all" | "alltoall" => Ok(Scheme::AllToAll),
            "chunked" | "ring" | "reduce-scatter" => Ok(Scheme::Chunked),
            o => bail!("unknown scheme {o:?} (all-to-all|chunked)"),
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::AllToAll => "all-to-all",
            Scheme::Chunked => "chunked",
        })
    }
}

/// Misbehaviour for tests only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Byzantine {
    /// Multiply the honest update by this factor.
    Scale(f32),
    /// Send NaNs.
    Nan,
}

impl FromStr for Byzantine {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "nan" {
            return Ok(Byzantine::Nan);
        }
        match s.strip_prefix("scale:") {
            Some(f) => Ok(Byzantine::Scale(f.parse()?)),
            None => bail!("unknown byzantine mode {s:?} (scale:FACTOR|nan)"),
        }
    }
}

/// Settings of a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Job id.
    pub job_id: JobId,
    /// Genesis hash of the chain (goes into the signed payload).
    pub genesis_hash: Hash32,
    /// The peer's key.
    pub keys: Keys,
    /// Fewest participants for a round to count.
    pub min_peers: usize,
    /// Participants to wait for before round 0.
    pub initial_peers: usize,
    /// Deadline for each phase (readiness after own training; each exchange attempt).
    pub round_timeout: Duration,
    /// Aggregation and screening.
    pub robust: RobustConfig,
    /// Compression.
    pub compression: Compression,
    /// Exchange scheme.
    pub scheme: Scheme,
    /// Test-only misbehaviour.
    pub byzantine: Option<Byzantine>,
    /// Exchange attempts per round before the round is given up.
    pub max_attempts: u32,
}

impl PeerConfig {
    /// Defaults for tests and the CLI.
    pub fn new(job_id: JobId, keys: Keys) -> Self {
        Self {
            job_id,
            genesis_hash: [0; 32],
            keys,
            min_peers: 2,
            initial_peers: 2,
            round_timeout: Duration::from_secs(20),
            robust: RobustConfig::default(),
            compression: Compression::None,
            scheme: Scheme::Chunked,
            byzantine: None,
            max_attempts: 3,
        }
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
    /// Size of this peer's compressed update.
    pub update_bytes: u64,
    /// Local training time.
    pub compute_ms: u64,
    /// Everything else (waiting, exchange, aggregation).
    pub network_ms: u64,
    /// Mean training loss.
    pub train_loss: Option<f32>,
    /// Evaluation `(loss, accuracy)` of the new model.
    pub eval: Option<(f32, f32)>,
}

impl RoundReport {
    /// The agreed update root of `who` in this round.
    pub fn update_root_of(&self, who: &PublicKey) -> Option<Hash32> {
        self.update_roots
            .iter()
            .find(|(w, _)| w == who)
            .map(|(_, r)| *r)
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
}

/// `(first_block, blocks, proof)` of a received chunk.
type ChunkMsg = (u32, Vec<Vec<u8>>, Vec<Hash32>);

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
    reduced: HashMap<(u32, u32), Vec<Vec<u8>>>,
    /// The proposal this peer follows in each attempt: its hash and participants. Exchange
    /// messages are accepted only if bound to it and sent by the chunk's owner.
    agreed: HashMap<u32, (Hash32, Vec<Participant>)>,
    /// Exchange messages that arrived before this peer agreed on their attempt, one per
    /// `(attempt, sender, kind)`; checked when the attempt's exchange starts.
    early: HashMap<(u32, PublicKey, &'static str), Body>,
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
    model: Vec<f32>,
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
        Self {
            cfg,
            me,
            net,
            events,
            trainer: Some(trainer),
            model: initial_model,
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
            model: self.model.clone(),
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
        self.model = cp.model;
        self.last_qc = cp.last_qc;
        self.ef = cp.ef;
        self.set_round(cp.round);
        self.publish_state()
    }

    /// Process network events for up to `timeout` until this peer holds a complete
    /// certificate for `round` (the holder broadcasts it), so any included peer can submit
    /// the aggregate if the holder does not.
    pub async fn await_certificate(
        &mut self,
        round: RoundIndex,
        timeout: Duration,
    ) -> Result<Option<QuorumCertificate>> {
        let complete = |q: &Option<QuorumCertificate>| {
            q.clone().filter(|q| q.round() == round && q.is_complete())
        };
        let deadline = Instant::now() + timeout;
        self.wait_until(deadline, |s| complete(&s.last_qc).is_some())
            .await?;
        Ok(complete(&self.last_qc))
    }

    /// Leave these peers out of the next [`Peer::run_round`] (e.g. they were included in an
    /// aggregate but never committed on-chain).
    pub fn exclude(&mut self, peers: impl IntoIterator<Item = PublicKey>) {
        self.excluded.extend(peers);
    }

    /// The current model.
    pub fn model(&self) -> &[f32] {
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
        match &self.trainer {
            Some(t) => t.model_hash(&self.model),
            None => crate::update::state_hash(&self.model),
        }
    }

    fn publish_state(&self) -> Result<()> {
        let snap = StateSnapshot {
            job: self.cfg.job_id,
            next_round: self.round,
            params: f32s_to_u32s(&self.model),
            model_hash: self.model_hash(),
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
        self.net.set_hello(Envelope::seal_bytes(
            &self.cfg.keys,
            self.cfg.job_id,
            self.round,
            &body,
        ))
    }

    fn seal(&self, body: &Body) -> Vec<u8> {
        Envelope::seal_bytes(&self.cfg.keys, self.cfg.job_id, self.round, body)
    }

    fn send_to(&self, who: &PublicKey, body: &Body) {
        match self.bindings.get(who) {
            Some(p) => {
                if let Err(e) = self.net.send_nowait(*p, self.seal(body)) {
                    tracing::warn!("send: {e}");
                }
            }
            None => tracing::warn!(to = %short(who), "no peer id for key"),
        }
    }

    // ---------------------------------------------------------------- events

    /// Handle one network event (validation, binding, buffering).
    fn ingest(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connected(p) => {
                self.connected.insert(p);
            }
            NetEvent::Disconnected(p) => {
                self.connected.remove(&p);
            }
            NetEvent::Listening(_) => {}
            NetEvent::Message { from, data, gossip } => match Envelope::decode_bytes(&data) {
                Ok(env) => self.ingest_envelope(from, gossip, env),
                Err(e) => {
                    Metrics::inc(&self.metrics().malformed);
                    tracing::warn!(%from, len = data.len(), "dropping malformed message: {e}");
                }
            },
        }
    }

    fn reject(&self, from: &PeerId, env: &Envelope, why: &str) {
        Metrics::inc(&self.metrics().messages_rejected);
        tracing::warn!(%from, who = %short(&env.who), round = env.round, "rejected message: {why}");
    }

    fn ingest_envelope(&mut self, from: PeerId, gossip: bool, env: Envelope) {
        if env.job != self.cfg.job_id {
            return self.reject(&from, &env, "wrong job");
        }
        if env.who == self.me {
            // Our own gossip echoed back, or someone claiming our key.
            if from != self.net.local_peer_id() {
                Metrics::inc(&self.metrics().impersonations);
                self.reject(&from, &env, "claims our own key");
            }
            return;
        }
        let body = match env.open() {
            Ok(b) => b,
            Err(e) => {
                return self.reject(&from, &env, &format!("{e} (forged or claimed identity)"))
            }
        };
        if env.round < self.round && !matches!(body, Body::Hello { .. } | Body::Certificate(_)) {
            Metrics::inc(&self.metrics().replays);
            return self.reject(
                &from,
                &env,
                "message from an earlier round (replay or late)",
            );
        }
        // Bind / check the sender's libp2p identity.
        match &body {
            Body::Hello { peer_id, .. } | Body::Ready { peer_id, .. } => {
                if peer_id.as_slice() != peer_id_bytes(&from).as_slice() {
                    Metrics::inc(&self.metrics().impersonations);
                    return self.reject(
                        &from,
                        &env,
                        "signed peer id differs from the sending peer (replayed)",
                    );
                }
                self.bindings.insert(env.who, from);
                if let Body::Hello { joining_round, .. } = body {
                    tracing::debug!(who = %short(&env.who), %from, joining_round, "hello");
                    self.joining.insert(env.who, joining_round);
                    return;
                }
            }
            Body::Certificate(_) => {}
            _ => {
                let bound = self.bindings.get(&env.who);
                let ok = bound == Some(&from) || (gossip && bound.is_none());
                if !ok {
                    Metrics::inc(&self.metrics().impersonations);
                    return self.reject(&from, &env, "sender is not the key's bound peer");
                }
            }
        }
        if env.round < self.round {
            if let Body::Certificate(qc) = body {
                self.on_certificate(qc);
                return;
            }
            Metrics::inc(&self.metrics().replays);
            return self.reject(
                &from,
                &env,
                "message from an earlier round (replay or late)",
            );
        }
        if env.round > self.round {
            if self.future.len() < 10_000 {
                self.future.push((from, gossip, env));
            }
            return;
        }
        self.on_body(from, env.who, body);
    }

    fn on_certificate(&mut self, qc: QuorumCertificate) {
        if qc.job_id() != self.cfg.job_id || qc.payload.genesis_hash != self.cfg.genesis_hash {
            return;
        }
        match qc.verify() {
            Ok(n) if n > 0 => {
                let newer = self
                    .last_qc
                    .as_ref()
                    .is_none_or(|q| q.round() < qc.round() || q.signatures.len() < n);
                if newer {
                    tracing::debug!(round = qc.round(), signatures = n, "certificate");
                    if qc.round().checked_add(1) == Some(self.round)
                        && qc.model_hash() == self.model_hash()
                    {
                        self.last_qc = Some(qc.clone());
                        let _ = self.publish_state();
                    } else if qc.round() >= self.round {
                        self.st.certificate = Some(qc.clone());
                    }
                }
                if qc.round() == self.round {
                    self.st.certificate = Some(qc);
                }
            }
            _ => {
                Metrics::inc(&self.metrics().messages_rejected);
                tracing::warn!("invalid certificate");
            }
        }
    }

    fn on_body(&mut self, from: PeerId, who: PublicKey, body: Body) {
        if matches!(body, Body::Ready { .. } | Body::Proposal { .. }) && !self.is_member(&who) {
            Metrics::inc(&self.net.metrics().messages_rejected);
            tracing::warn!(who = %short(&who), "ignoring a peer that has not joined the job on-chain");
            return;
        }
        if let Body::Proposal {
            attempt,
            participants,
        } = &body
        {
            if let Err(why) = self.check_proposal(*attempt, participants) {
                Metrics::inc(&self.net.metrics().messages_rejected);
                tracing::warn!(who = %short(&who), "invalid proposal: {why}");
                return;
            }
        }
        let st = &mut self.st;
        match body {
            Body::Hello { .. } => {}
            Body::Ready {
                attempt,
                samples,
                len,
                compression,
                root,
                base_model,
                ..
            } => {
                if st.base_model.is_some_and(|b| b != base_model) {
                    Metrics::inc(&self.net.metrics().messages_rejected);
                    tracing::warn!(who = %short(&who), "ready on another base model (lagging peer); not mixing it in");
                    return;
                }
                if let Some(prev) = st.roots.get(&who) {
                    if *prev != root {
                        if st.equivocators.insert(who) {
                            Metrics::inc(&self.net.metrics().equivocations);
                            tracing::warn!(who = %short(&who), round = self.round, "equivocation: two different updates in one round; excluding sender");
                        }
                        return;
                    }
                } else {
                    st.roots.insert(who, root);
                }
                st.readies.insert(
                    (attempt, who),
                    ReadyInfo {
                        peer_id: from,
                        samples,
                        len,
                        compression,
                        root,
                        base_model,
                    },
                );
            }
            Body::Proposal {
                attempt,
                participants,
            } => {
                let valid = participants.first().map(|p| p.who) == Some(who)
                    && participants
                        .windows(2)
                        .all(|w| w.first().map(|a| a.who) < w.get(1).map(|b| b.who));
                if !valid {
                    Metrics::inc(&self.net.metrics().messages_rejected);
                    tracing::warn!(who = %short(&who), "invalid proposal");
                    return;
                }
                let better = st.proposals.get(&attempt).is_none_or(|(p, _)| who < *p);
                if better {
                    st.proposals.insert(attempt, (who, participants));
                }
            }
            body @ (Body::Chunk { .. } | Body::Norms { .. } | Body::Reduced { .. }) => {
                self.on_exchange(who, body)
            }
            Body::SigShare {
                model_hash,
                included,
                metric,
                sig,
            } => {
                st.sigshares
                    .insert(who, (model_hash, included, metric, sig));
            }
            Body::Certificate(qc) => self.on_certificate(qc),
        }
    }

    /// An exchange message: checked against its attempt's agreed proposal, or kept until
    /// this peer agrees on that attempt.
    fn on_exchange(&mut self, who: PublicKey, body: Body) {
        let Some((attempt, _, _)) = body.exchange_key() else {
            return;
        };
        if attempt >= self.cfg.max_attempts {
            return self.reject_exchange(&who, &body, "attempt beyond the last one");
        }
        if self.st.agreed.contains_key(&attempt) {
            return self.accept_exchange(who, body);
        }
        if self.st.early.len() < EARLY_CAP {
            self.st
                .early
                .entry((attempt, who, body.kind()))
                .or_insert(body);
        }
    }

    /// Store an exchange message if its sender may send it in the agreed proposal (a
    /// participant for `Chunk`, the chunk's owner for `Norms` / `Reduced`); first message
    /// per slot wins, so only the owner can fill a chunk's slot.
    fn accept_exchange(&mut self, who: PublicKey, body: Body) {
        let Some((attempt, proposal, chunk)) = body.exchange_key() else {
            return;
        };
        let verdict = match self.st.agreed.get(&attempt) {
            Some((agreed, parts)) => check_exchange(agreed, parts, &who, proposal, chunk),
            None => Err("no agreed proposal for the attempt"),
        };
        if let Err(why) = verdict {
            return self.reject_exchange(&who, &body, why);
        }
        let st = &mut self.st;
        match body {
            Body::Chunk {
                first_block,
                blocks,
                proof,
                ..
            } => {
                st.chunks
                    .entry((attempt, who))
                    .or_insert((first_block, blocks, proof));
            }
            Body::Norms { chunk, stats, .. } => {
                st.norms.entry((attempt, chunk)).or_insert(stats);
            }
            Body::Reduced { chunk, blocks, .. } => {
                st.reduced.entry((attempt, chunk)).or_insert(blocks);
            }
            _ => {}
        }
    }

    fn reject_exchange(&self, who: &PublicKey, body: &Body, why: &str) {
        Metrics::inc(&self.metrics().exchange_rejected);
        Metrics::inc(&self.metrics().messages_rejected);
        let (attempt, chunk) = body
            .exchange_key()
            .map(|(a, _, c)| (a, c))
            .unwrap_or_default();
        tracing::warn!(who = %short(who), kind = body.kind(), round = self.round, attempt, ?chunk, "rejected exchange message: {why}");
    }

    /// Fix the proposal followed in `attempt` and check the exchange messages that arrived
    /// before it. Returns the proposal's hash (sent in this peer's exchange messages).
    fn begin_exchange(&mut self, attempt: u32, parts: &[Participant]) -> Hash32 {
        let hash = proposal_hash(self.round, attempt, parts);
        self.st.agreed.insert(attempt, (hash, parts.to_vec()));
        let early: Vec<_> = self
            .st
            .early
            .keys()
            .filter(|k| k.0 == attempt)
            .copied()
            .collect();
        for k in early {
            if let Some(body) = self.st.early.remove(&k) {
                self.accept_exchange(k.1, body);
            }
        }
        hash
    }

    /// Process events until `cond` holds or `deadline` passes. Returns whether `cond` held.
    async fn wait_until(
        &mut self,
        deadline: Instant,
        cond: impl Fn(&Self) -> bool,
    ) -> Result<bool> {
        loop {
            if cond(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            match tokio::time::timeout(deadline - now, self.events.recv()).await {
                Ok(Some(ev)) => self.ingest(ev),
                Ok(None) => bail!("network task stopped"),
                Err(_) => return Ok(cond(self)),
            }
        }
    }

    /// Keep handling network events (hellos, early messages for the next round) until `until`,
    /// without starting a round.
    pub async fn idle(&mut self, until: Instant) -> Result<()> {
        self.wait_until(until, |_| false).await.map(|_| ())
    }

    /// Drain pending events without waiting.
    fn drain(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.ingest(ev);
        }
    }

    // ---------------------------------------------------------------- sync

    /// Keys expected to contribute to the current round (connected, announced, joined).
    fn expected(&self) -> BTreeSet<PublicKey> {
        let mut s: BTreeSet<PublicKey> = self
            .bindings
            .iter()
            .filter(|(k, p)| {
                self.connected.contains(p) && self.joining.get(*k).is_some_and(|j| *j <= self.round)
            })
            .map(|(k, _)| *k)
            .collect();
        s.insert(self.me);
        s
    }

    /// Connect, then adopt the most advanced verified state any connected peer serves (or
    /// keep the initial model if none has one). Announces this peer afterwards.
    pub async fn sync(&mut self, wait_for_peers: Duration) -> Result<()> {
        let deadline = Instant::now() + wait_for_peers;
        self.wait_until(deadline, |s| !s.connected.is_empty())
            .await?;
        // Let identify/kad connect the rest.
        let settle = Instant::now() + Duration::from_millis(500);
        self.idle(settle).await?;
        self.resync().await
    }

    /// Adopt the most advanced verified state any connected peer serves, then announce.
    pub async fn resync(&mut self) -> Result<()> {
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        let mut best: Option<(StateSnapshot, Vec<f32>)> = None;
        for p in peers {
            let bytes = match self.net.fetch_state(p).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(%p, "state fetch: {e}");
                    continue;
                }
            };
            match self.check_snapshot(&bytes) {
                Ok((snap, params)) => {
                    if best
                        .as_ref()
                        .is_none_or(|(b, _)| snap.next_round > b.next_round)
                    {
                        best = Some((snap, params));
                    }
                }
                Err(e) => {
                    Metrics::inc(&self.metrics().messages_rejected);
                    tracing::warn!(%p, "rejected state: {e}");
                }
            }
        }
        if let Some((snap, params)) = best {
            if snap.next_round > self.round {
                tracing::info!(
                    round = snap.next_round,
                    model_hash = %hex::encode(snap.model_hash),
                    certified = snap.certificate.is_some(),
                    "synced model state from a peer"
                );
                Metrics::inc(&self.metrics().state_syncs);
                self.model = params;
                self.set_round(snap.next_round);
                self.last_qc = snap.certificate;
                self.ef.reset();
            }
        }
        self.publish_state()?;
        self.hello()?;
        Ok(())
    }

    fn check_snapshot(&self, bytes: &[u8]) -> Result<(StateSnapshot, Vec<f32>)> {
        let snap = StateSnapshot::decode(&mut &bytes[..])
            .map_err(|e| anyhow!("undecodable state: {e}"))?;
        if snap.job != self.cfg.job_id {
            bail!("state of another job");
        }
        if snap.params.len() != self.model.len() {
            bail!(
                "state has {} params, expected {}",
                snap.params.len(),
                self.model.len()
            );
        }
        let params: Vec<f32> = snap.params.iter().map(|b| f32::from_bits(*b)).collect();
        let h = match &self.trainer {
            Some(t) => t.model_hash(&params),
            None => crate::update::state_hash(&params),
        };
        if h != snap.model_hash {
            bail!(
                "model hash mismatch: computed {} vs claimed {}",
                hex::encode(h),
                hex::encode(snap.model_hash)
            );
        }
        if let Some(qc) = &snap.certificate {
            if qc.model_hash() != h || qc.round().checked_add(1) != Some(snap.next_round) {
                bail!("certificate does not match the state");
            }
            if qc.payload.genesis_hash != self.cfg.genesis_hash || qc.job_id() != self.cfg.job_id {
                bail!("certificate of another chain/job");
            }
            let n = qc.verify()?;
            let trusted = self
                .chain
                .as_ref()
                .and_then(|c| c.latest_model)
                .is_some_and(|m| m == h);
            // A state is adopted on a quorum (two thirds of the included peers) or because the
            // chain finalised exactly this model; one signature is not enough.
            let quorum = (qc.included().len() * 2).div_ceil(3).max(1);
            if n < quorum && !trusted {
                bail!(
                    "certificate with {n} of {} signatures (quorum {quorum})",
                    qc.included().len()
                );
            }
        } else if snap.next_round > 0 {
            bail!(
                "state of round {} comes without a certificate",
                snap.next_round
            );
        }
        Ok((snap, params))
    }

    // ---------------------------------------------------------------- round

    /// Run one round. Returns the report (an error means the round produced no aggregate;
    /// the model is unchanged and the next call runs the next round).
    pub async fn run_round(&mut self) -> Result<RoundReport> {
        let t0 = Instant::now();
        let sent0 = self.metrics().bytes_sent.load(Relaxed);
        let recv0 = self.metrics().bytes_received.load(Relaxed);
        let future = std::mem::take(&mut self.future);
        for (from, gossip, env) in future {
            self.ingest_envelope(from, gossip, env);
        }
        let round = self.round;
        // Only updates trained from this model take part.
        let base_model = self.model_hash();
        self.st.base_model = Some(base_model);
        let stale: Vec<PublicKey> = self
            .st
            .readies
            .iter()
            .filter(|(_, r)| r.base_model != base_model)
            .map(|((_, who), _)| *who)
            .collect();
        if !stale.is_empty() {
            tracing::warn!(round, n = stale.len(), "ignoring ready peers on another base model");
            self.st.readies.retain(|_, r| r.base_model == base_model);
            for who in &stale {
                self.st.roots.remove(who);
            }
        }
        if round == 0 {
            let need = self.cfg.initial_peers;
            let dl = Instant::now() + self.cfg.round_timeout * 3;
            let ok = self.wait_until(dl, |s| s.expected().len() >= need).await?;
            if !ok {
                tracing::warn!(
                    have = self.expected().len(),
                    need,
                    "starting round 0 without all initial peers"
                );
            }
        }

        // 1. Train off the network task, keep handling events meanwhile.
        let tc = Instant::now();
        let mut trainer = self.trainer.take().context("trainer busy")?;
        let model = self.model.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            let r = trainer.train(&model, round);
            (trainer, r)
        });
        let (trainer, trained) = loop {
            tokio::select! {
                r = &mut job => break r.map_err(|e| anyhow!("training task: {e}"))?,
                ev = self.events.recv() => match ev {
                    Some(ev) => self.ingest(ev),
                    None => bail!("network task stopped"),
                },
            }
        };
        self.trainer = Some(trainer);
        let mut local = trained?;
        let compute_ms = elapsed_ms(tc);
        match self.cfg.byzantine {
            Some(Byzantine::Scale(f)) => local.delta.iter_mut().for_each(|x| *x *= f),
            Some(Byzantine::Nan) => local
                .delta
                .iter_mut()
                .step_by(7)
                .for_each(|x| *x = f32::NAN),
            None => {}
        }
        let (mine, _decoded) = self.ef.compress(self.cfg.compression, &local.delta)?;
        let root = mine.root();
        let update_bytes = mine.byte_len() as u64;
        let len = u32::try_from(self.model.len()).context("model too large")?;

        // 2–3. Agree and exchange, with retries.
        let mut suspects: BTreeSet<PublicKey> = std::mem::take(&mut self.excluded);
        suspects.remove(&self.me);
        let mut outcome = None;
        for attempt in 0..self.cfg.max_attempts {
            let ready = Body::Ready {
                attempt,
                peer_id: peer_id_bytes(&self.net.local_peer_id()),
                samples: local.samples,
                len,
                compression: self.cfg.compression.tag(),
                root,
                base_model,
            };
            self.st.roots.insert(self.me, root);
            self.st.readies.insert(
                (attempt, self.me),
                ReadyInfo {
                    peer_id: self.net.local_peer_id(),
                    samples: local.samples,
                    len,
                    compression: self.cfg.compression.tag(),
                    root,
                    base_model,
                },
            );
            self.st.suspects_reported.extend(suspects.iter().copied());
            self.net.publish(self.seal(&ready))?;
            let Some(participants) = self.agree(attempt, &suspects).await? else {
                // Not a participant this round: follow the result.
                return self.observe(round, t0, sent0, recv0, compute_ms).await;
            };
            match self.exchange(attempt, &participants, &mine).await? {
                Ok(agg) => {
                    outcome = Some((attempt, participants, agg));
                    break;
                }
                Err(missing) => {
                    tracing::warn!(
                        round,
                        attempt,
                        missing = ?missing.iter().map(short).collect::<Vec<_>>(),
                        "exchange attempt timed out; retrying without the missing peers"
                    );
                    suspects.extend(missing);
                }
            }
        }
        let Some((attempt, participants, (agg, accepted, rejected))) = outcome else {
            Metrics::inc(&self.metrics().rounds_failed);
            self.set_round(round + 1);
            self.publish_state()?;
            bail!(
                "round {round} failed after {} attempts",
                self.cfg.max_attempts
            );
        };

        // 4. Apply, hash, evaluate, sign (with this peer's own metric), certify.
        for (m, a) in self.model.iter_mut().zip(&agg) {
            *m += a;
        }
        let model_hash = self.model_hash();
        let update_roots: Vec<(PublicKey, Hash32)> =
            participants.iter().map(|p| (p.who, p.root)).collect();
        let included: Vec<IncludedShare<PublicKey>> = accepted
            .iter()
            .map(|a| IncludedShare {
                who: a.who,
                samples: a.samples,
                update_hash: update_roots
                    .iter()
                    .find(|(w, _)| *w == a.who)
                    .map_or([0u8; 32], |(_, r)| *r),
            })
            .collect();
        // The holder (lowest included key) is the payload's submitter: it earns the
        // submitter share whoever sends the extrinsic.
        let holder = included.first().map(|s| s.who);
        let payload = AggregatePayload::new(
            self.cfg.genesis_hash,
            self.cfg.job_id,
            round,
            model_hash,
            holder.unwrap_or(self.me),
            included.clone(),
        );
        let eval = self.evaluate_model().await?;
        let mine = Endorsement {
            who: self.me,
            metric: eval.map(metric_ppm),
            signature: self.cfg.keys.sign_payload(&payload, eval.map(metric_ppm)),
        };
        let sig = mine.signature;
        let my_included = included.iter().any(|s| s.who == self.me);
        let mut certificate = None;
        let mut cert_msg = None;
        if holder == Some(self.me) {
            let qc = self.collect_certificate(payload.clone(), mine).await?;
            cert_msg = Some(self.seal(&Body::Certificate(qc.clone())));
            certificate = Some(qc);
        } else if let (Some(h), true) = (holder, my_included) {
            self.send_to(
                &h,
                &Body::SigShare {
                    model_hash,
                    included: included.clone(),
                    metric: mine.metric,
                    sig,
                },
            );
        }
        self.last_qc = certificate
            .clone()
            .or_else(|| self.st.certificate.clone().filter(|q| q.round() == round));
        self.set_round(round + 1);
        if self.last_qc.is_none() {
            // Serve our own signature as a (partial) certificate until the full one arrives.
            let mut qc = QuorumCertificate::new(payload.clone());
            if my_included {
                qc.add(mine)?;
            }
            self.last_qc = Some(qc);
        }
        self.publish_state()?;
        if let Some(m) = cert_msg {
            // After the new state is served, so followers can fetch it right away.
            self.net.publish(m)?;
        }
        Metrics::inc(&self.metrics().rounds_completed);
        let report = RoundReport {
            round,
            attempt,
            participated: true,
            included,
            update_roots,
            rejected: rejected.iter().map(|(w, r)| (*w, r.to_string())).collect(),
            model_hash,
            signature: Some(sig),
            certificate,
            payload: Some(payload),
            bytes_sent: self.metrics().bytes_sent.load(Relaxed) - sent0,
            bytes_received: self.metrics().bytes_received.load(Relaxed) - recv0,
            update_bytes,
            compute_ms,
            network_ms: elapsed_ms(t0).saturating_sub(compute_ms),
            train_loss: Some(local.train_loss),
            eval,
        };
        log_report(&report);
        Ok(report)
    }

    /// Evaluate the current model on this peer's test set (off the async runtime).
    async fn evaluate_model(&mut self) -> Result<Option<(f32, f32)>> {
        let Some(mut t) = self.trainer.take() else {
            return Ok(None);
        };
        let m = self.model.clone();
        let (t, e) = tokio::task::spawn_blocking(move || {
            let e = t.evaluate(&m);
            (t, e)
        })
        .await
        .map_err(|e| anyhow!("eval task: {e}"))?;
        self.trainer = Some(t);
        Ok(e)
    }

    /// As certificate holder: wait (bounded) for every included peer's endorsement of
    /// `payload` and assemble the certificate from the valid ones.
    async fn collect_certificate(
        &mut self,
        payload: AggregatePayload<PublicKey>,
        mine: Endorsement,
    ) -> Result<QuorumCertificate> {
        let mut qc = QuorumCertificate::new(payload);
        qc.add(mine)?;
        let dl = Instant::now() + self.cfg.round_timeout.min(Duration::from_secs(10));
        let want: Vec<PublicKey> = qc.payload.included.iter().map(|s| s.who).collect();
        self.wait_until(dl, |s| {
            want.iter()
                .all(|w| *w == s.me || s.st.sigshares.contains_key(w))
        })
        .await?;
        for (who, (h, inc, metric, signature)) in self.st.sigshares.clone() {
            if h != qc.payload.model_hash || inc != qc.payload.included {
                tracing::warn!(who = %short(&who), "signature over a different aggregate (diverged peer)");
                continue;
            }
            if let Err(e) = qc.add(Endorsement {
                who,
                metric,
                signature,
            }) {
                tracing::warn!("{e}");
            }
        }
        if !qc.is_complete() {
            tracing::warn!(
                have = qc.signatures.len(),
                want = qc.payload.included.len(),
                "incomplete certificate"
            );
        }
        Ok(qc)
    }

    /// Keys not eligible this attempt (suspected, reported, equivocating).
    fn excluded(&self, local_suspects: &BTreeSet<PublicKey>) -> BTreeSet<PublicKey> {
        local_suspects
            .iter()
            .chain(self.st.suspects_reported.iter())
            .chain(self.st.equivocators.iter())
            .copied()
            .filter(|k| *k != self.me)
            .collect()
    }

    /// Who should propose: the lowest key among expected, eligible peers.
    fn proposer(&self, local_suspects: &BTreeSet<PublicKey>) -> PublicKey {
        let excluded = self.excluded(local_suspects);
        self.expected()
            .difference(&excluded)
            .next()
            .copied()
            .unwrap_or(self.me)
    }

    fn ready_keys(
        &self,
        attempt: u32,
        local_suspects: &BTreeSet<PublicKey>,
    ) -> BTreeSet<PublicKey> {
        let excluded = self.excluded(local_suspects);
        self.st
            .readies
            .keys()
            .filter(|(a, k)| *a == attempt && !excluded.contains(k))
            .map(|(_, k)| *k)
            .collect()
    }

    /// Wait for the attempt's proposal (or make it). `None`: we are not a participant.
    async fn agree(
        &mut self,
        attempt: u32,
        my_suspects: &BTreeSet<PublicKey>,
    ) -> Result<Option<Vec<Participant>>> {
        let timeout = self.cfg.round_timeout;
        let ready_deadline = Instant::now() + timeout;
        let mut local_suspects = my_suspects.clone();
        // Round 0 also waits for the configured number of initial peers to be ready.
        let initial = if self.round == 0 {
            self.cfg.initial_peers
        } else {
            0
        };
        loop {
            let proposer = self.proposer(&local_suspects);
            if proposer == self.me {
                let ls = &local_suspects;
                let all_ready = |s: &Self| {
                    let r = s.ready_keys(attempt, ls);
                    let ex = s.excluded(ls);
                    r.len() >= initial && s.expected().difference(&ex).all(|k| r.contains(k))
                };
                self.wait_until(ready_deadline, |s| {
                    all_ready(s) || s.st.proposals.contains_key(&attempt)
                })
                .await?;
                if let Some(p) = self.take_proposal(attempt) {
                    return Ok(p);
                }
                let excluded = self.excluded(&local_suspects);
                let mut participants = self.build_proposal(attempt, &excluded);
                if participants.len() < self.cfg.min_peers {
                    tracing::warn!(
                        have = participants.len(),
                        min = self.cfg.min_peers,
                        "not enough ready peers"
                    );
                    let more = Instant::now() + timeout;
                    let min = self.cfg.min_peers;
                    self.wait_until(more, |s| s.ready_keys(attempt, ls).len() >= min)
                        .await?;
                    participants = self.build_proposal(attempt, &excluded);
                    if participants.len() < min {
                        bail!(
                            "round {}: only {} ready peers, need {}",
                            self.round,
                            participants.len(),
                            min
                        );
                    }
                }
                return self.propose(attempt, participants).map(Some);
            }
            // Wait for the proposer; if it stays silent past the deadline, suspect it.
            let dl = ready_deadline.max(Instant::now()) + timeout / 2;
            let ls = &local_suspects;
            let got = self
                .wait_until(dl, |s| {
                    s.st.proposals.contains_key(&attempt) || s.proposer(ls) != proposer
                })
                .await?;
            if let Some(p) = self.take_proposal(attempt) {
                return Ok(p);
            }
            if !got {
                tracing::warn!(proposer = %short(&proposer), "no proposal in time; suspecting the proposer");
                local_suspects.insert(proposer);
            }
        }
    }

    /// A proposal may only list members of the job, each exactly as its own signed `Ready`
    /// for the attempt said (root, samples, peer id), where this peer has that `Ready`.
    fn check_proposal(&self, attempt: u32, participants: &[Participant]) -> Result<(), String> {
        for p in participants {
            if !self.is_member(&p.who) {
                return Err(format!("lists {}, not a member of the job", short(&p.who)));
            }
            if let Some(r) = self.st.readies.get(&(attempt, p.who)) {
                let same = r.root == p.root
                    && r.samples == p.samples
                    && peer_id_bytes(&r.peer_id) == p.peer_id;
                if !same {
                    return Err(format!("misstates the ready message of {}", short(&p.who)));
                }
            }
        }
        Ok(())
    }

    fn take_proposal(&mut self, attempt: u32) -> Option<Option<Vec<Participant>>> {
        let (proposer, parts) = self.st.proposals.get(&attempt)?.clone();
        tracing::debug!(proposer = %short(&proposer), n = parts.len(), attempt, "proposal");
        if parts.iter().any(|p| p.who == self.me) {
            for p in &parts {
                if let Ok(pid) = PeerId::from_bytes(&p.peer_id) {
                    self.bindings.entry(p.who).or_insert(pid);
                }
            }
            Some(Some(parts))
        } else {
            Some(None)
        }
    }

    fn build_proposal(&mut self, attempt: u32, excluded: &BTreeSet<PublicKey>) -> Vec<Participant> {
        let len = self.model.len() as u32;
        let tag = self.cfg.compression.tag();
        let mut out = Vec::new();
        for ((a, who), r) in &self.st.readies {
            if *a != attempt || excluded.contains(who) {
                continue;
            }
            let reachable = *who == self.me
                || self
                    .bindings
                    .get(who)
                    .is_some_and(|p| self.connected.contains(p));
            if !reachable {
                tracing::warn!(who = %short(who), "leaving out a ready peer that disconnected");
                continue;
            }
            if r.len != len || r.compression != tag {
                Metrics::inc(&self.net.metrics().updates_rejected);
                tracing::warn!(who = %short(who), len = r.len, compression = r.compression, "rejecting update of the wrong shape");
                continue;
            }
            out.push(Participant {
                who: *who,
                peer_id: peer_id_bytes(&r.peer_id),
                samples: r.samples,
                root: r.root,
            });
        }
        out
    }

    fn propose(
        &mut self,
        attempt: u32,
        participants: Vec<Participant>,
    ) -> Result<Vec<Participant>> {
        tracing::info!(
            round = self.round,
            attempt,
            n = participants.len(),
            "proposing participant set"
        );
        self.net.publish(self.seal(&Body::Proposal {
            attempt,
            participants: participants.clone(),
        }))?;
        self.st
            .proposals
            .insert(attempt, (self.me, participants.clone()));
        Ok(participants)
    }

    /// Follow a round we are not part of: wait for its certificate, then fetch the state.
    async fn observe(
        &mut self,
        round: RoundIndex,
        t0: Instant,
        sent0: u64,
        recv0: u64,
        compute_ms: u64,
    ) -> Result<RoundReport> {
        tracing::info!(round, "not a participant this round; following the result");
        let dl = Instant::now() + self.cfg.round_timeout * 3;
        self.wait_until(dl, |s| {
            s.st.certificate
                .as_ref()
                .is_some_and(|q| q.round() == round)
        })
        .await?;
        let fetched = match self.st.certificate.clone() {
            Some(qc) => self.fetch_round_state(&qc, round).await,
            None => Err(anyhow!("no certificate for round {round}")),
        };
        let (qc, snap, params) = match fetched {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("could not follow round {round}: {e:#}; resyncing from any peer");
                self.resync().await?;
                bail!(
                    "round {round}: not a participant; resynced to round {}",
                    self.round
                );
            }
        };
        Metrics::inc(&self.metrics().state_syncs);
        self.model = params;
        self.set_round(round + 1);
        self.last_qc = snap.certificate;
        self.ef.reset();
        self.publish_state()?;
        self.hello()?;
        let report = RoundReport {
            round,
            attempt: 0,
            participated: false,
            included: qc.included().to_vec(),
            update_roots: Vec::new(),
            rejected: Vec::new(),
            model_hash: snap.model_hash,
            signature: None,
            certificate: None,
            payload: Some(qc.payload.clone()),
            bytes_sent: self.metrics().bytes_sent.load(Relaxed) - sent0,
            bytes_received: self.metrics().bytes_received.load(Relaxed) - recv0,
            update_bytes: 0,
            compute_ms,
            network_ms: elapsed_ms(t0).saturating_sub(compute_ms),
            train_loss: None,
            eval: None,
        };
        log_report(&report);
        Ok(report)
    }

    /// Fetch the state certified by `qc` from an included peer (retrying briefly while the
    /// peers publish it).
    async fn fetch_round_state(
        &mut self,
        qc: &QuorumCertificate,
        round: RoundIndex,
    ) -> Result<(QuorumCertificate, StateSnapshot, Vec<f32>)> {
        let dl = Instant::now() + self.cfg.round_timeout;
        loop {
            for s in qc.included() {
                let Some(peer) = self.bindings.get(&s.who).copied() else {
                    continue;
                };
                let Ok(Some(bytes)) = self.net.fetch_state(peer).await else {
                    continue;
                };
                match self.check_snapshot(&bytes) {
                    Ok((snap, params))
                        if snap.next_round == round + 1 && snap.model_hash == qc.model_hash() =>
                    {
                        return Ok((qc.clone(), snap, params));
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("rejected state: {e}"),
                }
            }
            if Instant::now() >= dl {
                bail!("no included peer served the certified state of round {round}");
            }
            let pause = Instant::now() + Duration::from_millis(200);
            self.idle(pause).await?;
        }
    }

    /// Exchange updates of one attempt. `Ok(Err(missing))` when the attempt timed out.
    #[allow(clippy::type_complexity)]
    async fn exchange(
        &mut self,
        attempt: u32,
        parts: &[Participant],
        mine: &Compressed,
    ) -> Result<
        std::result::Result<
            (
                Vec<f32>,
                Vec<Accepted>,
                Vec<(PublicKey, aggregate::Rejection)>,
            ),
            Vec<PublicKey>,
        >,
    > {
        let n = parts.len();
        let len = self.model.len();
        let nb = compress::block_count(len);
        let me = self.me;
        let my_idx = parts
            .iter()
            .position(|p| p.who == me)
            .context("not a participant")?;
        let proposal = self.begin_exchange(attempt, parts);
        let deadline = Instant::now() + self.cfg.round_timeout;
        let comp = self.cfg.compression;
        let leaves = mine.leaf_hashes();
        match self.cfg.scheme {
            Scheme::AllToAll => {
                let body = Body::Chunk {
                    attempt,
                    proposal,
                    first_block: 0,
                    blocks: mine.blocks.clone(),
                    proof: Vec::new(),
                };
                let bytes = self.seal(&body);
                for p in parts.iter().filter(|p| p.who != me) {
                    if let Some(pid) = self.bindings.get(&p.who) {
                        let _ = self.net.send_nowait(*pid, bytes.clone());
                    }
                }
                self.st
                    .chunks
                    .insert((attempt, me), (0, mine.blocks.clone(), Vec::new()));
                let others: Vec<PublicKey> = parts.iter().map(|p| p.who).collect();
                let ok = self
                    .wait_until(deadline, |s| {
                        others
                            .iter()
                            .all(|w| s.st.chunks.contains_key(&(attempt, *w)))
                    })
                    .await?;
                if !ok {
                    let missing = others
                        .into_iter()
                        .filter(|w| !self.st.chunks.contains_key(&(attempt, *w)))
                        .collect();
                    return Ok(Err(missing));
                }
                let mut stats = Vec::new();
                let mut decoded: Vec<Vec<f32>> = Vec::new();
                for p in parts {
                    let (first, blocks, _) = self
                        .st
                        .chunks
                        .get(&(attempt, p.who))
                        .cloned()
                        .unwrap_or_default();
                    let ok = first == 0
                        && blocks.len() == nb
                        && compress::merkle_root(&compress::leaf_hashes(&blocks)) == p.root;
                    let vals = if ok {
                        compress::decode_blocks(comp, len, 0, &blocks).ok()
                    } else {
                        None
                    };
                    match vals {
                        Some(v) => {
                            stats.push(Stat::of(p.who, p.samples, &v, len));
                            decoded.push(v);
                        }
                        None => {
                            tracing::warn!(who = %short(&p.who), "update does not match its announced root or is malformed");
                            stats.push(Stat {
                                who: p.who,
                                samples: p.samples,
                                sq_norm: 0.0,
                                finite: true,
                                well_formed: false,
                            });
                            decoded.push(Vec::new());
                        }
                    }
                }
                let screening = aggregate::screen(&stats, &self.cfg.robust);
                self.count_rejections(&screening.rejected);
                if screening.accepted.is_empty() {
                    bail!("every update was rejected");
                }
                let cols: Vec<&[f32]> = screening
                    .accepted
                    .iter()
                    .filter_map(|a| {
                        parts
                            .iter()
                            .position(|p| p.who == a.who)
                            .and_then(|i| decoded.get(i))
                            .map(|v| v.as_slice())
                    })
                    .collect();
                let agg = aggregate::aggregate_columns(
                    self.cfg.robust.aggregator,
                    &screening.accepted,
                    &cols,
                )?;
                Ok(Ok((agg, screening.accepted, screening.rejected)))
            }
            Scheme::Chunked => {
                // Reduce-scatter: chunk c goes to its owner parts[c].
                for (c, p) in parts.iter().enumerate() {
                    let b = compress::chunk_blocks(nb, n, c);
                    let blocks = mine.blocks.get(b.clone()).unwrap_or_default().to_vec();
                    let proof = compress::range_proof(&leaves, b.start, b.end);
                    let body = Body::Chunk {
                        attempt,
                        proposal,
                        first_block: b.start as u32,
                        blocks,
                        proof,
                    };
                    if p.who == me {
                        if let Body::Chunk {
                            first_block,
                            blocks,
                            proof,
                            ..
                        } = body
                        {
                            self.st
                                .chunks
                                .insert((attempt, me), (first_block, blocks, proof));
                        }
                    } else {
                        self.send_to(&p.who, &body);
                    }
                }
                // As owner: wait for chunks (half the deadline), then report statistics.
                let senders: Vec<PublicKey> = parts.iter().map(|p| p.who).collect();
                let half = Instant::now() + self.cfg.round_timeout / 2;
                self.wait_until(half, |s| {
                    senders
                        .iter()
                        .all(|w| s.st.chunks.contains_key(&(attempt, *w)))
                })
                .await?;
                let my_blocks = compress::chunk_blocks(nb, n, my_idx);
                let my_elems = compress::chunk_elems(len, n, my_idx);
                let mut my_cols: Vec<Option<Vec<f32>>> = Vec::new();
                let mut my_stats = Vec::new();
                for p in parts {
                    let got =
                        self.st
                            .chunks
                            .get(&(attempt, p.who))
                            .and_then(|(first, blocks, proof)| {
                                if *first as usize != my_blocks.start
                                    || blocks.len() != my_blocks.len()
                                    || blocks.is_empty()
                                {
                                    return None;
                                }
                                let root = compress::root_from_range(
                                    nb,
                                    my_blocks.start,
                                    &compress::leaf_hashes(blocks),
                                    proof,
                                )
                                .ok()?;
                                if root != p.root {
                                    return None;
                                }
                                let v = compress::decode_blocks(comp, len, my_blocks.start, blocks)
                                    .ok()?;
                                (v.len() == my_elems.len()).then_some(v)
                            });
                    let got = if my_blocks.is_empty() {
                        Some(Vec::new())
                    } else {
                        got
                    };
                    let (sq, finite) = got
                        .as_deref()
                        .map(aggregate::partial_stat)
                        .unwrap_or((0.0, true));
                    if got.is_none() {
                        tracing::warn!(who = %short(&p.who), "chunk missing, malformed or not matching its root");
                    }
                    my_stats.push(ChunkStat {
                        who: p.who,
                        sq_norm_bits: sq.to_bits(),
                        finite,
                        well_formed: got.is_some(),
                    });
                    my_cols.push(got);
                }
                let norms = Body::Norms {
                    attempt,
                    proposal,
                    chunk: my_idx as u32,
                    stats: my_stats.clone(),
                };
                for p in parts.iter().filter(|p| p.who != me) {
                    self.send_to(&p.who, &norms);
                }
                self.st.norms.insert((attempt, my_idx as u32), my_stats);
                let ok = self
                    .wait_until(deadline, |s| {
                        (0..n as u32).all(|c| s.st.norms.contains_key(&(attempt, c)))
                    })
                    .await?;
                if !ok {
                    let missing = (0..n as u32)
                        .filter(|c| !self.st.norms.contains_key(&(attempt, *c)))
                        .filter_map(|c| parts.get(c as usize).map(|p| p.who))
                        .collect();
                    return Ok(Err(missing));
                }
                // Every peer combines the same reports into the same screening.
                let mut stats = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    let mut sq = 0f64;
                    let mut finite = true;
                    let mut well_formed = true;
                    for c in 0..n as u32 {
                        match self.st.norms.get(&(attempt, c)).and_then(|v| v.get(i)) {
                            Some(cs) if cs.who == p.who => {
                                sq += f64::from_bits(cs.sq_norm_bits);
                                finite &= cs.finite;
                                well_formed &= cs.well_formed;
                            }
                            _ => well_formed = false,
                        }
                    }
                    stats.push(Stat {
                        who: p.who,
                        samples: p.samples,
                        sq_norm: sq,
                        finite,
                        well_formed,
                    });
                }
                let screening = aggregate::screen(&stats, &self.cfg.robust);
                self.count_rejections(&screening.rejected);
                if screening.accepted.is_empty() {
                    bail!("every update was rejected");
                }
                // As owner: aggregate my chunk, all-gather it.
                let reduce_comp = match comp {
                    Compression::Fp16 | Compression::Int8 => comp,
                    _ => Compression::None,
                };
                let cols: Vec<&[f32]> = screening
                    .accepted
                    .iter()
                    .filter_map(|a| {
                        parts
                            .iter()
                            .position(|p| p.who == a.who)
                            .and_then(|i| my_cols.get(i))
                            .and_then(|c| c.as_deref())
                    })
                    .collect();
                let my_red = if my_elems.is_empty() {
                    Vec::new()
                } else {
                    aggregate::aggregate_columns(
                        self.cfg.robust.aggregator,
                        &screening.accepted,
                        &cols,
                    )?
                };
                let red_blocks: Vec<Vec<u8>> = my_blocks
                    .clone()
                    .map(|b| {
                        let r = compress::block_range(len, nb, b);
                        let off = my_elems.start;
                        reduce_comp.encode_block(
                            my_red.get(r.start - off..r.end - off).unwrap_or_default(),
                        )
                    })
                    .collect();
                let reduced = Body::Reduced {
                    attempt,
                    proposal,
                    chunk: my_idx as u32,
                    blocks: red_blocks.clone(),
                };
                for p in parts.iter().filter(|p| p.who != me) {
                    self.send_to(&p.who, &reduced);
                }
                self.st.reduced.insert((attempt, my_idx as u32), red_blocks);
                let ok = self
                    .wait_until(deadline, |s| {
                        (0..n as u32).all(|c| s.st.reduced.contains_key(&(attempt, c)))
                    })
                    .await?;
                if !ok {
                    let missing = (0..n as u32)
                        .filter(|c| !self.st.reduced.contains_key(&(attempt, *c)))
                        .filter_map(|c| parts.get(c as usize).map(|p| p.who))
                        .collect();
                    return Ok(Err(missing));
                }
                let mut agg = Vec::with_capacity(len);
                for c in 0..n {
                    let b = compress::chunk_blocks(nb, n, c);
                    let blocks = self
                        .st
                        .reduced
                        .get(&(attempt, c as u32))
                        .cloned()
                        .unwrap_or_default();
                    if blocks.len() != b.len() {
                        return Ok(Err(parts.get(c).map(|p| vec![p.who]).unwrap_or_default()));
                    }
                    match compress::decode_blocks(reduce_comp, len, b.start, &blocks) {
                        Ok(v) if v.iter().all(|x| x.is_finite()) => agg.extend(v),
                        _ => {
                            tracing::warn!(owner = c, "malformed reduced chunk");
                            return Ok(Err(parts.get(c).map(|p| vec![p.who]).unwrap_or_default()));
                        }
                    }
                }
                if agg.len() != len {
                    bail!("aggregate has {} values, expected {len}", agg.len());
                }
                Ok(Ok((agg, screening.accepted, screening.rejected)))
            }
        }
    }

    fn count_rejections(&self, rejected: &[(PublicKey, aggregate::Rejection)]) {
        for _ in rejected {
            Metrics::inc(&self.metrics().updates_rejected);
        }
    }

    /// Run `rounds` rounds (errors of single rounds are logged and skipped).
    pub async fn run(&mut self, rounds: RoundIndex) -> Result<Vec<RoundReport>> {
        let mut out = Vec::new();
        let mut failures = 0u32;
        while self.round < rounds {
            let round = self.round;
            match self.run_round().await {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(round, "round failed: {e:#}"),
            }
            // An error that leaves the round where it was (too few peers, a stopped network
            // task) is retried a few times, then the round is given up like a failed one:
            // the model stays, the next round starts. `run` always terminates.
            failures = if self.round == round { failures + 1 } else { 0 };
            if failures >= MAX_ROUND_RETRIES {
                tracing::warn!(round, "giving the round up after {failures} failed tries");
                Metrics::inc(&self.metrics().rounds_failed);
                self.set_round(round + 1);
                self.publish_state()?;
                failures = 0;
            }
            self.drain();
        }
        Ok(out)
    }
}

/// Whether `who` may send an exchange message bound to `proposal` (about `chunk`, for the
/// per-chunk messages) in an attempt whose agreed proposal has hash `agreed` and
/// participants `parts`: the hashes must match and the sender must be a participant
/// (`Chunk`) or the chunk's owner, participant number `chunk` (`Norms`, `Reduced`).
fn check_exchange(
    agreed: &Hash32,
    parts: &[Participant],
    who: &PublicKey,
    proposal: Hash32,
    chunk: Option<u32>,
) -> std::result::Result<(), &'static str> {
    if proposal != *agreed {
        return Err("bound to another proposal");
    }
    match chunk {
        None if parts.iter().any(|p| p.who == *who) => Ok(()),
        None => Err("sender is not a participant"),
        Some(c) if parts.get(c as usize).is_some_and(|p| p.who == *who) => Ok(()),
        Some(_) => Err("sender does not own the chunk"),
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
        network_ms = r.network_ms,
        train_loss = r.train_loss.unwrap_or(f32::NAN),
        eval_loss = r.eval.map(|e| e.0).unwrap_or(f32::NAN),
        accuracy = r.eval.map(|e| e.1).unwrap_or(f32::NAN),
        model_hash = %hex::encode(r.model_hash),
        "round complete"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn part(suri: &str) -> Participant {
        Participant {
            who: Keys::from_suri(suri).unwrap().public(),
            peer_id: Vec::new(),
            samples: 1,
            root: [0; 32],
        }
    }

    #[test]
    fn exchange_messages_only_from_owner_of_agreed_proposal() {
        let parts = vec![part("//Bob"), part("//Alice")];
        let (bob, alice) = (parts[0].who, parts[1].who);
        let eve = part("//Eve").who;
        let h = proposal_hash(0, 0, &parts);
        assert_eq!(check_exchange(&h, &parts, &bob, h, Some(0)), Ok(()));
        assert_eq!(check_exchange(&h, &parts, &alice, h, Some(1)), Ok(()));
        assert!(check_exchange(&h, &parts, &alice, h, Some(0)).is_err());
        assert!(check_exchange(&h, &parts, &eve, h, Some(0)).is_err());
        assert!(check_exchange(&h, &parts, &bob, h, Some(2)).is_err());
        assert!(check_exchange(&h, &parts, &bob, [1; 32], Some(0)).is_err());
        assert_eq!(check_exchange(&h, &parts, &alice, h, None), Ok(()));
        assert!(check_exchange(&h, &parts, &eve, h, None).is_err());
    }
}
