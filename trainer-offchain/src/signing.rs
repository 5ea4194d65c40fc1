//! sr25519 identities of peers, signing of the chain's aggregate payload, and the quorum
//! certificate one peer assembles at the end of every round.
//!
//! The bytes that get signed for the chain are exactly
//! [`AggregatePayload::signing_bytes`](trainchain_primitives::AggregatePayload::signing_bytes)
//! from `trainchain-primitives`; this module never re-encodes the payload itself, so a
//! signature made here verifies as `MultiSignature::Sr25519` on chain.

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

    /// Sign the chain's aggregate payload (exactly its `signing_bytes()`).
    pub fn sign_payload(&self, payload: &AggregatePayload<PublicKey>) -> SignatureBytes {
        self.sign(&payload.signing_bytes())
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

/// A full quorum certificate for one round: the payload every included peer signed, and
/// their signatures (in the order of `payload.included`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QuorumCertificate {
    /// What was signed.
    pub payload: AggregatePayload<PublicKey>,
    /// `(signer, signature over payload.signing_bytes())`, sorted by signer.
    pub signatures: Vec<(PublicKey, SignatureBytes)>,
}

impl QuorumCertificate {
    /// An empty certificate for `payload`.
    pub fn new(payload: AggregatePayload<PublicKey>) -> Self {
        Self {
            payload,
            signatures: Vec::new(),
        }
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

    /// Add a signature after checking it (and that the signer is included). Returns
    /// whether it was new.
    pub fn add(&mut self, who: PublicKey, sig: SignatureBytes) -> Result<bool> {
        if !self.payload.included.iter().any(|s| s.who == who) {
            bail!("signer {} is not included in the payload", short(&who));
        }
        if !verify(&who, &self.payload.signing_bytes(), &sig) {
            bail!("bad aggregate signature from {}", short(&who));
        }
        if self.signatures.iter().any(|(w, _)| *w == who) {
            return Ok(false);
        }
        self.signatures.push((who, sig));
        self.signatures.sort_by_key(|a| a.0);
        Ok(true)
    }

    /// Whether every included peer has signed.
    pub fn is_complete(&self) -> bool {
        self.payload
            .included
            .iter()
            .all(|s| self.signatures.iter().any(|(w, _)| *w == s.who))
    }

    /// Check every signature; returns the number of valid signatures by included peers
    /// (duplicates count once). Errors on any invalid signature.
    pub fn verify(&self) -> Result<usize> {
        let bytes = self.payload.signing_bytes();
        let mut seen: Vec<PublicKey> = Vec::new();
        for (who, sig) in &self.signatures {
            if !self.payload.included.iter().any(|s| s.who == *who) {
                bail!("signer {} not included", short(who));
            }
            if !verify(who, &bytes, sig) {
                bail!("invalid signature by {}", short(who));
            }
            if !seen.contains(who) {
                seen.push(*who);
            }
        }
        Ok(seen.len())
    }

    /// Signatures in the order of `payload.included` (what `submit_aggregate` takes);
    /// `None` for a missing one.
    pub fn ordered_signatures(&self) -> Vec<Option<SignatureBytes>> {
        self.payload
            .included
            .iter()
            .map(|s| {
                self.signatures
                    .iter()
                    .find(|(w, _)| *w == s.who)
                    .map(|(_, sig)| *sig)
            })
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
            IncludedShare {
                who: alice.public(),
                samples: 3,
            },
            IncludedShare {
                who: bob.public(),
                samples: 4,
            },
        ];
        let payload = AggregatePayload::new([1; 32], 7, 2, [9; 32], included);
        let mut qc = QuorumCertificate::new(payload.clone());
        assert!(qc
            .add(alice.public(), alice.sign_payload(&payload))
            .unwrap());
        assert!(!qc.is_complete());
        // A signature over other bytes is rejected.
        assert!(qc.add(bob.public(), bob.sign(b"other")).is_err());
        assert!(qc.add(bob.public(), bob.sign_payload(&payload)).unwrap());
        assert!(qc.is_complete());
        assert_eq!(qc.verify().unwrap(), 2);
        // Alice's well-known public key.
        assert_eq!(
            hex::encode(alice.public()),
            "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        let charlie = Keys::from_suri("//Charlie").unwrap();
        assert!(qc
            .add(charlie.public(), charlie.sign_payload(&payload))
            .is_err());
    }
}
