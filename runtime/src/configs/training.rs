//! `pallet-training-rewards` configuration: limits and reward shares.

use frame_support::{parameter_types, traits::ConstU32};
use sp_runtime::{traits::Verify, MultiSignature, Perbill};

use super::super::{Balances, Runtime, RuntimeEvent, RuntimeHoldReason};

parameter_types! {
    /// The aggregate submitter gets 1% of a round's reward for its transaction cost.
    pub const SubmitterShare: Perbill = Perbill::from_percent(1);
    /// Half of a slashed bond goes to the reporter; the rest is burned.
    pub const ReporterShare: Perbill = Perbill::from_percent(50);
}

impl pallet_training_rewards::Config for Runtime {
    type RuntimeEvent = RuntimeEvent;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Currency = Balances;
    type Signature = MultiSignature;
    type Signer = <MultiSignature as Verify>::Signer;
    type MaxMetadataLen = ConstU32<1024>;
    type MaxContributors = ConstU32<128>;
    type MaxRounds = ConstU32<10_000>;
    type MaxDeadlinesPerBlock = ConstU32<32>;
    type HistoryDepth = ConstU32<64>;
    type SubmitterShare = SubmitterShare;
    type ReporterShare = ReporterShare;
    type WeightInfo = pallet_training_rewards::weights::SubstrateWeight<Runtime>;
}
