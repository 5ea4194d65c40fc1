//! The direct path's bytes on the wire: a preface, then messages as runs of AES-256-GCM
//! records.
//!
//! - Preface: the dialer writes [`MAGIC`] ‖ `u8 n` ‖ its libp2p peer id (`n` bytes); the
//!   listener answers with a fresh 32-byte challenge. Both derive the connection's key as
//!   `blake2_256(KDF_TAG ‖ offered key ‖ challenge)`, where the offered key is the secret the
//!   listener gave that peer over the noise-encrypted libp2p connection
//!   ([`crate::p2p::net::Request::DirectOffer`]). A fresh key per connection lets record
//!   numbers start at 0, and a recorded connection cannot be replayed into a new one.
//! - Record: header `u32 BE len ‖ u8 last ‖ u32 BE message len`, then `len` bytes of
//!   ciphertext and a 16-byte tag. The header is the AEAD's associated data and the nonce is
//!   the record's number on the connection, so records cannot be altered, reordered, dropped
//!   from the middle or moved between connections without failing authentication.
//!
//! A message is every record up to one with `last = 1`; its length is known (and the buffer
//! reserved) only once its first record has authenticated.

use crate::digest::blake2_256_concat;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// First bytes of a direct connection (protocol version 1).
pub const MAGIC: &[u8; 8] = b"tcdirec1";
/// Domain tag of the connection key derivation.
const KDF_TAG: &[u8] = b"trainchain/direct/v1";
/// Largest record payload.
pub const RECORD_MAX: usize = 1 << 20;
/// Bytes of a record header.
const HEADER_LEN: usize = 9;
/// Bytes of the authentication tag.
const TAG_LEN: usize = 16;

/// Why a direct connection was refused or closed.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
	/// The socket failed or closed.
	#[error("i/o: {0}")]
	Io(#[from] std::io::Error),
	/// The first bytes are not a direct-path preface.
	#[error("not a direct-path preface")]
	Preface,
	/// The dialer named a peer this node offered no key to.
	#[error("no key was offered to peer {0}")]
	UnknownPeer(String),
	/// A record or its header failed authentication (wrong key, altered or injected bytes).
	#[error("a record failed authentication")]
	Forged,
	/// A record header outside the format (payload above [`RECORD_MAX`], a `last` flag other
	/// than 0/1, a message length that changed between records).
	#[error("malformed record header")]
	Malformed,
	/// A message above the size limit.
	#[error("message of {0} bytes exceeds the limit of {1}")]
	TooLarge(usize, usize),
	/// An empty message.
	#[error("empty message")]
	Empty,
	/// 2^64 records on one connection.
	#[error("record numbers exhausted")]
	Exhausted,
}

/// One direction of one connection: its key and the next record's number.
pub struct Session {
	key: LessSafeKey,
	next: u64,
}

impl Session {
	/// The session of a connection whose listener offered `offered` and sent `challenge`.
	pub fn new(offered: &[u8; 32], challenge: &[u8; 32]) -> Result<Self, DirectError> {
		let key = blake2_256_concat(&[KDF_TAG, offered, challenge]);
		let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| DirectError::Forged)?;
		Ok(Self { key: LessSafeKey::new(key), next: 0 })
	}

	fn nonce(&mut self) -> Result<Nonce, DirectError> {
		let n = self.next;
		self.next = n.checked_add(1).ok_or(DirectError::Exhausted)?;
		let mut bytes = [0u8; 12];
		bytes[4..].copy_from_slice(&n.to_be_bytes());
		Ok(Nonce::assume_unique_for_key(bytes))
	}
}

fn header(len: usize, last: bool, total: usize) -> Result<[u8; HEADER_LEN], DirectError> {
	let len = u32::try_from(len).map_err(|_| DirectError::TooLarge(len, u32::MAX as usize))?;
	let total =
		u32::try_from(total).map_err(|_| DirectError::TooLarge(total, u32::MAX as usize))?;
	let mut h = [0u8; HEADER_LEN];
	h[..4].copy_from_slice(&len.to_be_bytes());
	h[4] = u8::from(last);
	h[5..].copy_from_slice(&total.to_be_bytes());
	Ok(h)
}

/// Seal `data` into records and write them; `buf` is scratch space kept between calls.
pub async fn write_message<W: AsyncWrite + Unpin>(
	io: &mut W,
	session: &mut Session,
	data: &[u8],
	buf: &mut Vec<u8>,
) -> Result<(), DirectError> {
	if data.is_empty() {
		return Err(DirectError::Empty);
	}
	let mut pieces = data.chunks(RECORD_MAX).peekable();
	while let Some(piece) = pieces.next() {
		let h = header(piece.len(), pieces.peek().is_none(), data.len())?;
		buf.clear();
		buf.extend_from_slice(&h);
		buf.extend_from_slice(piece);
		let nonce = session.nonce()?;
		let tag = session
			.key
			.seal_in_place_separate_tag(nonce, Aad::from(h), &mut buf[HEADER_LEN..])
			.map_err(|_| DirectError::Forged)?;
		buf.extend_from_slice(tag.as_ref());
		io.write_all(buf).await?;
	}
	io.flush().await?;
	Ok(())
}

/// Read, authenticate and join the records of one message of at most `max` bytes.
pub async fn read_message<R: AsyncRead + Unpin>(
	io: &mut R,
	session: &mut Session,
	max: usize,
) -> Result<Vec<u8>, DirectError> {
	let mut msg: Vec<u8> = Vec::new();
	let mut total = None;
	loop {
		let mut h = [0u8; HEADER_LEN];
		io.read_exact(&mut h).await?;
		let [l0, l1, l2, l3, last, t0, t1, t2, t3] = h;
		let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
		let this_total = u32::from_be_bytes([t0, t1, t2, t3]) as usize;
		if len > RECORD_MAX || last > 1 || total.is_some_and(|t| t != this_total) {
			return Err(DirectError::Malformed);
		}
		let start = msg.len();
		if start + len > max {
			return Err(DirectError::TooLarge(start + len, max));
		}
		read_appending(io, &mut msg, len + TAG_LEN).await?;
		let nonce = session.nonce()?;
		session
			.key
			.open_in_place(nonce, Aad::from(h), &mut msg[start..])
			.map_err(|_| DirectError::Forged)?;
		msg.truncate(start + len);
		if total.is_none() {
			// Authenticated: the sender holds the key, so its length is worth a reservation.
			if this_total > max {
				return Err(DirectError::TooLarge(this_total, max));
			}
			total = Some(this_total);
			msg.reserve_exact(this_total.saturating_sub(msg.len()));
		}
		if last == 1 {
			return match msg.len() {
				0 => Err(DirectError::Empty),
				n if n != this_total => Err(DirectError::Malformed),
				_ => Ok(msg),
			};
		}
	}
}

/// Read exactly `n` more bytes onto the end of `buf`, into its spare capacity (not zeroed
/// first, as `resize` would).
async fn read_appending<R: AsyncRead + Unpin>(
	io: &mut R,
	buf: &mut Vec<u8>,
	n: usize,
) -> std::io::Result<()> {
	let end = buf.len() + n;
	buf.reserve(n);
	let mut limited = io.take(n as u64);
	while buf.len() < end {
		if limited.read_buf(buf).await? == 0 {
			return Err(std::io::ErrorKind::UnexpectedEof.into());
		}
	}
	Ok(())
}

/// The dialer's side of the preface: announce `peer_id`, read the challenge, derive the key.
pub async fn dial_preface<S: AsyncRead + AsyncWrite + Unpin>(
	io: &mut S,
	peer_id: &[u8],
	offered: &[u8; 32],
) -> Result<Session, DirectError> {
	let n = u8::try_from(peer_id.len()).map_err(|_| DirectError::Preface)?;
	let mut preface = MAGIC.to_vec();
	preface.push(n);
	preface.extend_from_slice(peer_id);
	io.write_all(&preface).await?;
	let mut challenge = [0u8; 32];
	io.read_exact(&mut challenge).await?;
	Session::new(offered, &challenge)
}

/// The listener's side: read the dialer's peer id, find the key offered to it (`key_for`),
/// send a fresh challenge. Returns the peer id bytes and the session.
pub async fn accept_preface<S: AsyncRead + AsyncWrite + Unpin>(
	io: &mut S,
	key_for: impl FnOnce(&[u8]) -> Option<[u8; 32]>,
	challenge: [u8; 32],
) -> Result<(Vec<u8>, Session), DirectError> {
	let mut magic = [0u8; 9];
	io.read_exact(&mut magic).await?;
	if magic[..8] != MAGIC[..] {
		return Err(DirectError::Preface);
	}
	let mut peer_id = vec![0u8; usize::from(magic[8])];
	io.read_exact(&mut peer_id).await?;
	let offered =
		key_for(&peer_id).ok_or_else(|| DirectError::UnknownPeer(hex::encode(&peer_id)))?;
	io.write_all(&challenge).await?;
	Ok((peer_id, Session::new(&offered, &challenge)?))
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	fn pair(key: [u8; 32]) -> (Session, Session) {
		(Session::new(&key, &[7; 32]).unwrap(), Session::new(&key, &[7; 32]).unwrap())
	}

	async fn send(data: &[u8], key: [u8; 32]) -> Vec<u8> {
		let mut wire = Vec::new();
		let (mut tx, _) = pair(key);
		write_message(&mut wire, &mut tx, data, &mut Vec::new()).await.unwrap();
		wire
	}

	#[tokio::test]
	async fn messages_of_every_size_arrive_whole() {
		for len in [1, RECORD_MAX - 1, RECORD_MAX, RECORD_MAX + 1, 3 * RECORD_MAX + 5] {
			let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
			let (mut tx, mut rx) = pair([1; 32]);
			let mut wire = Vec::new();
			write_message(&mut wire, &mut tx, &data, &mut Vec::new()).await.unwrap();
			write_message(&mut wire, &mut tx, b"next", &mut Vec::new()).await.unwrap();
			assert_eq!(wire.len(), len + 4 + len.div_ceil(RECORD_MAX).max(1) * 25 + 25);
			let mut r = wire.as_slice();
			assert_eq!(read_message(&mut r, &mut rx, 1 << 30).await.unwrap(), data);
			assert_eq!(read_message(&mut r, &mut rx, 1 << 30).await.unwrap(), b"next");
		}
	}

	#[tokio::test]
	async fn every_altered_byte_fails_authentication() {
		let data = vec![5u8; 100];
		let wire = send(&data, [1; 32]).await;
		for i in 0..wire.len() {
			let mut bad = wire.clone();
			bad[i] ^= 0x40;
			let (_, mut rx) = pair([1; 32]);
			let got = read_message(&mut bad.as_slice(), &mut rx, 1 << 20).await;
			assert!(got.is_err(), "byte {i} altered and still accepted");
		}
		// The same bytes under another key (an injector without the offered key).
		let (_, mut rx) = pair([2; 32]);
		let got = read_message(&mut wire.as_slice(), &mut rx, 1 << 20).await;
		assert!(matches!(got, Err(DirectError::Forged)), "{got:?}");
	}

	#[tokio::test]
	async fn records_cannot_be_reordered_or_dropped() {
		let data: Vec<u8> = (0..2 * RECORD_MAX + 10).map(|i| i as u8).collect();
		let wire = send(&data, [1; 32]).await;
		let rec = HEADER_LEN + RECORD_MAX + TAG_LEN;
		let (a, rest) = wire.split_at(rec);
		let (b, c) = rest.split_at(rec);
		for bad in [[b, a, c].concat(), [a, c].concat(), [b, c].concat()] {
			let (_, mut rx) = pair([1; 32]);
			assert!(read_message(&mut bad.as_slice(), &mut rx, 1 << 30).await.is_err());
		}
	}

	#[tokio::test]
	async fn limits_are_named_errors() {
		let wire = send(&[1u8; 1000], [1; 32]).await;
		let (_, mut rx) = pair([1; 32]);
		let got = read_message(&mut wire.as_slice(), &mut rx, 999).await;
		assert!(matches!(got, Err(DirectError::TooLarge(1000, 999))), "{got:?}");
		let mut big = header(RECORD_MAX + 1, true, RECORD_MAX + 1).unwrap().to_vec();
		big.resize(big.len() + 64, 0);
		let (_, mut rx) = pair([1; 32]);
		let got = read_message(&mut big.as_slice(), &mut rx, 1 << 30).await;
		assert!(matches!(got, Err(DirectError::Malformed)), "{got:?}");
		let (mut tx, _) = pair([1; 32]);
		let got = write_message(&mut Vec::new(), &mut tx, &[], &mut Vec::new()).await;
		assert!(matches!(got, Err(DirectError::Empty)));
	}

	#[tokio::test]
	async fn the_preface_binds_a_fresh_key_to_the_named_peer() {
		let (mut dialer, mut listener) = tokio::io::duplex(1 << 16);
		let offered = [9u8; 32];
		let dial = dial_preface(&mut dialer, b"peer-a", &offered);
		let accept =
			accept_preface(&mut listener, |p| (p == b"peer-a").then_some(offered), [3; 32]);
		let (tx, rx) = tokio::join!(dial, accept);
		let (mut tx, (who, mut rx)) = (tx.unwrap(), rx.unwrap());
		assert_eq!(who, b"peer-a");
		let mut buf = Vec::new();
		write_message(&mut dialer, &mut tx, b"hello", &mut buf).await.unwrap();
		assert_eq!(read_message(&mut listener, &mut rx, 100).await.unwrap(), b"hello");
		// A peer without an offered key, and bytes that are not a preface, are refused.
		let (mut d, mut l) = tokio::io::duplex(1 << 16);
		let dial = dial_preface(&mut d, b"peer-b", &offered);
		let accept = async move {
			accept_preface(&mut l, |p| (p == b"peer-a").then_some(offered), [3; 32]).await
		};
		let (dialed, got) = tokio::join!(dial, accept);
		assert!(matches!(got, Err(DirectError::UnknownPeer(_))));
		assert!(dialed.is_err(), "the dialer gets no challenge");
		let (mut d, mut l) = tokio::io::duplex(1 << 16);
		d.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
		let got = accept_preface(&mut l, |_| None, [0; 32]).await;
		assert!(matches!(got, Err(DirectError::Preface)));
	}
}
