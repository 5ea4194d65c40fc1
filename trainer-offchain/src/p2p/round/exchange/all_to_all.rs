//! The all-to-all scheme: every participant sends its whole update to every other and
//! aggregates locally (simple; `S·(N−1)` bytes sent per peer).

use super::super::*;
use super::{Attempt, AttemptOutcome};

impl<T: LocalTrainer> Peer<T> {
	/// All-to-all exchange of one attempt.
	pub(super) async fn exchange_all_to_all(
		&mut self,
		ctx: &Attempt,
		parts: &[Participant],
		mine: &Compressed,
	) -> Result<AttemptOutcome> {
		let Attempt { attempt, proposal, deadline, len, nb, me, comp, .. } = *ctx;
		let body = Body::Chunk {
			attempt,
			proposal,
			first_block: 0,
			blocks: mine.blocks.clone(),
			proof: Vec::new(),
		};
		self.st
			.chunks
			.insert((attempt, me), (0, mine.blocks.clone(), Vec::new(), ctx.leaves.clone()));
		let sealed = self.seal_own_blocks(&body, &ctx.leaves);
		let missing = self
			.gather(parts, Some(sealed), deadline, |s, i| {
				parts.get(i).is_some_and(|p| s.st.chunks.contains_key(&(attempt, p.who)))
			})
			.await?;
		if !missing.is_empty() {
			return Ok(AttemptOutcome::Retry(missing));
		}
		let mut stats = Vec::new();
		let mut decoded: Vec<Vec<f32>> = Vec::new();
		for p in parts {
			let (first, blocks, _, leaves) =
				self.st.chunks.get(&(attempt, p.who)).cloned().unwrap_or_default();
			let ok = first == 0 && blocks.len() == nb && compress::merkle_root(&leaves) == p.root;
			let vals = if ok { compress::decode_blocks(comp, len, 0, &blocks).ok() } else { None };
			match vals {
				Some(v) => {
					stats.push(Stat::of(p.who, p.samples, &v, len));
					decoded.push(v);
				},
				None => {
					tracing::warn!(who = %short(&p.who), "update does not match its announced root or is malformed");
					stats.push(Stat {
						who: p.who,
						samples: p.samples,
						sq_norm: 0.0,
						finite: true,
						well_formed: false,
					});
					decoded.push(Vec::new());
				},
			}
		}
		let screening = self.screen_updates(&stats)?;
		let cols: Vec<&[f32]> = screening
			.accepted
			.iter()
			.filter_map(|a| {
				parts
					.iter()
					.position(|p| p.who == a.who)
					.and_then(|i| decoded.get(i))
					.map(|v| v.as_slice())
			})
			.collect();
		let agg =
			aggregate::aggregate_columns(self.cfg.robust.aggregator, &screening.accepted, &cols)?;
		Ok(AttemptOutcome::aggregated(agg, screening))
	}
}
