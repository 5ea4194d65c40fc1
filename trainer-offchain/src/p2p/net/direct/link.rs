//! A sender task: one per peer with a direct path, holding one connection to it.

use super::seal::{self, DirectError, Session};
use super::Outgoing;
use crate::p2p::metrics::Metrics;
use crate::p2p::net::client::Command;
use libp2p::PeerId;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long a dial and its preface may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The congestion control the direct path asks for (NUL-terminated for `setsockopt`). In the
/// bandwidth benchmark (4 peers, each sending to the 3 others at once through 100 Mbit/s `tbf`
/// links), BBR, this machine's default, reached 0.74–0.78 of the line rate; cubic reached
/// 0.87–0.91: BBR's flows are uneven when several share a shallow queue, so the exchange
/// waits for the slowest one.
const CONGESTION_CONTROL: &[u8] = b"cubic\0";

/// What a sender task needs.
pub(super) struct Link {
	pub(super) peer: PeerId,
	/// Which of the sender tasks to `peer` this is (a newer offer starts a new one).
	pub(super) generation: u64,
	pub(super) addr: SocketAddr,
	pub(super) key: [u8; 32],
	pub(super) local: PeerId,
	pub(super) commands: mpsc::UnboundedSender<Command>,
	pub(super) metrics: Arc<Metrics>,
}

impl Link {
	/// Send every queued message in order over one connection (dialled on the first). On a
	/// failure, hand the failed message and every queued one back to the network task, which
	/// sends them by libp2p, and stop.
	pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
		let mut conn: Option<(TcpStream, Session)> = None;
		let mut buf = Vec::new();
		while let Some(out) = rx.recv().await {
			match self.send_one(&mut conn, &out, &mut buf).await {
				Ok(()) => {
					let len = out.data.len() as u64;
					self.metrics.bytes_sent.fetch_add(len, Relaxed);
					self.metrics.direct_bytes_sent.fetch_add(len, Relaxed);
				},
				Err(e) => return self.give_back(out, rx, &e),
			}
		}
	}

	/// Write one message, dialling first if there is no connection yet. A message with a
	/// deadline gives up at it (a receiver that stops reading holds only its own messages).
	async fn send_one(
		&self,
		conn: &mut Option<(TcpStream, Session)>,
		out: &Outgoing,
		buf: &mut Vec<u8>,
	) -> Result<(), DirectError> {
		let write = async {
			let (stream, session) = match conn {
				Some(c) => c,
				None => conn.insert(self.connect().await?),
			};
			seal::write_message(stream, session, &out.data, buf).await
		};
		match out.retry_until {
			Some(until) => tokio::time::timeout_at(until.into(), write)
				.await
				.map_err(|_| DirectError::Io(std::io::ErrorKind::TimedOut.into()))?,
			None => write.await,
		}
	}

	async fn connect(&self) -> Result<(TcpStream, Session), DirectError> {
		let dial = async {
			let mut stream = TcpStream::connect(self.addr).await?;
			stream.set_nodelay(true)?;
			prefer_congestion_control(&stream);
			let session =
				seal::dial_preface(&mut stream, &self.local.to_bytes(), &self.key).await?;
			Ok::<_, DirectError>((stream, session))
		};
		tokio::time::timeout(CONNECT_TIMEOUT, dial)
			.await
			.map_err(|_| DirectError::Io(std::io::ErrorKind::TimedOut.into()))?
	}

	fn give_back(
		&self,
		failed: Outgoing,
		mut rx: mpsc::UnboundedReceiver<Outgoing>,
		e: &DirectError,
	) {
		tracing::warn!(peer = %self.peer, addr = %self.addr, "direct path failed, using libp2p: {e}");
		self.metrics.direct_fallbacks.fetch_add(1, Relaxed);
		rx.close();
		let mut unsent = vec![failed];
		while let Ok(out) = rx.try_recv() {
			unsent.push(out);
		}
		let (peer, generation) = (self.peer, self.generation);
		let _ = self.commands.send(Command::DirectFailed { peer, generation, unsent });
	}
}

/// Ask for [`CONGESTION_CONTROL`] on `stream` (Linux); where the kernel lacks it, the system's
/// default stays.
#[cfg(target_os = "linux")]
fn prefer_congestion_control(stream: &TcpStream) {
	use std::os::fd::AsRawFd;
	// SAFETY: the fd is an open TCP socket owned by `stream` for this call; the option value
	// points at `CONGESTION_CONTROL`'s bytes with their exact length, which the kernel only reads.
	let r = unsafe {
		libc::setsockopt(
			stream.as_raw_fd(),
			libc::IPPROTO_TCP,
			libc::TCP_CONGESTION,
			CONGESTION_CONTROL.as_ptr().cast(),
			CONGESTION_CONTROL.len() as libc::socklen_t,
		)
	};
	if r != 0 {
		tracing::debug!(
			"direct path: keeping the default congestion control: {}",
			std::io::Error::last_os_error()
		);
	}
}

#[cfg(not(target_os = "linux"))]
fn prefer_congestion_control(_: &TcpStream) {}
