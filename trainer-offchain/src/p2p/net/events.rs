//! What the network task does with each swarm event: connections and listeners, discovery
//! and reachability, gossip, and request-response (messages in, answers and failures of
//! its own requests).

use super::super::codec::{Request, Response};
use super::super::outbox;
use super::behaviour::BehaviourEvent;
use super::task::{NetTask, Pending};
use super::NetEvent;
use anyhow::anyhow;
use libp2p::{
	autonat,
	core::ConnectedPoint,
	gossipsub, identify, kad, relay,
	request_response::{self, OutboundRequestId, ResponseChannel},
	swarm::{dial_opts::DialOpts, SwarmEvent},
	PeerId,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

impl NetTask {
	pub(super) fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
		match ev {
			SwarmEvent::NewListenAddr { address, .. } => {
				tracing::info!(%address, peer_id = %self.swarm.local_peer_id(), "listening");
				self.emit(NetEvent::Listening(address));
			},
			SwarmEvent::ConnectionEstablished { peer_id, num_established, endpoint, .. } => {
				self.on_connected(peer_id, num_established.get(), &endpoint)
			},
			SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
				tracing::debug!(%peer_id, "disconnected");
				self.direct.on_disconnected(&peer_id);
				self.emit(NetEvent::Disconnected(peer_id));
			},
			SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
				for slot in self.relays.iter_mut().filter(|r| r.listener == Some(listener_id)) {
					tracing::info!(relay = %slot.addr, ?reason, "relay circuit closed; will reserve again");
					slot.listener = None;
				}
			},
			SwarmEvent::ExternalAddrConfirmed { address } => {
				tracing::info!(%address, "external address confirmed");
			},
			SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
			_ => {},
		}
	}

	/// A new connection: remember a dialled address for discovery, reserve a circuit if the
	/// peer is one of our relays, and greet a peer met for the first time.
	fn on_connected(&mut self, peer_id: PeerId, connections: u32, endpoint: &ConnectedPoint) {
		if endpoint.is_dialer() {
			let addr = endpoint.get_remote_address().clone();
			self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
		}
		if self.relays.iter().any(|r| r.peer == peer_id) {
			self.reserve();
		}
		self.direct.on_connection(peer_id, endpoint);
		if connections == 1 {
			tracing::debug!(%peer_id, "connected");
			if let Some(offer) = self.direct.new_offer(peer_id) {
				self.swarm.behaviour_mut().rr.send_request(&peer_id, offer);
			}
			if let Some(h) = self.hello.clone() {
				self.send_msg(peer_id, h, None, None);
			}
			self.emit(NetEvent::Connected(peer_id));
		}
	}

	fn on_behaviour(&mut self, ev: BehaviourEvent) {
		match ev {
			BehaviourEvent::Rr(ev) => self.on_request_response(ev),
			BehaviourEvent::Gossipsub(gossipsub::Event::Message {
				propagation_source,
				message,
				..
			}) => {
				self.metrics.bytes_received.fetch_add(message.data.len() as u64, Relaxed);
				let from = message.source.unwrap_or(propagation_source);
				self.emit(NetEvent::Message { from, data: message.data, gossip: true });
			},
			BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
				for addr in info.listen_addrs {
					self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
				}
				if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
					tracing::debug!("kad bootstrap: {e}");
				}
			},
			BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })
				if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() =>
			{
				let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
			},
			BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
				log_nat_status(new)
			},
			BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
				relay_peer_id,
				..
			}) => tracing::info!(relay = %relay_peer_id, "reserved a relay circuit"),
			BehaviourEvent::Dcutr(ev) => tracing::debug!(?ev, "hole punching"),
			_ => {},
		}
	}

	fn on_request_response(&mut self, ev: request_response::Event<Request, Response>) {
		match ev {
			request_response::Event::Message { peer, message, .. } => match message {
				request_response::Message::Request { request, channel, .. } => {
					self.on_request(peer, request, channel)
				},
				request_response::Message::Response { request_id, response } => {
					self.on_response(request_id, response)
				},
			},
			request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
				self.on_outbound_failure(peer, request_id, error)
			},
			request_response::Event::InboundFailure { peer, error, .. } => {
				tracing::warn!(%peer, "inbound request failed: {error}");
			},
			request_response::Event::ResponseSent { .. } => {},
		}
	}

	/// A peer's request: acknowledge a message (now, or later in tests) and pass it on;
	/// answer a state or blob request from what this node serves.
	fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
		match request {
			Request::Msg(data) => {
				match self.ack_delay {
					Some(d) => self.held_acks.push((Instant::now() + d, channel)),
					None => self.respond(channel, Response::Ack),
				}
				let data = Arc::try_unwrap(data).unwrap_or_else(|d| d.as_ref().clone());
				self.emit(NetEvent::Message { from: peer, data, gossip: false });
			},
			Request::GetState => {
				let r = match &self.state {
					Some(s) => Response::State(s.as_ref().clone()),
					None => Response::Refused,
				};
				self.respond(channel, r);
			},
			Request::DirectOffer { port, key } => {
				self.respond(channel, Response::Ack);
				self.direct.on_offer(peer, port, key);
			},
			Request::GetBlob(hash) => {
				let r = match self.blobs.get(&hash) {
					Some(b) => Response::Blob(b.as_ref().clone()),
					None => Response::Refused,
				};
				self.respond(channel, r);
			},
		}
	}

	/// The answer to one of our requests, for whoever waits for it.
	fn on_response(&mut self, request_id: OutboundRequestId, response: Response) {
		match (self.pending.remove(&request_id), response) {
			(Some(Pending::Send(Some(r), _)), _) => {
				let _ = r.send(Ok(()));
			},
			(Some(Pending::State(r)), Response::State(b) | Response::Blob(b)) => {
				let _ = r.send(Ok(Some(b)));
			},
			(Some(Pending::State(r)), _) => {
				let _ = r.send(Ok(None));
			},
			_ => {},
		}
	}

	/// One of our requests failed: tell whoever waits, or schedule a retry of a message
	/// sent with a deadline.
	fn on_outbound_failure(
		&mut self,
		peer: PeerId,
		request_id: OutboundRequestId,
		error: request_response::OutboundFailure,
	) {
		tracing::debug!(%peer, "request failed: {error}");
		match self.pending.remove(&request_id) {
			Some(Pending::Send(Some(r), _)) => {
				let _ = r.send(Err(anyhow!("request to {peer} failed: {error}")));
			},
			Some(Pending::Send(None, Some(resend))) if outbox::retryable(&error) => {
				self.retry_later(resend, &error);
			},
			Some(Pending::State(r)) => {
				let _ = r.send(Err(anyhow!("state request to {peer} failed: {error}")));
			},
			_ => {},
		}
	}
}

fn log_nat_status(status: autonat::NatStatus) {
	match status {
		autonat::NatStatus::Public(addr) => {
			tracing::info!(%addr, "AutoNAT: reachable directly at this address")
		},
		autonat::NatStatus::Private => tracing::warn!(
			"AutoNAT: peers cannot dial this trainer back; give --relay (or open a port and \
			 --external-address) so peers without a path to it can reach it"
		),
		autonat::NatStatus::Unknown => {},
	}
}
