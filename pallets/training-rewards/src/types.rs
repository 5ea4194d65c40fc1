//! Types stored by the pallet and passed to its calls.
// The `*NoBound` derives restate the bounds of the type parameters.
#![allow(clippy::multiple_bound_locations)]

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use core::fmt::Debug;
use frame_support::{
	pallet_prelude::*, BoundedVec, CloneNoBound, DebugNoBound, EqNoBound, PartialEqNoBound,
};
use scale_info::TypeInfo;
use sp_core::H256;

pub use trainchain_primitives::{JobId, RoundIndex};

/// Training hyperparameters every contributor must use.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct Hyperparameters {
	/// Learning rate in parts per million (1_000 = 0.001).
	pub learning_rate_ppm: u32,
	/// Mini-batch size.
	pub batch_size: u32,
	/// Local optimiser steps per round.
	pub local_steps: u32,
}

/// What a sponsor registers: the model, the data, how to train and how rounds run.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxMetadata))]
pub struct JobSpec<
	Balance: Clone + PartialEq + Eq + Debug,
	BlockNumber: Clone + PartialEq + Eq + Debug,
	MaxMetadata: Get<u32>,
> {
	/// blake2-256 of the model architecture and its initial weights.
	pub model_commitment: H256,
	/// blake2-256 commitment to the dataset (or its description).
	pub dataset_commitment: H256,
	/// Free-form metadata, e.g. a model spec string or a URI.
	pub metadata: BoundedVec<u8, MaxMetadata>,
	/// Hyperparameters.
	pub hyperparameters: Hyperparameters,
	/// A round needs at least this many included contributors; the job starts once this many
	/// have joined.
	pub min_contributors: u32,
	/// At most this many contributors may join.
	pub max_contributors: u32,
	/// Blocks from a round's start to its deadline.
	pub round_length: BlockNumber,
	/// Blocks from a round's start during which `commit_update` is accepted (≤ `round_length`).
	pub commit_window: BlockNumber,
	/// Bond a contributor holds while it is part of the job.
	pub contributor_bond: Balance,
	/// Most samples a contributor may claim in one round.
	pub max_samples: u64,
	/// The job fails after this many consecutive failed rounds.
	pub max_failed_rounds: u32,
	/// Verified contributions: bonded verifiers score every included update and payouts
	/// follow their median scores after a challenge window. `None`: contributors are paid
	/// by their committed samples as soon as the aggregate is accepted (the signers vouch).
	pub verification: Option<VerificationSpec<Balance, BlockNumber>>,
}

/// How a job's contributions are verified and paid.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct VerificationSpec<Balance, BlockNumber> {
	/// Verifiers picked per round (`k`); a challenge picks `2k + 1` others.
	pub verifiers_per_round: u32,
	/// Bond a verifier holds while it verifies the job (slashed if a challenge overturns
	/// scores it agreed with).
	pub verifier_bond: Balance,
	/// Part of each round's reward that goes to the verifiers whose scores agree with the
	/// median.
	pub verifier_share: sp_runtime::Perbill,
	/// Blocks the picked verifiers have to submit their scores.
	pub scoring_window: BlockNumber,
	/// Blocks after scoring during which anyone may challenge the round; payouts wait.
	pub challenge_period: BlockNumber,
	/// Bond a challenger holds; lost if the challenge does not change the result.
	pub challenge_bond: Balance,
	/// blake2-256 of the sponsor's held-out validation set (given to verifiers only).
	pub validation_set: H256,
	/// Only accounts the sponsor approved may become verifiers.
	pub restricted: bool,
	/// The job trains on a public dataset whose shards the chain assigns per contributor per
	/// round (`None`: every contributor trains on its own data).
	pub public_data: Option<PublicData>,
}

/// A public dataset, split into shards (row `i` in shard `i mod shards`) and committed by the
/// Merkle root of the shards (`trainchain_primitives::public_data`).
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct PublicData {
	/// Merkle root of the shards' hashes.
	pub shards_root: H256,
	/// Number of shards (at least 2: an update is compared on a shard other than its own).
	pub shards: u32,
	/// Contributors per round that the verifiers re-compute (at most `max_contributors`).
	pub recompute: u32,
}

/// A verifier's membership of a job.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Verifier<Balance, BlockNumber> {
	/// Bond held for this job.
	pub bond: Balance,
	/// Total rewards earned verifying this job.
	pub earned: Balance,
	/// Set by `leave_verifying`: no longer picked; the bond can be withdrawn from this block
	/// on (until then it can still be slashed by a challenge).
	pub unbonding_until: Option<BlockNumber>,
}

/// One verifier's scores of a round: one score per included contributor (in aggregate order)
/// and its measurement of the aggregated model on the validation set.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors))]
pub struct ScoreSheet<AccountId: Clone + PartialEq + Eq + Debug, MaxContributors: Get<u32>> {
	/// The verifier.
	pub verifier: AccountId,
	/// Per contributor: validation-loss decrease, in micro-units (1e-6), when that
	/// contributor's update alone is applied to the round's base model. Zero or negative for
	/// an update that does not help (a copy, a zero or random update, one withheld).
	pub scores: BoundedVec<i32, MaxContributors>,
	/// Validation loss of the aggregated model, in micro-units.
	pub loss_micro: u32,
	/// Validation accuracy of the aggregated model, in parts per million.
	pub accuracy_ppm: u32,
}

/// A committee of verifiers for a round and the sheets it submitted.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors, MaxCommittee))]
pub struct Panel<
	AccountId: Clone + PartialEq + Eq + Debug,
	MaxContributors: Get<u32>,
	MaxCommittee: Get<u32>,
> {
	/// Who was picked.
	pub committee: BoundedVec<AccountId, MaxCommittee>,
	/// What they submitted, in submission order.
	pub sheets: BoundedVec<ScoreSheet<AccountId, MaxContributors>, MaxCommittee>,
}

/// Where a round's settlement is.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub enum SettlementPhase<AccountId, Balance, BlockNumber> {
	/// The first committee scores until this block.
	Scoring {
		/// End of the scoring window.
		until: BlockNumber,
	},
	/// Scored; anyone may challenge until this block, then the payouts are made.
	Challengeable {
		/// End of the challenge window.
		until: BlockNumber,
	},
	/// Challenged: a fresh, larger committee re-scores until this block.
	Rescoring {
		/// End of the re-scoring window.
		until: BlockNumber,
		/// Who challenged.
		challenger: AccountId,
		/// Its bond, on hold.
		bond: Balance,
	},
}

/// What a scored round pays, computed from a panel's median scores.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors))]
pub struct Verdict<Balance: Clone + PartialEq + Eq + Debug, MaxContributors: Get<u32>> {
	/// Median score per included contributor (empty: too few verifiers scored).
	pub medians: BoundedVec<i32, MaxContributors>,
	/// Payout per included contributor, in aggregate order.
	pub payouts: BoundedVec<Balance, MaxContributors>,
	/// Median validation loss of the aggregated model (micro-units).
	pub loss_micro: Option<u32>,
	/// Median validation accuracy of the aggregated model (ppm).
	pub accuracy_ppm: Option<u32>,
}

impl<
		AccountId: Clone + PartialEq + Eq + Debug,
		Balance: Clone + PartialEq + Eq + Debug,
		BlockNumber: Clone + PartialEq + Eq + Debug,
		MaxContributors: Get<u32>,
		MaxCommittee: Get<u32>,
	> Settlement<AccountId, Balance, BlockNumber, MaxContributors, MaxCommittee>
{
	/// The block the current phase's window ends.
	pub fn phase_end(&self) -> BlockNumber {
		match &self.phase {
			SettlementPhase::Scoring { until }
			| SettlementPhase::Challengeable { until }
			| SettlementPhase::Rescoring { until, .. } => until.clone(),
		}
	}

	/// The panel scoring now: the challenge committee once challenged, else the first.
	pub fn current_panel(&self) -> &Panel<AccountId, MaxContributors, MaxCommittee> {
		self.second.as_ref().unwrap_or(&self.first)
	}
}

/// An included contributor of a round in settlement: what the verifiers fetch and score.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct Included<AccountId, BlockNumber> {
	/// The contributor.
	pub who: AccountId,
	/// Samples it committed.
	pub samples: u64,
	/// Its revealed update hash (the Merkle root of its compressed update).
	pub update_hash: H256,
	/// The block its commitment landed in (of identical updates, verifiers credit the
	/// earliest).
	pub committed_at: BlockNumber,
}

/// A finalised round of a verified job, from its aggregate until its payouts are made.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors, MaxCommittee))]
pub struct Settlement<
	AccountId: Clone + PartialEq + Eq + Debug,
	Balance: Clone + PartialEq + Eq + Debug,
	BlockNumber: Clone + PartialEq + Eq + Debug,
	MaxContributors: Get<u32>,
	MaxCommittee: Get<u32>,
> {
	/// The round's whole reward, reserved in the escrow until the payouts are made.
	pub reward: Balance,
	/// Who earns the submitter share (if any contributor scores above zero).
	pub submitter: AccountId,
	/// The included contributors, in aggregate order.
	pub included: BoundedVec<Included<AccountId, BlockNumber>, MaxContributors>,
	/// The committee picked when the aggregate was accepted.
	pub first: Panel<AccountId, MaxContributors, MaxCommittee>,
	/// The challenge committee, if the round was challenged.
	pub second: Option<Panel<AccountId, MaxContributors, MaxCommittee>>,
	/// The first committee's verdict, once scored.
	pub verdict: Option<Verdict<Balance, MaxContributors>>,
	/// Where the settlement is.
	pub phase: SettlementPhase<AccountId, Balance, BlockNumber>,
	/// Drawn when the aggregate was accepted (after every commitment): which contributors the
	/// verifiers re-compute and which shard an update is compared on, in public-data jobs.
	pub seed: H256,
}

/// Where a job is in its life.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
pub enum JobStatus {
	/// Created; fewer than `min_contributors` have joined, no round runs yet.
	WaitingForContributors,
	/// A round is open.
	Running,
	/// Every round finalised; the remainder went back to the sponsor.
	Completed,
	/// Too many consecutive rounds failed; the remainder went back to the sponsor.
	Failed,
	/// The sponsor cancelled the job; the remainder went back to the sponsor.
	Cancelled,
}

impl JobStatus {
	/// True once the job can never run a round again.
	pub fn is_ended(&self) -> bool {
		matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
	}
}

/// The open round of a running job.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen, Default)]
pub struct RoundState<BlockNumber> {
	/// Index of the round (counts failed rounds too).
	pub index: RoundIndex,
	/// Block the round started in.
	pub started_at: BlockNumber,
	/// `commit_update` is accepted while the block number is below this.
	pub commit_until: BlockNumber,
	/// `submit_aggregate` is accepted while the block number is below this; at this block the
	/// round fails if it has not finalised.
	pub deadline: BlockNumber,
	/// How many contributors committed an update in this round.
	pub committed: u32,
}

/// Where every unit of a job's escrow went. Invariants:
/// `deposited == held + paid_contributors + paid_submitters + paid_verifiers + refunded` and
/// `reserved <= held`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen, Default)]
pub struct EscrowLedger<Balance> {
	/// Escrowed by the sponsor at creation.
	pub deposited: Balance,
	/// Still on hold on the sponsor's account.
	pub held: Balance,
	/// Paid to included contributors.
	pub paid_contributors: Balance,
	/// Paid to aggregate submitters.
	pub paid_submitters: Balance,
	/// Released back to the sponsor.
	pub refunded: Balance,
	/// Paid to verifiers.
	pub paid_verifiers: Balance,
	/// Part of `held` reserved for finalised rounds whose payouts wait for verification.
	pub reserved: Balance,
}

/// Where every unit of the job's contributor bonds went. Invariant:
/// `deposited == held + released + slashed`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen, Default)]
pub struct BondLedger<Balance> {
	/// Bonds held when contributors joined.
	pub deposited: Balance,
	/// Bonds on hold now.
	pub held: Balance,
	/// Bonds released when contributors left.
	pub released: Balance,
	/// Bonds slashed for equivocation.
	pub slashed: Balance,
}

/// A registered training job.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxMetadata))]
pub struct Job<
	AccountId: Clone + PartialEq + Eq + Debug,
	Balance: Clone + PartialEq + Eq + Debug,
	BlockNumber: Clone + PartialEq + Eq + Debug,
	MaxMetadata: Get<u32>,
> {
	/// Who pays for the job.
	pub sponsor: AccountId,
	/// The registered specification.
	pub spec: JobSpec<Balance, BlockNumber, MaxMetadata>,
	/// Paid out when a round finalises.
	pub reward_per_round: Balance,
	/// Rounds to finalise before the job completes.
	pub rounds: u32,
	/// Life-cycle status.
	pub status: JobStatus,
	/// Block of creation.
	pub created_at: BlockNumber,
	/// Number of contributors currently joined.
	pub contributors: u32,
	/// The open round (meaningful while `status == Running`).
	pub round: RoundState<BlockNumber>,
	/// Rounds finalised so far.
	pub finalized_rounds: u32,
	/// Rounds failed in a row.
	pub consecutive_failures: u32,
	/// Model hash of the last finalised round (the initial commitment before that).
	pub latest_model: H256,
	/// Escrow accounting.
	pub escrow: EscrowLedger<Balance>,
	/// Bond accounting.
	pub bonds: BondLedger<Balance>,
	/// Storage deposit held from the sponsor while the job is live (`JobDeposit`); zero once
	/// the job has ended and it was returned.
	pub deposit: Balance,
	/// The sponsor cancelled while a round with commitments was open: the job ends, as
	/// `Cancelled`, when that round closes, and no further round starts.
	pub cancel_requested: bool,
	/// Verifiers currently verifying the job (not leaving).
	pub verifiers: u32,
	/// Verifier bond accounting.
	pub verifier_bonds: BondLedger<Balance>,
	/// Challenge bond accounting.
	pub challenge_bonds: BondLedger<Balance>,
	/// Rounds whose settlement is not done yet.
	pub open_settlements: u32,
}

/// A contributor's membership of a job.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Contributor<Balance, BlockNumber> {
	/// Bond held for this job.
	pub bond: Balance,
	/// Block the contributor joined at.
	pub joined_at: BlockNumber,
	/// Total rewards earned in this job (including submitter rewards).
	pub earned: Balance,
	/// Rounds in which the contributor was included in the aggregate.
	pub rounds_included: u32,
	/// Set by `leave_job`: the contributor no longer takes part and its bond can be withdrawn
	/// from this block on (until then it can still be slashed on evidence).
	pub unbonding_until: Option<BlockNumber>,
}

impl<Balance, BlockNumber> Contributor<Balance, BlockNumber> {
	/// True while the contributor takes part in rounds (it has not called `leave_job`).
	pub fn is_active(&self) -> bool {
		self.unbonding_until.is_none()
	}
}

/// A contributor's commitment for a round.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct CommitRecord<BlockNumber> {
	/// The round it was made for.
	pub round: RoundIndex,
	/// The block it was made in (verifiers credit the earliest of identical updates).
	pub at: BlockNumber,
	/// `trainchain_primitives::update_commitment(job, round, who, update_hash, salt)`.
	pub commitment: H256,
	/// Samples the contributor trained on.
	pub samples: u64,
}

/// One included contributor in an aggregate: its reveal, its own metric of the new model and
/// its signature over both.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct SignedContribution<AccountId, Signature> {
	/// The contributor.
	pub who: AccountId,
	/// Hash of its update (reveal part 1).
	pub update_hash: H256,
	/// Its salt (reveal part 2).
	pub salt: H256,
	/// Its own measurement of the new model (e.g. accuracy in ppm), signed with the payload.
	pub metric: Option<u32>,
	/// Its signature over `trainchain_primitives::AggregatePayload::signing_bytes(metric)`.
	pub signature: Signature,
}

/// The quorum-signed result of a round.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors))]
pub struct Aggregate<
	AccountId: Clone + PartialEq + Eq + Debug,
	Signature: Clone + PartialEq + Eq + Debug,
	MaxContributors: Get<u32>,
> {
	/// blake2-256 of the canonical encoding of the new model state.
	pub model_hash: H256,
	/// Who earns the submitter share (signed; must be one of the included contributors).
	pub submitter: AccountId,
	/// The included contributors, in the order they appear in the signed payload.
	pub contributions: BoundedVec<SignedContribution<AccountId, Signature>, MaxContributors>,
}

/// How a round ended.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum RoundOutcome {
	/// A valid aggregate finalised the round.
	Finalized,
	/// The deadline passed without a valid aggregate.
	Failed,
}

/// One payout of a finalised round.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Payout<AccountId, Balance> {
	/// The contributor.
	pub who: AccountId,
	/// Samples it committed.
	pub samples: u64,
	/// What it was paid.
	pub amount: Balance,
}

/// The stored result of a round (the last `HistoryDepth` rounds are kept).
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxContributors))]
pub struct RoundResult<
	AccountId: Clone + PartialEq + Eq + Debug,
	Balance: Clone + PartialEq + Eq + Debug,
	BlockNumber: Clone + PartialEq + Eq + Debug,
	MaxContributors: Get<u32>,
> {
	/// Finalised or failed.
	pub outcome: RoundOutcome,
	/// Block the round closed in.
	pub closed_at: BlockNumber,
	/// Contributors that committed.
	pub committed: u32,
	/// New model hash (finalised rounds).
	pub model_hash: Option<H256>,
	/// Accuracy of the new model in ppm: in a verified job the median over its verifiers
	/// (set when scored), otherwise the lower median of the signers' own metrics.
	pub metric: Option<u32>,
	/// Verified jobs: the verifiers' median validation loss of the new model (micro-units).
	pub loss_micro: Option<u32>,
	/// Verified jobs: the median score of each included contributor, in aggregate order.
	pub scores: BoundedVec<i32, MaxContributors>,
	/// Verified jobs: what each rewarded verifier was paid (`MaxCommittee <= MaxContributors`).
	pub verifier_payouts: BoundedVec<(AccountId, Balance), MaxContributors>,
	/// Who earned the submitter share (named in the signed payload).
	pub submitter: Option<AccountId>,
	/// What the submitter was paid on top.
	pub submitter_reward: Balance,
	/// Payouts to included contributors, in aggregate order.
	pub payouts: BoundedVec<Payout<AccountId, Balance>, MaxContributors>,
}

/// One signed statement of an equivocation report: the exact signed bytes
/// (`AggregatePayload::signing_bytes(metric)`) and the signature over them.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxLen))]
pub struct SignedEvidence<Signature: Clone + PartialEq + Eq + Debug, MaxLen: Get<u32>> {
	/// The signed bytes.
	pub statement: BoundedVec<u8, MaxLen>,
	/// The offender's signature over them.
	pub signature: Signature,
}

/// Proof that `offender` signed two conflicting aggregate payloads (same job, round and
/// included contributors, different models): see `AggregatePayload::conflicts_with`.
#[derive(
	CloneNoBound,
	PartialEqNoBound,
	EqNoBound,
	DebugNoBound,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
#[scale_info(skip_type_params(MaxLen))]
pub struct EquivocationProof<
	AccountId: Clone + PartialEq + Eq + Debug,
	Signature: Clone + PartialEq + Eq + Debug,
	MaxLen: Get<u32>,
> {
	/// The job.
	pub job_id: JobId,
	/// The round.
	pub round: RoundIndex,
	/// Who signed both.
	pub offender: AccountId,
	/// The first statement.
	pub first: SignedEvidence<Signature, MaxLen>,
	/// The second, conflicting statement.
	pub second: SignedEvidence<Signature, MaxLen>,
}

/// An sr25519 signature, verified against an `AccountId32` whose raw bytes are the public key.
///
/// The only scheme aggregate payloads and equivocation evidence accept: `MultiSignature`
/// would also take ed25519 and ECDSA, whose verification costs differ from the sr25519 the
/// weights are benchmarked with. Trainers sign with sr25519 anyway.
#[derive(
	Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub struct Sr25519Signature(pub sp_core::sr25519::Signature);

impl sp_runtime::traits::Verify for Sr25519Signature {
	type Signer = sp_runtime::MultiSigner;

	fn verify<L: sp_runtime::traits::Lazy<[u8]>>(
		&self,
		mut msg: L,
		signer: &sp_runtime::AccountId32,
	) -> bool {
		let public = sp_core::sr25519::Public::from_raw(*signer.as_ref());
		sp_io::crypto::sr25519_verify(&self.0, msg.get(), &public)
	}
}

impl From<sp_core::sr25519::Signature> for Sr25519Signature {
	fn from(s: sp_core::sr25519::Signature) -> Self {
		Self(s)
	}
}
