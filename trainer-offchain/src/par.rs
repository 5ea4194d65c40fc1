//! Work shared out on candle's worker pool: the row-parallel products ([`crate::matmul`]) and
//! the fused kernels' loops over rows ([`crate::ops`], [`crate::gpt_ops`]).
//!
//! The pool is the one candle's own element-wise kernels use (`candle_core::utils::
//! barrier_pool`, `CANDLE_NUM_THREADS` or `RAYON_NUM_THREADS` threads, the caller included):
//! its workers spin a little before they sleep, so work handed over right after another op
//! finds them awake. With rayon's pool, or a thread per block, the hand-off cost more than the
//! second thread saved on 2 cores.
//!
//! Results never depend on the thread count: independent rows give the same values wherever
//! they run, and sums across rows are formed over groups of [`GROUP_ROWS`] rows, a fixed
//! split, then added in group order ([`row_groups`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use candle_core::{Error, Result};

/// Below this many values a loop over rows stays on the calling thread.
pub const PAR_MIN_VALUES: usize = 1 << 15;

/// Rows per group of a sum across rows (see the module docs).
pub const GROUP_ROWS: usize = 64;

/// Run `work(0..blocks)` on the pool, the calling thread taking part; each participant takes
/// the next block until none is left. The first error is returned.
pub fn on_pool<F>(blocks: usize, work: F) -> Result<()>
where
	F: Fn(usize) -> Result<()> + Sync,
{
	let next = AtomicUsize::new(0);
	let first_error: Mutex<Option<Error>> = Mutex::new(None);
	candle_core::utils::barrier_pool().execute(|_| loop {
		let i = next.fetch_add(1, Ordering::Relaxed);
		if i >= blocks {
			break;
		}
		if let Err(e) = work(i) {
			first_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
		}
	});
	match first_error.into_inner().unwrap_or_else(PoisonError::into_inner) {
		Some(e) => Err(e),
		None => Ok(()),
	}
}

/// Block `i` of `outs` (each block is locked by the one participant that computes it).
pub fn lock<'a, 'b>(
	outs: &'a [Mutex<&'b mut [f32]>],
	i: usize,
) -> Result<MutexGuard<'a, &'b mut [f32]>> {
	outs.get(i)
		.map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
		.ok_or_else(|| Error::Msg(format!("no output block {i}")))
}

/// Fill `out` (rows of `row_len` values) by `fill(first_row, block)` over blocks of whole
/// rows, one block per thread when `out` has at least [`PAR_MIN_VALUES`] values.
pub fn rows<F>(out: &mut [f32], row_len: usize, fill: F) -> Result<()>
where
	F: Fn(usize, &mut [f32]) -> Result<()> + Sync,
{
	let n_rows = out.len() / row_len.max(1);
	let threads = candle_core::utils::get_num_threads();
	if threads <= 1 || out.len() < PAR_MIN_VALUES || n_rows < 2 {
		return fill(0, out);
	}
	let per = n_rows.div_ceil(threads.min(n_rows));
	let outs: Vec<Mutex<&mut [f32]>> = out.chunks_mut(per * row_len).map(Mutex::new).collect();
	on_pool(outs.len(), |i| fill(i * per, &mut lock(&outs, i)?))
}

/// `per_group(first_row, rows)` for each group of [`GROUP_ROWS`] rows of `n_rows` (the last
/// may be shorter), on the pool when the rows hold at least [`PAR_MIN_VALUES`] of
/// `row_len` values; the results in group order.
pub fn row_groups<T, F>(n_rows: usize, row_len: usize, per_group: F) -> Result<Vec<T>>
where
	T: Send,
	F: Fn(usize, usize) -> Result<T> + Sync,
{
	let groups = n_rows.div_ceil(GROUP_ROWS);
	let rows_of = |g: usize| (g * GROUP_ROWS, GROUP_ROWS.min(n_rows - g * GROUP_ROWS));
	let threads = candle_core::utils::get_num_threads();
	if threads <= 1 || n_rows * row_len < PAR_MIN_VALUES || groups < 2 {
		return (0..groups).map(rows_of).map(|(r, n)| per_group(r, n)).collect();
	}
	let slots: Vec<Mutex<Option<T>>> = (0..groups).map(|_| Mutex::new(None)).collect();
	on_pool(groups, |g| {
		let (r, n) = rows_of(g);
		let v = per_group(r, n)?;
		if let Some(slot) = slots.get(g) {
			*slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
		}
		Ok(())
	})?;
	slots
		.into_iter()
		.enumerate()
		.map(|(g, m)| {
			m.into_inner()
				.unwrap_or_else(PoisonError::into_inner)
				.ok_or_else(|| Error::Msg(format!("row group {g} was not computed")))
		})
		.collect()
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	#[test]
	fn rows_and_groups_cover_everything_once_in_order() {
		let (n_rows, row_len) = (1000, 70);
		let mut out = vec![0f32; n_rows * row_len];
		rows(&mut out, row_len, |first, block| {
			for (j, row) in block.chunks_exact_mut(row_len).enumerate() {
				row.fill((first + j) as f32);
			}
			Ok(())
		})
		.unwrap();
		assert!(out
			.chunks_exact(row_len)
			.enumerate()
			.all(|(i, r)| r.iter().all(|x| *x == i as f32)));
		let groups = row_groups(n_rows, row_len, |first, n| Ok((first, n))).unwrap();
		assert_eq!(groups.len(), n_rows.div_ceil(GROUP_ROWS));
		assert!(groups.iter().enumerate().all(|(g, (f, _))| *f == g * GROUP_ROWS));
		assert_eq!(groups.iter().map(|(_, n)| n).sum::<usize>(), n_rows);
		let e = rows(&mut out, row_len, |first, _| {
			if first > 0 {
				Err(Error::Msg("late block".into()))
			} else {
				Ok(())
			}
		});
		// One block or several: an error of any block comes back.
		if candle_core::utils::get_num_threads() > 1 {
			assert!(e.is_err());
		}
	}
}
