//! Mock runtime for the pallet's unit tests: real sr25519 keys and `Sr25519Signature`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::arithmetic_side_effects)]

use crate as pallet_training_rewards;
use frame_support::{
	derive_impl, parameter_types,
	traits::{ConstU32, ConstU64, Hooks},
};
use sp_core::{sr25519, Pair};
use sp_runtime::{
	traits::{IdentifyAccount, IdentityLookup},
	AccountId32, BuildStorage, MultiSigner, Perbill,
};

pub type AccountId = AccountId32;
pub type Balance = u128;
type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		TrainingRewards: pallet_training_rewards,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountId = AccountId;
	type Lookup = IdentityLookup<AccountId>;
	type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type ExistentialDeposit = ExistentialDeposit;
	type RuntimeHoldReason = RuntimeHoldReason;
}

parameter_types! {
	pub static ExistentialDeposit: Balance = 1;
	pub static JobDeposit: Balance = 7;
	pub const SubmitterShare: Perbill = Perbill::from_percent(2);
	pub const ReporterShare: Perbill = Perbill::from_percent(50);
}

impl pallet_training_rewards::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Currency = Balances;
	type Signature = crate::Sr25519Signature;
	type Signer = MultiSigner;
	type MaxMetadataLen = ConstU32<256>;
	type MaxContributors = ConstU32<64>;
	type MaxRounds = ConstU32<1000>;
	type MaxRoundLength = ConstU64<100>;
	type MaxFailedRounds = ConstU32<10>;
	type MaxDeadlinesPerBlock = ConstU32<4>;
	type JobDeposit = JobDeposit;
	type UnbondingPeriod = ConstU64<200>;
	type LeaveGrace = ConstU64<2>;
	type HistoryDepth = ConstU32<8>;
	type SubmitterShare = SubmitterShare;
	type ReporterShare = ReporterShare;
	type MaxSettlementsPerBlock = ConstU32<2>;
	type MaxVerifiers = ConstU32<32>;
	type MaxCommittee = ConstU32<15>;
	type ScoreTolerance = ConstU32<1000>;
	type WeightInfo = ();
}

/// Starting balance of every test account.
pub const ENDOWMENT: Balance = 1_000_000;

/// The sr25519 key of test account `n`, from the seed `[n; 32]` (no mnemonic stretching,
/// so tests stay fast).
pub fn pair(n: u8) -> sr25519::Pair {
	sr25519::Pair::from_seed(&[n; 32])
}

/// The account of test key `n`.
pub fn account(n: u8) -> AccountId {
	let signer: MultiSigner = pair(n).public().into();
	signer.into_account()
}

/// Sign `bytes` with test key `n`.
pub fn sign(n: u8, bytes: &[u8]) -> crate::Sr25519Signature {
	crate::Sr25519Signature(pair(n).sign(bytes))
}

/// Accounts 0..20 are endowed with `ENDOWMENT`; account 99 has 5 units.
pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	let mut balances: Vec<(AccountId, Balance)> =
		(0..20u8).map(|n| (account(n), ENDOWMENT)).collect();
	balances.push((account(99), 5));
	pallet_balances::GenesisConfig::<Test> { balances, ..Default::default() }
		.assimilate_storage(&mut t)
		.unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.register_extension(sp_keystore::KeystoreExt::new(
		sp_keystore::testing::MemoryKeystore::new(),
	));
	ext.execute_with(|| System::set_block_number(1));
	ext
}

/// Run a test, then check the pallet's invariants.
pub fn test(f: impl FnOnce()) {
	new_test_ext().execute_with(|| {
		f();
		TrainingRewards::do_try_state().expect("invariants hold after the test");
	});
}

/// Move to block `n`, running `on_initialize` of each block on the way.
pub fn run_to_block(n: u64) {
	while System::block_number() < n {
		let next = System::block_number() + 1;
		System::set_block_number(next);
		TrainingRewards::on_initialize(next);
	}
}
