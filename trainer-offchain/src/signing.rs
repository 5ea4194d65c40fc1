//! sr25519 identities of peers, signing of the chain's aggregate payload, and the quorum
//! certificate one peer assembles at the end of every round.
//!
//! The bytes that get signed for the chain are exactly
//! [`AggregatePayload::signing_bytes`](trainchain_primitives::AggregatePayload::signing_bytes)
//! from `trainchain-primitives` (the payload and the signer's own metric); this module never
//! re-encodes the payload itself, so a signature made here verifies as
//! the runtime's `Sr25519Signature` on chain.

use anyhow::{anyhow, bail, Context, Result};
use codec::{Decode, Encode};
use sp_core::{crypto::Pair as _, sr25519};
use trainchain_primitives::{AggregatePayload, Hash32, IncludedShare, JobId, RoundIndex};

/// A 32-byte sr25519 public key (= the runtime's `AccountId32` bytes).
pub type PublicKey = [u8; 32];
/// A 64-byte sr25519 signature.
pub type SignatureBytes = [u8; 64];

/// A peer's sr25519 key pair.
#[derive(Clone)]
pub struct Keys {
	pair: sr25519::Pair,
}

impl std::fmt::Debug for Keys {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		write!(f, "Keys({})", short(&self.public()))
	}
}

impl Keys {
	/// From a secret URI such as `//Alice`, a mnemonic, or a `0x`-hex seed.
	pub fn from_suri(suri: &str) -> Result<Self> {
		let pair =
			sr25519::Pair::from_string(suri, None).map_err(|e| anyhow!("bad secret URI: {e:?}"))?;
		Ok(Self { pair })
	}

	/// From a key file whose content (trimmed) is a secret URI or `0x`-hex seed.
	pub fn from_file(path: &std::path::Path) -> Result<Self> {
		let s = std::fs::read_to_string(path)
			.with_context(|| format!("reading key file {}", path.display()))?;
		Self::from_suri(s.trim())
	}

	/// The public key.
	pub fn public(&self) -> PublicKey {
		self.pair.public().0
	}

	/// Sign arbitrary bytes.
	pub fn sign(&self, msg: &[u8]) -> SignatureBytes {
		self.pair.sign(msg).0
	}

	/// Sign the chain's aggregate payload with this signer's `metric` of the new model
	/// (exactly `payload.signing_bytes(metric)`).
	pub fn sign_payload(
		&self,
		payload: &AggregatePayload<PublicKey>,
		metric: Option<u32>,
	) -> SignatureBytes {
		self.sign(&payload.signing_bytes(metric))
	}
}

/// Verify an sr25519 signature over `msg` by `who`.
pub fn verify(who: &PublicKey, msg: &[u8], sig: &SignatureBytes) -> bool {
	let public = sr25519::Public::from_raw(*who);
	let sig = sr25519::Signature::from_raw(*sig);
	sr25519::Pair::verify(&sig, msg, &public)
}

/// First 4 bytes of a key as hex, for logs.
pub fn short(who: &PublicKey) -> String {
	hex::encode(who.get(..4).unwrap_or_default())
}

/// One signer's part of a certificate: its metric of the new model and its signature over
/// `payload.signing_bytes(metric)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Endorsement {
	/// The signer.
	pub who: PublicKey,
	/// Its own measurement of the new model (accuracy in ppm), if it has test data.
	pub metric: Option<u32>,
	/// Its signature.
	pub signature: SignatureBytes,
}

/// A full quorum certificate for one round: the payload every included peer signed, and
/// their endorsements.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QuorumCertificate {
	/// What was signed (with each signer's metric).
	pub payload: AggregatePayload<PublicKey>,
	/// One endorsement per signer, sorted by signer.
	pub signatures: Vec<Endorsement>,
}

impl QuorumCertificate {
	/// An empty certificate for `payload`.
	pub fn new(payload: AggregatePayload<PublicKey>) -> Self {
		Self { payload, signatures: Vec::new() }
	}

	/// Job id of the certified round.
	pub fn job_id(&self) -> JobId {
		self.payload.job_id
	}

	/// The certified round.
	pub fn round(&self) -> RoundIndex {
		self.payload.round
	}

	/// The certified model hash.
	pub fn model_hash(&self) -> Hash32 {
		self.payload.model_hash
	}

	/// The included peers with their sample counts.
	pub fn included(&self) -> &[IncludedShare<PublicKey>] {
		&self.payload.included
	}

	/// Add an endorsement after checking it (and that the signer is included). Returns
	/// whether it was new.
	pub fn add(&mut self, e: Endorsement) -> Result<bool> {
		if !self.payload.includes(&e.who) {
			bail!("signer {} is not included in the payload", short(&e.who));
		}
		if !verify(&e.who, &self.payload.signing_bytes(e.metric), &e.signature) {
			bail!("bad aggregate signature from {}", short(&e.who));
		}
		if self.signatures.iter().any(|x| x.who == e.who) {
			return Ok(false);
		}
		self.signatures.push(e);
		self.signatures.sort_by_key(|x| x.who);
		Ok(true)
	}

	/// The endorsement of `who`, if it signed.
	pub fn endorsement(&self, who: &PublicKey) -> Option<&Endorsement> {
		self.signatures.iter().find(|x| x.who == *who)
	}

	/// Whether every included peer has signed.
	pub fn is_complete(&self) -> bool {
		self.payload.included.iter().all(|s| self.endorsement(&s.who).is_some())
	}

	/// Check every signature; returns the number of valid signatures by included peers
	/// (duplicates count once). Errors on any invalid signature.
	pub fn verify(&self) -> Result<usize> {
		let mut seen: Vec<PublicKey> = Vec::new();
		for e in &self.signatures {
			if !self.payload.includes(&e.who) {
				bail!("signer {} not included", short(&e.who));
			}
			if !verify(&e.who, &self.payload.signing_bytes(e.metric), &e.signature) {
				bail!("invalid signature by {}", short(&e.who));
			}
			if !seen.contains(&e.who) {
				seen.push(e.who);
			}
		}
		Ok(seen.len())
	}

	/// Endorsements in the order of `payload.included` (what `submit_aggregate` takes);
	/// `None` for a missing one.
	pub fn ordered_signatures(&self) -> Vec<Option<Endorsement>> {
		self.payload
			.included
			.iter()
			.map(|s| self.endorsement(&s.who).copied())
			.collect()
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::expect_used)]
	use super::*;

	#[test]
	fn alice_signs_payload_and_certificate_verifies() {
		let alice = Keys::from_suri("//Alice").unwrap();
		let bob = Keys::from_suri("//Bob").unwrap();
		let included = vec![
			IncludedShare { who: alice.public(), samples: 3, update_hash: [1; 32] },
			IncludedShare { who: bob.public(), samples: 4, update_hash: [2; 32] },
		];
		let payload = AggregatePayload::new([1; 32], 7, 2, [9; 32], alice.public(), included);
		let endorse = |k: &Keys, metric: Option<u32>| Endorsement {
			who: k.public(),
			metric,
			signature: k.sign_payload(&payload, metric),
		};
		let mut qc = QuorumCertificate::new(payload.clone());
		assert!(qc.add(endorse(&alice, Some(7))).unwrap());
		assert!(!qc.is_complete());
		// A signature over other bytes, or with another metric than it claims, is rejected.
		let mut other = endorse(&bob, None);
		other.signature = bob.sign(b"other");
		assert!(qc.add(other).is_err());
		let mut lying = endorse(&bob, Some(1));
		lying.metric = Some(999_999);
		assert!(qc.add(lying).is_err());
		assert!(qc.add(endorse(&bob, Some(1))).unwrap());
		assert!(qc.is_complete());
		assert_eq!(qc.verify().unwrap(), 2);
		// Alice's well-known public key.
		assert_eq!(
			hex::encode(alice.public()),
			"d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
		);
		let charlie = Keys::from_suri("//Charlie").unwrap();
		assert!(qc.add(endorse(&charlie, None)).is_err());
	}
}
