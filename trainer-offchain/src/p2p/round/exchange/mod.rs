//! The exchange of updates under the agreed proposal: reduce-scatter of chunks to their
//! owners, screening on the owners' reports, all-gather of the reduced chunks.

mod all_to_all;
mod chunked;
mod cross_check;

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Fix the proposal followed in `attempt` and check the exchange messages that arrived
	/// before it. Returns the proposal's hash (sent in this peer's exchange messages).
	pub(super) fn begin_exchange(&mut self, attempt: u32, parts: &[Participant]) -> Hash32 {
		let hash = proposal_hash(self.round, attempt, parts);
		self.st.agreed.insert(attempt, (hash, parts.to_vec()));
		let early: Vec<_> = self.st.early.keys().filter(|k| k.0 == attempt).copied().collect();
		for k in early {
			if let Some((body, opened)) = self.st.early.remove(&k) {
				self.accept_exchange(k.1, body, opened);
			}
		}
		hash
	}

	/// Exchange updates of one attempt.
	pub(super) async fn exchange(
		&mut self,
		attempt: u32,
		parts: &[Participant],
		mine: &Compressed,
		leaves: &[Hash32],
	) -> Result<AttemptOutcome> {
		let me = self.me;
		let my_idx = parts.iter().position(|p| p.who == me).context("not a participant")?;
		let ctx = Attempt {
			attempt,
			proposal: self.begin_exchange(attempt, parts),
			deadline: Instant::now() + self.cfg.round_timeout,
			n: parts.len(),
			len: self.params_len,
			nb: compress::block_count(self.params_len),
			me,
			my_idx,
			comp: self.cfg.compression,
			leaves: leaves.to_vec(),
		};
		match self.cfg.scheme {
			Scheme::AllToAll => self.exchange_all_to_all(&ctx, parts, mine).await,
			Scheme::Chunked => self.exchange_chunked(&ctx, parts, mine).await,
		}
	}

	/// Send `sealed` (if any) to every other participant, then handle events until `have(self,
	/// i)` holds for every participant index `i` or `deadline` passes. Returns the
	/// participants for which it still does not hold: the broadcast-and-collect step of every
	/// exchange phase.
	pub(super) async fn gather(
		&mut self,
		parts: &[Participant],
		sealed: Option<Vec<u8>>,
		deadline: Instant,
		have: impl Fn(&Self, usize) -> bool,
	) -> Result<Vec<PublicKey>> {
		if let Some(bytes) = sealed {
			self.send_to_others(parts, bytes);
		}
		let n = parts.len();
		self.wait_until(deadline, |s| (0..n).all(|i| have(s, i))).await?;
		Ok(parts
			.iter()
			.enumerate()
			.filter(|(i, _)| !have(self, *i))
			.map(|(_, p)| p.who)
			.collect())
	}

	/// Screen the attempt's updates (every peer decides on the same reports), count the
	/// rejections, and refuse an attempt that has none left.
	pub(super) fn screen_updates(&self, stats: &[Stat]) -> Result<aggregate::Screening> {
		let screening = aggregate::screen(stats, &self.cfg.robust);
		for _ in &screening.rejected {
			Metrics::inc(&self.metrics().updates_rejected);
		}
		if screening.accepted.is_empty() {
			bail!("every update was rejected");
		}
		Ok(screening)
	}
}

/// How one exchange attempt ended.
pub(super) enum AttemptOutcome {
	/// The aggregate, with the accepted and rejected updates.
	Aggregated {
		agg: Vec<f32>,
		accepted: Vec<Accepted>,
		rejected: Vec<(PublicKey, aggregate::Rejection)>,
	},
	/// Retry without these peers: they went missing before the deadline, or were proven to
	/// have sent different reduced chunks to different peers.
	Retry(Vec<PublicKey>),
}

impl AttemptOutcome {
	fn aggregated(agg: Vec<f32>, screening: aggregate::Screening) -> Self {
		Self::Aggregated { agg, accepted: screening.accepted, rejected: screening.rejected }
	}
}

/// The fixed facts of one exchange attempt.
pub(super) struct Attempt {
	attempt: u32,
	proposal: Hash32,
	deadline: Instant,
	/// Participants.
	n: usize,
	/// Values in the model.
	len: usize,
	/// Compression blocks in the model.
	nb: usize,
	me: PublicKey,
	/// This peer's index among the participants (it owns chunk `my_idx`).
	my_idx: usize,
	comp: Compression,
	/// Leaf hashes of this peer's compressed update.
	leaves: Vec<Hash32>,
}
