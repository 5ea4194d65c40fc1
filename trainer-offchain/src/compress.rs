//! Update compression, selectable per job: none, fp16, int8 quantisation, top-k
//! sparsification, and sparse few-bit blocks ([`sparse`]: top-k with Rice-coded indices and
//! 1–8-bit values, ≥ 100× at 2.7% and 2 bits), with error feedback kept by the caller in an
//! [`ErrorFeedback`].
//!
//! An update of `len` values is cut into [`block_count`]`(len)` contiguous blocks (at least
//! 512 values each, at most 840 blocks: 840 is divisible by 1..=8, so large updates split
//! evenly among up to 8 chunk owners); every block is compressed on its own. A peer commits to its whole compressed
//! update with the Merkle root of the per-block hashes ([`merkle_root`]); a chunk (a range of
//! blocks) sent to one peer carries a [`range_proof`] so the receiver can check it against
//! the committed root without seeing the other blocks.

use anyhow::{bail, ensure, Result};
use std::fmt;

mod feedback;
mod merkle;
pub mod sparse;
pub use feedback::{ErrorFeedback, OwnerFeedback};
pub use merkle::{leaf_hashes, merkle_root, range_proof, root_from_range};
use std::str::FromStr;

/// Most blocks per update: divisible by 1..=8, so large updates split evenly into chunks.
pub const BLOCKS: usize = 840;
/// Fewest values per block (keeps per-block overhead small for small updates).
pub const MIN_BLOCK_LEN: usize = 512;

/// How updates are compressed on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compression {
	/// Raw little-endian f32.
	None,
	/// IEEE half precision.
	Fp16,
	/// Symmetric linear int8 with one f32 scale per block.
	Int8,
	/// Keep the `fraction` largest-magnitude values of every block (index + f32 value).
	TopK {
		/// Fraction of values kept, in (0, 1].
		fraction: f32,
	},
	/// Keep the `density` largest-magnitude values of every block, as bit-packed indices and
	/// `bits`-bit values on a per-block scale ([`sparse`]).
	Sparse {
		/// Fraction of values kept, in (0, 1].
		density: f32,
		/// Bits per kept value, 1..=8.
		bits: u8,
	},
}

impl fmt::Display for Compression {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Compression::None => write!(f, "none"),
			Compression::Fp16 => write!(f, "fp16"),
			Compression::Int8 => write!(f, "int8"),
			Compression::TopK { fraction } => write!(f, "topk:{fraction}"),
			Compression::Sparse { density, bits } => write!(f, "sparse:{density}:{bits}"),
		}
	}
}

impl FromStr for Compression {
	type Err = anyhow::Error;
	fn from_str(s: &str) -> Result<Self> {
		Ok(match s {
			"none" => Compression::None,
			"fp16" => Compression::Fp16,
			"int8" => Compression::Int8,
			other if other.starts_with("sparse:") => {
				let mut it = other.trim_start_matches("sparse:").split(':');
				let (Some(d), Some(b), None) = (it.next(), it.next(), it.next()) else {
					bail!("sparse compression is sparse:DENSITY:BITS, e.g. sparse:0.0156:2");
				};
				let density: f32 = d.parse()?;
				let bits: u8 = b.parse()?;
				ensure!(density > 0.0 && density <= 1.0, "sparse density must be in (0, 1]");
				ensure!((1..=8).contains(&bits), "sparse bits must be 1..=8");
				Compression::Sparse { density, bits }
			},
			other => {
				let Some(k) = other.strip_prefix("topk:") else {
					bail!("unknown compression {other:?} (none|fp16|int8|topk:FRACTION|sparse:DENSITY:BITS)");
				};
				let fraction: f32 = k.parse()?;
				ensure!(fraction > 0.0 && fraction <= 1.0, "topk fraction must be in (0, 1]");
				Compression::TopK { fraction }
			},
		})
	}
}

impl Compression {
	/// Wire tag.
	pub fn tag(&self) -> u8 {
		match self {
			Compression::None => 0,
			Compression::Fp16 => 1,
			Compression::Int8 => 2,
			Compression::TopK { .. } => 3,
			Compression::Sparse { .. } => 4,
		}
	}

	/// The compression of a wire tag (for decoding: a top-k fraction or a sparse density is
	/// not needed, sparse blocks carry their own count and bits).
	pub fn from_tag(tag: u8) -> Result<Self> {
		Ok(match tag {
			0 => Compression::None,
			1 => Compression::Fp16,
			2 => Compression::Int8,
			3 => Compression::TopK { fraction: 1.0 },
			4 => Compression::Sparse { density: 1.0, bits: 8 },
			t => bail!("unknown compression tag {t}"),
		})
	}

	/// Whether compression loses information (so error feedback applies).
	pub fn is_lossy(&self) -> bool {
		!matches!(self, Compression::None)
	}

	/// Compress one block.
	pub fn encode_block(&self, xs: &[f32]) -> Vec<u8> {
		match *self {
			Compression::None => {
				let mut out = Vec::with_capacity(xs.len() * 4);
				for x in xs {
					out.extend_from_slice(&x.to_le_bytes());
				}
				out
			},
			Compression::Fp16 => {
				xs.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
			},
			Compression::Int8 => {
				let max = xs.iter().filter(|x| x.is_finite()).fold(0f32, |m, x| m.max(x.abs()));
				let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
				let mut out = Vec::with_capacity(4 + xs.len());
				out.extend_from_slice(&scale.to_le_bytes());
				for x in xs {
					let q = if scale > 0.0 && x.is_finite() {
						(x / scale).round().clamp(-127.0, 127.0) as i8
					} else {
						0
					};
					out.push(q as u8);
				}
				// NaN/inf survive as a NaN scale so the receiver rejects the update.
				if xs.iter().any(|x| !x.is_finite()) {
					out.splice(0..4, f32::NAN.to_le_bytes());
				}
				out
			},
			Compression::TopK { fraction } => {
				let k =
					((xs.len() as f64 * fraction as f64).ceil() as usize).clamp(1, xs.len().max(1));
				let mut idx: Vec<u32> = (0..xs.len() as u32).collect();
				let mag = |i: u32| {
					xs.get(i as usize).map(|x| if x.is_nan() { f32::INFINITY } else { x.abs() })
				};
				idx.sort_by(|a, b| {
					mag(*b)
						.partial_cmp(&mag(*a))
						.unwrap_or(std::cmp::Ordering::Equal)
						.then(a.cmp(b))
				});
				idx.truncate(k.min(xs.len()));
				idx.sort_unstable();
				let wide = xs.len() > 1 << 16;
				let mut out = Vec::with_capacity(4 + 8 * idx.len());
				out.extend_from_slice(&(idx.len() as u32).to_le_bytes());
				for i in idx {
					if wide {
						out.extend_from_slice(&i.to_le_bytes());
					} else {
						out.extend_from_slice(&(i as u16).to_le_bytes());
					}
					out.extend_from_slice(
						&xs.get(i as usize).copied().unwrap_or(0.0).to_le_bytes(),
					);
				}
				out
			},
			Compression::Sparse { density, bits } => sparse::encode(xs, density, bits),
		}
	}

	/// Decompress one block of `len` values. Errors on malformed bytes (never panics).
	pub fn decode_block(&self, bytes: &[u8], len: usize) -> Result<Vec<f32>> {
		match *self {
			Compression::None => {
				let mut out = Vec::with_capacity(len);
				decode_raw_into(bytes, len, &mut out)?;
				Ok(out)
			},
			Compression::Fp16 => {
				ensure!(
					bytes.len() == len * 2,
					"fp16 block: {} bytes for {len} values",
					bytes.len()
				);
				Ok(bytes
					.chunks_exact(2)
					.map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
					.collect())
			},
			Compression::Int8 => {
				ensure!(
					bytes.len() == len + 4,
					"int8 block: {} bytes for {len} values",
					bytes.len()
				);
				let (s, q) = bytes.split_at(4);
				let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
				Ok(q.iter().map(|b| (*b as i8) as f32 * scale).collect())
			},
			Compression::TopK { .. } => {
				ensure!(bytes.len() >= 4, "topk block too short");
				let (n, rest) = bytes.split_at(4);
				let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
				let w = if len > 1 << 16 { 4 } else { 2 };
				ensure!(
					n <= len && rest.len() == n * (w + 4),
					"topk block: {n} entries in {} bytes",
					rest.len()
				);
				let mut out = vec![0f32; len];
				let mut last: Option<usize> = None;
				for e in rest.chunks_exact(w + 4) {
					let (i, v) = e.split_at(w);
					let i = if w == 4 {
						u32::from_le_bytes([i[0], i[1], i[2], i[3]]) as usize
					} else {
						u16::from_le_bytes([i[0], i[1]]) as usize
					};
					ensure!(last.is_none_or(|l| i > l), "topk indices not strictly increasing");
					last = Some(i);
					let v = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
					match out.get_mut(i) {
						Some(slot) => *slot = v,
						None => bail!("topk index {i} out of range {len}"),
					}
				}
				Ok(out)
			},
			Compression::Sparse { .. } => sparse::decode(bytes, len),
		}
	}
}

/// Number of blocks for an update of `len` values.
pub fn block_count(len: usize) -> usize {
	(len / MIN_BLOCK_LEN).clamp(1, BLOCKS)
}

/// Element range of block `i` of `blocks` over `len` values.
pub fn block_range(len: usize, blocks: usize, i: usize) -> std::ops::Range<usize> {
	(i * len / blocks)..((i + 1) * len / blocks)
}

/// Block range of chunk `c` of `n` chunks over `blocks` blocks.
pub fn chunk_blocks(blocks: usize, n: usize, c: usize) -> std::ops::Range<usize> {
	(c * blocks / n)..((c + 1) * blocks / n)
}

/// Element range covered by chunk `c` of `n` for an update of `len` values.
pub fn chunk_elems(len: usize, n: usize, c: usize) -> std::ops::Range<usize> {
	let blocks = block_count(len);
	let b = chunk_blocks(blocks, n, c);
	(b.start * len / blocks)..(b.end * len / blocks)
}

/// A compressed update: one byte string per block.
#[derive(Clone, Debug)]
pub struct Compressed {
	/// Compression used.
	pub compression: Compression,
	/// Number of values.
	pub len: usize,
	/// Encoded blocks.
	pub blocks: Vec<Vec<u8>>,
}

impl Compressed {
	/// Compress `xs`.
	pub fn new(compression: Compression, xs: &[f32]) -> Self {
		let nb = block_count(xs.len());
		let blocks = (0..nb)
			.map(|i| {
				compression.encode_block(xs.get(block_range(xs.len(), nb, i)).unwrap_or_default())
			})
			.collect();
		Self { compression, len: xs.len(), blocks }
	}

	/// Total encoded bytes.
	pub fn byte_len(&self) -> usize {
		self.blocks.iter().map(Vec::len).sum()
	}

	/// Per-block hashes.
	pub fn leaf_hashes(&self) -> Vec<[u8; 32]> {
		leaf_hashes(&self.blocks)
	}

	/// The commitment to this update.
	pub fn root(&self) -> [u8; 32] {
		merkle_root(&self.leaf_hashes())
	}

	/// Decompress everything.
	pub fn decode(&self) -> Result<Vec<f32>> {
		decode_blocks(self.compression, self.len, 0, &self.blocks)
	}

	/// The bytes a peer serves for this update: `SCALE(tag, len, blocks)`.
	pub fn to_blob(&self) -> Vec<u8> {
		use codec::Encode;
		(self.compression.tag(), self.len as u64, &self.blocks).encode()
	}

	/// An update from served bytes, checked against the root it was asked for (the update
	/// hash a contributor committed): a wrong or altered update is refused.
	pub fn from_blob(bytes: &[u8], root: &[u8; 32]) -> Result<Self> {
		use codec::Decode;
		let mut input = bytes;
		let (tag, len, blocks) = <(u8, u64, Vec<Vec<u8>>)>::decode(&mut input)
			.map_err(|e| anyhow::anyhow!("undecodable update: {e}"))?;
		ensure!(input.is_empty(), "trailing bytes after the update");
		let mut compression = Compression::from_tag(tag)?;
		let len = usize::try_from(len)?;
		ensure!(blocks.len() == block_count(len), "update has the wrong number of blocks");
		if let (Compression::Sparse { .. }, Some(first)) = (compression, blocks.first()) {
			// What a verifier re-compresses with: the density and bits of the first block.
			let first_len = block_range(len, blocks.len(), 0).len();
			if let Some((density, bits)) = sparse::params_of(first, first_len) {
				compression = Compression::Sparse { density, bits };
			}
		}
		let update = Self { compression, len, blocks };
		ensure!(update.root() == *root, "update does not match its committed hash");
		Ok(update)
	}
}

/// Decode consecutive blocks starting at block `first` of an update of `len` values.
pub fn decode_blocks(
	compression: Compression,
	len: usize,
	first: usize,
	blocks: &[Vec<u8>],
) -> Result<Vec<f32>> {
	let nb = block_count(len);
	ensure!(first + blocks.len() <= nb, "block range {first}+{} beyond {nb}", blocks.len());
	let total = (first..first + blocks.len()).map(|b| block_range(len, nb, b).len()).sum();
	let mut out = Vec::with_capacity(total);
	for (j, b) in blocks.iter().enumerate() {
		let r = block_range(len, nb, first + j);
		match compression {
			// Raw values go straight into the output, without a vector per block.
			Compression::None => decode_raw_into(b, r.len(), &mut out)?,
			_ => out.extend(compression.decode_block(b, r.len())?),
		}
	}
	Ok(out)
}

/// Append the `len` little-endian f32 values of a raw block to `out`.
fn decode_raw_into(bytes: &[u8], len: usize, out: &mut Vec<f32>) -> Result<()> {
	ensure!(bytes.len() == len * 4, "raw block: {} bytes for {len} values", bytes.len());
	out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
	Ok(())
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	#[test]
	fn a_served_update_must_match_its_committed_hash() {
		let xs: Vec<f32> = (0..5000).map(|i| (i as f32).sin()).collect();
		for comp in [
			Compression::None,
			Compression::Int8,
			Compression::TopK { fraction: 0.1 },
			Compression::Sparse { density: 0.02, bits: 2 },
		] {
			let u = Compressed::new(comp, &xs);
			let root = u.root();
			let blob = u.to_blob();
			let back = Compressed::from_blob(&blob, &root).unwrap();
			assert_eq!(back.decode().unwrap(), u.decode().unwrap());
			// Another update's hash, a flipped byte, a truncated or padded blob: all refused.
			assert!(Compressed::from_blob(&blob, &[0; 32]).is_err());
			let mut flipped = blob.clone();
			let last = flipped.len() - 1;
			flipped[last] ^= 1;
			assert!(Compressed::from_blob(&flipped, &root).is_err());
			assert!(Compressed::from_blob(&blob[..blob.len() - 1], &root).is_err());
			let mut padded = blob.clone();
			padded.push(0);
			assert!(Compressed::from_blob(&padded, &root).is_err());
		}
	}

	/// `n` spread values in [−0.5, 0.5) (shared by the submodules' tests).
	pub(super) fn vec(n: usize) -> Vec<f32> {
		(0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
	}

	#[test]
	fn round_trips_and_errors() {
		let xs = vec(5000);
		for c in [
			Compression::None,
			Compression::Fp16,
			Compression::Int8,
			"topk:0.1".parse().unwrap(),
			"sparse:0.1:4".parse().unwrap(),
		] {
			let comp = Compressed::new(c, &xs);
			let back = comp.decode().unwrap();
			assert_eq!(back.len(), xs.len());
			let err: f32 = xs.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
			match c {
				Compression::None => assert_eq!(err, 0.0),
				Compression::Fp16 => assert!(err < 1e-3),
				Compression::Int8 => assert!(err < 0.01),
				Compression::TopK { .. } | Compression::Sparse { .. } => assert!(err <= 0.5),
			}
			// Truncated blocks are errors, never panics.
			assert!(c.decode_block(&comp.blocks[0][..1], 6).is_err());
		}
		assert!("topk:0".parse::<Compression>().is_err());
		for bad in ["sparse:0:2", "sparse:0.1:0", "sparse:0.1:9", "sparse:0.1", "sparse:0.1:2:3"] {
			assert!(bad.parse::<Compression>().is_err(), "{bad}");
		}
		let s: Compression = "sparse:0.0156:2".parse().unwrap();
		assert_eq!(s.to_string().parse::<Compression>().unwrap(), s);
		assert!("zip".parse::<Compression>().is_err());
	}

	#[test]
	fn chunks_partition_and_proofs_verify() {
		for len in [1usize, 7, 839, 840, 5000, 75_000, 1_000_000] {
			let comp = Compressed::new(Compression::Int8, &vec(len));
			let leaves = comp.leaf_hashes();
			let root = merkle_root(&leaves);
			for n in 1..=5usize {
				let mut covered = 0;
				for c in 0..n {
					let b = chunk_blocks(leaves.len(), n, c);
					let e = chunk_elems(len, n, c);
					assert_eq!(e.start, covered);
					covered = e.end;
					if b.is_empty() {
						continue;
					}
					let proof = range_proof(&leaves, b.start, b.end);
					assert!(proof.len() <= 2 * 11);
					assert!(leaves.len() <= BLOCKS);
					assert_eq!(
						root_from_range(leaves.len(), b.start, &leaves[b.clone()], &proof).unwrap(),
						root
					);
					let mut bad = leaves[b.clone()].to_vec();
					bad[0][0] ^= 1;
					assert_ne!(root_from_range(leaves.len(), b.start, &bad, &proof).unwrap(), root);
					let dec =
						decode_blocks(comp.compression, len, b.start, &comp.blocks[b.clone()])
							.unwrap();
					assert_eq!(dec.len(), e.len());
				}
				assert_eq!(covered, len);
			}
		}
	}
}
