//! The request-response codec: length-prefixed, tagged frames. A frame above the configured
//! size is refused before it is read; an empty or mistagged one is malformed. Both are
//! counted in [`Metrics`].

use super::metrics::Metrics;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{request_response, StreamProtocol};
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A request on the wire.
#[derive(Debug, Clone)]
pub enum Request {
	/// A signed protocol message (`wire::Envelope` bytes), shared by every recipient and
	/// every retry of it.
	Msg(Arc<Vec<u8>>),
	/// Ask for the current model state.
	GetState,
	/// Ask for a blob by its hash (see [`super::blobs`]).
	GetBlob([u8; 32]),
	/// "Send me large messages directly at this port (at the IP of this connection), sealed
	/// under this key" (see [`super::net::direct`]).
	DirectOffer {
		/// TCP port of the direct listener.
		port: u16,
		/// Secret the sender's direct connections derive their keys from.
		key: [u8; 32],
	},
}

/// A response on the wire.
#[derive(Debug, Clone)]
pub enum Response {
	/// Message accepted for processing.
	Ack,
	/// The model state (`round::StateSnapshot` bytes).
	State(Vec<u8>),
	/// No state to give.
	Refused,
	/// The blob asked for (the asker checks its hash).
	Blob(Vec<u8>),
}

/// Length-prefixed codec: `u32 BE length ‖ tag ‖ payload`. Refuses frames above `max`.
#[derive(Clone)]
pub struct WireCodec {
	max: usize,
	metrics: Arc<Metrics>,
}

impl WireCodec {
	/// A codec refusing frames above `max` bytes, counting into `metrics`.
	pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
		Self { max, metrics }
	}
}

impl Default for WireCodec {
	fn default() -> Self {
		Self { max: 64 << 20, metrics: Arc::new(Metrics::default()) }
	}
}

impl WireCodec {
	/// Read one frame: its tag, then its payload into a buffer of exactly its size (one
	/// allocation, no copy).
	async fn read_frame<T: futures::AsyncRead + Unpin + Send>(
		&self,
		io: &mut T,
	) -> io::Result<(u8, Vec<u8>)> {
		let mut len = [0u8; 4];
		io.read_exact(&mut len).await?;
		let len = u32::from_be_bytes(len) as usize;
		if len > self.max.saturating_add(1) {
			self.metrics.oversized.fetch_add(1, Relaxed);
			tracing::warn!(len, max = self.max, "refusing oversized message");
			return Err(io::Error::new(
				io::ErrorKind::InvalidData,
				format!("frame of {len} bytes exceeds {}", self.max),
			));
		}
		if len == 0 {
			self.metrics.malformed.fetch_add(1, Relaxed);
			return Err(io::Error::new(io::ErrorKind::InvalidData, "empty frame"));
		}
		let mut tag = [0u8; 1];
		io.read_exact(&mut tag).await?;
		let mut buf = vec![0u8; len - 1];
		io.read_exact(&mut buf).await?;
		self.metrics.bytes_received.fetch_add(len as u64 + 4, Relaxed);
		Ok((tag[0], buf))
	}

	async fn write_frame<T: futures::AsyncWrite + Unpin + Send>(
		&self,
		io: &mut T,
		tag: u8,
		payload: &[u8],
	) -> io::Result<()> {
		let len =
			u32::try_from(payload.len() + 1).map_err(|_| io::Error::other("frame too large"))?;
		io.write_all(&len.to_be_bytes()).await?;
		io.write_all(&[tag]).await?;
		io.write_all(payload).await?;
		io.flush().await?;
		self.metrics.bytes_sent.fetch_add(len as u64 + 4, Relaxed);
		Ok(())
	}

	fn bad(&self, what: &str) -> io::Error {
		self.metrics.malformed.fetch_add(1, Relaxed);
		tracing::warn!("malformed {what}");
		io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
	}
}

impl request_response::Codec for WireCodec {
	type Protocol = StreamProtocol;
	type Request = Request;
	type Response = Response;

	async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
	where
		T: futures::AsyncRead + Unpin + Send,
	{
		match self.read_frame(io).await? {
			(1, b) => Ok(Request::Msg(Arc::new(b))),
			(2, b) if b.is_empty() => Ok(Request::GetState),
			(3, b) => b.try_into().map(Request::GetBlob).map_err(|_| self.bad("blob request")),
			(4, b) => match <[u8; 34]>::try_from(b) {
				Ok([p0, p1, key @ ..]) => {
					Ok(Request::DirectOffer { port: u16::from_be_bytes([p0, p1]), key })
				},
				Err(_) => Err(self.bad("direct offer")),
			},
			_ => Err(self.bad("request")),
		}
	}

	async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
	where
		T: futures::AsyncRead + Unpin + Send,
	{
		match self.read_frame(io).await? {
			(1, b) if b.is_empty() => Ok(Response::Ack),
			(2, b) => Ok(Response::State(b)),
			(3, b) if b.is_empty() => Ok(Response::Refused),
			(4, b) => Ok(Response::Blob(b)),
			_ => Err(self.bad("response")),
		}
	}

	async fn write_request<T>(
		&mut self,
		_: &StreamProtocol,
		io: &mut T,
		req: Request,
	) -> io::Result<()>
	where
		T: futures::AsyncWrite + Unpin + Send,
	{
		match req {
			Request::Msg(b) => self.write_frame(io, 1, &b).await,
			Request::GetState => self.write_frame(io, 2, &[]).await,
			Request::GetBlob(h) => self.write_frame(io, 3, &h).await,
			Request::DirectOffer { port, key } => {
				self.write_frame(io, 4, &[&port.to_be_bytes()[..], &key[..]].concat()).await
			},
		}
	}

	async fn write_response<T>(
		&mut self,
		_: &StreamProtocol,
		io: &mut T,
		res: Response,
	) -> io::Result<()>
	where
		T: futures::AsyncWrite + Unpin + Send,
	{
		match res {
			Response::Ack => self.write_frame(io, 1, &[]).await,
			Response::State(b) => self.write_frame(io, 2, &b).await,
			Response::Refused => self.write_frame(io, 3, &[]).await,
			Response::Blob(b) => self.write_frame(io, 4, &b).await,
		}
	}
}
