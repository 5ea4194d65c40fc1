//! The exploits of issue #11, one test each, named after the attack. Each performed the attack
//! successfully on the code before the fix.
use super::*;

/// A job with contributors 1..=n joined (round 0 open, nobody committed yet).
fn running_job_with_members(rounds: u32, n: u8) -> JobId {
	let id = create(rounds);
	for m in 1..=n {
		assert_ok!(TrainingRewards::join_job(origin(m), id));
	}
	id
}

// 1. Honest re-runs are slashable.
#[test]
fn honest_rerun_without_a_silent_member_is_not_slashable() {
	test(|| {
		let id = running_job_with_members(3, 3);
		// First attempt includes 1, 2, 3; member 3 never commits, so 1 and 2 re-run the round
		// without it and sign a second payload with another included list and model.
		let first = payload(id, 0, H256::repeat_byte(9), &[(1, 100), (2, 300), (3, 600)]);
		let rerun = payload(id, 0, H256::repeat_byte(8), &[(1, 100), (2, 300)]);
		assert_noop!(report_signed(3, id, 0, 1, &first, &rerun), Error::<Test>::NotEquivocation);
	});
}

// 2. Finalising before honest trainers commit.
#[test]
fn colluders_cannot_finalise_before_honest_members_commit() {
	test(|| {
		// min_contributors 2: colluders 1 and 2, honest 3 and 4 still training.
		let id = running_job_with_members(3, 4);
		commit(id, 0, 1, 1_000);
		commit(id, 0, 2, 1_000);
		run_to_block(2);
		let agg = aggregate(id, 0, H256::repeat_byte(6), &[(1, 1_000), (2, 1_000)]);
		assert_noop!(submit_agg(1, id, 0, agg), Error::<Test>::CommitWindowOpen);
		// The honest members commit in time; after the window the quorum counts them.
		commit(id, 0, 3, 100);
		commit(id, 0, 4, 100);
		run_to_block(6);
		let agg = aggregate(id, 0, H256::repeat_byte(6), &[(1, 1_000), (2, 1_000)]);
		assert_noop!(submit_agg(1, id, 0, agg), Error::<Test>::QuorumNotMet);
	});
}

// 3. Deadline-queue griefing.
#[test]
fn deadline_filler_jobs_cannot_kill_a_victim_job() {
	test(|| {
		let victim = running_job_with_members(3, 2);
		// Round 0 fails at block 11 (nobody commits) and round 1 then wants block 21. In block
		// 10 the attacker aims cheap jobs (reward 1, bond 0, one member) at blocks 21..=28,
		// every block a full deadline block could spill into.
		run_to_block(10);
		for round_length in 11..=18u64 {
			let mut cheap = spec();
			cheap.min_contributors = 1;
			cheap.contributor_bond = 0;
			cheap.round_length = round_length;
			for _ in 0..4 {
				let filler = NextJobId::<Test>::get();
				assert_ok!(TrainingRewards::create_job(origin(9), cheap.clone(), 1, 1));
				assert_ok!(TrainingRewards::join_job(origin(9), filler));
			}
		}
		run_to_block(11);
		// The victim's round 1 started, with its own deadline.
		assert_eq!(job(victim).status, JobStatus::Running);
		assert_eq!(job(victim).round.index, 1);
		assert_eq!(job(victim).round.deadline, 21);
		// Filler jobs cost their sponsor a deposit each while they live.
		assert_eq!(held(HoldReason::JobDeposit, 9), 32 * JobDeposit::get());
	});
}

// 4. Commitment squatting.
#[test]
fn squatting_a_members_commitment_does_not_lock_it_out() {
	test(|| {
		let id = running_job_with_members(3, 3);
		// Member 2 front-runs member 1 with member 1's (gossiped, derivable) commitment.
		assert_ok!(TrainingRewards::commit_update(origin(2), id, 0, commitment(id, 0, 1), 100));
		assert_ok!(TrainingRewards::commit_update(origin(1), id, 0, commitment(id, 0, 1), 100));
	});
}

// 5a. Slash escape: leaving right after the round must not take the bond out of reach.
#[test]
fn equivocator_cannot_escape_the_slash_by_leaving() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let agg = aggregate(id, 0, H256::repeat_byte(9), &all);
		assert_ok!(submit_agg(1, id, 0, agg));
		let a = payload(id, 0, H256::repeat_byte(9), &all);
		let b = payload(id, 0, H256::repeat_byte(8), &all);
		// The equivocator leaves as soon as the round closed.
		let _ = TrainingRewards::leave_job(origin(2), id);
		assert_ok!(report_signed(5, id, 0, 2, &a, &b));
		assert_eq!(job(id).bonds.slashed, BOND);
	});
}

// 5b. Evidence replay against a rejoined offender.
#[test]
fn used_evidence_cannot_slash_a_rejoined_member_again() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let a = payload(id, 0, H256::repeat_byte(9), &all);
		let b = payload(id, 0, H256::repeat_byte(8), &all);
		let report = || report_signed(5, id, 0, 2, &a, &b);
		assert_ok!(report());
		assert_ok!(TrainingRewards::join_job(origin(2), id));
		assert_noop!(report(), Error::<Test>::DuplicateOffence);
	});
}

// 5c. Removing a committed member must take it out of the round's count.
#[test]
fn slashing_a_committed_member_lowers_the_committed_count() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let a = payload(id, 0, H256::repeat_byte(9), &all);
		let b = payload(id, 0, H256::repeat_byte(8), &all);
		assert_ok!(report_signed(5, id, 0, 3, &a, &b));
		assert_eq!(job(id).round.committed, 2);
	});
}

// 6. Cancel in the middle of a round.
#[test]
fn cancelling_mid_round_still_pays_the_committed_round() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let before = free(3);
		let sponsor_before = free(SPONSOR);
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		// Everything but the open round's reward comes back now.
		assert_eq!(free(SPONSOR), sponsor_before + 2 * REWARD);
		System::assert_last_event(
			Event::CancellationScheduled { job_id: id, refunded: 2 * REWARD }.into(),
		);
		assert_noop!(
			TrainingRewards::cancel_job(origin(SPONSOR), id),
			Error::<Test>::CancelPending
		);
		assert_noop!(TrainingRewards::join_job(origin(4), id), Error::<Test>::CancelPending);
		run_to_block(6);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &all);
		assert_ok!(submit_agg(1, id, 0, agg));
		assert!(free(3) > before);
		assert_eq!(job(id).status, JobStatus::Cancelled);
		assert!(held(HoldReason::JobEscrow, SPONSOR).is_zero());
		assert!(held(HoldReason::JobDeposit, SPONSOR).is_zero());
	});
}

#[test]
fn cancelled_round_that_fails_ends_the_job_and_refunds_its_reward() {
	test(|| {
		let id = running_job_with_commits(3);
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), id));
		// Nobody submits: the round expires at its deadline and the job ends, cancelled.
		run_to_block(11);
		let j = job(id);
		assert_eq!(j.status, JobStatus::Cancelled);
		assert_eq!(j.escrow.refunded, 3 * REWARD);
		System::assert_has_event(Event::JobCancelled { job_id: id, refunded: REWARD }.into());
	});
}

/// A hold that no longer matches the pallet's books (only possible if another pallet took
/// it) surfaces as the named `TransferFailed`, never a panic, and nothing changes.
#[test]
fn a_hold_out_of_step_with_the_books_gives_transfer_failed() {
	use frame_support::traits::{fungible::MutateHold, tokens::Precision};
	new_test_ext().execute_with(|| {
		let id = running_job_with_commits(1);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		assert_ok!(submit_agg(1, id, 0, aggregate(id, 0, H256::repeat_byte(9), &all)));
		assert_ok!(TrainingRewards::leave_job(origin(2), id));
		let reason = RuntimeHoldReason::TrainingRewards(HoldReason::ContributorBond);
		assert_ok!(Balances::release(&reason, &account(2), 1, Precision::Exact));
		System::set_block_number(1 + 200);
		assert_noop!(TrainingRewards::withdraw_bond(origin(2), id), Error::<Test>::TransferFailed);
	});
}

// 7. Submitter front-running and unsigned fields.
#[test]
fn front_runner_cannot_rewrite_the_metric() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		let mut copied = aggregate(id, 0, H256::repeat_byte(9), &all);
		copied.contributions[0].metric = Some(1_000_000);
		assert_noop!(submit_agg(3, id, 0, copied), Error::<Test>::InvalidSignature);
	});
}

#[test]
fn front_runner_cannot_take_the_submitter_share() {
	test(|| {
		let id = running_job_with_commits(3);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		// Member 3 copies member 1's pending aggregate and names itself.
		let mut copied = aggregate(id, 0, H256::repeat_byte(9), &all);
		copied.submitter = account(3);
		assert_noop!(submit_agg(3, id, 0, copied), Error::<Test>::InvalidSignature);
		// Sending the copy unchanged pays the share to the named submitter, not the sender.
		let before = (free(1), free(3));
		let copy = aggregate(id, 0, H256::repeat_byte(9), &all);
		assert_ok!(submit_agg(3, id, 0, copy));
		let pot = REWARD - REWARD * 2 / 100;
		assert_eq!(free(1), before.0 + pot / 10 + REWARD * 2 / 100);
		assert_eq!(free(3), before.1 + pot * 6 / 10);
	});
}

// 8. Bonds locked without end.
#[test]
fn unbounded_round_length_is_refused() {
	test(|| {
		let mut long = spec();
		long.round_length = u64::MAX;
		long.commit_window = 5;
		assert_noop!(
			TrainingRewards::create_job(origin(SPONSOR), long, REWARD, 1),
			Error::<Test>::RoundTooLong
		);
	});
}

#[test]
fn committed_member_can_leave_after_the_commit_window_and_grace() {
	test(|| {
		let id = running_job_with_commits(3);
		// Quorum failed: nobody submits. The commit window closes at 6; grace is 2 blocks.
		run_to_block(8);
		assert_ok!(TrainingRewards::leave_job(origin(1), id));
	});
}

// 11. A payout below the existential deposit to a reaped account reverts the aggregate.
#[test]
fn dust_payout_to_a_reaped_account_does_not_revert_the_round() {
	test(|| {
		ExistentialDeposit::set(50);
		let mut free_job = spec();
		free_job.contributor_bond = 0;
		let id = NextJobId::<Test>::get();
		assert_ok!(TrainingRewards::create_job(origin(SPONSOR), free_job, REWARD, 1));
		// Account 42 has no balance at all; bond 0 lets it join.
		assert_ok!(TrainingRewards::join_job(origin(1), id));
		assert_ok!(TrainingRewards::join_job(origin(42), id));
		commit(id, 0, 1, 1_000);
		commit(id, 0, 42, 1);
		let agg = aggregate(id, 0, H256::repeat_byte(9), &[(1, 1_000), (42, 1)]);
		assert_ok!(submit_agg(1, id, 0, agg));
		assert_eq!(job(id).status, JobStatus::Completed);
	});
}

// 9. Integrity of the runtime's constants and the storage version.
#[test]
fn constants_pass_integrity_test_and_storage_version_is_set() {
	use frame_support::traits::{GetStorageVersion, Hooks};
	test(|| {
		<TrainingRewards as Hooks<u64>>::integrity_test();
		// The layout of #11 is version 1 (a chain built before it holds the old layout).
		assert_eq!(TrainingRewards::in_code_storage_version(), 1);
	});
}

// 10. Unbounded reads: job listings are paged, ended jobs can be removed.
#[test]
fn job_listing_is_paged_and_ended_jobs_are_reaped() {
	test(|| {
		let ids: Vec<JobId> = (0..5).map(|_| create(1)).collect();
		assert_eq!(TrainingRewards::jobs_page(0, 2).len(), 2);
		assert_eq!(TrainingRewards::jobs_page(4, 2).len(), 1);
		assert_eq!(TrainingRewards::jobs_page(0, u32::MAX).len(), 5);

		// A finished job with a member: not reapable until the member withdrew.
		let id = running_job_with_commits(1);
		assert_noop!(TrainingRewards::reap_job(origin(9), id), Error::<Test>::JobNotEnded);
		let all = [(1u8, 100u64), (2, 300), (3, 600)];
		assert_ok!(submit_agg(1, id, 0, aggregate(id, 0, H256::repeat_byte(9), &all)));
		assert_eq!(job(id).status, JobStatus::Completed);
		assert_noop!(TrainingRewards::reap_job(origin(9), id), Error::<Test>::MembersRemain);
		for n in 1..=3 {
			assert_ok!(TrainingRewards::leave_job(origin(n), id));
		}
		System::set_block_number(1 + 200);
		for n in 1..=3 {
			assert_ok!(TrainingRewards::withdraw_bond(origin(n), id));
		}
		assert_ok!(TrainingRewards::reap_job(origin(9), id));
		assert!(Jobs::<Test>::get(id).is_none());
		assert_eq!(RoundResults::<Test>::iter_prefix(id).count(), 0);
		assert_noop!(TrainingRewards::reap_job(origin(9), id), Error::<Test>::UnknownJob);
		// Reaped ids are skipped by pages.
		assert_ok!(TrainingRewards::cancel_job(origin(SPONSOR), ids[1]));
		assert_ok!(TrainingRewards::reap_job(origin(9), ids[1]));
		assert_eq!(
			TrainingRewards::jobs_page(0, 3).iter().map(|j| j.job_id).collect::<Vec<_>>(),
			vec![0, 2, 3]
		);
	});
}
