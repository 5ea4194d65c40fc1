//! Model specs, seeded initialisation and the candle models.
//!
//! # Parameter order and layout
//!
//! Every model's parameters form one flat `f32` vector (the unit of an update and of a
//! model state) in **declared order**, each tensor row-major:
//!
//! | arch | parameters, in order |
//! | --- | --- |
//! | `logreg:F-C` | `fc0.weight [F, C]`, `fc0.bias [C]` |
//! | `mlp:F-H1-…-Hk-C` | `fc0.weight [F, H1]`, `fc0.bias [H1]`, …, `fc{k}.weight [Hk, C]`, `fc{k}.bias [C]` |
//! | `cnn:CxHxW-K1-…-Kn-C` | `conv0.weight [K1, C, 3, 3]`, `conv0.bias [K1]`, …, `fc.weight [Kn·H'·W', C]`, `fc.bias [C]` |
//! | `gpt:V-D-L-H-T` | `wte [V, D]`, `wpe [T, D]`, then per block `h{l}.…` (12 tensors), then `ln_f.weight [D]`, `ln_f.bias [D]`: see [`crate::gpt`] |
//!
//! Dense weights are stored **input-major** (`[in, out]`, i.e. already transposed with
//! respect to PyTorch's `nn.Linear`), so the forward pass is `x @ W + b` with no transpose.
//! Each CNN stage is `conv3x3 (padding 1) → +bias → ReLU → maxpool 2x2` (floor), so
//! `H' = H / 2^n` and `W' = W / 2^n`.
//!
//! # Initialisation
//!
//! Initial weights are drawn from [`SplitMix64`] streams derived from the spec's seed and the
//! parameter index, as `U(-b, b)` with `b = sqrt(6 / fan_in)` (Kaiming-uniform) for layers
//! followed by a ReLU and `b = sqrt(6 / (fan_in + fan_out))` (Xavier-uniform) for the output
//! layer; biases start at zero. A `gpt` draws its weights as `U(-b, b)` with
//! `b = 0.02·√3` (standard deviation 0.02, GPT-2's), residual output projections scaled by
//! `1/√(2L)`; LayerNorm gains start at 1 (see [`crate::gpt`]). Only exact IEEE operations
//! (`+ − × ÷ √`) are used, so every machine gets the same bits.

use std::fmt;

use candle_core::{DType, Device, Tensor, Var};
use codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};
use crate::rng::SplitMix64;
use crate::update;

/// Domain tag that starts the canonical encoding of a [`ModelSpec`].
pub const SPEC_DOMAIN: &[u8; 24] = b"trainchain/model-spec/v1";

/// Largest parameter count a spec may have (updates carry a `u32` length).
pub const MAX_PARAMS: usize = 1 << 28;

/// Default hidden width used when a bare `mlp` is resolved against a data set.
pub const DEFAULT_MLP_HIDDEN: u32 = 128;

/// Default conv channels used when a bare `cnn` is resolved against a data set.
pub const DEFAULT_CNN_CHANNELS: [u32; 2] = [8, 16];

/// Default sizes of a bare `gpt` (see [`ModelSpec::resolve`]): vocabulary, width, blocks,
/// heads, context.
pub const DEFAULT_GPT: [u32; 5] = [256, 64, 2, 4, 64];

/// The architecture part of a [`ModelSpec`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arch {
	/// Multinomial logistic regression: one dense layer.
	Logistic {
		/// Number of input features.
		inputs: u32,
		/// Number of classes.
		classes: u32,
	},
	/// Multi-layer perceptron with ReLU hidden layers.
	Mlp {
		/// Number of input features.
		inputs: u32,
		/// Hidden layer widths (may be empty).
		hidden: Vec<u32>,
		/// Number of classes.
		classes: u32,
	},
	/// Small CNN: `conv3x3 → ReLU → maxpool2` stages, then one dense layer.
	Cnn {
		/// Input channels.
		channels: u32,
		/// Input height.
		height: u32,
		/// Input width.
		width: u32,
		/// Output channels of each conv stage (at least one).
		conv: Vec<u32>,
		/// Number of classes.
		classes: u32,
	},
	/// Decoder-only transformer language model (see [`crate::gpt`]). Appended last so the
	/// SCALE encodings (and commitments) of the other kinds are unchanged.
	Gpt {
		/// Vocabulary size (256 for bytes).
		vocab: u32,
		/// Model width `d`.
		d_model: u32,
		/// Number of transformer blocks.
		layers: u32,
		/// Attention heads (dividing `d_model`).
		heads: u32,
		/// Context length `T` (tokens the model reads per row).
		context: u32,
	},
}

/// A model: architecture plus the seed of its initial weights.
///
/// The string form (see [`ModelSpec::parse`] and `Display`) is
/// `logreg:F-C`, `mlp:F-H1-...-C`, `cnn:CxHxW-K1-...-C` or `gpt:V-D-L-H-T`, optionally
/// followed by `@seed` (default seed 0), e.g. `mlp:64-32-10@7`, `gpt:256-64-2-4-64@1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelSpec {
	/// The architecture.
	pub arch: Arch,
	/// Seed of the initial weights.
	pub seed: u64,
}

/// Kind of a parameter tensor, used by the initialiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
	/// U(-b, b), b = sqrt(6 / fan_in).
	Kaiming {
		fan_in: usize,
	},
	/// U(-b, b), b = sqrt(6 / (fan_in + fan_out)).
	Xavier {
		fan_in: usize,
		fan_out: usize,
	},
	Zeros,
	/// All ones (LayerNorm gains).
	Ones,
	/// U(-b, b), b = 0.02·√3 / √div (standard deviation 0.02 / √div).
	Small {
		div: usize,
	},
}

/// Name and shape of one parameter tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
	/// Name, e.g. `fc0.weight`.
	pub name: String,
	/// Shape.
	pub shape: Vec<usize>,
	pub(crate) init: Init,
}

impl ParamInfo {
	/// Number of elements.
	pub fn len(&self) -> usize {
		self.shape.iter().product()
	}

	/// True for a zero-sized tensor (never produced by a valid spec).
	pub fn is_empty(&self) -> bool {
		self.len() == 0
	}
}

fn spec_err(spec: &str, msg: impl Into<String>) -> TrainerError {
	TrainerError::Spec { spec: spec.to_string(), msg: msg.into() }
}

fn parse_dim(spec: &str, s: &str) -> Result<u32> {
	let v: u32 = s
		.trim()
		.parse()
		.map_err(|_| spec_err(spec, format!("{s:?} is not a positive integer")))?;
	if v == 0 {
		return Err(spec_err(spec, "sizes must be positive"));
	}
	Ok(v)
}

impl ModelSpec {
	/// Parse `logreg:F-C`, `mlp:F-H1-...-C`, `cnn:CxHxW-K1-...-C`, each optionally
	/// followed by `@seed`.
	pub fn parse(s: &str) -> Result<Self> {
		let (body, seed) = match s.split_once('@') {
			Some((b, seed)) => (
				b,
				seed.trim()
					.parse::<u64>()
					.map_err(|_| spec_err(s, format!("seed {seed:?} is not a u64")))?,
			),
			None => (s, 0),
		};
		let (kind, dims) = body.split_once(':').ok_or_else(|| {
			spec_err(s, "expected KIND:DIMS, e.g. mlp:64-32-10, logreg:64-10, cnn:1x8x8-8-16-10")
		})?;
		let parts: Vec<&str> = dims.split('-').collect();
		let arch = match kind.trim() {
			"logreg" | "logistic" => {
				let [i, c] = parts.as_slice() else {
					return Err(spec_err(s, "logreg takes exactly INPUTS-CLASSES"));
				};
				Arch::Logistic { inputs: parse_dim(s, i)?, classes: parse_dim(s, c)? }
			},
			"mlp" => {
				let Some((first, rest)) = parts.split_first() else {
					return Err(spec_err(s, "mlp takes INPUTS-[HIDDEN-...]-CLASSES"));
				};
				let Some((last, hidden)) = rest.split_last() else {
					return Err(spec_err(s, "mlp takes INPUTS-[HIDDEN-...]-CLASSES"));
				};
				Arch::Mlp {
					inputs: parse_dim(s, first)?,
					hidden: hidden.iter().map(|h| parse_dim(s, h)).collect::<Result<_>>()?,
					classes: parse_dim(s, last)?,
				}
			},
			"cnn" => {
				let Some((first, rest)) = parts.split_first() else {
					return Err(spec_err(s, "cnn takes CxHxW-K1-...-CLASSES"));
				};
				let Some((last, conv)) = rest.split_last() else {
					return Err(spec_err(s, "cnn takes CxHxW-K1-...-CLASSES"));
				};
				let img: Vec<&str> = first.split('x').collect();
				let [c, h, w] = img.as_slice() else {
					return Err(spec_err(
						s,
						"cnn input must be CHANNELSxHEIGHTxWIDTH, e.g. 1x28x28",
					));
				};
				Arch::Cnn {
					channels: parse_dim(s, c)?,
					height: parse_dim(s, h)?,
					width: parse_dim(s, w)?,
					conv: conv.iter().map(|k| parse_dim(s, k)).collect::<Result<_>>()?,
					classes: parse_dim(s, last)?,
				}
			},
			"gpt" => {
				let [v, d, l, h, t] = parts.as_slice() else {
					return Err(spec_err(s, "gpt takes VOCAB-DMODEL-LAYERS-HEADS-CONTEXT"));
				};
				Arch::Gpt {
					vocab: parse_dim(s, v)?,
					d_model: parse_dim(s, d)?,
					layers: parse_dim(s, l)?,
					heads: parse_dim(s, h)?,
					context: parse_dim(s, t)?,
				}
			},
			other => {
				return Err(spec_err(
					s,
					format!("unknown model kind {other:?} (logreg, mlp, cnn, gpt)"),
				))
			},
		};
		let spec = Self { arch, seed };
		spec.validate()?;
		Ok(spec)
	}

	/// Parse a spec, allowing a bare kind (`logreg`, `mlp`, `cnn`, optionally with `@seed`)
	/// whose sizes are taken from a data set: `features` inputs and `classes` classes.
	/// A bare `mlp` gets one hidden layer of [`DEFAULT_MLP_HIDDEN`]; a bare `cnn` needs a
	/// square single-channel image (`features` a perfect square) and gets
	/// [`DEFAULT_CNN_CHANNELS`]. A bare `gpt` gets [`DEFAULT_GPT`] with the context
	/// `features − 1` (a text row holds the context plus the next token, see
	/// [`crate::data::text_dataset`]), or the default context without data (`features ≤ 1`).
	pub fn resolve(s: &str, features: usize, classes: usize) -> Result<Self> {
		let (body, seed_part) = match s.split_once('@') {
			Some((b, seed)) => (b, Some(seed)),
			None => (s, None),
		};
		if body.contains(':') {
			return Self::parse(s);
		}
		let body = body.trim();
		let full = match body {
			"logreg" | "logistic" => format!("logreg:{features}-{classes}"),
			"mlp" => format!("mlp:{features}-{DEFAULT_MLP_HIDDEN}-{classes}"),
			"cnn" => {
				let side = (0..=features).find(|k| k.saturating_mul(*k) >= features).unwrap_or(0);
				if side.saturating_mul(side) != features {
					return Err(spec_err(
						s,
						format!("{features} features are not a square image; give cnn:CxHxW-...-C"),
					));
				}
				let conv: Vec<String> =
					DEFAULT_CNN_CHANNELS.iter().map(|c| c.to_string()).collect();
				format!("cnn:1x{side}x{side}-{}-{classes}", conv.join("-"))
			},
			"gpt" => {
				let [v, d, l, h, t] = DEFAULT_GPT;
				let t = if features > 1 { features - 1 } else { t as usize };
				format!("gpt:{v}-{d}-{l}-{h}-{t}")
			},
			other => {
				return Err(spec_err(
					s,
					format!("unknown model kind {other:?} (logreg, mlp, cnn, gpt)"),
				))
			},
		};
		match seed_part {
			Some(seed) => Self::parse(&format!("{full}@{seed}")),
			None => Self::parse(&full),
		}
	}

	/// The context of a language-model spec string (`gpt:…`, or a bare `gpt` with its default
	/// context), `None` for any other kind: what a text loader needs before the spec can be
	/// sized from the data.
	pub fn lm_context(s: &str) -> Result<Option<usize>> {
		let body = s.split_once('@').map_or(s, |(b, _)| b).trim();
		let kind = body.split_once(':').map_or(body, |(k, _)| k).trim();
		if kind != "gpt" {
			return Ok(None);
		}
		Ok(Some(Self::resolve(s, 0, 0)?.in_features().saturating_sub(1)))
	}

	/// Check sizes: every dimension positive, CNN feature maps non-empty, at most
	/// [`MAX_PARAMS`] parameters.
	pub fn validate(&self) -> Result<()> {
		let s = self.to_string();
		let positive = |v: u32| {
			if v == 0 {
				Err(spec_err(&s, "sizes must be positive"))
			} else {
				Ok(())
			}
		};
		match &self.arch {
			Arch::Logistic { inputs, classes } => {
				positive(*inputs)?;
				positive(*classes)?;
			},
			Arch::Mlp { inputs, hidden, classes } => {
				positive(*inputs)?;
				positive(*classes)?;
				for h in hidden {
					positive(*h)?;
				}
			},
			Arch::Cnn { channels, height, width, conv, classes } => {
				positive(*channels)?;
				positive(*height)?;
				positive(*width)?;
				positive(*classes)?;
				if conv.is_empty() {
					return Err(spec_err(&s, "cnn needs at least one conv stage"));
				}
				for k in conv {
					positive(*k)?;
				}
				let stages = u32::try_from(conv.len()).unwrap_or(u32::MAX);
				let div = 1u64.checked_shl(stages).unwrap_or(u64::MAX);
				if u64::from(*height) < div || u64::from(*width) < div {
					return Err(spec_err(
						&s,
						format!("a {height}x{width} image is too small for {stages} 2x2 max-pools"),
					));
				}
			},
			Arch::Gpt { vocab, d_model, layers, heads, context } => {
				crate::gpt::validate(&s, *vocab, *d_model, *layers, *heads, *context)?;
			},
		}
		let mut total: usize = 0;
		for p in self.param_infos_unchecked() {
			let n = p
				.shape
				.iter()
				.try_fold(1usize, |a, d| a.checked_mul(*d))
				.ok_or_else(|| spec_err(&s, "too many parameters"))?;
			total = total.checked_add(n).ok_or_else(|| spec_err(&s, "too many parameters"))?;
		}
		if total > MAX_PARAMS {
			return Err(spec_err(
				&s,
				format!("{total} parameters exceed the limit of {MAX_PARAMS}"),
			));
		}
		Ok(())
	}

	/// Number of input features (`C·H·W` for a CNN; `context + 1` token ids for a `gpt`:
	/// the tokens it reads and the one after the last).
	pub fn in_features(&self) -> usize {
		match &self.arch {
			Arch::Gpt { context, .. } => *context as usize + 1,
			Arch::Logistic { inputs, .. } | Arch::Mlp { inputs, .. } => *inputs as usize,
			Arch::Cnn { channels, height, width, .. } => {
				(*channels as usize) * (*height as usize) * (*width as usize)
			},
		}
	}

	/// Number of classes (the vocabulary size of a `gpt`).
	pub fn classes(&self) -> usize {
		match &self.arch {
			Arch::Gpt { vocab, .. } => *vocab as usize,
			Arch::Logistic { classes, .. }
			| Arch::Mlp { classes, .. }
			| Arch::Cnn { classes, .. } => *classes as usize,
		}
	}

	/// Names and shapes of the parameters, in the flat-vector order.
	pub fn param_infos(&self) -> Result<Vec<ParamInfo>> {
		self.validate()?;
		Ok(self.param_infos_unchecked())
	}

	fn param_infos_unchecked(&self) -> Vec<ParamInfo> {
		let dense = |out: &mut Vec<ParamInfo>, name: &str, fin: usize, fout: usize, last: bool| {
			out.push(ParamInfo {
				name: format!("{name}.weight"),
				shape: vec![fin, fout],
				init: if last {
					Init::Xavier { fan_in: fin, fan_out: fout }
				} else {
					Init::Kaiming { fan_in: fin }
				},
			});
			out.push(ParamInfo {
				name: format!("{name}.bias"),
				shape: vec![fout],
				init: Init::Zeros,
			});
		};
		let mut out = Vec::new();
		match &self.arch {
			Arch::Logistic { inputs, classes } => {
				dense(&mut out, "fc0", *inputs as usize, *classes as usize, true);
			},
			Arch::Mlp { inputs, hidden, classes } => {
				let mut fin = *inputs as usize;
				for (i, h) in hidden.iter().enumerate() {
					dense(&mut out, &format!("fc{i}"), fin, *h as usize, false);
					fin = *h as usize;
				}
				dense(&mut out, &format!("fc{}", hidden.len()), fin, *classes as usize, true);
			},
			Arch::Cnn { channels, height, width, conv, classes } => {
				let mut cin = *channels as usize;
				let (mut h, mut w) = (*height as usize, *width as usize);
				for (i, k) in conv.iter().enumerate() {
					let k = *k as usize;
					out.push(ParamInfo {
						name: format!("conv{i}.weight"),
						shape: vec![k, cin, 3, 3],
						init: Init::Kaiming { fan_in: cin.saturating_mul(9) },
					});
					out.push(ParamInfo {
						name: format!("conv{i}.bias"),
						shape: vec![k],
						init: Init::Zeros,
					});
					cin = k;
					h /= 2;
					w /= 2;
				}
				dense(
					&mut out,
					"fc",
					cin.saturating_mul(h).saturating_mul(w),
					*classes as usize,
					true,
				);
			},
			Arch::Gpt { vocab, d_model, layers, context, .. } => {
				crate::gpt::param_infos(&mut out, *vocab, *d_model, *layers, *context);
			},
		}
		out
	}

	/// True for a language model (`gpt`): rows are token ids, the loss covers every position.
	pub fn is_lm(&self) -> bool {
		matches!(self.arch, Arch::Gpt { .. })
	}

	/// Total number of parameters.
	pub fn num_params(&self) -> Result<usize> {
		Ok(self.param_infos()?.iter().map(ParamInfo::len).sum())
	}

	/// The deterministic initial parameters (flat, in declared order).
	pub fn initial_params(&self) -> Result<Vec<f32>> {
		let infos = self.param_infos()?;
		let total = infos.iter().map(ParamInfo::len).sum();
		let mut out = Vec::with_capacity(total);
		for (idx, p) in infos.iter().enumerate() {
			let mut rng = SplitMix64::derive(self.seed, &[idx as u64]);
			let bound = match p.init {
				Init::Kaiming { fan_in } => (6.0f32 / fan_in.max(1) as f32).sqrt(),
				Init::Xavier { fan_in, fan_out } => {
					(6.0f32 / fan_in.saturating_add(fan_out).max(1) as f32).sqrt()
				},
				Init::Zeros | Init::Ones => 0.0,
				Init::Small { div } => 0.02f32 * 3.0f32.sqrt() / (div.max(1) as f32).sqrt(),
			};
			let fill = if p.init == Init::Ones { 1.0 } else { 0.0 };
			for _ in 0..p.len() {
				out.push(if bound == 0.0 { fill } else { rng.uniform(bound) });
			}
		}
		Ok(out)
	}

	/// Canonical bytes of the spec: [`SPEC_DOMAIN`] followed by the SCALE encoding of
	/// `(arch, seed)`.
	pub fn canonical_bytes(&self) -> Vec<u8> {
		(SPEC_DOMAIN, &self.arch, self.seed).encode()
	}

	/// Decode [`ModelSpec::canonical_bytes`].
	pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self> {
		let mut input = bytes;
		let (domain, arch, seed) = <([u8; 24], Arch, u64)>::decode(&mut input)
			.map_err(|e| TrainerError::Decode { what: "model spec", msg: e.to_string() })?;
		if &domain != SPEC_DOMAIN {
			return Err(TrainerError::Decode {
				what: "model spec",
				msg: "wrong domain tag".into(),
			});
		}
		if !input.is_empty() {
			return Err(TrainerError::Decode {
				what: "model spec",
				msg: format!("{} trailing bytes", input.len()),
			});
		}
		let spec = Self { arch, seed };
		spec.validate()?;
		Ok(spec)
	}

	/// The job's model commitment:
	/// `blake2_256(canonical_bytes(spec) ‖ update::encode_state(initial_params))`.
	pub fn commitment(&self) -> Result<[u8; 32]> {
		let mut bytes = self.canonical_bytes();
		bytes.extend_from_slice(&update::encode_state(&self.initial_params()?));
		Ok(sp_crypto_hashing::blake2_256(&bytes))
	}
}

impl fmt::Display for ModelSpec {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		let join = |v: &[u32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
		match &self.arch {
			Arch::Logistic { inputs, classes } => write!(f, "logreg:{inputs}-{classes}")?,
			Arch::Mlp { inputs, hidden, classes } => {
				let mut parts = vec![inputs.to_string()];
				parts.extend(join(hidden));
				parts.push(classes.to_string());
				write!(f, "mlp:{}", parts.join("-"))?
			},
			Arch::Cnn { channels, height, width, conv, classes } => {
				let mut parts = vec![format!("{channels}x{height}x{width}")];
				parts.extend(join(conv));
				parts.push(classes.to_string());
				write!(f, "cnn:{}", parts.join("-"))?
			},
			Arch::Gpt { vocab, d_model, layers, heads, context } => {
				write!(f, "gpt:{vocab}-{d_model}-{layers}-{heads}-{context}")?
			},
		}
		write!(f, "@{}", self.seed)
	}
}

impl std::str::FromStr for ModelSpec {
	type Err = TrainerError;
	fn from_str(s: &str) -> Result<Self> {
		Self::parse(s)
	}
}

/// A model: its spec and its parameters as candle [`Var`]s (on the CPU), in declared order.
#[derive(Debug)]
pub struct Model {
	spec: ModelSpec,
	infos: Vec<ParamInfo>,
	vars: Vec<Var>,
	device: Device,
}

impl Model {
	/// A model with the spec's deterministic initial weights.
	pub fn new(spec: &ModelSpec) -> Result<Self> {
		let params = spec.initial_params()?;
		Self::from_flat(spec, &params)
	}

	/// A model with the given flat parameters.
	pub fn from_flat(spec: &ModelSpec, params: &[f32]) -> Result<Self> {
		let infos = spec.param_infos()?;
		let device = Device::Cpu;
		let expected: usize = infos.iter().map(ParamInfo::len).sum();
		if params.len() != expected {
			return Err(TrainerError::mismatch(
				format!("parameter count of {spec}"),
				expected,
				params.len(),
			));
		}
		update::check_finite("model parameters", params)?;
		let mut vars = Vec::with_capacity(infos.len());
		let mut off = 0usize;
		for p in &infos {
			let n = p.len();
			let chunk = params.get(off..off + n).unwrap_or_default();
			vars.push(Var::from_tensor(&Tensor::from_slice(chunk, p.shape.as_slice(), &device)?)?);
			off += n;
		}
		Ok(Self { spec: spec.clone(), infos, vars, device })
	}

	/// A deep copy (fresh storage: training the copy does not touch `self`).
	pub fn try_clone(&self) -> Result<Self> {
		Self::from_flat(&self.spec, &self.flat_params()?)
	}

	/// The spec.
	pub fn spec(&self) -> &ModelSpec {
		&self.spec
	}

	/// The device (always the CPU for now).
	pub fn device(&self) -> &Device {
		&self.device
	}

	/// Names and shapes of the parameters, in declared order.
	pub fn param_infos(&self) -> &[ParamInfo] {
		&self.infos
	}

	/// The parameter variables, in declared order (clones share storage with the model).
	pub fn vars(&self) -> &[Var] {
		&self.vars
	}

	/// Named parameters, in declared order.
	pub fn named_params(&self) -> impl Iterator<Item = (&str, &Var)> {
		self.infos.iter().map(|p| p.name.as_str()).zip(self.vars.iter())
	}

	/// Total number of parameters (length of [`Model::flat_params`]).
	pub fn num_params(&self) -> usize {
		self.infos.iter().map(ParamInfo::len).sum()
	}

	/// All parameters as one flat vector in declared order.
	pub fn flat_params(&self) -> Result<Vec<f32>> {
		let mut out = Vec::with_capacity(self.num_params());
		for v in &self.vars {
			out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
		}
		Ok(out)
	}

	/// Replace all parameters from a flat vector in declared order. Rejects a vector of the
	/// wrong length or with NaN/inf values (the model is left unchanged then).
	pub fn set_flat_params(&mut self, params: &[f32]) -> Result<()> {
		if params.len() != self.num_params() {
			return Err(TrainerError::mismatch(
				format!("parameter count of {}", self.spec),
				self.num_params(),
				params.len(),
			));
		}
		update::check_finite("model parameters", params)?;
		let mut off = 0usize;
		for (p, v) in self.infos.iter().zip(&self.vars) {
			let n = p.len();
			let chunk = params.get(off..off + n).unwrap_or_default();
			v.set(&Tensor::from_slice(chunk, p.shape.as_slice(), &self.device)?)?;
			off += n;
		}
		Ok(())
	}

	/// Logits `[batch, classes]` for inputs `[batch, in_features]` (f32). For a `gpt`, the
	/// inputs are rows of `context + 1` token ids (as f32) and the logits are
	/// `[batch, context, vocab]`, predicting tokens `1..=context` of each row from the ones
	/// before (see [`crate::gpt::forward_tokens`] for raw token ids of any length ≤ context).
	pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
		let (b, f) = xs.dims2()?;
		if f != self.spec.in_features() {
			return Err(TrainerError::mismatch(
				format!("input features of {}", self.spec),
				self.spec.in_features(),
				f,
			));
		}
		let dense = |h: Tensor, vars: &[Var], relu_last: bool| -> Result<Tensor> {
			let mut h = h;
			let n = vars.len() / 2;
			for (i, pair) in vars.chunks_exact(2).enumerate() {
				let [w, bias] = pair else { continue };
				h = crate::ops::dense(&h, w.as_tensor(), bias.as_tensor())?;
				if relu_last || i + 1 < n {
					h = h.relu()?;
				}
			}
			Ok(h)
		};
		match &self.spec.arch {
			Arch::Gpt { context, .. } => {
				let ids = xs.narrow(1, 0, *context as usize)?.to_dtype(DType::U32)?;
				crate::gpt::forward_tokens(self, &ids)
			},
			Arch::Logistic { .. } | Arch::Mlp { .. } => dense(xs.clone(), &self.vars, false),
			Arch::Cnn { channels, height, width, conv, .. } => {
				let mut h =
					xs.reshape((b, *channels as usize, *height as usize, *width as usize))?;
				let n_conv = conv.len();
				for pair in self.vars.chunks_exact(2).take(n_conv) {
					let [w, bias] = pair else { continue };
					let k = bias.as_tensor().dim(0)?;
					h = h
						.conv2d(w.as_tensor(), 1, 1, 1, 1)?
						.broadcast_add(&bias.as_tensor().reshape((1, k, 1, 1))?)?
						.relu()?;
					h = max_pool2x2(&h)?;
				}
				let h = h.flatten_from(1)?;
				let fc = self.vars.get(2 * n_conv..).unwrap_or_default();
				dense(h, fc, false)
			},
		}
	}

	/// The training loss of a batch and what it was computed from, for every arch: the one
	/// place that knows how a language model's loss differs from a classifier's.
	///
	/// `xs [B, in_features]` (f32), `ys [B]` (u32). Returns `(loss, logits, targets)`:
	/// * classifiers: mean cross-entropy of `logits [B, classes]` against `targets = ys`;
	/// * `gpt`: mean cross-entropy over all `B·T` positions of `logits [B·T, vocab]` against
	///   `targets [B·T]` = tokens `1..=T` of each row (`ys` is not used).
	pub fn batch_loss(&self, xs: &Tensor, ys: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
		let logits = self.forward(xs)?;
		let (logits, targets) = match &self.spec.arch {
			Arch::Gpt { vocab, context, .. } => {
				let (b, t) = (xs.dim(0)?, *context as usize);
				let targets =
					xs.narrow(1, 1, t)?.to_dtype(DType::U32)?.reshape(b.saturating_mul(t))?;
				(logits.reshape((b.saturating_mul(t), *vocab as usize))?, targets)
			},
			_ => (logits, ys.clone()),
		};
		let loss = crate::ops::softmax_cross_entropy(&logits, &targets)?;
		Ok((loss, logits, targets))
	}

	/// Convenience: build an input tensor `[batch, in_features]` from row-major data.
	pub fn input_tensor(&self, data: &[f32], batch: usize) -> Result<Tensor> {
		let f = self.spec.in_features();
		if data.len() != batch.saturating_mul(f) {
			return Err(TrainerError::mismatch(
				"input buffer length",
				batch.saturating_mul(f),
				data.len(),
			));
		}
		Ok(Tensor::from_slice(data, (batch, f), &self.device)?)
	}
}

/// 2x2 max-pool with stride 2 (odd trailing rows/columns dropped), built from a reshape and
/// two `max` reductions. candle 0.11's `max_pool2d` backward scales the gradient by the
/// fraction of maxima in each window (÷4 for a unique max), which the finite-difference test
/// caught; the reduction's backward routes the full gradient to the maximum, as it should.
pub fn max_pool2x2(h: &Tensor) -> Result<Tensor> {
	let (b, c, hh, ww) = h.dims4()?;
	let (h2, w2) = (hh / 2, ww / 2);
	let cropped = if hh % 2 == 1 || ww % 2 == 1 {
		h.narrow(2, 0, h2 * 2)?.narrow(3, 0, w2 * 2)?
	} else {
		h.clone()
	};
	Ok(cropped.reshape((b, c, h2, 2, w2, 2))?.max(5)?.max(3)?)
}

/// Dtype of every parameter.
pub const PARAM_DTYPE: DType = DType::F32;
