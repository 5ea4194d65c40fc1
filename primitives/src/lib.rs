//! Byte formats that `pallet-training-rewards` verifies and `trainchain-trainer` produces.
//!
//! Everything that crosses the chain/trainer boundary as bytes is defined here once:
//!
//! * the **update commitment** a contributor posts with `commit_update`:
//!   `blake2_256(SCALE(COMMITMENT_DOMAIN, job_id, round, who, update_hash, salt))`;
//! * the **aggregate payload** each included contributor signs (sr25519) and that
//!   `submit_aggregate` and `report_equivocation` verify: the SCALE encoding of
//!   [`AggregatePayload`] followed by the signer's own metric ([`AggregatePayload::signing_bytes`]),
//!   starting with the domain tag [`AGGREGATE_DOMAIN`].
//!
//! Every field the chain acts on is signed: the model, the submitter that earns the submitter
//! share, each included contributor's samples and update hash, and each signer's metric.
//!
//! The account type is generic (anything SCALE-encodable): the runtime uses
//! `AccountId32`, whose encoding is its 32 raw bytes, so a trainer that only knows the
//! public key produces the same bytes by using `[u8; 32]`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod public_data;

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
pub const AGGREGATE_DOMAIN: &[u8; 23] = b"trainchain/aggregate/v2";
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

/// One included contributor in an aggregate payload: who, how many samples it committed, and
/// the hash of the update the aggregate took from it.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct IncludedShare<A> {
	/// The contributor's account.
	pub who: A,
	/// The number of training samples the contributor committed for this round.
	pub samples: u64,
	/// Root of the contributor's update (what its commitment opens to).
	pub update_hash: Hash32,
}

/// What every included contributor signs at the end of a round.
///
/// The signed bytes are `(payload, metric).encode()` ([`Self::signing_bytes`]): the payload is
/// the same for every signer, the metric is each signer's own measurement of the new model. The
/// first field is the domain tag [`AGGREGATE_DOMAIN`], so these bytes can never be confused
/// with a transaction. `included` is in the order the aggregate lists its contributions.
///
/// Two payloads *conflict* ([`Self::conflicts_with`]) when they are for the same job and round
/// and include the same contributors but name different models. Training is deterministic
/// per (base model, round, included updates), so an honest signer never signs two conflicting
/// payloads; a re-run of a round without a silent member changes `included`, and a different
/// submitter or metric does not change the result, so neither conflicts.
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
	/// The account that earns the submitter share, whoever sends the extrinsic.
	pub submitter: A,
	/// The contributors whose updates the aggregate includes, with their sample counts.
	pub included: Vec<IncludedShare<A>>,
}

/// What a signature in an equivocation report covers: the payload and the signer's metric.
pub type SignedStatement<A> = (AggregatePayload<A>, Option<u32>);

impl<A: Encode> AggregatePayload<A> {
	/// Build a payload with the right domain tag.
	pub fn new(
		genesis_hash: Hash32,
		job_id: JobId,
		round: RoundIndex,
		model_hash: Hash32,
		submitter: A,
		included: Vec<IncludedShare<A>>,
	) -> Self {
		Self {
			domain: *AGGREGATE_DOMAIN,
			genesis_hash,
			job_id,
			round,
			model_hash,
			submitter,
			included,
		}
	}

	/// The exact bytes a contributor signs: the payload, then its own `metric` of the new
	/// model (e.g. accuracy in parts per million; `None` when it has no test data).
	pub fn signing_bytes(&self, metric: Option<u32>) -> Vec<u8> {
		(self, metric).encode()
	}
}

impl<A: PartialEq> AggregatePayload<A> {
	/// True if both payloads are for the same chain, job, round and included contributors
	/// (same accounts, in any order) but name different models: the only thing an honest
	/// signer never signs twice.
	pub fn conflicts_with(&self, other: &Self) -> bool {
		let same_members = self.included.len() == other.included.len()
			&& self.included.iter().all(|s| other.included.iter().any(|o| o.who == s.who));
		self.domain == other.domain
			&& self.genesis_hash == other.genesis_hash
			&& self.job_id == other.job_id
			&& self.round == other.round
			&& same_members
			&& self.model_hash != other.model_hash
	}

	/// True if `who` is one of the included contributors.
	pub fn includes(&self, who: &A) -> bool {
		self.included.iter().any(|s| &s.who == who)
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	#[test]
	fn commitment_binds_every_field() {
		let base = update_commitment(1, 2, &[7u8; 32], &[1u8; 32], &[2u8; 32]);
		assert_ne!(base, update_commitment(2, 2, &[7u8; 32], &[1u8; 32], &[2u8; 32]));
		assert_ne!(base, update_commitment(1, 3, &[7u8; 32], &[1u8; 32], &[2u8; 32]));
		assert_ne!(base, update_commitment(1, 2, &[8u8; 32], &[1u8; 32], &[2u8; 32]));
		assert_ne!(base, update_commitment(1, 2, &[7u8; 32], &[9u8; 32], &[2u8; 32]));
		assert_ne!(base, update_commitment(1, 2, &[7u8; 32], &[1u8; 32], &[9u8; 32]));
	}

	#[test]
	fn payload_starts_with_domain_and_round_trips() {
		let p = payload([4u8; 32], &[1]);
		let bytes = p.signing_bytes(Some(7));
		assert_eq!(&bytes[..23], AGGREGATE_DOMAIN);
		let back = SignedStatement::<[u8; 32]>::decode(&mut &bytes[..]).unwrap();
		assert_eq!(back, (p.clone(), Some(7)));
		assert_ne!(bytes, p.signing_bytes(None));
	}

	fn payload(model: Hash32, members: &[u8]) -> AggregatePayload<[u8; 32]> {
		AggregatePayload::new(
			[3u8; 32],
			5,
			6,
			model,
			[members[0]; 32],
			members
				.iter()
				.map(|m| IncludedShare { who: [*m; 32], samples: 10, update_hash: [*m; 32] })
				.collect(),
		)
	}

	#[test]
	fn only_a_different_model_for_the_same_members_conflicts() {
		let a = payload([4u8; 32], &[1, 2, 3]);
		assert!(a.conflicts_with(&payload([5u8; 32], &[1, 2, 3])));
		assert!(a.conflicts_with(&payload([5u8; 32], &[3, 2, 1])));
		// A re-run without member 3 is a different attempt, whatever its model.
		assert!(!a.conflicts_with(&payload([5u8; 32], &[1, 2])));
		// Same result, another submitter: not a conflict.
		let mut other_submitter = a.clone();
		other_submitter.submitter = [2u8; 32];
		assert!(!a.conflicts_with(&other_submitter));
		let mut other_round = payload([5u8; 32], &[1, 2, 3]);
		other_round.round = 7;
		assert!(!a.conflicts_with(&other_round));
	}
}
