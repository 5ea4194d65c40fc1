//! Model checkpoints as safetensors files (via candle's safetensors support).
//!
//! A checkpoint holds one f32 tensor per parameter, named as in [`crate::model`]
//! (`fc0.weight`, ...), plus a `u8` tensor [`SPEC_TENSOR`] with the spec's canonical bytes,
//! so a checkpoint knows its own architecture and seed. Saving then loading gives the
//! same [`crate::update::model_state_hash`].
//!
//! A checkpoint written by `train` also holds the input standardisation fitted on the
//! training data ([`crate::standardize::Standardizer`]) as two f32 tensors of length
//! `in_features`, [`MEAN_TENSOR`] and [`STD_TENSOR`]; `eval` applies them to its data before
//! the forward pass. They are not model parameters: the model state hash does not cover
//! them. Checkpoints without them (older ones, `train --no-standardize`) load as before.
//!
//! A checkpoint written by `run` holds the job's whole model state: the parameters, and the
//! outer optimiser's state (DiLoCo's momentum, [`crate::outer`]) as the f32 tensor
//! [`OUTER_TENSOR`], so that `run --resume` continues with exactly the state the chain
//! finalised ([`load_all`]). When the job keeps each contributor's inner optimiser state
//! (`inner_state=kept`), `run --out` and `peer --out` store that too ([`save_resumable`],
//! [`INNER_META_TENSOR`]), so that `--resume` continues the contributor's own rounds exactly
//! ([`load_inner`]). Files are written to a temporary name and renamed, so a trainer
//! killed while saving leaves the previous file whole.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, TrainerError};
use crate::model::{Model, ModelSpec};
use crate::standardize::Standardizer;
use crate::train::{InnerKind, InnerSnapshot};

/// Name of the tensor that stores the spec's canonical bytes.
pub const SPEC_TENSOR: &str = "__trainchain_spec__";

/// Name of the tensor with the per-feature input means (see the module docs).
pub const MEAN_TENSOR: &str = "__trainchain_input_mean__";

/// Name of the tensor with the per-feature input stds (see the module docs).
pub const STD_TENSOR: &str = "__trainchain_input_std__";

/// Name of the tensor with the outer optimiser's state (see the module docs).
pub const OUTER_TENSOR: &str = "__trainchain_outer_state__";

/// Names of the tensors with a contributor's inner optimiser state (see the module docs):
/// `[kind (0 SGD, 1 AdamW), step, one 0/1 per parameter tensor]` as u32, then the first and
/// (AdamW) second moments as f32.
pub const INNER_META_TENSOR: &str = "__trainchain_inner_meta__";
/// See [`INNER_META_TENSOR`].
pub const INNER_FIRST_TENSOR: &str = "__trainchain_inner_first__";
/// See [`INNER_META_TENSOR`].
pub const INNER_SECOND_TENSOR: &str = "__trainchain_inner_second__";

const INNER_TENSORS: [&str; 3] = [INNER_META_TENSOR, INNER_FIRST_TENSOR, INNER_SECOND_TENSOR];

/// Save the model's parameters (and spec) to `path`.
pub fn save(model: &Model, path: impl AsRef<Path>) -> Result<()> {
	save_with(model, None, path)
}

/// Save the model's parameters, spec and (if any) the input standardisation to `path`.
pub fn save_with(
	model: &Model,
	standardizer: Option<&Standardizer>,
	path: impl AsRef<Path>,
) -> Result<()> {
	save_all(model, standardizer, &[], path)
}

/// [`save_with`], plus the outer optimiser's state (nothing stored when it is empty).
pub fn save_all(
	model: &Model,
	standardizer: Option<&Standardizer>,
	outer_state: &[f32],
	path: impl AsRef<Path>,
) -> Result<()> {
	save_resumable(model, standardizer, outer_state, None, path)
}

/// [`save_all`], plus a contributor's inner optimiser state when its job keeps one
/// (`inner_state=kept`; read back with [`load_inner`]).
pub fn save_resumable(
	model: &Model,
	standardizer: Option<&Standardizer>,
	outer_state: &[f32],
	inner: Option<&InnerSnapshot>,
	path: impl AsRef<Path>,
) -> Result<()> {
	let path = path.as_ref();
	let mut map: HashMap<String, Tensor> = HashMap::new();
	for (name, var) in model.named_params() {
		map.insert(name.to_string(), var.as_tensor().clone());
	}
	let spec = model.spec().canonical_bytes();
	let n = spec.len();
	map.insert(SPEC_TENSOR.to_string(), Tensor::from_vec(spec, n, &Device::Cpu)?);
	if let Some(s) = standardizer {
		if s.n_features() != model.spec().in_features() {
			return Err(TrainerError::mismatch(
				format!("standardizer features vs model {}", model.spec()),
				model.spec().in_features(),
				s.n_features(),
			));
		}
		let f = s.n_features();
		map.insert(MEAN_TENSOR.into(), Tensor::from_slice(s.mean(), f, &Device::Cpu)?);
		map.insert(STD_TENSOR.into(), Tensor::from_slice(s.std(), f, &Device::Cpu)?);
	}
	if !outer_state.is_empty() {
		let t = Tensor::from_slice(outer_state, outer_state.len(), &Device::Cpu)?;
		map.insert(OUTER_TENSOR.into(), t);
	}
	if let Some(inner) = inner {
		insert_inner(&mut map, inner)?;
	}
	let err = |msg: String| TrainerError::Checkpoint { path: path.to_path_buf(), msg };
	let mut tmp = path.as_os_str().to_owned();
	tmp.push(".partial");
	let tmp = std::path::PathBuf::from(tmp);
	candle_core::safetensors::save(&map, &tmp).map_err(|e| err(format!("cannot write: {e}")))?;
	std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot rename {}: {e}", tmp.display())))
}

/// Read the spec stored in a checkpoint, if it has one.
pub fn read_spec(path: impl AsRef<Path>) -> Result<Option<ModelSpec>> {
	let path = path.as_ref();
	let map = read_map(path)?;
	spec_of(path, &map)
}

fn read_map(path: &Path) -> Result<HashMap<String, Tensor>> {
	if !path.exists() {
		return Err(TrainerError::io(
			path,
			std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
		));
	}
	candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainerError::Checkpoint {
		path: path.to_path_buf(),
		msg: format!("not a readable safetensors file: {e}"),
	})
}

fn spec_of(path: &Path, map: &HashMap<String, Tensor>) -> Result<Option<ModelSpec>> {
	let Some(t) = map.get(SPEC_TENSOR) else {
		return Ok(None);
	};
	let bytes = t.to_dtype(DType::U8)?.flatten_all()?.to_vec1::<u8>()?;
	ModelSpec::from_canonical_bytes(&bytes)
		.map(Some)
		.map_err(|e| TrainerError::Checkpoint {
			path: path.to_path_buf(),
			msg: format!("stored spec: {e}"),
		})
}

/// The input standardisation stored in a checkpoint's tensors, if any: both tensors or
/// neither, f32, one value per input feature of the model.
fn standardizer_of(
	path: &Path,
	map: &HashMap<String, Tensor>,
	spec: &ModelSpec,
) -> Result<Option<Standardizer>> {
	let err = |msg: String| TrainerError::Checkpoint { path: path.to_path_buf(), msg };
	let (mean, std) = match (map.get(MEAN_TENSOR), map.get(STD_TENSOR)) {
		(None, None) => return Ok(None),
		(Some(m), Some(s)) => (m, s),
		_ => return Err(err(format!("has only one of {MEAN_TENSOR:?} and {STD_TENSOR:?}"))),
	};
	let f = spec.in_features();
	for (name, t) in [(MEAN_TENSOR, mean), (STD_TENSOR, std)] {
		if t.dtype() != DType::F32 || t.dims() != [f] {
			return Err(err(format!(
				"tensor {name:?} is {:?} {:?}, model {spec} needs f32 [{f}]",
				t.dtype(),
				t.dims()
			)));
		}
	}
	Standardizer::new(mean.to_vec1::<f32>()?, std.to_vec1::<f32>()?)
		.map(Some)
		.map_err(|e| err(e.to_string()))
}

/// Load a checkpoint. With `spec = None` the stored spec is used (error if there is none);
/// with `Some(spec)` the stored spec, if any, must equal it. Every parameter must be present
/// with the right shape and dtype, and no unknown tensors may be present. A stored input
/// standardisation is checked but not returned: see [`load_with`].
pub fn load(path: impl AsRef<Path>, spec: Option<&ModelSpec>) -> Result<Model> {
	load_with(path, spec).map(|(model, _)| model)
}

/// [`load`], plus the input standardisation stored with the model (`None` when the
/// checkpoint has none: its model takes the data as it is).
pub fn load_with(
	path: impl AsRef<Path>,
	spec: Option<&ModelSpec>,
) -> Result<(Model, Option<Standardizer>)> {
	load_all(path, spec).map(|(model, standardizer, _)| (model, standardizer))
}

/// [`load_with`], plus the stored outer optimiser state (empty when there is none).
pub fn load_all(
	path: impl AsRef<Path>,
	spec: Option<&ModelSpec>,
) -> Result<(Model, Option<Standardizer>, Vec<f32>)> {
	let path = path.as_ref();
	let map = read_map(path)?;
	let err = |msg: String| TrainerError::Checkpoint { path: path.to_path_buf(), msg };
	let stored = spec_of(path, &map)?;
	let spec = match (spec, stored) {
		(Some(s), Some(st)) if *s != st => {
			return Err(err(format!("was saved for model {st}, not {s}")));
		},
		(Some(s), _) => s.clone(),
		(None, Some(st)) => st,
		(None, None) => return Err(err("has no stored model spec; pass the model spec".into())),
	};
	let infos = spec.param_infos()?;
	let mut flat = Vec::with_capacity(infos.iter().map(|p| p.len()).sum());
	for p in &infos {
		let t = map
			.get(&p.name)
			.ok_or_else(|| err(format!("missing tensor {:?} of model {spec}", p.name)))?;
		if t.dtype() != DType::F32 {
			return Err(err(format!(
				"tensor {:?} has dtype {:?}, expected f32",
				p.name,
				t.dtype()
			)));
		}
		if t.dims() != p.shape.as_slice() {
			return Err(err(format!(
				"tensor {:?} has shape {:?}, model {spec} needs {:?}",
				p.name,
				t.dims(),
				p.shape
			)));
		}
		flat.extend(t.flatten_all()?.to_vec1::<f32>()?);
	}
	let known = [SPEC_TENSOR, MEAN_TENSOR, STD_TENSOR, OUTER_TENSOR];
	let known: Vec<&str> = known.into_iter().chain(INNER_TENSORS).collect();
	if let Some(extra) = map
		.keys()
		.find(|k| !known.contains(&k.as_str()) && !infos.iter().any(|p| &p.name == *k))
	{
		return Err(err(format!("unexpected tensor {extra:?} for model {spec}")));
	}
	let standardizer = standardizer_of(path, &map, &spec)?;
	let outer = match map.get(OUTER_TENSOR) {
		None => Vec::new(),
		Some(t) if t.dtype() == DType::F32 && t.rank() == 1 => t.to_vec1::<f32>()?,
		Some(t) => {
			return Err(err(format!(
				"tensor {OUTER_TENSOR:?} is {:?} {:?}, expected f32 [n]",
				t.dtype(),
				t.dims()
			)))
		},
	};
	let model = Model::from_flat(&spec, &flat).map_err(|e| err(e.to_string()))?;
	Ok((model, standardizer, outer))
}

fn insert_inner(map: &mut HashMap<String, Tensor>, inner: &InnerSnapshot) -> Result<()> {
	let kind = match inner.kind {
		InnerKind::Sgd => 0u32,
		InnerKind::Adam => 1,
	};
	let meta: Vec<u32> = [kind, inner.step]
		.into_iter()
		.chain(inner.present.iter().map(|&p| u32::from(p)))
		.collect();
	let vec_u32 = |v: Vec<u32>| {
		let n = v.len();
		Tensor::from_vec(v, n, &Device::Cpu)
	};
	let vec_f32 = |v: &[f32]| Tensor::from_slice(v, v.len(), &Device::Cpu);
	map.insert(INNER_META_TENSOR.into(), vec_u32(meta)?);
	map.insert(INNER_FIRST_TENSOR.into(), vec_f32(&inner.first)?);
	if inner.kind == InnerKind::Adam {
		map.insert(INNER_SECOND_TENSOR.into(), vec_f32(&inner.second)?);
	}
	Ok(())
}

/// The inner optimiser state stored by [`save_resumable`], if the checkpoint has one. Its
/// sizes are checked against a model by [`crate::train::InnerState::restore`].
pub fn load_inner(path: impl AsRef<Path>) -> Result<Option<InnerSnapshot>> {
	let path = path.as_ref();
	let map = read_map(path)?;
	let err = |msg: String| TrainerError::Checkpoint { path: path.to_path_buf(), msg };
	let Some(meta) = map.get(INNER_META_TENSOR) else {
		return Ok(None);
	};
	let f32s = |name: &str| -> Result<Vec<f32>> {
		match map.get(name) {
			Some(t) if t.dtype() == DType::F32 && t.rank() == 1 => Ok(t.to_vec1::<f32>()?),
			Some(t) => Err(err(format!(
				"tensor {name:?} is {:?} {:?}, expected f32 [n]",
				t.dtype(),
				t.dims()
			))),
			None => Err(err(format!("has {INNER_META_TENSOR:?} but no {name:?}"))),
		}
	};
	if meta.dtype() != DType::U32 || meta.rank() != 1 {
		return Err(err(format!("tensor {INNER_META_TENSOR:?} is not u32 [n]")));
	}
	let meta = meta.to_vec1::<u32>()?;
	let (kind, step, present) = match meta.as_slice() {
		[0, step, present @ ..] => (InnerKind::Sgd, *step, present),
		[1, step, present @ ..] => (InnerKind::Adam, *step, present),
		_ => return Err(err(format!("tensor {INNER_META_TENSOR:?} names no known optimizer"))),
	};
	if present.iter().any(|&p| p > 1) {
		return Err(err(format!("tensor {INNER_META_TENSOR:?} has a flag that is not 0 or 1")));
	}
	let second = match kind {
		InnerKind::Adam => f32s(INNER_SECOND_TENSOR)?,
		InnerKind::Sgd if map.contains_key(INNER_SECOND_TENSOR) => {
			return Err(err(format!("an SGD state with {INNER_SECOND_TENSOR:?}")))
		},
		InnerKind::Sgd => Vec::new(),
	};
	Ok(Some(InnerSnapshot {
		kind,
		step,
		first: f32s(INNER_FIRST_TENSOR)?,
		second,
		present: present.iter().map(|&p| p == 1).collect(),
	}))
}
