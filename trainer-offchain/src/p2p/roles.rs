//! Who proposes an attempt's participant set, who holds a round's certificate, and in which
//! order a peer sends to the others.
//!
//! Both roles rotate: each key is ranked by `blake2_256("trainchain/role/v1", job, round,
//! role, key)` and the lowest rank takes the role. With the lowest *key* (the protocol before
//! #11), an account that ground a small public key proposed and held every round; now each
//! key takes a role in about one round in `n`. The ranks are public in advance (they depend on
//! the job and round only), so an account can still grind a key that ranks first in chosen
//! future rounds; a verifiable random function per round would close that.

use crate::signing::PublicKey;
use codec::Encode;
use trainchain_primitives::{Hash32, JobId, RoundIndex};

/// A rotating role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode)]
pub enum Role {
	/// Proposes the participant set of one exchange attempt.
	Proposer {
		/// The attempt within the round.
		attempt: u32,
	},
	/// Collects the round's certificate and is named the submitter (the others follow in
	/// rank order as fallbacks).
	Holder,
}

/// The rank of `who` for `role` in `round` of `job`: lower ranks take the role first.
pub fn rank(job: JobId, round: RoundIndex, role: Role, who: &PublicKey) -> Hash32 {
	sp_crypto_hashing::blake2_256(&(b"trainchain/role/v1", job, round, role, who).encode())
}

/// `keys` in the order they take `role` (lowest rank first).
pub fn in_rank_order<'a>(
	job: JobId,
	round: RoundIndex,
	role: Role,
	keys: impl IntoIterator<Item = &'a PublicKey>,
) -> Vec<PublicKey> {
	let mut ranked: Vec<(Hash32, PublicKey)> =
		keys.into_iter().map(|k| (rank(job, round, role, k), *k)).collect();
	ranked.sort_unstable();
	ranked.into_iter().map(|(_, k)| k).collect()
}

/// The order in which participant `me` (a position among `n`) sends to the others in an
/// exchange phase: `me+1, me+2, …, me+n−1` (mod `n`). Every peer starts with a different
/// recipient, where participant order would have all of them start with the first one.
pub fn shift_order(me: usize, n: usize) -> impl Iterator<Item = usize> {
	(1..n).map(move |k| (me + k) % n)
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn every_step_of_the_shift_order_is_a_permutation() {
		for n in 1..=16 {
			let orders: Vec<Vec<usize>> = (0..n).map(|me| shift_order(me, n).collect()).collect();
			for (me, order) in orders.iter().enumerate() {
				assert_eq!(order.len(), n - 1);
				assert!(!order.contains(&me), "nobody sends to itself");
			}
			for step in 0..n.saturating_sub(1) {
				let receivers: std::collections::BTreeSet<usize> =
					orders.iter().map(|o| o[step]).collect();
				assert_eq!(receivers.len(), n, "step {step} of {n}: each receives one message");
			}
		}
	}

	#[test]
	fn roles_rotate_over_rounds_and_attempts() {
		let keys: Vec<PublicKey> = (0u8..4).map(|i| [i; 32]).collect();
		let first = |round, role| in_rank_order(7, round, role, &keys)[0];
		let holders: std::collections::BTreeSet<PublicKey> =
			(0..40).map(|r| first(r, Role::Holder)).collect();
		assert!(holders.len() > 1, "the holder never changes");
		assert!(holders.len() == 4, "some key never holds in 40 rounds: {holders:?}");
		let proposers: std::collections::BTreeSet<PublicKey> =
			(0..20).map(|a| first(3, Role::Proposer { attempt: a })).collect();
		assert!(proposers.len() > 1);
		// Deterministic: every peer computes the same order.
		assert_eq!(
			in_rank_order(7, 5, Role::Holder, &keys),
			in_rank_order(7, 5, Role::Holder, &keys)
		);
	}
}
