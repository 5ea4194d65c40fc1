//! The one task that owns the swarm: it runs commands from [`NetClient`]s, re-sends failed
//! messages, holds test-only delayed acknowledgements and turns swarm events into
//! [`NetEvent`]s (see `events.rs`).
//!
//! [`NetClient`]: super::NetClient

use super::super::codec::{Request, Response};
use super::super::metrics::Metrics;
use super::super::outbox::{Outbox, Resend};
use super::behaviour::{Behaviour, BehaviourEvent};
use super::client::Command;
use super::direct::Outgoing;
use super::NetEvent;
use anyhow::Result;
use futures::StreamExt;
use libp2p::{
	gossipsub,
	multiaddr::Protocol,
	request_response::{self, OutboundRequestId, ResponseChannel},
	swarm::SwarmEvent,
	Multiaddr, PeerId, Swarm,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A request in flight: what to do with its answer or its failure.
pub(super) enum Pending {
	/// A message: who waits for its acknowledgement, and what to re-send if it fails.
	Send(Option<oneshot::Sender<Result<()>>>, Option<Resend>),
	State(oneshot::Sender<Result<Option<Vec<u8>>>>),
}

/// The network task: the swarm and what it keeps between events.
pub(super) struct NetTask {
	pub(super) swarm: Swarm<Behaviour>,
	pub(super) topic: gossipsub::IdentTopic,
	pub(super) events: mpsc::UnboundedSender<NetEvent>,
	pub(super) pending: HashMap<OutboundRequestId, Pending>,
	pub(super) state: Option<Arc<Vec<u8>>>,
	pub(super) blobs: super::super::blobs::BlobStore,
	pub(super) hello: Option<Arc<Vec<u8>>>,
	pub(super) outbox: Outbox,
	/// See [`NetConfig::ack_delay`]: acknowledgements held until their time.
	pub(super) ack_delay: Option<Duration>,
	pub(super) held_acks: Vec<(Instant, ResponseChannel<Response>)>,
	pub(super) metrics: Arc<Metrics>,
	pub(super) bootstrap: Vec<Multiaddr>,
	pub(super) relays: Vec<RelaySlot>,
	pub(super) direct: super::direct::DirectPath,
}

/// A relay this node is reachable through, and its circuit listener once reserved.
pub(super) struct RelaySlot {
	pub(super) addr: Multiaddr,
	pub(super) peer: PeerId,
	pub(super) listener: Option<libp2p::core::transport::ListenerId>,
}

impl NetTask {
	/// Reserve a circuit on every connected relay that has none.
	pub(super) fn reserve(&mut self) {
		for slot in &mut self.relays {
			if slot.listener.is_none() && self.swarm.is_connected(&slot.peer) {
				let circuit = slot.addr.clone().with(Protocol::P2pCircuit);
				match self.swarm.listen_on(circuit) {
					Ok(id) => slot.listener = Some(id),
					Err(e) => tracing::warn!(relay = %slot.addr, "listen through relay: {e}"),
				}
			}
		}
	}

	pub(super) async fn run(
		mut self,
		mut rx: mpsc::UnboundedReceiver<Command>,
		early: Vec<SwarmEvent<BehaviourEvent>>,
	) {
		for ev in early {
			self.on_swarm(ev);
		}
		let mut redial = tokio::time::interval(Duration::from_secs(3));
		let mut resend = tokio::time::interval(Duration::from_millis(100));
		loop {
			tokio::select! {
				cmd = rx.recv() => match cmd {
					None | Some(Command::Shutdown) => break,
					Some(c) => self.on_command(c),
				},
				ev = self.swarm.select_next_some() => self.on_swarm(ev),
				_ = resend.tick(), if self.has_timed_work() => self.timed_work(),
				_ = redial.tick() => self.keep_connected(),
			}
		}
		tracing::debug!("network task stopped");
	}

	/// Redial the bootstrap peers when no peer is left (e.g. after they restart) and every
	/// relay that is not connected; reserve circuits on the relays that are.
	fn keep_connected(&mut self) {
		if self.swarm.connected_peers().next().is_none() {
			for addr in self.bootstrap.clone() {
				let _ = self.swarm.dial(addr);
			}
		}
		for slot in &self.relays {
			if !self.swarm.is_connected(&slot.peer) {
				let _ = self.swarm.dial(slot.addr.clone());
			}
		}
		self.reserve();
	}

	pub(super) fn emit(&self, ev: NetEvent) {
		let _ = self.events.send(ev);
	}

	pub(super) fn send_msg(
		&mut self,
		peer: PeerId,
		data: Arc<Vec<u8>>,
		reply: Option<oneshot::Sender<Result<()>>>,
		resend: Option<Resend>,
	) {
		let id = self.swarm.behaviour_mut().rr.send_request(&peer, Request::Msg(data));
		self.metrics.messages_sent.fetch_add(1, Relaxed);
		self.pending.insert(id, Pending::Send(reply, resend));
	}

	/// Send by request-response, re-sent on failure until the message's deadline (if any).
	fn send_by_libp2p(&mut self, peer: PeerId, out: Outgoing) {
		let Outgoing { data, retry_until } = out;
		let resend = resend_until(peer, &data, retry_until);
		self.send_msg(peer, data, None, resend)
	}

	/// Schedule another try of a failed message, or give it up at its deadline.
	pub(super) fn retry_later(
		&mut self,
		resend: Resend,
		error: &request_response::OutboundFailure,
	) {
		let peer = resend.peer;
		if !self.outbox.schedule(resend, Instant::now()) {
			tracing::warn!(%peer, "message not delivered before its deadline: {error}");
		}
	}

	/// Whether a retry or a held acknowledgement waits for its time.
	fn has_timed_work(&self) -> bool {
		!self.outbox.is_empty() || !self.held_acks.is_empty()
	}

	/// Send what is due: retries and held acknowledgements.
	fn timed_work(&mut self) {
		self.resend_due();
		let now = Instant::now();
		let (due, held): (Vec<_>, Vec<_>) =
			std::mem::take(&mut self.held_acks).into_iter().partition(|(at, _)| *at <= now);
		self.held_acks = held;
		for (_, channel) in due {
			self.respond(channel, Response::Ack);
		}
	}

	/// Send the messages whose retry is due.
	fn resend_due(&mut self) {
		for r in self.outbox.take_due(Instant::now()) {
			self.metrics.sends_retried.fetch_add(1, Relaxed);
			tracing::debug!(peer = %r.peer, tries = r.tries, "sending again");
			self.send_msg(r.peer, r.data.clone(), None, Some(r));
		}
	}

	fn on_command(&mut self, c: Command) {
		match c {
			Command::Publish(data) => {
				let peers = self.swarm.behaviour().gossipsub.all_peers().count() as u64;
				let len = data.len() as u64;
				match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), data) {
					Ok(_) => {
						self.metrics.bytes_sent.fetch_add(len * peers, Relaxed);
						self.metrics.messages_sent.fetch_add(1, Relaxed);
					},
					Err(e) => tracing::debug!("gossip publish: {e}"),
				}
			},
			Command::Send { peer, data, reply: None, retry_until } => {
				match self.direct.try_send(peer, Outgoing { data, retry_until }) {
					Ok(()) => {
						self.metrics.messages_sent.fetch_add(1, Relaxed);
					},
					Err(out) => self.send_by_libp2p(peer, out),
				}
			},
			Command::Send { peer, data, reply, retry_until } => {
				let resend = resend_until(peer, &data, retry_until);
				self.send_msg(peer, data, reply, resend)
			},
			Command::DirectFailed { peer, generation, unsent } => {
				self.direct.on_failed(&peer, generation);
				for out in unsent {
					self.send_by_libp2p(peer, out);
				}
			},
			Command::FetchState { peer, reply } => {
				let id = self.swarm.behaviour_mut().rr.send_request(&peer, Request::GetState);
				self.pending.insert(id, Pending::State(reply));
			},
			Command::SetState(s) => self.state = Some(s),
			Command::FetchBlob { peer, hash, reply } => {
				let id = self.swarm.behaviour_mut().rr.send_request(&peer, Request::GetBlob(hash));
				self.pending.insert(id, Pending::State(reply));
			},
			Command::PutBlob(hash, bytes) => self.blobs.put(hash, bytes),
			Command::SetHello(h) => {
				let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
				for p in peers {
					self.send_msg(p, h.clone(), None, None);
				}
				self.hello = Some(h);
			},
			Command::Dial(addr) => {
				if let Err(e) = self.swarm.dial(addr.clone()) {
					tracing::warn!(%addr, "dial: {e}");
				}
			},
			Command::Peers(reply) => {
				let _ = reply.send(self.swarm.connected_peers().copied().collect());
			},
			Command::ListenAddrs(reply) => {
				let _ = reply.send(self.swarm.listeners().cloned().collect());
			},
			Command::Shutdown => {},
		}
	}

	pub(super) fn respond(&mut self, channel: ResponseChannel<Response>, r: Response) {
		if self.swarm.behaviour_mut().rr.send_response(channel, r).is_err() {
			tracing::debug!("response channel closed");
		}
	}
}

/// What to send again if a request of `data` to `peer` fails, if it has a deadline.
fn resend_until(peer: PeerId, data: &Arc<Vec<u8>>, until: Option<Instant>) -> Option<Resend> {
	until.map(|until| Resend { peer, data: data.clone(), until, tries: 0 })
}
