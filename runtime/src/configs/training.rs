//! `pallet-training-rewards` configuration: limits and reward shares.

use frame_support::{parameter_types, traits::ConstU32};
use sp_runtime::Perbill;

use super::super::{
	Balance, Balances, BlockNumber, Runtime, RuntimeEvent, RuntimeHoldReason, DAYS, MINUTES, UNIT,
};

parameter_types! {
	/// The aggregate submitter gets 1% of a round's reward for its transaction cost.
	pub const SubmitterShare: Perbill = Perbill::from_percent(1);
	/// Half of a slashed bond goes to the reporter; the rest is burned.
	pub const ReporterShare: Perbill = Perbill::from_percent(50);
	/// A round lasts at most a day, so one round never locks a bond for longer.
	pub const MaxRoundLength: BlockNumber = DAYS;
	/// Held from the sponsor while a job is live, returned when it ends.
	pub const JobDeposit: Balance = UNIT;
	/// A leaving contributor's bond stays slashable for two days (longer than any round).
	pub const UnbondingPeriod: BlockNumber = 2 * DAYS;
	/// A contributor that committed may leave half a minute after the commit window.
	pub const LeaveGrace: BlockNumber = MINUTES / 2;
}

impl pallet_training_rewards::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Currency = Balances;
	type Signature = pallet_training_rewards::Sr25519Signature;
	type Signer = sp_runtime::MultiSigner;
	type MaxMetadataLen = ConstU32<1024>;
	type MaxContributors = ConstU32<128>;
	type MaxRounds = ConstU32<10_000>;
	type MaxRoundLength = MaxRoundLength;
	type MaxFailedRounds = ConstU32<100>;
	type MaxDeadlinesPerBlock = ConstU32<32>;
	type JobDeposit = JobDeposit;
	type UnbondingPeriod = UnbondingPeriod;
	type LeaveGrace = LeaveGrace;
	type HistoryDepth = ConstU32<64>;
	type SubmitterShare = SubmitterShare;
	type ReporterShare = ReporterShare;
	// Each advanced settlement may pay a whole round (128 contributors, 15 verifiers).
	type MaxSettlementsPerBlock = ConstU32<4>;
	type MaxVerifiers = ConstU32<64>;
	type MaxCommittee = ConstU32<15>;
	// 0.001 nats of validation loss per contributor.
	type ScoreTolerance = ConstU32<1000>;
	type WeightInfo = pallet_training_rewards::weights::SubstrateWeight<Runtime>;
}
