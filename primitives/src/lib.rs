//! Byte formats that `pallet-training-rewards` verifies and `trainchain-trainer` produces.
//!
//! Everything that crosses the chain/trainer boundary as bytes is defined here once:
//!
//! * the **update commitment** a contributor posts with `commit_update`:
//!   `blake2_256(SCALE(COMMITMENT_DOMAIN, job_id, round, who, update_hash, salt))`;
//! * the **aggregate payload** each included contributor signs (sr25519) and that
//!   `submit_aggregate` and `report_equivocation` verify: the SCALE encoding of
//!   [`AggregatePayload`], which starts with the domain tag [`AGGREGATE_DOMAIN`].
//!
//! The account type is generic (anything SCALE-encodable): the runtime uses
//! `AccountId32`, whose encoding is its 32 raw bytes, so a trainer that only knows the
//! public key produces the same bytes by using `[u8; 32]`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

/// Identifier of a training job.
pub type JobId = u64;
/// Index of a training round within a job (0-based, counts failed attempts too).
pub type RoundIndex = u32;
/// A 32-byte hash (blake2-256).
pub type Hash32 = [u8; 32];

/// Domain tag that starts every signed aggregate payload.
pub const AGGREGATE_DOMAIN: &[u8; 23] = b"trainchain/aggregate/v1";
/// Domain tag mixed into every update commitment.
pub const COMMITMENT_DOMAIN: &[u8; 24] = b"trainchain/commitment/v1";

/// The commitment that binds a contributor's update to the contributor, job and round.
///
/// Because `who` is hashed in, a commitment copied from another contributor can never be
/// revealed by the copier.
pub fn update_commitment<A: Encode>(
    job_id: JobId,
    round: RoundIndex,
    who: &A,
    update_hash: &Hash32,
    salt: &Hash32,
) -> Hash32 {
    let bytes = (COMMITMENT_DOMAIN, job_id, round, who, update_hash, salt).encode();
    sp_crypto_hashing::blake2_256(&bytes)
}

/// One included contributor in an aggregate payload: who, and how many samples it committed.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct IncludedShare<A> {
    /// The contributor's account.
    pub who: A,
    /// The number of training samples the contributor committed for this round.
    pub samples: u64,
}

/// What every included contributor signs at the end of a round.
///
/// The signed bytes are exactly `payload.encode()`; the first field is the domain tag
/// [`AGGREGATE_DOMAIN`], so these bytes can never be confused with a transaction.
/// `included` is in the order the aggregate lists its contributions.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct AggregatePayload<A> {
    /// Always [`AGGREGATE_DOMAIN`].
    pub domain: [u8; 23],
    /// Hash of the chain's genesis block: stops replays across chains.
    pub genesis_hash: Hash32,
    /// The job.
    pub job_id: JobId,
    /// The round.
    pub round: RoundIndex,
    /// blake2-256 of the canonical encoding of the new model state.
    pub model_hash: Hash32,
    /// The contributors whose updates the aggregate includes, with their sample counts.
    pub included: Vec<IncludedShare<A>>,
}

impl<A: Encode> AggregatePayload<A> {
    /// Build a payload with the right domain tag.
    pub fn new(
        genesis_hash: Hash32,
        job_id: JobId,
        round: RoundIndex,
        model_hash: Hash32,
        included: Vec<IncludedShare<A>>,
    ) -> Self {
        Self {
            domain: *AGGREGATE_DOMAIN,
            genesis_hash,
            job_id,
            round,
            model_hash,
            included,
        }
    }

    /// The exact bytes a contributor signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn commitment_binds_every_field() {
        let base = update_commitment(1, 2, &[7u8; 32], &[1u8; 32], &[2u8; 32]);
        assert_ne!(
            base,
            update_commitment(2, 2, &[7u8; 32], &[1u8; 32], &[2u8; 32])
        );
        assert_ne!(
            base,
            update_commitment(1, 3, &[7u8; 32], &[1u8; 32], &[2u8; 32])
        );
        assert_ne!(
            base,
            update_commitment(1, 2, &[8u8; 32], &[1u8; 32], &[2u8; 32])
        );
        assert_ne!(
            base,
            update_commitment(1, 2, &[7u8; 32], &[9u8; 32], &[2u8; 32])
        );
        assert_ne!(
            base,
            update_commitment(1, 2, &[7u8; 32], &[1u8; 32], &[9u8; 32])
        );
    }

    #[test]
    fn payload_starts_with_domain_and_round_trips() {
        let p = AggregatePayload::new(
            [3u8; 32],
            5,
            6,
            [4u8; 32],
            alloc::vec![IncludedShare {
                who: [1u8; 32],
                samples: 10
            }],
        );
        let bytes = p.signing_bytes();
        assert_eq!(&bytes[..23], AGGREGATE_DOMAIN);
        let back = AggregatePayload::<[u8; 32]>::decode(&mut &bytes[..]).unwrap();
        assert_eq!(back, p);
    }
}
