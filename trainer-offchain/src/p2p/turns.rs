//! Large messages to several peers, sent one at a time ("in turn"): the next leaves when the
//! previous one is acknowledged or has failed.
//!
//! In a phase where every participant sends a large message to every other one, sending
//! them all at once makes each uplink and each downlink carry N−1 flows that TCP shares
//! unevenly: some finish early and leave their links idle while the last ones crawl, and the
//! phase lasts as long as its slowest flow. When peer `i` sends to `i+1, i+2, …` (positions
//! among the participants, mod N) one at a time, step `k` is a permutation: every uplink
//! carries one flow and every downlink receives one, each at its link's rate (the schedule
//! of the pairwise-exchange all-to-all). Peers are not synchronised: a peer's next step
//! starts when its own previous message is through.
//!
//! A recipient must not be able to hold the others' messages back by reading slowly or
//! acknowledging late (an honest sender whose chunks then arrive after the phase deadline
//! would be screened out). So every message also has a time by which it starts whatever
//! happened to the one before: message `k` of `count` starts at the latest after
//! `k / (4·count)` of the time to the sequence's deadline, so that all of them are on their
//! way within the first quarter of the phase.

use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Messages at least this large are sent in turn; smaller ones all at once (for them the
/// round trip between steps would cost more than sharing the links).
pub const IN_TURN_MIN_BYTES: usize = 1 << 20;

/// One message of a sequence.
#[derive(Clone, Debug)]
pub struct TurnSend {
	/// Recipient.
	pub peer: PeerId,
	/// The message (shared with the other recipients).
	pub data: Arc<Vec<u8>>,
	/// Re-sent after a failed request until then (see [`super::outbox`]).
	pub until: Instant,
	/// Sent at this time at the latest, even if the message before is not through.
	pub start_by: Instant,
}

/// Start-by times of a sequence of `count` messages begun at `now` with deadline `until`:
/// message `k` starts by `now + (until − now)·k / (4·count)`.
pub fn start_times(now: Instant, until: Instant, count: usize) -> impl Iterator<Item = Instant> {
	let span = until.saturating_duration_since(now);
	let parts = (4 * count.max(1)) as u32;
	(0..count as u32).map(move |k| now + span / parts * k)
}

/// The sequences being sent, each with the messages still to go.
#[derive(Default)]
pub struct Turns {
	next_id: u64,
	waiting: HashMap<u64, VecDeque<TurnSend>>,
}

impl Turns {
	/// Start a sequence: its id and the first message to send now (`None` if empty).
	pub fn start(&mut self, sends: Vec<TurnSend>) -> Option<(u64, TurnSend)> {
		let mut queue: VecDeque<TurnSend> = sends.into();
		let first = queue.pop_front()?;
		let id = self.next_id;
		self.next_id += 1;
		if !queue.is_empty() {
			self.waiting.insert(id, queue);
		}
		Some((id, first))
	}

	/// The message of sequence `id` to send now that its previous one is through (answered
	/// or failed); `None` when the sequence is finished.
	pub fn next(&mut self, id: u64) -> Option<TurnSend> {
		let queue = self.waiting.get_mut(&id)?;
		let next = queue.pop_front();
		if queue.is_empty() {
			self.waiting.remove(&id);
		}
		next
	}

	/// The messages whose start-by time has come, removed from their sequences (each with
	/// its sequence's id).
	pub fn due(&mut self, now: Instant) -> Vec<(u64, TurnSend)> {
		let mut out = Vec::new();
		for (id, queue) in &mut self.waiting {
			while queue.front().is_some_and(|s| s.start_by <= now) {
				if let Some(s) = queue.pop_front() {
					out.push((*id, s));
				}
			}
		}
		self.waiting.retain(|_, q| !q.is_empty());
		out
	}

	/// Sequences with messages still waiting.
	pub fn len(&self) -> usize {
		self.waiting.len()
	}

	/// Whether no message waits.
	pub fn is_empty(&self) -> bool {
		self.waiting.is_empty()
	}
}

/// The order in which participant `me` (a position among `n`) sends to the others: `me+1,
/// me+2, …, me+n−1` (mod `n`), so that at each step every participant sends to a different
/// one.
pub fn shift_order(me: usize, n: usize) -> impl Iterator<Item = usize> {
	(1..n).map(move |k| (me + k) % n)
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;
	use std::collections::BTreeSet;
	use std::time::Duration;

	fn send(peer: PeerId) -> TurnSend {
		let now = Instant::now();
		TurnSend { peer, data: Arc::new(vec![0]), until: now, start_by: now + HOUR }
	}

	const HOUR: Duration = Duration::from_secs(3600);

	#[test]
	fn a_sequence_goes_out_one_message_at_a_time_in_order() {
		let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
		let mut turns = Turns::default();
		let (id, first) = turns.start(peers.iter().map(|p| send(*p)).collect()).unwrap();
		assert_eq!(first.peer, peers[0]);
		assert_eq!(turns.len(), 1, "two messages wait");
		assert_eq!(turns.next(id).unwrap().peer, peers[1]);
		assert_eq!(turns.next(id).unwrap().peer, peers[2]);
		assert!(turns.is_empty());
		assert!(turns.next(id).is_none(), "a finished sequence has nothing more");
		let (other, _) = turns.start(vec![send(peers[0])]).unwrap();
		assert_ne!(id, other, "every sequence has its own id");
		assert!(turns.is_empty(), "a one-message sequence never waits");
		assert!(turns.start(Vec::new()).is_none());
	}

	#[test]
	fn a_message_starts_by_its_time_even_if_the_one_before_is_not_through() {
		let now = Instant::now();
		let until = now + Duration::from_secs(12);
		let times: Vec<Instant> = start_times(now, until, 3).collect();
		assert_eq!(times, vec![now, now + Duration::from_secs(1), now + Duration::from_secs(2)]);
		let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
		let sends = peers
			.iter()
			.zip(&times)
			.map(|(p, t)| TurnSend { start_by: *t, ..send(*p) })
			.collect();
		let mut turns = Turns::default();
		let (id, first) = turns.start(sends).unwrap();
		assert_eq!(first.peer, peers[0]);
		assert!(turns.due(now).is_empty(), "nothing else is due at the start");
		// The first is still in flight after 1 s: the second goes anyway.
		let due = turns.due(now + Duration::from_secs(1));
		assert_eq!(due.iter().map(|(i, s)| (*i, s.peer)).collect::<Vec<_>>(), vec![(id, peers[1])]);
		// The second is through before its successor's time: the third goes at once.
		assert_eq!(turns.next(id).unwrap().peer, peers[2]);
		assert!(turns.is_empty());
		assert!(turns.due(now + HOUR).is_empty());
	}

	#[test]
	fn every_step_of_the_shift_order_is_a_permutation() {
		for n in 1..=16 {
			let orders: Vec<Vec<usize>> = (0..n).map(|me| shift_order(me, n).collect()).collect();
			for (me, order) in orders.iter().enumerate() {
				assert_eq!(order.len(), n - 1);
				assert!(!order.contains(&me), "nobody sends to itself");
			}
			for step in 0..n.saturating_sub(1) {
				let receivers: BTreeSet<usize> = orders.iter().map(|o| o[step]).collect();
				assert_eq!(receivers.len(), n, "step {step} of {n}: each receives one message");
			}
		}
	}
}
