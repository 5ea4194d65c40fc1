//! Matrix products of the fused dense layer ([`crate::ops::dense`]): `gemm`'s sequential
//! kernel on blocks of output rows or columns, one block per thread.
//!
//! With gemm's own thread split, a second thread made training steps slower on this project's
//! 2-core machines (`bench-train`, 784-256-10 batch 64: 0.76 ms at 1 thread, 1.00 ms at 2;
//! batch 256: 2.81 and 2.84 ms). Here a product of at least [`PARALLEL_MIN_MACS`]
//! multiply-adds is cut into one block of whole output rows (or, when the left operand is the
//! smaller, columns) per thread, each computed by the sequential kernel on candle's worker
//! pool ([`crate::par`]); smaller ones stay on the calling thread.
//!
//! An output element is computed by the same kernel over the same order of `k` however the
//! rows are split, so the result has the same bits for every thread count (tested below):
//! training stays deterministic across contributors' machines.

use std::sync::Mutex;

use candle_core::{Error, Result};

use crate::par::{lock, on_pool};

/// Products with fewer multiply-adds (`m·n·k`) run on one thread: below about this size the
/// hand-off costs more than the second thread saves.
pub const PARALLEL_MIN_MACS: usize = 1 << 20;

/// Fewest output rows per thread block.
const MIN_ROWS_PER_BLOCK: usize = 8;

/// A strided read-only f32 matrix: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
	data: &'a [f32],
	rows: usize,
	cols: usize,
	row_stride: usize,
	col_stride: usize,
}

impl<'a> View<'a> {
	/// A row-major `rows × cols` matrix.
	pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
		Self::strided(data, rows, cols, cols, 1)
	}

	/// The transpose of the row-major `cols × rows` matrix in `data`: a `rows × cols` view.
	pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
		Self::strided(data, rows, cols, 1, rows)
	}

	fn strided(
		data: &'a [f32],
		rows: usize,
		cols: usize,
		row_stride: usize,
		col_stride: usize,
	) -> Result<Self> {
		let last = match (rows.checked_sub(1), cols.checked_sub(1)) {
			(Some(r), Some(c)) => r
				.checked_mul(row_stride)
				.zip(c.checked_mul(col_stride))
				.and_then(|(a, b)| a.checked_add(b)),
			_ => Some(0),
		};
		match last {
			Some(i) if rows == 0 || cols == 0 || i < data.len() => {
				Ok(Self { data, rows, cols, row_stride, col_stride })
			},
			_ => Err(Error::Msg(format!(
				"matmul: a {rows}×{cols} view (strides {row_stride}, {col_stride}) of {} values",
				data.len()
			))),
		}
	}

	/// Rows `from..from + n` (in bounds: checked by the caller).
	fn row_block(&self, from: usize, n: usize) -> Self {
		let start = from * self.row_stride;
		Self { data: self.data.get(start..).unwrap_or_default(), rows: n, ..*self }
	}

	/// Columns `from..from + n` (in bounds: checked by the caller).
	fn col_block(&self, from: usize, n: usize) -> Self {
		let start = from * self.col_stride;
		Self { data: self.data.get(start..).unwrap_or_default(), cols: n, ..*self }
	}
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major `a.rows × b.cols`,
/// on the thread count candle uses (`RAYON_NUM_THREADS`, else every core).
pub fn matmul_into(dst: &mut [f32], a: View, b: View, accumulate: bool) -> Result<()> {
	matmul_into_on(dst, a, b, accumulate, candle_core::utils::get_num_threads())
}

/// [`matmul_into`] on at most `threads` threads.
pub fn matmul_into_on(
	dst: &mut [f32],
	a: View,
	b: View,
	accumulate: bool,
	threads: usize,
) -> Result<()> {
	let (m, k, n) = (a.rows, a.cols, b.cols);
	if b.rows != k || dst.len() != m * n {
		return Err(Error::Msg(format!(
			"matmul: {m}×{k} · {}×{n} into {} values",
			b.rows,
			dst.len()
		)));
	}
	if m == 0 || n == 0 {
		return Ok(());
	}
	let threads =
		if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS { 1 } else { threads };
	match split(m, n, threads) {
		Split::None => {
			sequential(dst, a, b, accumulate, 1.0);
			Ok(())
		},
		Split::Rows(blocks) => {
			let mut outs = Vec::with_capacity(blocks);
			let mut rest = dst;
			for i in 0..blocks {
				let (out, tail) =
					rest.split_at_mut((bound(m, blocks, i + 1) - bound(m, blocks, i)) * n);
				outs.push(Mutex::new(out));
				rest = tail;
			}
			on_pool(blocks, |i| {
				let mut out = lock(&outs, i)?;
				let block = a.row_block(bound(m, blocks, i), out.len() / n);
				sequential(&mut out, block, b, accumulate, 1.0);
				Ok(())
			})
		},
		Split::Cols(blocks) => {
			let out = SharedOut(dst.as_mut_ptr());
			on_pool(blocks, |i| {
				let (from, to) = (bound(n, blocks, i), bound(n, blocks, i + 1));
				// SAFETY: `dst` holds m×n values and stays borrowed until `on_pool` returns;
				// block `i` writes only columns `from..to` of each row, which no other block
				// touches, and `from + (m−1)·n + (to−from−1) < m·n`. (A split product has
				// `k > 0`: it has at least `PARALLEL_MIN_MACS` multiply-adds.)
				unsafe {
					product(out.at(from), n, a, b.col_block(from, to - from), accumulate, 1.0)
				};
				Ok(())
			})
		},
	}
}

/// gemm picks its blocking of `k` from the product's shape: at most 64×64 outputs take
/// `min(k, 512)`, larger products a cache-derived size (392 for `k = 784` here), and the sums
/// of an output element then run in another order. A block of a split product must fall on
/// the same side as the whole product, or the bits depend on the thread count.
const GEMM_SMALL: usize = 64;

/// Fewest output columns per block of a split by columns (more than [`GEMM_SMALL`]).
const MIN_COLS_PER_BLOCK: usize = 128;

/// How a product's output is shared out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Split {
	None,
	/// This many blocks of whole rows.
	Rows(usize),
	/// This many blocks of whole columns.
	Cols(usize),
}

/// The split of an `m × n` output over `threads`: by columns when the left operand is the
/// smaller (fewer rows than columns), so each thread packs its own part of the right one
/// instead of all of it (a batch of 64 against a layer of 1,024: twice the packing with a
/// split by rows); else by rows. Blocks stay on the whole product's side of [`GEMM_SMALL`].
fn split(m: usize, n: usize, threads: usize) -> Split {
	if threads <= 1 {
		return Split::None;
	}
	let small = m <= GEMM_SMALL && n <= GEMM_SMALL;
	let by_cols = threads.min(n / MIN_COLS_PER_BLOCK);
	if m < n && by_cols >= 2 {
		return Split::Cols(by_cols);
	}
	let min_rows = if small || n > GEMM_SMALL { MIN_ROWS_PER_BLOCK } else { GEMM_SMALL + 1 };
	match threads.min(m / min_rows) {
		0 | 1 => Split::None,
		blocks => Split::Rows(blocks),
	}
}

/// Start of block `i` of `len` items cut into `blocks` near-equal blocks (each at least
/// `len / blocks` long).
fn bound(len: usize, blocks: usize, i: usize) -> usize {
	len * i / blocks
}

/// The output matrix, shared by the blocks of a split by columns.
struct SharedOut(*mut f32);
// SAFETY: the blocks write disjoint columns (see `matmul_into_on`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
	/// Column `c` of the first row.
	///
	/// # Safety
	/// `c` is inside the output's first row.
	unsafe fn at(&self, c: usize) -> *mut f32 {
		// SAFETY: the caller's contract.
		unsafe { self.0.add(c) }
	}
}

/// `dst = scale · a · b` on the calling thread (`dst` row-major `a.rows × b.cols`).
pub fn product_on_this_thread(dst: &mut [f32], a: View, b: View, scale: f32) -> Result<()> {
	if b.rows != a.cols || dst.len() != a.rows * b.cols {
		return Err(Error::Msg(format!(
			"matmul: {}×{} · {}×{} into {} values",
			a.rows,
			a.cols,
			b.rows,
			b.cols,
			dst.len()
		)));
	}
	sequential(dst, a, b, false, scale);
	Ok(())
}

/// Run `item(i, out)` for `items` products whose outputs are consecutive `out_len`-value
/// slices of `dst`, sharing the items out between candle's threads when together they are at
/// least [`PARALLEL_MIN_MACS`] (`macs_per_item` each); the first error is returned.
pub fn batched<F>(
	dst: &mut [f32],
	items: usize,
	out_len: usize,
	macs_per_item: usize,
	item: F,
) -> Result<()>
where
	F: Fn(usize, &mut [f32]) -> Result<()> + Sync,
{
	let threads = candle_core::utils::get_num_threads();
	batched_on(dst, items, out_len, macs_per_item, item, threads)
}

/// [`batched`] on at most `threads` threads.
pub fn batched_on<F>(
	dst: &mut [f32],
	items: usize,
	out_len: usize,
	macs_per_item: usize,
	item: F,
	threads: usize,
) -> Result<()>
where
	F: Fn(usize, &mut [f32]) -> Result<()> + Sync,
{
	if dst.len() != items * out_len {
		return Err(Error::Msg(format!("batched matmul: {items} × {out_len} into {}", dst.len())));
	}
	if out_len == 0 {
		return Ok(());
	}
	if threads <= 1 || items < 2 || items.saturating_mul(macs_per_item) < PARALLEL_MIN_MACS {
		return dst.chunks_mut(out_len).enumerate().try_for_each(|(i, out)| item(i, out));
	}
	let per = items.div_ceil(threads.min(items));
	let outs: Vec<Mutex<&mut [f32]>> = dst.chunks_mut(per * out_len).map(Mutex::new).collect();
	on_pool(outs.len(), |c| {
		let mut block = lock(&outs, c)?;
		block
			.chunks_mut(out_len)
			.enumerate()
			.try_for_each(|(j, out)| item(c * per + j, out))
	})
}

/// `dst = [dst +] scale · a · b` with gemm's kernel on one thread; the views are checked in
/// bounds and `dst` is `a.rows × b.cols`.
fn sequential(dst: &mut [f32], a: View, b: View, accumulate: bool, scale: f32) {
	if a.cols == 0 {
		if !accumulate {
			dst.fill(0.0);
		}
		return;
	}
	// SAFETY: `dst` holds `a.rows × b.cols` values, row-major (row stride `b.cols`), and is a
	// `&mut` borrow, so it does not overlap the views.
	unsafe { product(dst.as_mut_ptr(), b.cols, a, b, accumulate, scale) }
}

/// gemm's sequential kernel: `dst = [dst +] scale · a · b` with `dst`'s element `(r, c)` at
/// `dst[r·row_stride + c]`.
///
/// # Safety
/// `dst` must be valid for writes of every such element for `r < a.rows`, `c < b.cols`, not
/// read or written by anyone else meanwhile, and not overlap the views. Every element gemm
/// reads from the views is in bounds, checked when they were made (`View::strided`; a row or
/// column block starts inside its parent view).
unsafe fn product(
	dst: *mut f32,
	row_stride: usize,
	a: View,
	b: View,
	accumulate: bool,
	scale: f32,
) {
	let (m, k, n) = (a.rows, a.cols, b.cols);
	// SAFETY: the caller's contract; gemm only reads `a` and `b`.
	unsafe {
		gemm::gemm(
			m,
			n,
			k,
			dst,
			1,
			row_stride as isize,
			accumulate,
			a.data.as_ptr(),
			a.col_stride as isize,
			a.row_stride as isize,
			b.data.as_ptr(),
			b.col_stride as isize,
			b.row_stride as isize,
			1.0f32,
			scale,
			false,
			false,
			false,
			gemm::Parallelism::None,
		);
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;

	fn values(n: usize, seed: u64) -> Vec<f32> {
		let mut r = crate::rng::SplitMix64::new(seed);
		(0..n).map(|_| r.next_f32() * 2.0 - 1.0).collect()
	}

	fn naive(a: &View, b: &View) -> Vec<f64> {
		let mut out = vec![0f64; a.rows * b.cols];
		for i in 0..a.rows {
			for j in 0..b.cols {
				for p in 0..a.cols {
					let x = a.data[i * a.row_stride + p * a.col_stride];
					let y = b.data[p * b.row_stride + j * b.col_stride];
					out[i * b.cols + j] += f64::from(x) * f64::from(y);
				}
			}
		}
		out
	}

	/// Row-major, transposed and accumulating products, small and over the parallel
	/// threshold: right (against f64), and the same bits on 1, 2, 3 and 8 threads.
	#[test]
	fn products_are_right_and_identical_for_every_thread_count() {
		for &(m, k, n) in &[
			(3, 5, 4),
			(64, 784, 256),
			(784, 64, 256),
			(257, 129, 65),
			(9, 1, 300),
			(128, 784, 64),
			(64, 784, 128),
			(64, 1024, 784),
		] {
			let xa = values(m * k, 1);
			let xb = values(k * n, 2);
			let cases = [
				(View::rows(&xa, m, k).unwrap(), View::rows(&xb, k, n).unwrap()),
				(View::transposed(&xa, m, k).unwrap(), View::transposed(&xb, k, n).unwrap()),
			];
			for (a, b) in cases {
				let want = naive(&a, &b);
				let mut one = vec![0f32; m * n];
				matmul_into_on(&mut one, a, b, false, 1).unwrap();
				for (got, want) in one.iter().zip(&want) {
					assert!(
						(f64::from(*got) - want).abs() < 1e-3 * (1.0 + want.abs()),
						"{m}×{k}×{n}"
					);
				}
				for threads in [2, 3, 8] {
					let mut many = vec![0f32; m * n];
					matmul_into_on(&mut many, a, b, false, threads).unwrap();
					let same = one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits());
					assert!(same, "{m}×{k}×{n} on {threads} threads differs from 1 thread");
				}
				// Accumulating adds to what is there.
				let mut acc = vec![1f32; m * n];
				matmul_into_on(&mut acc, a, b, true, 2).unwrap();
				for (a1, o) in acc.iter().zip(&one) {
					assert!((a1 - (o + 1.0)).abs() < 1e-4 * (1.0 + o.abs()));
				}
			}
		}
	}

	/// 64 attention-sized products (64×16 by 16×64): the same bits on 1, 2 and 5 threads, and
	/// an item's error comes back.
	#[test]
	fn batched_products_are_identical_for_every_thread_count() {
		let (items, m, k, n) = (64, 64, 16, 64);
		let xa = values(items * m * k, 3);
		let xb = values(items * k * n, 4);
		let run = |threads: usize| {
			let mut dst = vec![0f32; items * m * n];
			batched_on(
				&mut dst,
				items,
				m * n,
				m * n * k,
				|i, out| {
					let a = View::rows(&xa[i * m * k..(i + 1) * m * k], m, k)?;
					let b = View::transposed(&xb[i * k * n..(i + 1) * k * n], k, n)?;
					product_on_this_thread(out, a, b, 0.25)
				},
				threads,
			)
			.unwrap();
			dst
		};
		let one = run(1);
		let a0 = View::rows(&xa[..m * k], m, k).unwrap();
		let b0 = View::transposed(&xb[..k * n], k, n).unwrap();
		let want = naive(&a0, &b0);
		assert!((f64::from(one[5]) - 0.25 * want[5]).abs() < 1e-5);
		for threads in [2, 5] {
			assert!(one.iter().zip(run(threads)).all(|(x, y)| x.to_bits() == y.to_bits()));
		}
		let mut dst = vec![0f32; items * m * n];
		let failing = |i: usize, _: &mut [f32]| {
			if i == 40 {
				Err(Error::Msg("item 40".into()))
			} else {
				Ok(())
			}
		};
		let e = batched_on(&mut dst, items, m * n, m * n * k, failing, 2).unwrap_err();
		assert!(e.to_string().contains("item 40"), "{e}");
	}

	#[test]
	fn views_and_shapes_out_of_bounds_are_errors() {
		let x = vec![0f32; 6];
		assert!(View::rows(&x, 2, 4).is_err());
		assert!(View::transposed(&x, 4, 2).is_err());
		let a = View::rows(&x, 2, 3).unwrap();
		let b = View::rows(&x, 3, 2).unwrap();
		assert!(matmul_into(&mut [0f32; 3], a, b, false).is_err(), "dst too small");
		assert!(matmul_into(&mut [0f32; 4], a, a, false).is_err(), "inner dims differ");
		let mut dst = [5f32; 4];
		let empty = View::rows(&x, 2, 0).unwrap();
		matmul_into(&mut dst, empty, View::rows(&x, 0, 2).unwrap(), false).unwrap();
		assert_eq!(dst, [0.0; 4], "k = 0 is a zero product");
	}
}
