//! Fused CPU kernels of the transformer ([`crate::gpt`]), as candle custom ops like
//! [`crate::ops`]:
//!
//! * [`causal_softmax`]: the masked softmax of attention scores `[…, T, T]` in one pass
//!   (row `i` reads only columns `0..=i` and writes exact zeros after them), backward
//!   `s ⊙ (g − Σ s·g)` in one pass, instead of a mask add, max, subtract, exp, sum and divide
//!   each way;
//! * [`gelu`]: the tanh-approximation GELU with one `exp` per element each way (candle's
//!   forward and generic backward spent a third of a step in `powf`, `tanhf` and `expm1f`).
//!
//! * [`layer_norm`]: LayerNorm over the last dimension in one pass each way (written out in
//!   candle ops it was ~10 ops forward, each with its own tensor, and more backward,
//!   including strided reductions over the rows for the gain's and bias's gradients).
//!
//! All are loops over rows in a fixed order, blocks of rows shared between threads
//! ([`crate::par`]; LayerNorm's gain and bias sums over fixed groups of rows): the same bits
//! for any thread count, and row `i` of the softmax never depends on a later column (the
//! causal test checks it bit for bit). The
//! finite-difference test in `tests/ml_gpt.rs` checks their backward passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use std::sync::Mutex;

use crate::fastmath;
use crate::ops::contiguous;
use crate::par;

/// Side of the square last two dimensions of `l`.
fn square_side(l: &Layout) -> candle_core::Result<usize> {
	let dims = l.dims();
	match dims {
		[.., m, n] if m == n && *n > 0 => Ok(*n),
		_ => Err(candle_core::Error::Msg(format!("causal softmax: {dims:?} is not [.., T, T]"))),
	}
}

struct CausalSoftmax;

impl CustomOp1 for CausalSoftmax {
	fn name(&self) -> &'static str {
		"trainchain-causal-softmax"
	}

	fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
		let t = square_side(l)?;
		let x = contiguous(s, l, "scores")?;
		let mut out = vec![0f32; x.len()];
		par::rows(&mut out, t, |first, block| {
			let rows = x.get(first * t..).unwrap_or_default().chunks_exact(t);
			for (r, (row, o)) in rows.zip(block.chunks_exact_mut(t)).enumerate() {
				let i = (first + r) % t;
				let seen = row.get(..=i).unwrap_or_default();
				let (visible, _later_stay_zero) = o.split_at_mut(i + 1);
				let max = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
				// Exponentials first (a loop the compiler vectorises), then their sum in order.
				for (oj, &xj) in visible.iter_mut().zip(seen) {
					*oj = fastmath::exp(xj - max);
				}
				let sum: f32 = visible.iter().sum();
				let inv = 1.0 / sum;
				for oj in visible.iter_mut() {
					*oj *= inv;
				}
			}
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), l.shape().clone()))
	}

	fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
		let grad = grad.contiguous()?;
		Ok(Some(res.apply_op2_no_bwd(&grad, &CausalSoftmaxGrad)?))
	}
}

struct CausalSoftmaxGrad;

impl CustomOp2 for CausalSoftmaxGrad {
	fn name(&self) -> &'static str {
		"trainchain-causal-softmax-grad"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let t = square_side(l1)?;
		let y = contiguous(s1, l1, "softmax")?;
		let g = contiguous(s2, l2, "gradient")?;
		if y.len() != g.len() {
			return Err(candle_core::Error::Msg("causal softmax: gradient size".into()));
		}
		let mut out = vec![0f32; y.len()];
		par::rows(&mut out, t, |first, block| {
			let ys = y.get(first * t..).unwrap_or_default().chunks_exact(t);
			let gs = g.get(first * t..).unwrap_or_default().chunks_exact(t);
			for (r, ((yr, gr), o)) in ys.zip(gs).zip(block.chunks_exact_mut(t)).enumerate() {
				let n = (first + r) % t + 1;
				let dot: f32 = yr.iter().zip(gr).take(n).map(|(a, b)| a * b).sum();
				for ((oj, &yj), &gj) in o.iter_mut().zip(yr).zip(gr).take(n) {
					*oj = yj * (gj - dot);
				}
			}
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), l1.shape().clone()))
	}
}

/// Softmax over the last dimension of `scores [.., T, T]` (f32) with position `i` (the
/// second-to-last index) attending to `0..=i` only; later entries are exactly 0.
pub fn causal_softmax(scores: &Tensor) -> candle_core::Result<Tensor> {
	let x = scores.contiguous()?;
	if x.track_op() {
		x.apply_op1(CausalSoftmax)
	} else {
		x.apply_op1_no_bwd(&CausalSoftmax)
	}
}

/// √(2/π).
const GELU_C: f32 = 0.797_884_6;

/// `tanh(u)` as `1 − 2 / (e^{2u} + 1)`: one `exp` (libm's `tanhf` costs an `expm1f` and
/// more); exact ±1 at the extremes (`e^{2u}` = ∞ or 0), never NaN for a finite `u`.
#[inline(always)]
fn tanh(u: f32) -> f32 {
	1.0 - 2.0 / (fastmath::exp(2.0 * u) + 1.0)
}
const GELU_A: f32 = 0.044_715;

struct Gelu;

impl CustomOp1 for Gelu {
	fn name(&self) -> &'static str {
		"trainchain-gelu"
	}

	fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
		let x = contiguous(s, l, "gelu input")?;
		let mut out = vec![0f32; x.len()];
		par::rows(&mut out, 1, |first, block| {
			gelu_rows(block, x.get(first..).unwrap_or_default());
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), l.shape().clone()))
	}

	fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
		let grad = grad.contiguous()?;
		Ok(Some(x.apply_op2_no_bwd(&grad, &GeluGrad)?))
	}
}

struct GeluGrad;

impl CustomOp2 for GeluGrad {
	fn name(&self) -> &'static str {
		"trainchain-gelu-grad"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let x = contiguous(s1, l1, "gelu input")?;
		let g = contiguous(s2, l2, "gradient")?;
		if x.len() != g.len() {
			return Err(candle_core::Error::Msg("gelu: gradient size".into()));
		}
		let mut out = vec![0f32; x.len()];
		par::rows(&mut out, 1, |first, block| {
			let xs = x.get(first..).unwrap_or_default();
			let gs = g.get(first..).unwrap_or_default();
			gelu_grad_rows(block, xs, gs);
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), l1.shape().clone()))
	}
}

/// GELU of `x` into `out`, element by element.
#[inline(always)]
fn gelu_plain(out: &mut [f32], x: &[f32]) {
	for (o, &v) in out.iter_mut().zip(x) {
		*o = 0.5 * v * (1.0 + tanh(GELU_C * v * (1.0 + GELU_A * v * v)));
	}
}

/// GELU's derivative at `x` times the gradient `g`, into `out`.
#[inline(always)]
fn gelu_grad_plain(out: &mut [f32], x: &[f32], g: &[f32]) {
	for ((o, &v), &gv) in out.iter_mut().zip(x).zip(g) {
		let t = tanh(GELU_C * v * (1.0 + GELU_A * v * v));
		let du = GELU_C * (1.0 + 3.0 * GELU_A * v * v);
		*o = gv * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
	}
}

/// The same loops compiled for AVX2 (see [`fastmath::has_avx2`]).
#[cfg(target_arch = "x86_64")]
mod avx2 {
	/// # Safety
	/// The CPU must support AVX2.
	#[target_feature(enable = "avx2")]
	pub unsafe fn gelu(out: &mut [f32], x: &[f32]) {
		super::gelu_plain(out, x)
	}

	/// # Safety
	/// The CPU must support AVX2.
	#[target_feature(enable = "avx2")]
	pub unsafe fn gelu_grad(out: &mut [f32], x: &[f32], g: &[f32]) {
		super::gelu_grad_plain(out, x, g)
	}
}

/// [`gelu_plain`], on AVX2 where the CPU has it.
fn gelu_rows(out: &mut [f32], x: &[f32]) {
	#[cfg(target_arch = "x86_64")]
	if fastmath::has_avx2() {
		// SAFETY: the CPU supports AVX2 (checked just above).
		return unsafe { avx2::gelu(out, x) };
	}
	gelu_plain(out, x)
}

/// [`gelu_grad_plain`], on AVX2 where the CPU has it.
fn gelu_grad_rows(out: &mut [f32], x: &[f32], g: &[f32]) {
	#[cfg(target_arch = "x86_64")]
	if fastmath::has_avx2() {
		// SAFETY: the CPU supports AVX2 (checked just above).
		return unsafe { avx2::gelu_grad(out, x, g) };
	}
	gelu_grad_plain(out, x, g)
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (f32).
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
	let x = x.contiguous()?;
	if x.track_op() {
		x.apply_op1(Gelu)
	} else {
		x.apply_op1_no_bwd(&Gelu)
	}
}

/// Mean and `1/√(var + ε)` of one row (population variance, sequential sums).
fn row_moments(row: &[f32], eps: f32) -> (f32, f32) {
	let n = row.len().max(1) as f32;
	let mean = row.iter().sum::<f32>() / n;
	let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
	(mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm over the last dimension: `(x − mean) / √(var + ε) · gain + bias`.
struct LayerNorm {
	eps: f32,
}

/// The shapes of a LayerNorm: `x [.., D]` and the gain, bias (or gradient) `[D]`; returns D.
fn norm_width(x: &Layout, others: &[&Layout]) -> candle_core::Result<usize> {
	let d = x.dims().last().copied().unwrap_or(0);
	if d == 0 || others.iter().any(|l| l.dims() != [d]) {
		return Err(candle_core::Error::Msg(format!(
			"layer norm: {:?} with a gain of another width",
			x.dims()
		)));
	}
	Ok(d)
}

impl candle_core::CustomOp3 for LayerNorm {
	fn name(&self) -> &'static str {
		"trainchain-layer-norm"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
		s3: &CpuStorage,
		l3: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let d = norm_width(l1, &[l2, l3])?;
		let x = contiguous(s1, l1, "layer norm input")?;
		let gain = contiguous(s2, l2, "layer norm gain")?;
		let bias = contiguous(s3, l3, "layer norm bias")?;
		let mut out = vec![0f32; x.len()];
		par::rows(&mut out, d, |first, block| {
			let rows = x.get(first * d..).unwrap_or_default().chunks_exact(d);
			for (row, o) in rows.zip(block.chunks_exact_mut(d)) {
				let (mean, rstd) = row_moments(row, self.eps);
				for (((o, x), g), b) in o.iter_mut().zip(row).zip(gain).zip(bias) {
					*o = (x - mean) * rstd * g + b;
				}
			}
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), l1.shape().clone()))
	}

	fn bwd(
		&self,
		x: &Tensor,
		gain: &Tensor,
		_bias: &Tensor,
		_res: &Tensor,
		grad: &Tensor,
	) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
		let grad = grad.contiguous()?;
		let all = x.apply_op3_no_bwd(gain, &grad, &LayerNormGrad { eps: self.eps })?;
		let (n, d) = (x.elem_count(), gain.elem_count());
		let gx = all.narrow(0, 0, n)?.reshape(x.shape())?;
		let gg = all.narrow(0, n, d)?;
		let gb = all.narrow(0, n + d, d)?;
		Ok((Some(gx), Some(gg), Some(gb)))
	}
}

/// LayerNorm's gradients, flat: `dL/dx` (as `x`), then `dL/dgain` and `dL/dbias` (`[D]`
/// each). With `x̂ = (x − mean)·rstd` and `ĝ = grad ⊙ gain` per row:
/// `dL/dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`, `dL/dgain = Σ_rows grad ⊙ x̂`,
/// `dL/dbias = Σ_rows grad` (rows in order).
struct LayerNormGrad {
	eps: f32,
}

impl candle_core::CustomOp3 for LayerNormGrad {
	fn name(&self) -> &'static str {
		"trainchain-layer-norm-grad"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
		s3: &CpuStorage,
		l3: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let d = norm_width(l1, &[l2])?;
		let x = contiguous(s1, l1, "layer norm input")?;
		let gain = contiguous(s2, l2, "layer norm gain")?;
		let grad = contiguous(s3, l3, "layer norm grad")?;
		if grad.len() != x.len() {
			return Err(candle_core::Error::Msg("layer norm: gradient of another shape".into()));
		}
		let mut out = vec![0f32; x.len() + 2 * d];
		let (gx, sums) = out.split_at_mut(x.len());
		let n_rows = x.len() / d;
		// dL/dx row by row; the gain's and bias's sums per group of rows, added in order.
		let blocks: Vec<Mutex<&mut [f32]>> =
			gx.chunks_mut(par::GROUP_ROWS * d).map(Mutex::new).collect();
		let parts = par::row_groups(n_rows, d, |first, n| {
			let mut block = par::lock(&blocks, first / par::GROUP_ROWS)?;
			let xs = x.get(first * d..(first + n) * d).unwrap_or_default();
			let gs = grad.get(first * d..(first + n) * d).unwrap_or_default();
			Ok(self.rows_grad(xs, gs, gain, &mut block))
		})?;
		let (gg, gb) = sums.split_at_mut(d);
		for (pg, pb) in &parts {
			gg.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
			gb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
		}
		Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * d)))
	}
}

impl LayerNormGrad {
	/// `dL/dx` of the rows `x` (gradient `grad`) into `gx`; returns their sums of
	/// `grad ⊙ x̂` and of `grad` (the gain's and bias's gradients over these rows).
	fn rows_grad(
		&self,
		x: &[f32],
		grad: &[f32],
		gain: &[f32],
		gx: &mut [f32],
	) -> (Vec<f32>, Vec<f32>) {
		let d = gain.len();
		let (mut gg, mut gb) = (vec![0f32; d], vec![0f32; d]);
		let mut xhat = vec![0f32; d];
		let inv_d = 1.0 / d as f32;
		for ((row, g), o) in x.chunks_exact(d).zip(grad.chunks_exact(d)).zip(gx.chunks_exact_mut(d))
		{
			let (mean, rstd) = row_moments(row, self.eps);
			let (mut sum_gh, mut sum_ghx) = (0f32, 0f32);
			for (((xh, x), g), w) in xhat.iter_mut().zip(row).zip(g).zip(gain) {
				*xh = (x - mean) * rstd;
				sum_gh += g * w;
				sum_ghx += g * w * *xh;
			}
			let (m1, m2) = (sum_gh * inv_d, sum_ghx * inv_d);
			for ((((o, xh), g), w), (ggj, gbj)) in
				o.iter_mut().zip(&xhat).zip(g).zip(gain).zip(gg.iter_mut().zip(gb.iter_mut()))
			{
				*o = rstd * (g * w - m1 - xh * m2);
				*ggj += g * xh;
				*gbj += g;
			}
		}
		(gg, gb)
	}
}

/// LayerNorm of `x [.., D]` over its last dimension with `gain`, `bias` `[D]` (f32).
pub fn layer_norm(
	x: &Tensor,
	gain: &Tensor,
	bias: &Tensor,
	eps: f64,
) -> candle_core::Result<Tensor> {
	let x = x.contiguous()?;
	let op = LayerNorm { eps: eps as f32 };
	if x.track_op() || gain.track_op() || bias.track_op() {
		x.apply_op3(gain, bias, op)
	} else {
		x.apply_op3_no_bwd(gain, bias, &op)
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;
	use candle_core::{Device, Var, D};

	fn pattern(n: usize, k: f32) -> Vec<f32> {
		(0..n).map(|i| (i as f32 * k).sin() * 3.0).collect()
	}

	/// Value and gradient of `Σ f(x) ⊙ w` for a fused op and its stock-candle counterpart.
	fn compare(
		shape: &[usize],
		fused: impl Fn(&Tensor) -> Tensor,
		stock: impl Fn(&Tensor) -> Tensor,
	) {
		let n: usize = shape.iter().product();
		let dev = Device::Cpu;
		let w = Tensor::from_vec(pattern(n, 0.37), shape, &dev).unwrap();
		let mut out = Vec::new();
		for f in [&fused as &dyn Fn(&Tensor) -> Tensor, &stock] {
			let x = Var::from_tensor(&Tensor::from_vec(pattern(n, 0.91), shape, &dev).unwrap())
				.unwrap();
			let y = f(x.as_tensor());
			let loss = (&y * &w).unwrap().sum_all().unwrap();
			let g = loss.backward().unwrap();
			let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
			out.push((flat(&y), flat(g.get(&x).unwrap())));
		}
		for ((a, b), what) in [(&out[0].0, &out[1].0), (&out[0].1, &out[1].1)]
			.into_iter()
			.zip(["value", "gradient"])
		{
			for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
				assert!(
					(x - y).abs() <= 1e-5 * (1.0 + y.abs()),
					"{what} {i}: fused {x} vs stock {y}"
				);
			}
		}
	}

	#[test]
	fn causal_softmax_matches_masked_stock_softmax() {
		let t = 5;
		let mask: Vec<f32> = (0..t * t)
			.map(|k| if k % t > k / t { f32::NEG_INFINITY } else { 0.0 })
			.collect();
		let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
		compare(
			&[2, 3, t, t],
			|x| causal_softmax(x).unwrap(),
			|x| {
				let z = x.broadcast_add(&mask).unwrap();
				let max = z.max_keepdim(D::Minus1).unwrap().detach();
				let e = z.broadcast_sub(&max).unwrap().exp().unwrap();
				e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
			},
		);
	}

	/// LayerNorm written out in candle ops (what `gpt.rs` used before the fused op).
	fn stock_layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor) -> Tensor {
		let mean = x.mean_keepdim(D::Minus1).unwrap();
		let centred = x.broadcast_sub(&mean).unwrap();
		let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
		let inv = (var + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
		centred
			.broadcast_mul(&inv)
			.unwrap()
			.broadcast_mul(gain)
			.unwrap()
			.broadcast_add(bias)
			.unwrap()
	}

	#[test]
	fn layer_norm_matches_stock_layer_norm_with_its_gradients() {
		let dev = Device::Cpu;
		let d = 6;
		let gain = Tensor::from_vec(pattern(d, 1.3), d, &dev).unwrap();
		let bias = Tensor::from_vec(pattern(d, 0.7), d, &dev).unwrap();
		compare(
			&[2, 5, d],
			|x| layer_norm(x, &gain, &bias, 1e-5).unwrap(),
			|x| stock_layer_norm(x, &gain, &bias),
		);
		// The gain's and bias's gradients too.
		let x = Tensor::from_vec(pattern(4 * d, 0.91), (4, d), &dev).unwrap();
		let w = Tensor::from_vec(pattern(4 * d, 0.37), (4, d), &dev).unwrap();
		let mut grads = Vec::new();
		for fused in [true, false] {
			let (g, b) = (Var::from_tensor(&gain).unwrap(), Var::from_tensor(&bias).unwrap());
			let y = if fused {
				layer_norm(&x, g.as_tensor(), b.as_tensor(), 1e-5).unwrap()
			} else {
				stock_layer_norm(&x, g.as_tensor(), b.as_tensor())
			};
			let store = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
			let flat = |v: &Var| store.get(v).unwrap().to_vec1::<f32>().unwrap();
			grads.push((flat(&g), flat(&b)));
		}
		for (f, s) in [(&grads[0].0, &grads[1].0), (&grads[0].1, &grads[1].1)] {
			for (a, b) in f.iter().zip(s) {
				assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "fused {a} vs stock {b}");
			}
		}
		// Another width of gain is an error.
		let short = Tensor::zeros(d - 1, candle_core::DType::F32, &dev).unwrap();
		assert!(layer_norm(&x, &short, &bias, 1e-5).is_err());
	}

	#[test]
	fn gelu_matches_stock_gelu() {
		compare(&[7, 9], |x| gelu(x).unwrap(), |x| x.gelu().unwrap());
	}

	/// The loops the CPU runs (AVX2 where it has it) give the plain loops' bits, over ordinary
	/// values, the saturated ends, zeros and subnormals (an odd length covers the tail).
	#[test]
	fn gelu_loops_give_the_same_bits_on_every_instruction_set() {
		let mut x: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.0173).collect();
		x.extend([0.0, -0.0, 1e-40, -1e-40, 9.0, -9.0, 60.0, -60.0, 1e20, -1e20]);
		let g: Vec<f32> = x.iter().map(|v| 1.0 - 0.3 * v).collect();
		let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
		gelu_rows(&mut a, &x);
		gelu_plain(&mut b, &x);
		assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "gelu differs");
		gelu_grad_rows(&mut a, &x, &g);
		gelu_grad_plain(&mut b, &x, &g);
		assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "gelu grad differs");
		// (At |x| = 10²⁰, x² overflows and the derivative is NaN in both builds alike.)
		assert!(a.iter().zip(&x).filter(|(_, v)| v.abs() < 1e10).all(|(d, _)| d.is_finite()));
	}
}
