//! The direct path (`p2p::net::direct`) over real sockets on 127.0.0.1: large messages take
//! it, a broken one falls back to libp2p, and a connection without the offered key cannot
//! inject anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod p2p_common;
use p2p_common::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use trainchain_trainer::p2p::net::{self, direct::seal, NetClient, NetConfig, NetEvent};

/// A node on loopback with `tweak` applied to its config.
async fn node(
	boot: Option<&libp2p::Multiaddr>,
	tweak: impl FnOnce(&mut NetConfig),
) -> (NetClient, UnboundedReceiver<NetEvent>, libp2p::Multiaddr) {
	let mut cfg = net_cfg(boot.into_iter().cloned().collect());
	cfg.max_message = 8 << 20;
	tweak(&mut cfg);
	let (client, events) = net::start(cfg).await.unwrap();
	let addr = client.listen_addrs().await.unwrap().into_iter().next().unwrap();
	let addr = addr.with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id()));
	(client, events, addr)
}

/// The next protocol message that arrives within `wait` (other events skipped).
async fn next_message(
	events: &mut UnboundedReceiver<NetEvent>,
	wait: Duration,
) -> Option<(libp2p::PeerId, Vec<u8>)> {
	let deadline = tokio::time::Instant::now() + wait;
	loop {
		match tokio::time::timeout_at(deadline, events.recv()).await {
			Ok(Some(NetEvent::Message { from, data, gossip: false })) => return Some((from, data)),
			Ok(Some(_)) => continue,
			Ok(None) | Err(_) => return None,
		}
	}
}

async fn connected(a: &NetClient, b: &NetClient) {
	let deadline = Instant::now() + Duration::from_secs(10);
	while !a.connected_peers().await.unwrap().contains(&b.local_peer_id()) {
		assert!(Instant::now() < deadline, "peers did not connect");
		tokio::time::sleep(Duration::from_millis(20)).await;
	}
}

fn message(len: usize, tag: u8) -> Vec<u8> {
	(0..len).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect()
}

/// Send `data` from `a` to `b` (retrying until 10 s) and check that it arrives intact, from
/// `a`'s peer id.
async fn deliver(
	a: &NetClient,
	b: &NetClient,
	b_events: &mut UnboundedReceiver<NetEvent>,
	data: &[u8],
) {
	let until = Instant::now() + Duration::from_secs(10);
	a.send_retrying(b.local_peer_id(), data.to_vec().into(), until).unwrap();
	let (from, got) = next_message(b_events, Duration::from_secs(15)).await.expect("arrives");
	assert_eq!(from, a.local_peer_id());
	assert!(got == data, "a message of {} bytes altered on the way", data.len());
}

/// Send large messages until one goes directly (the offer crosses the connection just after
/// it opens); every message must arrive intact, from the sender's peer id.
async fn send_until_direct(
	a: &NetClient,
	b_events: &mut UnboundedReceiver<NetEvent>,
	b: &NetClient,
) -> Vec<u8> {
	for tag in 0..50u8 {
		let data = message(3 << 20, tag);
		deliver(a, b, b_events, &data).await;
		if b.metrics().direct_bytes_received.load(Relaxed) > 0 {
			return data;
		}
		tokio::time::sleep(Duration::from_millis(100)).await;
	}
	panic!("no message took the direct path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_go_directly_small_ones_by_libp2p() {
	init_tracing();
	let (b, mut b_events, b_addr) = node(None, |_| {}).await;
	let (a, mut a_events, _) = node(Some(&b_addr), |_| {}).await;
	connected(&a, &b).await;
	let data = send_until_direct(&a, &mut b_events, &b).await;
	let direct = b.metrics().direct_bytes_received.load(Relaxed);
	assert_eq!(direct, data.len() as u64);
	assert_eq!(a.metrics().direct_bytes_sent.load(Relaxed), direct);
	// A small message takes libp2p.
	deliver(&a, &b, &mut b_events, b"small").await;
	assert_eq!(b.metrics().direct_bytes_received.load(Relaxed), direct);
	// Back the other way too: B has A's offer.
	deliver(&b, &a, &mut a_events, &message(1 << 20, 9)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_path_that_fails_falls_back_to_libp2p() {
	init_tracing();
	// B offers a port nothing listens on.
	let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
	let (b, mut b_events, b_addr) = node(None, |c| c.direct_offer_port = Some(dead)).await;
	let (a, _a_events, _) = node(Some(&b_addr), |_| {}).await;
	connected(&a, &b).await;
	tokio::time::sleep(Duration::from_millis(500)).await;
	for tag in 0..3u8 {
		deliver(&a, &b, &mut b_events, &message(2 << 20, tag)).await;
	}
	assert_eq!(b.metrics().direct_bytes_received.load(Relaxed), 0);
	assert!(a.metrics().direct_fallbacks.load(Relaxed) >= 1, "the failed dial was not counted");
}

/// An attacker who can reach B's direct port and knows A's peer id (it is public) but not the
/// key B gave A: it claims to be A, gets a challenge, and sends a sealed message under a key
/// of its own; then a connection naming a peer B never offered a key to, and bytes that are
/// no preface. B delivers none of it, counts each, and still takes A's next direct message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_the_offered_key_cannot_inject() {
	init_tracing();
	let (b, mut b_events, b_addr) = node(None, |_| {}).await;
	let (a, _a_events, _) = node(Some(&b_addr), |_| {}).await;
	connected(&a, &b).await;
	send_until_direct(&a, &mut b_events, &b).await;
	let port = b.direct_port().unwrap();
	let malformed = b.metrics().malformed.load(Relaxed);

	let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
	let a_id = a.local_peer_id().to_bytes();
	let mut session = seal::dial_preface(&mut sock, &a_id, &[0x42; 32]).await.unwrap();
	let forged = message(200_000, 77);
	seal::write_message(&mut sock, &mut session, &forged, &mut Vec::new())
		.await
		.unwrap();

	let stranger = libp2p::PeerId::random().to_bytes();
	let mut sock2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
	assert!(seal::dial_preface(&mut sock2, &stranger, &[0x42; 32]).await.is_err());

	let mut sock3 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
	tokio::io::AsyncWriteExt::write_all(&mut sock3, b"GET / HTTP/1.1\r\n\r\n")
		.await
		.unwrap();

	assert!(
		next_message(&mut b_events, Duration::from_secs(2)).await.is_none(),
		"B delivered a message nobody with the key sent"
	);
	let deadline = Instant::now() + Duration::from_secs(5);
	while b.metrics().malformed.load(Relaxed) < malformed + 3 {
		assert!(Instant::now() < deadline, "the three refused connections were not counted");
		tokio::time::sleep(Duration::from_millis(20)).await;
	}
	// The honest sender's direct path still works.
	let before = b.metrics().direct_bytes_received.load(Relaxed);
	deliver(&a, &b, &mut b_events, &message(1 << 20, 3)).await;
	assert!(b.metrics().direct_bytes_received.load(Relaxed) > before);
}

/// Three peers whose chunks (800 KB) take the direct path complete rounds with equal models;
/// the same rounds with the direct path off give the same models, bit for bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_over_the_direct_path_match_rounds_over_libp2p() {
	init_tracing();
	const BIG: usize = 600_000;
	let run = |no_direct: bool| async move {
		let mut handles = Vec::new();
		let mut clients = Vec::new();
		let mut boot = Vec::new();
		for (i, s) in ["//Alice", "//Bob", "//Charlie"].iter().enumerate() {
			let mut cfg = peer_cfg(s, 3);
			cfg.round_timeout = Duration::from_secs(10);
			let mut ncfg = net_cfg(boot.clone());
			ncfg.max_message = 8 << 20;
			ncfg.addrs.no_direct = no_direct;
			let synth = Synth { idx: i as u64, len: BIG, wrong_len: false };
			let (h, addr, c) = spawn_peer_with(cfg, ncfg, synth, BIG, 3).await;
			boot.push(addr);
			handles.push(h);
			clients.push(c);
		}
		let mut all = Vec::new();
		for h in handles {
			all.push(h.await.unwrap());
		}
		let direct: u64 =
			clients.iter().map(|c| c.metrics().direct_bytes_received.load(Relaxed)).sum();
		(agree(&all), direct)
	};
	let (direct_hashes, direct_bytes) = run(false).await;
	let (libp2p_hashes, libp2p_direct_bytes) = run(true).await;
	assert_eq!(direct_hashes.len(), 3);
	assert!(direct_bytes > 0, "no chunk took the direct path");
	assert_eq!(libp2p_direct_bytes, 0);
	assert_eq!(direct_hashes, libp2p_hashes);
}

/// B offers a direct port where something accepts, answers the preface and then never reads
/// (a recipient that stalls its senders). A's message to B blocks in the socket; A's message
/// to C, sent right after, still arrives, and at the deadline A gives up on the direct write
/// and B gets its message by libp2p. Without the deadline, B never got it (seen failing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_that_stops_reading_holds_back_only_its_own_messages() {
	init_tracing();
	let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
	let stall_port = stall.local_addr().unwrap().port();
	let held = tokio::spawn(async move {
		let (mut sock, _) = stall.accept().await.unwrap();
		let mut preface = [0u8; 9];
		tokio::io::AsyncReadExt::read_exact(&mut sock, &mut preface).await.unwrap();
		let mut id = vec![0u8; usize::from(preface[8])];
		tokio::io::AsyncReadExt::read_exact(&mut sock, &mut id).await.unwrap();
		tokio::io::AsyncWriteExt::write_all(&mut sock, &[7; 32]).await.unwrap();
		tokio::time::sleep(Duration::from_secs(60)).await;
		drop(sock);
	});
	let (b, mut b_events, b_addr) = node(None, |c| {
		c.direct_offer_port = Some(stall_port);
		c.max_message = 64 << 20;
	})
	.await;
	let (a, _a_events, a_addr) = node(Some(&b_addr), |c| c.max_message = 64 << 20).await;
	let (c, mut c_events, _) = node(Some(&a_addr), |_| {}).await;
	connected(&a, &b).await;
	connected(&a, &c).await;
	send_until_direct(&a, &mut c_events, &c).await;

	let big = message(24 << 20, 1);
	let until = Instant::now() + Duration::from_secs(4);
	a.send_retrying(b.local_peer_id(), big.clone().into(), until).unwrap();
	let to_c = message(1 << 20, 2);
	deliver(&a, &c, &mut c_events, &to_c).await;
	assert!(Instant::now() < until, "C's message waited for B's stalled one");
	assert!(b.metrics().direct_bytes_received.load(Relaxed) == 0);
	let (from, got) =
		next_message(&mut b_events, Duration::from_secs(40)).await.expect("B gets it");
	assert_eq!(from, a.local_peer_id());
	assert!(got == big);
	assert!(a.metrics().direct_fallbacks.load(Relaxed) >= 1);
	held.abort();
}

/// Someone holds every connection slot of B's direct listener with connections that never
/// send a preface. A's first direct dial to B then gets no challenge; A gives up after its
/// connect timeout and B gets the message by libp2p: the flood costs the direct path, not the
/// message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_costs_the_direct_path_not_the_message() {
	init_tracing();
	let (b, mut b_events, b_addr) = node(None, |_| {}).await;
	let port = b.direct_port().unwrap();
	let mut idle = Vec::new();
	for _ in 0..300 {
		idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
	}
	let (a, _a_events, _) = node(Some(&b_addr), |_| {}).await;
	connected(&a, &b).await;
	tokio::time::sleep(Duration::from_millis(500)).await;
	deliver(&a, &b, &mut b_events, &message(2 << 20, 4)).await;
	assert_eq!(b.metrics().direct_bytes_received.load(Relaxed), 0);
	assert!(a.metrics().direct_fallbacks.load(Relaxed) >= 1);
	drop(idle);
}
