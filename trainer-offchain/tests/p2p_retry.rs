//! Retried sends (issue #13), with real libp2p sockets on loopback: a message whose request
//! fails because the recipient's connection went away is sent again, with backoff, until its
//! deadline, so a peer that is back within the deadline still gets it. The same message sent
//! once (no retry) is lost: that is the attack-free fault this defends against.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod p2p_common;

use libp2p::{identity::Keypair, Multiaddr, PeerId};
use p2p_common::{init_tracing, net_cfg};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use trainchain_trainer::p2p::{net, NetClient, NetEvent};

/// A free loopback TCP port (the recipient restarts on it).
fn free_port() -> u16 {
	std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node with identity `key` listening on `port`.
async fn start(
	key: &Keypair,
	port: u16,
	bootstrap: Vec<Multiaddr>,
) -> (NetClient, UnboundedReceiver<NetEvent>) {
	let mut cfg = net_cfg(bootstrap);
	cfg.addrs.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
	cfg.addrs.node_key = Some(key.clone());
	net::start(cfg).await.unwrap()
}

/// Wait for an event matching `f` until `deadline`.
async fn wait_for(
	rx: &mut UnboundedReceiver<NetEvent>,
	deadline: Instant,
	f: impl Fn(&NetEvent) -> bool,
) -> bool {
	loop {
		let left = deadline.saturating_duration_since(Instant::now());
		match tokio::time::timeout(left, rx.recv()).await {
			Ok(Some(ev)) if f(&ev) => return true,
			Ok(Some(_)) => {},
			Ok(None) | Err(_) => return false,
		}
	}
}

/// A sends to B right after B went away; B is back on the same address with the same key
/// 1.5 s later. Returns whether the restarted B received the message.
async fn delivered_after_restart(retry: bool) -> bool {
	let (b_key, b_port) = (Keypair::generate_ed25519(), free_port());
	let b_id = PeerId::from(b_key.public());
	let (b, _b_events) = start(&b_key, b_port, vec![]).await;
	let b_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{b_port}/p2p/{b_id}").parse().unwrap();
	let (a, mut a_events) = start(&Keypair::generate_ed25519(), free_port(), vec![b_addr]).await;
	let soon = Instant::now() + Duration::from_secs(10);
	assert!(
		wait_for(&mut a_events, soon, |e| matches!(e, NetEvent::Connected(p) if *p == b_id)).await
	);
	b.shutdown();
	let soon = Instant::now() + Duration::from_secs(10);
	assert!(
		wait_for(&mut a_events, soon, |e| matches!(e, NetEvent::Disconnected(p) if *p == b_id))
			.await
	);
	let msg = b"chunk for b".to_vec();
	if retry {
		a.send_retrying(b_id, Arc::new(msg.clone()), Instant::now() + Duration::from_secs(10))
			.unwrap();
	} else {
		a.send_nowait(b_id, msg.clone()).unwrap();
	}
	tokio::time::sleep(Duration::from_millis(1500)).await;
	let (_b2, mut b2_events) = start(&b_key, b_port, vec![]).await;
	let deadline = Instant::now() + Duration::from_secs(12);
	let got = wait_for(
		&mut b2_events,
		deadline,
		|e| matches!(e, NetEvent::Message { data, .. } if *data == msg),
	)
	.await;
	if retry {
		assert!(a.metrics().sends_retried.load(std::sync::atomic::Ordering::Relaxed) >= 1);
	}
	got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_retried_until_the_peer_is_back() {
	init_tracing();
	assert!(delivered_after_restart(true).await, "the retried message never arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_retry_the_same_message_is_lost() {
	init_tracing();
	assert!(!delivered_after_restart(false).await, "a message sent once arrived anyway");
}
