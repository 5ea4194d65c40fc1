//! Builds the runtime API's read-only views from storage.

use crate::{pallet::*, types::*};
use alloc::vec::Vec;
use frame_system::pallet_prelude::BlockNumberFor;
use pallet_training_rewards_runtime_api::{
	ContributorView, JobPhase, JobView, PayoutView, RoundView,
};
use trainchain_primitives::public_data::assign_shard;

/// Most jobs one `jobs_page` returns.
pub const MAX_JOBS_PAGE: u32 = 1_000;

impl<T: Config> Pallet<T> {
	/// The phase of `job` at block `now`.
	pub fn phase(job: &JobOf<T>, now: BlockNumberFor<T>) -> JobPhase {
		match job.status {
			JobStatus::WaitingForContributors => JobPhase::WaitingForContributors,
			JobStatus::Completed => JobPhase::Completed,
			JobStatus::Failed => JobPhase::Failed,
			JobStatus::Cancelled => JobPhase::Cancelled,
			JobStatus::Running if now < job.round.commit_until => JobPhase::Commit,
			JobStatus::Running => JobPhase::Aggregate,
		}
	}

	/// View of one job.
	pub fn job_view(
		job_id: JobId,
	) -> Option<JobView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let job = Jobs::<T>::get(job_id)?;
		let now = frame_system::Pallet::<T>::block_number();
		Some(JobView {
			job_id,
			phase: Self::phase(&job, now),
			quorum: Self::quorum(&job),
			sponsor: job.sponsor,
			model_commitment: job.spec.model_commitment.0,
			dataset_commitment: job.spec.dataset_commitment.0,
			metadata: job.spec.metadata.into_inner(),
			learning_rate_ppm: job.spec.hyperparameters.learning_rate_ppm,
			batch_size: job.spec.hyperparameters.batch_size,
			local_steps: job.spec.hyperparameters.local_steps,
			min_contributors: job.spec.min_contributors,
			max_contributors: job.spec.max_contributors,
			round_length: job.spec.round_length,
			commit_window: job.spec.commit_window,
			contributor_bond: job.spec.contributor_bond,
			max_samples: job.spec.max_samples,
			max_failed_rounds: job.spec.max_failed_rounds,
			reward_per_round: job.reward_per_round,
			rounds: job.rounds,
			created_at: job.created_at,
			contributors: job.contributors,
			current_round: job.round.index,
			round_started_at: job.round.started_at,
			commit_until: job.round.commit_until,
			deadline: job.round.deadline,
			committed: job.round.committed,
			finalized_rounds: job.finalized_rounds,
			consecutive_failures: job.consecutive_failures,
			latest_model: job.latest_model.0,
			escrow_deposited: job.escrow.deposited,
			escrow_held: job.escrow.held,
			paid_contributors: job.escrow.paid_contributors,
			paid_submitters: job.escrow.paid_submitters,
			refunded: job.escrow.refunded,
			bonds_held: job.bonds.held,
			bonds_slashed: job.bonds.slashed,
			verifiers_per_round: job.spec.verification.as_ref().map(|v| v.verifiers_per_round),
			validation_set: job.spec.verification.as_ref().map(|v| v.validation_set.0),
			public_data: job
				.spec
				.verification
				.as_ref()
				.and_then(|v| v.public_data.as_ref())
				.map(|p| (p.shards_root.0, p.shards, p.recompute)),
			verifiers: job.verifiers,
			escrow_reserved: job.escrow.reserved,
			paid_verifiers: job.escrow.paid_verifiers,
			open_settlements: job.open_settlements,
		})
	}

	/// Up to `limit` (at most [`MAX_JOBS_PAGE`]) job views with ids from `start` on, oldest
	/// first. Reaped jobs leave gaps; at most `4 × limit` ids are probed, so a page is
	/// bounded work whatever the number of jobs ever created.
	pub fn jobs_page(
		start: JobId,
		limit: u32,
	) -> Vec<JobView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let limit = limit.min(MAX_JOBS_PAGE) as usize;
		let end = NextJobId::<T>::get();
		let probes = (limit as u64).saturating_mul(4);
		(start..end.min(start.saturating_add(probes)))
			.filter_map(Self::job_view)
			.take(limit)
			.collect()
	}

	/// Stored round results of a job, oldest first.
	pub fn round_views(
		job_id: JobId,
	) -> Vec<RoundView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let shards = Jobs::<T>::get(job_id)
			.and_then(|j| j.spec.verification)
			.and_then(|v| v.public_data)
			.map(|p| p.shards);
		let mut rounds: Vec<_> = RoundResults::<T>::iter_prefix(job_id)
			.map(|(round, r)| {
				let settlement = Settlements::<T>::get(job_id, round);
				let assigned_shards = match (&settlement, shards) {
					(Some(s), Some(n)) => s
						.included
						.iter()
						.map(|i| assign_shard(job_id, round, &i.who, n).shard)
						.collect(),
					_ => Vec::new(),
				};
				RoundView {
					round,
					finalized: r.outcome == RoundOutcome::Finalized,
					closed_at: r.closed_at,
					committed: r.committed,
					model_hash: r.model_hash.map(|h| h.0),
					metric: r.metric,
					submitter: r.submitter,
					submitter_reward: r.submitter_reward,
					payouts: r
						.payouts
						.into_iter()
						.map(|p| PayoutView { who: p.who, samples: p.samples, amount: p.amount })
						.collect(),
					loss_micro: r.loss_micro,
					scores: r.scores.into_inner(),
					settling: settlement.is_some(),
					verifier_payouts: r.verifier_payouts.into_inner(),
					updates: settlement
						.as_ref()
						.map(|s| {
							s.included
								.iter()
								.map(|i| (i.who.clone(), i.update_hash.0, i.committed_at))
								.collect()
						})
						.unwrap_or_default(),
					committee: settlement
						.as_ref()
						.map(|s| s.current_panel().committee.to_vec())
						.unwrap_or_default(),
					scored: settlement
						.as_ref()
						.map(|s| {
							s.current_panel().sheets.iter().map(|x| x.verifier.clone()).collect()
						})
						.unwrap_or_default(),
					seed: settlement.as_ref().map(|s| s.seed.0),
					assigned_shards,
				}
			})
			.collect();
		rounds.sort_unstable_by_key(|r| r.round);
		rounds
	}

	/// Contributors of a job with their latest commitments.
	pub fn contributor_views(
		job_id: JobId,
	) -> Vec<ContributorView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
		let open_round = Jobs::<T>::get(job_id)
			.filter(|j| j.status == JobStatus::Running)
			.map(|j| j.round.index);
		Contributors::<T>::iter_prefix(job_id)
			.map(|(who, m)| {
				let commit = Commitments::<T>::get(job_id, &who);
				ContributorView {
					bond: m.bond,
					joined_at: m.joined_at,
					earned: m.earned,
					rounds_included: m.rounds_included,
					last_commit_round: commit.as_ref().map(|c| c.round),
					current_commitment: commit
						.as_ref()
						.filter(|c| Some(c.round) == open_round)
						.map(|c| c.commitment.0),
					last_samples: commit.as_ref().map(|c| c.samples),
					last_commit_block: commit.as_ref().map(|c| c.at),
					who,
				}
			})
			.collect()
	}
}
