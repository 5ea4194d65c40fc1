//! The chunked scheme: reduce-scatter of Merkle-proofed chunks to their owners, screening
//! on the owners' per-sender reports, all-gather of the reduced chunks, and a cross-check of
//! what every participant received (`2·S·(N−1)/N` bytes sent per peer).

use super::super::*;
use super::{Attempt, AttemptOutcome};

/// What the owner of a chunk received: each participant's decoded values of the chunk (in
/// participant order; `None` if missing or not matching the sender's root) and the
/// statistics it reports on them.
struct OwnedChunk {
	cols: Vec<Option<Vec<f32>>>,
	stats: Vec<ChunkStat>,
}

impl<T: LocalTrainer> Peer<T> {
	/// Chunked exchange of one attempt.
	pub(super) async fn exchange_chunked(
		&mut self,
		ctx: &Attempt,
		parts: &[Participant],
		mine: &Compressed,
	) -> Result<AttemptOutcome> {
		let Attempt { attempt, proposal, deadline, my_idx, .. } = *ctx;
		let t0 = Instant::now();
		self.scatter_chunks(ctx, parts, mine);
		// As owner: wait for chunks (half the deadline), then report statistics.
		let half = Instant::now() + self.cfg.round_timeout / 2;
		self.gather(parts, None, half, |s, i| {
			parts.get(i).is_some_and(|p| s.st.chunks.contains_key(&(attempt, p.who)))
		})
		.await?;
		tracing::debug!(ms = t0.elapsed().as_millis() as u64, "exchange: chunks in");
		let owned = self.check_owned_chunk(ctx, parts);
		let chunk = my_idx as u32;
		let norms = Body::Norms { attempt, proposal, chunk, stats: owned.stats.clone() };
		self.st.norms.insert((attempt, chunk), owned.stats);
		let sealed = self.seal(&norms);
		let missing = self
			.gather(parts, Some(sealed), deadline, |s, c| {
				s.st.norms.contains_key(&(attempt, c as u32))
			})
			.await?;
		if !missing.is_empty() {
			return Ok(AttemptOutcome::Retry(missing));
		}
		tracing::debug!(ms = t0.elapsed().as_millis() as u64, "exchange: norms in");
		// Every peer combines the same reports into the same screening.
		let screening = self.screen_updates(&self.combined_stats(attempt, parts))?;
		self.reduce_and_send(ctx, parts, &owned.cols, &screening)?;
		tracing::debug!(ms = t0.elapsed().as_millis() as u64, "exchange: reduced sent");
		let missing = self
			.gather(parts, None, deadline, |s, c| s.st.reduced.contains_key(&(attempt, c as u32)))
			.await?;
		if !missing.is_empty() {
			return Ok(AttemptOutcome::Retry(missing));
		}
		tracing::debug!(ms = t0.elapsed().as_millis() as u64, "exchange: reduced chunks in");
		let split = self.cross_check_reduced(ctx, parts).await?;
		tracing::debug!(ms = t0.elapsed().as_millis() as u64, "exchange: cross-checked");
		if !split.is_empty() {
			return Ok(AttemptOutcome::Retry(split));
		}
		Ok(match self.assemble_reduced(ctx, parts) {
			Ok(agg) => AttemptOutcome::aggregated(agg, screening),
			Err(owner) => AttemptOutcome::Retry(vec![owner]),
		})
	}

	/// Reduce-scatter: chunk `c` of this peer's update, with its range proof, goes to its
	/// owner `parts[c]` (in shift order, from the next participant on); this peer's own chunk
	/// is filed directly.
	fn scatter_chunks(&mut self, ctx: &Attempt, parts: &[Participant], mine: &Compressed) {
		let Attempt { attempt, proposal, n, nb, me, my_idx, .. } = *ctx;
		let order = std::iter::once(my_idx).chain(crate::p2p::roles::shift_order(my_idx, n));
		for (c, p) in order.filter_map(|c| parts.get(c).map(|p| (c, p))) {
			let b = compress::chunk_blocks(nb, n, c);
			let blocks = mine.blocks.get(b.clone()).unwrap_or_default();
			let proof = compress::range_proof(&ctx.leaves, b.start, b.end);
			let first_block = b.start as u32;
			let leaves = ctx.leaves.get(b.clone()).unwrap_or_default();
			if p.who == me {
				let own = (first_block, blocks.to_vec(), proof, leaves.to_vec());
				self.st.chunks.insert((attempt, me), own);
			} else {
				// Sealed from the update's own blocks: no copy of them first.
				let body = ChunkRef { attempt, proposal, first_block, blocks, proof: &proof };
				let sealed = self.seal_own_blocks(&body, leaves);
				self.send_sealed(&p.who, std::sync::Arc::new(sealed));
			}
		}
	}

	/// As owner: decode and check (range proof against the sender's root, shape) every
	/// participant's piece of this peer's chunk, and compute the statistics to report.
	fn check_owned_chunk(&self, ctx: &Attempt, parts: &[Participant]) -> OwnedChunk {
		let Attempt { attempt, n, len, nb, my_idx, comp, .. } = *ctx;
		let my_blocks = compress::chunk_blocks(nb, n, my_idx);
		let my_elems = compress::chunk_elems(len, n, my_idx);
		let mut owned = OwnedChunk { cols: Vec::new(), stats: Vec::new() };
		for p in parts {
			let chunk = self.st.chunks.get(&(attempt, p.who));
			let got = chunk.and_then(|(first, blocks, proof, leaves)| {
				if *first as usize != my_blocks.start
					|| blocks.len() != my_blocks.len()
					|| blocks.is_empty()
				{
					return None;
				}
				// The leaf hashes the sender's signature was checked with.
				let root = compress::root_from_range(nb, my_blocks.start, leaves, proof).ok()?;
				if root != p.root {
					return None;
				}
				let v = compress::decode_blocks(comp, len, my_blocks.start, blocks).ok()?;
				(v.len() == my_elems.len()).then_some(v)
			});
			let got = if my_blocks.is_empty() { Some(Vec::new()) } else { got };
			let (sq, finite) = got.as_deref().map(aggregate::partial_stat).unwrap_or((0.0, true));
			if got.is_none() {
				tracing::warn!(who = %short(&p.who), "chunk missing, malformed or not matching its root");
			}
			owned.stats.push(ChunkStat {
				who: p.who,
				sq_norm_bits: sq.to_bits(),
				finite,
				well_formed: got.is_some(),
			});
			owned.cols.push(got);
		}
		owned
	}

	/// Each participant's statistics summed over every owner's report (a participant some
	/// owner did not report on is not well formed).
	fn combined_stats(&self, attempt: u32, parts: &[Participant]) -> Vec<Stat> {
		let n = parts.len() as u32;
		let mut stats = Vec::new();
		for (i, p) in parts.iter().enumerate() {
			let mut sq = 0f64;
			let mut finite = true;
			let mut well_formed = true;
			for c in 0..n {
				match self.st.norms.get(&(attempt, c)).and_then(|v| v.get(i)) {
					Some(cs) if cs.who == p.who => {
						sq += f64::from_bits(cs.sq_norm_bits);
						finite &= cs.finite;
						well_formed &= cs.well_formed;
					},
					_ => well_formed = false,
				}
			}
			stats.push(Stat { who: p.who, samples: p.samples, sq_norm: sq, finite, well_formed });
		}
		stats
	}

	/// As owner: aggregate the accepted pieces of this peer's chunk (in sorted-key order),
	/// file the result and send it to every other participant, sealed once.
	fn reduce_and_send(
		&mut self,
		ctx: &Attempt,
		parts: &[Participant],
		cols: &[Option<Vec<f32>>],
		screening: &aggregate::Screening,
	) -> Result<()> {
		let Attempt { attempt, proposal, n, len, nb, my_idx, comp, .. } = *ctx;
		let my_blocks = compress::chunk_blocks(nb, n, my_idx);
		let my_elems = compress::chunk_elems(len, n, my_idx);
		let accepted_cols: Vec<&[f32]> = screening
			.accepted
			.iter()
			.filter_map(|a| {
				let i = parts.iter().position(|p| p.who == a.who)?;
				cols.get(i)?.as_deref()
			})
			.collect();
		let reduced = if my_elems.is_empty() {
			Vec::new()
		} else {
			let agg = self.cfg.robust.aggregator;
			aggregate::aggregate_columns(agg, &screening.accepted, &accepted_cols)?
		};
		let encode = |values: &[f32]| -> Vec<Vec<u8>> {
			my_blocks
				.clone()
				.map(|b| {
					let r = compress::block_range(len, nb, b);
					let off = my_elems.start;
					let piece = values.get(r.start - off..r.end - off).unwrap_or_default();
					reduce_compression(comp).encode_block(piece)
				})
				.collect()
		};
		let blocks = if self.feeds_back_reduced() {
			let sent = self.reduce_feedback.corrected(&my_elems, len, &reduced);
			let blocks = encode(&sent);
			let decoded =
				compress::decode_blocks(reduce_compression(comp), len, my_blocks.start, &blocks)?;
			self.reduce_feedback.keep(&my_elems, &sent, &decoded);
			blocks
		} else {
			encode(&reduced)
		};
		let chunk = my_idx as u32;
		let body = Body::Reduced { attempt, proposal, chunk, blocks };
		let (keys, job, round) = (&self.cfg.keys, self.cfg.job_id, self.round);
		// Encoded once, straight into the bytes every other participant gets.
		let (sealed, sig, digest) = Envelope::seal_bytes_signed(keys, job, round, &body, None);
		if let Body::Reduced { blocks, .. } = body {
			self.st.reduced.insert((attempt, chunk), (blocks, sig, digest));
		}
		if self.cfg.byzantine == Some(Byzantine::SplitReduced) {
			// Test-only: every other peer gets a differently scaled reduction.
			for (k, p) in parts.iter().enumerate().filter(|(_, p)| p.who != self.me) {
				let skewed: Vec<f32> = reduced.iter().map(|x| x * (2.0 + k as f32)).collect();
				let body = Body::Reduced { attempt, proposal, chunk, blocks: encode(&skewed) };
				self.send_to(&p.who, &body);
			}
			return Ok(());
		}
		self.send_to_others(parts, sealed);
		Ok(())
	}

	/// Decode the reduced chunks into the aggregate. `Err(owner)` names the owner of a chunk
	/// of the wrong shape or with values that are not finite.
	fn assemble_reduced(
		&self,
		ctx: &Attempt,
		parts: &[Participant],
	) -> std::result::Result<Vec<f32>, PublicKey> {
		let Attempt { attempt, n, len, nb, comp, .. } = *ctx;
		let mut agg = Vec::with_capacity(len);
		for (c, owner) in parts.iter().enumerate() {
			let b = compress::chunk_blocks(nb, n, c);
			let blocks = self.st.reduced.get(&(attempt, c as u32)).map(|(b, _, _)| b);
			let values = blocks
				.filter(|blocks| blocks.len() == b.len())
				.and_then(|blocks| {
					compress::decode_blocks(reduce_compression(comp), len, b.start, blocks).ok()
				})
				.filter(|v| {
					v.len() == compress::chunk_elems(len, n, c).len()
						&& v.iter().all(|x| x.is_finite())
				});
			match values {
				Some(v) => agg.extend(v),
				None => {
					tracing::warn!(owner = c, "malformed reduced chunk");
					return Err(owner.who);
				},
			}
		}
		Ok(agg)
	}
}

impl<T: LocalTrainer> Peer<T> {
	/// Whether this peer, as a chunk's owner, carries what the encoding of its reduced chunk
	/// dropped into its next reduction (sparse compression with error feedback on).
	fn feeds_back_reduced(&self) -> bool {
		self.cfg.error_feedback && matches!(self.cfg.compression, Compression::Sparse { .. })
	}
}

/// The encoding of reduced chunks: fp16, int8 and sparse blocks stay (both halves of the
/// exchange compressed), top-k sends dense values (the sum of sparse updates is not sparse).
fn reduce_compression(comp: Compression) -> Compression {
	match comp {
		Compression::Fp16 | Compression::Int8 | Compression::Sparse { .. } => comp,
		Compression::None | Compression::TopK { .. } => Compression::None,
	}
}
