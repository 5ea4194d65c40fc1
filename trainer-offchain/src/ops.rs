//! Fused CPU kernels as candle custom ops, to cut per-step overhead on small models:
//!
//! * [`dense`]: `y = x @ W + b` in one product (the bias is pre-written into the output and
//!   accumulated by gemm, no broadcast copy); its backward is two products and a column sum,
//!   and skips `dL/dx` when `x` does not need a gradient (candle's own matmul backward always
//!   computes it, which for the first layer is a whole wasted `[B, out] × [out, in]`
//!   product). The products are [`crate::matmul`]'s, split by rows or columns across
//!   threads. [`dense_into`] leaves the weight and bias gradients in a [`GradSink`] instead
//!   of candle's zero-and-add accumulation;
//! * [`softmax_cross_entropy`]: mean cross-entropy from logits in one pass, backward
//!   `(softmax − onehot) / B` in one pass (instead of ~10 candle ops each way);
//! * [`sgd_momentum_inplace`]: the momentum-SGD update written into the parameter's own
//!   storage (no new tensors per step).
//!
//! All kernels are loops over rows in a fixed order or gemm over fixed block layouts, rows and
//! products shared between threads ([`crate::par`], [`crate::matmul`]), so results are the
//! same for any thread count (the cross-entropy's sum over fixed groups of rows).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, InplaceOp2, Layout, Shape, Tensor};

use crate::matmul::{matmul_into, View};

/// The f32 data of a contiguous tensor's storage (an error for any other layout).
pub(crate) fn contiguous<'a>(
	s: &'a CpuStorage,
	l: &Layout,
	what: &str,
) -> candle_core::Result<&'a [f32]> {
	let data = s.as_slice::<f32>()?;
	match l.contiguous_offsets() {
		Some((a, b)) => data
			.get(a..b)
			.ok_or_else(|| candle_core::Error::Msg(format!("{what}: bad layout"))),
		None => Err(candle_core::Error::Msg(format!("{what}: needs a contiguous tensor"))),
	}
}

/// [`contiguous`] for a tensor updated in place (an optimiser's parameter).
pub(crate) fn contiguous_mut<'a>(
	s: &'a mut CpuStorage,
	l: &Layout,
	what: &str,
) -> candle_core::Result<&'a mut [f32]> {
	let (a, b) = l
		.contiguous_offsets()
		.ok_or_else(|| candle_core::Error::Msg(format!("{what}: needs a contiguous tensor")))?;
	match s {
		CpuStorage::F32(v) => v
			.get_mut(a..b)
			.ok_or_else(|| candle_core::Error::Msg(format!("{what}: bad layout"))),
		_ => Err(candle_core::Error::Msg(format!("{what}: expected f32"))),
	}
}

/// Where [`dense_into`]'s backward leaves the gradients of a weight and bias that are
/// variables, instead of handing them to candle's backprop, which adds every gradient to a
/// fresh tensor of zeros (one pass to zero it and one to add it, over every parameter: about
/// a sixth of a wide MLP's step). [`crate::model::Model::backward`] moves them into the
/// gradient store.
#[derive(Debug, Default)]
pub struct GradSink(Mutex<Vec<(Tensor, Tensor)>>);

impl GradSink {
	fn entries(&self) -> std::sync::MutexGuard<'_, Vec<(Tensor, Tensor)>> {
		self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
	}

	/// Forget gradients left by an earlier backward pass.
	pub fn clear(&self) {
		self.entries().clear();
	}

	/// Move the gradients into `grads`, adding a parameter's to what `grads` already holds
	/// for it (a parameter that is also used by other ops, or by two dense layers).
	pub fn drain_into(&self, grads: &mut GradStore) -> candle_core::Result<()> {
		for (param, grad) in self.entries().drain(..) {
			let sum = match grads.remove(&param) {
				Some(earlier) => earlier.add(&grad)?,
				None => grad,
			};
			grads.insert(&param, sum);
		}
		Ok(())
	}

	/// Keep `grad` for `param` if `param` is a variable; else give it back for candle.
	fn keep(&self, param: &Tensor, grad: Tensor) -> Option<Tensor> {
		if param.is_variable() {
			self.entries().push((param.clone(), grad));
			None
		} else {
			Some(grad)
		}
	}
}

struct Dense {
	sink: Option<Arc<GradSink>>,
}

impl CustomOp3 for Dense {
	fn name(&self) -> &'static str {
		"trainchain-dense"
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
		let (m, k) = l1.shape().dims2()?;
		let (k2, n) = l2.shape().dims2()?;
		let nb = l3.shape().dims1()?;
		if k != k2 || nb != n {
			return Err(candle_core::Error::Msg(format!(
				"dense: shapes {:?} x {:?} + {:?}",
				l1.dims(),
				l2.dims(),
				l3.dims()
			)));
		}
		let x = contiguous(s1, l1, "dense input")?;
		let w = contiguous(s2, l2, "dense weight")?;
		let b = contiguous(s3, l3, "dense bias")?;
		let mut dst = Vec::with_capacity(m * n);
		for _ in 0..m {
			dst.extend_from_slice(b);
		}
		// The bias is already in `dst`: the product accumulates onto it.
		matmul_into(&mut dst, View::rows(x, m, k)?, View::rows(w, k, n)?, true)?;
		Ok((CpuStorage::F32(dst), Shape::from((m, n))))
	}

	fn bwd(
		&self,
		x: &Tensor,
		w: &Tensor,
		b: &Tensor,
		_res: &Tensor,
		grad: &Tensor,
	) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
		let grad = grad.contiguous()?;
		let gx =
			if x.track_op() { Some(grad.apply_op2_no_bwd(w, &DenseGrad::Input)?) } else { None };
		let gw = x.apply_op2_no_bwd(&grad, &DenseGrad::Weight)?;
		let gb = grad.apply_op1_no_bwd(&ColumnSums)?;
		Ok(match &self.sink {
			Some(sink) => (gx, sink.keep(w, gw), sink.keep(b, gb)),
			None => (gx, Some(gw), Some(gb)),
		})
	}
}

/// A product of [`Dense`]'s backward, of two row-major matrices `l [p, q]` and `r [s, t]`:
/// `l · rᵀ` (`q = t`; `dL/dx = grad · wᵀ`) or `lᵀ · r` (`p = s`; `dL/dw = xᵀ · grad`).
enum DenseGrad {
	/// `l · rᵀ`: the input's gradient from the output's gradient and the weight.
	Input,
	/// `lᵀ · r`: the weight's gradient from the input and the output's gradient.
	Weight,
}

impl CustomOp2 for DenseGrad {
	fn name(&self) -> &'static str {
		match self {
			Self::Input => "trainchain-dense-grad-input",
			Self::Weight => "trainchain-dense-grad-weight",
		}
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let ((p, q), (s, t)) = (l1.shape().dims2()?, l2.shape().dims2()?);
		let l = contiguous(s1, l1, "dense backward")?;
		let r = contiguous(s2, l2, "dense backward")?;
		let (a, b) = match self {
			Self::Input if q == t => (View::rows(l, p, q)?, View::transposed(r, t, s)?),
			Self::Weight if p == s => (View::transposed(l, q, p)?, View::rows(r, s, t)?),
			_ => {
				return Err(candle_core::Error::Msg(format!(
					"{}: {p}×{q} with {s}×{t}",
					self.name()
				)))
			},
		};
		let (m, n) = match self {
			Self::Input => (p, s),
			Self::Weight => (q, t),
		};
		let mut dst = vec![0f32; m * n];
		matmul_into(&mut dst, a, b, false)?;
		Ok((CpuStorage::F32(dst), Shape::from((m, n))))
	}
}

/// Column sums of a `[B, n]` matrix (the bias gradient), rows added in order.
struct ColumnSums;

impl candle_core::CustomOp1 for ColumnSums {
	fn name(&self) -> &'static str {
		"trainchain-column-sums"
	}

	fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
		let (_, n) = l.shape().dims2()?;
		let g = contiguous(s, l, "dense grad")?;
		let mut sums = vec![0f32; n];
		for row in g.chunks_exact(n.max(1)) {
			for (acc, x) in sums.iter_mut().zip(row) {
				*acc += x;
			}
		}
		Ok((CpuStorage::F32(sums), Shape::from(n)))
	}
}

/// `x @ w + b` for `x [B, in]`, `w [in, out]`, `b [out]` (f32), with the fused backward.
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
	apply_dense(x, w, b, None)
}

/// [`dense`] whose backward leaves the gradients of `w` and `b` (if they are variables) in
/// `sink` rather than in the gradient store that `backward` returns.
pub fn dense_into(
	x: &Tensor,
	w: &Tensor,
	b: &Tensor,
	sink: &Arc<GradSink>,
) -> candle_core::Result<Tensor> {
	apply_dense(x, w, b, Some(sink.clone()))
}

fn apply_dense(
	x: &Tensor,
	w: &Tensor,
	b: &Tensor,
	sink: Option<Arc<GradSink>>,
) -> candle_core::Result<Tensor> {
	let x = x.contiguous()?;
	if x.track_op() || w.track_op() || b.track_op() {
		x.apply_op3(w, b, Dense { sink })
	} else {
		x.apply_op3_no_bwd(w, b, &Dense { sink: None })
	}
}

/// Lanes of the row reductions below: independent partial results the compiler keeps in
/// one vector register, added in lane order at the end (a fixed order, so every machine
/// gets the same bits).
const LANES: usize = 8;

/// The largest value of `row` (NaN ignored, as by `f32::max`; −∞ for an empty row).
fn row_max(row: &[f32]) -> f32 {
	let mut acc = [f32::NEG_INFINITY; LANES];
	let mut chunks = row.chunks_exact(LANES);
	for chunk in &mut chunks {
		for (a, &v) in acc.iter_mut().zip(chunk) {
			*a = a.max(v);
		}
	}
	chunks.remainder().iter().chain(&acc).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `Σ e^(v − max)` over `row`, each term also written to `out` when given.
fn row_sum_exp(row: &[f32], max: f32, mut out: Option<&mut [f32]>) -> f32 {
	let mut acc = [0f32; LANES];
	let whole = row.len() - row.len() % LANES;
	for (k, chunk) in row.get(..whole).unwrap_or_default().chunks_exact(LANES).enumerate() {
		let mut e = [0f32; LANES];
		for (e, &v) in e.iter_mut().zip(chunk) {
			*e = crate::fastmath::exp(v - max);
		}
		for (a, e) in acc.iter_mut().zip(&e) {
			*a += e;
		}
		if let Some(dst) = out.as_deref_mut().and_then(|o| o.get_mut(k * LANES..(k + 1) * LANES)) {
			dst.copy_from_slice(&e);
		}
	}
	let mut tail = 0f32;
	for (j, &v) in row.iter().enumerate().skip(whole) {
		let e = crate::fastmath::exp(v - max);
		tail += e;
		if let Some(slot) = out.as_deref_mut().and_then(|o| o.get_mut(j)) {
			*slot = e;
		}
	}
	acc.iter().sum::<f32>() + tail
}

/// The summed per-row cross-entropy (log-sum-exp minus the label's logit) of the rows of
/// `z` (`c` logits each) against `labels`, writing each row's softmax into `softmax` if given
/// (one `exp` per logit either way, summed in [`LANES`] lanes so that it vectorises).
fn ce_rows(
	z: &[f32],
	labels: &[u32],
	c: usize,
	mut softmax: Option<&mut [f32]>,
) -> candle_core::Result<f64> {
	let mut total = 0f64;
	for (i, (row, &y)) in z.chunks_exact(c).zip(labels).enumerate() {
		let max = row_max(row);
		let zy = *row.get(y as usize).ok_or_else(|| {
			candle_core::Error::Msg(format!("cross-entropy: label {y} >= {c} classes"))
		})?;
		let out = softmax.as_deref_mut().and_then(|o| o.get_mut(i * c..(i + 1) * c));
		let sum = match out {
			Some(out) => {
				let sum = row_sum_exp(row, max, Some(&mut *out));
				let inv = 1.0 / sum;
				out.iter_mut().for_each(|o| *o *= inv);
				sum
			},
			None => row_sum_exp(row, max, None),
		};
		total += f64::from(sum.ln() + max - zy);
	}
	Ok(total)
}

/// Rows `first..first + n` of `z` (`c` logits each) and their labels.
fn ce_slices<'a>(
	z: &'a [f32],
	labels: &'a [u32],
	c: usize,
	first: usize,
	n: usize,
) -> (&'a [f32], &'a [u32]) {
	(
		z.get(first * c..(first + n) * c).unwrap_or_default(),
		labels.get(first..first + n).unwrap_or_default(),
	)
}

struct SoftmaxCe;

impl CustomOp2 for SoftmaxCe {
	fn name(&self) -> &'static str {
		"trainchain-softmax-ce"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let (b, c) = l1.shape().dims2()?;
		if l2.shape().dims1()? != b {
			return Err(candle_core::Error::Msg(
				"cross-entropy: labels/logits batch mismatch".into(),
			));
		}
		let z = contiguous(s1, l1, "logits")?;
		let labels = match l2.contiguous_offsets() {
			Some((a, e)) => s2.as_slice::<u32>()?.get(a..e).unwrap_or_default(),
			None => {
				return Err(candle_core::Error::Msg("labels: needs a contiguous tensor".into()))
			},
		};
		// Rows in groups on the pool, the groups' sums added in order.
		let parts = crate::par::row_groups(b, c, |first, n| {
			let (z, labels) = ce_slices(z, labels, c, first, n);
			ce_rows(z, labels, c, None)
		})?;
		let total: f64 = parts.iter().sum();
		let mean = if b == 0 { 0.0 } else { (total / b as f64) as f32 };
		Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
	}

	fn bwd(
		&self,
		logits: &Tensor,
		labels: &Tensor,
		_res: &Tensor,
		grad: &Tensor,
	) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
		let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
		let g = logits.apply_op2_no_bwd(labels, &SoftmaxCeGrad { scale })?;
		Ok((Some(g), None))
	}
}

struct SoftmaxCeGrad {
	scale: f32,
}

impl CustomOp2 for SoftmaxCeGrad {
	fn name(&self) -> &'static str {
		"trainchain-softmax-ce-grad"
	}

	fn cpu_fwd(
		&self,
		s1: &CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<(CpuStorage, Shape)> {
		let (b, c) = l1.shape().dims2()?;
		let z = contiguous(s1, l1, "logits")?;
		let labels = match l2.contiguous_offsets() {
			Some((a, e)) => s2.as_slice::<u32>()?.get(a..e).unwrap_or_default(),
			None => {
				return Err(candle_core::Error::Msg("labels: needs a contiguous tensor".into()))
			},
		};
		let mut out = vec![0f32; b * c];
		let k = if b == 0 { 0.0 } else { self.scale / b as f32 };
		crate::par::rows(&mut out, c, |first, block| {
			let (z, labels) = ce_slices(z, labels, c, first, block.len() / c.max(1));
			ce_rows(z, labels, c, Some(&mut *block))?;
			for (row, &y) in block.chunks_exact_mut(c).zip(labels) {
				if let Some(v) = row.get_mut(y as usize) {
					*v -= 1.0;
				}
				row.iter_mut().for_each(|v| *v *= k);
			}
			Ok(())
		})?;
		Ok((CpuStorage::F32(out), Shape::from((b, c))))
	}
}

/// Mean softmax cross-entropy of `logits [B, C]` (f32) against `labels [B]` (u32), with a
/// fused backward. Errors if a label is `>= C`.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
	let logits = logits.contiguous()?;
	logits.apply_op2(labels, SoftmaxCe)
}

struct SgdStep<'a> {
	lr: f32,
	momentum: f32,
	weight_decay: f32,
	velocity: RefCell<&'a mut Option<Vec<f32>>>,
}

impl InplaceOp2 for SgdStep<'_> {
	fn name(&self) -> &'static str {
		"trainchain-sgd-momentum"
	}

	fn cpu_fwd(
		&self,
		s1: &mut CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> candle_core::Result<()> {
		let g = contiguous(s2, l2, "gradient")?;
		let theta = contiguous_mut(s1, l1, "parameter")?;
		if theta.len() != g.len() {
			return Err(candle_core::Error::Msg("sgd: gradient/parameter size mismatch".into()));
		}
		let step = SgdConsts { lr: self.lr, mu: self.momentum, wd: self.weight_decay };
		let mut vel = self.velocity.borrow_mut();
		if step.mu == 0.0 {
			return sgd_blocks(theta, g, None, |t, g, _| step.plain(t, g));
		}
		match vel.as_mut() {
			None => {
				let mut v = vec![0f32; g.len()];
				sgd_blocks(theta, g, Some(&mut v), |t, g, v| step.first(t, g, v))?;
				**vel = Some(v);
				Ok(())
			},
			Some(v) if v.len() == g.len() => {
				sgd_blocks(theta, g, Some(v), |t, g, v| step.momentum(t, g, v))
			},
			Some(_) => Err(candle_core::Error::Msg("sgd: velocity/parameter size mismatch".into())),
		}
	}
}

/// One thread's share of an SGD step: parameters, gradient, velocity (empty without one).
type SgdBlock<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32]);

/// The constants of one SGD step, and its loops over a block of values.
#[derive(Clone, Copy)]
struct SgdConsts {
	lr: f32,
	mu: f32,
	wd: f32,
}

impl SgdConsts {
	fn decayed(&self, g: f32, t: f32) -> f32 {
		if self.wd != 0.0 {
			g + self.wd * t
		} else {
			g
		}
	}

	fn plain(&self, theta: &mut [f32], g: &[f32]) {
		for (t, &gi) in theta.iter_mut().zip(g) {
			*t -= self.lr * self.decayed(gi, *t);
		}
	}

	/// The first step with momentum: `v = g`.
	fn first(&self, theta: &mut [f32], g: &[f32], v: &mut [f32]) {
		for ((t, &gi), vi) in theta.iter_mut().zip(g).zip(v.iter_mut()) {
			let gi = self.decayed(gi, *t);
			*vi = gi;
			*t -= self.lr * gi;
		}
	}

	fn momentum(&self, theta: &mut [f32], g: &[f32], v: &mut [f32]) {
		for ((t, &gi), vi) in theta.iter_mut().zip(g).zip(v.iter_mut()) {
			let gi = self.decayed(gi, *t);
			*vi = self.mu * *vi + gi;
			*t -= self.lr * *vi;
		}
	}
}

/// `step(θ, g, v)` over blocks of the values, one block per thread of candle's pool once
/// there are [`crate::par::PAR_MIN_VALUES`] of them. Every value's update depends on that
/// value alone, so the result does not depend on the split. (`v` empty when there is none.)
fn sgd_blocks<F>(
	theta: &mut [f32],
	g: &[f32],
	v: Option<&mut [f32]>,
	step: F,
) -> candle_core::Result<()>
where
	F: Fn(&mut [f32], &[f32], &mut [f32]) + Sync,
{
	sgd_blocks_on(theta, g, v, step, candle_core::utils::get_num_threads())
}

/// [`sgd_blocks`] on at most `threads` threads.
fn sgd_blocks_on<F>(
	theta: &mut [f32],
	g: &[f32],
	v: Option<&mut [f32]>,
	step: F,
	threads: usize,
) -> candle_core::Result<()>
where
	F: Fn(&mut [f32], &[f32], &mut [f32]) + Sync,
{
	let mut none: [f32; 0] = [];
	let v = v.unwrap_or(&mut none);
	if threads <= 1 || theta.len() < crate::par::PAR_MIN_VALUES {
		step(theta, g, v);
		return Ok(());
	}
	let per = theta.len().div_ceil(threads);
	let mut v_blocks = v.chunks_mut(per);
	let blocks: Vec<std::sync::Mutex<SgdBlock>> = theta
		.chunks_mut(per)
		.zip(g.chunks(per))
		.map(|(t, g)| std::sync::Mutex::new((t, g, v_blocks.next().unwrap_or_default())))
		.collect();
	crate::par::on_pool(blocks.len(), |i| {
		let mut b = blocks
			.get(i)
			.ok_or_else(|| candle_core::Error::Msg(format!("no block {i}")))?
			.lock()
			.unwrap_or_else(std::sync::PoisonError::into_inner);
		let (t, g, v) = &mut *b;
		step(t, g, v);
		Ok(())
	})
}

/// In place: `g ← g + wd·θ; v ← μ·v + g (v = g on the first step); θ ← θ − lr·v`.
pub fn sgd_momentum_inplace(
	param: &Tensor,
	grad: &Tensor,
	velocity: &mut Option<Vec<f32>>,
	lr: f32,
	momentum: f32,
	weight_decay: f32,
) -> candle_core::Result<()> {
	let grad = grad.contiguous()?;
	let op = SgdStep { lr, momentum, weight_decay, velocity: RefCell::new(velocity) };
	param.inplace_op2(&grad, &op)
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;

	/// Dense layers sharing one weight (two gradients) and one bias (three), and a layer
	/// with a computed weight: through a sink, every gradient ends in the store with the bits of
	/// candle's own accumulation, and a non-variable keeps its place in the graph.
	#[test]
	fn a_grad_sink_gives_the_gradients_of_candles_accumulation() {
		use candle_core::{Device, Var};
		let dev = Device::Cpu;
		let vals = |n: usize, k: f32| (0..n).map(|i| ((i as f32) * k).sin()).collect::<Vec<_>>();
		let x = Tensor::from_vec(vals(5 * 4, 0.3), (5, 4), &dev).unwrap();
		let w = Var::from_vec(vals(4 * 4, 0.7), (4, 4), &dev).unwrap();
		let b = Var::from_vec(vals(4, 1.1), 4, &dev).unwrap();
		let scale = Var::from_vec(vals(4 * 4, 0.9), (4, 4), &dev).unwrap();
		let run = |sink: Option<&Arc<GradSink>>| {
			let layer = |h: &Tensor, w: &Tensor| match sink {
				Some(s) => dense_into(h, w, b.as_tensor(), s),
				None => dense(h, w, b.as_tensor()),
			};
			// The third layer's weight is computed (not a variable): its gradient must go on
			// to `scale` through candle.
			let w2 = (scale.as_tensor() * 0.5).unwrap();
			let h = layer(&x, w.as_tensor()).unwrap().relu().unwrap();
			let y = layer(&layer(&h, w.as_tensor()).unwrap(), &w2).unwrap();
			let loss = y.sqr().unwrap().sum_all().unwrap();
			let mut grads = loss.backward().unwrap();
			if let Some(s) = sink {
				assert!(grads.get(w.as_tensor()).is_none(), "the sink kept w's gradients");
				s.drain_into(&mut grads).unwrap();
			}
			[w.as_tensor(), b.as_tensor(), scale.as_tensor()]
				.map(|t| grads.get(t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
		};
		let sink = Arc::new(GradSink::default());
		let (stock, kept) = (run(None), run(Some(&sink)));
		for (a, b) in stock.iter().zip(&kept) {
			assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()), "{a:?} vs {b:?}");
		}
		assert!(sink.entries().is_empty(), "drained");
	}

	#[test]
	fn lane_reductions_match_the_plain_ones() {
		for len in [1usize, 7, 8, 9, 10, 17, 256, 261] {
			let row: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
			let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
			assert_eq!(row_max(&row), max, "len {len}");
			let want: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
			let mut out = vec![0f32; len];
			let got = row_sum_exp(&row, max, Some(&mut out));
			assert!((f64::from(got) - want).abs() < 1e-5 * want, "len {len}: {got} {want}");
			assert_eq!(got, row_sum_exp(&row, max, None), "len {len}: same sum without output");
			for (o, &v) in out.iter().zip(&row) {
				assert_eq!(*o, crate::fastmath::exp(v - max));
			}
		}
		// NaN is ignored by the max, as `f32::max` does.
		assert_eq!(row_max(&[1.0, f32::NAN, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN]), 3.0);
		assert_eq!(row_max(&[]), f32::NEG_INFINITY);
	}

	#[test]
	fn an_sgd_step_gives_the_same_bits_on_any_number_of_threads() {
		let n = 3 * crate::par::PAR_MIN_VALUES + 17;
		let wave = |k: usize, i: usize| ((i * k % 101) as f32 - 50.0) * 0.013;
		let g: Vec<f32> = (0..n).map(|i| wave(37, i)).collect();
		let step = SgdConsts { lr: 0.05, mu: 0.9, wd: 0.01 };
		let run = |threads: usize| {
			let mut theta: Vec<f32> = (0..n).map(|i| wave(53, i)).collect();
			let mut v = vec![0f32; n];
			sgd_blocks_on(&mut theta, &g, Some(&mut v), |t, g, v| step.first(t, g, v), threads)
				.unwrap();
			sgd_blocks_on(&mut theta, &g, Some(&mut v), |t, g, v| step.momentum(t, g, v), threads)
				.unwrap();
			sgd_blocks_on(&mut theta, &g, None, |t, g, _| step.plain(t, g), threads).unwrap();
			(theta, v)
		};
		let one = run(1);
		// The reference: the same three steps written out, value by value.
		let (mut theta, mut v): (Vec<f32>, Vec<f32>) =
			((0..n).map(|i| wave(53, i)).collect(), vec![0.0; n]);
		for i in 0..n {
			let gi = g[i] + 0.01 * theta[i];
			v[i] = gi;
			theta[i] -= 0.05 * gi;
			let gi = g[i] + 0.01 * theta[i];
			v[i] = 0.9 * v[i] + gi;
			theta[i] -= 0.05 * v[i];
			theta[i] -= 0.05 * (g[i] + 0.01 * theta[i]);
		}
		assert_eq!(one, (theta, v));
		for threads in [2, 3, 8] {
			assert_eq!(run(threads), one, "{threads} threads");
		}
	}
}
