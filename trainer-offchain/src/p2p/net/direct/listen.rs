//! The direct path's listener: accept connections, check their preface against the keys
//! this node offered, and turn every authenticated message into a [`NetEvent`].

use super::seal::{self, DirectError, Session};
use super::OfferedKeys;
use crate::p2p::metrics::Metrics;
use crate::p2p::net::NetEvent;
use libp2p::PeerId;
use ring::rand::SecureRandom;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// Open direct connections at most (each is one peer's sender; a dialler that names no
/// offered peer is dropped after its preface).
const MAX_CONNECTIONS: usize = 256;
/// How long a dialler has for its preface.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound direct listener and the keys it accepts.
pub struct Listener {
	port: u16,
	keys: OfferedKeys,
}

impl Listener {
	/// Bind `addr` and serve it: messages of at most `max` bytes go to `events`.
	pub(in crate::p2p::net) async fn start(
		addr: SocketAddr,
		max: usize,
		events: mpsc::UnboundedSender<NetEvent>,
		metrics: Arc<Metrics>,
	) -> std::io::Result<Self> {
		let listener = TcpListener::bind(addr).await?;
		let port = listener.local_addr()?.port();
		let keys = OfferedKeys::default();
		let serve = Serve { keys: keys.clone(), max, events, metrics };
		tokio::spawn(serve.accept_loop(listener));
		tracing::info!(addr = %SocketAddr::new(addr.ip(), port), "direct path listening");
		Ok(Self { port, keys })
	}

	/// The bound port.
	pub fn port(&self) -> u16 {
		self.port
	}

	pub(super) fn keys(&self) -> OfferedKeys {
		self.keys.clone()
	}
}

/// What the accept loop and each connection's reader share.
#[derive(Clone)]
struct Serve {
	keys: OfferedKeys,
	max: usize,
	events: mpsc::UnboundedSender<NetEvent>,
	metrics: Arc<Metrics>,
}

impl Serve {
	async fn accept_loop(self, listener: TcpListener) {
		let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
		loop {
			let Ok(permit) = slots.clone().acquire_owned().await else { return };
			let (stream, from) = match listener.accept().await {
				Ok(s) => s,
				Err(e) => {
					tracing::debug!("direct accept: {e}");
					continue;
				},
			};
			let serve = self.clone();
			tokio::spawn(async move {
				if let Err(e) = serve.read_connection(stream).await {
					serve.refused(from, &e);
				}
				drop(permit);
			});
		}
	}

	/// Serve one connection until it closes or breaks the format.
	async fn read_connection(&self, mut stream: TcpStream) -> Result<(), DirectError> {
		stream.set_nodelay(true)?;
		let (peer, mut session) = tokio::time::timeout(PREFACE_TIMEOUT, self.preface(&mut stream))
			.await
			.map_err(|_| DirectError::Preface)??;
		loop {
			let data = match seal::read_message(&mut stream, &mut session, self.max).await {
				Err(DirectError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
					return Ok(())
				},
				r => r?,
			};
			let len = data.len() as u64;
			self.metrics.bytes_received.fetch_add(len, Relaxed);
			self.metrics.direct_bytes_received.fetch_add(len, Relaxed);
			super::deliver(&self.events, peer, data);
		}
	}

	async fn preface(&self, stream: &mut TcpStream) -> Result<(PeerId, Session), DirectError> {
		let mut challenge = [0u8; 32];
		ring::rand::SystemRandom::new()
			.fill(&mut challenge)
			.map_err(|_| DirectError::Preface)?;
		let key_for = |id: &[u8]| self.keys.lock().ok()?.get(id).copied();
		let (id, session) = seal::accept_preface(stream, key_for, challenge).await?;
		let peer = PeerId::from_bytes(&id).map_err(|_| DirectError::Preface)?;
		Ok((peer, session))
	}

	/// Count and log a connection refused or closed for breaking the format.
	fn refused(&self, from: SocketAddr, e: &DirectError) {
		match e {
			DirectError::Io(_) => tracing::debug!(%from, "direct connection closed: {e}"),
			DirectError::TooLarge(..) => {
				self.metrics.oversized.fetch_add(1, Relaxed);
				tracing::warn!(%from, "direct connection dropped: {e}");
			},
			_ => {
				self.metrics.malformed.fetch_add(1, Relaxed);
				tracing::warn!(%from, "direct connection dropped: {e}");
			},
		}
	}
}
