//! The direct path: large messages (update chunks, reduced chunks) go to a peer over a TCP
//! connection of their own, AES-256-GCM sealed, instead of through yamux and noise.
//!
//! Why: a libp2p stream pays for the yamux framing and window, noise's ChaCha20-Poly1305
//! and several copies of every byte, all on the task that drives the connection. A direct
//! connection is a kernel socket with its own TCP window; the bytes are sealed once by a
//! per-peer sender task and opened in place by a per-connection reader task.
//!
//! How a peer gets one: on its first libp2p connection to a peer, each node offers a port and
//! a fresh random key ([`Request::DirectOffer`](super::Request::DirectOffer)), carried by the
//! noise-encrypted and peer-authenticated libp2p connection. A node sends a message directly
//! to a peer that offered one and is connected to it without a relay: it dials the IP of
//! that connection at the offered port, names itself, and the connection's key is derived
//! from the offered key and the listener's challenge (`seal.rs`). So the direct path
//! authenticates the sending peer as libp2p does (only that peer holds the key), and keeps
//! messages confidential. What it cannot do (no offer, a relayed connection, a refused or
//! broken socket) falls back to libp2p request-response, with the message's retry deadline.

mod link;
mod listen;
pub mod seal;

use super::client::Command;
use super::NetEvent;
use crate::p2p::metrics::Metrics;
use libp2p::{core::ConnectedPoint, multiaddr::Protocol, Multiaddr, PeerId};
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

pub use listen::Listener;

/// Messages at least this large take the direct path when it is there.
pub const DIRECT_MIN_BYTES: usize = 64 << 10;

/// One message for a peer's sender task.
pub(super) struct Outgoing {
	pub(super) data: Arc<Vec<u8>>,
	pub(super) retry_until: Option<Instant>,
}

/// Keys this node offered, by peer id bytes: the listener's accept side reads them.
pub(super) type OfferedKeys = Arc<Mutex<HashMap<Vec<u8>, [u8; 32]>>>;

/// The network task's part of the direct path.
pub(super) struct DirectPath {
	/// The port offered to peers (`None`: the direct path is off here).
	port: Option<u16>,
	offered: OfferedKeys,
	/// What peers offered: their port and key.
	offers: HashMap<PeerId, (u16, [u8; 32])>,
	/// Each peer's IP on a connection without a relay.
	ips: HashMap<PeerId, IpAddr>,
	/// Sender tasks by peer, with their generation.
	links: HashMap<PeerId, (u64, mpsc::UnboundedSender<Outgoing>)>,
	/// The generation of the next sender task.
	next_generation: u64,
	local: PeerId,
	commands: mpsc::UnboundedSender<Command>,
	metrics: Arc<Metrics>,
	min_bytes: usize,
	rng: ring::rand::SystemRandom,
}

impl DirectPath {
	/// The direct path of node `local`; `listener` (if any) gives the port to offer, unless
	/// `offer_port` overrides it (test-only: a port nothing listens on).
	pub(super) fn new(
		local: PeerId,
		listener: Option<&Listener>,
		offer_port: Option<u16>,
		min_bytes: usize,
		commands: mpsc::UnboundedSender<Command>,
		metrics: Arc<Metrics>,
	) -> Self {
		Self {
			port: listener.map(|l| offer_port.unwrap_or(l.port())),
			offered: listener.map(|l| l.keys()).unwrap_or_default(),
			offers: HashMap::new(),
			ips: HashMap::new(),
			links: HashMap::new(),
			next_generation: 0,
			local,
			commands,
			metrics,
			min_bytes,
			rng: ring::rand::SystemRandom::new(),
		}
	}

	/// A new offer for `peer` (replacing an older one), if the direct path is on here.
	pub(super) fn new_offer(&mut self, peer: PeerId) -> Option<super::Request> {
		let port = self.port?;
		let mut key = [0u8; 32];
		self.rng.fill(&mut key).ok()?;
		self.offered.lock().ok()?.insert(peer.to_bytes(), key);
		Some(super::Request::DirectOffer { port, key })
	}

	/// `peer` offered a direct path: use it from now on (a sender task to its older offer
	/// stops once its queue is dropped).
	pub(super) fn on_offer(&mut self, peer: PeerId, port: u16, key: [u8; 32]) {
		tracing::debug!(%peer, port, "direct path offered");
		self.offers.insert(peer, (port, key));
		self.links.remove(&peer);
	}

	/// Note the IP of a connection to `peer` that does not go through a relay.
	pub(super) fn on_connection(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
		let addr = match endpoint {
			ConnectedPoint::Dialer { address, .. } => address,
			ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
		};
		if let Some(ip) = direct_ip(addr) {
			self.ips.insert(peer, ip);
		}
	}

	/// Every connection to `peer` closed: forget its offer and ours (each side offers again
	/// when they meet again, perhaps as a restarted process), so that peers who come and go
	/// leave nothing behind.
	pub(super) fn on_disconnected(&mut self, peer: &PeerId) {
		self.offers.remove(peer);
		self.ips.remove(peer);
		self.links.remove(peer);
		if let Ok(mut offered) = self.offered.lock() {
			offered.remove(&peer.to_bytes());
		}
	}

	/// Sender task `generation` to `peer` gave up: until `peer` offers again, send by libp2p.
	/// A task from an older offer failing late changes nothing.
	pub(super) fn on_failed(&mut self, peer: &PeerId, generation: u64) {
		if self.links.get(peer).is_some_and(|(g, _)| *g == generation) {
			self.offers.remove(peer);
			self.links.remove(peer);
		}
	}

	/// Hand `data` to `peer`'s sender task if the direct path to it is there and the message
	/// is large enough; otherwise give it back.
	pub(super) fn try_send(&mut self, peer: PeerId, out: Outgoing) -> Result<(), Outgoing> {
		if out.data.len() < self.min_bytes {
			return Err(out);
		}
		let Some((_, link)) = self.link(peer) else { return Err(out) };
		link.send(out).map_err(|e| {
			self.links.remove(&peer);
			e.0
		})
	}

	fn link(&mut self, peer: PeerId) -> Option<&(u64, mpsc::UnboundedSender<Outgoing>)> {
		if !self.links.contains_key(&peer) {
			let (port, key) = *self.offers.get(&peer)?;
			let ip = *self.ips.get(&peer)?;
			let (tx, rx) = mpsc::unbounded_channel();
			let generation = self.next_generation;
			self.next_generation += 1;
			let task = link::Link {
				peer,
				generation,
				addr: SocketAddr::new(ip, port),
				key,
				local: self.local,
				commands: self.commands.clone(),
				metrics: self.metrics.clone(),
			};
			tokio::spawn(task.run(rx));
			self.links.insert(peer, (generation, tx));
		}
		self.links.get(&peer)
	}
}

/// The IP of `addr` if it reaches the peer without a relay.
fn direct_ip(addr: &Multiaddr) -> Option<IpAddr> {
	if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
		return None;
	}
	addr.iter().find_map(|p| match p {
		Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
		Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
		_ => None,
	})
}

/// Where the direct listener binds: the IP of the first IP listen address (`0.0.0.0` for
/// every interface), at `port`.
pub(super) fn bind_addr(listen: &[Multiaddr], port: u16) -> Option<SocketAddr> {
	listen.iter().find_map(direct_ip).map(|ip| SocketAddr::new(ip, port))
}

/// Report a message that arrived directly.
pub(super) fn deliver(events: &mpsc::UnboundedSender<NetEvent>, from: PeerId, data: Vec<u8>) {
	let _ = events.send(NetEvent::Message { from, data, gossip: false });
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn relayed_addresses_have_no_direct_ip() {
		let direct: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().unwrap();
		let quic: Multiaddr = "/ip6/::1/udp/9/quic-v1".parse().unwrap();
		let relayed: Multiaddr =
			"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
				.parse()
				.unwrap();
		assert_eq!(direct_ip(&direct), Some("10.0.0.2".parse().unwrap()));
		assert_eq!(direct_ip(&quic), Some("::1".parse().unwrap()));
		assert_eq!(direct_ip(&relayed), None);
		assert_eq!(bind_addr(&[relayed, direct], 5).unwrap().to_string(), "10.0.0.2:5");
	}
}
