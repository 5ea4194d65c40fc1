//! Peer-to-peer averaging: a libp2p swarm owned by one task ([`net`]) speaking a framed
//! request-response codec ([`codec`]), signed protocol
//! messages ([`wire`]), the round protocol ([`round`]), roles ([`roles`]) and counters
//! ([`metrics`]).

pub mod blobs;
pub mod codec;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod roles;
pub mod round;
pub mod wire;

pub use metrics::Metrics;
pub use net::{start as start_network, NetClient, NetConfig, NetEvent};
pub use round::{
	Byzantine, LocalTrainer, LocalUpdate, Peer, PeerConfig, RoundReport, Scheme, StateSnapshot,
};
