//! Re-sending protocol messages whose request failed (the connection closed, a dial failed,
//! an I/O error), with backoff, until the deadline the sender gave: a peer whose connection
//! drops for a moment mid-round still gets its chunk before the round gives up on it.

use libp2p::{request_response::OutboundFailure, PeerId};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First wait before a re-send; it doubles per try up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between re-sends.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// A message that may be sent again.
#[derive(Clone, Debug)]
pub struct Resend {
	/// Recipient.
	pub peer: PeerId,
	/// The message (shared with every other recipient and try).
	pub data: Arc<Vec<u8>>,
	/// No try starts after this.
	pub until: Instant,
	/// Tries so far.
	pub tries: u32,
}

/// Whether a failed request is worth sending again: the path failed, not the peer's answer.
pub fn retryable(e: &OutboundFailure) -> bool {
	matches!(
		e,
		OutboundFailure::DialFailure | OutboundFailure::ConnectionClosed | OutboundFailure::Io(_)
	)
}

/// The wait before try `tries + 1`.
pub fn backoff(tries: u32) -> Duration {
	FIRST_BACKOFF.saturating_mul(1u32 << tries.min(8)).min(MAX_BACKOFF)
}

/// Messages waiting to be sent again, with when.
#[derive(Default)]
pub struct Outbox {
	waiting: Vec<(Instant, Resend)>,
}

impl Outbox {
	/// Schedule the next try of `r` after its backoff; `false` (dropped) if that would be
	/// past its deadline.
	pub fn schedule(&mut self, mut r: Resend, now: Instant) -> bool {
		let due = now + backoff(r.tries);
		if due > r.until {
			return false;
		}
		r.tries += 1;
		self.waiting.push((due, r));
		true
	}

	/// The messages due at `now`, removed from the outbox.
	pub fn take_due(&mut self, now: Instant) -> Vec<Resend> {
		let (due, later): (Vec<_>, Vec<_>) =
			std::mem::take(&mut self.waiting).into_iter().partition(|(at, _)| *at <= now);
		self.waiting = later;
		due.into_iter().map(|(_, r)| r).collect()
	}

	/// Messages waiting.
	pub fn len(&self) -> usize {
		self.waiting.len()
	}

	/// Whether nothing waits.
	pub fn is_empty(&self) -> bool {
		self.waiting.is_empty()
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	fn msg(until: Instant) -> Resend {
		Resend { peer: PeerId::random(), data: Arc::new(vec![1]), until, tries: 0 }
	}

	#[test]
	fn backs_off_and_gives_up_at_the_deadline() {
		assert_eq!(backoff(0), FIRST_BACKOFF);
		assert_eq!(backoff(1), FIRST_BACKOFF * 2);
		assert_eq!(backoff(30), MAX_BACKOFF);
		let now = Instant::now();
		let mut out = Outbox::default();
		assert!(out.schedule(msg(now + Duration::from_secs(1)), now));
		assert!(!out.schedule(msg(now + Duration::from_millis(100)), now), "past its deadline");
		assert!(out.take_due(now).is_empty(), "not due yet");
		let due = out.take_due(now + FIRST_BACKOFF);
		assert_eq!((due.len(), due[0].tries, out.len()), (1, 1, 0));
		// The next try waits twice as long; a deadline before it drops the message.
		assert!(!out.schedule(due[0].clone(), now + Duration::from_millis(700)));
		assert!(out.is_empty());
	}

	#[test]
	fn retries_only_when_the_path_failed() {
		assert!(retryable(&OutboundFailure::ConnectionClosed));
		assert!(retryable(&OutboundFailure::DialFailure));
		assert!(!retryable(&OutboundFailure::Timeout));
		assert!(!retryable(&OutboundFailure::UnsupportedProtocols));
	}
}
