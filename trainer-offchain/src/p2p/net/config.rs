//! What a node is told: where to listen, whom to dial, which relays to use, its identity.

use anyhow::{anyhow, Context, Result};
use libp2p::Multiaddr;
use std::time::Duration;

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
	/// Where to listen, whom to dial first, what to announce, which relays to use.
	pub addrs: NetAddrs,
	/// Gossipsub topic (one per job).
	pub topic: String,
	/// Largest accepted request-response frame.
	pub max_message: usize,
	/// Request-response timeout.
	pub request_timeout: Duration,
	/// Test-only misbehaviour: acknowledge every received message this much later (a
	/// recipient that would hold back senders waiting for it).
	pub ack_delay: Option<Duration>,
	/// Messages at least this large take the direct path where there is one.
	pub direct_min_bytes: usize,
	/// Test-only: offer this port for the direct path instead of the listener's (a path that
	/// fails, so that senders fall back to libp2p).
	pub direct_offer_port: Option<u16>,
}

/// Where a node listens, whom it dials first and how others reach it.
#[derive(Clone, Debug, Default)]
pub struct NetAddrs {
	/// Addresses to listen on.
	pub listen: Vec<Multiaddr>,
	/// Peers to dial at start.
	pub bootstrap: Vec<Multiaddr>,
	/// Externally reachable addresses to announce.
	pub external: Vec<Multiaddr>,
	/// Relays to be reachable through (`/ip4/…/tcp/…/p2p/<relay id>`): this node reserves a
	/// circuit on each and announces the relayed address.
	pub relays: Vec<Multiaddr>,
	/// Relay circuits for other peers.
	pub relay_server: bool,
	/// This node's libp2p identity (`None`: a new one each start). A relay or bootstrap peer
	/// that others name by peer id needs a stable one (see [`node_key_from_file`]).
	pub node_key: Option<libp2p::identity::Keypair>,
	/// No direct path (see [`super::direct`]): every message goes through libp2p.
	pub no_direct: bool,
	/// TCP port of the direct path's listener (0: an ephemeral one), at the IP of the first
	/// listen address.
	pub direct_port: u16,
}

/// The node key kept in `path`: the hex of a 32-byte ed25519 secret, created (readable by
/// the owner only) if the file does not exist, so the peer id survives restarts.
pub fn node_key_from_file(path: &std::path::Path) -> Result<libp2p::identity::Keypair> {
	use std::io::Write as _;
	if !path.exists() {
		let key = libp2p::identity::ed25519::Keypair::generate();
		let mut opts = std::fs::OpenOptions::new();
		opts.write(true).create_new(true);
		#[cfg(unix)]
		std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
		let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
		writeln!(f, "{}", hex::encode(key.secret().as_ref()))?;
		tracing::info!(file = %path.display(), "wrote a new node key");
	}
	let text = std::fs::read_to_string(path)
		.with_context(|| format!("reading node key {}", path.display()))?;
	let mut secret = hex::decode(text.trim())
		.with_context(|| format!("{}: expected the hex of a 32-byte secret", path.display()))?;
	let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes(&mut secret)
		.map_err(|e| anyhow!("{}: not an ed25519 secret: {e}", path.display()))?;
	Ok(libp2p::identity::ed25519::Keypair::from(secret).into())
}

/// The default listen addresses of the CLI: every interface, TCP and QUIC, ephemeral ports.
pub const DEFAULT_LISTEN: [&str; 2] = ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"];

impl NetConfig {
	/// Defaults for a job: loopback TCP on an ephemeral port.
	pub fn for_job(job_id: u64) -> Self {
		Self {
			addrs: NetAddrs {
				listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap_or_else(|_| Multiaddr::empty())],
				..NetAddrs::default()
			},
			topic: format!("trainchain/job/{job_id}"),
			max_message: 256 << 20,
			request_timeout: Duration::from_secs(120),
			ack_delay: None,
			direct_min_bytes: super::direct::DIRECT_MIN_BYTES,
			direct_offer_port: None,
		}
	}

	/// These settings with `addrs`' listen, bootstrap and external addresses.
	pub fn with_addrs(mut self, addrs: &NetAddrs) -> Self {
		self.addrs = addrs.clone();
		self
	}
}
