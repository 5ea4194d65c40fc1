//! Allocator settings for training: keep freed tensor memory in the process.
//!
//! Every training step allocates and frees the same large tensors (activations, gradients,
//! logits). glibc hands blocks above its mmap threshold back to the kernel when they are
//! freed, and trims freed memory at the top of the heap above its trim threshold, so the next
//! step faults the pages back in and the kernel zeroes them again. In a `perf` profile of a
//! transformer step that was about a fifth of the time (page faults, `clear_page`, unmapping).
//! [`tune`] raises both thresholds, so that memory is reused instead: measured on
//! `gpt:256-64-2-4-64` at batch 16 on one thread (`benches/train_step.rs`), 35–37 ms a step
//! before and 23.4 ms after. The cost is that the process keeps its peak heap.
//!
//! The binary calls it first thing, and so do the benchmarks; elsewhere it does nothing.

/// Blocks up to this size come from the heap, not from their own `mmap`.
pub const MMAP_THRESHOLD: i32 = 64 << 20;

/// Freed memory at the heap's top is returned to the kernel only above this.
pub const TRIM_THRESHOLD: i32 = 256 << 20;

/// Apply the settings (glibc on Linux; a no-op elsewhere). Call before starting threads.
pub fn tune() {
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	// SAFETY: `mallopt` only changes glibc's allocator parameters; both are valid parameter
	// numbers with in-range values, and glibc serialises the change with its own lock.
	unsafe {
		libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
		libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
	}
}
