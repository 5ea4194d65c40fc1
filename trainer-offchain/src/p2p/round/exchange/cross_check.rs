//! Cross-check of the all-gather before anybody signs: every participant sends the digests of
//! the reduced chunks it received; where a digest differs, the participants forward the
//! owner's own signed `Reduced` envelope, and two different signed reductions of one chunk
//! prove that its owner equivocated. The attempt is then retried without it.
//!
//! A participant that merely *reports* a wrong digest proves nothing: it cannot forge the
//! owner's signature, so no honest owner is ever excluded on its word; the honest peers wait
//! briefly for evidence, find none, and go on.

use super::super::*;
use super::Attempt;

impl<T: LocalTrainer> Peer<T> {
	/// Compare the received reduced chunks with every participant. Returns the owners proven
	/// to have sent different reductions of their chunk to different participants.
	pub(super) async fn cross_check_reduced(
		&mut self,
		ctx: &Attempt,
		parts: &[Participant],
	) -> Result<Vec<PublicKey>> {
		let Attempt { attempt, proposal, deadline, n, .. } = *ctx;
		let digests: Vec<Hash32> = (0..n as u32).map(|c| self.reduced_digest(attempt, c)).collect();
		self.st.digests.insert((attempt, self.me), digests.clone());
		let sealed =
			self.seal(&Body::ReducedDigests { attempt, proposal, digests: digests.clone() });
		let short = deadline.min(Instant::now() + self.cfg.round_timeout / 4);
		let silent = self
			.gather(parts, Some(sealed), short, |s, i| {
				parts.get(i).is_some_and(|p| s.st.digests.contains_key(&(attempt, p.who)))
			})
			.await?;
		if !silent.is_empty() {
			tracing::debug!(n = silent.len(), "no reduced digests from some participants");
		}
		let disputed = self.disputed_chunks(attempt, &digests);
		if disputed.is_empty() {
			return Ok(Vec::new());
		}
		for &c in &disputed {
			if let Some(evidence) = self.owner_envelope(ctx, parts, c) {
				let body = Body::ReducedConflict { attempt, proposal, evidence };
				self.send_to_others(parts, self.seal(&body));
			}
		}
		let proven = |s: &Self, c: &u32| s.st.proven_split.contains(&(attempt, *c));
		let short = deadline.min(Instant::now() + self.cfg.round_timeout / 4);
		self.wait_until(short, |s| disputed.iter().all(|c| proven(s, c))).await?;
		let owners: Vec<PublicKey> = self
			.st
			.proven_split
			.iter()
			.filter(|(a, _)| *a == attempt)
			.filter_map(|(_, c)| parts.get(*c as usize).map(|p| p.who))
			.collect();
		if owners.is_empty() {
			tracing::warn!(
				?disputed,
				"a participant reported other reduced chunks without evidence; going on"
			);
		}
		Ok(owners)
	}

	/// The digest of chunk `c`'s `Reduced` body as this peer received it, the one its owner
	/// signed (all zeros if it has none): equal digests mean equal blocks.
	fn reduced_digest(&self, attempt: u32, chunk: u32) -> Hash32 {
		self.st.reduced.get(&(attempt, chunk)).map_or([0; 32], |(_, _, digest)| *digest)
	}

	/// Chunks for which some participant reported a digest other than this peer's.
	fn disputed_chunks(&self, attempt: u32, mine: &[Hash32]) -> BTreeSet<u32> {
		let mut out = BTreeSet::new();
		for ((a, who), theirs) in &self.st.digests {
			if *a != attempt || *who == self.me || theirs.len() != mine.len() {
				continue;
			}
			for (c, (x, y)) in mine.iter().zip(theirs).enumerate() {
				if x != y {
					out.insert(c as u32);
				}
			}
		}
		out
	}

	/// The owner's signed envelope of chunk `c` as this peer received it (rebuilt from the
	/// stored blocks and the owner's signature; SCALE encoding is canonical).
	fn owner_envelope(&self, ctx: &Attempt, parts: &[Participant], c: u32) -> Option<Envelope> {
		let (blocks, sig, _) = self.st.reduced.get(&(ctx.attempt, c))?;
		let body = Body::Reduced {
			attempt: ctx.attempt,
			proposal: ctx.proposal,
			chunk: c,
			blocks: blocks.clone(),
		};
		Some(Envelope {
			job: self.cfg.job_id,
			round: self.round,
			who: parts.get(c as usize)?.who,
			body: body.encode(),
			sig: *sig,
		})
	}

	/// A participant forwarded an owner's `Reduced` envelope. If it is authentic, for this
	/// attempt's agreed proposal, and differs from the reduction this peer received, the owner
	/// sent two different reductions: it is an equivocator. If this peer has none yet, the
	/// authentic envelope fills the slot.
	pub(in crate::p2p::round) fn on_reduced_conflict(
		&mut self,
		from: PublicKey,
		attempt: u32,
		evidence: Envelope,
	) {
		let Some((agreed, parts)) = self.st.agreed.get(&attempt) else {
			return;
		};
		let checked =
			check_reduced_evidence(&evidence, self.cfg.job_id, self.round, agreed, attempt, parts);
		let (chunk, blocks, digest) = match checked {
			Ok(c) => c,
			Err(why) => {
				Metrics::inc(&self.metrics().messages_rejected);
				tracing::warn!(from = %short(&from), "rejected reduced-chunk evidence: {why}");
				return;
			},
		};
		match self.st.reduced.get(&(attempt, chunk)) {
			None => {
				self.st.reduced.insert((attempt, chunk), (blocks, evidence.sig, digest));
			},
			Some((mine, _, _)) if *mine != blocks => {
				if self.st.proven_split.insert((attempt, chunk)) {
					Metrics::inc(&self.metrics().equivocations);
					tracing::warn!(owner = %short(&evidence.who), chunk, "equivocation: the owner sent different reduced chunks; excluding it");
				}
				self.st.equivocators.insert(evidence.who);
			},
			Some(_) => {},
		}
	}
}

/// Checks forwarded evidence: signed by the owner of its chunk in the agreed proposal, for
/// this job, round, attempt and proposal. Returns the chunk, its blocks and the digest signed.
fn check_reduced_evidence(
	evidence: &Envelope,
	job: JobId,
	round: RoundIndex,
	agreed: &Hash32,
	attempt: u32,
	parts: &[Participant],
) -> std::result::Result<(u32, Vec<Vec<u8>>, Hash32), &'static str> {
	if evidence.job != job || evidence.round != round {
		return Err("another job or round");
	}
	let Ok((Body::Reduced { attempt: a, proposal, chunk, blocks }, opened)) =
		evidence.open_checked()
	else {
		return Err("not a reduced chunk signed by its sender");
	};
	if a != attempt || proposal != *agreed {
		return Err("another attempt or proposal");
	}
	if parts.get(chunk as usize).is_none_or(|p| p.who != evidence.who) {
		return Err("not signed by the chunk's owner");
	}
	Ok((chunk, blocks, opened.digest))
}
