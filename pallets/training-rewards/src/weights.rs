//! Weights for `pallet-training-rewards`.
//!
//! PLACEHOLDER until generated: regenerate with `scripts/bench-pallet.sh`.
#![allow(unused_parens, unused_imports, missing_docs)]

use core::marker::PhantomData;
use frame_support::{
    traits::Get,
    weights::{constants::RocksDbWeight, Weight},
};

/// Weight functions needed by `pallet-training-rewards`.
pub trait WeightInfo {
    fn create_job() -> Weight;
    fn cancel_job() -> Weight;
    fn join_job() -> Weight;
    fn leave_job() -> Weight;
    fn commit_update() -> Weight;
    fn submit_aggregate(s: u32) -> Weight;
    fn report_equivocation() -> Weight;
    fn on_initialize_deadlines(d: u32) -> Weight;
}

/// Weights measured on the reference machine, for a runtime with `T::DbWeight`.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
    fn create_job() -> Weight {
        Weight::from_parts(60_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(3_u64))
            .saturating_add(T::DbWeight::get().writes(3_u64))
    }
    fn cancel_job() -> Weight {
        Weight::from_parts(50_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(2_u64))
            .saturating_add(T::DbWeight::get().writes(2_u64))
    }
    fn join_job() -> Weight {
        Weight::from_parts(70_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(5_u64))
            .saturating_add(T::DbWeight::get().writes(5_u64))
    }
    fn leave_job() -> Weight {
        Weight::from_parts(60_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(5_u64))
            .saturating_add(T::DbWeight::get().writes(5_u64))
    }
    fn commit_update() -> Weight {
        Weight::from_parts(40_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(4_u64))
            .saturating_add(T::DbWeight::get().writes(4_u64))
    }
    fn submit_aggregate(s: u32) -> Weight {
        Weight::from_parts(100_000_000, 3_600)
            .saturating_add(Weight::from_parts(120_000_000, 2_600).saturating_mul(s.into()))
            .saturating_add(T::DbWeight::get().reads(6_u64))
            .saturating_add(T::DbWeight::get().reads((3_u64).saturating_mul(s.into())))
            .saturating_add(T::DbWeight::get().writes(6_u64))
            .saturating_add(T::DbWeight::get().writes((2_u64).saturating_mul(s.into())))
    }
    fn report_equivocation() -> Weight {
        Weight::from_parts(300_000_000, 3_600)
            .saturating_add(T::DbWeight::get().reads(6_u64))
            .saturating_add(T::DbWeight::get().writes(6_u64))
    }
    fn on_initialize_deadlines(d: u32) -> Weight {
        Weight::from_parts(5_000_000, 1_500)
            .saturating_add(Weight::from_parts(40_000_000, 3_600).saturating_mul(d.into()))
            .saturating_add(T::DbWeight::get().reads(1_u64))
            .saturating_add(T::DbWeight::get().reads((2_u64).saturating_mul(d.into())))
            .saturating_add(T::DbWeight::get().writes(1_u64))
            .saturating_add(T::DbWeight::get().writes((4_u64).saturating_mul(d.into())))
    }
}

impl WeightInfo for () {
    fn create_job() -> Weight {
        SubstrateWeight::<()>::placeholder(3, 3)
    }
    fn cancel_job() -> Weight {
        SubstrateWeight::<()>::placeholder(2, 2)
    }
    fn join_job() -> Weight {
        SubstrateWeight::<()>::placeholder(5, 5)
    }
    fn leave_job() -> Weight {
        SubstrateWeight::<()>::placeholder(5, 5)
    }
    fn commit_update() -> Weight {
        SubstrateWeight::<()>::placeholder(4, 4)
    }
    fn submit_aggregate(s: u32) -> Weight {
        SubstrateWeight::<()>::placeholder(
            6u64.saturating_add(3u64.saturating_mul(s.into())),
            6u64.saturating_add(2u64.saturating_mul(s.into())),
        )
    }
    fn report_equivocation() -> Weight {
        SubstrateWeight::<()>::placeholder(6, 6)
    }
    fn on_initialize_deadlines(d: u32) -> Weight {
        SubstrateWeight::<()>::placeholder(
            1u64.saturating_add(2u64.saturating_mul(d.into())),
            1u64.saturating_add(4u64.saturating_mul(d.into())),
        )
    }
}

impl SubstrateWeight<()> {
    fn placeholder(r: u64, w: u64) -> Weight {
        Weight::from_parts(50_000_000, 3_600)
            .saturating_add(RocksDbWeight::get().reads(r))
            .saturating_add(RocksDbWeight::get().writes(w))
    }
}
