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
//! * [`Pallet::join_job`] / [`Pallet::leave_job`]: contributors bond
//!   ([`HoldReason::ContributorBond`]) and leave.
//! * [`Pallet::commit_update`]: commit to this round's update during the commit window.
//! * [`Pallet::submit_aggregate`]: reveal + signatures of a quorum; finalises and pays.
//! * [`Pallet::report_equivocation`]: two signatures by one contributor over two different
//!   payloads for one round; slashes the bond.
//!
//! Rounds whose deadline passes without an aggregate fail in `on_initialize`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

pub mod types;
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

// FRAME's macros expand to `expect` on their own invariants (storage prefixes, metadata), and
// `report_equivocation` takes its evidence as eight arguments. The pallet's own code has no
// `expect`; every other workspace lint applies in full.
#[allow(clippy::expect_used, clippy::too_many_arguments)]
#[frame_support::pallet]
pub mod pallet {
    use super::*;
    use alloc::vec::Vec;
    use frame_support::{
        pallet_prelude::*,
        traits::{
            fungible::{Inspect, InspectHold, Mutate, MutateHold},
            tokens::{Fortitude, Precision, Restriction},
        },
    };
    use frame_system::pallet_prelude::*;
    use sp_core::H256;
    use sp_runtime::{
        traits::{IdentifyAccount, Saturating, Verify, Zero},
        Perbill, SaturatedConversion,
    };
    use trainchain_primitives::{AggregatePayload, IncludedShare};

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

    const LOG_TARGET: &str = "runtime::training-rewards";

    /// How many later blocks are tried when a deadline block's queue is full.
    pub const DEADLINE_SPILL_BLOCKS: u32 = 8;

    #[pallet::pallet]
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

        /// Signature contributors put on aggregate payloads (`MultiSignature` in the runtime).
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

        /// Most round deadlines that may fall in one block (bounds `on_initialize`).
        #[pallet::constant]
        type MaxDeadlinesPerBlock: Get<u32>;

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
        type WeightInfo: WeightInfo;
    }

    /// Why the pallet holds funds.
    #[pallet::composite_enum]
    pub enum HoldReason {
        /// A sponsor's unspent job reward.
        JobEscrow,
        /// A contributor's bond for a job.
        ContributorBond,
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
        CommitRecord,
        OptionQuery,
    >;

    /// Reverse index of live commitments, to refuse a commitment copied from another contributor.
    #[pallet::storage]
    pub type CommitmentOwners<T: Config> = StorageDoubleMap<
        _,
        Blake2_128Concat,
        JobId,
        Identity,
        H256,
        (RoundIndex, T::AccountId),
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

    /// Round deadlines due in each block: `(job, round)` pairs checked by `on_initialize`.
    #[pallet::storage]
    pub type Deadlines<T: Config> = StorageMap<
        _,
        Twox64Concat,
        BlockNumberFor<T>,
        BoundedVec<(JobId, RoundIndex), T::MaxDeadlinesPerBlock>,
        ValueQuery,
    >;

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
        /// The sponsor cancelled a job.
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
        /// A contributor left a job and its bond was released.
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
            /// Who submitted the aggregate.
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
        /// A contributor signed two different payloads for one round and was slashed.
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
        /// The metadata is longer than `MaxMetadataLen`.
        MetadataTooLong,
        /// The balance cannot cover the escrow or the bond.
        InsufficientBalance,
        /// No job has this id.
        UnknownJob,
        /// Only the job's sponsor may do this.
        NotSponsor,
        /// The job has ended (completed, failed or cancelled).
        JobEnded,
        /// The job has no open round.
        JobNotRunning,
        /// The account already joined the job.
        AlreadyJoined,
        /// The job has `max_contributors` contributors.
        JobFull,
        /// The account is not a contributor of the job.
        NotContributor,
        /// The contributor committed in the open round and must wait until it closes.
        InOpenRound,
        /// The round is not the job's open round (finalised, failed or in the future).
        WrongRound,
        /// The commit window of the round has closed.
        CommitWindowClosed,
        /// The contributor already committed in this round.
        AlreadyCommitted,
        /// `samples` is zero or above the job's `max_samples`.
        InvalidSamples,
        /// Another contributor already posted this commitment in this round.
        CommitmentReused,
        /// The aggregate lists no contributions.
        EmptyAggregate,
        /// A contributor appears twice in the aggregate.
        DuplicateContributor,
        /// An included contributor did not commit in this round.
        NotCommitted,
        /// A reveal (update hash + salt) does not match the contributor's commitment.
        RevealMismatch,
        /// A signature does not verify over the aggregate payload.
        InvalidSignature,
        /// Fewer signers than `max(ceil(2/3 × committed), min_contributors)`.
        QuorumNotMet,
        /// The round's deadline has passed.
        DeadlinePassed,
        /// Too many deadlines already fall in the next blocks.
        TooManyDeadlines,
        /// Moving held funds failed.
        TransferFailed,
        /// An arithmetic overflow in accounting (never expected).
        Overflow,
        /// An equivocation report whose payload does not decode or is not for this job/round/chain.
        InvalidEvidence,
        /// The two payloads of an equivocation report are identical.
        NotEquivocation,
        /// The commit window is open and not every member has committed yet.
        CommitWindowOpen,
        /// This offence (job, round, offender) was already punished.
        DuplicateOffence,
        /// `round_length` is above `MaxRoundLength`.
        RoundTooLong,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_initialize(now: BlockNumberFor<T>) -> Weight {
            let due = Deadlines::<T>::take(now);
            let count = due.len() as u32;
            for (job_id, round) in due {
                Self::expire_round(job_id, round, now);
            }
            T::WeightInfo::on_initialize_deadlines(count)
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Register a training job and escrow `reward_per_round × rounds` from the caller.
        #[pallet::call_index(0)]
        #[pallet::weight(T::WeightInfo::create_job())]
        pub fn create_job(
            origin: OriginFor<T>,
            spec: JobSpecOf<T>,
            reward_per_round: BalanceOf<T>,
            rounds: u32,
        ) -> DispatchResult {
            let sponsor = ensure_signed(origin)?;
            Self::validate_spec(&spec)?;
            ensure!(rounds > 0, Error::<T>::ZeroRounds);
            ensure!(rounds <= T::MaxRounds::get(), Error::<T>::TooManyRounds);
            ensure!(!reward_per_round.is_zero(), Error::<T>::ZeroReward);
            let escrow = reward_per_round
                .checked_mul(&BalanceOf::<T>::from(rounds))
                .ok_or(Error::<T>::RewardOverflow)?;
            let job_id = NextJobId::<T>::get();
            let next_id = job_id.checked_add(1).ok_or(Error::<T>::Overflow)?;

            T::Currency::hold(&HoldReason::JobEscrow.into(), &sponsor, escrow)
                .map_err(|_| Error::<T>::InsufficientBalance)?;

            let now = frame_system::Pallet::<T>::block_number();
            let job = Job {
                sponsor: sponsor.clone(),
                latest_model: spec.model_commitment,
                spec,
                reward_per_round,
                rounds,
                status: JobStatus::WaitingForContributors,
                created_at: now,
                contributors: 0,
                round: RoundState::default(),
                finalized_rounds: 0,
                consecutive_failures: 0,
                escrow: EscrowLedger {
                    deposited: escrow,
                    held: escrow,
                    ..Default::default()
                },
                bonds: BondLedger::default(),
            };
            Jobs::<T>::insert(job_id, job);
            NextJobId::<T>::put(next_id);
            Self::deposit_event(Event::JobCreated {
                job_id,
                sponsor,
                reward_per_round,
                rounds,
                escrow,
            });
            Ok(())
        }

        /// End a job early. Only the sponsor; the unspent escrow is released to it.
        /// Contributors keep their bonds on hold until they call `leave_job`.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::cancel_job())]
        pub fn cancel_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            ensure!(job.sponsor == who, Error::<T>::NotSponsor);
            ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
            let refunded = Self::refund_escrow(job_id, &mut job)?;
            job.status = JobStatus::Cancelled;
            Jobs::<T>::insert(job_id, job);
            Self::deposit_event(Event::JobCancelled { job_id, refunded });
            Ok(())
        }

        /// Join a job as a contributor, holding its bond. The first round starts when
        /// `min_contributors` have joined.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::join_job())]
        pub fn join_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            ensure!(!job.status.is_ended(), Error::<T>::JobEnded);
            ensure!(
                !Contributors::<T>::contains_key(job_id, &who),
                Error::<T>::AlreadyJoined
            );
            ensure!(
                job.contributors < job.spec.max_contributors,
                Error::<T>::JobFull
            );
            let bond = job.spec.contributor_bond;
            if !bond.is_zero() {
                T::Currency::hold(&HoldReason::ContributorBond.into(), &who, bond)
                    .map_err(|_| Error::<T>::InsufficientBalance)?;
            }
            let now = frame_system::Pallet::<T>::block_number();
            job.contributors = job
                .contributors
                .checked_add(1)
                .ok_or(Error::<T>::Overflow)?;
            job.bonds.deposited = job
                .bonds
                .deposited
                .checked_add(&bond)
                .ok_or(Error::<T>::Overflow)?;
            job.bonds.held = job
                .bonds
                .held
                .checked_add(&bond)
                .ok_or(Error::<T>::Overflow)?;
            Contributors::<T>::insert(
                job_id,
                &who,
                Contributor {
                    bond,
                    joined_at: now,
                    earned: Zero::zero(),
                    rounds_included: 0,
                },
            );
            Self::deposit_event(Event::ContributorJoined { job_id, who, bond });
            if job.status == JobStatus::WaitingForContributors
                && job.contributors >= job.spec.min_contributors
            {
                job.status = JobStatus::Running;
                Self::start_round(job_id, &mut job, 0, now)?;
            }
            Jobs::<T>::insert(job_id, job);
            Ok(())
        }

        /// Leave a job and release the bond. Not allowed while the caller's commitment is in
        /// the open round.
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::leave_job())]
        pub fn leave_job(origin: OriginFor<T>, job_id: JobId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            let member = Contributors::<T>::get(job_id, &who).ok_or(Error::<T>::NotContributor)?;
            if job.status == JobStatus::Running {
                if let Some(c) = Commitments::<T>::get(job_id, &who) {
                    ensure!(c.round != job.round.index, Error::<T>::InOpenRound);
                }
            }
            let released = T::Currency::release(
                &HoldReason::ContributorBond.into(),
                &who,
                member.bond,
                Precision::Exact,
            )
            .map_err(|_| Error::<T>::TransferFailed)?;
            job.bonds.held = job
                .bonds
                .held
                .checked_sub(&released)
                .ok_or(Error::<T>::Overflow)?;
            job.bonds.released = job
                .bonds
                .released
                .checked_add(&released)
                .ok_or(Error::<T>::Overflow)?;
            job.contributors = job.contributors.saturating_sub(1);
            Self::remove_member(job_id, &who);
            Jobs::<T>::insert(job_id, job);
            Self::deposit_event(Event::ContributorLeft {
                job_id,
                who,
                bond: released,
            });
            Ok(())
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
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            ensure!(job.status == JobStatus::Running, Error::<T>::JobNotRunning);
            ensure!(
                Contributors::<T>::contains_key(job_id, &who),
                Error::<T>::NotContributor
            );
            ensure!(round == job.round.index, Error::<T>::WrongRound);
            let now = frame_system::Pallet::<T>::block_number();
            ensure!(now < job.round.commit_until, Error::<T>::CommitWindowClosed);
            ensure!(
                samples > 0 && samples <= job.spec.max_samples,
                Error::<T>::InvalidSamples
            );
            let previous = Commitments::<T>::get(job_id, &who);
            if let Some(prev) = &previous {
                ensure!(prev.round != round, Error::<T>::AlreadyCommitted);
            }
            if let Some((owner_round, _)) = CommitmentOwners::<T>::get(job_id, commitment) {
                ensure!(owner_round != round, Error::<T>::CommitmentReused);
            }
            if let Some(prev) = previous {
                CommitmentOwners::<T>::remove(job_id, prev.commitment);
            }
            job.round.committed = job
                .round
                .committed
                .checked_add(1)
                .ok_or(Error::<T>::Overflow)?;
            Commitments::<T>::insert(
                job_id,
                &who,
                CommitRecord {
                    round,
                    commitment,
                    samples,
                },
            );
            CommitmentOwners::<T>::insert(job_id, commitment, (round, who.clone()));
            Jobs::<T>::insert(job_id, job);
            Self::deposit_event(Event::UpdateCommitted {
                job_id,
                round,
                who,
                commitment,
                samples,
            });
            Ok(())
        }

        /// Finalise a round with the quorum-signed aggregate; pays the included contributors
        /// and the submitter out of the escrow.
        #[pallet::call_index(5)]
        #[pallet::weight(T::WeightInfo::submit_aggregate(aggregate.contributions.len() as u32))]
        pub fn submit_aggregate(
            origin: OriginFor<T>,
            job_id: JobId,
            round: RoundIndex,
            aggregate: AggregateOf<T>,
        ) -> DispatchResult {
            let submitter = ensure_signed(origin)?;
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            ensure!(job.status == JobStatus::Running, Error::<T>::JobNotRunning);
            ensure!(round == job.round.index, Error::<T>::WrongRound);
            let now = frame_system::Pallet::<T>::block_number();
            ensure!(now < job.round.deadline, Error::<T>::DeadlinePassed);
            ensure!(
                Contributors::<T>::contains_key(job_id, &submitter),
                Error::<T>::NotContributor
            );
            ensure!(
                !aggregate.contributions.is_empty(),
                Error::<T>::EmptyAggregate
            );

            // Reveals: each included contributor committed in this round and its reveal opens
            // its commitment.
            let mut shares: Vec<IncludedShare<T::AccountId>> =
                Vec::with_capacity(aggregate.contributions.len());
            for (i, c) in aggregate.contributions.iter().enumerate() {
                ensure!(
                    !aggregate
                        .contributions
                        .iter()
                        .take(i)
                        .any(|p| p.who == c.who),
                    Error::<T>::DuplicateContributor
                );
                let record = Commitments::<T>::get(job_id, &c.who)
                    .filter(|r| r.round == round)
                    .ok_or(Error::<T>::NotCommitted)?;
                let expected = trainchain_primitives::update_commitment(
                    job_id,
                    round,
                    &c.who,
                    &c.update_hash.0,
                    &c.salt.0,
                );
                ensure!(record.commitment.0 == expected, Error::<T>::RevealMismatch);
                shares.push(IncludedShare {
                    who: c.who.clone(),
                    samples: record.samples,
                });
            }

            // Quorum.
            let included = aggregate.contributions.len() as u32;
            ensure!(included >= Self::quorum(&job), Error::<T>::QuorumNotMet);

            // Signatures over the domain-separated payload.
            let payload = AggregatePayload::new(
                Self::genesis_hash(),
                job_id,
                round,
                aggregate.model_hash.0,
                shares.clone(),
            )
            .signing_bytes();
            for c in aggregate.contributions.iter() {
                ensure!(
                    c.signature.verify(payload.as_slice(), &c.who),
                    Error::<T>::InvalidSignature
                );
            }

            // Pay.
            let reason: T::RuntimeHoldReason = HoldReason::JobEscrow.into();
            let reward = job.reward_per_round.min(job.escrow.held);
            let submitter_reward = T::SubmitterShare::get().mul_floor(reward);
            let distributable = reward.saturating_sub(submitter_reward);
            let total_samples: u128 = shares
                .iter()
                .fold(0u128, |acc, s| acc.saturating_add(u128::from(s.samples)));
            let mut payouts: BoundedVec<Payout<T::AccountId, BalanceOf<T>>, T::MaxContributors> =
                BoundedVec::new();
            let mut paid = BalanceOf::<T>::zero();
            for share in shares.iter() {
                let amount = Self::pro_rata(distributable, share.samples, total_samples);
                if !amount.is_zero() {
                    T::Currency::transfer_on_hold(
                        &reason,
                        &job.sponsor,
                        &share.who,
                        amount,
                        Precision::Exact,
                        Restriction::Free,
                        Fortitude::Polite,
                    )
                    .map_err(|_| Error::<T>::TransferFailed)?;
                }
                paid = paid.checked_add(&amount).ok_or(Error::<T>::Overflow)?;
                Contributors::<T>::mutate(job_id, &share.who, |m| {
                    if let Some(m) = m {
                        m.earned = m.earned.saturating_add(amount);
                        m.rounds_included = m.rounds_included.saturating_add(1);
                    }
                });
                payouts
                    .try_push(Payout {
                        who: share.who.clone(),
                        samples: share.samples,
                        amount,
                    })
                    .map_err(|_| Error::<T>::TooManyContributors)?;
                Self::deposit_event(Event::ContributorPaid {
                    job_id,
                    round,
                    who: share.who.clone(),
                    amount,
                });
            }
            if !submitter_reward.is_zero() {
                T::Currency::transfer_on_hold(
                    &reason,
                    &job.sponsor,
                    &submitter,
                    submitter_reward,
                    Precision::Exact,
                    Restriction::Free,
                    Fortitude::Polite,
                )
                .map_err(|_| Error::<T>::TransferFailed)?;
                Contributors::<T>::mutate(job_id, &submitter, |m| {
                    if let Some(m) = m {
                        m.earned = m.earned.saturating_add(submitter_reward);
                    }
                });
            }
            let spent = paid
                .checked_add(&submitter_reward)
                .ok_or(Error::<T>::Overflow)?;
            job.escrow.held = job
                .escrow
                .held
                .checked_sub(&spent)
                .ok_or(Error::<T>::Overflow)?;
            job.escrow.paid_contributors = job
                .escrow
                .paid_contributors
                .checked_add(&paid)
                .ok_or(Error::<T>::Overflow)?;
            job.escrow.paid_submitters = job
                .escrow
                .paid_submitters
                .checked_add(&submitter_reward)
                .ok_or(Error::<T>::Overflow)?;

            Self::record_result(
                job_id,
                round,
                RoundResult {
                    outcome: RoundOutcome::Finalized,
                    closed_at: now,
                    committed: job.round.committed,
                    model_hash: Some(aggregate.model_hash),
                    metric: aggregate.metric,
                    submitter: Some(submitter.clone()),
                    submitter_reward,
                    payouts,
                },
            );
            job.finalized_rounds = job.finalized_rounds.saturating_add(1);
            job.consecutive_failures = 0;
            job.latest_model = aggregate.model_hash;
            Self::deposit_event(Event::RoundFinalized {
                job_id,
                round,
                model_hash: aggregate.model_hash,
                included,
                paid,
                submitter,
                submitter_reward,
            });

            if job.finalized_rounds >= job.rounds {
                let refunded = Self::refund_escrow(job_id, &mut job)?;
                job.status = JobStatus::Completed;
                Self::deposit_event(Event::JobCompleted { job_id, refunded });
            } else {
                let next = round.checked_add(1).ok_or(Error::<T>::Overflow)?;
                Self::start_round(job_id, &mut job, next, now)?;
            }
            Jobs::<T>::insert(job_id, job);
            Ok(())
        }

        /// Prove that `offender` signed two different aggregate payloads for the same job and
        /// round. Its bond is slashed: `ReporterShare` to the caller, the rest burned, and it
        /// is removed from the job.
        #[pallet::call_index(6)]
        #[pallet::weight(T::WeightInfo::report_equivocation())]
        pub fn report_equivocation(
            origin: OriginFor<T>,
            job_id: JobId,
            round: RoundIndex,
            offender: T::AccountId,
            payload_a: BoundedVec<u8, MaxPayloadLen<T>>,
            signature_a: T::Signature,
            payload_b: BoundedVec<u8, MaxPayloadLen<T>>,
            signature_b: T::Signature,
        ) -> DispatchResult {
            let reporter = ensure_signed(origin)?;
            let mut job = Jobs::<T>::get(job_id).ok_or(Error::<T>::UnknownJob)?;
            let member =
                Contributors::<T>::get(job_id, &offender).ok_or(Error::<T>::NotContributor)?;
            ensure!(payload_a != payload_b, Error::<T>::NotEquivocation);
            Self::check_evidence(job_id, round, &payload_a)?;
            Self::check_evidence(job_id, round, &payload_b)?;
            ensure!(
                signature_a.verify(payload_a.as_slice(), &offender)
                    && signature_b.verify(payload_b.as_slice(), &offender),
                Error::<T>::InvalidSignature
            );

            let reason: T::RuntimeHoldReason = HoldReason::ContributorBond.into();
            let reporter_reward = T::ReporterShare::get().mul_floor(member.bond);
            let rewarded = if reporter_reward.is_zero() || reporter == offender {
                Zero::zero()
            } else {
                T::Currency::transfer_on_hold(
                    &reason,
                    &offender,
                    &reporter,
                    reporter_reward,
                    Precision::BestEffort,
                    Restriction::Free,
                    Fortitude::Force,
                )
                .map_err(|_| Error::<T>::TransferFailed)?
            };
            let rest = member.bond.saturating_sub(rewarded);
            let burned = T::Currency::burn_held(
                &reason,
                &offender,
                rest,
                Precision::BestEffort,
                Fortitude::Force,
            )
            .map_err(|_| Error::<T>::TransferFailed)?;
            let slashed = rewarded.saturating_add(burned);
            job.bonds.held = job
                .bonds
                .held
                .checked_sub(&member.bond)
                .ok_or(Error::<T>::Overflow)?;
            job.bonds.slashed = job
                .bonds
                .slashed
                .checked_add(&slashed)
                .ok_or(Error::<T>::Overflow)?;
            // Anything the hold could not cover (never expected) is counted as released so the
            // ledger still balances.
            let uncovered = member.bond.saturating_sub(slashed);
            job.bonds.released = job
                .bonds
                .released
                .checked_add(&uncovered)
                .ok_or(Error::<T>::Overflow)?;
            job.contributors = job.contributors.saturating_sub(1);
            Self::remove_member(job_id, &offender);
            Jobs::<T>::insert(job_id, job);
            Self::deposit_event(Event::EquivocationSlashed {
                job_id,
                round,
                offender,
                reporter,
                reporter_reward: rewarded,
                burned,
            });
            Ok(())
        }
    }

    /// Upper bound of an encoded aggregate payload: header + `MaxContributors` shares.
    pub struct MaxPayloadLen<T>(core::marker::PhantomData<T>);
    impl<T: Config> Get<u32> for MaxPayloadLen<T> {
        fn get() -> u32 {
            // domain 23 + genesis 32 + job 8 + round 4 + model 32 + compact length 5, then per
            // share an account and a u64.
            let per_share = T::AccountId::max_encoded_len().saturating_add(8) as u32;
            104u32.saturating_add(T::MaxContributors::get().saturating_mul(per_share))
        }
    }

    impl<T: Config> Pallet<T> {
        fn validate_spec(spec: &JobSpecOf<T>) -> DispatchResult {
            ensure!(spec.min_contributors > 0, Error::<T>::ZeroMinContributors);
            ensure!(
                spec.min_contributors <= spec.max_contributors,
                Error::<T>::MinAboveMax
            );
            ensure!(
                spec.max_contributors <= T::MaxContributors::get(),
                Error::<T>::TooManyContributors
            );
            ensure!(!spec.round_length.is_zero(), Error::<T>::ZeroRoundLength);
            ensure!(
                !spec.commit_window.is_zero() && spec.commit_window <= spec.round_length,
                Error::<T>::InvalidCommitWindow
            );
            ensure!(spec.max_samples > 0, Error::<T>::ZeroMaxSamples);
            ensure!(spec.max_failed_rounds > 0, Error::<T>::ZeroMaxFailedRounds);
            Ok(())
        }

        /// Signers an aggregate needs: `max(ceil(2/3 × committed), min_contributors)`.
        pub fn quorum(job: &JobOf<T>) -> u32 {
            let committed = u64::from(job.round.committed);
            let two_thirds = committed.saturating_mul(2).saturating_add(2) / 3;
            (two_thirds as u32).max(job.spec.min_contributors)
        }

        /// Hash of the genesis block, as signed into aggregate payloads.
        pub fn genesis_hash() -> [u8; 32] {
            let hash = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
            let bytes = hash.encode();
            let mut out = [0u8; 32];
            for (o, b) in out.iter_mut().zip(bytes.iter()) {
                *o = *b;
            }
            out
        }

        fn pro_rata(amount: BalanceOf<T>, part: u64, total: u128) -> BalanceOf<T> {
            if total == 0 {
                return Zero::zero();
            }
            let amount: u128 = amount.saturated_into();
            let share = sp_runtime::helpers_128bit::multiply_by_rational_with_rounding(
                amount,
                u128::from(part),
                total,
                sp_runtime::Rounding::Down,
            )
            .unwrap_or(0);
            share.saturated_into()
        }

        fn start_round(
            job_id: JobId,
            job: &mut JobOf<T>,
            index: RoundIndex,
            now: BlockNumberFor<T>,
        ) -> DispatchResult {
            let wanted = now.saturating_add(job.spec.round_length);
            let deadline = Self::schedule_deadline(job_id, index, wanted)?;
            let commit_until = now.saturating_add(job.spec.commit_window).min(deadline);
            job.round = RoundState {
                index,
                started_at: now,
                commit_until,
                deadline,
                committed: 0,
            };
            Self::deposit_event(Event::RoundStarted {
                job_id,
                round: index,
                commit_until,
                deadline,
            });
            Ok(())
        }

        /// Queue `(job, round)` for its deadline block, spilling to the next blocks if full.
        fn schedule_deadline(
            job_id: JobId,
            round: RoundIndex,
            wanted: BlockNumberFor<T>,
        ) -> Result<BlockNumberFor<T>, DispatchError> {
            let mut at = wanted;
            for _ in 0..DEADLINE_SPILL_BLOCKS {
                let pushed = Deadlines::<T>::mutate(at, |q| q.try_push((job_id, round)).is_ok());
                if pushed {
                    return Ok(at);
                }
                at = at.saturating_add(One::one());
            }
            Err(Error::<T>::TooManyDeadlines.into())
        }

        /// Deadline of `(job, round)` reached: fail the round if it is still open.
        fn expire_round(job_id: JobId, round: RoundIndex, now: BlockNumberFor<T>) {
            let Some(mut job) = Jobs::<T>::get(job_id) else {
                return;
            };
            if job.status != JobStatus::Running || job.round.index != round {
                return;
            }
            job.consecutive_failures = job.consecutive_failures.saturating_add(1);
            Self::record_result(
                job_id,
                round,
                RoundResult {
                    outcome: RoundOutcome::Failed,
                    closed_at: now,
                    committed: job.round.committed,
                    model_hash: None,
                    metric: None,
                    submitter: None,
                    submitter_reward: Zero::zero(),
                    payouts: BoundedVec::new(),
                },
            );
            Self::deposit_event(Event::RoundFailed {
                job_id,
                round,
                consecutive_failures: job.consecutive_failures,
            });
            let next = round.saturating_add(1);
            let restart = if job.consecutive_failures >= job.spec.max_failed_rounds {
                Err(())
            } else {
                Self::start_round(job_id, &mut job, next, now).map_err(|_| ())
            };
            if restart.is_err() {
                match Self::refund_escrow(job_id, &mut job) {
                    Ok(refunded) => Self::deposit_event(Event::JobFailed { job_id, refunded }),
                    Err(e) => {
                        log::error!(target: LOG_TARGET, "refund of job {job_id} failed: {e:?}")
                    }
                }
                job.status = JobStatus::Failed;
            }
            Jobs::<T>::insert(job_id, job);
        }

        /// Release all unspent escrow to the sponsor and record it.
        fn refund_escrow(
            _job_id: JobId,
            job: &mut JobOf<T>,
        ) -> Result<BalanceOf<T>, DispatchError> {
            let amount = job.escrow.held;
            if amount.is_zero() {
                return Ok(amount);
            }
            let released = T::Currency::release(
                &HoldReason::JobEscrow.into(),
                &job.sponsor,
                amount,
                Precision::Exact,
            )
            .map_err(|_| Error::<T>::TransferFailed)?;
            job.escrow.held = job.escrow.held.saturating_sub(released);
            job.escrow.refunded = job.escrow.refunded.saturating_add(released);
            Ok(released)
        }

        fn record_result(job_id: JobId, round: RoundIndex, result: RoundResultOf<T>) {
            RoundResults::<T>::insert(job_id, round, result);
            if let Some(old) = round.checked_sub(T::HistoryDepth::get()) {
                RoundResults::<T>::remove(job_id, old);
            }
        }

        fn remove_member(job_id: JobId, who: &T::AccountId) {
            Contributors::<T>::remove(job_id, who);
            if let Some(c) = Commitments::<T>::take(job_id, who) {
                CommitmentOwners::<T>::remove(job_id, c.commitment);
            }
        }

        fn check_evidence(job_id: JobId, round: RoundIndex, payload: &[u8]) -> DispatchResult {
            let mut input = payload;
            let decoded =
                <AggregatePayload<T::AccountId> as codec::DecodeAll>::decode_all(&mut input)
                    .map_err(|_| Error::<T>::InvalidEvidence)?;
            ensure!(
                decoded.domain == *trainchain_primitives::AGGREGATE_DOMAIN
                    && decoded.genesis_hash == Self::genesis_hash()
                    && decoded.job_id == job_id
                    && decoded.round == round,
                Error::<T>::InvalidEvidence
            );
            Ok(())
        }

        /// Check the accounting invariants:
        /// * per job: `escrow.deposited == held + paid_contributors + paid_submitters +
        ///   refunded`, `bonds.deposited == held + released + slashed`, `bonds.held` equals the
        ///   bonds of its contributors, `contributors` equals their number, ended jobs hold no
        ///   escrow;
        /// * per account: the balance on hold for `JobEscrow` equals the `escrow.held` of its
        ///   jobs, and for `ContributorBond` the bonds of its memberships.
        pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
            use alloc::collections::btree_map::BTreeMap;
            let mut escrow_by_sponsor: BTreeMap<T::AccountId, u128> = BTreeMap::new();
            let mut bond_by_member: BTreeMap<T::AccountId, u128> = BTreeMap::new();
            for (job_id, job) in Jobs::<T>::iter() {
                let e = &job.escrow;
                let spent = e
                    .held
                    .checked_add(&e.paid_contributors)
                    .and_then(|x| x.checked_add(&e.paid_submitters))
                    .and_then(|x| x.checked_add(&e.refunded))
                    .ok_or("escrow ledger overflows")?;
                ensure!(spent == e.deposited, "escrow ledger does not balance");
                let b = &job.bonds;
                let bonds = b
                    .held
                    .checked_add(&b.released)
                    .and_then(|x| x.checked_add(&b.slashed))
                    .ok_or("bond ledger overflows")?;
                ensure!(bonds == b.deposited, "bond ledger does not balance");
                if job.status.is_ended() {
                    ensure!(e.held.is_zero(), "ended job still holds escrow");
                }
                let mut members = 0u32;
                let mut held = 0u128;
                for (who, m) in Contributors::<T>::iter_prefix(job_id) {
                    members = members.saturating_add(1);
                    let bond: u128 = m.bond.saturated_into();
                    held = held.saturating_add(bond);
                    let entry = bond_by_member.entry(who).or_default();
                    *entry = entry.saturating_add(bond);
                }
                ensure!(members == job.contributors, "contributor count is off");
                ensure!(
                    held == b.held.saturated_into::<u128>(),
                    "job bond total is off"
                );
                let entry = escrow_by_sponsor.entry(job.sponsor.clone()).or_default();
                *entry = entry.saturating_add(e.held.saturated_into());
            }
            let escrow_reason: T::RuntimeHoldReason = HoldReason::JobEscrow.into();
            for (who, expected) in escrow_by_sponsor.iter() {
                let on_hold: u128 =
                    T::Currency::balance_on_hold(&escrow_reason, who).saturated_into();
                ensure!(
                    on_hold == *expected,
                    "escrow on hold differs from the jobs' escrow"
                );
            }
            let bond_reason: T::RuntimeHoldReason = HoldReason::ContributorBond.into();
            for (who, expected) in bond_by_member.iter() {
                let on_hold: u128 =
                    T::Currency::balance_on_hold(&bond_reason, who).saturated_into();
                ensure!(
                    on_hold == *expected,
                    "bond on hold differs from the memberships' bonds"
                );
            }
            Ok(())
        }
    }
}
