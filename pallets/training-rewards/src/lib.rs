//! # Training rewards pallet
//!
//! Sponsors register ML training jobs and escrow their reward; contributors bond, train
//! off-chain, commit to their updates, and submit a quorum-signed aggregate per round; the
//! pallet verifies the aggregate, pays the included contributors out of the escrow in
//! proportion to their samples, and slashes only on verifiable evidence (equivocation).
//!
//! The protocol, its invariants and its limits are stated in this crate's `README.md`.
//!
//! ## Calls
//! * [`Pallet::create_job`]: register a job, escrow `reward_per_round × rounds` (hold
//!   [`HoldReason::JobEscrow`]).
//! * [`Pallet::cancel_job`]: the sponsor ends the job; the unspent escrow is released.
//! * [`Pallet::join_job`] / [`Pallet::leave_job`] / [`Pallet::withdraw_bond`]: contributors
//!   bond ([`HoldReason::ContributorBond`]), leave (the bond stays slashable for
//!   `UnbondingPeriod`) and withdraw.
//! * [`Pallet::commit_update`]: commit to this round's update during the commit window.
//! * [`Pallet::submit_aggregate`]: reveal + signatures of a quorum, after every commitment of
//!   the round is in; finalises and pays.
//! * [`Pallet::report_equivocation`]: two signatures by one contributor over two conflicting
//!   payloads for one round; slashes the bond.
//!
//! Rounds whose deadline passes without an aggregate fail in `on_initialize`.
//!
//! Code map: `jobs.rs` (create, cancel, end), `membership.rs` (join, leave, withdraw),
//! `rounds.rs` (commit, aggregate verification and payment, round close), `deadlines.rs`
//! (the deadline queue), `evidence.rs` (equivocation), `ledger.rs` (escrow and bond
//! arithmetic), `invariants.rs` (`do_try_state`), `views.rs` (runtime API views).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

mod deadlines;
mod evidence;
mod invariants;
mod jobs;
pub mod ledger;
mod membership;
mod rounds;
pub mod scoring;
mod settlement;
pub mod types;
mod verifiers;
pub mod views;
pub mod weights;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use types::*;
pub use weights::WeightInfo;

// FRAME's macros expand to `expect` on their own invariants (storage prefixes, metadata). The
// pallet's own code has no `expect`; every other workspace lint applies in full.
#[allow(clippy::expect_used)]
#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use alloc::boxed::Box;
	use frame_support::{
		dispatch::{DispatchResultWithPostInfo, PostDispatchInfo},
		pallet_prelude::*,
		traits::{
			fungible::{Inspect, InspectHold, Mutate, MutateHold},
			StorageVersion,
		},
	};
	use frame_system::pallet_prelude::*;
	use sp_core::H256;
	use sp_runtime::{
		traits::{IdentifyAccount, Verify, Zero},
		DispatchErrorWithPostInfo, Perbill,
	};

	/// Balance type of the currency.
	pub type BalanceOf<T> =
		<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;
	/// A job as stored.
	pub type JobOf<T> = Job<
		<T as frame_system::Config>::AccountId,
		BalanceOf<T>,
		BlockNumberFor<T>,
		<T as Config>::MaxMetadataLen,
	>;
	/// A job spec as passed to `create_job`.
	pub type JobSpecOf<T> = JobSpec<BalanceOf<T>, BlockNumberFor<T>, <T as Config>::MaxMetadataLen>;
	/// An aggregate as passed to `submit_aggregate`.
	pub type AggregateOf<T> = Aggregate<
		<T as frame_system::Config>::AccountId,
		<T as Config>::Signature,
		<T as Config>::MaxContributors,
	>;
	/// A stored round result.
	pub type RoundResultOf<T> = RoundResult<
		<T as frame_system::Config>::AccountId,
		BalanceOf<T>,
		BlockNumberFor<T>,
		<T as Config>::MaxContributors,
	>;
	/// A contributor's membership record.
	pub type ContributorOf<T> = Contributor<BalanceOf<T>, BlockNumberFor<T>>;
	pub type VerifierOf<T> = Verifier<BalanceOf<T>, BlockNumberFor<T>>;
	pub type VerificationSpecOf<T> = VerificationSpec<BalanceOf<T>, BlockNumberFor<T>>;
	pub type ScoreSheetOf<T> =
		ScoreSheet<<T as frame_system::Config>::AccountId, <T as Config>::MaxContributors>;
	pub type SettlementOf<T> = Settlement<
		<T as frame_system::Config>::AccountId,
		BalanceOf<T>,
		BlockNumberFor<T>,
		<T as Config>::MaxContributors,
		<T as Config>::MaxCommittee,
	>;
	/// An equivocation proof as passed to `report_equivocation`.
	pub type EquivocationProofOf<T> = EquivocationProof<
		<T as frame_system::Config>::AccountId,
		<T as Config>::Signature,
		MaxPayloadLen<T>,
	>;

	pub(crate) const LOG_TARGET: &str = "runtime::training-rewards";

	/// The storage layout version: 1 is the layout of trust hardening (#11): unbounded
	/// per-block deadline entries with a cursor, job deposits, unbonding, offence records.
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The overarching event type.
		#[allow(deprecated)]
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;

		/// The overarching hold reason.
		type RuntimeHoldReason: From<HoldReason>;

		/// The currency escrow and bonds are held in.
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ InspectHold<Self::AccountId>;

		/// Signature contributors put on aggregate payloads ([`Sr25519Signature`] in the runtime:
		/// one scheme, the one the weights are benchmarked with).
		type Signature: Verify<Signer = Self::Signer>
			+ Parameter
			+ Member
			+ MaxEncodedLen
			+ DecodeWithMemTracking;

		/// The signer of [`Config::Signature`], which identifies as an account.
		type Signer: IdentifyAccount<AccountId = Self::AccountId>;

		/// Longest job metadata, in bytes.
		#[pallet::constant]
		type MaxMetadataLen: Get<u32>;

		/// Most contributors a job may have (and so most signatures in an aggregate).
		#[pallet::constant]
		type MaxContributors: Get<u32>;

		/// Most rounds a job may ask for.
		#[pallet::constant]
		type MaxRounds: Get<u32>;

		/// Longest `round_length` a job may ask for (bounds how long a bond can be locked by
		/// one round).
		#[pallet::constant]
		type MaxRoundLength: Get<BlockNumberFor<Self>>;

		/// Largest `max_failed_rounds` a job may ask for.
		#[pallet::constant]
		type MaxFailedRounds: Get<u32>;

		/// Most round deadlines `on_initialize` processes in one block; more due deadlines are
		/// processed in the next blocks (a late expiry changes nothing: calls check the round's
		/// own deadline).
		#[pallet::constant]
		type MaxDeadlinesPerBlock: Get<u32>;

		/// Held from the sponsor while a job is live and returned when it ends: job storage
		/// is not free, so filling the chain with jobs has a cost.
		#[pallet::constant]
		type JobDeposit: Get<BalanceOf<Self>>;

		/// Blocks a leaving contributor's bond stays on hold (and slashable on evidence)
		/// before `withdraw_bond` releases it.
		#[pallet::constant]
		type UnbondingPeriod: Get<BlockNumberFor<Self>>;

		/// Blocks after the commit window during which a contributor that committed in the
		/// open round may not leave (the aggregate including it is expected then).
		#[pallet::constant]
		type LeaveGrace: Get<BlockNumberFor<Self>>;

		/// Round results kept per job.
		#[pallet::constant]
		type HistoryDepth: Get<u32>;

		/// Share of a round's reward paid to whoever submits its aggregate.
		#[pallet::constant]
		type SubmitterShare: Get<Perbill>;

		/// Share of a slashed bond paid to the reporter; the rest is burned.
		#[pallet::constant]
		type ReporterShare: Get<Perbill>;

		/// Weights of this pallet's calls.
		/// Most settlement windows `on_initialize` advances per block (each may pay a round).
		#[pallet::constant]
		type MaxSettlementsPerBlock: Get<u32>;

		/// Most verifiers of one job.
		#[pallet::constant]
		type MaxVerifiers: Get<u32>;

		/// Largest committee (a challenge picks `2k + 1` verifiers).
		#[pallet::constant]
		type MaxCommittee: Get<u32>;

		/// Per-contributor slack (micro-units of loss) when judging whether a verifier's
		/// scores agree with the median ones.
		#[pallet::constant]
		type ScoreTolerance: Get<u32>;

		type WeightInfo: WeightInfo;
	}

	/// Why the pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// A sponsor's unspent job reward.
		JobEscrow,
		/// A contributor's bond for a job.
		ContributorBond,
		/// A sponsor's storage deposit for a live job.
		JobDeposit,
		/// A verifier's bond for a job.
		VerifierBond,
		/// A challenger's bond for a challenged round.
		ChallengeBond,
	}

	/// The id the next job gets.
	#[pallet::storage]
	pub type NextJobId<T> = StorageValue<_, JobId, ValueQuery>;

	/// All jobs, ended ones included.
	#[pallet::storage]
	pub type Jobs<T: Config> = StorageMap<_, Blake2_128Concat, JobId, JobOf<T>, OptionQuery>;

	/// Contributors of each job.
	#[pallet::storage]
	pub type Contributors<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Blake2_128Concat,
		T::AccountId,
		ContributorOf<T>,
		OptionQuery,
	>;

	/// The latest commitment of each contributor of a job (overwritten each round).
	#[pallet::storage]
	pub type Commitments<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Blake2_128Concat,
		T::AccountId,
		CommitRecord<BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// Results of the last `HistoryDepth` rounds of each job.
	#[pallet::storage]
	pub type RoundResults<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Twox64Concat,
		RoundIndex,
		RoundResultOf<T>,
		OptionQuery,
	>;

	/// Open rounds by deadline block: `(deadline, job) -> round`. One entry per running job
	/// (removed when its round closes), so scheduling never fails whatever other jobs do.
	#[pallet::storage]
	pub type Deadlines<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		Twox64Concat,
		JobId,
		RoundIndex,
		OptionQuery,
	>;

	/// The oldest block whose deadline entries may not all be processed yet. Unset until the
	/// first `on_initialize` (which then starts at its own block: no deadline can be due
	/// earlier, since every deadline lies after the block that scheduled it).
	#[pallet::storage]
	pub type DeadlineCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, OptionQuery>;

	/// Offences already punished: `job -> (round, offender)`. Used evidence cannot slash
	/// twice.
	#[pallet::storage]
	pub type Offences<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		JobId,
		Blake2_128Concat,
		(RoundIndex, T::AccountId),
		(),
		OptionQuery,
	>;

	/// Accounts the sponsor of a restricted verified job allows to verify it.
	#[pallet::storage]
	pub type ApprovedVerifiers<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Blake2_128Concat,
		T::AccountId,
		(),
		OptionQuery,
	>;

	/// The verifiers a committee is picked from (active, not leaving), per job.
	#[pallet::storage]
	pub type VerifierSets<T: Config> = StorageMap<
		_,
		Blake2_128Concat,
		JobId,
		BoundedVec<T::AccountId, T::MaxVerifiers>,
		ValueQuery,
	>;

	/// Every verifier of a job (active and unbonding) with its bond.
	#[pallet::storage]
	pub type Verifiers<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Blake2_128Concat,
		T::AccountId,
		VerifierOf<T>,
		OptionQuery,
	>;

	/// Finalised rounds of verified jobs whose payouts are not made yet.
	#[pallet::storage]
	pub type Settlements<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		JobId,
		Twox64Concat,
		RoundIndex,
		SettlementOf<T>,
		OptionQuery,
	>;

	/// When each settlement's current window ends: `(block, (job, round))`.
	#[pallet::storage]
	pub type SettlementQueue<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		Twox64Concat,
		(JobId, RoundIndex),
		(),
		OptionQuery,
	>;

	/// The first block of `SettlementQueue` not fully processed yet.
	#[pallet::storage]
	pub type SettlementCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, OptionQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A job was registered and its reward escrowed.
		JobCreated {
			/// The new job.
			job_id: JobId,
			/// Who pays.
			sponsor: T::AccountId,
			/// Paid per finalised round.
			reward_per_round: BalanceOf<T>,
			/// Rounds to run.
			rounds: u32,
			/// Total held from the sponsor.
			escrow: BalanceOf<T>,
		},
		/// The sponsor cancelled a job during a round with commitments: the unspent escrow
		/// except the open round's reward went back now; the job ends when the round closes.
		CancellationScheduled {
			/// The job.
			job_id: JobId,
			/// Escrow released to the sponsor now.
			refunded: BalanceOf<T>,
		},
		/// A cancelled job ended.
		JobCancelled {
			/// The job.
			job_id: JobId,
			/// Unspent escrow released to the sponsor.
			refunded: BalanceOf<T>,
		},
		/// A contributor joined a job and its bond was held.
		ContributorJoined {
			/// The job.
			job_id: JobId,
			/// The contributor.
			who: T::AccountId,
			/// Bond held.
			bond: BalanceOf<T>,
		},
		/// A contributor left a job; its bond stays on hold (slashable) until `until`.
		ContributorUnbonding {
			/// The job.
			job_id: JobId,
			/// The contributor.
			who: T::AccountId,
			/// First block `withdraw_bond` succeeds.
			until: BlockNumberFor<T>,
		},
		/// A contributor withdrew its bond after unbonding.
		ContributorLeft {
			/// The job.
			job_id: JobId,
			/// The contributor.
			who: T::AccountId,
			/// Bond released.
			bond: BalanceOf<T>,
		},
		/// A round opened.
		RoundStarted {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// Last block for commitments is `commit_until - 1`.
			commit_until: BlockNumberFor<T>,
			/// The round fails at this block without an aggregate.
			deadline: BlockNumberFor<T>,
		},
		/// A contributor committed to its update.
		UpdateCommitted {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// The contributor.
			who: T::AccountId,
			/// The commitment.
			commitment: H256,
			/// Samples claimed.
			samples: u64,
		},
		/// A contributor was paid for a round.
		ContributorPaid {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// The contributor.
			who: T::AccountId,
			/// Amount paid.
			amount: BalanceOf<T>,
		},
		/// A valid aggregate finalised a round.
		RoundFinalized {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// The new model hash.
			model_hash: H256,
			/// Contributors included.
			included: u32,
			/// Total paid to contributors.
			paid: BalanceOf<T>,
			/// Who earned the submitter share (named in the signed payload).
			submitter: T::AccountId,
			/// Paid to the submitter.
			submitter_reward: BalanceOf<T>,
		},
		/// A round's deadline passed without an aggregate; its reward stays in escrow.
		RoundFailed {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// Rounds failed in a row, this one included.
			consecutive_failures: u32,
		},
		/// An ended job without members was removed from storage.
		JobReaped {
			/// The job.
			job_id: JobId,
		},
		/// Every round finalised.
		JobCompleted {
			/// The job.
			job_id: JobId,
			/// Rounding remainder released to the sponsor.
			refunded: BalanceOf<T>,
		},
		/// Too many rounds failed in a row.
		JobFailed {
			/// The job.
			job_id: JobId,
			/// Unspent escrow released to the sponsor.
			refunded: BalanceOf<T>,
		},
		/// A contributor signed two conflicting payloads for one round and was slashed.
		EquivocationSlashed {
			/// The job.
			job_id: JobId,
			/// The round.
			round: RoundIndex,
			/// The equivocating contributor (removed from the job).
			offender: T::AccountId,
			/// Who proved it.
			reporter: T::AccountId,
			/// Paid to the reporter out of the bond.
			reporter_reward: BalanceOf<T>,
			/// Burned out of the bond.
			burned: BalanceOf<T>,
		},
		/// The sponsor of a restricted job approved a verifier.
		VerifierApproved { job_id: JobId, who: T::AccountId },
		/// A verifier bonded to a job.
		VerifierJoined { job_id: JobId, who: T::AccountId, bond: BalanceOf<T> },
		/// A verifier stopped verifying; its bond can be withdrawn from `until`.
		VerifierUnbonding { job_id: JobId, who: T::AccountId, until: BlockNumberFor<T> },
		/// A verifier withdrew its bond.
		VerifierLeft { job_id: JobId, who: T::AccountId, bond: BalanceOf<T> },
		/// A verified round's committee, scoring until `until`.
		CommitteePicked {
			job_id: JobId,
			round: RoundIndex,
			committee: alloc::vec::Vec<T::AccountId>,
			until: BlockNumberFor<T>,
		},
		/// A committee member submitted its scores.
		ScoresSubmitted { job_id: JobId, round: RoundIndex, verifier: T::AccountId },
		/// A round was challenged; a fresh committee re-scores until `until`.
		RoundChallenged {
			job_id: JobId,
			round: RoundIndex,
			challenger: T::AccountId,
			committee: alloc::vec::Vec<T::AccountId>,
			until: BlockNumberFor<T>,
		},
		/// The challenge overturned the first scores.
		ChallengeUpheld { job_id: JobId, round: RoundIndex, challenger: T::AccountId },
		/// Too few of the challenge committee scored; the bond was returned and the first
		/// verdict stands.
		ChallengeVoid { job_id: JobId, round: RoundIndex, challenger: T::AccountId },
		/// The challenge did not change the result; its bond was burned.
		ChallengeRejected {
			job_id: JobId,
			round: RoundIndex,
			challenger: T::AccountId,
			burned: BalanceOf<T>,
		},
		/// A verifier agreed with overturned scores and lost its bond.
		VerifierSlashed {
			job_id: JobId,
			round: RoundIndex,
			verifier: T::AccountId,
			challenger_reward: BalanceOf<T>,
			burned: BalanceOf<T>,
		},
		/// A verified round's payouts were made (see `ContributorPaid` and the round result).
		RoundSettled {
			job_id: JobId,
			round: RoundIndex,
			verifiers_paid: BalanceOf<T>,
			refunded: BalanceOf<T>,
		},
	}

	#[pallet::error]
	pub enum Error<T> {
		/// `rounds` is zero.
		ZeroRounds,
		/// `rounds` is above `MaxRounds`.
		TooManyRounds,
		/// `reward_per_round` is zero.
		ZeroReward,
		/// `reward_per_round × rounds` overflows the balance type.
		RewardOverflow,
		/// `min_contributors` is zero.
		ZeroMinContributors,
		/// `min_contributors > max_contributors`.
		MinAboveMax,
		/// `max_contributors` is above `MaxContributors`.
		TooManyContributors,
		/// `round_length` is zero.
		ZeroRoundLength,
		/// `commit_window` is zero or longer than `round_length`.
		InvalidCommitWindow,
		/// `max_samples` is zero.
		ZeroMaxSamples,
		/// `max_failed_rounds` is zero.
		ZeroMaxFailedRounds,
		/// `max_failed_rounds` is above `MaxFailedRounds`.
		TooManyFailedRounds,
		/// `round_length` is above `MaxRoundLength`.
		RoundTooLong,
		/// The balance cannot cover the escrow or the bond.
		InsufficientBalance,
		/// No job has this id.
		UnknownJob,
		/// Only the job's sponsor may do this.
		NotSponsor,
		/// The job has ended (completed, failed or cancelled).
		JobEnded,
		/// The sponsor already cancelled the job; it ends when the open round closes.
		CancelPending,
		/// The job has no open round.
		JobNotRunning,
		/// The job has not ended yet.
		JobNotEnded,
		/// Contributors (active or unbonding) are still members of the job.
		MembersRemain,
		/// The account already joined the job.
		AlreadyJoined,
		/// The job has `max_contributors` contributors.
		JobFull,
		/// The account is not a contributor of the job (or has left it).
		NotContributor,
		/// The contributor committed in the open round and may leave only `LeaveGrace` blocks
		/// after its commit window closed (or once the round closed).
		InOpenRound,
		/// The contributor already left the job and is unbonding.
		AlreadyLeaving,
		/// The contributor has not left the job (`leave_job` first).
		NotLeaving,
		/// The bond is still unbonding.
		StillUnbonding,
		/// The round is not the job's open round (finalised, failed or in the future).
		WrongRound,
		/// The commit window of the round has closed.
		CommitWindowClosed,
		/// The contributor already committed in this round.
		AlreadyCommitted,
		/// `samples` is zero or above the job's `max_samples`.
		InvalidSamples,
		/// The aggregate lists no contributions.
		EmptyAggregate,
		/// A contributor appears twice in the aggregate.
		DuplicateContributor,
		/// An included contributor did not commit in this round.
		NotCommitted,
		/// A reveal (update hash + salt) does not match the contributor's commitment.
		RevealMismatch,
		/// A signature does not verify over the aggregate payload and the signer's metric.
		InvalidSignature,
		/// The submitter named in the aggregate is not one of its included contributors.
		SubmitterNotIncluded,
		/// The commit window is open and not every member has committed yet: an aggregate
		/// must count every commitment of the round.
		CommitWindowOpen,
		/// Fewer signers than `max(ceil(2/3 × committed), min_contributors)`.
		QuorumNotMet,
		/// The round's deadline has passed.
		DeadlinePassed,
		/// Moving held funds failed.
		TransferFailed,
		/// An arithmetic overflow in accounting (never expected).
		Overflow,
		/// An equivocation statement does not decode, is not for this chain, job and round,
		/// or does not include the offender.
		InvalidEvidence,
		/// The two statements do not conflict (different included contributors, or the same
		/// model): honest re-runs and resubmissions are not equivocation.
		NotEquivocation,
		/// This offence (job, round, offender) was already punished.
		DuplicateOffence,
		/// The verification spec is out of bounds (`k` is zero or `2k + 1` exceeds
		/// `MaxCommittee`, a window is zero, the windows exceed `MaxRoundLength`, or the
		/// challenge bond is zero).
		InvalidVerification,
		/// The public dataset of the spec has fewer than two shards, re-computes more
		/// contributors per round than may join, or the spec has no local steps to re-compute.
		InvalidPublicData,
		/// The job has no verification.
		NotVerified,
		/// Anyone may verify this job; there is nothing to approve.
		VerifiersNotRestricted,
		/// Already a verifier of the job.
		AlreadyVerifier,
		/// The job's sponsor has not approved this account as a verifier.
		NotApproved,
		/// The job has `MaxVerifiers` verifiers.
		TooManyVerifiers,
		/// Not a verifier of the job.
		NotVerifier,
		/// Not picked for this round's committee (or the sheet names another verifier).
		NotOnCommittee,
		/// An accuracy above 100%.
		InvalidMetric,
		/// The round is not being settled (not a verified round, or already settled).
		NotSettling,
		/// The scoring window of the round has closed.
		ScoringClosed,
		/// This verifier already scored the round.
		AlreadyScored,
		/// The sheet does not have one score per included contributor.
		WrongScoreCount,
		/// The round's challenge window has closed.
		ChallengeWindowClosed,
		/// The round was already challenged.
		AlreadyChallenged,
		/// The round's first committee has not finished scoring.
		NotChallengeable,
		/// Not enough verifiers outside the first committee for a larger one.
		NotEnoughVerifiers,
		/// Rounds of the job are still being settled.
		SettlementsOpen,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(now: BlockNumberFor<T>) -> Weight {
			Self::process_deadlines(now).saturating_add(Self::process_settlements(now))
		}

		fn integrity_test() {
			assert!(T::MaxContributors::get() > 0, "MaxContributors must be positive");
			assert!(T::MaxRounds::get() > 0, "MaxRounds must be positive");
			assert!(T::MaxFailedRounds::get() > 0, "MaxFailedRounds must be positive");
			assert!(!T::MaxRoundLength::get().is_zero(), "MaxRoundLength must be positive");
			assert!(
				T::MaxDeadlinesPerBlock::get() > 0,
				"MaxDeadlinesPerBlock must be positive or deadlines never expire"
			);
			assert!(T::HistoryDepth::get() > 0, "HistoryDepth must be positive");
			assert!(
				T::UnbondingPeriod::get() > T::MaxRoundLength::get(),
				"a bond must stay slashable for longer than one round"
			);
			assert!(
				T::MaxCommittee::get() >= 3,
				"MaxCommittee must allow a challenge committee (2k + 1 with k >= 1)"
			);
			assert!(
				T::MaxVerifiers::get() >= T::MaxCommittee::get(),
				"MaxVerifiers < MaxCommittee"
			);
			assert!(T::MaxSettlementsPerBlock::get() > 0, "settlements would never advance");
			assert!(
				T::MaxCommittee::get() <= T::MaxContributors::get(),
				"round results keep verifier payouts within MaxContributors"
			);
			assert!(
				T::SubmitterShare::get() < Perbill::one(),
				"the submitter share must leave something for contributors"
			);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register a training job. Holds `reward_per_round × rounds` (escrow) and `JobDeposit`
		/// (storage deposit, returned when the job ends) from the caller.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::create_job())]
		pub fn create_job(
			origin: OriginFor<T>,
			spec: JobSpecOf<T>,
			reward_per_round: BalanceOf<T>,
			rounds: u32,
		) -> DispatchResult {
			let sponsor = ensure_signed(origin)?;
			Self::do_create_job(sponsor, spec, reward_per_round, rounds)
		}

		/// End a job early (sponsor only). Without commitments in the open round the job ends
		/// now and the unspent escrow is released; otherwise everything but the open round's
		/// reward is released now and the job ends when that round closes, so committed work
		/// is still paid.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::cancel_job())]
		pub fn cancel_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_cancel_job(who, job_id)
		}

		/// Join a job as a contributor, holding its bond. The first round starts when
		/// `min_contributors` have joined.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::join_job())]
		pub fn join_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_join_job(who, job_id)
		}

		/// Leave a job: the caller stops taking part now; its bond stays on hold, slashable on
		/// evidence, for `UnbondingPeriod` blocks, then `withdraw_bond` releases it. A
		/// contributor that committed in the open round may leave `LeaveGrace` blocks after
		/// the commit window.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::leave_job())]
		pub fn leave_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_leave_job(who, job_id)
		}

		/// Commit to this round's update: `commitment = update_commitment(job, round, who,
		/// update_hash, salt)` from `trainchain-primitives`; `samples` is how many examples
		/// the update was trained on.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::commit_update())]
		pub fn commit_update(
			origin: OriginFor<T>,
			job_id: JobId,
			round: RoundIndex,
			commitment: H256,
			samples: u64,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_commit_update(who, job_id, round, commitment, samples)
		}

		/// Finalise a round with the quorum-signed aggregate; pays the included contributors
		/// and the submitter named in the payload out of the escrow. Accepted once every
		/// commitment of the round is in (every member committed, or the commit window
		/// closed). A call that fails before the signatures are checked (e.g. a fallback
		/// submitter that lost the race) is charged the weight of that check only.
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::submit_aggregate(aggregate.contributions.len() as u32))]
		pub fn submit_aggregate(
			origin: OriginFor<T>,
			job_id: JobId,
			round: RoundIndex,
			aggregate: AggregateOf<T>,
		) -> DispatchResultWithPostInfo {
			let sender = ensure_signed(origin)?;
			let early = PostDispatchInfo {
				actual_weight: Some(T::WeightInfo::submit_aggregate(0)),
				pays_fee: Pays::Yes,
			};
			let job = Self::check_submission(&sender, job_id, round, &aggregate)
				.map_err(|error| DispatchErrorWithPostInfo { post_info: early, error })?;
			Self::do_submit_aggregate(job_id, round, job, aggregate)?;
			Ok(().into())
		}

		/// Prove that an offender signed two conflicting aggregate payloads (same job, round
		/// and included contributors, different models). Its bond is slashed: `ReporterShare`
		/// to the caller, the rest burned; it is removed from the job. Each offence is
		/// punished once.
		#[pallet::call_index(6)]
		#[pallet::weight(T::WeightInfo::report_equivocation())]
		pub fn report_equivocation(
			origin: OriginFor<T>,
			proof: Box<EquivocationProofOf<T>>,
		) -> DispatchResult {
			let reporter = ensure_signed(origin)?;
			Self::do_report_equivocation(reporter, *proof)
		}

		/// Release the bond of a contributor that left the job once `UnbondingPeriod` passed.
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::withdraw_bond())]
		pub fn withdraw_bond(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_withdraw_bond(who, job_id)
		}

		/// Remove an ended job whose members have all withdrawn their bonds, with its round
		/// history and offence records, so state does not grow with every job ever run.
		/// Anyone may call it; its escrow and deposit were settled when it ended.
		#[pallet::call_index(8)]
		#[pallet::weight(T::WeightInfo::reap_job(
            T::HistoryDepth::get().saturating_add(T::MaxContributors::get())
        ))]
		pub fn reap_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			ensure_signed(origin)?;
			Self::do_reap_job(job_id)
		}
		#[pallet::call_index(9)]
		#[pallet::weight(T::WeightInfo::approve_verifier())]
		pub fn approve_verifier(
			origin: OriginFor<T>,
			job_id: JobId,
			who: T::AccountId,
		) -> DispatchResult {
			let sponsor = ensure_signed(origin)?;
			Self::do_approve_verifier(sponsor, job_id, who)
		}

		#[pallet::call_index(10)]
		#[pallet::weight(T::WeightInfo::join_as_verifier())]
		pub fn join_as_verifier(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_join_as_verifier(who, job_id)
		}

		#[pallet::call_index(11)]
		#[pallet::weight(T::WeightInfo::leave_verifying())]
		pub fn leave_verifying(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_leave_verifying(who, job_id)
		}

		#[pallet::call_index(12)]
		#[pallet::weight(T::WeightInfo::withdraw_verifier_bond())]
		pub fn withdraw_verifier_bond(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_withdraw_verifier_bond(who, job_id)
		}

		#[pallet::call_index(13)]
		#[pallet::weight(T::WeightInfo::submit_scores(sheet.scores.len() as u32))]
		pub fn submit_scores(
			origin: OriginFor<T>,
			job_id: JobId,
			round: RoundIndex,
			sheet: ScoreSheetOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_submit_scores(who, job_id, round, sheet)
		}

		#[pallet::call_index(14)]
		#[pallet::weight(T::WeightInfo::challenge_round())]
		pub fn challenge_round(
			origin: OriginFor<T>,
			job_id: JobId,
			round: RoundIndex,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Self::do_challenge_round(who, job_id, round)
		}
	}

	/// Upper bound of an encoded signed statement: header + `MaxContributors` shares + metric.
	pub struct MaxPayloadLen<T>(core::marker::PhantomData<T>);
	impl<T: Config> Get<u32> for MaxPayloadLen<T> {
		fn get() -> u32 {
			// domain 23 + genesis 32 + job 8 + round 4 + model 32 + submitter + compact length
			// 5 + metric 5, then per share an account, a u64 and a 32-byte update hash.
			let account = T::AccountId::max_encoded_len() as u32;
			let per_share = account.saturating_add(8 + 32);
			109u32
				.saturating_add(account)
				.saturating_add(T::MaxContributors::get().saturating_mul(per_share))
		}
	}
}
