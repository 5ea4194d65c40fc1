//! Verified contributions (issue #12): payouts by the verifiers' median scores, a challenge
//! window, and every bad input of the verification calls.
use super::*;

/// Verifier bond, challenge bond, verifier share and windows of the tests' verified jobs.
const VBOND: Balance = 50;
const CBOND: Balance = 200;
const SCORING: u64 = 5;
const CHALLENGE: u64 = 5;
/// Accuracy the honest verifiers measure.
const ACCURACY: u32 = 930_000;
/// Contributor pool of a round: the reward less the 2% submitter and 10% verifier shares.
const POOL: Balance = REWARD - REWARD / 50 - REWARD / 10;

fn verified_spec(k: u32) -> JobSpecOf<Test> {
	let mut s = spec();
	s.max_contributors = 5;
	s.verification = Some(VerificationSpec {
		verifiers_per_round: k,
		verifier_bond: VBOND,
		verifier_share: sp_runtime::Perbill::from_percent(10),
		scoring_window: SCORING,
		challenge_period: CHALLENGE,
		challenge_bond: CBOND,
		validation_set: H256::repeat_byte(7),
		restricted: false,
		public_data: None,
	});
	s
}

/// A verified job (k = `k`) with contributors `members` and verifiers `verifiers` joined.
fn verified_job(k: u32, members: &[u8], verifiers: &[u8]) -> JobId {
	let id = NextJobId::<Test>::get();
	assert_ok!(TrainingRewards::create_job(origin(SPONSOR), verified_spec(k), REWARD, 3));
	for n in members {
		assert_ok!(TrainingRewards::join_job(origin(*n), id));
	}
	for v in verifiers {
		assert_ok!(TrainingRewards::join_as_verifier(origin(*v), id));
	}
	id
}

/// Commit, aggregate and submit round `round` with `members` (samples as given).
fn finalise(id: JobId, round: RoundIndex, members: &[(u8, u64)]) {
	for (n, samples) in members {
		commit(id, round, *n, *samples);
	}
	let agg = aggregate(id, round, H256::repeat_byte(50 + round as u8), members);
	assert_ok!(submit_agg(members[0].0, id, round, agg));
}

fn sheet(v: u8, scores: &[i32], accuracy: u32) -> ScoreSheetOf<Test> {
	ScoreSheet {
		verifier: account(v),
		scores: BoundedVec::truncate_from(scores.to_vec()),
		loss_micro: 300_000,
		accuracy_ppm: accuracy,
	}
}

fn score(v: u8, id: JobId, round: RoundIndex, scores: &[i32], accuracy: u32) -> DispatchResult {
	TrainingRewards::submit_scores(origin(v), id, round, sheet(v, scores, accuracy))
}

type DispatchResult = frame_support::dispatch::DispatchResult;

/// The committee picked for `(id, round)` (the first one, or the challenge's).
fn committee(id: JobId, round: RoundIndex, second: bool) -> Vec<u8> {
	let s = Settlements::<Test>::get(id, round).unwrap();
	let panel = if second { s.second.unwrap() } else { s.first };
	panel
		.committee
		.iter()
		.map(|a| (0..=40u8).find(|n| account(*n) == *a).unwrap())
		.collect()
}

fn earned(id: JobId, n: u8) -> Balance {
	Contributors::<Test>::get(id, account(n)).map_or(0, |c| c.earned)
}

fn verifier_earned(id: JobId, v: u8) -> Balance {
	Verifiers::<Test>::get(id, account(v)).map_or(0, |x| x.earned)
}

/// Honest scores of contributors 1, 2, 3 (useful), 4 (free rider) and 5 (copier).
const HONEST: [i32; 5] = [50_000, 60_000, 45_000, 0, 0];

// ---------------------------------------------------------------- payouts

#[test]
fn verified_round_pays_useful_work_not_claimed_samples() {
	test(|| {
		let id = verified_job(3, &[1, 2, 3, 4, 5], &[10, 11, 12]);
		// 4 is a free rider claiming the most samples, 5 re-sent 1's update as its own.
		finalise(id, 0, &[(1, 100), (2, 300), (3, 200), (4, 1_000), (5, 100)]);
		assert_eq!(committee(id, 0, false).len(), 3);
		let before: Vec<Balance> = (1..=5).map(free).collect();
		assert_ok!(score(10, id, 0, &HONEST, ACCURACY));
		assert_ok!(score(11, id, 0, &HONEST, ACCURACY));
		// Verifier 12 lies in favour of the free rider and reports a better model.
		assert_ok!(score(12, id, 0, &[50_000, 60_000, 45_000, 60_000, 0], 990_000));
		// Nothing is paid before the challenge window ends.
		assert_eq!((1..=5).map(free).collect::<Vec<_>>(), before);
		run_to_block(System::block_number() + CHALLENGE);
		assert!(Settlements::<Test>::get(id, 0).is_none());
		assert_eq!(earned(id, 4), 0, "free rider paid");
		assert_eq!(earned(id, 5), 0, "copier paid");
		let honest: Balance = (1..=3).map(|n| earned(id, n)).sum::<Balance>() - REWARD / 50;
		assert_eq!(honest, POOL, "the honest contributors get every unit of the pool");
		assert_eq!(verifier_earned(id, 12), 0, "lying verifier paid");
		assert_eq!(verifier_earned(id, 10), REWARD / 20);
		assert_eq!(verifier_earned(id, 11), REWARD / 20);
		let result = RoundResults::<Test>::get(id, 0).unwrap();
		assert_eq!(result.metric, Some(ACCURACY), "metric is the honest verifiers' accuracy");
		assert_eq!(result.scores.to_vec(), HONEST.to_vec());
		let paid: Vec<(AccountId, Balance)> = result.verifier_payouts.to_vec();
		assert_eq!(paid, vec![(account(10), REWARD / 20), (account(11), REWARD / 20)]);
		assert_eq!(job(id).escrow.paid_verifiers, REWARD / 10);
		assert!(job(id).escrow.is_balanced());
	});
}

#[test]
fn colluders_without_training_are_paid_nothing() {
	test(|| {
		// Two colluding accounts commit random hashes, sign a random model and submit.
		let id = verified_job(3, &[1, 2], &[10, 11, 12]);
		finalise(id, 0, &[(1, 1_000), (2, 1_000)]);
		for v in [10, 11, 12] {
			assert_ok!(score(v, id, 0, &[-2_000, -5_000], 100_000));
		}
		let sponsor_before = free(SPONSOR);
		run_to_block(System::block_number() + CHALLENGE);
		assert_eq!(earned(id, 1) + earned(id, 2), 0);
		// Verifiers are paid for verifying (a third of the 10% each, rounded down); the rest
		// of the round's reward goes back to the sponsor.
		assert_eq!(job(id).escrow.paid_verifiers, 3 * (REWARD / 10 / 3));
		assert_eq!(free(SPONSOR) - sponsor_before, REWARD - job(id).escrow.paid_verifiers);
		assert_eq!(job(id).escrow.paid_contributors + job(id).escrow.paid_submitters, 0);
	});
}

#[test]
fn without_a_majority_of_the_committee_nothing_is_paid() {
	test(|| {
		let id = verified_job(3, &[1, 2], &[10, 11, 12]);
		finalise(id, 0, &[(1, 100), (2, 100)]);
		assert_ok!(score(10, id, 0, &[50_000, 50_000], ACCURACY));
		let sponsor_before = free(SPONSOR);
		run_to_block(System::block_number() + SCORING + CHALLENGE);
		assert!(Settlements::<Test>::get(id, 0).is_none());
		assert_eq!(earned(id, 1) + earned(id, 2) + verifier_earned(id, 10), 0);
		assert_eq!(free(SPONSOR) - sponsor_before, REWARD);
		assert_eq!(RoundResults::<Test>::get(id, 0).unwrap().metric, None);
	});
}

#[test]
fn a_withheld_update_scores_nothing_and_costs_no_bond() {
	test(|| {
		let id = verified_job(3, &[1, 2, 3], &[10, 11, 12]);
		finalise(id, 0, &[(1, 100), (2, 100), (3, 100)]);
		// 3 never served its update to the verifiers: they score it zero (not negative).
		for v in [10, 11, 12] {
			assert_ok!(score(v, id, 0, &[40_000, 40_000, 0], ACCURACY));
		}
		run_to_block(System::block_number() + CHALLENGE);
		assert_eq!(earned(id, 3), 0);
		assert_eq!(held(HoldReason::ContributorBond, 3), BOND);
		assert_eq!(earned(id, 1) + earned(id, 2) - REWARD / 50, POOL);
	});
}

#[test]
fn the_job_waits_for_its_verifiers_and_keeps_running_while_rounds_settle() {
	test(|| {
		let id = verified_job(3, &[1, 2], &[10, 11]);
		assert_eq!(job(id).status, JobStatus::WaitingForContributors);
		assert_ok!(TrainingRewards::join_as_verifier(origin(12), id));
		assert_eq!(job(id).status, JobStatus::Running);
		finalise(id, 0, &[(1, 100), (2, 100)]);
		// The next round is open while round 0 is scored.
		assert_eq!(job(id).round.index, 1);
		assert_eq!(job(id).latest_model, H256::repeat_byte(50));
		assert_eq!(job(id).escrow.reserved, REWARD);
	});
}

#[test]
fn a_job_that_ends_with_rounds_in_verification_settles_them_later() {
	test(|| {
		let id = verified_job(3, &[1, 2], &[10, 11, 12]);
		finalise(id, 0, &[(1, 100), (2, 100)]);
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		assert_eq!(job(id).status, JobStatus::Cancelled);
		assert_eq!(job(id).escrow.held, REWARD, "the verified round stays reserved");
		assert_noop!(TrainingRewards::reap_job(origin(7), id), Error::<Test>::SettlementsOpen);
		for v in [10, 11, 12] {
			assert_ok!(score(v, id, 0, &[30_000, 10_000], ACCURACY));
		}
		run_to_block(System::block_number() + CHALLENGE);
		assert_eq!(job(id).escrow.held, 0);
		assert_eq!(earned(id, 1) + earned(id, 2) - REWARD / 50, POOL);
	});
}

// ---------------------------------------------------------------- challenges

/// A job with 10 verifiers (10..=19) and a finalised round 0 of contributors 1, 2, 3 (3 a
/// free rider); returns the job and the first committee.
fn challenged_setup() -> (JobId, Vec<u8>) {
	let verifiers: Vec<u8> = (10..=19).collect();
	let id = verified_job(3, &[1, 2, 3], &verifiers);
	finalise(id, 0, &[(1, 100), (2, 100), (3, 1_000)]);
	(id, committee(id, 0, false))
}

const FAIR: [i32; 3] = [50_000, 50_000, 0];
const BRIBED: [i32; 3] = [50_000, 50_000, 90_000];

#[test]
fn a_bribed_committee_majority_is_overturned_and_slashed() {
	test(|| {
		let (id, first) = challenged_setup();
		// Two of three are bribed to pay the free rider; one is honest.
		assert_ok!(score(first[0], id, 0, &BRIBED, ACCURACY));
		assert_ok!(score(first[1], id, 0, &BRIBED, ACCURACY));
		assert_ok!(score(first[2], id, 0, &FAIR, ACCURACY));
		let challenger = 1;
		let before = free(challenger);
		assert_ok!(TrainingRewards::challenge_round(origin(challenger), id, 0));
		assert_eq!(held(HoldReason::ChallengeBond, challenger), CBOND);
		let second = committee(id, 0, true);
		assert_eq!(second.len(), 7);
		assert!(second.iter().all(|v| !first.contains(v)));
		for v in &second {
			assert_ok!(score(*v, id, 0, &FAIR, ACCURACY));
		}
		// Decided when the last sheet arrived: bribed verifiers lost their bonds.
		assert!(Settlements::<Test>::get(id, 0).is_none());
		for bribed in &first[..2] {
			assert_eq!(held(HoldReason::VerifierBond, *bribed), 0);
			assert_eq!(Verifiers::<Test>::get(id, account(*bribed)).unwrap().bond, 0);
		}
		assert_eq!(held(HoldReason::VerifierBond, first[2]), VBOND, "honest minority kept");
		assert_eq!(earned(id, 3), 0, "free rider paid after the challenge");
		assert_eq!(earned(id, 1) + earned(id, 2) - REWARD / 50, POOL);
		// Bond back, plus half of each slashed bond.
		assert_eq!(free(challenger) - before, earned(id, 1) + VBOND);
		assert_eq!(job(id).verifier_bonds.slashed, 2 * VBOND);
		assert_eq!(job(id).verifiers, 8);
	});
}

#[test]
fn a_challenge_that_changes_nothing_loses_its_bond() {
	test(|| {
		let (id, first) = challenged_setup();
		for v in &first {
			assert_ok!(score(*v, id, 0, &FAIR, ACCURACY));
		}
		assert_ok!(TrainingRewards::challenge_round(origin(4), id, 0));
		for v in committee(id, 0, true) {
			assert_ok!(score(v, id, 0, &FAIR, ACCURACY));
		}
		assert_eq!(held(HoldReason::ChallengeBond, 4), 0);
		assert_eq!(free(4), ENDOWMENT - CBOND);
		assert_eq!(job(id).challenge_bonds.slashed, CBOND);
		for v in &first {
			assert_eq!(held(HoldReason::VerifierBond, *v), VBOND);
		}
		assert_eq!(earned(id, 3), 0);
	});
}

#[test]
fn challenge_errors() {
	test(|| {
		let (id, first) = challenged_setup();
		assert_noop!(
			TrainingRewards::challenge_round(origin(4), id, 0),
			Error::<Test>::NotChallengeable
		);
		assert_noop!(
			TrainingRewards::challenge_round(origin(4), id, 1),
			Error::<Test>::NotSettling
		);
		for v in &first {
			assert_ok!(score(*v, id, 0, &FAIR, ACCURACY));
		}
		// Account 99 holds 5 units: no bond, no challenge.
		assert_noop!(
			TrainingRewards::challenge_round(origin(99), id, 0),
			Error::<Test>::InsufficientBalance
		);
		assert_ok!(TrainingRewards::challenge_round(origin(4), id, 0));
		assert_noop!(
			TrainingRewards::challenge_round(origin(5), id, 0),
			Error::<Test>::AlreadyChallenged
		);
	});
	test(|| {
		// Three rounds whose challenge windows end in the same block; `on_initialize` settles
		// two per block (`MaxSettlementsPerBlock`), so one waits: its window is closed.
		let ids: Vec<JobId> = (0..3).map(|_| verified_job(1, &[1, 2], &[10])).collect();
		for id in &ids {
			finalise(*id, 0, &[(1, 100), (2, 100)]);
			assert_ok!(score(10, *id, 0, &[1, 1], ACCURACY));
		}
		run_to_block(System::block_number() + CHALLENGE);
		let waiting: Vec<JobId> = ids
			.iter()
			.copied()
			.filter(|id| Settlements::<Test>::contains_key(id, 0))
			.collect();
		assert_eq!(waiting.len(), 1);
		assert_noop!(
			TrainingRewards::challenge_round(origin(4), waiting[0], 0),
			Error::<Test>::ChallengeWindowClosed
		);
		run_to_block(System::block_number() + 1);
		assert!(!Settlements::<Test>::contains_key(waiting[0], 0));
	});
	test(|| {
		// Only 3 verifiers: no fresh committee larger than the first.
		let id = verified_job(3, &[1, 2], &[10, 11, 12]);
		finalise(id, 0, &[(1, 100), (2, 100)]);
		for v in [10, 11, 12] {
			assert_ok!(score(v, id, 0, &[1, 1], ACCURACY));
		}
		assert_noop!(
			TrainingRewards::challenge_round(origin(4), id, 0),
			Error::<Test>::NotEnoughVerifiers
		);
	});
}

#[test]
fn an_unanswered_challenge_keeps_the_first_verdict_and_returns_the_bond() {
	test(|| {
		let (id, first) = challenged_setup();
		for v in &first {
			assert_ok!(score(*v, id, 0, &FAIR, ACCURACY));
		}
		assert_ok!(TrainingRewards::challenge_round(origin(4), id, 0));
		run_to_block(System::block_number() + SCORING);
		assert!(Settlements::<Test>::get(id, 0).is_none());
		assert_eq!(held(HoldReason::ChallengeBond, 4), 0);
		assert_eq!(free(4), ENDOWMENT, "an unanswered challenge costs its challenger nothing");
		assert_eq!(job(id).challenge_bonds.released, CBOND);
	});
}

#[test]
fn a_challenge_is_decided_by_its_rescoring_window_not_the_old_challenge_window() {
	test(|| {
		let (id, first) = challenged_setup();
		for v in &first {
			assert_ok!(score(*v, id, 0, &FAIR, ACCURACY));
		}
		let old_end = System::block_number() + CHALLENGE;
		run_to_block(old_end - 2);
		assert_ok!(TrainingRewards::challenge_round(origin(4), id, 0));
		// The first challenge window ends: the challenge committee still has its full window.
		run_to_block(old_end);
		let s = Settlements::<Test>::get(id, 0).unwrap();
		assert!(matches!(s.phase, SettlementPhase::Rescoring { .. }), "decided early: {s:?}");
		for v in committee(id, 0, true) {
			assert_ok!(score(v, id, 0, &FAIR, ACCURACY));
		}
		assert!(Settlements::<Test>::get(id, 0).is_none());
		assert_eq!(job(id).challenge_bonds.slashed, CBOND);
	});
}

// ---------------------------------------------------------------- bad input

#[test]
fn score_errors() {
	test(|| {
		let (id, first) = challenged_setup();
		let outsider = (10..=19).find(|v| !first.contains(v)).unwrap();
		assert_noop!(score(outsider, id, 0, &FAIR, ACCURACY), Error::<Test>::NotOnCommittee);
		assert_noop!(score(first[0], id, 1, &FAIR, ACCURACY), Error::<Test>::NotSettling);
		assert_noop!(score(first[0], id, 0, &[1, 2], ACCURACY), Error::<Test>::WrongScoreCount);
		assert_noop!(score(first[0], id, 0, &FAIR, 1_000_001), Error::<Test>::InvalidMetric);
		// A sheet in someone else's name.
		assert_noop!(
			TrainingRewards::submit_scores(origin(first[0]), id, 0, sheet(first[1], &FAIR, 1)),
			Error::<Test>::NotOnCommittee
		);
		assert_ok!(score(first[0], id, 0, &FAIR, ACCURACY));
		assert_noop!(score(first[0], id, 0, &FAIR, ACCURACY), Error::<Test>::AlreadyScored);
		run_to_block(System::block_number() + SCORING);
		assert_noop!(score(first[1], id, 0, &FAIR, ACCURACY), Error::<Test>::ScoringClosed);
	});
}

#[test]
fn verifier_membership_errors() {
	test(|| {
		let plain = create(1);
		assert_noop!(
			TrainingRewards::join_as_verifier(origin(10), plain),
			Error::<Test>::NotVerified
		);
		assert_noop!(
			TrainingRewards::approve_verifier(origin(SPONSOR), plain, account(10)),
			Error::<Test>::NotVerified
		);
		let id = verified_job(1, &[], &[10]);
		assert_noop!(
			TrainingRewards::join_as_verifier(origin(10), id),
			Error::<Test>::AlreadyVerifier
		);
		assert_noop!(
			TrainingRewards::join_as_verifier(origin(99), id),
			Error::<Test>::InsufficientBalance
		);
		assert_noop!(
			TrainingRewards::approve_verifier(origin(SPONSOR), id, account(11)),
			Error::<Test>::VerifiersNotRestricted
		);
		assert_noop!(TrainingRewards::leave_verifying(origin(11), id), Error::<Test>::NotVerifier);
		assert_noop!(
			TrainingRewards::withdraw_verifier_bond(origin(10), id),
			Error::<Test>::NotLeaving
		);
		assert_ok!(TrainingRewards::leave_verifying(origin(10), id));
		assert_noop!(
			TrainingRewards::leave_verifying(origin(10), id),
			Error::<Test>::AlreadyLeaving
		);
		assert_noop!(
			TrainingRewards::withdraw_verifier_bond(origin(10), id),
			Error::<Test>::StillUnbonding
		);
		let until = Verifiers::<Test>::get(id, account(10)).unwrap().unbonding_until.unwrap();
		run_to_block(until);
		assert_ok!(TrainingRewards::withdraw_verifier_bond(origin(10), id));
		assert_eq!(held(HoldReason::VerifierBond, 10), 0);
		assert_eq!(free(10), ENDOWMENT);
	});
}

#[test]
fn restricted_jobs_take_approved_verifiers_only() {
	test(|| {
		let mut s = verified_spec(1);
		if let Some(v) = s.verification.as_mut() {
			v.restricted = true;
		}
		let id = NextJobId::<Test>::get();
		assert_ok!(TrainingRewards::create_job(origin(SPONSOR), s, REWARD, 1));
		assert_noop!(TrainingRewards::join_as_verifier(origin(10), id), Error::<Test>::NotApproved);
		assert_noop!(
			TrainingRewards::approve_verifier(origin(10), id, account(10)),
			Error::<Test>::NotSponsor
		);
		assert_ok!(TrainingRewards::approve_verifier(origin(SPONSOR), id, account(10)));
		assert_ok!(TrainingRewards::join_as_verifier(origin(10), id));
	});
}

#[test]
fn too_many_verifiers_are_refused() {
	test(|| {
		let mut s = verified_spec(1);
		if let Some(v) = s.verification.as_mut() {
			v.verifier_bond = 0;
		}
		let id = NextJobId::<Test>::get();
		assert_ok!(TrainingRewards::create_job(origin(SPONSOR), s, REWARD, 1));
		for n in 100..132u8 {
			assert_ok!(TrainingRewards::join_as_verifier(origin(n), id));
		}
		assert_noop!(
			TrainingRewards::join_as_verifier(origin(132), id),
			Error::<Test>::TooManyVerifiers
		);
	});
}

#[test]
fn verification_specs_are_bounded() {
	test(|| {
		type Tweak<'a> = &'a dyn Fn(&mut VerificationSpec<Balance, u64>);
		let bad = |f: Tweak| {
			let mut s = verified_spec(3);
			if let Some(v) = s.verification.as_mut() {
				f(v);
			}
			s
		};
		let cases: [Tweak; 5] = [
			&|v| v.verifiers_per_round = 0,
			&|v| v.verifiers_per_round = 8, // 2k + 1 = 17 > MaxCommittee 15
			&|v| v.scoring_window = 0,
			&|v| v.challenge_period = 99, // windows exceed MaxRoundLength 100
			&|v| v.challenge_bond = 0,
		];
		for case in cases {
			assert_noop!(
				TrainingRewards::create_job(origin(SPONSOR), bad(case), REWARD, 1),
				Error::<Test>::InvalidVerification
			);
		}
	});
}

fn public(shards: u32, recompute: u32) -> PublicData {
	PublicData { shards_root: H256::repeat_byte(3), shards, recompute }
}

#[test]
fn public_data_specs_are_bounded() {
	test(|| {
		// One shard leaves no other to compare on; re-computing more than may join is void.
		for bad in [public(0, 1), public(1, 1), public(4, 6)] {
			let mut s = verified_spec(3);
			s.verification.as_mut().unwrap().public_data = Some(bad);
			assert_noop!(
				TrainingRewards::create_job(origin(SPONSOR), s, REWARD, 1),
				Error::<Test>::InvalidPublicData
			);
		}
		let mut s = verified_spec(3);
		s.verification.as_mut().unwrap().public_data = Some(public(2, 5));
		s.hyperparameters.local_steps = 0;
		assert_noop!(
			TrainingRewards::create_job(origin(SPONSOR), s.clone(), REWARD, 1),
			Error::<Test>::InvalidPublicData
		);
		s.hyperparameters.local_steps = 10;
		assert_ok!(TrainingRewards::create_job(origin(SPONSOR), s, REWARD, 1));
	});
}

#[test]
fn a_settling_public_data_round_shows_its_seed_and_the_chain_assigned_shards() {
	test(|| {
		let id = NextJobId::<Test>::get();
		let mut s = verified_spec(3);
		s.verification.as_mut().unwrap().public_data = Some(public(7, 1));
		assert_ok!(TrainingRewards::create_job(origin(SPONSOR), s, REWARD, 3));
		for n in [1, 2, 3] {
			assert_ok!(TrainingRewards::join_job(origin(n), id));
		}
		for v in [10, 11, 12] {
			assert_ok!(TrainingRewards::join_as_verifier(origin(v), id));
		}
		let view = TrainingRewards::job_view(id).unwrap();
		assert_eq!(view.public_data, Some(([3u8; 32], 7, 1)));
		finalise(id, 0, &[(1, 100), (2, 100), (3, 100)]);
		let round = TrainingRewards::round_views(id).into_iter().next().unwrap();
		let expected: Vec<u32> = [1u8, 2, 3]
			.iter()
			.map(|n| trainchain_primitives::public_data::assign_shard(id, 0, &account(*n), 7).shard)
			.collect();
		assert_eq!(round.assigned_shards, expected);
		let seed = Settlements::<Test>::get(id, 0).unwrap().seed;
		assert_eq!(round.seed, Some(seed.0));
		// The seed is drawn at acceptance: another job's round in the same block differs.
		assert_ne!(seed, TrainingRewards::settlement_seed(id + 1, 0));
		// Once settled, the round no longer lists them.
		run_to_block(System::block_number() + SCORING + CHALLENGE + 1);
		let round = TrainingRewards::round_views(id).into_iter().next().unwrap();
		assert!(round.assigned_shards.is_empty() && round.seed.is_none());
	});
}

#[test]
fn reaping_waits_for_open_settlements() {
	test(|| {
		let id = verified_job(1, &[1, 2], &[10]);
		finalise(id, 0, &[(1, 100), (2, 100)]);
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		for n in [1, 2] {
			leave_and_withdraw(n, id);
		}
		assert_ok!(TrainingRewards::leave_verifying(origin(10), id));
		let until = Verifiers::<Test>::get(id, account(10)).unwrap().unbonding_until.unwrap();
		// Verifier 10 left without scoring; the round settles unverified (refunded).
		run_to_block(System::block_number() + SCORING + CHALLENGE);
		assert_eq!(job(id).open_settlements, 0);
		assert_noop!(TrainingRewards::reap_job(origin(7), id), Error::<Test>::MembersRemain);
		run_to_block(until);
		assert_ok!(TrainingRewards::withdraw_verifier_bond(origin(10), id));
		assert_eq!(job(id).open_settlements, 0);
		assert_ok!(TrainingRewards::reap_job(origin(7), id));
	});
}

// ---------------------------------------------------------------- property test

mod settlement_props {
	//! Random sequences over verified jobs: verifiers joining and leaving, rounds finalised by
	//! honest contributors, random and malformed score sheets from random accounts, challenges,
	//! cancellations and time. After every step the ledgers and holds are exact
	//! (`do_try_state`), no round pays more than its reward, and an account that was not
	//! included is never paid as a contributor; at the end issuance fell only by burned
	//! slashes and bonds. `PROPTEST_CASES` sets the number of sequences (1,000 by default).
	use super::*;
	use proptest::prelude::*;

	const MEMBERS: [u8; 3] = [1, 2, 3];

	#[derive(Debug, Clone)]
	enum Op {
		Create { k: u32 },
		JoinVerifier { job: u8, who: u8 },
		Finalise { job: u8 },
		Score { job: u8, who: u8, scores: Vec<i32>, accuracy: u32 },
		Challenge { job: u8, who: u8 },
		LeaveVerifier { job: u8, who: u8 },
		WithdrawVerifier { job: u8, who: u8 },
		Cancel { job: u8 },
		Advance { blocks: u8 },
	}

	fn op() -> impl Strategy<Value = Op> {
		let job = 0u8..3;
		let verifier = 10u8..20;
		prop_oneof![
			1 => (1u32..4).prop_map(|k| Op::Create { k }),
			4 => (job.clone(), verifier.clone()).prop_map(|(job, who)| Op::JoinVerifier { job, who }),
			2 => job.clone().prop_map(|job| Op::Finalise { job }),
			6 => (job.clone(), verifier.clone(), proptest::collection::vec(-100_000i32..200_000, 2..5), 0u32..1_100_000)
				.prop_map(|(job, who, scores, accuracy)| Op::Score { job, who, scores, accuracy }),
			1 => (job.clone(), 0u8..20).prop_map(|(job, who)| Op::Challenge { job, who }),
			1 => (job.clone(), verifier.clone()).prop_map(|(job, who)| Op::LeaveVerifier { job, who }),
			1 => (job.clone(), verifier).prop_map(|(job, who)| Op::WithdrawVerifier { job, who }),
			1 => job.clone().prop_map(|job| Op::Cancel { job }),
			3 => (1u8..8).prop_map(|blocks| Op::Advance { blocks }),
		]
	}

	fn apply(op: &Op) {
		let _ = match op.clone() {
			Op::Create { k } => {
				let id = NextJobId::<Test>::get();
				let r = TrainingRewards::create_job(origin(SPONSOR), verified_spec(k), REWARD, 3);
				for m in MEMBERS {
					let _ = TrainingRewards::join_job(origin(m), id);
				}
				r
			},
			Op::JoinVerifier { job, who } => {
				TrainingRewards::join_as_verifier(origin(who), job.into())
			},
			Op::Finalise { job } => {
				let id = u64::from(job);
				let Some(j) = Jobs::<Test>::get(id) else { return };
				if j.status != JobStatus::Running {
					return;
				}
				let round = j.round.index;
				let members: Vec<(u8, u64)> = MEMBERS.iter().map(|m| (*m, 100)).collect();
				for (n, s) in &members {
					let _ = TrainingRewards::commit_update(
						origin(*n),
						id,
						round,
						commitment(id, round, *n),
						*s,
					);
				}
				let agg = aggregate(id, round, H256::repeat_byte(60 + round as u8), &members);
				submit_agg(1, id, round, agg)
			},
			Op::Score { job, who, scores, accuracy } => {
				let id = u64::from(job);
				let round = Settlements::<Test>::iter_prefix(id).map(|(r, _)| r).min().unwrap_or(0);
				score(who, id, round, &scores, accuracy)
			},
			Op::Challenge { job, who } => {
				let id = u64::from(job);
				let round = Settlements::<Test>::iter_prefix(id).map(|(r, _)| r).min().unwrap_or(0);
				TrainingRewards::challenge_round(origin(who), id, round)
			},
			Op::LeaveVerifier { job, who } => {
				TrainingRewards::leave_verifying(origin(who), job.into())
			},
			Op::WithdrawVerifier { job, who } => {
				TrainingRewards::withdraw_verifier_bond(origin(who), job.into())
			},
			Op::Cancel { job } => TrainingRewards::cancel_job(origin(SPONSOR), job.into()),
			Op::Advance { blocks } => {
				run_to_block(System::block_number() + u64::from(blocks));
				Ok(())
			},
		};
	}

	/// Payouts of one step: contributors only if included in the round, never more than the
	/// round's reward in total.
	fn check_step(from: usize) -> Result<(), TestCaseError> {
		for e in System::events().iter().skip(from) {
			if let RuntimeEvent::TrainingRewards(Event::RoundSettled { job_id, round, .. }) =
				&e.event
			{
				let r = RoundResults::<Test>::get(job_id, round).unwrap();
				let paid: Balance = r.payouts.iter().map(|p| p.amount).sum::<Balance>()
					+ r.submitter_reward
					+ r.verifier_payouts.iter().map(|(_, a)| *a).sum::<Balance>();
				prop_assert!(paid <= REWARD, "round paid {} > {}", paid, REWARD);
				for p in r.payouts.iter() {
					prop_assert!(
						p.amount == 0 || MEMBERS.iter().any(|m| account(*m) == p.who),
						"paid a non-member"
					);
				}
			}
		}
		Ok(())
	}

	proptest! {
		#![proptest_config(ProptestConfig {
			cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
			..ProptestConfig::default()
		})]
		#[test]
		fn settlements_keep_the_books_exact(ops in proptest::collection::vec(op(), 1..50)) {
			new_test_ext().execute_with(|| {
				let issuance = Balances::total_issuance();
				for op in &ops {
					let from = System::events().len();
					apply(op);
					prop_assert_eq!(TrainingRewards::do_try_state(), Ok(()), "after {:?}", op);
					check_step(from)?;
				}
				let burned: Balance = System::events().iter().filter_map(|e| match &e.event {
					RuntimeEvent::TrainingRewards(Event::VerifierSlashed { burned, .. }) |
					RuntimeEvent::TrainingRewards(Event::ChallengeRejected { burned, .. }) => Some(*burned),
					_ => None,
				}).sum();
				prop_assert_eq!(Balances::total_issuance(), issuance - burned);
				Ok(())
			})?;
		}
	}
}
