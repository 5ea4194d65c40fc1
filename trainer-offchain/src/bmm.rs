//! Batched matrix products as a candle op, for attention ([`crate::gpt`]): `s · op(A) · op(B)`
//! over leading batch dimensions, `op` the identity or a transpose read through strides (no
//! transposed copy), the scale folded into the product.
//!
//! candle's batched matmul calls gemm once per batch item with gemm's own thread split, so
//! on two threads attention's 64 products of 64×16 by 16×64 each paid a thread hand-off. Here
//! the items are shared out between threads, each item computed by the sequential kernel, so
//! the result has the same bits for every thread count (as [`crate::matmul`]); a single
//! product (no batch dimensions: the language model's output head) is split by rows.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::matmul::{self, View};
use crate::ops::contiguous;

/// `scale · op(a) · op(b)` (see the module docs); at most one operand transposed.
struct BatchedMatMul {
	/// `a` is stored `[.., K, M]` and read transposed.
	ta: bool,
	/// `b` is stored `[.., N, K]` and read transposed.
	tb: bool,
	scale: f32,
}

/// Batch size and the last two dimensions of `l`.
fn batch_and_matrix(l: &Layout) -> candle_core::Result<(usize, usize, usize, &[usize])> {
	match l.dims() {
		[batch @ .., r, c] => Ok((batch.iter().product(), *r, *c, batch)),
		d => Err(candle_core::Error::Msg(format!("batched matmul: {d:?} is not [.., R, C]"))),
	}
}

impl CustomOp2 for BatchedMatMul {
	fn name(&self) -> &'static str {
		"trainchain-batched-matmul"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let (items, ra, ca, batch) = batch_and_matrix(l1)?;
		let (items_b, rb, cb, batch_b) = batch_and_matrix(l2)?;
		let (m, k) = if self.ta { (ca, ra) } else { (ra, ca) };
		let (k2, n) = if self.tb { (cb, rb) } else { (rb, cb) };
		if batch != batch_b || items != items_b || k != k2 || (self.ta && self.tb) {
			return Err(candle_core::Error::Msg(format!(
				"batched matmul: {:?} by {:?} (transposed: {}, {})",
				l1.dims(),
				l2.dims(),
				self.ta,
				self.tb
			)));
		}
		let a = contiguous(s1, l1, "batched matmul lhs")?;
		let b = contiguous(s2, l2, "batched matmul rhs")?;
		let mut dst = vec![0f32; items * m * n];
		if items == 1 {
			// One product (the language model's output head): split by rows instead.
			let (va, vb) = (item_view(a, 0, m, k, self.ta)?, item_view(b, 0, k, n, self.tb)?);
			matmul::matmul_into(&mut dst, va, vb, false)?;
			if self.scale != 1.0 {
				dst.iter_mut().for_each(|x| *x *= self.scale);
			}
			let mut dims = batch.to_vec();
			dims.extend([m, n]);
			return Ok((CpuStorage::F32(dst), Shape::from(dims)));
		}
		matmul::batched(&mut dst, items, m * n, m * n * k, |i, out| {
			let va = item_view(a, i, m, k, self.ta)?;
			let vb = item_view(b, i, k, n, self.tb)?;
			matmul::product_on_this_thread(out, va, vb, self.scale)
		})?;
		let mut dims = batch.to_vec();
		dims.extend([m, n]);
		Ok((CpuStorage::F32(dst), Shape::from(dims)))
	}

	fn bwd(
		&self,
		a: &Tensor,
		b: &Tensor,
		_res: &Tensor,
		grad: &Tensor,
	) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
		let g = grad.contiguous()?;
		let s = self.scale;
		let (ga, gb) = match (self.ta, self.tb) {
			// C = s·A·B: dA = s·dC·Bᵀ, dB = s·Aᵀ·dC.
			(false, false) => (no_bwd(&g, b, false, true, s)?, no_bwd(a, &g, true, false, s)?),
			// C = s·A·Bᵀ: dA = s·dC·B, dB = s·dCᵀ·A.
			(false, true) => (no_bwd(&g, b, false, false, s)?, no_bwd(&g, a, true, false, s)?),
			// C = s·Aᵀ·B: dA = s·B·dCᵀ, dB = s·A·dC.
			(true, false) => (no_bwd(b, &g, false, true, s)?, no_bwd(a, &g, false, false, s)?),
			(true, true) => {
				return Err(candle_core::Error::Msg("batched matmul: both transposed".into()))
			},
		};
		Ok((Some(ga), Some(gb)))
	}
}

/// Item `i` of a batch of `r × c` matrices in `data`, stored as they are or (`t`) transposed.
fn item_view(data: &[f32], i: usize, r: usize, c: usize, t: bool) -> candle_core::Result<View<'_>> {
	let item = data.get(i * r * c..(i + 1) * r * c).unwrap_or_default();
	if t {
		View::transposed(item, r, c)
	} else {
		View::rows(item, r, c)
	}
}

fn no_bwd(a: &Tensor, b: &Tensor, ta: bool, tb: bool, scale: f32) -> candle_core::Result<Tensor> {
	a.apply_op2_no_bwd(b, &BatchedMatMul { ta, tb, scale })
}

/// `scale · a · bᵀ` over the leading dimensions (`a [.., M, K]`, `b [.., N, K]`, f32): the
/// attention scores `q · kᵀ / √d` without a transposed copy of `k`.
pub fn matmul_t(a: &Tensor, b: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
	apply(a, b, BatchedMatMul { ta: false, tb: true, scale: scale as f32 })
}

/// `a · b` over the leading dimensions (`a [.., M, K]`, `b [.., K, N]`, f32).
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
	apply(a, b, BatchedMatMul { ta: false, tb: false, scale: 1.0 })
}

fn apply(a: &Tensor, b: &Tensor, op: BatchedMatMul) -> candle_core::Result<Tensor> {
	let (a, b) = (a.contiguous()?, b.contiguous()?);
	if a.track_op() || b.track_op() {
		a.apply_op2(&b, op)
	} else {
		a.apply_op2_no_bwd(&b, &op)
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;
	use candle_core::{Device, Var};

	fn pattern(dims: &[usize], k: f32) -> Tensor {
		let n: usize = dims.iter().product();
		let v: Vec<f32> = (0..n).map(|i| (i as f32 * k).sin()).collect();
		Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
	}

	fn flat(t: &Tensor) -> Vec<f32> {
		t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
	}

	fn close(a: &[f32], b: &[f32], what: &str) {
		assert_eq!(a.len(), b.len(), "{what}");
		for (i, (x, y)) in a.iter().zip(b).enumerate() {
			assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{what} {i}: {x} vs {y}");
		}
	}

	/// Values and both gradients against candle's matmul (on explicitly transposed copies).
	#[test]
	fn products_and_gradients_match_candle() {
		let (m, k, n) = (5, 4, 3);
		type Ours = fn(&Tensor, &Tensor) -> Tensor;
		type Stock = fn(&Tensor, &Tensor) -> Tensor;
		let cases: [(&[usize], &[usize], Ours, Stock); 3] = [
			// One product, no batch dimensions (split by rows), transposed rhs.
			(
				&[70, k],
				&[n, k],
				|a, b| matmul_t(a, b, 1.0).unwrap(),
				|a, b| a.matmul(&b.t().unwrap().contiguous().unwrap()).unwrap(),
			),
			(
				&[2, 3, m, k],
				&[2, 3, k, n],
				|a, b| matmul(a, b).unwrap(),
				|a, b| a.matmul(b).unwrap(),
			),
			(
				&[2, 3, m, k],
				&[2, 3, n, k],
				|a, b| matmul_t(a, b, 0.5).unwrap(),
				|a, b| (a.matmul(&b.t().unwrap().contiguous().unwrap()).unwrap() * 0.5).unwrap(),
			),
		];
		for (da, db, ours, stock) in cases {
			let mut results = Vec::new();
			for f in [ours, stock] {
				let a = Var::from_tensor(&pattern(da, 0.37)).unwrap();
				let b = Var::from_tensor(&pattern(db, 0.91)).unwrap();
				let c = f(a.as_tensor(), b.as_tensor());
				let w = pattern(c.dims(), 0.53);
				let grads = (&c * &w).unwrap().sum_all().unwrap().backward().unwrap();
				results.push((
					flat(&c),
					flat(grads.get(&a).unwrap()),
					flat(grads.get(&b).unwrap()),
				));
			}
			close(&results[0].0, &results[1].0, "value");
			close(&results[0].1, &results[1].1, "dA");
			close(&results[0].2, &results[1].2, "dB");
		}
	}

	/// The transposed-lhs form (used by the backward of `matmul_t`) and its gradients.
	#[test]
	fn transposed_lhs_form_matches_candle() {
		let a = Var::from_tensor(&pattern(&[4, 6, 5], 0.29)).unwrap();
		let b = Var::from_tensor(&pattern(&[4, 6, 3], 0.71)).unwrap();
		let ours = a
			.as_tensor()
			.apply_op2(b.as_tensor(), BatchedMatMul { ta: true, tb: false, scale: 2.0 });
		let ours = ours.unwrap();
		let stock = (a.as_tensor().t().unwrap().matmul(b.as_tensor()).unwrap() * 2.0).unwrap();
		close(&flat(&ours), &flat(&stock), "value");
		let w = pattern(ours.dims(), 0.13);
		let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
		let g2 = (&stock * &w).unwrap().sum_all().unwrap().backward().unwrap();
		close(&flat(g1.get(&a).unwrap()), &flat(g2.get(&a).unwrap()), "dA");
		close(&flat(g1.get(&b).unwrap()), &flat(g2.get(&b).unwrap()), "dB");
	}

	#[test]
	fn mismatched_shapes_are_errors() {
		let a = pattern(&[2, 3, 4], 0.1);
		assert!(matmul(&a, &pattern(&[2, 5, 2], 0.1)).is_err(), "inner dims");
		assert!(matmul(&a, &pattern(&[3, 4, 2], 0.1)).is_err(), "batch dims");
		assert!(matmul_t(&a, &pattern(&[2, 3, 5], 0.1), 1.0).is_err(), "inner dims (transposed)");
		assert!(matmul(&pattern(&[4], 0.1), &a).is_err(), "not a matrix");
	}
}
