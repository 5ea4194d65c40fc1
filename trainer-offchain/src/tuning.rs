//! Process settings for training, applied first thing by the binary and the benchmarks
//! ([`apply`]; elsewhere nothing changes).
//!
//! **The allocator keeps freed tensor memory.**
//! Every training step allocates and frees the same large tensors (activations, gradients,
//! logits). glibc hands blocks above its mmap threshold back to the kernel when they are
//! freed, and trims freed memory at the top of the heap above its trim threshold, so the next
//! step faults the pages back in and the kernel zeroes them again. In a `perf` profile of a
//! transformer step that was about a fifth of the time (page faults, `clear_page`, unmapping).
//! [`apply`] raises both thresholds, so that memory is reused instead: measured on
//! `gpt:256-64-2-4-64` at batch 16 on one thread (`benches/train_step.rs`), 35–37 ms a step
//! before and 23.4 ms after. The cost is that the process keeps its peak heap.
//!
//! **How long candle's idle workers spin depends on who else needs the cores.** The fused
//! kernels share rows and products out on candle's pool ([`crate::par`]), whose idle workers
//! spin for a while (`CANDLE_BARRIER_POOL_SPIN_LIMIT`, 25,000 by default) before they sleep.
//! [`apply`] sets the limit (unless the variable is already set) for one of two [`Cores`]:
//! - [`Cores::Shared`] (`peer`, `run`, `verify`, and every process that runs beside others,
//!   as the tests' and benchmarks' peers do): 0, park at once. A spinning worker takes the
//!   core another process needs: two 2-thread processes training `gpt:256-64-2-4-64` at
//!   batch 16 on 2 cores took 35–38 ms a step each with 0, 55–56 ms with 3,000, 100–104 ms
//!   with 10,000 and about 200 ms with 25,000 (session 13, two runs each).
//! - [`Cores::Dedicated`] (`train`, and `benches/train_step.rs`, which times its step): a
//!   worker spins [`DEDICATED_SPIN_LIMIT`] times before it parks, so that the next op of a
//!   step finds it awake instead of waking it with a syscall and waiting for the scheduler.
//!   The same model alone on 2 threads: 13.6–14.4 ms a step (p10) with 0, 12.2–13.0 ms with
//!   3,000 or 10,000; `mlp:784-256-10` at batch 64, 0.66 ms with 0 and 0.61 ms with 10,000
//!   (three interleaved runs each). PyTorch's OpenMP workers spin by default as well.
//!
//! **Commands that train off the main thread share one arena** ([`one_arena`], called by `peer`
//! and `run` before they start their runtime). glibc gives other threads arenas of their own,
//! whose heaps are at most 64 MiB and are unmapped as soon as they are empty, whatever the
//! thresholds above: a worker that trains a model of 10M parameters got fresh, zeroed pages
//! for its gradients on every step (in a `perf` profile of four `peer` processes, the
//! training thread took 58% of all page faults). With one arena the thresholds hold there too:
//! `net_bench allreduce 4 10000000 chunked tcp`, three alternating runs each way, rounds took
//! 4.8–5.1 s with `MALLOC_ARENA_MAX=16` and 3.4–3.5 s with one arena (the exchange itself
//! 557–641 against 511–622 ms). `train` and the benchmarks train on
//! the main thread and keep glibc's default; there `MALLOC_ARENA_MAX=1` moved `bench-train`'s
//! rows by less than their noise.

/// Blocks up to this size come from the heap, not from their own `mmap`.
pub const MMAP_THRESHOLD: i32 = 64 << 20;

/// Freed memory at the heap's top is returned to the kernel only above this.
pub const TRIM_THRESHOLD: i32 = 256 << 20;

/// Name of candle's variable for its pool's spin limit.
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Spins of an idle candle worker before it parks, on [`Cores::Dedicated`].
pub const DEDICATED_SPIN_LIMIT: u32 = 10_000;

/// Whether the process has the machine's cores to itself (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cores {
	/// Other processes, or this one's network task, need the cores too: workers park at once.
	Shared,
	/// A foreground training job: workers spin a little before they park.
	Dedicated,
}

impl Cores {
	/// candle's spin limit for these cores.
	pub fn spin_limit(self) -> u32 {
		match self {
			Self::Shared => 0,
			Self::Dedicated => DEDICATED_SPIN_LIMIT,
		}
	}
}

/// Apply the settings. Call before starting threads and before any candle op: candle reads
/// the spin limit when it first uses its pool.
pub fn apply(cores: Cores) {
	if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
		std::env::set_var(SPIN_LIMIT_VAR, cores.spin_limit().to_string());
	}
	tune_allocator();
}

/// The allocator thresholds (glibc on Linux; a no-op elsewhere).
fn tune_allocator() {
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	// SAFETY: `mallopt` only changes glibc's allocator parameters; both are valid parameter
	// numbers with in-range values, and glibc serialises the change with its own lock.
	unsafe {
		libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
		libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
	}
}

/// Let every thread allocate from the main arena (glibc on Linux; a no-op elsewhere), unless
/// `MALLOC_ARENA_MAX` is set (glibc applies that itself). Call before starting threads.
pub fn one_arena() {
	if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
		return;
	}
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	// SAFETY: as in `tune_allocator`: a valid parameter number with an in-range value.
	unsafe {
		libc::mallopt(libc::M_ARENA_MAX, 1);
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn shared_cores_park_at_once_and_a_dedicated_job_spins_unless_told_otherwise() {
		assert_eq!(Cores::Shared.spin_limit(), 0);
		assert!(Cores::Dedicated.spin_limit() > 0);
		// The only test that touches the variable; an explicit value wins over both.
		std::env::set_var(SPIN_LIMIT_VAR, "7");
		apply(Cores::Dedicated);
		apply(Cores::Shared);
		assert_eq!(std::env::var(SPIN_LIMIT_VAR).as_deref(), Ok("7"));
	}
}
