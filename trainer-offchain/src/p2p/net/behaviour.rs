//! The swarm: transports (TCP + noise + yamux, QUIC, circuit relay) and the behaviours.

use super::super::codec::WireCodec;
use anyhow::{anyhow, Result};
use libp2p::{
	autonat, dcutr, gossipsub, identify, kad, relay,
	request_response::{self, ProtocolSupport},
	swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
	StreamProtocol, Swarm,
};
use std::time::Duration;

/// Request-response protocol name.
pub const RR_PROTOCOL: StreamProtocol = StreamProtocol::new("/trainchain/p2p/1");
/// Kademlia protocol name (private DHT per trainchain).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/trainchain/kad/1");

/// The combined behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
	/// Exchange of listen addresses and protocols.
	pub identify: identify::Behaviour,
	/// Peer discovery.
	pub kad: kad::Behaviour<kad::store::MemoryStore>,
	/// Round announcements.
	pub gossipsub: gossipsub::Behaviour,
	/// Update transfer and state sync.
	pub rr: request_response::Behaviour<WireCodec>,
	/// Circuit relay v2, client side: reach and be reached through a relay.
	pub relay_client: relay::client::Behaviour,
	/// Circuit relay v2, server side (`--relay-server`).
	pub relay: Toggle<relay::Behaviour>,
	/// Direct connection upgrade through relay: hole punching where a direct path exists.
	pub dcutr: dcutr::Behaviour,
	/// AutoNAT (v1): peers dial back the addresses others observe this node at; one they
	/// reach becomes a confirmed external address (what a relay server needs to serve
	/// circuits), so a reachable host needs no `--external-address`.
	pub autonat: autonat::Behaviour,
}

/// The swarm of a node with identity `keypair`: every transport, every behaviour, idle
/// connections kept for an hour (peers of a job talk every round).
pub(super) fn build_swarm(
	keypair: libp2p::identity::Keypair,
	codec: WireCodec,
	request_timeout: Duration,
	relay_server: bool,
) -> Result<Swarm<Behaviour>> {
	Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
		.with_tokio()
		.with_tcp(
			libp2p::tcp::Config::default().nodelay(true),
			libp2p::noise::Config::new,
			libp2p::yamux::Config::default,
		)?
		.with_quic()
		.with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)?
		.with_behaviour(|key, relay_client| {
			let b = behaviour(key, relay_client, codec, request_timeout, relay_server)?;
			Ok::<_, Box<dyn std::error::Error + Send + Sync>>(b)
		})?
		.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
		.build())
}

fn behaviour(
	key: &libp2p::identity::Keypair,
	relay_client: relay::client::Behaviour,
	codec: WireCodec,
	request_timeout: Duration,
	relay_server: bool,
) -> Result<Behaviour> {
	let peer_id = key.public().to_peer_id();
	let gossip_cfg = gossipsub::ConfigBuilder::default()
		.heartbeat_interval(Duration::from_millis(500))
		.validation_mode(gossipsub::ValidationMode::Strict)
		.max_transmit_size(256 * 1024)
		.build()
		.map_err(|e| anyhow!("gossipsub config: {e}"))?;
	let gossipsub =
		gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_cfg)
			.map_err(|e| anyhow!("gossipsub: {e}"))?;
	let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
	kad_cfg.set_periodic_bootstrap_interval(Some(Duration::from_secs(5)));
	let mut kad =
		kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_cfg);
	kad.set_mode(Some(kad::Mode::Server));
	// Push new listen addresses (a relayed one appears once a circuit is reserved) to
	// connected peers, so that peers learn them through Kademlia.
	let identify = identify::Behaviour::new(
		identify::Config::new("/trainchain/1.0.0".into(), key.public())
			.with_push_listen_addr_updates(true),
	);
	let rr = request_response::Behaviour::with_codec(
		codec,
		[(RR_PROTOCOL, ProtocolSupport::Full)],
		request_response::Config::default()
			.with_request_timeout(request_timeout)
			.with_max_concurrent_streams(256),
	);
	let relay = relay_server.then(|| relay::Behaviour::new(peer_id, relay_limits()));
	Ok(Behaviour {
		identify,
		kad,
		gossipsub,
		rr,
		relay_client,
		relay: relay.into(),
		dcutr: dcutr::Behaviour::new(peer_id),
		autonat: autonat::Behaviour::new(peer_id, autonat_config()),
	})
}

/// AutoNAT for trainer networks: the first probe soon after start (a relay server waits for
/// it), retried every 10 s until a status is known, and private addresses allowed (trainers on
/// one LAN or in a lab are reachable at them; a dial-back only goes to the address the asking
/// peer was observed at).
fn autonat_config() -> autonat::Config {
	autonat::Config {
		boot_delay: Duration::from_secs(2),
		retry_interval: Duration::from_secs(10),
		refresh_interval: Duration::from_secs(300),
		throttle_server_period: Duration::from_secs(5),
		only_global_ips: false,
		..autonat::Config::default()
	}
}

/// A relay for training traffic: libp2p's defaults (2 minutes and 128 KiB per circuit) are
/// made for hole punching, while a round moves whole updates through the circuit.
fn relay_limits() -> relay::Config {
	relay::Config {
		max_reservations: 1024,
		max_reservations_per_peer: 4,
		reservation_duration: Duration::from_secs(3600),
		max_circuits: 1024,
		max_circuits_per_peer: 64,
		max_circuit_duration: Duration::from_secs(24 * 3600),
		max_circuit_bytes: 1 << 40,
		..relay::Config::default()
	}
}
