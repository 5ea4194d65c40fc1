//! The handle the rest of the program holds: commands to the network task over a channel,
//! replies over oneshots.

use super::super::metrics::Metrics;
use anyhow::{anyhow, Result};
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What the handle asks of the network task.
pub(super) enum Command {
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
	/// A peer's direct sender task failed: send these by libp2p (from its task).
	DirectFailed {
		peer: PeerId,
		generation: u64,
		unsent: Vec<super::direct::Outgoing>,
	},
	ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
	Shutdown,
}

/// Cloneable handle to the network task.
#[derive(Clone)]
pub struct NetClient {
	pub(super) tx: mpsc::UnboundedSender<Command>,
	pub(super) local_peer_id: PeerId,
	pub(super) metrics: Arc<Metrics>,
	pub(super) direct_port: Option<u16>,
}

impl NetClient {
	/// This node's libp2p id.
	pub fn local_peer_id(&self) -> PeerId {
		self.local_peer_id
	}

	/// The port of this node's direct-path listener (`None`: no direct path here).
	pub fn direct_port(&self) -> Option<u16> {
		self.direct_port
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
	/// [`crate::p2p::outbox`]). `data` may be shared with other recipients.
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

	/// Serve `bytes` to `GetBlob(hash)` requests (see [`crate::p2p::blobs`]).
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
