//! The Merkle tree over an update's per-block hashes: a peer commits to its compressed update
//! with the root, and a chunk sent to one owner carries a range proof against it.

use anyhow::{ensure, Result};

/// Hash of one encoded block: blake2-256 of `0x00 ‖ block` (the prefix separates leaves from
/// inner nodes). The reference that [`leaf_hashes`] is tested against.
#[cfg(test)]
fn leaf_hash(b: &[u8]) -> [u8; 32] {
	crate::digest::blake2_256_concat(&[&[0u8], b])
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
	let mut v = [0u8; 65];
	v[0] = 1;
	v[1..33].copy_from_slice(l);
	v[33..].copy_from_slice(r);
	sp_crypto_hashing::blake2_256(&v)
}

/// Hash of the subtree over leaves `[lo, hi)` (split at the midpoint).
fn subtree(leaves: &[[u8; 32]], lo: usize, hi: usize) -> [u8; 32] {
	if hi - lo == 1 {
		return leaves.get(lo).copied().unwrap_or_default();
	}
	let mid = lo + (hi - lo) / 2;
	node_hash(&subtree(leaves, lo, mid), &subtree(leaves, mid, hi))
}

/// Merkle root over block hashes.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
	if leaves.is_empty() {
		return [0; 32];
	}
	subtree(leaves, 0, leaves.len())
}

/// Sibling hashes proving leaves `[a, b)` of `leaves`.
pub fn range_proof(leaves: &[[u8; 32]], a: usize, b: usize) -> Vec<[u8; 32]> {
	fn go(leaves: &[[u8; 32]], lo: usize, hi: usize, a: usize, b: usize, out: &mut Vec<[u8; 32]>) {
		if hi <= a || lo >= b {
			out.push(subtree(leaves, lo, hi));
		} else if lo >= a && hi <= b {
		} else {
			let mid = lo + (hi - lo) / 2;
			go(leaves, lo, mid, a, b, out);
			go(leaves, mid, hi, a, b, out);
		}
	}
	let mut out = Vec::new();
	if !leaves.is_empty() {
		go(leaves, 0, leaves.len(), a, b, &mut out);
	}
	out
}

/// Root implied by leaves `[a, b)` (given as `range`) of a tree of `n` leaves plus `proof`.
pub fn root_from_range(
	n: usize,
	a: usize,
	range: &[[u8; 32]],
	proof: &[[u8; 32]],
) -> Result<[u8; 32]> {
	fn go(
		lo: usize,
		hi: usize,
		a: usize,
		b: usize,
		range: &[[u8; 32]],
		proof: &mut std::slice::Iter<[u8; 32]>,
	) -> Result<[u8; 32]> {
		if hi <= a || lo >= b {
			return proof.next().copied().ok_or_else(|| anyhow::anyhow!("proof too short"));
		}
		if hi - lo == 1 {
			return range.get(lo - a).copied().ok_or_else(|| anyhow::anyhow!("range too short"));
		}
		let mid = lo + (hi - lo) / 2;
		let l = go(lo, mid, a, b, range, proof)?;
		let r = go(mid, hi, a, b, range, proof)?;
		Ok(node_hash(&l, &r))
	}
	ensure!(n > 0 && !range.is_empty() && a + range.len() <= n, "bad range");
	let mut it = proof.iter();
	let root = go(0, n, a, a + range.len(), range, &mut it)?;
	ensure!(it.next().is_none(), "proof too long");
	Ok(root)
}

/// Leaf hashes of encoded blocks: blake2-256 of `0x00 ‖ block` for each (the prefix separates
/// leaves from inner nodes). Every byte of an update is hashed here, by its sender and by each
/// peer that receives a piece of it, so the blocks are hashed side by side.
pub fn leaf_hashes(blocks: &[Vec<u8>]) -> Vec<[u8; 32]> {
	crate::digest::blake2_256_prefixed_many(&[0u8], blocks)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn leaves_hashed_side_by_side_equal_leaves_hashed_one_by_one() {
		// Lengths around blake2b's 128-byte block (the 1-byte prefix shifts every boundary),
		// an empty block, and more blocks than the SIMD code takes at once.
		let lens = [0usize, 1, 126, 127, 128, 129, 255, 256, 1000, 49_000, 3, 4096, 7, 128];
		let blocks: Vec<Vec<u8>> = lens
			.iter()
			.enumerate()
			.map(|(i, &n)| (0..n).map(|j| (j * 31 + i * 7) as u8).collect())
			.collect();
		let one_by_one: Vec<[u8; 32]> = blocks.iter().map(|b| leaf_hash(b)).collect();
		assert_eq!(leaf_hashes(&blocks), one_by_one);
		assert_eq!(leaf_hashes(&blocks[..1]), one_by_one[..1]);
		assert!(leaf_hashes(&[]).is_empty());
		// The reference itself is blake2-256 of the prefixed bytes.
		assert_eq!(
			one_by_one[5],
			sp_crypto_hashing::blake2_256(&[&[0u8][..], &blocks[5]].concat())
		);
	}
}
