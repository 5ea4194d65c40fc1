//! Ledger arithmetic: every movement of escrow and bonds goes through these methods, which
//! keep `EscrowLedger` and `BondLedger` balanced by construction and refuse (return `None`)
//! instead of wrapping.

use crate::types::{BondLedger, EscrowLedger};
use sp_runtime::traits::AtLeast32BitUnsigned;

impl<B: AtLeast32BitUnsigned + Copy> EscrowLedger<B> {
	/// A new ledger with `amount` deposited and held.
	pub fn deposit(amount: B) -> Self {
		Self {
			deposited: amount,
			held: amount,
			paid_contributors: B::zero(),
			paid_submitters: B::zero(),
			refunded: B::zero(),
			paid_verifiers: B::zero(),
			reserved: B::zero(),
		}
	}

	/// `amount` left the hold for verifiers.
	pub fn pay_verifiers(&mut self, amount: B) -> Option<()> {
		self.held = self.held.checked_sub(&amount)?;
		self.paid_verifiers = self.paid_verifiers.checked_add(&amount)?;
		Some(())
	}

	/// Reserve `amount` of the held escrow for a round whose payouts wait for verification.
	pub fn reserve(&mut self, amount: B) -> Option<()> {
		let reserved = self.reserved.checked_add(&amount)?;
		if reserved > self.held {
			return None;
		}
		self.reserved = reserved;
		Some(())
	}

	/// The reservation of a settled round ends (what it paid already left `held`).
	pub fn unreserve(&mut self, amount: B) -> Option<()> {
		self.reserved = self.reserved.checked_sub(&amount)?;
		Some(())
	}

	/// Held escrow not reserved for a round in verification.
	pub fn free(&self) -> B {
		self.held.saturating_sub(self.reserved)
	}

	/// `amount` left the hold for included contributors.
	pub fn pay_contributors(&mut self, amount: B) -> Option<()> {
		self.held = self.held.checked_sub(&amount)?;
		self.paid_contributors = self.paid_contributors.checked_add(&amount)?;
		Some(())
	}

	/// `amount` left the hold for the submitter.
	pub fn pay_submitter(&mut self, amount: B) -> Option<()> {
		self.held = self.held.checked_sub(&amount)?;
		self.paid_submitters = self.paid_submitters.checked_add(&amount)?;
		Some(())
	}

	/// `amount` went back to the sponsor.
	pub fn refund(&mut self, amount: B) -> Option<()> {
		self.held = self.held.checked_sub(&amount)?;
		self.refunded = self.refunded.checked_add(&amount)?;
		Some(())
	}

	/// `deposited == held + paid_contributors + paid_submitters + paid_verifiers + refunded`
	/// and `reserved <= held`.
	pub fn is_balanced(&self) -> bool {
		self.held
			.checked_add(&self.paid_contributors)
			.and_then(|x| x.checked_add(&self.paid_submitters))
			.and_then(|x| x.checked_add(&self.paid_verifiers))
			.and_then(|x| x.checked_add(&self.refunded))
			== Some(self.deposited)
			&& self.reserved <= self.held
	}
}

impl<B: AtLeast32BitUnsigned + Copy> BondLedger<B> {
	/// A bond of `amount` was put on hold.
	pub fn bond(&mut self, amount: B) -> Option<()> {
		self.deposited = self.deposited.checked_add(&amount)?;
		self.held = self.held.checked_add(&amount)?;
		Some(())
	}

	/// A bond of `amount` was released to its owner.
	pub fn release(&mut self, amount: B) -> Option<()> {
		self.held = self.held.checked_sub(&amount)?;
		self.released = self.released.checked_add(&amount)?;
		Some(())
	}

	/// A bond of `bond` was slashed, of which `slashed` could be taken; the rest (never
	/// expected) is counted as released so the ledger still balances.
	pub fn slash(&mut self, bond: B, slashed: B) -> Option<()> {
		let slashed = slashed.min(bond);
		self.held = self.held.checked_sub(&bond)?;
		self.slashed = self.slashed.checked_add(&slashed)?;
		self.released = self.released.checked_add(&bond.checked_sub(&slashed)?)?;
		Some(())
	}

	/// `deposited == held + released + slashed`.
	pub fn is_balanced(&self) -> bool {
		self.held.checked_add(&self.released).and_then(|x| x.checked_add(&self.slashed))
			== Some(self.deposited)
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn escrow_moves_stay_balanced_and_refuse_overdrafts() {
		let mut e = EscrowLedger::deposit(100u128);
		e.pay_contributors(60).unwrap();
		e.pay_submitter(10).unwrap();
		e.refund(30).unwrap();
		assert!(e.is_balanced());
		assert_eq!(e.held, 0);
		assert!(e.refund(1).is_none());
	}

	#[test]
	fn bond_moves_stay_balanced() {
		let mut b = BondLedger::<u128>::default();
		b.bond(10).unwrap();
		b.bond(10).unwrap();
		b.release(10).unwrap();
		b.slash(10, 7).unwrap();
		assert!(b.is_balanced());
		assert_eq!((b.held, b.released, b.slashed), (0, 13, 7));
		assert!(b.release(1).is_none());
	}
}
