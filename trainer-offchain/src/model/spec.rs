//! Model specs (`logreg`, `mlp`, `cnn`, `gpt`), their parameter layout and seeded
//! initialisation.
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
