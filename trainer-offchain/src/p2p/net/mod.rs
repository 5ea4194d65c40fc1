//! The libp2p swarm and the one task that owns it.
//!
//! Transports: TCP + noise + yamux, and QUIC. Behaviours: identify, Kademlia (discovery,
//! server mode, plus explicit bootstrap addresses), gossipsub (round announcements) and
//! request-response with a length-prefixed codec (update transfer; messages larger than
//! `max_message` are refused). The rest of the program talks to the task through a
//! cloneable [`NetClient`] (commands over an mpsc channel, replies over oneshots) and reads
//! [`NetEvent`]s from an unbounded receiver. The network layer only moves bytes: decoding,
//! signature checks and the round protocol live in `p2p::wire` / `p2p::round`.
//!
//! Large messages take a direct, AES-256-GCM sealed TCP connection where there is one
//! (`direct/`), and libp2p otherwise.
//!
//! Files: `config.rs` (what a node is told), `behaviour.rs` (the swarm), `client.rs` (the
//! handle), `task.rs` (the task and its commands), `events.rs` (swarm events), `direct/`
//! (the direct path).

mod behaviour;
mod client;
mod config;
pub mod direct;
mod events;
mod task;

pub use super::codec::{Request, Response, WireCodec};
pub use behaviour::{Behaviour, KAD_PROTOCOL, RR_PROTOCOL};
pub use client::NetClient;
pub use config::{node_key_from_file, NetAddrs, NetConfig, DEFAULT_LISTEN};

use super::metrics::Metrics;
use anyhow::{Context, Result};
use behaviour::BehaviourEvent;
use futures::StreamExt;
use libp2p::{gossipsub, multiaddr::Protocol, swarm::SwarmEvent, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use task::{NetTask, RelaySlot};
use tokio::sync::mpsc;

/// What the network task reports.
#[derive(Debug)]
pub enum NetEvent {
	/// A protocol message: via gossip (`from` = originator) or a direct request (`from` =
	/// the sending connection's peer).
	Message {
		/// Sender.
		from: PeerId,
		/// `wire::Envelope` bytes.
		data: Vec<u8>,
		/// Whether it came by gossip.
		gossip: bool,
	},
	/// First connection to a peer.
	Connected(PeerId),
	/// Last connection to a peer closed.
	Disconnected(PeerId),
	/// A new listen address.
	Listening(Multiaddr),
}

/// Build the swarm, start listening, spawn the network task. Returns the client and the
/// event stream.
pub async fn start(cfg: NetConfig) -> Result<(NetClient, mpsc::UnboundedReceiver<NetEvent>)> {
	let metrics = Arc::new(Metrics::default());
	let codec = WireCodec::new(cfg.max_message, metrics.clone());
	let keypair = cfg
		.addrs
		.node_key
		.clone()
		.unwrap_or_else(libp2p::identity::Keypair::generate_ed25519);
	let local_peer_id = keypair.public().to_peer_id();
	let mut swarm =
		behaviour::build_swarm(keypair, codec, cfg.request_timeout, cfg.addrs.relay_server)?;
	let topic = gossipsub::IdentTopic::new(cfg.topic.clone());
	swarm.behaviour_mut().gossipsub.subscribe(&topic).context("subscribe")?;
	for addr in &cfg.addrs.listen {
		swarm.listen_on(addr.clone()).with_context(|| format!("listen on {addr}"))?;
	}
	for addr in &cfg.addrs.external {
		swarm.add_external_address(addr.clone());
	}
	for addr in &cfg.addrs.bootstrap {
		if let Err(e) = swarm.dial(addr.clone()) {
			tracing::warn!(%addr, "dial bootstrap: {e}");
		}
	}
	let relays = dial_relays(&mut swarm, &cfg.addrs)?;
	warn_about_reachability(&cfg.addrs);
	let (tx, rx) = mpsc::unbounded_channel();
	let (etx, erx) = mpsc::unbounded_channel();
	let early = first_listen_addr(&mut swarm, &cfg.addrs, &etx).await;
	let listener = match direct::bind_addr(&cfg.addrs.listen, cfg.addrs.direct_port) {
		Some(addr) if !cfg.addrs.no_direct => {
			let l = direct::Listener::start(addr, cfg.max_message, etx.clone(), metrics.clone());
			Some(l.await.with_context(|| format!("direct path: listen on {addr}"))?)
		},
		_ => None,
	};
	let direct = direct::DirectPath::new(
		local_peer_id,
		listener.as_ref(),
		cfg.direct_offer_port,
		cfg.direct_min_bytes,
		tx.clone(),
		metrics.clone(),
	);
	let task = NetTask {
		swarm,
		topic,
		events: etx,
		pending: HashMap::new(),
		state: None,
		blobs: Default::default(),
		hello: None,
		outbox: Default::default(),
		ack_delay: cfg.ack_delay,
		held_acks: Vec::new(),
		metrics: metrics.clone(),
		bootstrap: cfg.addrs.bootstrap.clone(),
		relays,
		direct,
	};
	tokio::spawn(task.run(rx, early));
	let direct_port = listener.as_ref().map(|l| l.port());
	Ok((NetClient { tx, local_peer_id, metrics, direct_port }, erx))
}

/// Dial every relay (unless it is a bootstrap peer, dialled already) and return their slots.
/// Circuits are reserved once a relay is connected (see `NetTask::reserve`): asking while
/// our own dial to it is in flight makes libp2p drop the request.
fn dial_relays(swarm: &mut Swarm<Behaviour>, addrs: &NetAddrs) -> Result<Vec<RelaySlot>> {
	let mut relays = Vec::new();
	for relay in &addrs.relays {
		let id = relay.iter().find_map(|p| match p {
			Protocol::P2p(id) => Some(id),
			_ => None,
		});
		let id: PeerId =
			id.with_context(|| format!("--relay {relay}: needs /p2p/<relay peer id>"))?;
		if !addrs.bootstrap.contains(relay) {
			let _ = swarm.dial(relay.clone());
		}
		relays.push(RelaySlot { addr: relay.clone(), peer: id, listener: None });
	}
	Ok(relays)
}

/// Warn about settings under which peers cannot reach this node the way the user expects.
fn warn_about_reachability(addrs: &NetAddrs) {
	if addrs.relay_server && addrs.external.is_empty() {
		tracing::warn!(
			"--relay-server without --external-address: libp2p serves circuits only on a \
			 confirmed external address; none can be reserved here until AutoNAT confirms one"
		);
	}
	if !addrs.relays.is_empty() && addrs.external.is_empty() {
		tracing::warn!(
			relays = ?addrs.relays,
			"peers without a direct path reach this trainer only through the relay (every byte \
			 crosses it twice); give --external-address if this host is reachable directly"
		);
	}
}

/// Wait (up to 5 s) for the first listen address, reported at once so that callers can
/// print it; returns the other events seen meanwhile, for the task to handle first.
async fn first_listen_addr(
	swarm: &mut Swarm<Behaviour>,
	addrs: &NetAddrs,
	events: &mpsc::UnboundedSender<NetEvent>,
) -> Vec<SwarmEvent<BehaviourEvent>> {
	let mut early = Vec::new();
	let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
	while !addrs.listen.is_empty() {
		match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
			Ok(SwarmEvent::NewListenAddr { address, .. }) => {
				let _ = events.send(NetEvent::Listening(address));
				break;
			},
			Ok(other) => early.push(other),
			Err(_) => break,
		}
	}
	early
}
