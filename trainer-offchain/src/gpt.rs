//! A decoder-only transformer language model (`gpt:V-D-L-H-T`), GPT-2 style, in candle.
//!
//! # Architecture
//!
//! Token ids `x [B, t]` (`t ≤ T`) →
//! `h = wte[x] + wpe[0..t]`, then `L` pre-LayerNorm blocks
//! `h += proj(attn(ln1(h)))`, `h += mlp(ln2(h))` with `mlp(z) = fc₂(GELU(fc₁ z))` of width
//! `4·D`, then `ln_f`, and the output head **tied to the token embedding**:
//! `logits = ln_f(h) · wteᵀ` (no separate head matrix, no output bias).
//! Attention is causal multi-head self-attention with `H` heads of width `D / H`, scores
//! scaled by `1/√(D/H)`; a position never sees a later one (the fused
//! [`crate::gpt_ops::causal_softmax`] reads only columns `0..=i` of row `i` and writes exact
//! zeros after them). GELU is the tanh approximation (GPT-2's, [`crate::gpt_ops::gelu`]).
//! LayerNorm: `(z − mean) / √(var + 10⁻⁵) · gain + bias` over the last dimension.
//!
//! # Parameters, in declared (flat-vector) order
//!
//! | name | shape | initialisation |
//! | --- | --- | --- |
//! | `wte` | `[V, D]` | std 0.02 (also the output head) |
//! | `wpe` | `[T, D]` | std 0.02 |
//! | per block `l = 0..L`: | | |
//! | `h{l}.ln1.weight`, `h{l}.ln1.bias` | `[D]`, `[D]` | 1, 0 |
//! | `h{l}.attn.qkv.weight`, `h{l}.attn.qkv.bias` | `[D, 3D]`, `[3D]` | std 0.02, 0 |
//! | `h{l}.attn.proj.weight`, `h{l}.attn.proj.bias` | `[D, D]`, `[D]` | std 0.02/√(2L), 0 |
//! | `h{l}.ln2.weight`, `h{l}.ln2.bias` | `[D]`, `[D]` | 1, 0 |
//! | `h{l}.mlp.fc.weight`, `h{l}.mlp.fc.bias` | `[D, 4D]`, `[4D]` | std 0.02, 0 |
//! | `h{l}.mlp.proj.weight`, `h{l}.mlp.proj.bias` | `[4D, D]`, `[D]` | std 0.02/√(2L), 0 |
//! | `ln_f.weight`, `ln_f.bias` | `[D]`, `[D]` | 1, 0 |
//!
//! Dense weights are input-major (`[in, out]`) like every model here; the `qkv` output is
//! `[q | k | v]`, each split into heads `0..H` of `D/H` consecutive columns. "std s" means
//! `U(−s·√3, s·√3)` drawn from the parameter's [`crate::rng::SplitMix64`] stream (exact
//! IEEE arithmetic only).
//!
//! # Determinism
//!
//! Only deterministic CPU ops are used: gemm (fixed blocking for a thread count), sequential
//! reductions, `index_select` (backward: a sequential `index_add`), element-wise maps and
//! the sequential loops of [`crate::gpt_ops`]. LayerNorm, the softmax and GELU are our own
//! fused ops (candle-nn's kernels are not used); the finite-difference test in `tests/ml_gpt.rs` checks every tensor's
//! gradient.

use candle_core::{DType, Tensor, Var};

use crate::error::{Result, TrainerError};
use crate::model::{Arch, Init, Model, ParamInfo};
use crate::rng::SplitMix64;

/// LayerNorm ε.
pub const LN_EPS: f64 = 1e-5;

/// Largest vocabulary (token ids travel as f32 rows: exact below 2²⁴).
pub const MAX_VOCAB: u32 = 1 << 16;

/// Largest context (attention memory grows with its square).
pub const MAX_CONTEXT: u32 = 4096;

/// Parameter tensors per block.
const PER_BLOCK: usize = 12;

fn spec_err(spec: &str, msg: impl Into<String>) -> TrainerError {
	TrainerError::Spec { spec: spec.to_string(), msg: msg.into() }
}

/// Size checks of a `gpt` spec (positivity is checked by the caller).
pub(crate) fn validate(
	spec: &str,
	vocab: u32,
	d_model: u32,
	layers: u32,
	heads: u32,
	context: u32,
) -> Result<()> {
	if [vocab, d_model, layers, heads, context].contains(&0) {
		return Err(spec_err(spec, "sizes must be positive"));
	}
	if !(2..=MAX_VOCAB).contains(&vocab) {
		return Err(spec_err(spec, format!("vocabulary must be 2..={MAX_VOCAB}")));
	}
	if context > MAX_CONTEXT {
		return Err(spec_err(spec, format!("context must be at most {MAX_CONTEXT}")));
	}
	if !d_model.is_multiple_of(heads) {
		return Err(spec_err(spec, format!("{heads} heads do not divide d_model {d_model}")));
	}
	Ok(())
}

fn push(out: &mut Vec<ParamInfo>, name: String, shape: Vec<usize>, init: Init) {
	out.push(ParamInfo { name, shape, init });
}

/// The parameter list of the module docs' table.
pub(crate) fn param_infos(out: &mut Vec<ParamInfo>, vocab: u32, d: u32, layers: u32, ctx: u32) {
	let (v, d, l, t) = (vocab as usize, d as usize, layers as usize, ctx as usize);
	let small = Init::Small { div: 1 };
	let resid = Init::Small { div: 2usize.saturating_mul(l) };
	push(out, "wte".into(), vec![v, d], small);
	push(out, "wpe".into(), vec![t, d], small);
	let d3 = d.saturating_mul(3);
	let d4 = d.saturating_mul(4);
	for i in 0..l {
		let p = format!("h{i}");
		push(out, format!("{p}.ln1.weight"), vec![d], Init::Ones);
		push(out, format!("{p}.ln1.bias"), vec![d], Init::Zeros);
		push(out, format!("{p}.attn.qkv.weight"), vec![d, d3], small);
		push(out, format!("{p}.attn.qkv.bias"), vec![d3], Init::Zeros);
		push(out, format!("{p}.attn.proj.weight"), vec![d, d], resid);
		push(out, format!("{p}.attn.proj.bias"), vec![d], Init::Zeros);
		push(out, format!("{p}.ln2.weight"), vec![d], Init::Ones);
		push(out, format!("{p}.ln2.bias"), vec![d], Init::Zeros);
		push(out, format!("{p}.mlp.fc.weight"), vec![d, d4], small);
		push(out, format!("{p}.mlp.fc.bias"), vec![d4], Init::Zeros);
		push(out, format!("{p}.mlp.proj.weight"), vec![d4, d], resid);
		push(out, format!("{p}.mlp.proj.bias"), vec![d], Init::Zeros);
	}
	push(out, "ln_f.weight".into(), vec![d], Init::Ones);
	push(out, "ln_f.bias".into(), vec![d], Init::Zeros);
}

/// Sizes of a `gpt` model: (vocab, d_model, layers, heads, context).
fn dims(model: &Model) -> Result<(usize, usize, usize, usize, usize)> {
	match &model.spec().arch {
		Arch::Gpt { vocab, d_model, layers, heads, context } => Ok((
			*vocab as usize,
			*d_model as usize,
			*layers as usize,
			*heads as usize,
			*context as usize,
		)),
		_ => Err(TrainerError::Config(format!("{} is not a gpt model", model.spec()))),
	}
}

fn var(vars: &[Var], i: usize) -> Result<&Tensor> {
	vars.get(i)
		.map(Var::as_tensor)
		.ok_or_else(|| TrainerError::Config(format!("gpt: missing parameter #{i}")))
}

/// LayerNorm over the last dimension of `x [N, D]`.
fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor) -> Result<Tensor> {
	Ok(crate::gpt_ops::layer_norm(x, gain, bias, LN_EPS)?)
}

/// Causal self-attention of `x [B·t, D]` with block parameters `w` (the 4 attention
/// tensors: qkv weight, qkv bias, proj weight, proj bias).
fn attention(x: &Tensor, w: &[Var], shape: (usize, usize, usize)) -> Result<Tensor> {
	let (b, t, heads) = shape;
	let d = x.dim(1)?;
	let hd = d / heads;
	let qkv = crate::ops::dense(x, var(w, 0)?, var(w, 1)?)?;
	let split = |i: usize| -> Result<Tensor> {
		Ok(qkv
			.narrow(1, i * d, d)?
			.reshape((b, t, heads, hd))?
			.transpose(1, 2)?
			.contiguous()?)
	};
	let (q, k, v) = (split(0)?, split(1)?, split(2)?);
	let scale = 1.0 / (hd as f64).sqrt();
	let scores = crate::bmm::matmul_t(&q, &k, scale)?;
	let att = crate::gpt_ops::causal_softmax(&scores)?;
	let y = crate::bmm::matmul(&att, &v)?.transpose(1, 2)?.reshape((b * t, d))?;
	Ok(crate::ops::dense(&y, var(w, 2)?, var(w, 3)?)?)
}

/// One pre-LayerNorm block on `h [B·t, D]`.
fn block(h: &Tensor, w: &[Var], shape: (usize, usize, usize)) -> Result<Tensor> {
	let a = layer_norm(h, var(w, 0)?, var(w, 1)?)?;
	let h = (h + attention(&a, w.get(2..6).unwrap_or_default(), shape)?)?;
	let m = layer_norm(&h, var(w, 6)?, var(w, 7)?)?;
	let m = crate::gpt_ops::gelu(&crate::ops::dense(&m, var(w, 8)?, var(w, 9)?)?)?;
	let m = crate::ops::dense(&m, var(w, 10)?, var(w, 11)?)?;
	Ok((h + m)?)
}

/// Logits `[B, t, V]` of a `gpt` model for token ids `ids [B, t]` (u32, `1 ≤ t ≤ T`, every id
/// below the vocabulary size): position `i` predicts token `i + 1` from tokens `0..=i`.
pub fn forward_tokens(model: &Model, ids: &Tensor) -> Result<Tensor> {
	let (vocab, _, layers, heads, context) = dims(model)?;
	let (b, t) = ids.dims2()?;
	if t == 0 || t > context {
		return Err(TrainerError::mismatch(
			format!("tokens per row of {} (at most)", model.spec()),
			context,
			t,
		));
	}
	let ids = ids.to_dtype(DType::U32)?;
	if let Some(&bad) = ids.flatten_all()?.to_vec1::<u32>()?.iter().find(|&&i| i as usize >= vocab)
	{
		return Err(TrainerError::LabelOutOfRange {
			context: format!("token id in the input of {}", model.spec()),
			label: bad,
			classes: vocab,
		});
	}
	let vars = model.vars();
	let wte = var(vars, 0)?;
	let d = wte.dim(1)?;
	let tok = wte.embedding(&ids.flatten_all()?)?.reshape((b, t, d))?;
	let pos = var(vars, 1)?.narrow(0, 0, t)?;
	let mut h = tok.broadcast_add(&pos)?.reshape((b * t, d))?;
	for l in 0..layers {
		let start = 2 + l * PER_BLOCK;
		let w = vars.get(start..start + PER_BLOCK).unwrap_or_default();
		h = block(&h, w, (b, t, heads))?;
	}
	let f = 2 + layers * PER_BLOCK;
	let h = layer_norm(&h, var(vars, f)?, var(vars, f + 1)?)?;
	Ok(crate::bmm::matmul_t(&h, wte, 1.0)?.reshape((b, t, vocab))?)
}

/// How [`sample`] picks each next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
	/// The most likely token (ties: the lowest id).
	Greedy,
	/// Draw from `softmax(logits / temperature)` with a [`SplitMix64`] seeded by `seed`.
	Temperature {
		/// Temperature (> 0).
		temperature: f32,
		/// Seed of the draws.
		seed: u64,
	},
}

/// Draw one token from `logits` (f64 softmax; deterministic for a given generator state).
fn pick(logits: &[f32], how: Sampling, rng: &mut SplitMix64) -> u32 {
	let argmax = || {
		let mut best = 0usize;
		for (i, &z) in logits.iter().enumerate() {
			if z > logits.get(best).copied().unwrap_or(f32::NEG_INFINITY) {
				best = i;
			}
		}
		best as u32
	};
	let Sampling::Temperature { temperature, .. } = how else { return argmax() };
	let t = f64::from(temperature);
	let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
	let weights: Vec<f64> = logits.iter().map(|&z| ((f64::from(z - max)) / t).exp()).collect();
	let total: f64 = weights.iter().sum();
	let mut r = f64::from(rng.next_f32()) * total;
	for (i, w) in weights.iter().enumerate() {
		r -= w;
		if r < 0.0 {
			return i as u32;
		}
	}
	argmax()
}

/// Continue `prompt` (token ids, non-empty) by `n` tokens, each predicted from the last
/// `context` tokens so far. Deterministic for a given model, prompt and [`Sampling`].
pub fn sample(model: &Model, prompt: &[u32], n: usize, how: Sampling) -> Result<Vec<u32>> {
	let (_, _, _, _, context) = dims(model)?;
	if prompt.is_empty() {
		return Err(TrainerError::Config("sampling needs a non-empty prompt".into()));
	}
	if let Sampling::Temperature { temperature, .. } = how {
		if !(temperature > 0.0 && temperature.is_finite()) {
			return Err(TrainerError::Config(format!("bad temperature {temperature}")));
		}
	}
	let seed = match how {
		Sampling::Temperature { seed, .. } => seed,
		Sampling::Greedy => 0,
	};
	let mut rng = SplitMix64::derive(seed, &[0x5A3]);
	let mut tokens = prompt.to_vec();
	let mut out = Vec::with_capacity(n);
	for _ in 0..n {
		let window = tokens.get(tokens.len().saturating_sub(context)..).unwrap_or_default();
		let t = window.len();
		let ids = Tensor::from_slice(window, (1, t), model.device())?;
		let logits = forward_tokens(model, &ids)?.get(0)?.get(t - 1)?.to_vec1::<f32>()?;
		let next = pick(&logits, how, &mut rng);
		tokens.push(next);
		out.push(next);
	}
	Ok(out)
}
