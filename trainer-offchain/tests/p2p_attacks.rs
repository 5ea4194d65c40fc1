//! Bad input and attacks against honest peers over real sockets: the honest peers keep
//! going, their per-round model hashes equal those of a run without the attacker, and the
//! events are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod p2p_common;
use codec::Encode;
use libp2p::PeerId;
use p2p_common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use trainchain_trainer::compress::{self, Compression};
use trainchain_trainer::p2p::{
	net,
	round::Byzantine,
	wire::{proposal_hash, Body, ChunkStat, Envelope, Participant},
	NetClient, NetEvent,
};
use trainchain_trainer::signing::Keys;

const HONEST: [&str; 3] = ["//Alice", "//Bob", "//Charlie"];
const ROUNDS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_wrong_shape_updates_are_rejected() {
	init_tracing();
	let baseline = agree(&honest_run(&HONEST, ROUNDS, |_| {}).await);

	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, s) in HONEST.iter().enumerate() {
		let (h, addr, _) = spawn_peer(
			peer_cfg(s, 5),
			boot.clone(),
			Synth { idx: i as u64, len: LEN, wrong_len: false },
			ROUNDS,
		)
		.await;
		// Every peer dials all earlier ones (see `honest_run`).
		boot.push(addr);
		handles.push(h);
	}
	let boot0 = boot.clone();
	let mut nan_cfg = peer_cfg("//Dave", 5);
	nan_cfg.byzantine = Some(Byzantine::Nan);
	let (hd, _, _) =
		spawn_peer(nan_cfg, boot0.clone(), Synth { idx: 3, len: LEN, wrong_len: false }, ROUNDS)
			.await;
	let (he, _, _) = spawn_peer(
		peer_cfg("//Eve", 5),
		boot0,
		Synth { idx: 4, len: LEN, wrong_len: true },
		ROUNDS,
	)
	.await;
	let mut honest = Vec::new();
	for h in handles {
		honest.push(h.await.unwrap());
	}
	let _ = hd.await;
	let _ = he.await;
	let got = agree(&honest);
	assert_eq!(got, baseline, "attackers changed the result");
	let dave = Keys::from_suri("//Dave").unwrap().public();
	let eve = Keys::from_suri("//Eve").unwrap().public();
	for r in &honest[0] {
		let rejected: HashSet<_> = r.rejected.iter().map(|x| x.0).collect();
		assert!(
			rejected.contains(&dave),
			"round {}: NaN sender not recorded: {:?}",
			r.round,
			r.rejected
		);
		assert!(rejected.contains(&eve), "round {}: wrong-shape sender not recorded", r.round);
		assert_eq!(r.included.len(), 3);
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_update_is_rejected_as_norm_outlier() {
	init_tracing();
	let baseline = agree(&honest_run(&HONEST, 2, |_| {}).await);
	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, s) in HONEST.iter().enumerate() {
		let (h, addr, _) = spawn_peer(
			peer_cfg(s, 4),
			boot.clone(),
			Synth { idx: i as u64, len: LEN, wrong_len: false },
			2,
		)
		.await;
		boot.push(addr);
		handles.push(h);
	}
	let mut cfg = peer_cfg("//Dave", 4);
	cfg.byzantine = Some(Byzantine::Scale(1000.0));
	let (hd, _, _) = spawn_peer(cfg, boot, Synth { idx: 3, len: LEN, wrong_len: false }, 2).await;
	let mut honest = Vec::new();
	for h in handles {
		honest.push(h.await.unwrap());
	}
	let _ = hd.await;
	assert_eq!(agree(&honest), baseline);
	assert!(honest[1][0].rejected.iter().any(|(_, why)| why.contains("norm")));
}

/// Dave acknowledges every message 30 s late, longer than a round. A sender that waited for
/// a recipient's acknowledgement before sending on (session 10 tried sending large chunks
/// one recipient after the other) would reach the other owners after the phase deadline and
/// be screened out: with sequential sends and no bound on the wait, this test failed (Alice
/// left out, the peers diverged). Messages go out at once, so nobody waits on him: every
/// round includes all four, and the honest peers agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_acknowledging_late_does_not_hold_back_honest_chunks() {
	init_tracing();
	// Chunks of 300,000 values (1.2 MB).
	const BIG: usize = 1_200_000;
	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, s) in ["//Alice", "//Bob", "//Charlie", "//Dave"].iter().enumerate() {
		let mut cfg = peer_cfg(s, 4);
		cfg.round_timeout = Duration::from_secs(8);
		let mut ncfg = net_cfg(boot.clone());
		ncfg.max_message = 8 << 20;
		// Acknowledgements are libp2p's: chunks this large would take the direct path.
		ncfg.addrs.no_direct = true;
		if *s == "//Dave" {
			ncfg.ack_delay = Some(Duration::from_secs(30));
		}
		let synth = Synth { idx: i as u64, len: BIG, wrong_len: false };
		let (h, addr, _) = spawn_peer_with(cfg, ncfg, synth, BIG, 2).await;
		boot.push(addr);
		handles.push(h);
	}
	let mut all = Vec::new();
	for h in handles {
		all.push(h.await.unwrap());
	}
	let honest = &all[..3];
	agree(honest);
	for (i, reports) in honest.iter().enumerate() {
		assert_eq!(reports.len(), 2, "peer {i} finished both rounds");
		for r in reports {
			assert!(r.rejected.is_empty(), "peer {i} round {}: rejected {:?}", r.round, r.rejected);
			assert_eq!(r.included.len(), 4, "peer {i} round {}: not everyone included", r.round);
		}
	}
}

/// Dave owns a chunk and sends a different reduction of it to each honest peer. Without the
/// cross-check the honest peers apply different aggregates and diverge; with it, they prove
/// the equivocation from Dave's own signed messages and retry the round without him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_chunk_owner_is_caught_before_signing() {
	init_tracing();
	let rounds = 2;
	let baseline = agree(&honest_run(&HONEST, rounds, |_| {}).await);
	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, s) in HONEST.iter().enumerate() {
		let (h, addr, c) = spawn_peer(
			peer_cfg(s, 4),
			boot.clone(),
			Synth { idx: i as u64, len: LEN, wrong_len: false },
			rounds,
		)
		.await;
		boot.push(addr);
		handles.push((h, c));
	}
	let mut cfg = peer_cfg("//Dave", 4);
	cfg.byzantine = Some(Byzantine::SplitReduced);
	let (hd, _, _) =
		spawn_peer(cfg, boot, Synth { idx: 3, len: LEN, wrong_len: false }, rounds).await;
	let mut honest = Vec::new();
	let mut clients = Vec::new();
	for (h, c) in handles {
		honest.push(h.await.unwrap());
		clients.push(c);
	}
	let _ = hd.await;
	assert_eq!(agree(&honest), baseline, "the equivocating owner changed the result");
	let dave = Keys::from_suri("//Dave").unwrap().public();
	for (i, reports) in honest.iter().enumerate() {
		for r in reports {
			assert!(
				r.included.iter().all(|s| s.who != dave),
				"peer {i} round {}: Dave included",
				r.round
			);
		}
		assert!(reports[0].attempt >= 1, "peer {i}: round 0 should need a second attempt");
		assert!(clients[i].metrics().equivocations.load(Relaxed) >= 1, "peer {i}: no proof");
	}
}

/// A raw attacker with its own swarm and key (Dave): garbage frames, an oversized frame,
/// a message signed by Dave claiming Alice's key, Alice's genuine message re-sent from
/// Dave's peer, replays of earlier rounds, and two different updates in one round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_oversized_and_equivocating_messages_are_ignored() {
	init_tracing();
	let baseline = agree(&honest_run(&HONEST, ROUNDS, |_| {}).await);

	let (handles, clients, boot) = spawn_all(&HONEST, 3, ROUNDS).await;
	let (atk, mut events) = net::start(net_cfg(boot)).await.unwrap();
	let dave = Keys::from_suri("//Dave").unwrap();
	let alice = Keys::from_suri("//Alice").unwrap();
	say_hello(&atk, &dave);
	let attacker = tokio::spawn(async move {
		let mut done_rounds = HashSet::new();
		let mut captured: HashMap<u32, Vec<u8>> = HashMap::new();
		let stop = tokio::time::Instant::now() + Duration::from_secs(60);
		while let Ok(Some(ev)) = tokio::time::timeout_at(stop, events.recv()).await {
			let NetEvent::Message { from, data, gossip: true } = ev else {
				continue;
			};
			let Ok(env) = Envelope::decode_bytes(&data) else {
				continue;
			};
			let Ok(Body::Ready { base_model, .. }) = env.open() else {
				continue;
			};
			captured.entry(env.round).or_insert(data.clone());
			if !done_rounds.insert(env.round) {
				continue;
			}
			let r = env.round;
			// Two different updates in one round.
			for root in [[1u8; 32], [2u8; 32]] {
				let body = Body::Ready {
					attempt: 0,
					peer_id: atk.local_peer_id().to_bytes(),
					samples: 10,
					len: LEN as u32,
					compression: 0,
					root,
					base_model,
				};
				atk.publish(Envelope::seal_bytes(&dave, 7, r, &body)).unwrap();
			}
			// Garbage and an oversized frame.
			let _ = atk.send(from, b"\x00\x01garbage".to_vec()).await;
			let _ = atk.send(from, vec![7u8; 2 << 20]).await;
			// Signed by Dave, claiming to be Alice.
			let body = Body::Ready {
				attempt: 0,
				peer_id: atk.local_peer_id().to_bytes(),
				samples: 10,
				len: LEN as u32,
				compression: 0,
				root: [3; 32],
				base_model,
			};
			let mut forged = Envelope::seal(&dave, 7, r, &body);
			forged.who = alice.public();
			atk.publish(forged.encode()).unwrap();
			let _ = atk.send(from, forged.encode()).await;
			// A genuine message of another peer re-sent from our connection.
			let _ = atk.send(from, data.clone()).await;
			// Replay of the previous round.
			if let Some(old) = r.checked_sub(1).and_then(|p| captured.get(&p)) {
				let _ = atk.send(from, old.clone()).await;
				atk.publish(old.clone()).unwrap();
			}
		}
	});
	let mut honest = Vec::new();
	for h in handles {
		honest.push(h.await.unwrap());
	}
	attacker.abort();
	assert_eq!(agree(&honest), baseline, "attacker changed the result");
	let total = |f: fn(&trainchain_trainer::p2p::Metrics) -> u64| {
		clients.iter().map(|c| f(c.metrics())).sum::<u64>()
	};
	assert!(total(|m| m.malformed.load(Relaxed)) >= 1, "garbage not counted");
	assert!(total(|m| m.oversized.load(Relaxed)) >= 1, "oversized not counted");
	assert!(total(|m| m.messages_rejected.load(Relaxed)) >= 1, "forgery not counted");
	assert!(total(|m| m.impersonations.load(Relaxed)) >= 1, "identity claim not counted");
	assert!(total(|m| m.replays.load(Relaxed)) >= 1, "replay not counted");
	assert!(total(|m| m.equivocations.load(Relaxed)) >= 1, "equivocation not counted");
}

/// Forged exchange messages for `chunks` of an agreed participant list, signed by `keys`:
/// a `Norms` report marking the last participant's update malformed (censorship) and a
/// `Reduced` chunk full of 0.25 (poison), bound to the right proposal.
fn forged_exchange(
	keys: &Keys,
	round: u32,
	attempt: u32,
	parts: &[Participant],
	chunks: &[usize],
) -> Vec<Vec<u8>> {
	let n = parts.len();
	let nb = compress::block_count(LEN);
	let proposal = proposal_hash(round, attempt, parts);
	let mut out = Vec::new();
	for &c in chunks {
		let stats = parts
			.iter()
			.enumerate()
			.map(|(i, p)| ChunkStat {
				who: p.who,
				sq_norm_bits: 1e-6f64.to_bits(),
				finite: true,
				well_formed: i + 1 != n,
			})
			.collect();
		let blocks = compress::chunk_blocks(nb, n, c)
			.map(|b| {
				let vals = vec![0.25f32; compress::block_range(LEN, nb, b).len()];
				Compression::None.encode_block(&vals)
			})
			.collect();
		let chunk = c as u32;
		for body in [
			Body::Norms { attempt, proposal, chunk, stats },
			Body::Reduced { attempt, proposal, chunk, blocks },
		] {
			out.push(Envelope::seal_bytes(keys, 7, round, &body));
		}
	}
	out
}

/// Send forged exchange messages for every chunk a forger does not own, to every other
/// participant directly and by gossip, as soon as `events` shows a proposal.
fn send_forgeries(forgers: &[(Keys, NetClient)], round: u32, attempt: u32, parts: &[Participant]) {
	for (keys, client) in forgers {
		let me = keys.public();
		let chunks: Vec<usize> = (0..parts.len()).filter(|c| parts[*c].who != me).collect();
		for msg in forged_exchange(keys, round, attempt, parts, &chunks) {
			for p in parts.iter().filter(|p| p.who != me) {
				let pid = PeerId::from_bytes(&p.peer_id).unwrap();
				let _ = client.send_nowait(pid, msg.clone());
			}
			let _ = client.publish(msg);
		}
	}
}

/// Watch the gossip on `events` for 60 s: forge exchange messages on every proposal, and
/// (if `shape_ready`) answer every round's `Ready` with a wrong-shape `Ready` of the first
/// forger, so a hello'd non-participant is ready (and left out) without stalling the
/// proposer.
fn spawn_forger(
	mut events: tokio::sync::mpsc::UnboundedReceiver<NetEvent>,
	forgers: Vec<(Keys, NetClient)>,
	shape_ready: bool,
) -> tokio::task::JoinHandle<()> {
	tokio::spawn(async move {
		let mut seen = HashSet::new();
		let stop = tokio::time::Instant::now() + Duration::from_secs(60);
		while let Ok(Some(ev)) = tokio::time::timeout_at(stop, events.recv()).await {
			let NetEvent::Message { data, .. } = ev else {
				continue;
			};
			let Ok(env) = Envelope::decode_bytes(&data) else {
				continue;
			};
			match env.open() {
				Ok(Body::Proposal { attempt, participants })
					if seen.insert(("proposal", env.round, attempt)) =>
				{
					send_forgeries(&forgers, env.round, attempt, &participants);
				},
				Ok(Body::Ready { attempt, base_model, .. })
					if shape_ready && seen.insert(("ready", env.round, attempt)) =>
				{
					let (keys, client) = &forgers[0];
					let body = Body::Ready {
						attempt,
						peer_id: client.local_peer_id().to_bytes(),
						samples: 10,
						len: LEN as u32 + 1,
						compression: 0,
						root: [9; 32],
						base_model,
					};
					client.publish(Envelope::seal_bytes(keys, 7, env.round, &body)).unwrap();
				},
				_ => {},
			}
		}
	})
}

/// Spawn synthetic peers `suris` (index = Synth idx), each dialling all earlier ones and
/// waiting for `initial` ready peers before round 0.
/// Have `atk` greet every peer as `keys` (a member of job 7 from round 0).
fn say_hello(atk: &NetClient, keys: &Keys) {
	let hello = Body::Hello { peer_id: atk.local_peer_id().to_bytes(), joining_round: 0 };
	atk.set_hello(Envelope::seal_bytes(keys, 7, 0, &hello)).unwrap();
}

async fn spawn_all(
	suris: &[&str],
	initial: usize,
	rounds: u32,
) -> (
	Vec<tokio::task::JoinHandle<Vec<trainchain_trainer::p2p::RoundReport>>>,
	Vec<NetClient>,
	Vec<libp2p::Multiaddr>,
) {
	let (mut handles, mut clients, mut boot) = (Vec::new(), Vec::new(), Vec::new());
	for (i, s) in suris.iter().enumerate() {
		let synth = Synth { idx: i as u64, len: LEN, wrong_len: false };
		let (h, addr, c) = spawn_peer(peer_cfg(s, initial), boot.clone(), synth, rounds).await;
		boot.push(addr);
		handles.push(h);
		clients.push(c);
	}
	(handles, clients, boot)
}

/// A non-participant (Eve: said `Hello`, announced an update of the wrong shape, so she is
/// bound but left out of every proposal) answers each proposal at once with `Norms` and
/// `Reduced` for every chunk, directly and by gossip, before the owners can. Honest peers
/// must take each chunk's messages only from its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_owner_cannot_poison_reduced_chunk() {
	init_tracing();
	let baseline = agree(&honest_run(&HONEST, ROUNDS, |_| {}).await);

	// Eve's (wrong-shape) `Ready` counts as ready: wait for all four before round 0.
	let (handles, clients, boot) = spawn_all(&HONEST, 4, ROUNDS).await;
	let (atk, events) = net::start(net_cfg(boot)).await.unwrap();
	let eve = Keys::from_suri("//Eve").unwrap();
	say_hello(&atk, &eve);
	let attacker = spawn_forger(events, vec![(eve, atk)], true);
	let mut honest = Vec::new();
	for h in handles {
		honest.push(h.await.unwrap());
	}
	attacker.abort();
	assert_eq!(agree(&honest), baseline, "a non-owner poisoned the model");
	for r in &honest[0] {
		assert_eq!(r.included.len(), 3, "round {}: censored by forged norms", r.round);
	}
	assert_exchange_rejections(&clients);
}

/// Every honest peer counted forged exchange messages.
fn assert_exchange_rejections(clients: &[NetClient]) {
	for (i, c) in clients.iter().enumerate() {
		let m = c.metrics();
		assert!(
			m.exchange_rejected.load(Relaxed) >= 1,
			"peer {i}: forged exchange messages not counted"
		);
		assert!(m.messages_rejected.load(Relaxed) >= 1);
	}
}

/// A participant (Dave, honest in everything else) sends forged `Norms` and `Reduced` for
/// every chunk it does not own, from its own bound peer, as soon as the proposal is out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_cannot_forge_another_owners_chunk() {
	init_tracing();
	const FOUR: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];
	let baseline = agree(&honest_run(&FOUR, ROUNDS, |_| {}).await);

	let (handles, clients, boot) = spawn_all(&FOUR, 4, ROUNDS).await;
	// An observer swarm (no hello, never a participant) watches the gossip for proposals;
	// the forgeries go out through Dave's own swarm, signed with Dave's key.
	let (_observer, events) = net::start(net_cfg(boot)).await.unwrap();
	let dave = Keys::from_suri("//Dave").unwrap();
	let attacker = spawn_forger(events, vec![(dave, clients[3].clone())], false);
	let mut all = Vec::new();
	for h in handles {
		all.push(h.await.unwrap());
	}
	attacker.abort();
	let honest = &all[..3];
	assert_eq!(agree(honest), baseline, "a non-owner participant poisoned the model");
	for r in &honest[0] {
		assert_eq!(r.included.len(), 4, "round {}: censored by forged norms", r.round);
	}
	assert_exchange_rejections(&clients[..3]);
}

/// A member (Dave) sends one signed `Ready` to Alice and a different one to Bob and Charlie,
/// each directly, so that each honest peer holds one version only. The proposal lists Dave
/// with one of the two roots; whoever holds the other must not take the honest proposer for a
/// liar. The honest peers must still agree on every round, with the result of a run without
/// Dave (he never sends a chunk, so the retry leaves him out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_equivocating_on_ready_cannot_split_the_honest_peers() {
	init_tracing();
	let baseline = agree(&honest_run(&HONEST, ROUNDS, |_| {}).await);
	let (handles, clients, boot) = spawn_all(&HONEST, 3, ROUNDS).await;
	let honest_ids: Vec<PeerId> = clients.iter().map(|c| c.local_peer_id()).collect();
	let (atk, mut events) = net::start(net_cfg(boot)).await.unwrap();
	let dave = Keys::from_suri("//Dave").unwrap();
	say_hello(&atk, &dave);
	let attacker = tokio::spawn(async move {
		let mut done = HashSet::new();
		let stop = tokio::time::Instant::now() + Duration::from_secs(120);
		while let Ok(Some(ev)) = tokio::time::timeout_at(stop, events.recv()).await {
			let NetEvent::Message { data, gossip: true, .. } = ev else { continue };
			let Ok(env) = Envelope::decode_bytes(&data) else { continue };
			let Ok(Body::Ready { attempt, base_model, .. }) = env.open() else { continue };
			if !done.insert((env.round, attempt)) {
				continue;
			}
			for (i, peer) in honest_ids.iter().enumerate() {
				let root = if i == 0 { [0xA; 32] } else { [0xB; 32] };
				let body = Body::Ready {
					attempt,
					peer_id: atk.local_peer_id().to_bytes(),
					samples: 10,
					len: LEN as u32,
					compression: 0,
					root,
					base_model,
				};
				let _ = atk.send(*peer, Envelope::seal_bytes(&dave, 7, env.round, &body)).await;
			}
		}
	});
	let mut honest = Vec::new();
	for h in handles {
		honest.push(h.await.unwrap());
	}
	attacker.abort();
	assert_eq!(agree(&honest), baseline, "an equivocating member changed the result");
}
