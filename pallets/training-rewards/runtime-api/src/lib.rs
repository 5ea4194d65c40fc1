//! Runtime API of `pallet-training-rewards`: read-only views of jobs, rounds and
//! contributors, served by the node's `training_*` JSON-RPC methods.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use codec::{Codec, Decode, Encode};
use scale_info::TypeInfo;
pub use trainchain_primitives::{JobId, RoundIndex};

/// Where a job is, including the phase of its open round.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub enum JobPhase {
	/// Waiting until `min_contributors` have joined.
	WaitingForContributors,
	/// A round is open and accepts commitments (and aggregates).
	Commit,
	/// The commit window closed; the round accepts aggregates until its deadline.
	Aggregate,
	/// Every round finalised.
	Completed,
	/// Too many consecutive rounds failed.
	Failed,
	/// Cancelled by the sponsor.
	Cancelled,
}

impl JobPhase {
	/// A stable lower-case name for JSON.
	pub fn as_str(&self) -> &'static str {
		match self {
			JobPhase::WaitingForContributors => "waiting_for_contributors",
			JobPhase::Commit => "commit",
			JobPhase::Aggregate => "aggregate",
			JobPhase::Completed => "completed",
			JobPhase::Failed => "failed",
			JobPhase::Cancelled => "cancelled",
		}
	}
}

/// Everything about one job, flattened.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct JobView<AccountId, Balance, BlockNumber> {
	pub job_id: JobId,
	pub sponsor: AccountId,
	pub model_commitment: [u8; 32],
	pub dataset_commitment: [u8; 32],
	pub metadata: Vec<u8>,
	pub learning_rate_ppm: u32,
	pub batch_size: u32,
	pub local_steps: u32,
	pub min_contributors: u32,
	pub max_contributors: u32,
	pub round_length: BlockNumber,
	pub commit_window: BlockNumber,
	pub contributor_bond: Balance,
	pub max_samples: u64,
	pub max_failed_rounds: u32,
	pub reward_per_round: Balance,
	pub rounds: u32,
	pub phase: JobPhase,
	pub created_at: BlockNumber,
	pub contributors: u32,
	pub current_round: RoundIndex,
	pub round_started_at: BlockNumber,
	pub commit_until: BlockNumber,
	pub deadline: BlockNumber,
	pub committed: u32,
	pub quorum: u32,
	pub finalized_rounds: u32,
	pub consecutive_failures: u32,
	pub latest_model: [u8; 32],
	pub escrow_deposited: Balance,
	pub escrow_held: Balance,
	pub paid_contributors: Balance,
	pub paid_submitters: Balance,
	pub refunded: Balance,
	pub bonds_held: Balance,
	pub bonds_slashed: Balance,
	/// Verified jobs: verifiers picked per round (`None`: not verified).
	pub verifiers_per_round: Option<u32>,
	/// Verified jobs: blake2-256 of the sponsor's validation set.
	pub validation_set: Option<[u8; 32]>,
	/// Public-data jobs: the Merkle root of the dataset's shards, the number of shards and the
	/// contributors re-computed per round.
	pub public_data: Option<([u8; 32], u32, u32)>,
	/// Verifiers currently verifying the job.
	pub verifiers: u32,
	/// Escrow reserved for rounds in verification.
	pub escrow_reserved: Balance,
	/// Escrow paid to verifiers.
	pub paid_verifiers: Balance,
	/// Rounds still in verification (scoring or challenge window).
	pub open_settlements: u32,
}

/// One payout of a finalised round.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct PayoutView<AccountId, Balance> {
	pub who: AccountId,
	pub samples: u64,
	pub amount: Balance,
}

/// A stored round result.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct RoundView<AccountId, Balance, BlockNumber> {
	pub round: RoundIndex,
	pub finalized: bool,
	pub closed_at: BlockNumber,
	pub committed: u32,
	pub model_hash: Option<[u8; 32]>,
	pub metric: Option<u32>,
	pub submitter: Option<AccountId>,
	pub submitter_reward: Balance,
	pub payouts: Vec<PayoutView<AccountId, Balance>>,
	/// Verified jobs: the verifiers' median validation loss of the new model (micro-units).
	pub loss_micro: Option<u32>,
	/// Verified jobs: each included contributor's median score, in aggregate order.
	pub scores: Vec<i32>,
	/// Verified jobs: the round's payouts wait for scoring or its challenge window.
	pub settling: bool,
	/// Verified jobs: what each rewarded verifier was paid.
	pub verifier_payouts: Vec<(AccountId, Balance)>,
	/// Verified jobs, while settling: each included contributor, its update hash and the block
	/// its commitment landed in, in aggregate order (what the verifiers fetch and score).
	pub updates: Vec<(AccountId, [u8; 32], BlockNumber)>,
	/// Verified jobs, while settling: the committee scoring now (the challenge committee once
	/// challenged).
	pub committee: Vec<AccountId>,
	/// Verified jobs, while settling: who of `committee` has scored.
	pub scored: Vec<AccountId>,
	/// Verified jobs, while settling: the settlement's seed (re-computation sample and
	/// comparison shards of public-data jobs).
	pub seed: Option<[u8; 32]>,
	/// Public-data jobs, while settling: the shard each included contributor was assigned, in
	/// aggregate order.
	pub assigned_shards: Vec<u32>,
}

/// A contributor's membership of a job.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ContributorView<AccountId, Balance, BlockNumber> {
	pub who: AccountId,
	pub bond: Balance,
	pub joined_at: BlockNumber,
	pub earned: Balance,
	pub rounds_included: u32,
	/// The round of its latest commitment, if any.
	pub last_commit_round: Option<RoundIndex>,
	/// Its commitment in the open round, if any.
	pub current_commitment: Option<[u8; 32]>,
	/// Samples of its latest commitment.
	pub last_samples: Option<u64>,
	/// Block of its latest commitment.
	pub last_commit_block: Option<BlockNumber>,
}

sp_api::decl_runtime_apis! {
	/// Read access to `pallet-training-rewards`.
	pub trait TrainingRewardsApi<AccountId, Balance, BlockNumber>
	where
		AccountId: Codec,
		Balance: Codec,
		BlockNumber: Codec,
	{
		/// One job.
		fn job(job_id: JobId) -> Option<JobView<AccountId, Balance, BlockNumber>>;
		/// Up to `limit` jobs with ids from `start` on, oldest first (reaped jobs skipped).
		/// Page with `start = last id + 1`; an empty page means there are no more.
		fn jobs(start: JobId, limit: u32) -> Vec<JobView<AccountId, Balance, BlockNumber>>;
		/// The stored round results of a job (the last `HistoryDepth`), oldest first.
		fn rounds(job_id: JobId) -> Vec<RoundView<AccountId, Balance, BlockNumber>>;
		/// The contributors of a job.
		fn contributors(job_id: JobId) -> Vec<ContributorView<AccountId, Balance, BlockNumber>>;
		/// The hash of the genesis block that aggregate payloads must sign.
		fn genesis_hash() -> [u8; 32];
	}
}
