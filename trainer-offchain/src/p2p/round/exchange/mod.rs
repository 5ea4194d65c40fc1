//! The exchange of updates under the agreed proposal: reduce-scatter of chunks to their
//! owners, screening on the owners' reports, all-gather of the reduced chunks.

mod all_to_all;
mod chunked;

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Fix the proposal followed in `attempt` and check the exchange messages that arrived
	/// before it. Returns the proposal's hash (sent in this peer's exchange messages).
	pub(super) fn begin_exchange(&mut self, attempt: u32, parts: &[Participant]) -> Hash32 {
		let hash = proposal_hash(self.round, attempt, parts);
		self.st.agreed.insert(attempt, (hash, parts.to_vec()));
		let early: Vec<_> = self.st.early.keys().filter(|k| k.0 == attempt).copied().collect();
		for k in early {
			if let Some(body) = self.st.early.remove(&k) {
				self.accept_exchange(k.1, body);
			}
		}
		hash
	}

	/// Exchange updates of one attempt. `Ok(Err(missing))` when the attempt timed out.
	pub(super) async fn exchange(
		&mut self,
		attempt: u32,
		parts: &[Participant],
		mine: &Compressed,
	) -> Result<ExchangeResult> {
		let me = self.me;
		let my_idx = parts.iter().position(|p| p.who == me).context("not a participant")?;
		let ctx = Attempt {
			attempt,
			proposal: self.begin_exchange(attempt, parts),
			deadline: Instant::now() + self.cfg.round_timeout,
			n: parts.len(),
			len: self.model.len(),
			nb: compress::block_count(self.model.len()),
			me,
			my_idx,
			comp: self.cfg.compression,
			leaves: mine.leaf_hashes(),
		};
		match self.cfg.scheme {
			Scheme::AllToAll => self.exchange_all_to_all(&ctx, parts, mine).await,
			Scheme::Chunked => self.exchange_chunked(&ctx, parts, mine).await,
		}
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

/// What an exchange attempt yields: the aggregate with the accepted and rejected updates,
/// or (`Err`) the peers that went missing before its deadline.
pub(super) type ExchangeResult = std::result::Result<
	(Vec<f32>, Vec<Accepted>, Vec<(PublicKey, aggregate::Rejection)>),
	Vec<PublicKey>,
>;

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
