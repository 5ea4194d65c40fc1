//! Settling the rounds of verified jobs.
//!
//! 1. `submit_aggregate` accepts the model and reserves the round's reward; a committee of
//!    `verifiers_per_round` is picked ([`Pallet::open_settlement`]).
//! 2. The committee submits score sheets until the scoring window ends (or all have).
//!    Each contributor's score is the median over the sheets; a strict majority of the
//!    committee must have scored, or nothing is paid and the reward returns to the sponsor.
//! 3. For `challenge_period` blocks anyone may challenge with a bond: `2k + 1` other verifiers
//!    re-score. If their medians disagree with the first ones, every first-committee verifier
//!    that agreed with the overturned medians is slashed (half to the challenger) and the
//!    second verdict decides; otherwise the challenger's bond is burned (returned if the
//!    second committee did not reach a majority).
//! 4. The deciding verdict is paid: contributors in proportion to their positive median
//!    score, the submitter share if any contributor scored above zero, the verifier share
//!    equally to the deciding committee's members that agree with its medians; the rest of
//!    the reservation goes back to the sponsor. Nothing is paid before this step, so nothing
//!    is ever paid twice.

use crate::{pallet::*, rounds::PayoutsOf, scoring, types::*, weights::WeightInfo};
use alloc::vec::Vec;
use frame_support::{
	ensure,
	pallet_prelude::*,
	traits::{fungible::MutateHold, tokens::Precision},
	BoundedVec,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
	traits::{Saturating, Zero},
	SaturatedConversion,
};

/// What each rewarded verifier of a round was paid.
type VerifierPayouts<T> = Vec<(<T as frame_system::Config>::AccountId, BalanceOf<T>)>;
type VerdictOf<T> = Verdict<BalanceOf<T>, <T as Config>::MaxContributors>;
type PanelOf<T> = Panel<
	<T as frame_system::Config>::AccountId,
	<T as Config>::MaxContributors,
	<T as Config>::MaxCommittee,
>;

impl<T: Config> Pallet<T> {
	/// A verified job's aggregate was accepted: reserve the round's reward and pick the
	/// committee. Returns the reserved reward.
	pub(crate) fn open_settlement(
		job_id: JobId,
		round: RoundIndex,
		job: &mut JobOf<T>,
		spec: &VerificationSpecOf<T>,
		submitter: T::AccountId,
		included: Vec<Included<T::AccountId, BlockNumberFor<T>>>,
	) -> Result<BalanceOf<T>, DispatchError> {
		let reward = job.reward_per_round.min(job.escrow.free());
		job.escrow.reserve(reward).ok_or(Error::<T>::Overflow)?;
		job.open_settlements = job.open_settlements.checked_add(1).ok_or(Error::<T>::Overflow)?;
		let committee =
			Self::pick_committee(job_id, round, spec.verifiers_per_round, &[], b"scoring");
		let until = frame_system::Pallet::<T>::block_number().saturating_add(spec.scoring_window);
		let settlement = Settlement {
			reward,
			submitter,
			included: BoundedVec::try_from(included)
				.map_err(|_| Error::<T>::TooManyContributors)?,
			first: Panel { committee: committee.clone(), sheets: BoundedVec::new() },
			second: None,
			verdict: None,
			phase: SettlementPhase::Scoring { until },
			seed: Self::settlement_seed(job_id, round),
		};
		Settlements::<T>::insert(job_id, round, settlement);
		SettlementQueue::<T>::insert(until, (job_id, round), ());
		Self::deposit_event(Event::CommitteePicked {
			job_id,
			round,
			committee: committee.into_inner(),
			until,
		});
		Ok(reward)
	}

	pub(crate) fn do_submit_scores(
		who: T::AccountId,
		job_id: JobId,
		round: RoundIndex,
		sheet: ScoreSheetOf<T>,
	) -> DispatchResult {
		ensure!(sheet.verifier == who, Error::<T>::NotOnCommittee);
		ensure!(sheet.accuracy_ppm <= 1_000_000, Error::<T>::InvalidMetric);
		let mut s = Settlements::<T>::get(job_id, round).ok_or(Error::<T>::NotSettling)?;
		let now = frame_system::Pallet::<T>::block_number();
		let n = s.included.len();
		let panel = match &mut s.phase {
			SettlementPhase::Scoring { until } if now < *until => &mut s.first,
			SettlementPhase::Rescoring { until, .. } if now < *until => {
				s.second.as_mut().ok_or(Error::<T>::NotSettling)?
			},
			_ => return Err(Error::<T>::ScoringClosed.into()),
		};
		ensure!(panel.committee.contains(&who), Error::<T>::NotOnCommittee);
		ensure!(!panel.sheets.iter().any(|x| x.verifier == who), Error::<T>::AlreadyScored);
		ensure!(sheet.scores.len() == n, Error::<T>::WrongScoreCount);
		panel.sheets.try_push(sheet).map_err(|_| Error::<T>::NotOnCommittee)?;
		let complete = panel.sheets.len() == panel.committee.len();
		Self::deposit_event(Event::ScoresSubmitted { job_id, round, verifier: who });
		if complete {
			return Self::advance_settlement(job_id, round, s, now);
		}
		Settlements::<T>::insert(job_id, round, s);
		Ok(())
	}

	pub(crate) fn do_challenge_round(
		who: T::AccountId,
		job_id: JobId,
		round: RoundIndex,
	) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let spec = job.spec.verification.clone().ok_or(Error::<T>::NotVerified)?;
		let mut s = Settlements::<T>::get(job_id, round).ok_or(Error::<T>::NotSettling)?;
		let now = frame_system::Pallet::<T>::block_number();
		let window_end = match s.phase {
			SettlementPhase::Challengeable { until } if now < until => until,
			SettlementPhase::Challengeable { .. } => {
				return Err(Error::<T>::ChallengeWindowClosed.into())
			},
			SettlementPhase::Rescoring { .. } => return Err(Error::<T>::AlreadyChallenged.into()),
			SettlementPhase::Scoring { .. } => return Err(Error::<T>::NotChallengeable.into()),
		};
		let size = spec.verifiers_per_round.saturating_mul(2).saturating_add(1);
		let committee = Self::pick_committee(job_id, round, size, &s.first.committee, b"challenge");
		ensure!(committee.len() as u32 > spec.verifiers_per_round, Error::<T>::NotEnoughVerifiers);
		let bond = spec.challenge_bond;
		T::Currency::hold(&HoldReason::ChallengeBond.into(), &who, bond)
			.map_err(|_| Error::<T>::InsufficientBalance)?;
		job.challenge_bonds.bond(bond).ok_or(Error::<T>::Overflow)?;
		let until = now.saturating_add(spec.scoring_window);
		s.second = Some(Panel { committee: committee.clone(), sheets: BoundedVec::new() });
		s.phase = SettlementPhase::Rescoring { until, challenger: who.clone(), bond };
		Settlements::<T>::insert(job_id, round, s);
		// The challenge window no longer ends the settlement: the re-scoring window does.
		SettlementQueue::<T>::remove(window_end, (job_id, round));
		SettlementQueue::<T>::insert(until, (job_id, round), ());
		Jobs::<T>::insert(job_id, job);
		Self::deposit_event(Event::RoundChallenged {
			job_id,
			round,
			challenger: who,
			committee: committee.into_inner(),
			until,
		});
		Ok(())
	}

	/// The current phase of `s` is over (its window closed or every verifier scored): move
	/// on to the next one, settling the round at the end.
	fn advance_settlement(
		job_id: JobId,
		round: RoundIndex,
		mut s: SettlementOf<T>,
		now: BlockNumberFor<T>,
	) -> DispatchResult {
		let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
		let spec = job.spec.verification.clone().ok_or(Error::<T>::NotVerified)?;
		match s.phase.clone() {
			SettlementPhase::Scoring { until } => {
				SettlementQueue::<T>::remove(until, (job_id, round));
				let verdict = Self::verdict(&s.first, s.included.len(), s.reward, &spec);
				Self::record_verdict(job_id, round, &verdict);
				s.verdict = Some(verdict);
				let until = now.saturating_add(spec.challenge_period);
				s.phase = SettlementPhase::Challengeable { until };
				SettlementQueue::<T>::insert(until, (job_id, round), ());
				Settlements::<T>::insert(job_id, round, s);
			},
			SettlementPhase::Challengeable { until } => {
				SettlementQueue::<T>::remove(until, (job_id, round));
				let verdict = s.verdict.clone().unwrap_or_else(Self::empty_verdict);
				Self::pay_settlement(job_id, round, &mut job, &s, &s.first, &verdict)?;
			},
			SettlementPhase::Rescoring { until, challenger, bond } => {
				SettlementQueue::<T>::remove(until, (job_id, round));
				Self::decide_challenge(job_id, round, &mut job, &spec, &s, (challenger, bond))?;
			},
		}
		Jobs::<T>::insert(job_id, job);
		Ok(())
	}

	/// The challenge committee has scored: overturn (slash the first committee's agreeing
	/// verifiers, pay by the new verdict), reject (burn the challenger's bond), or, if too few
	/// of the new committee scored, void it (bond returned, the first verdict stands).
	fn decide_challenge(
		job_id: JobId,
		round: RoundIndex,
		job: &mut JobOf<T>,
		spec: &VerificationSpecOf<T>,
		s: &SettlementOf<T>,
		(challenger, bond): (T::AccountId, BalanceOf<T>),
	) -> DispatchResult {
		let old = s.verdict.clone().unwrap_or_else(Self::empty_verdict);
		let second = s
			.second
			.clone()
			.unwrap_or_else(|| Panel { committee: BoundedVec::new(), sheets: BoundedVec::new() });
		let new = Self::verdict(&second, s.included.len(), s.reward, spec);
		if new.medians.is_empty() {
			// The challenge committee did not score: nothing was decided against anybody.
			Self::release_challenge_bond(job, &challenger, bond)?;
			Self::deposit_event(Event::ChallengeVoid { job_id, round, challenger });
			return Self::pay_settlement(job_id, round, job, s, &s.first, &old);
		}
		let tolerance = T::ScoreTolerance::get();
		if scoring::agrees(&old.medians, &new.medians, tolerance) {
			let (_, burned) =
				Self::slash_bond(HoldReason::ChallengeBond, &challenger, &challenger, bond)?;
			job.challenge_bonds.slash(bond, burned).ok_or(Error::<T>::Overflow)?;
			Self::deposit_event(Event::ChallengeRejected { job_id, round, challenger, burned });
			return Self::pay_settlement(job_id, round, job, s, &s.first, &old);
		}
		Self::release_challenge_bond(job, &challenger, bond)?;
		for sheet in s.first.sheets.iter() {
			if scoring::agrees(&sheet.scores, &old.medians, tolerance) {
				Self::slash_verifier(job_id, round, job, &sheet.verifier, &challenger)?;
			}
		}
		Self::record_verdict(job_id, round, &new);
		Self::deposit_event(Event::ChallengeUpheld { job_id, round, challenger });
		Self::pay_settlement(job_id, round, job, s, &second, &new)
	}

	fn release_challenge_bond(
		job: &mut JobOf<T>,
		challenger: &T::AccountId,
		bond: BalanceOf<T>,
	) -> DispatchResult {
		let released = T::Currency::release(
			&HoldReason::ChallengeBond.into(),
			challenger,
			bond,
			Precision::BestEffort,
		)
		.map_err(|_| Error::<T>::TransferFailed)?;
		job.challenge_bonds.release(released).ok_or(Error::<T>::Overflow)?;
		Ok(())
	}

	/// A verifier that agreed with overturned scores loses its whole bond (`ReporterShare` of
	/// it to the challenger) and stops verifying the job.
	fn slash_verifier(
		job_id: JobId,
		round: RoundIndex,
		job: &mut JobOf<T>,
		verifier: &T::AccountId,
		challenger: &T::AccountId,
	) -> DispatchResult {
		let Some(mut record) = Verifiers::<T>::get(job_id, verifier) else {
			return Ok(());
		};
		let (rewarded, burned) =
			Self::slash_bond(HoldReason::VerifierBond, verifier, challenger, record.bond)?;
		job.verifier_bonds
			.slash(record.bond, rewarded.saturating_add(burned))
			.ok_or(Error::<T>::Overflow)?;
		if record.unbonding_until.is_none() {
			job.verifiers = job.verifiers.saturating_sub(1);
			VerifierSets::<T>::mutate(job_id, |set| set.retain(|v| v != verifier));
		}
		record.bond = Zero::zero();
		record.unbonding_until = Some(frame_system::Pallet::<T>::block_number());
		Verifiers::<T>::insert(job_id, verifier, record);
		Self::deposit_event(Event::VerifierSlashed {
			job_id,
			round,
			verifier: verifier.clone(),
			challenger_reward: rewarded,
			burned,
		});
		Ok(())
	}

	/// The payouts a panel's sheets decide (empty medians and no payouts without a strict
	/// majority of the committee).
	fn verdict(
		panel: &PanelOf<T>,
		n: usize,
		reward: BalanceOf<T>,
		spec: &VerificationSpecOf<T>,
	) -> VerdictOf<T> {
		let scored = panel.sheets.len();
		if scored == 0 || scored.saturating_mul(2) <= panel.committee.len() {
			return Self::empty_verdict();
		}
		let medians = scoring::median_scores(panel.sheets.iter().map(|s| s.scores.as_slice()), n);
		let pool = reward
			.saturating_sub(T::SubmitterShare::get().mul_floor(reward))
			.saturating_sub(spec.verifier_share.mul_floor(reward));
		let payouts =
			scoring::pro_rata(pool.saturated_into(), &scoring::positive_weights(&medians))
				.into_iter()
				.map(|p| p.saturated_into::<BalanceOf<T>>())
				.collect::<Vec<_>>();
		let mut losses: Vec<u32> = panel.sheets.iter().map(|s| s.loss_micro).collect();
		let mut accuracies: Vec<u32> = panel.sheets.iter().map(|s| s.accuracy_ppm).collect();
		Verdict {
			medians: BoundedVec::truncate_from(medians),
			payouts: BoundedVec::truncate_from(payouts),
			loss_micro: scoring::lower_median(&mut losses),
			accuracy_ppm: scoring::lower_median(&mut accuracies),
		}
	}

	fn empty_verdict() -> VerdictOf<T> {
		Verdict {
			medians: BoundedVec::new(),
			payouts: BoundedVec::new(),
			loss_micro: None,
			accuracy_ppm: None,
		}
	}

	/// Put the verdict's metric and scores into the round's stored result.
	fn record_verdict(job_id: JobId, round: RoundIndex, verdict: &VerdictOf<T>) {
		RoundResults::<T>::mutate(job_id, round, |r| {
			if let Some(r) = r {
				r.metric = verdict.accuracy_ppm;
				r.loss_micro = verdict.loss_micro;
				r.scores = verdict.medians.clone();
			}
		});
	}

	/// Pay the deciding verdict out of the reservation, refund the rest, close the settlement.
	fn pay_settlement(
		job_id: JobId,
		round: RoundIndex,
		job: &mut JobOf<T>,
		s: &SettlementOf<T>,
		panel: &PanelOf<T>,
		verdict: &VerdictOf<T>,
	) -> DispatchResult {
		job.escrow.unreserve(s.reward).ok_or(Error::<T>::Overflow)?;
		let mut left = s.reward;
		let mut payouts = PayoutsOf::<T>::new();
		for (i, inc) in s.included.iter().enumerate() {
			let due = verdict.payouts.get(i).copied().unwrap_or_else(Zero::zero);
			let amount = Self::pay_from_escrow(job, &inc.who, due.min(left));
			job.escrow.pay_contributors(amount).ok_or(Error::<T>::Overflow)?;
			left = left.saturating_sub(amount);
			Self::credit_contributor(job_id, &inc.who, amount, !amount.is_zero());
			let _ = payouts.try_push(Payout { who: inc.who.clone(), samples: inc.samples, amount });
		}
		let useful = verdict.payouts.iter().any(|p| !p.is_zero());
		let submitter_due = if useful {
			T::SubmitterShare::get().mul_floor(s.reward).min(left)
		} else {
			Zero::zero()
		};
		let submitter_reward = Self::pay_from_escrow(job, &s.submitter, submitter_due);
		job.escrow.pay_submitter(submitter_reward).ok_or(Error::<T>::Overflow)?;
		left = left.saturating_sub(submitter_reward);
		Self::credit_contributor(job_id, &s.submitter, submitter_reward, false);
		let (verifiers_paid, verifier_payouts) =
			Self::pay_verifiers(job_id, job, s.reward, panel, verdict, &mut left)?;
		let refunded = Self::release_escrow(job, left)?;
		job.open_settlements = job.open_settlements.saturating_sub(1);
		RoundResults::<T>::mutate(job_id, round, |r| {
			if let Some(r) = r {
				r.payouts = payouts;
				r.submitter_reward = submitter_reward;
				r.verifier_payouts = BoundedVec::truncate_from(verifier_payouts);
			}
		});
		Settlements::<T>::remove(job_id, round);
		Self::deposit_event(Event::RoundSettled { job_id, round, verifiers_paid, refunded });
		Ok(())
	}

	fn credit_contributor(job_id: JobId, who: &T::AccountId, amount: BalanceOf<T>, included: bool) {
		Contributors::<T>::mutate(job_id, who, |m| {
			if let Some(m) = m {
				m.earned = m.earned.saturating_add(amount);
				if included {
					m.rounds_included = m.rounds_included.saturating_add(1);
				}
			}
		});
	}

	/// The verifier share, equally to the panel members whose sheet agrees with the medians.
	fn pay_verifiers(
		job_id: JobId,
		job: &mut JobOf<T>,
		reward: BalanceOf<T>,
		panel: &PanelOf<T>,
		verdict: &VerdictOf<T>,
		left: &mut BalanceOf<T>,
	) -> Result<(BalanceOf<T>, VerifierPayouts<T>), DispatchError> {
		let mut payouts = Vec::new();
		let Some(spec) = job.spec.verification.clone() else {
			return Ok((Zero::zero(), payouts));
		};
		if verdict.medians.is_empty() {
			return Ok((Zero::zero(), payouts));
		}
		let agreeing: Vec<&T::AccountId> = panel
			.sheets
			.iter()
			.filter(|s| scoring::agrees(&s.scores, &verdict.medians, T::ScoreTolerance::get()))
			.map(|s| &s.verifier)
			.collect();
		let pool: u128 = spec.verifier_share.mul_floor(reward).saturated_into();
		let each: BalanceOf<T> =
			pool.checked_div(agreeing.len() as u128).unwrap_or(0).saturated_into();
		let mut paid = BalanceOf::<T>::zero();
		for v in agreeing {
			let amount = Self::pay_from_escrow(job, v, each.min(*left));
			job.escrow.pay_verifiers(amount).ok_or(Error::<T>::Overflow)?;
			*left = left.saturating_sub(amount);
			paid = paid.saturating_add(amount);
			Verifiers::<T>::mutate(job_id, v, |r| {
				if let Some(r) = r {
					r.earned = r.earned.saturating_add(amount);
				}
			});
			payouts.push((v.clone(), amount));
		}
		Ok((paid, payouts))
	}

	/// Advance settlements whose window ended: at most `MaxSettlementsPerBlock` per block,
	/// oldest first, the rest carried over with a cursor (as the deadline queue does).
	pub(crate) fn process_settlements(now: BlockNumberFor<T>) -> Weight {
		let from = SettlementCursor::<T>::get().unwrap_or(now);
		let due = |at, n| SettlementQueue::<T>::iter_key_prefix(at).take(n).collect();
		let walk = crate::deadlines::walk_due(
			from,
			now,
			T::MaxSettlementsPerBlock::get(),
			due,
			|at, (job_id, round): (JobId, RoundIndex)| {
				SettlementQueue::<T>::remove(at, (job_id, round));
				// Only the entry of the settlement's current window advances it.
				let current = Settlements::<T>::get(job_id, round).filter(|s| s.phase_end() == at);
				if let Some(s) = current {
					if let Err(e) = Self::advance_settlement(job_id, round, s, now) {
						log::error!(target: LOG_TARGET, "settlement of {job_id}/{round}: {e:?}");
					}
				}
			},
		);
		SettlementCursor::<T>::put(walk.cursor);
		T::WeightInfo::on_initialize_settlements(walk.handled).saturating_add(
			T::DbWeight::get().reads_writes(u64::from(walk.scanned).saturating_add(1), 1),
		)
	}
}
