//! Signed protocol messages.
//!
//! Every message is an [`Envelope`]: `(job, round, who, body bytes, sig)` where `sig` is the
//! sender's sr25519 signature over `SCALE(P2P_DOMAIN, job, round, who, digest)`. The digest is
//! `blake2_256(body)`, except for the bodies that carry update blocks (`Chunk`, `Reduced`):
//! theirs covers the header and the blocks' Merkle leaf hashes ([`Body::digest`]), the same
//! leaf hashes a chunk's range proof is checked with, so every byte of an update is hashed
//! once on its way in ([`Envelope::open_checked`] returns them) and once on its way out.
//! So a message is bound to its job and round (a replay in another round fails the round
//! check, an altered round fails the signature) and to its sender's key (claiming another
//! key fails the signature). The libp2p peer a key speaks through is bound by the signed
//! `peer_id` in [`Body::Hello`] / [`Body::Ready`].

use crate::compress;
use crate::digest::blake2_256_scale;
use crate::signing::{verify, Keys, PublicKey, QuorumCertificate, SignatureBytes};
use anyhow::{bail, Result};
use codec::{Decode, Encode};
use trainchain_primitives::{Hash32, IncludedShare, JobId, RoundIndex};

/// Domain tag of peer-to-peer message signatures (distinct from the chain's payload tag).
pub const P2P_DOMAIN: &[u8; 17] = b"trainchain/p2p/v1";

/// One participant of a round attempt, as fixed by the proposal.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Participant {
	/// sr25519 key.
	pub who: PublicKey,
	/// libp2p peer id bytes.
	pub peer_id: Vec<u8>,
	/// Samples trained on.
	pub samples: u64,
	/// Merkle root of the compressed update.
	pub root: Hash32,
	/// Number of values, compression tag and base model of the participant's `Ready`.
	pub len: u32,
	/// See `len`.
	pub compression: u8,
	/// See `len`.
	pub base_model: Hash32,
	/// The participant's signature of that `Ready`, so that a peer holding a different
	/// `Ready` from it can tell an equivocating participant from a lying proposer.
	pub ready_sig: SignatureBytes,
}

impl Participant {
	/// Whether `who` signed a `Ready` for `attempt` with exactly these values (in `job`,
	/// `round`).
	pub fn ready_is_signed(&self, job: JobId, round: RoundIndex, attempt: u32) -> bool {
		let body = Body::Ready {
			attempt,
			peer_id: self.peer_id.clone(),
			samples: self.samples,
			len: self.len,
			compression: self.compression,
			root: self.root,
			base_model: self.base_model,
		};
		let env = Envelope { job, round, who: self.who, body: body.encode(), sig: self.ready_sig };
		env.open().is_ok_and(|b| b == body)
	}
}

/// Per-sender statistics of one chunk, reported by the chunk's owner.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct ChunkStat {
	/// Sender.
	pub who: PublicKey,
	/// Sum of squares of the chunk's values (f64 bits).
	pub sq_norm_bits: u64,
	/// All values finite.
	pub finite: bool,
	/// Chunk received, decodable and matching the sender's root.
	pub well_formed: bool,
}

/// Message bodies.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub enum Body {
	/// Binds a key to a libp2p peer; `joining_round` is the first round the sender takes
	/// part in.
	Hello {
		/// libp2p peer id bytes.
		peer_id: Vec<u8>,
		/// First round the sender will contribute to.
		joining_round: RoundIndex,
	},
	/// "My update for this round is ready" (gossip).
	Ready {
		/// Attempt within the round.
		attempt: u32,
		/// libp2p peer id bytes.
		peer_id: Vec<u8>,
		/// Samples trained on.
		samples: u64,
		/// Number of values.
		len: u32,
		/// Compression tag.
		compression: u8,
		/// Merkle root of the compressed blocks.
		root: Hash32,
		/// Hash of the model the update was trained from: peers on another base (lagging,
		/// or forked) are not mixed into the round.
		base_model: Hash32,
	},
	/// The participant set of an attempt, sorted by key (gossip, from the proposer).
	Proposal {
		/// Attempt within the round.
		attempt: u32,
		/// Participants, sorted by key.
		participants: Vec<Participant>,
	},
	/// Compressed blocks `[first_block, first_block + blocks.len())` of the sender's
	/// update, with a Merkle range proof against its root. Accepted only from a participant
	/// of the proposal named by `proposal`.
	Chunk {
		/// Attempt.
		attempt: u32,
		/// [`proposal_hash`] of the proposal this exchange follows.
		proposal: Hash32,
		/// First block index.
		first_block: u32,
		/// Encoded blocks.
		blocks: Vec<Vec<u8>>,
		/// Range proof.
		proof: Vec<Hash32>,
	},
	/// Statistics of the chunk the sender owns, per participant. Accepted only from the
	/// chunk's owner in the proposal named by `proposal`.
	Norms {
		/// Attempt.
		attempt: u32,
		/// [`proposal_hash`] of the proposal this exchange follows.
		proposal: Hash32,
		/// Chunk index (= owner's position).
		chunk: u32,
		/// One per participant, in participant order.
		stats: Vec<ChunkStat>,
	},
	/// The aggregated values of the sender's chunk (encoded blocks). Accepted only from the
	/// chunk's owner in the proposal named by `proposal`.
	Reduced {
		/// Attempt.
		attempt: u32,
		/// [`proposal_hash`] of the proposal this exchange follows.
		proposal: Hash32,
		/// Chunk index.
		chunk: u32,
		/// Encoded blocks of the aggregate.
		blocks: Vec<Vec<u8>>,
	},
	/// The digest of every chunk's `Reduced` body as the sender received it, in chunk
	/// order. Participants compare these before they sign, so an owner that sent different
	/// reductions to different peers is caught. Accepted only from a participant of the
	/// proposal named by `proposal`.
	ReducedDigests {
		/// Attempt.
		attempt: u32,
		/// [`proposal_hash`] of the proposal this exchange follows.
		proposal: Hash32,
		/// `blake2_256` of each chunk's encoded `Reduced` body.
		digests: Vec<Hash32>,
	},
	/// Evidence that a chunk's owner equivocated: the owner's own signed `Reduced` envelope as
	/// the sender received it, forwarded when its digest differs from another participant's.
	/// Accepted only from a participant of the proposal named by `proposal`.
	ReducedConflict {
		/// Attempt.
		attempt: u32,
		/// [`proposal_hash`] of the proposal this exchange follows.
		proposal: Hash32,
		/// The owner's envelope, unchanged.
		evidence: Envelope,
	},
	/// The sender's signature over the round's aggregate payload.
	SigShare {
		/// Model hash signed.
		model_hash: Hash32,
		/// Included set signed.
		included: Vec<IncludedShare<PublicKey>>,
		/// The sender's own metric of the new model, signed with the payload.
		metric: Option<u32>,
		/// Signature over `AggregatePayload::signing_bytes(metric)`.
		sig: SignatureBytes,
	},
	/// The completed certificate (gossip).
	Certificate(QuorumCertificate),
}

impl Body {
	/// Short name for logs.
	pub fn kind(&self) -> &'static str {
		match self {
			Body::Hello { .. } => "hello",
			Body::Ready { .. } => "ready",
			Body::Proposal { .. } => "proposal",
			Body::Chunk { .. } => "chunk",
			Body::Norms { .. } => "norms",
			Body::Reduced { .. } => "reduced",
			Body::ReducedDigests { .. } => "reduced-digests",
			Body::ReducedConflict { .. } => "reduced-conflict",
			Body::SigShare { .. } => "sigshare",
			Body::Certificate(_) => "certificate",
		}
	}

	/// `(attempt, proposal hash, chunk)` of an exchange message; the chunk is `None` for the
	/// messages any participant sends (`Chunk`, `ReducedDigests`, `ReducedConflict`).
	pub fn exchange_key(&self) -> Option<(u32, Hash32, Option<u32>)> {
		match self {
			Body::Chunk { attempt, proposal, .. }
			| Body::ReducedDigests { attempt, proposal, .. }
			| Body::ReducedConflict { attempt, proposal, .. } => Some((*attempt, *proposal, None)),
			Body::Norms { attempt, proposal, chunk, .. }
			| Body::Reduced { attempt, proposal, chunk, .. } => Some((*attempt, *proposal, Some(*chunk))),
			_ => None,
		}
	}
}

impl Body {
	/// The update blocks a `Chunk` or `Reduced` body carries.
	pub fn blocks(&self) -> Option<&[Vec<u8>]> {
		match self {
			Body::Chunk { blocks, .. } | Body::Reduced { blocks, .. } => Some(blocks),
			_ => None,
		}
	}

	/// What an envelope's signature covers (with the job, round and sender): for `Chunk` and
	/// `Reduced`, `blake2_256` of the header and `leaves` (the blocks' leaf hashes); for any
	/// other body, `blake2_256` of its encoded bytes `bytes`.
	pub fn digest(&self, bytes: &[u8], leaves: &[Hash32]) -> Hash32 {
		match self {
			Body::Chunk { attempt, proposal, first_block, proof, .. } => {
				blake2_256_scale(&(b"chunk", attempt, proposal, first_block, leaves, proof))
			},
			Body::Reduced { attempt, proposal, chunk, .. } => {
				blake2_256_scale(&(b"reduced", attempt, proposal, chunk, leaves))
			},
			_ => sp_crypto_hashing::blake2_256(bytes),
		}
	}
}

/// What checking an envelope computed, kept so that nothing is hashed twice.
#[derive(Clone, Debug)]
pub struct Opened {
	/// The sender's signature.
	pub sig: SignatureBytes,
	/// The digest it signs ([`Body::digest`]).
	pub digest: Hash32,
	/// Leaf hashes of the body's blocks (empty for bodies without blocks).
	pub leaves: Vec<Hash32>,
}

/// The hash that binds exchange messages to one proposal:
/// `blake2_256(SCALE(round, attempt, participants))`.
pub fn proposal_hash(round: RoundIndex, attempt: u32, participants: &[Participant]) -> Hash32 {
	sp_crypto_hashing::blake2_256(&(round, attempt, participants).encode())
}

/// A signed message.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Envelope {
	/// Job.
	pub job: JobId,
	/// Round.
	pub round: RoundIndex,
	/// Sender key.
	pub who: PublicKey,
	/// SCALE-encoded [`Body`].
	pub body: Vec<u8>,
	/// Signature.
	pub sig: SignatureBytes,
}

fn signed_bytes(job: JobId, round: RoundIndex, who: &PublicKey, digest: Hash32) -> Vec<u8> {
	(P2P_DOMAIN, job, round, who, digest).encode()
}

/// The blocks' leaf hashes: `given` if there are any, else computed (empty without blocks).
/// The signature of `body` (encoded as `bytes`; its blocks' leaf hashes `leaves`, computed
/// here if `None`) by `keys`, and the digest it covers: the one place a body is signed.
fn sign_body<B: Sealable>(
	keys: &Keys,
	job: JobId,
	round: RoundIndex,
	body: &B,
	bytes: &[u8],
	leaves: Option<&[Hash32]>,
) -> (SignatureBytes, Hash32) {
	let digest = body.sealed_digest(bytes, &leaves_of(body, leaves));
	(keys.sign(&signed_bytes(job, round, &keys.public(), digest)), digest)
}

fn leaves_of<B: Sealable>(body: &B, given: Option<&[Hash32]>) -> Vec<Hash32> {
	match (given, body.block_list()) {
		(Some(l), _) => l.to_vec(),
		(None, Some(blocks)) => compress::leaf_hashes(blocks),
		(None, None) => Vec::new(),
	}
}

impl Envelope {
	/// Sign a body.
	pub fn seal(keys: &Keys, job: JobId, round: RoundIndex, body: &Body) -> Self {
		let bytes = body.encode();
		let (sig, _) = sign_body(keys, job, round, body, &bytes, None);
		Self { job, round, who: keys.public(), body: bytes, sig }
	}

	/// Sign and encode.
	pub fn seal_bytes<B: Sealable>(
		keys: &Keys,
		job: JobId,
		round: RoundIndex,
		body: &B,
	) -> Vec<u8> {
		Self::seal_bytes_with(keys, job, round, body, None)
	}

	/// Sign and encode: the bytes of [`Envelope::seal`]`(…).encode()`, with the body encoded
	/// once, straight into the envelope, and the blocks' leaf hashes taken from `leaves` when
	/// the sender has them (its own update's), so its chunks are not hashed again.
	pub fn seal_bytes_with<B: Sealable>(
		keys: &Keys,
		job: JobId,
		round: RoundIndex,
		body: &B,
		leaves: Option<&[Hash32]>,
	) -> Vec<u8> {
		Self::seal_bytes_signed(keys, job, round, body, leaves).0
	}

	/// [`Envelope::seal_bytes_with`], also returning the signature and the digest it covers
	/// (what a sender keeps of its own message).
	pub fn seal_bytes_signed<B: Sealable>(
		keys: &Keys,
		job: JobId,
		round: RoundIndex,
		body: &B,
		leaves: Option<&[Hash32]>,
	) -> (Vec<u8>, SignatureBytes, Hash32) {
		let who = keys.public();
		let len = body.encoded_size();
		let mut out = Vec::with_capacity(len + 128);
		(job, round, who).encode_to(&mut out);
		// A `Vec<u8>` field: its compact length, then its bytes.
		let compact_len = u32::try_from(len).expect("a message body is far below 4 GiB");
		codec::Compact(compact_len).encode_to(&mut out);
		let start = out.len();
		body.encode_to(&mut out);
		let (sig, digest) =
			sign_body(keys, job, round, body, out.get(start..).unwrap_or_default(), leaves);
		sig.encode_to(&mut out);
		(out, sig, digest)
	}

	/// Decode without checking anything.
	pub fn decode_bytes(bytes: &[u8]) -> Result<Self> {
		EnvelopeView::parse(bytes).map(|v| v.to_envelope())
	}

	/// This envelope read in place.
	pub fn view(&self) -> EnvelopeView<'_> {
		EnvelopeView {
			job: self.job,
			round: self.round,
			who: self.who,
			body: &self.body,
			sig: self.sig,
		}
	}

	pub fn open(&self) -> Result<Body> {
		self.open_checked().map(|(body, _)| body)
	}

	/// Decode the body and check the signature over its digest; returns the body with what the
	/// check computed (the blocks' leaf hashes, for the Merkle checks that follow).
	pub fn open_checked(&self) -> Result<(Body, Opened)> {
		self.view().open_checked()
	}
}

/// A body as it is sealed: its encoding, the digest its signature covers and its blocks.
pub trait Sealable: Encode {
	/// See [`Body::digest`].
	fn sealed_digest(&self, bytes: &[u8], leaves: &[Hash32]) -> Hash32;
	/// See [`Body::blocks`].
	fn block_list(&self) -> Option<&[Vec<u8>]>;
}

impl Sealable for Body {
	fn sealed_digest(&self, bytes: &[u8], leaves: &[Hash32]) -> Hash32 {
		self.digest(bytes, leaves)
	}

	fn block_list(&self) -> Option<&[Vec<u8>]> {
		self.blocks()
	}
}

/// [`Body::Chunk`] with borrowed blocks and proof: it encodes to the owned body's bytes and
/// seals to the same digest, so a sender need not copy its blocks into each message first.
pub struct ChunkRef<'a> {
	/// See [`Body::Chunk`].
	pub attempt: u32,
	/// See [`Body::Chunk`].
	pub proposal: Hash32,
	/// See [`Body::Chunk`].
	pub first_block: u32,
	/// See [`Body::Chunk`].
	pub blocks: &'a [Vec<u8>],
	/// See [`Body::Chunk`].
	pub proof: &'a [Hash32],
}

/// `Body::Chunk`'s variant index in the SCALE encoding (the fourth variant; the test checks
/// that the bytes are the owned body's).
const CHUNK_VARIANT: u8 = 3;

impl Encode for ChunkRef<'_> {
	fn size_hint(&self) -> usize {
		1 + 4 + 32 + 4 + self.blocks.size_hint() + self.proof.size_hint()
	}

	fn encode_to<T: codec::Output + ?Sized>(&self, dest: &mut T) {
		CHUNK_VARIANT.encode_to(dest);
		(self.attempt, self.proposal, self.first_block).encode_to(dest);
		self.blocks.encode_to(dest);
		self.proof.encode_to(dest);
	}
}

impl Sealable for ChunkRef<'_> {
	fn sealed_digest(&self, _: &[u8], leaves: &[Hash32]) -> Hash32 {
		let Self { attempt, proposal, first_block, proof, .. } = self;
		blake2_256_scale(&(b"chunk", attempt, proposal, first_block, leaves, proof))
	}

	fn block_list(&self) -> Option<&[Vec<u8>]> {
		Some(self.blocks)
	}
}

/// An [`Envelope`] read in place from a message's bytes: the body is a slice of them, so a
/// 10 MB chunk is not copied before its blocks are decoded.
#[derive(Clone, Copy, Debug)]
pub struct EnvelopeView<'a> {
	/// See [`Envelope::job`].
	pub job: JobId,
	/// See [`Envelope::round`].
	pub round: RoundIndex,
	/// See [`Envelope::who`].
	pub who: PublicKey,
	/// The body's bytes.
	pub body: &'a [u8],
	/// See [`Envelope::sig`].
	pub sig: SignatureBytes,
}

impl<'a> EnvelopeView<'a> {
	/// Read an envelope's SCALE encoding (the same bytes [`Envelope::decode`] reads, no bytes
	/// after it).
	pub fn parse(bytes: &'a [u8]) -> Result<Self> {
		let undecodable = |e: codec::Error| anyhow::anyhow!("undecodable envelope: {e}");
		let mut input = bytes;
		let job = JobId::decode(&mut input).map_err(undecodable)?;
		let round = RoundIndex::decode(&mut input).map_err(undecodable)?;
		let who = PublicKey::decode(&mut input).map_err(undecodable)?;
		let len = codec::Compact::<u32>::decode(&mut input).map_err(undecodable)?.0 as usize;
		if input.len() < len {
			bail!("undecodable envelope: a body of {len} bytes in {} bytes", input.len());
		}
		let (body, mut rest) = input.split_at(len);
		let sig = SignatureBytes::decode(&mut rest).map_err(undecodable)?;
		if !rest.is_empty() {
			bail!("{} trailing bytes after envelope", rest.len());
		}
		Ok(Self { job, round, who, body, sig })
	}

	/// The owned envelope (copies the body).
	pub fn to_envelope(&self) -> Envelope {
		let Self { job, round, who, body, sig } = *self;
		Envelope { job, round, who, body: body.to_vec(), sig }
	}

	/// Decode the body and check the signature; also returns what was checked (signature,
	/// digest, leaf hashes).
	pub fn open_checked(&self) -> Result<(Body, Opened)> {
		let mut input = self.body;
		let b = Body::decode(&mut input).map_err(|e| anyhow::anyhow!("undecodable body: {e}"))?;
		if !input.is_empty() {
			bail!("trailing bytes after body");
		}
		let leaves = leaves_of(&b, None);
		let digest = b.digest(self.body, &leaves);
		if !verify(&self.who, &signed_bytes(self.job, self.round, &self.who, digest), &self.sig) {
			bail!("bad signature");
		}
		Ok((b, Opened { sig: self.sig, digest, leaves }))
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn seal_open_and_tamper() {
		let alice = Keys::from_suri("//Alice").unwrap();
		let bob = Keys::from_suri("//Bob").unwrap();
		let body = Body::Hello { peer_id: vec![1, 2], joining_round: 3 };
		let e = Envelope::seal(&alice, 1, 2, &body);
		assert_eq!(Envelope::decode_bytes(&e.encode()).unwrap().open().unwrap(), body);
		// The one-copy encoding is the envelope's (sr25519 signatures are randomised, so
		// compare everything but the signature, and check that one).
		let chunk = Body::Chunk {
			attempt: 1,
			proposal: [9; 32],
			first_block: 3,
			blocks: vec![vec![1; 300], vec![2; 70]],
			proof: vec![[4; 32]],
		};
		let bytes = Envelope::seal_bytes(&alice, 1, 2, &chunk);
		let reference = Envelope::seal(&alice, 1, 2, &chunk).encode();
		assert_eq!(bytes.len(), reference.len());
		assert_eq!(bytes[..bytes.len() - 64], reference[..reference.len() - 64]);
		assert_eq!(Envelope::decode_bytes(&bytes).unwrap().open().unwrap(), chunk);
		// The borrowed chunk seals to the same bytes (but the randomised signature), and
		// its signature verifies as the owned body's.
		let Body::Chunk { blocks, proof, .. } = &chunk else { unreachable!() };
		let borrowed = ChunkRef { attempt: 1, proposal: [9; 32], first_block: 3, blocks, proof };
		let by_ref = Envelope::seal_bytes(&alice, 1, 2, &borrowed);
		assert_eq!(by_ref[..by_ref.len() - 64], bytes[..bytes.len() - 64]);
		assert_eq!(Envelope::decode_bytes(&by_ref).unwrap().open().unwrap(), chunk);
		// The signature covers the blocks through their leaf hashes, which the receiver
		// computes itself: one changed byte of a block, or leaves passed by a sender that do
		// not match its blocks, fail the check.
		let mut tampered = Envelope::decode_bytes(&bytes).unwrap();
		let Body::Chunk { attempt, proposal, first_block, mut blocks, proof } = chunk.clone()
		else {
			unreachable!()
		};
		blocks[1][5] ^= 1;
		tampered.body = Body::Chunk { attempt, proposal, first_block, blocks, proof }.encode();
		assert!(tampered.open().is_err());
		let lying = Envelope::seal_bytes_with(&alice, 1, 2, &chunk, Some(&[[0; 32], [1; 32]]));
		assert!(Envelope::decode_bytes(&lying).unwrap().open().is_err());
		let mut replay = e.clone();
		replay.round = 3;
		assert!(replay.open().is_err());
		let mut claim = Envelope::seal(&bob, 1, 2, &body);
		claim.who = alice.public();
		assert!(claim.open().is_err());
		assert!(Envelope::decode_bytes(b"garbage").is_err());
		// Read in place: the same envelope as SCALE's decode; a truncated or extended
		// encoding is refused.
		let owned = Envelope::decode(&mut &bytes[..]).unwrap();
		assert_eq!(EnvelopeView::parse(&bytes).unwrap().to_envelope(), owned);
		assert_eq!(EnvelopeView::parse(&bytes).unwrap().body, &owned.body[..]);
		for cut in [0, 10, 44, 45, bytes.len() - 65, bytes.len() - 1] {
			assert!(EnvelopeView::parse(&bytes[..cut]).is_err(), "cut at {cut}");
		}
		assert!(EnvelopeView::parse(&[&bytes[..], &[0]].concat()).is_err());
	}

	#[test]
	fn a_participant_entry_is_signed_only_as_its_ready_said() {
		let keys = Keys::from_suri("//Alice").unwrap();
		let ready = Body::Ready {
			attempt: 1,
			peer_id: vec![9, 9],
			samples: 40,
			len: 7,
			compression: 0,
			root: [3; 32],
			base_model: [4; 32],
		};
		let env = Envelope::seal(&keys, 5, 2, &ready);
		let p = Participant {
			who: keys.public(),
			peer_id: vec![9, 9],
			samples: 40,
			root: [3; 32],
			len: 7,
			compression: 0,
			base_model: [4; 32],
			ready_sig: env.sig,
		};
		assert!(p.ready_is_signed(5, 2, 1));
		assert!(!p.ready_is_signed(5, 2, 0), "another attempt");
		assert!(!p.ready_is_signed(6, 2, 1), "another job");
		assert!(!Participant { samples: 41, ..p.clone() }.ready_is_signed(5, 2, 1));
		assert!(!Participant { root: [5; 32], ..p.clone() }.ready_is_signed(5, 2, 1));
		let bob = Keys::from_suri("//Bob").unwrap().public();
		assert!(!Participant { who: bob, ..p }.ready_is_signed(5, 2, 1));
	}

	#[test]
	fn proposal_hash_binds_round_attempt_and_participants() {
		let p = |seed: u8| Participant {
			who: Keys::from_suri("//Alice").unwrap().public(),
			peer_id: vec![seed],
			samples: 1,
			root: [seed; 32],
			len: 1,
			compression: 0,
			base_model: [0; 32],
			ready_sig: [0; 64],
		};
		let h = proposal_hash(1, 0, &[p(1)]);
		assert_eq!(h, proposal_hash(1, 0, &[p(1)]));
		assert_ne!(h, proposal_hash(2, 0, &[p(1)]));
		assert_ne!(h, proposal_hash(1, 1, &[p(1)]));
		assert_ne!(h, proposal_hash(1, 0, &[p(2)]));
	}
}
