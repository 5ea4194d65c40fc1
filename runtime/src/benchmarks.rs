//! Pallets benchmarked in this runtime.

frame_benchmarking::define_benchmarks!(
	[frame_system, SystemBench::<Runtime>]
	[pallet_balances, Balances]
	[pallet_training_rewards, TrainingRewards]
);

pub use super::{Balances, Runtime, TrainingRewards};
