//! Jobs on a **public dataset**: the rules the chain, the contributors and the verifiers apply
//! to the same bytes.
//!
//! * The dataset is split into `shards` shards: row `i` (in file order) belongs to shard
//!   `i mod shards`. The sponsor commits the [`shards_root`] of the shards' leaf hashes
//!   (each leaf is `blake2_256` of the shard's canonical bytes, defined by the trainer's data
//!   loader) in the job spec; a trainer refuses a dataset whose root differs.
//! * Each contributor trains, in each round, on the shard [`assign_shard`] names, with the
//!   shuffle seed it returns: training is then deterministic per (model, round, shard, seed),
//!   so a verifier can re-compute it.
//! * Which contributors the verifiers re-compute ([`recompute_sample`]) and which other shard
//!   an update is compared on ([`comparison_shard`]) follow from the round's settlement seed,
//!   which the chain draws only once the aggregate is accepted, after every commitment.

use alloc::vec::Vec;
use codec::Encode;

use crate::{Hash32, JobId, RoundIndex};

/// Domain tag of a shard assignment.
pub const SHARD_DOMAIN: &[u8; 19] = b"trainchain/shard/v1";
/// Domain tag of the re-computation sample.
pub const RECOMPUTE_DOMAIN: &[u8; 23] = b"trainchain/recompute/v1";
/// Domain tag of the comparison shard.
pub const COMPARE_DOMAIN: &[u8; 21] = b"trainchain/compare/v1";
/// Domain tag of the inner nodes of the shard Merkle tree (leaves are the shard hashes).
pub const SHARD_NODE_DOMAIN: &[u8; 24] = b"trainchain/shard-node/v1";

/// Where a contributor trains in a round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ShardAssignment {
	/// The shard, in `0..shards`.
	pub shard: u32,
	/// The seed of the round's shuffles.
	pub seed: u64,
}

/// The shard `who` trains on in `round` of `job`, and its shuffle seed: bytes 0..4 and 8..16
/// of `blake2_256(SHARD_DOMAIN ‖ job ‖ round ‖ who)`. `shards` must be non-zero (the pallet
/// refuses a spec without shards); zero is treated as one.
pub fn assign_shard<A: Encode>(
	job: JobId,
	round: RoundIndex,
	who: &A,
	shards: u32,
) -> ShardAssignment {
	let h = sp_crypto_hashing::blake2_256(&(SHARD_DOMAIN, job, round, who).encode());
	let [s0, s1, s2, s3, _, _, _, _, e0, e1, e2, e3, e4, e5, e6, e7, ..] = h;
	ShardAssignment {
		shard: u32::from_le_bytes([s0, s1, s2, s3]).checked_rem(shards).unwrap_or(0),
		seed: u64::from_le_bytes([e0, e1, e2, e3, e4, e5, e6, e7]),
	}
}

/// The shard an update of `who` is compared on: uniform over the shards other than `own`,
/// drawn from the settlement seed. With one shard there is no other, and `own` is returned.
pub fn comparison_shard<A: Encode>(seed: &Hash32, who: &A, own: u32, shards: u32) -> u32 {
	let others = shards.saturating_sub(1);
	let h = sp_crypto_hashing::blake2_256(&(COMPARE_DOMAIN, seed, who).encode());
	let [b0, b1, b2, b3, ..] = h;
	// `own + 1 + r` with `r < shards - 1`, taken mod `shards`: any shard but `own`.
	match u32::from_le_bytes([b0, b1, b2, b3]).checked_rem(others) {
		Some(r) => u64::from(own)
			.saturating_add(1)
			.saturating_add(u64::from(r))
			.checked_rem(u64::from(shards))
			.map_or(own, |c| c as u32),
		None => own,
	}
}

/// Which of `included` the verifiers re-compute: the `count` with the lowest
/// `blake2_256(RECOMPUTE_DOMAIN ‖ seed ‖ who)`, as flags in `included`'s order.
pub fn recompute_sample<A: Encode>(seed: &Hash32, included: &[A], count: u32) -> Vec<bool> {
	let ranks: Vec<Hash32> = included
		.iter()
		.map(|who| sp_crypto_hashing::blake2_256(&(RECOMPUTE_DOMAIN, seed, who).encode()))
		.collect();
	ranks
		.iter()
		.map(|r| ranks.iter().filter(|o| *o < r).count() < count as usize)
		.collect()
}

/// Merkle root of the shard leaf hashes: pairs are hashed as
/// `blake2_256(SHARD_NODE_DOMAIN ‖ left ‖ right)`, an odd last node is carried up unchanged.
/// The root of no leaves is all zeros; of one leaf, that leaf.
pub fn shards_root(leaves: &[Hash32]) -> Hash32 {
	let mut level: Vec<Hash32> = leaves.to_vec();
	if level.is_empty() {
		return [0u8; 32];
	}
	while level.len() > 1 {
		level = level
			.chunks(2)
			.map(|pair| match pair {
				[l, r] => sp_crypto_hashing::blake2_256(&(SHARD_NODE_DOMAIN, l, r).encode()),
				[one] => *one,
				_ => [0u8; 32],
			})
			.collect();
	}
	level.first().copied().unwrap_or([0u8; 32])
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	#[test]
	fn assignments_cover_the_shards_and_change_every_round() {
		let mut seen = [0u32; 8];
		for who in 0u8..200 {
			let a = assign_shard(3, 1, &[who; 32], 8);
			seen[a.shard as usize] += 1;
			assert_ne!(a, assign_shard(3, 2, &[who; 32], 8), "round must change it");
		}
		assert!(seen.iter().all(|n| *n > 10), "every shard gets contributors: {seen:?}");
		assert_eq!(assign_shard(3, 1, &[1u8; 32], 8), assign_shard(3, 1, &[1u8; 32], 8));
		assert_eq!(assign_shard(3, 1, &[1u8; 32], 0).shard, 0);
	}

	#[test]
	fn comparison_shard_is_never_the_own_one() {
		for who in 0u8..100 {
			for own in 0..5 {
				let c = comparison_shard(&[9u8; 32], &[who; 32], own, 5);
				assert!(c < 5 && c != own);
			}
		}
		assert_eq!(comparison_shard(&[9u8; 32], &[1u8; 32], 0, 1), 0);
	}

	#[test]
	fn recompute_sample_takes_exactly_count_and_depends_on_the_seed() {
		let who: Vec<[u8; 32]> = (0u8..10).map(|i| [i; 32]).collect();
		for count in 0..=12u32 {
			let s = recompute_sample(&[1u8; 32], &who, count);
			assert_eq!(s.iter().filter(|x| **x).count(), (count as usize).min(10));
		}
		let a = recompute_sample(&[1u8; 32], &who, 3);
		let differs = (2u8..20).any(|s| recompute_sample(&[s; 32], &who, 3) != a);
		assert!(differs);
	}

	#[test]
	fn root_binds_every_leaf_and_their_order() {
		let leaves: Vec<Hash32> = (0u8..5).map(|i| [i; 32]).collect();
		let root = shards_root(&leaves);
		let mut swapped = leaves.clone();
		swapped.swap(0, 1);
		assert_ne!(root, shards_root(&swapped));
		let mut changed = leaves.clone();
		changed[4] = [9u8; 32];
		assert_ne!(root, shards_root(&changed));
		assert_ne!(root, shards_root(&leaves[..4]));
		assert_eq!(shards_root(&leaves[..1]), leaves[0]);
		assert_eq!(shards_root(&[]), [0u8; 32]);
	}
}
