//! The libp2p swarm and the one task that owns it.
//!
//! Transports: TCP + noise + yamux, and QUIC. Behaviours: identify, Kademlia (discovery,
//! server mode, plus explicit bootstrap addresses), gossipsub (round announcements) and
//! request-response with a length-prefixed codec (update transfer; messages larger than
//! `max_message` are refused). The rest of the program talks to the task through a
//! cloneable [`NetClient`] (commands over an mpsc channel, replies over oneshots) and reads
//! [`NetEvent`]s from an unbounded receiver. The network layer only moves bytes: decoding,
//! signature checks and the round protocol live in `p2p::wire` / `p2p::round`.

pub use super::codec::{Request, Response, WireCodec};
use super::metrics::Metrics;
use super::outbox::{self, Outbox, Resend};
use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use libp2p::{
	autonat, dcutr, gossipsub, identify, kad,
	multiaddr::Protocol,
	relay,
	request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
	swarm::{behaviour::toggle::Toggle, dial_opts::DialOpts, NetworkBehaviour, SwarmEvent},
	Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

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
		}
	}

	/// These settings with `addrs`' listen, bootstrap and external addresses.
	pub fn with_addrs(mut self, addrs: &NetAddrs) -> Self {
		self.addrs = addrs.clone();
		self
	}
}

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

enum Command {
	Publish(Vec<u8>),
	Send {
		peer: PeerId,
		data: Arc<Vec<u8>>,
		reply: Option<oneshot::Sender<Result<()>>>,
		/// Re-send after a failed request until then.
		retry_until: Option<Instant>,
	},
	FetchState {
		peer: PeerId,
		reply: oneshot::Sender<Result<Option<Vec<u8>>>>,
	},
	SetState(Arc<Vec<u8>>),
	FetchBlob {
		peer: PeerId,
		hash: [u8; 32],
		reply: oneshot::Sender<Result<Option<Vec<u8>>>>,
	},
	PutBlob([u8; 32], Arc<Vec<u8>>),
	SetHello(Arc<Vec<u8>>),
	Dial(Multiaddr),
	Peers(oneshot::Sender<Vec<PeerId>>),
	ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
	Shutdown,
}

/// Cloneable handle to the network task.
#[derive(Clone)]
pub struct NetClient {
	tx: mpsc::UnboundedSender<Command>,
	local_peer_id: PeerId,
	metrics: Arc<Metrics>,
}

impl NetClient {
	/// This node's libp2p id.
	pub fn local_peer_id(&self) -> PeerId {
		self.local_peer_id
	}

	/// Shared counters.
	pub fn metrics(&self) -> &Arc<Metrics> {
		&self.metrics
	}

	fn cmd(&self, c: Command) -> Result<()> {
		self.tx.send(c).map_err(|_| anyhow!("network task stopped"))
	}

	/// Publish on the job's gossip topic.
	pub fn publish(&self, data: Vec<u8>) -> Result<()> {
		self.cmd(Command::Publish(data))
	}

	/// Send a message by request-response and wait for the acknowledgement.
	pub async fn send(&self, peer: PeerId, data: Vec<u8>) -> Result<()> {
		let (reply, rx) = oneshot::channel();
		self.cmd(Command::Send {
			peer,
			data: Arc::new(data),
			reply: Some(reply),
			retry_until: None,
		})?;
		rx.await.map_err(|_| anyhow!("network task stopped"))?
	}

	/// Send without waiting (failures are logged by the network task).
	pub fn send_nowait(&self, peer: PeerId, data: Vec<u8>) -> Result<()> {
		self.cmd(Command::Send { peer, data: Arc::new(data), reply: None, retry_until: None })
	}

	/// Send without waiting; if the request fails on the way (connection closed, dial
	/// failure, I/O error) send it again, with backoff, until `until` (see
	/// [`super::outbox`]). `data` may be shared with other recipients.
	pub fn send_retrying(&self, peer: PeerId, data: Arc<Vec<u8>>, until: Instant) -> Result<()> {
		self.cmd(Command::Send { peer, data, reply: None, retry_until: Some(until) })
	}

	/// Ask `peer` for its model state (`None` if it has none to give).
	pub async fn fetch_state(&self, peer: PeerId) -> Result<Option<Vec<u8>>> {
		let (reply, rx) = oneshot::channel();
		self.cmd(Command::FetchState { peer, reply })?;
		rx.await.map_err(|_| anyhow!("network task stopped"))?
	}

	/// Set the state served to `GetState` requests.
	pub fn set_state(&self, bytes: Vec<u8>) -> Result<()> {
		self.cmd(Command::SetState(Arc::new(bytes)))
	}

	/// Ask `peer` for the blob stored under `hash` (`None` if it has none). The caller checks
	/// that the bytes hash to `hash`.
	pub async fn fetch_blob(&self, peer: PeerId, hash: [u8; 32]) -> Result<Option<Vec<u8>>> {
		let (reply, rx) = oneshot::channel();
		self.cmd(Command::FetchBlob { peer, hash, reply })?;
		rx.await.map_err(|_| anyhow!("network task stopped"))?
	}

	/// Serve `bytes` to `GetBlob(hash)` requests (see [`super::blobs`]).
	pub fn put_blob(&self, hash: [u8; 32], bytes: Vec<u8>) -> Result<()> {
		self.cmd(Command::PutBlob(hash, Arc::new(bytes)))
	}

	/// Set the hello message sent to every (new and current) peer.
	pub fn set_hello(&self, bytes: Vec<u8>) -> Result<()> {
		self.cmd(Command::SetHello(Arc::new(bytes)))
	}

	/// Dial an address.
	pub fn dial(&self, addr: Multiaddr) -> Result<()> {
		self.cmd(Command::Dial(addr))
	}

	/// Currently connected peers.
	pub async fn connected_peers(&self) -> Result<Vec<PeerId>> {
		let (reply, rx) = oneshot::channel();
		self.cmd(Command::Peers(reply))?;
		rx.await.map_err(|_| anyhow!("network task stopped"))
	}

	/// Current listen addresses.
	pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>> {
		let (reply, rx) = oneshot::channel();
		self.cmd(Command::ListenAddrs(reply))?;
		rx.await.map_err(|_| anyhow!("network task stopped"))
	}

	/// Stop the network task.
	pub fn shutdown(&self) {
		let _ = self.cmd(Command::Shutdown);
	}
}

enum Pending {
	/// A message: who waits for its acknowledgement, and what to re-send if it fails.
	Send(Option<oneshot::Sender<Result<()>>>, Option<Resend>),
	State(oneshot::Sender<Result<Option<Vec<u8>>>>),
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
	let request_timeout = cfg.request_timeout;
	let relay_server = cfg.addrs.relay_server;
	let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
		.with_tokio()
		.with_tcp(
			libp2p::tcp::Config::default().nodelay(true),
			libp2p::noise::Config::new,
			libp2p::yamux::Config::default,
		)?
		.with_quic()
		.with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)?
		.with_behaviour(|key, relay_client| {
			let peer_id = key.public().to_peer_id();
			let gossip_cfg = gossipsub::ConfigBuilder::default()
				.heartbeat_interval(Duration::from_millis(500))
				.validation_mode(gossipsub::ValidationMode::Strict)
				.max_transmit_size(256 * 1024)
				.build()
				.map_err(|e| anyhow!("gossipsub config: {e}"))?;
			let gossipsub = gossipsub::Behaviour::new(
				gossipsub::MessageAuthenticity::Signed(key.clone()),
				gossip_cfg,
			)
			.map_err(|e| anyhow!("gossipsub: {e}"))?;
			let mut kad_cfg = kad::Config::new(KAD_PROTOCOL);
			kad_cfg.set_periodic_bootstrap_interval(Some(Duration::from_secs(5)));
			let mut kad = kad::Behaviour::with_config(
				peer_id,
				kad::store::MemoryStore::new(peer_id),
				kad_cfg,
			);
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
		})?
		.with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
		.build();
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
	// Circuits are reserved once the relay is connected (see `NetTask::reserve`): asking
	// while our own dial to it is in flight makes libp2p drop the request.
	let mut relays = Vec::new();
	for relay in &cfg.addrs.relays {
		let id = relay.iter().find_map(|p| match p {
			Protocol::P2p(id) => Some(id),
			_ => None,
		});
		let id = id.with_context(|| format!("--relay {relay}: needs /p2p/<relay peer id>"))?;
		if !cfg.addrs.bootstrap.contains(relay) {
			let _ = swarm.dial(relay.clone());
		}
		relays.push(RelaySlot { addr: relay.clone(), peer: id, listener: None });
	}
	if cfg.addrs.relay_server && cfg.addrs.external.is_empty() {
		tracing::warn!(
			"--relay-server without --external-address: libp2p serves circuits only on a \
			 confirmed external address; none can be reserved here until AutoNAT confirms one"
		);
	}
	if !cfg.addrs.relays.is_empty() && cfg.addrs.external.is_empty() {
		tracing::warn!(
			relays = ?cfg.addrs.relays,
			"peers without a direct path reach this trainer only through the relay (every byte \
			 crosses it twice); give --external-address if this host is reachable directly"
		);
	}
	let (tx, rx) = mpsc::unbounded_channel();
	let (etx, erx) = mpsc::unbounded_channel();
	// Wait for the first listen address so callers can print it.
	let mut early = Vec::new();
	let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
	while !cfg.addrs.listen.is_empty() {
		match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
			Ok(SwarmEvent::NewListenAddr { address, .. }) => {
				let _ = etx.send(NetEvent::Listening(address));
				break;
			},
			Ok(other) => early.push(other),
			Err(_) => break,
		}
	}
	let task = NetTask {
		swarm,
		topic,
		events: etx,
		pending: HashMap::new(),
		state: None,
		blobs: Default::default(),
		hello: None,
		outbox: Outbox::default(),
		ack_delay: cfg.ack_delay,
		held_acks: Vec::new(),
		metrics: metrics.clone(),
		bootstrap: cfg.addrs.bootstrap.clone(),
		relays,
	};
	tokio::spawn(task.run(rx, early));
	Ok((NetClient { tx, local_peer_id, metrics }, erx))
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

struct NetTask {
	swarm: Swarm<Behaviour>,
	topic: gossipsub::IdentTopic,
	events: mpsc::UnboundedSender<NetEvent>,
	pending: HashMap<OutboundRequestId, Pending>,
	state: Option<Arc<Vec<u8>>>,
	blobs: super::blobs::BlobStore,
	hello: Option<Arc<Vec<u8>>>,
	outbox: Outbox,
	/// See [`NetConfig::ack_delay`]: acknowledgements held until their time.
	ack_delay: Option<Duration>,
	held_acks: Vec<(Instant, ResponseChannel<Response>)>,
	metrics: Arc<Metrics>,
	bootstrap: Vec<Multiaddr>,
	relays: Vec<RelaySlot>,
}

/// A relay this node is reachable through, and its circuit listener once reserved.
struct RelaySlot {
	addr: Multiaddr,
	peer: PeerId,
	listener: Option<libp2p::core::transport::ListenerId>,
}

impl NetTask {
	/// Reserve a circuit on every connected relay that has none.
	fn reserve(&mut self) {
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

	async fn run(
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
				_ = redial.tick() => {
					// Keep the bootstrap peers connected (e.g. after they restart).
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
			}
		}
		tracing::debug!("network task stopped");
	}

	fn emit(&self, ev: NetEvent) {
		let _ = self.events.send(ev);
	}

	fn send_msg(
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

	/// Schedule another try of a failed message, or give it up at its deadline.
	fn retry_later(&mut self, resend: Resend, error: &request_response::OutboundFailure) {
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
			Command::Send { peer, data, reply, retry_until } => {
				let resend =
					retry_until.map(|until| Resend { peer, data: data.clone(), until, tries: 0 });
				self.send_msg(peer, data, reply, resend)
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

	fn respond(&mut self, channel: ResponseChannel<Response>, r: Response) {
		if self.swarm.behaviour_mut().rr.send_response(channel, r).is_err() {
			tracing::debug!("response channel closed");
		}
	}

	fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
		match ev {
			SwarmEvent::NewListenAddr { address, .. } => {
				tracing::info!(%address, peer_id = %self.swarm.local_peer_id(), "listening");
				self.emit(NetEvent::Listening(address));
			},
			SwarmEvent::ConnectionEstablished { peer_id, num_established, endpoint, .. } => {
				if endpoint.is_dialer() {
					self.swarm
						.behaviour_mut()
						.kad
						.add_address(&peer_id, endpoint.get_remote_address().clone());
				}
				if self.relays.iter().any(|r| r.peer == peer_id) {
					self.reserve();
				}
				if num_established.get() == 1 {
					tracing::debug!(%peer_id, "connected");
					if let Some(h) = self.hello.clone() {
						self.send_msg(peer_id, h, None, None);
					}
					self.emit(NetEvent::Connected(peer_id));
				}
			},
			SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
				relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
			)) => {
				tracing::info!(relay = %relay_peer_id, "reserved a relay circuit");
			},
			SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
				for slot in self.relays.iter_mut().filter(|r| r.listener == Some(listener_id)) {
					tracing::info!(relay = %slot.addr, ?reason, "relay circuit closed; will reserve again");
					slot.listener = None;
				}
			},
			SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged {
				new,
				..
			})) => match new {
				autonat::NatStatus::Public(addr) => {
					tracing::info!(%addr, "AutoNAT: reachable directly at this address")
				},
				autonat::NatStatus::Private => tracing::warn!(
					"AutoNAT: peers cannot dial this trainer back; give --relay (or open a port \
					 and --external-address) so peers without a path to it can reach it"
				),
				autonat::NatStatus::Unknown => {},
			},
			SwarmEvent::ExternalAddrConfirmed { address } => {
				tracing::info!(%address, "external address confirmed");
			},
			SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => {
				tracing::debug!(?ev, "hole punching");
			},
			SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
				tracing::debug!(%peer_id, "disconnected");
				self.emit(NetEvent::Disconnected(peer_id));
			},
			SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
				peer_id,
				info,
				..
			})) => {
				for addr in info.listen_addrs {
					self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
				}
				if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
					tracing::debug!("kad bootstrap: {e}");
				}
			},
			SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
				peer, ..
			})) if !self.swarm.is_connected(&peer) && peer != *self.swarm.local_peer_id() => {
				let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
			},
			SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
				propagation_source,
				message,
				..
			})) => {
				self.metrics.bytes_received.fetch_add(message.data.len() as u64, Relaxed);
				let from = message.source.unwrap_or(propagation_source);
				self.emit(NetEvent::Message { from, data: message.data, gossip: true });
			},
			SwarmEvent::Behaviour(BehaviourEvent::Rr(request_response::Event::Message {
				peer,
				message,
				..
			})) => match message {
				request_response::Message::Request { request, channel, .. } => match request {
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
					Request::GetBlob(hash) => {
						let r = match self.blobs.get(&hash) {
							Some(b) => Response::Blob(b.as_ref().clone()),
							None => Response::Refused,
						};
						self.respond(channel, r);
					},
				},
				request_response::Message::Response { request_id, response } => {
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
				},
			},
			SwarmEvent::Behaviour(BehaviourEvent::Rr(
				request_response::Event::OutboundFailure { peer, request_id, error, .. },
			)) => {
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
			},
			SwarmEvent::Behaviour(BehaviourEvent::Rr(
				request_response::Event::InboundFailure { peer, error, .. },
			)) => {
				tracing::warn!(%peer, "inbound request failed: {error}");
			},
			_ => {},
		}
	}
}
