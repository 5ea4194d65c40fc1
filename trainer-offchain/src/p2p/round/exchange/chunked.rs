//! The chunked scheme: reduce-scatter of Merkle-proofed chunks to their owners, screening
//! on the owners' per-sender reports, all-gather of the reduced chunks (`2·S·(N−1)/N`
//! bytes sent per peer).

use super::super::*;
use super::{Attempt, ExchangeResult};

impl<T: LocalTrainer> Peer<T> {
	/// Chunked exchange of one attempt.
	pub(super) async fn exchange_chunked(
		&mut self,
		ctx: &Attempt,
		parts: &[Participant],
		mine: &Compressed,
	) -> Result<ExchangeResult> {
		let Attempt { attempt, proposal, deadline, n, len, nb, me, my_idx, comp, .. } = *ctx;
		let leaves = &ctx.leaves;
		let _ = (n, my_idx, leaves);
		// Reduce-scatter: chunk c goes to its owner parts[c].
		for (c, p) in parts.iter().enumerate() {
			let b = compress::chunk_blocks(nb, n, c);
			let blocks = mine.blocks.get(b.clone()).unwrap_or_default().to_vec();
			let proof = compress::range_proof(leaves, b.start, b.end);
			let body =
				Body::Chunk { attempt, proposal, first_block: b.start as u32, blocks, proof };
			if p.who == me {
				if let Body::Chunk { first_block, blocks, proof, .. } = body {
					self.st.chunks.insert((attempt, me), (first_block, blocks, proof));
				}
			} else {
				self.send_to(&p.who, &body);
			}
		}
		// As owner: wait for chunks (half the deadline), then report statistics.
		let senders: Vec<PublicKey> = parts.iter().map(|p| p.who).collect();
		let half = Instant::now() + self.cfg.round_timeout / 2;
		self.wait_until(half, |s| senders.iter().all(|w| s.st.chunks.contains_key(&(attempt, *w))))
			.await?;
		let my_blocks = compress::chunk_blocks(nb, n, my_idx);
		let my_elems = compress::chunk_elems(len, n, my_idx);
		let mut my_cols: Vec<Option<Vec<f32>>> = Vec::new();
		let mut my_stats = Vec::new();
		for p in parts {
			let got = self.st.chunks.get(&(attempt, p.who)).and_then(|(first, blocks, proof)| {
				if *first as usize != my_blocks.start
					|| blocks.len() != my_blocks.len()
					|| blocks.is_empty()
				{
					return None;
				}
				let root = compress::root_from_range(
					nb,
					my_blocks.start,
					&compress::leaf_hashes(blocks),
					proof,
				)
				.ok()?;
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
			my_stats.push(ChunkStat {
				who: p.who,
				sq_norm_bits: sq.to_bits(),
				finite,
				well_formed: got.is_some(),
			});
			my_cols.push(got);
		}
		let norms =
			Body::Norms { attempt, proposal, chunk: my_idx as u32, stats: my_stats.clone() };
		for p in parts.iter().filter(|p| p.who != me) {
			self.send_to(&p.who, &norms);
		}
		self.st.norms.insert((attempt, my_idx as u32), my_stats);
		let ok = self
			.wait_until(deadline, |s| (0..n as u32).all(|c| s.st.norms.contains_key(&(attempt, c))))
			.await?;
		if !ok {
			let missing = (0..n as u32)
				.filter(|c| !self.st.norms.contains_key(&(attempt, *c)))
				.filter_map(|c| parts.get(c as usize).map(|p| p.who))
				.collect();
			return Ok(Err(missing));
		}
		// Every peer combines the same reports into the same screening.
		let mut stats = Vec::new();
		for (i, p) in parts.iter().enumerate() {
			let mut sq = 0f64;
			let mut finite = true;
			let mut well_formed = true;
			for c in 0..n as u32 {
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
		let screening = self.screen_updates(&stats)?;
		// As owner: aggregate my chunk, all-gather it.
		let reduce_comp = match comp {
			Compression::Fp16 | Compression::Int8 => comp,
			_ => Compression::None,
		};
		let cols: Vec<&[f32]> = screening
			.accepted
			.iter()
			.filter_map(|a| {
				parts
					.iter()
					.position(|p| p.who == a.who)
					.and_then(|i| my_cols.get(i))
					.and_then(|c| c.as_deref())
			})
			.collect();
		let my_red = if my_elems.is_empty() {
			Vec::new()
		} else {
			aggregate::aggregate_columns(self.cfg.robust.aggregator, &screening.accepted, &cols)?
		};
		let red_blocks: Vec<Vec<u8>> = my_blocks
			.clone()
			.map(|b| {
				let r = compress::block_range(len, nb, b);
				let off = my_elems.start;
				reduce_comp.encode_block(my_red.get(r.start - off..r.end - off).unwrap_or_default())
			})
			.collect();
		let reduced =
			Body::Reduced { attempt, proposal, chunk: my_idx as u32, blocks: red_blocks.clone() };
		for p in parts.iter().filter(|p| p.who != me) {
			self.send_to(&p.who, &reduced);
		}
		self.st.reduced.insert((attempt, my_idx as u32), red_blocks);
		let ok = self
			.wait_until(deadline, |s| {
				(0..n as u32).all(|c| s.st.reduced.contains_key(&(attempt, c)))
			})
			.await?;
		if !ok {
			let missing = (0..n as u32)
				.filter(|c| !self.st.reduced.contains_key(&(attempt, *c)))
				.filter_map(|c| parts.get(c as usize).map(|p| p.who))
				.collect();
			return Ok(Err(missing));
		}
		let mut agg = Vec::with_capacity(len);
		for c in 0..n {
			let b = compress::chunk_blocks(nb, n, c);
			let blocks = self.st.reduced.get(&(attempt, c as u32)).cloned().unwrap_or_default();
			if blocks.len() != b.len() {
				return Ok(Err(parts.get(c).map(|p| vec![p.who]).unwrap_or_default()));
			}
			match compress::decode_blocks(reduce_comp, len, b.start, &blocks) {
				Ok(v) if v.iter().all(|x| x.is_finite()) => agg.extend(v),
				_ => {
					tracing::warn!(owner = c, "malformed reduced chunk");
					return Ok(Err(parts.get(c).map(|p| vec![p.who]).unwrap_or_default()));
				},
			}
		}
		if agg.len() != len {
			bail!("aggregate has {} values, expected {len}", agg.len());
		}
		Ok(Ok((agg, screening.accepted, screening.rejected)))
	}
}
