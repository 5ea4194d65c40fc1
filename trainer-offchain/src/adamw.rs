//! AdamW as one in-place pass over each parameter, on candle's worker pool.
//!
//! `candle_nn::AdamW` updates a parameter with eleven tensor ops, each a pass over the values
//! and a new tensor, on the calling thread's schedule. [`AdamW`] does the same arithmetic in
//! one pass: the same f32 operations in the same order, with the constants rounded from f64
//! as candle rounds them, so it gives the same bits (test
//! `fused_adamw_gives_the_bits_of_candle_nn_adamw`). Every value's update depends on that
//! value alone, so the split over threads does not change them either.

use crate::par::{on_pool, PAR_MIN_VALUES};
use candle_core::{backprop::GradStore, CpuStorage, InplaceOp2, Layout, Result, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

/// AdamW with decoupled weight decay (`candle_nn::ParamsAdamW`), fused.
pub struct AdamW {
	vars: Vec<Moments>,
	params: ParamsAdamW,
	step_t: i32,
}

/// A parameter and its first and second moments.
struct Moments {
	var: Var,
	m: Vec<f32>,
	v: Vec<f32>,
}

/// The f32 constants of one step, rounded as candle's affine ops round them.
#[derive(Clone, Copy)]
struct Step {
	beta1: f32,
	one_minus_beta1: f32,
	beta2: f32,
	one_minus_beta2: f32,
	scale_m: f32,
	scale_v: f32,
	decay: f32,
	eps: f32,
	lr: f32,
}

impl Step {
	fn new(p: &ParamsAdamW, t: i32) -> Self {
		Self {
			beta1: p.beta1 as f32,
			one_minus_beta1: (1.0 - p.beta1) as f32,
			beta2: p.beta2 as f32,
			one_minus_beta2: (1.0 - p.beta2) as f32,
			scale_m: (1.0 / (1.0 - p.beta1.powi(t))) as f32,
			scale_v: (1.0 / (1.0 - p.beta2.powi(t))) as f32,
			decay: (1.0 - p.lr * p.weight_decay) as f32,
			eps: p.eps as f32,
			lr: p.lr as f32,
		}
	}

	/// One block of values. Each `x * c + 0.0` and `x * 1.0 + c` is candle's affine op
	/// (`+ 0.0` turns −0 into +0, as candle's does).
	fn apply(&self, theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
		for (((t, &g), m), v) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
			let next_m = (*m * self.beta1 + 0.0) + (g * self.one_minus_beta1 + 0.0);
			let next_v = (*v * self.beta2 + 0.0) + ((g * g) * self.one_minus_beta2 + 0.0);
			let m_hat = next_m * self.scale_m + 0.0;
			let v_hat = next_v * self.scale_v + 0.0;
			let decayed = *t * self.decay + 0.0;
			let adjusted = m_hat / (v_hat.sqrt() * 1.0 + self.eps);
			*t = decayed - (adjusted * self.lr + 0.0);
			*m = next_m;
			*v = next_v;
		}
	}
}

/// One thread's share: parameters, gradient, first and second moments.
type Block<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);

/// [`Step::apply`] over blocks of the values, one per thread of at most `threads` once there
/// are [`PAR_MIN_VALUES`] of them.
fn apply_on(
	step: Step,
	theta: &mut [f32],
	g: &[f32],
	m: &mut [f32],
	v: &mut [f32],
	threads: usize,
) -> Result<()> {
	if threads <= 1 || theta.len() < PAR_MIN_VALUES {
		step.apply(theta, g, m, v);
		return Ok(());
	}
	let per = theta.len().div_ceil(threads);
	let blocks: Vec<Mutex<Block>> = theta
		.chunks_mut(per)
		.zip(g.chunks(per))
		.zip(m.chunks_mut(per).zip(v.chunks_mut(per)))
		.map(|((t, g), (m, v))| Mutex::new((t, g, m, v)))
		.collect();
	on_pool(blocks.len(), |i| {
		let mut b = blocks
			.get(i)
			.ok_or_else(|| candle_core::Error::Msg(format!("no block {i}")))?
			.lock()
			.unwrap_or_else(PoisonError::into_inner);
		let (t, g, m, v) = &mut *b;
		step.apply(t, g, m, v);
		Ok(())
	})
}

/// The in-place op on one parameter (`s1`) with its gradient (`s2`).
struct StepOp<'a> {
	step: Step,
	moments: RefCell<(&'a mut [f32], &'a mut [f32])>,
}

impl InplaceOp2 for StepOp<'_> {
	fn name(&self) -> &'static str {
		"trainchain-adamw"
	}

	fn cpu_fwd(
		&self,
		s1: &mut CpuStorage,
		l1: &Layout,
		s2: &CpuStorage,
		l2: &Layout,
	) -> Result<()> {
		let g = crate::ops::contiguous(s2, l2, "adamw gradient")?;
		let theta = crate::ops::contiguous_mut(s1, l1, "adamw parameter")?;
		let mut moments = self.moments.borrow_mut();
		let (m, v) = &mut *moments;
		if theta.len() != g.len() || m.len() != g.len() || v.len() != g.len() {
			return Err(candle_core::Error::Msg("adamw: size mismatch".into()));
		}
		apply_on(self.step, theta, g, m, v, candle_core::utils::get_num_threads())
	}
}

impl AdamW {
	/// Parameter tensors it updates.
	pub(crate) fn len(&self) -> usize {
		self.vars.len()
	}

	/// Step count and the first and second moments, flat in parameter order.
	pub(crate) fn moments(&self) -> (u32, Vec<f32>, Vec<f32>) {
		let m = self.vars.iter().flat_map(|p| p.m.iter().copied()).collect();
		let v = self.vars.iter().flat_map(|p| p.v.iter().copied()).collect();
		(u32::try_from(self.step_t).unwrap_or(0), m, v)
	}

	/// Continue from [`AdamW::moments`]'s output.
	pub(crate) fn set_moments(
		&mut self,
		step: u32,
		m: &[f32],
		v: &[f32],
	) -> std::result::Result<(), String> {
		let total: usize = self.vars.iter().map(|p| p.m.len()).sum();
		if m.len() != total || v.len() != total {
			return Err(format!(
				"{} and {} moments, the model has {total} values",
				m.len(),
				v.len()
			));
		}
		self.step_t = i32::try_from(step).map_err(|_| format!("step count {step} too large"))?;
		let (mut m, mut v) = (m, v);
		for p in &mut self.vars {
			let n = p.m.len();
			let (mine_m, next_m) = m.split_at(n);
			let (mine_v, next_v) = v.split_at(n);
			p.m.copy_from_slice(mine_m);
			p.v.copy_from_slice(mine_v);
			(m, v) = (next_m, next_v);
		}
		Ok(())
	}
}

impl Optimizer for AdamW {
	type Config = ParamsAdamW;

	fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
		let vars = vars
			.into_iter()
			.filter(|var| var.dtype().is_float())
			.map(|var| {
				let n = var.elem_count();
				Moments { var, m: vec![0.0; n], v: vec![0.0; n] }
			})
			.collect();
		Ok(Self { vars, params, step_t: 0 })
	}

	fn learning_rate(&self) -> f64 {
		self.params.lr
	}

	fn set_learning_rate(&mut self, lr: f64) {
		self.params.lr = lr;
	}

	fn step(&mut self, grads: &GradStore) -> Result<()> {
		self.step_t = self.step_t.saturating_add(1);
		let step = Step::new(&self.params, self.step_t);
		for Moments { var, m, v } in &mut self.vars {
			let Some(g) = grads.get(var) else { continue };
			let g = g.contiguous()?;
			let op = StepOp { step, moments: RefCell::new((m.as_mut_slice(), v.as_mut_slice())) };
			var.as_tensor().inplace_op2(&g, &op)?;
		}
		Ok(())
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
	use super::*;
	use candle_core::Device;

	/// Parameters of two sizes (one split over threads, one not) and a loss whose gradient
	/// changes from step to step.
	fn vars() -> Vec<Var> {
		let wave = |n: usize, k: usize| -> Vec<f32> {
			(0..n).map(|i| ((i * k % 97) as f32 - 48.0) * 0.021).collect()
		};
		let big = PAR_MIN_VALUES + 1001;
		vec![
			Var::from_vec(wave(big, 31), big, &Device::Cpu).unwrap(),
			Var::from_vec(wave(7, 13), 7, &Device::Cpu).unwrap(),
		]
	}

	fn train<O: Optimizer<Config = ParamsAdamW>>(steps: usize) -> Vec<Vec<f32>> {
		let vars = vars();
		let params =
			ParamsAdamW { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
		let mut opt = O::new(vars.clone(), params).unwrap();
		for s in 0..steps {
			// loss = Σ (w³/3 · c_s): gradient w² · c_s, with c_s changing sign every step.
			let c = if s % 2 == 0 { 1.0 } else { -0.5 };
			let loss = vars
				.iter()
				.map(|w| (w.as_tensor().powf(3.0).unwrap() * (c / 3.0)).unwrap().sum_all().unwrap())
				.reduce(|a, b| (a + b).unwrap())
				.unwrap();
			opt.backward_step(&loss).unwrap();
			if s == 2 {
				opt.set_learning_rate(0.02);
			}
		}
		vars.iter().map(|v| v.as_tensor().to_vec1::<f32>().unwrap()).collect()
	}

	#[test]
	fn fused_adamw_gives_the_bits_of_candle_nn_adamw() {
		let ours = train::<AdamW>(6);
		let theirs = train::<candle_nn::AdamW>(6);
		for (a, b) in ours.iter().zip(&theirs) {
			let differ = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
			let first = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits());
			assert_eq!(differ, 0, "{differ} of {} values differ, the first at {first:?}", a.len());
		}
		assert_ne!(
			ours,
			vars()
				.iter()
				.map(|v| v.as_tensor().to_vec1::<f32>().unwrap())
				.collect::<Vec<_>>()
		);
	}

	#[test]
	fn a_fused_adamw_step_gives_the_same_bits_on_any_number_of_threads() {
		let n = 3 * PAR_MIN_VALUES + 5;
		let g: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
		let p = ParamsAdamW { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-6, weight_decay: 0.01 };
		let run = |threads: usize| {
			let mut t: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) * 0.02).collect();
			let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
			for s in 1..4 {
				apply_on(Step::new(&p, s), &mut t, &g, &mut m, &mut v, threads).unwrap();
			}
			(t, m, v)
		};
		let one = run(1);
		for threads in [2, 3, 8] {
			assert_eq!(run(threads), one, "{threads} threads");
		}
	}

	#[test]
	fn a_parameter_without_a_gradient_is_left_alone() {
		let vars = vars();
		let before: Vec<f32> = vars[1].as_tensor().to_vec1().unwrap();
		let mut opt = AdamW::new(vars.clone(), ParamsAdamW::default()).unwrap();
		let loss = vars[0].as_tensor().sqr().unwrap().sum_all().unwrap();
		opt.backward_step(&loss).unwrap();
		assert_eq!(vars[1].as_tensor().to_vec1::<f32>().unwrap(), before);
	}
}
