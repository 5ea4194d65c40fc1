//! What an honest peer refuses to trust, over real sockets on 127.0.0.1: a proposal that
//! misstates signed `Ready` messages, a peer that has not joined the job, a state certified by
//! one signature, an update trained from another base model; and `Peer::run` ends when too
//! few peers are ready. Each test would fail without its check (see the comments).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod p2p_common;
use libp2p::{Multiaddr, PeerId};
use p2p_common::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use trainchain_primitives::{AggregatePayload, IncludedShare};
use trainchain_trainer::compress::{Compressed, Compression};
use trainchain_trainer::p2p::{
	net,
	roles::{rank, Role},
	round::ChainView,
	wire::{proposal_hash, Body, Envelope, Participant},
	LocalTrainer, NetClient, NetEvent, Peer, PeerConfig, RoundReport, Scheme, StateSnapshot,
};
use trainchain_trainer::signing::{Endorsement, Keys, PublicKey, QuorumCertificate};

const HONEST: [&str; 3] = ["//Alice", "//Bob", "//Charlie"];
const JOB: u64 = 7;

fn key(suri: &str) -> PublicKey {
	Keys::from_suri(suri).unwrap().public()
}

/// The honest keys, sorted (as in a proposal or an included set).
fn honest_keys() -> Vec<PublicKey> {
	let mut keys: Vec<PublicKey> = HONEST.iter().map(|s| key(s)).collect();
	keys.sort();
	keys
}

/// A peer on its own swarm (bootstrapping to `boot`) starting from `model`, with Synth
/// trainer `idx`; returns it unsynced with its address.
async fn new_peer(
	cfg: PeerConfig,
	idx: u64,
	model: Vec<f32>,
	boot: Vec<Multiaddr>,
) -> (Peer<Synth>, Multiaddr) {
	let (client, events) = net::start(net_cfg(boot)).await.unwrap();
	let addr = client.listen_addrs().await.unwrap().into_iter().next().unwrap();
	let addr = addr.with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id()));
	let synth = Synth { idx, len: LEN, wrong_len: false };
	(Peer::new(cfg, client, events, synth, model), addr)
}

/// Like `p2p_common::spawn_peer`, with the initial model and an optional chain view.
async fn start_peer(
	cfg: PeerConfig,
	idx: u64,
	model: Vec<f32>,
	boot: Vec<Multiaddr>,
	view: Option<ChainView>,
	rounds: u32,
) -> (JoinHandle<Vec<RoundReport>>, Multiaddr, NetClient) {
	let (mut peer, addr) = new_peer(cfg, idx, model, boot).await;
	let client = peer.net().clone();
	if let Some(v) = view {
		peer.set_chain_view(v);
	}
	let h = tokio::spawn(async move {
		peer.sync(Duration::from_secs(10)).await.unwrap();
		let out = peer.run(rounds).await.unwrap();
		// Linger so slower peers can finish.
		tokio::time::sleep(Duration::from_secs(2)).await;
		peer.net().shutdown();
		out
	});
	(h, addr, client)
}

/// Running honest peers; `boot` holds all their addresses.
struct Group {
	handles: Vec<JoinHandle<Vec<RoundReport>>>,
	clients: Vec<NetClient>,
	boot: Vec<Multiaddr>,
}

/// Start the honest peers, each waiting for `initial` peers before round 0. Each dials every
/// earlier one, and peers joining later dial all of `boot`: leaving it to Kademlia to connect
/// the later peers with each other can take its 5 s bootstrap interval under load, past the
/// 4 s ready deadline, and round 0 then runs without a peer (seen with `honest_run`).
async fn start_honest(
	initial: usize,
	rounds: u32,
	tweak: impl Fn(&mut PeerConfig),
	view: Option<ChainView>,
) -> Group {
	let mut g = Group { handles: Vec::new(), clients: Vec::new(), boot: Vec::new() };
	for (i, s) in HONEST.iter().enumerate() {
		let mut cfg = peer_cfg(s, initial);
		tweak(&mut cfg);
		let zeros = vec![0.0; LEN];
		let (h, addr, c) =
			start_peer(cfg, i as u64, zeros, g.boot.clone(), view.clone(), rounds).await;
		g.boot.push(addr);
		g.handles.push(h);
		g.clients.push(c);
	}
	g
}

impl Group {
	async fn finish(self) -> (Vec<Vec<RoundReport>>, Vec<NetClient>) {
		let mut out = Vec::new();
		for h in self.handles {
			out.push(h.await.unwrap());
		}
		(out, self.clients)
	}
}

/// Every round of every peer included exactly the honest peers.
fn assert_only_honest_included(runs: &[Vec<RoundReport>], rounds: u32) {
	let honest = honest_keys();
	for (i, reports) in runs.iter().enumerate() {
		assert_eq!(reports.len(), rounds as usize, "peer {i}: {} rounds", reports.len());
		for r in reports {
			let included: Vec<PublicKey> = r.included.iter().map(|s| s.who).collect();
			assert_eq!(included, honest, "peer {i}, round {}: included set", r.round);
		}
	}
}

/// The per-round model hashes of the honest peers alone (same settings as the attacked run).
async fn baseline(rounds: u32, tweak: impl Fn(&mut PeerConfig)) -> Vec<(u32, [u8; 32])> {
	let (runs, _) = start_honest(HONEST.len(), rounds, tweak, None).await.finish().await;
	assert_only_honest_included(&runs, rounds);
	agree(&runs)
}

fn assert_rejected_at_least(clients: &[NetClient], n: u64) {
	for (i, c) in clients.iter().enumerate() {
		let got = c.metrics().messages_rejected.load(Relaxed);
		assert!(got >= n, "peer {i}: messages_rejected {got} < {n}");
	}
}

fn say_hello(net: &NetClient, keys: &Keys) {
	let body = Body::Hello { peer_id: net.local_peer_id().to_bytes(), joining_round: 0 };
	net.set_hello(Envelope::seal_bytes(keys, JOB, 0, &body)).unwrap();
}

// ------------------------------------------------------------------ 1. misstating proposal

/// A key `//Mallory{i}` of lower proposer rank (attempt 0) than every honest key in each of
/// `rounds` rounds, so the honest peers wait for its proposal.
fn first_ranked_proposer(rounds: u32) -> Keys {
	let honest = honest_keys();
	let role = Role::Proposer { attempt: 0 };
	(0..10_000)
		.map(|i| Keys::from_suri(&format!("//Mallory{i}")).unwrap())
		.find(|k| {
			(0..rounds).all(|r| {
				let mine = rank(JOB, r, role, &k.public());
				honest.iter().all(|h| mine < rank(JOB, r, role, h))
			})
		})
		.expect("no //Mallory{i} ranks first")
}

/// Mallory's own (well-formed) update of `round` and its sample count.
fn mallory_update(round: u32) -> (Compressed, u64) {
	let mut synth = Synth { idx: 3, len: LEN, wrong_len: false };
	let u = synth.train(&vec![0.0; LEN], round).unwrap();
	(Compressed::new(Compression::None, &u.delta), u.samples)
}

/// The participants Mallory proposes: herself as she announced, and the honest peers with
/// their roots and peer ids but unevenly inflated sample counts (100×, 200×, 300×), so the
/// aggregate's weights change.
fn misstated(me: Participant, honest: &[Participant]) -> Vec<Participant> {
	let mut parts: Vec<Participant> = honest
		.iter()
		.enumerate()
		.map(|(i, p)| Participant { samples: p.samples * 100 * (i as u64 + 1), ..p.clone() })
		.collect();
	parts.push(me);
	parts.sort_by_key(|p| p.who);
	parts
}

/// Mallory on a bare swarm: a well-formed `Ready` per attempt (base model copied from the
/// honest peers'), and once every honest `Ready` of the attempt is in, a signed `Proposal`
/// with [`misstated`] samples. Should an honest peer follow it (its `Chunk` names the forged
/// proposal), she sends her update to all (all-to-all), so the attempt would complete with
/// the forged weights.
fn spawn_misstating_proposer(
	keys: Keys,
	net: NetClient,
	mut events: UnboundedReceiver<NetEvent>,
) -> JoinHandle<()> {
	tokio::spawn(async move {
		let (me, honest) = (keys.public(), honest_keys());
		let peer_id = net.local_peer_id().to_bytes();
		let mut readies: HashMap<(u32, u32), Vec<Participant>> = HashMap::new();
		let mut forged: HashMap<[u8; 32], Vec<Participant>> = HashMap::new();
		let mut done = HashSet::new();
		let stop = tokio::time::Instant::now() + Duration::from_secs(120);
		while let Ok(Some(ev)) = tokio::time::timeout_at(stop, events.recv()).await {
			let NetEvent::Message { data, .. } = ev else { continue };
			let Ok(env) = Envelope::decode_bytes(&data) else { continue };
			let (r, who) = (env.round, env.who);
			let seal = |body: &Body| Envelope::seal_bytes(&keys, JOB, r, body);
			match env.open() {
				Ok(Body::Ready {
					attempt,
					peer_id: pid,
					samples,
					root,
					base_model,
					len,
					compression,
				}) if honest.contains(&who) => {
					let (update, my_samples) = mallory_update(r);
					let mine = Participant {
						who: me,
						peer_id: peer_id.clone(),
						samples: my_samples,
						root: update.root(),
						len: LEN as u32,
						compression: Compression::None.tag(),
						base_model,
						ready_sig: [0; 64],
					};
					if done.insert(("ready", r, attempt)) {
						let ready = Body::Ready {
							attempt,
							peer_id: peer_id.clone(),
							samples: my_samples,
							len: LEN as u32,
							compression: Compression::None.tag(),
							root: mine.root,
							base_model,
						};
						net.publish(seal(&ready)).unwrap();
					}
					let list = readies.entry((r, attempt)).or_default();
					if !list.iter().any(|p| p.who == who) {
						// The honest peer's own signature: only the samples are misstated.
						let ready_sig = env.sig;
						list.push(Participant {
							who,
							peer_id: pid,
							samples,
							root,
							len,
							compression,
							base_model,
							ready_sig,
						});
					}
					if list.len() == honest.len() && done.insert(("proposal", r, attempt)) {
						let participants = misstated(mine, list);
						forged
							.insert(proposal_hash(r, attempt, &participants), participants.clone());
						net.publish(seal(&Body::Proposal { attempt, participants })).unwrap();
					}
				},
				Ok(Body::Chunk { attempt, proposal, .. })
					if forged.contains_key(&proposal) && done.insert(("chunk", r, attempt)) =>
				{
					let blocks = mallory_update(r).0.blocks;
					let chunk =
						Body::Chunk { attempt, proposal, first_block: 0, blocks, proof: vec![] };
					for p in forged[&proposal].iter().filter(|p| p.who != me) {
						let pid = PeerId::from_bytes(&p.peer_id).unwrap();
						let _ = net.send_nowait(pid, seal(&chunk));
					}
				},
				_ => {},
			}
		}
	})
}

/// Mallory, a participant of lowest proposer rank, proposes each round's participant set
/// with the honest peers' samples inflated (their roots and peer ids intact). Every honest
/// peer holds its own signed `Ready`, so `Peer::check_proposal` refuses the proposal; the
/// honest peers then suspect the silent proposer and the next one proposes without her.
/// Without the check they would follow it and aggregate (all-to-all, Mallory included) with
/// the forged weights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proposal_misstating_a_ready_is_refused() {
	init_tracing();
	const ROUNDS: u32 = 2;
	let all_to_all = |c: &mut PeerConfig| c.scheme = Scheme::AllToAll;
	let alone = baseline(ROUNDS, all_to_all).await;
	let mallory = first_ranked_proposer(ROUNDS);

	// The honest peers wait for Mallory (4 peers) before round 0, so she is expected and,
	// ranking first, the proposer they wait for.
	let group = start_honest(4, ROUNDS, all_to_all, None).await;
	let (atk, events) = net::start(net_cfg(group.boot.clone())).await.unwrap();
	say_hello(&atk, &mallory);
	let attacker = spawn_misstating_proposer(mallory.clone(), atk, events);
	let (honest, clients) = group.finish().await;
	attacker.abort();

	assert_eq!(agree(&honest), alone, "a misstating proposal changed the model");
	assert_only_honest_included(&honest, ROUNDS);
	// Each honest peer refused the forged proposal of every round.
	assert_rejected_at_least(&clients, u64::from(ROUNDS));
}

// ------------------------------------------------------------------ 2. non-member

/// Honest peers whose chain view lists only the honest keys, and Mallory, a peer running
/// the protocol normally (it has not joined the job). Her `Ready`, `Proposal` and exchange
/// messages are ignored, so she is never included. Without the membership check she would
/// be an ordinary participant (included, and the model would differ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_is_ignored_when_the_chain_view_is_set() {
	init_tracing();
	const ROUNDS: u32 = 2;
	let alone = baseline(ROUNDS, |_| {}).await;

	let members: BTreeSet<PublicKey> = honest_keys().into_iter().collect();
	let view = ChainView { members, latest_model: None, open_round: None };
	// Waiting for 4 ready peers in round 0 gives Mallory's `Ready` time to arrive.
	let group = start_honest(4, ROUNDS, |_| {}, Some(view)).await;
	let cfg = peer_cfg("//Mallory", 4);
	let (outsider, _, _) =
		start_peer(cfg, 3, vec![0.0; LEN], group.boot.clone(), None, ROUNDS).await;
	let (honest, clients) = group.finish().await;
	outsider.abort();

	assert_eq!(agree(&honest), alone, "a non-member changed the model");
	assert_only_honest_included(&honest, ROUNDS);
	assert_rejected_at_least(&clients, 1);
}

// ------------------------------------------------------------------ 3. weak certificate

/// The state of round 5 (next round; certificate of round 4) with parameters 0.5: a valid
/// model hash, and a certificate of three included peers signed by the first `signers`.
fn certified_state(signers: usize) -> StateSnapshot {
	let params = vec![0.5f32; LEN];
	let model_hash = trainchain_trainer::update::state_hash(&params);
	let keys: Vec<Keys> = ["//Mallory", "//Trent", "//Victor"]
		.iter()
		.map(|s| Keys::from_suri(s).unwrap())
		.collect();
	let included = keys
		.iter()
		.map(|k| IncludedShare { who: k.public(), samples: 10, update_hash: [0; 32] })
		.collect();
	let payload = AggregatePayload::new([5; 32], JOB, 4, model_hash, keys[0].public(), included);
	let mut qc = QuorumCertificate::new(payload.clone());
	for k in &keys[..signers] {
		let signature = k.sign_payload(&payload, None);
		qc.add(Endorsement { who: k.public(), metric: None, signature }).unwrap();
	}
	StateSnapshot {
		job: JOB,
		next_round: 5,
		params: params.iter().map(|x| x.to_bits()).collect(),
		model_hash,
		certificate: Some(qc),
	}
}

/// A bare swarm serves `snap` to state requests; a fresh peer (Alice, initial model zero,
/// chain view `view`) bootstraps to it and syncs. Returns the synced peer.
async fn sync_from(snap: &StateSnapshot, view: Option<ChainView>) -> Peer<Synth> {
	use codec::Encode;
	let (server, _server_events) = net::start(net_cfg(vec![])).await.unwrap();
	server.set_state(snap.encode()).unwrap();
	let addr = server.listen_addrs().await.unwrap().into_iter().next().unwrap();
	let addr = addr.with(libp2p::multiaddr::Protocol::P2p(server.local_peer_id()));
	let (mut peer, _) = new_peer(peer_cfg("//Alice", 2), 0, vec![0.0; LEN], vec![addr]).await;
	if let Some(v) = view {
		peer.set_chain_view(v);
	}
	peer.sync(Duration::from_secs(10)).await.unwrap();
	server.shutdown();
	peer.net().shutdown();
	peer
}

/// A peer syncing from a server whose state carries a certificate signed by one of its
/// three included peers keeps its own state (`check_snapshot` wants two thirds). Controls:
/// the same state is adopted with two signatures, or with one when the chain view says the
/// job's latest model is exactly this one, so the rejection is the quorum's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_with_a_one_signature_certificate_is_not_adopted() {
	init_tracing();
	let weak = certified_state(1);
	let peer = sync_from(&weak, None).await;
	assert_eq!(peer.round(), 0, "adopted a state certified by one signature of three");
	assert!(peer.model().iter().all(|x| *x == 0.0), "model replaced");
	let m = peer.net().metrics();
	assert_eq!(m.state_syncs.load(Relaxed), 0);
	assert!(m.messages_rejected.load(Relaxed) >= 1, "rejected state not counted");

	let quorum = sync_from(&certified_state(2), None).await;
	assert_eq!(quorum.round(), 5, "a two-of-three certificate should be adopted");
	assert!(quorum.model().iter().all(|x| *x == 0.5));

	// (Membership plays no part in state sync.)
	let chain = ChainView {
		members: BTreeSet::new(),
		latest_model: Some(weak.model_hash),
		open_round: None,
	};
	let finalised = sync_from(&weak, Some(chain)).await;
	assert_eq!(finalised.round(), 5, "the chain's own model should be adopted");
}

/// A state without any certificate (what a peer that resumed the chain's model from its own
/// file serves, `run --resume`) is adopted only when the chain view vouches for its model hash
/// and its round is not later than the chain's open one. A server that claims a later round
/// with the chain's model would push the syncing peer past rounds it should take part in (it
/// would sit them out), and one with another model would be adopted on its word: both are
/// refused. An earlier round is fine: rounds the chain failed since left the model as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncertified_state_is_adopted_only_for_the_chains_model_and_round() {
	init_tracing();
	let mut bare = certified_state(0);
	bare.certificate = None;
	let view = |model: [u8; 32], round: u32| ChainView {
		members: BTreeSet::new(),
		latest_model: Some(model),
		open_round: Some(round),
	};
	// No chain view: nothing vouches for it.
	assert_eq!(sync_from(&bare, None).await.round(), 0, "adopted without a certificate");
	// The chain's model, but the chain has round 3 open, not 5.
	let ahead = sync_from(&bare, Some(view(bare.model_hash, 3))).await;
	assert_eq!(ahead.round(), 0, "pushed to a round the chain has not opened");
	assert_eq!(ahead.net().metrics().state_syncs.load(Relaxed), 0);
	// The chain's round, but another model.
	let other = sync_from(&bare, Some(view([7; 32], 5))).await;
	assert_eq!(other.round(), 0, "adopted a model the chain did not finalise");
	assert!(other.model().iter().all(|x| *x == 0.0), "model replaced");
	// Control: the chain finalised exactly this model and has exactly this round open.
	let vouched = sync_from(&bare, Some(view(bare.model_hash, 5))).await;
	assert_eq!(vouched.round(), 5, "the chain's model for its open round should be adopted");
	assert!(vouched.model().iter().all(|x| *x == 0.5));
	// Two rounds failed on-chain since (round 7 open, same model): still the chain's model.
	let later = sync_from(&bare, Some(view(bare.model_hash, 7))).await;
	assert!(later.model().iter().all(|x| *x == 0.5), "the chain's model was not adopted");
}

// ------------------------------------------------------------------ 4. stale base model

/// Dave starts from other parameters (0.001 instead of 0) and runs the protocol honestly:
/// his `Ready` names another base model, so the honest peers leave his update out. One
/// round: after it Dave may sync the certified state and rightly join. Without the base
/// model check his (well-formed, ordinary-norm) update would be mixed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_on_a_stale_base_model_is_not_mixed_in() {
	init_tracing();
	const ROUNDS: u32 = 1;
	let alone = baseline(ROUNDS, |_| {}).await;

	// Waiting for 4 ready peers in round 0 gives Dave's `Ready` time to arrive.
	let group = start_honest(4, ROUNDS, |_| {}, None).await;
	let cfg = peer_cfg("//Dave", 4);
	let (stale, _, _) =
		start_peer(cfg, 3, vec![0.001; LEN], group.boot.clone(), None, ROUNDS).await;
	let (honest, clients) = group.finish().await;
	stale.abort();

	assert_eq!(agree(&honest), alone, "an update on another base model was mixed in");
	assert_only_honest_included(&honest, ROUNDS);
	assert_rejected_at_least(&clients, 1);
}

// ------------------------------------------------------------------ 5. too few peers

/// Two peers that need three (`min_peers`): no round can produce an aggregate. `Peer::run`
/// gives each round up after a few tries and returns; before that fix it retried round 0
/// forever, which the timeout turns into a failure instead of a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_terminates_when_too_few_peers_are_ready() {
	init_tracing();
	const ROUNDS: u32 = 2;
	let bound = Duration::from_secs(90);
	let cfg = |suri| {
		let mut c = peer_cfg(suri, 2);
		c.min_peers = 3;
		c.round_timeout = Duration::from_secs(1);
		c
	};
	let (a, addr) = new_peer(cfg("//Alice"), 0, vec![0.0; LEN], vec![]).await;
	let (b, _) = new_peer(cfg("//Bob"), 1, vec![0.0; LEN], vec![addr]).await;
	let run = |mut peer: Peer<Synth>| {
		tokio::spawn(async move {
			peer.sync(Duration::from_secs(10)).await.unwrap();
			let out = tokio::time::timeout(bound, peer.run(ROUNDS)).await;
			(out, peer)
		})
	};
	let (ha, hb) = (run(a), run(b));
	for (name, h) in [("Alice", ha), ("Bob", hb)] {
		let (out, peer) = h.await.unwrap();
		let reports = out
			.unwrap_or_else(|_| panic!("{name}: run({ROUNDS}) did not return within {bound:?}"))
			.unwrap();
		assert!(reports.is_empty(), "{name}: a round completed with too few peers");
		assert_eq!(peer.round(), ROUNDS, "{name}");
		assert_eq!(peer.net().metrics().rounds_failed.load(Relaxed), u64::from(ROUNDS), "{name}");
		peer.net().shutdown();
	}
}
