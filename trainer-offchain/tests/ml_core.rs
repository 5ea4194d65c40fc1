//! Models, gradients, updates, checkpoints and determinism.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use candle_core::Tensor;
use trainchain_trainer::data::gaussian_blobs;
use trainchain_trainer::model::Arch;
use trainchain_trainer::train::{local_round, OptimizerConfig, TrainConfig};
use trainchain_trainer::update::{self, model_state_hash};
use trainchain_trainer::{checkpoint, Model, ModelSpec, TrainerError};

fn shapes(spec: &str) -> Vec<(String, Vec<usize>)> {
	let m = Model::new(&ModelSpec::parse(spec).unwrap()).unwrap();
	m.param_infos().iter().map(|p| (p.name.clone(), p.shape.clone())).collect()
}

#[test]
fn model_shapes_and_outputs() {
	assert_eq!(
		shapes("logreg:64-10"),
		vec![("fc0.weight".into(), vec![64, 10]), ("fc0.bias".into(), vec![10])]
	);
	assert_eq!(
		shapes("mlp:64-32-16-10"),
		vec![
			("fc0.weight".into(), vec![64, 32]),
			("fc0.bias".into(), vec![32]),
			("fc1.weight".into(), vec![32, 16]),
			("fc1.bias".into(), vec![16]),
			("fc2.weight".into(), vec![16, 10]),
			("fc2.bias".into(), vec![10]),
		]
	);
	assert_eq!(
		shapes("cnn:1x28x28-8-16-10"),
		vec![
			("conv0.weight".into(), vec![8, 1, 3, 3]),
			("conv0.bias".into(), vec![8]),
			("conv1.weight".into(), vec![16, 8, 3, 3]),
			("conv1.bias".into(), vec![16]),
			("fc.weight".into(), vec![16 * 7 * 7, 10]),
			("fc.bias".into(), vec![10]),
		]
	);
	for (spec, f, c, n) in [
		("logreg:64-10", 64, 10, 650),
		("mlp:64-32-10", 64, 10, 64 * 32 + 32 + 32 * 10 + 10),
		("cnn:1x8x8-4-10", 64, 10, 4 * 9 + 4 + 4 * 16 * 10 + 10),
		("cnn:3x8x6-4-5-7", 144, 7, 4 * 27 + 4 + 5 * 36 + 5 + 5 * 2 * 7 + 7),
	] {
		let spec = ModelSpec::parse(spec).unwrap();
		let m = Model::new(&spec).unwrap();
		assert_eq!(m.num_params(), n, "{spec}");
		assert_eq!(spec.num_params().unwrap(), n);
		assert_eq!(m.flat_params().unwrap().len(), n);
		let xs = Tensor::zeros((5, f), candle_core::DType::F32, m.device()).unwrap();
		assert_eq!(m.forward(&xs).unwrap().dims(), &[5, c], "{spec}");
		let bad = Tensor::zeros((5, f + 1), candle_core::DType::F32, m.device()).unwrap();
		assert!(matches!(m.forward(&bad), Err(TrainerError::Mismatch { .. })));
	}
}

#[test]
fn spec_parsing_and_encoding() {
	let s = ModelSpec::parse("mlp:64-32-10@7").unwrap();
	assert_eq!(s.arch, Arch::Mlp { inputs: 64, hidden: vec![32], classes: 10 });
	assert_eq!(s.seed, 7);
	assert_eq!(s.to_string(), "mlp:64-32-10@7");
	assert_eq!(ModelSpec::parse(&s.to_string()).unwrap(), s);
	assert_eq!(ModelSpec::from_canonical_bytes(&s.canonical_bytes()).unwrap(), s);
	assert_eq!(ModelSpec::parse("mlp:64-10").unwrap().seed, 0);
	assert_eq!(ModelSpec::resolve("mlp@3", 64, 10).unwrap().to_string(), "mlp:64-128-10@3");
	assert_eq!(ModelSpec::resolve("cnn", 64, 10).unwrap().to_string(), "cnn:1x8x8-8-16-10@0");
	assert_eq!(ModelSpec::resolve("logreg", 5, 2).unwrap().to_string(), "logreg:5-2@0");
	for bad in [
		"mlp",
		"mlp:",
		"mlp:64",
		"mlp:64-0-10",
		"mlp:a-10",
		"rnn:3-4",
		"cnn:1x8-10",
		"cnn:1x8x8-10",
		"cnn:1x2x2-4-4-10",
		"mlp:4-10@x",
	] {
		assert!(matches!(ModelSpec::parse(bad), Err(TrainerError::Spec { .. })), "{bad}");
	}
	let json = serde_json::to_string(&s).unwrap();
	assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), s);
}

#[test]
fn init_is_deterministic_and_seeded() {
	let a = ModelSpec::parse("mlp:64-32-10@1").unwrap();
	let b = ModelSpec::parse("mlp:64-32-10@2").unwrap();
	assert_eq!(a.initial_params().unwrap(), a.initial_params().unwrap());
	assert_ne!(a.initial_params().unwrap(), b.initial_params().unwrap());
	assert_eq!(a.commitment().unwrap(), a.commitment().unwrap());
	assert_ne!(a.commitment().unwrap(), b.commitment().unwrap());
	assert_ne!(
		a.commitment().unwrap(),
		ModelSpec::parse("mlp:64-33-10@1").unwrap().commitment().unwrap()
	);
	// Kaiming bound of the first layer, zero biases.
	let p = a.initial_params().unwrap();
	let bound = (6.0f32 / 64.0).sqrt();
	assert!(p[..64 * 32].iter().all(|w| w.abs() <= bound));
	assert!(p[64 * 32..64 * 32 + 32].iter().all(|b| *b == 0.0));
	// The commitment is blake2_256(spec bytes ‖ state bytes) and pinned: changing the
	// initialiser or the encodings changes every job's commitment, so do it on purpose only.
	let mut bytes = a.canonical_bytes();
	bytes.extend(update::encode_state(&p));
	assert_eq!(a.commitment().unwrap(), blake2_256(&bytes));
	assert_eq!(
		update::hex32(&ModelSpec::parse("mlp:64-128-10@0").unwrap().commitment().unwrap()),
		"0x321ca593e04bc366ff3b155b52aa19a8c2cc900f9291b8f32866519d6cf18d04"
	);
}

fn blake2_256(bytes: &[u8]) -> [u8; 32] {
	sp_crypto_hashing::blake2_256(bytes)
}

/// Loss of a model on a batch (mean cross-entropy).
fn loss_of(m: &Model, xs: &Tensor, ys: &Tensor) -> f32 {
	candle_nn::loss::cross_entropy(&m.forward(xs).unwrap(), ys)
		.unwrap()
		.to_scalar::<f32>()
		.unwrap()
}

fn grad_check(spec: &str) {
	let spec = ModelSpec::parse(spec).unwrap();
	let data = gaussian_blobs(6, spec.in_features(), spec.classes(), 1.0, 0.5, 3).unwrap();
	let mut m = Model::new(&spec).unwrap();
	// Non-zero biases so every parameter gets a generic gradient.
	let mut p = m.flat_params().unwrap();
	for (i, x) in p.iter_mut().enumerate() {
		*x += 0.05 * ((i as f32 * 0.7).sin());
	}
	m.set_flat_params(&p).unwrap();
	let xs =
		Tensor::from_slice(data.features(), (data.len(), data.n_features()), m.device()).unwrap();
	let ys = Tensor::from_slice(data.labels(), data.len(), m.device()).unwrap();
	let loss = candle_nn::loss::cross_entropy(&m.forward(&xs).unwrap(), &ys).unwrap();
	let grads = m.backward(&loss).unwrap();
	let mut analytic = Vec::new();
	for v in m.vars() {
		analytic.extend(grads.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
	}
	assert_eq!(analytic.len(), p.len());
	let eps = 2e-3f32;
	let mut worst = 0f32;
	for i in 0..p.len() {
		let mut q = p.clone();
		q[i] = p[i] + eps;
		m.set_flat_params(&q).unwrap();
		let lp = loss_of(&m, &xs, &ys);
		q[i] = p[i] - eps;
		m.set_flat_params(&q).unwrap();
		let lm = loss_of(&m, &xs, &ys);
		let numeric = (lp - lm) / (2.0 * eps);
		let err = (numeric - analytic[i]).abs() / (1e-2 + numeric.abs().max(analytic[i].abs()));
		worst = worst.max(err);
		assert!(err < 0.05, "{spec} param {i}: numeric {numeric} vs analytic {}", analytic[i]);
	}
	eprintln!("{spec}: worst relative gradient error {worst:.2e}");
}

#[test]
fn finite_difference_gradients() {
	grad_check("logreg:3-3@1");
	grad_check("mlp:4-5-3@2");
	grad_check("cnn:1x4x4-2-3@3");
}

#[test]
fn update_encoding_round_trip_and_errors() {
	let u = vec![0.5f32, -1.25, 3.0e-8, 0.0];
	let bytes = update::encode(&u);
	assert_eq!(&bytes[..4], b"TCU1");
	assert_eq!(&bytes[4..8], &4u32.to_le_bytes());
	assert_eq!(&bytes[8..12], &0.5f32.to_le_bytes());
	assert_eq!(bytes.len(), 8 + 16);
	assert_eq!(update::decode(&bytes).unwrap(), u);
	assert_eq!(update::decode_expected(&bytes, 4).unwrap(), u);
	assert_eq!(update::hash(&u), blake2_256(&bytes));
	assert_ne!(
		update::hash(&u),
		update::state_hash(&u),
		"update and state hashes are domain-separated"
	);
	assert!(matches!(
		update::decode_expected(&bytes, 5),
		Err(TrainerError::Mismatch { expected: 5, found: 4, .. })
	));
	assert!(matches!(update::decode(&bytes[..bytes.len() - 1]), Err(TrainerError::Decode { .. })));
	assert!(matches!(update::decode(&bytes[..5]), Err(TrainerError::Decode { .. })));
	let mut wrong_magic = bytes.clone();
	wrong_magic[0] = b'X';
	assert!(matches!(update::decode(&wrong_magic), Err(TrainerError::Decode { .. })));
	for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
		let e = update::decode(&update::encode(&[1.0, bad])).unwrap_err();
		assert!(matches!(e, TrainerError::NonFinite { index: 1, .. }), "{e}");
		assert!(e.to_string().contains("#1"), "{e}");
	}
	assert!(update::decode_state(&bytes).is_err(), "state decoder rejects update magic");
	assert_eq!(update::decode_state(&update::encode_state(&u)).unwrap(), u);
}

#[test]
fn apply_update_and_average() {
	let spec = ModelSpec::parse("mlp:4-3-2").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let before = m.flat_params().unwrap();
	let n = m.num_params();
	let u: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
	update::apply_update(&mut m, &u).unwrap();
	let after = m.flat_params().unwrap();
	for i in 0..n {
		assert_eq!(after[i], before[i] + u[i]);
	}
	assert!(matches!(update::apply_update(&mut m, &u[1..]), Err(TrainerError::Mismatch { .. })));
	let mut nan = u.clone();
	nan[2] = f32::NAN;
	assert!(matches!(
		update::apply_update(&mut m, &nan),
		Err(TrainerError::NonFinite { index: 2, .. })
	));
	assert_eq!(m.flat_params().unwrap(), after, "failed updates leave the model unchanged");
	let a = vec![1.0f32, 2.0];
	let b = vec![3.0f32, 6.0];
	assert_eq!(update::weighted_average(&[(&a, 1), (&b, 3)]).unwrap(), vec![2.5, 5.0]);
	assert!(update::weighted_average(&[(&a, 1), (&b[..1], 3)]).is_err());
	assert!(update::weighted_average(&[]).is_err());
}

fn blobs_cfg(opt: OptimizerConfig) -> TrainConfig {
	TrainConfig { epochs: 2, max_steps: None, batch_size: 16, optimizer: opt, ..Default::default() }
}

#[test]
fn local_round_is_deterministic() {
	let data = gaussian_blobs(200, 8, 3, 2.0, 0.5, 9).unwrap();
	for opt in [OptimizerConfig::sgd(0.05, 0.9), OptimizerConfig::adam(0.01)] {
		for spec in ["mlp:8-16-3@4", "cnn:1x4x2-3-3@4"] {
			let spec = ModelSpec::parse(spec).unwrap();
			let run = |seed| {
				let mut m = Model::new(&spec).unwrap();
				let out = local_round(&mut m, &data, &blobs_cfg(opt), seed).unwrap();
				(update::hash(&out.update), out.samples, out.steps, model_state_hash(&m).unwrap())
			};
			let a = run(1);
			assert_eq!(a, run(1), "{spec} {opt:?}");
			assert_ne!(a.0, run(2).0, "the seed changes the shuffle and so the update");
			assert_eq!(a.1, 200);
			assert_eq!(a.2, 2 * 13);
		}
	}
	// max_steps overrides epochs.
	let spec = ModelSpec::parse("mlp:8-16-3").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let cfg = TrainConfig { max_steps: Some(30), ..blobs_cfg(OptimizerConfig::sgd(0.05, 0.9)) };
	assert_eq!(local_round(&mut m, &data, &cfg, 0).unwrap().steps, 30);
}

#[test]
fn update_equals_param_difference() {
	let data = gaussian_blobs(64, 8, 3, 2.0, 0.5, 1).unwrap();
	let spec = ModelSpec::parse("mlp:8-4-3").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let old = m.flat_params().unwrap();
	let out = local_round(&mut m, &data, &blobs_cfg(OptimizerConfig::sgd(0.1, 0.5)), 0).unwrap();
	let mut fresh = Model::from_flat(&spec, &old).unwrap();
	update::apply_update(&mut fresh, &out.update).unwrap();
	let (a, b) = (fresh.flat_params().unwrap(), m.flat_params().unwrap());
	for (x, y) in a.iter().zip(&b) {
		assert!((x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{x} vs {y}");
	}
	assert!(out.loss.is_finite() && out.loss > 0.0);
}

#[test]
fn checkpoint_round_trip() {
	let dir = tempfile::tempdir().unwrap();
	for spec in ["logreg:5-3@1", "mlp:6-4-3@2", "cnn:2x4x4-3-3@3"] {
		let spec = ModelSpec::parse(spec).unwrap();
		let mut m = Model::new(&spec).unwrap();
		let data = gaussian_blobs(32, spec.in_features(), 3, 2.0, 0.5, 1).unwrap();
		local_round(&mut m, &data, &blobs_cfg(OptimizerConfig::adam(0.01)), 5).unwrap();
		let path = dir.path().join("m.safetensors");
		checkpoint::save(&m, &path).unwrap();
		let back = checkpoint::load(&path, None).unwrap();
		assert_eq!(back.spec(), &spec);
		assert_eq!(model_state_hash(&back).unwrap(), model_state_hash(&m).unwrap());
		assert_eq!(back.flat_params().unwrap(), m.flat_params().unwrap());
		assert_eq!(checkpoint::read_spec(&path).unwrap(), Some(spec.clone()));
		let same = checkpoint::load(&path, Some(&spec)).unwrap();
		assert_eq!(model_state_hash(&same).unwrap(), model_state_hash(&m).unwrap());
		let other = ModelSpec::parse("mlp:6-5-3").unwrap();
		let e = checkpoint::load(&path, Some(&other)).unwrap_err();
		assert!(matches!(e, TrainerError::Checkpoint { .. }), "{e}");
	}
	let missing = checkpoint::load(dir.path().join("nope.safetensors"), None).unwrap_err();
	assert!(matches!(missing, TrainerError::Io { .. }), "{missing}");
	let junk = dir.path().join("junk.safetensors");
	std::fs::write(&junk, b"not safetensors").unwrap();
	assert!(matches!(checkpoint::load(&junk, None), Err(TrainerError::Checkpoint { .. })));
}

#[test]
fn checkpoint_carries_the_input_standardisation() {
	use std::collections::HashMap;
	use trainchain_trainer::standardize::{Scope, Standardizer};
	let dir = tempfile::tempdir().unwrap();
	let spec = ModelSpec::parse("mlp:4-3-2@1").unwrap();
	let m = Model::new(&spec).unwrap();
	let data = gaussian_blobs(20, 4, 2, 500.0, 100.0, 2).unwrap();
	let st = Standardizer::fit(&data, Scope::PerFeature).unwrap();
	let path = dir.path().join("s.safetensors");
	checkpoint::save_with(&m, Some(&st), &path).unwrap();
	let (back, back_st) = checkpoint::load_with(&path, None).unwrap();
	assert_eq!(back_st.as_ref(), Some(&st));
	assert_eq!(model_state_hash(&back).unwrap(), model_state_hash(&m).unwrap());
	// `load` (and so `hash`) still reads it; a plain checkpoint has no statistics.
	assert_eq!(model_state_hash(&checkpoint::load(&path, None).unwrap()).unwrap(), {
		model_state_hash(&m).unwrap()
	});
	checkpoint::save(&m, &path).unwrap();
	assert_eq!(checkpoint::load_with(&path, None).unwrap().1, None);
	// Statistics for another feature count are refused when saving.
	let wrong = Standardizer::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
	assert!(checkpoint::save_with(&m, Some(&wrong), &path).is_err());
	// A file with only the mean, or a zero std, is refused when loading.
	let dev = candle_core::Device::Cpu;
	let mut map: HashMap<String, Tensor> = HashMap::new();
	for (name, var) in m.named_params() {
		map.insert(name.to_string(), var.as_tensor().clone());
	}
	let f = 4;
	map.insert(
		checkpoint::MEAN_TENSOR.into(),
		Tensor::zeros(f, candle_core::DType::F32, &dev).unwrap(),
	);
	candle_core::safetensors::save(&map, &path).unwrap();
	let e = checkpoint::load_with(&path, Some(&spec)).unwrap_err();
	assert!(e.to_string().contains("only one of"), "{e}");
	map.insert(
		checkpoint::STD_TENSOR.into(),
		Tensor::zeros(f, candle_core::DType::F32, &dev).unwrap(),
	);
	candle_core::safetensors::save(&map, &path).unwrap();
	let e = checkpoint::load_with(&path, Some(&spec)).unwrap_err();
	assert!(e.to_string().contains("must be positive"), "{e}");
}

#[test]
fn checkpoint_carries_the_outer_optimiser_state_and_is_written_whole() {
	let dir = tempfile::tempdir().unwrap();
	let spec = ModelSpec::parse("mlp:4-3-2@1").unwrap();
	let m = Model::new(&spec).unwrap();
	let momentum: Vec<f32> = (0..m.num_params()).map(|i| i as f32 * 0.25 - 1.0).collect();
	let path = dir.path().join("job.safetensors");
	checkpoint::save_all(&m, None, &momentum, &path).unwrap();
	let (back, st, outer) = checkpoint::load_all(&path, Some(&spec)).unwrap();
	assert_eq!(outer, momentum, "the momentum comes back bit for bit");
	assert_eq!(st, None);
	assert_eq!(model_state_hash(&back).unwrap(), model_state_hash(&m).unwrap());
	// Readers that want only the model still read it; a plain file has no outer state.
	assert!(checkpoint::load(&path, None).is_ok());
	checkpoint::save(&m, &path).unwrap();
	assert!(checkpoint::load_all(&path, None).unwrap().2.is_empty());
	// Saved through a temporary file that is renamed: nothing is left beside it.
	let names: Vec<_> =
		std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
	assert_eq!(names, vec![std::ffi::OsString::from("job.safetensors")]);
	// A non-f32 outer state is refused.
	let mut map = std::collections::HashMap::new();
	for (name, var) in m.named_params() {
		map.insert(name.to_string(), var.as_tensor().clone());
	}
	let bad = Tensor::zeros(3, candle_core::DType::U8, &candle_core::Device::Cpu).unwrap();
	map.insert(checkpoint::OUTER_TENSOR.to_string(), bad);
	candle_core::safetensors::save(&map, &path).unwrap();
	let e = checkpoint::load_all(&path, Some(&spec)).unwrap_err();
	assert!(e.to_string().contains(checkpoint::OUTER_TENSOR), "{e}");
}

#[test]
fn set_flat_params_rejects_bad_vectors() {
	let mut m = Model::new(&ModelSpec::parse("mlp:3-2-2").unwrap()).unwrap();
	let n = m.num_params();
	assert!(matches!(m.set_flat_params(&vec![0.0; n + 1]), Err(TrainerError::Mismatch { .. })));
	let mut v = vec![0.0; n];
	v[n - 1] = f32::INFINITY;
	assert!(matches!(m.set_flat_params(&v), Err(TrainerError::NonFinite { .. })));
	let c = m.try_clone().unwrap();
	m.set_flat_params(&vec![1.0; n]).unwrap();
	assert_ne!(c.flat_params().unwrap(), m.flat_params().unwrap(), "try_clone is a deep copy");
}

/// The vendored candle-core (`vendor/candle-core/PATCHED.md`) answers a float-only unary op on
/// an integer tensor, and a device that is not compiled in, with a named error instead of
/// upstream's placeholder panics.
#[test]
fn vendored_candle_refuses_what_it_cannot_do_with_errors() {
	use candle_core::{DType, Device, Error};
	let dev = Device::Cpu;
	for dtype in [DType::U8, DType::U32, DType::I16, DType::I32, DType::I64] {
		let t = Tensor::new(&[1f32, 4.0, 9.0], &dev).unwrap().to_dtype(dtype).unwrap();
		type Op = fn(&Tensor) -> candle_core::Result<Tensor>;
		let ops: [(&str, Op); 9] = [
			("exp", Tensor::exp),
			("log", Tensor::log),
			("sin", Tensor::sin),
			("cos", Tensor::cos),
			("tanh", Tensor::tanh),
			("neg", Tensor::neg),
			("recip", Tensor::recip),
			("sqr", Tensor::sqr),
			("sqrt", Tensor::sqrt),
		];
		for (name, op) in ops {
			let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&t)))
				.unwrap_or_else(|_| panic!("{name} on {dtype:?} panicked"))
				.expect_err(name);
			let msg = err.to_string();
			assert!(
				msg.contains(&format!("unsupported dtype {dtype:?} for op {name}")),
				"{name} on {dtype:?}: {msg}"
			);
		}
		// Ops that are defined on integers still work.
		assert_eq!(
			t.abs().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(),
			[1.0, 4.0, 9.0]
		);
	}
	let sqrt = Tensor::new(&[1f32, 4.0, 9.0], &dev).unwrap().sqrt().unwrap();
	assert_eq!(sqrt.to_vec1::<f32>().unwrap(), [1.0, 2.0, 3.0]);
	assert!(matches!(Device::new_cuda(0), Err(Error::NotCompiledWithCudaSupport)));
	assert!(matches!(Device::new_metal(0), Err(Error::NotCompiledWithMetalSupport)));
}

/// A contributor that keeps its inner optimizer state (`inner_state=kept`) and restarts
/// from a checkpoint written with that state trains its next round exactly as if it had not
/// stopped; without the state the round differs (so the check can fail).
#[test]
fn a_kept_inner_state_survives_a_checkpoint() {
	use trainchain_trainer::p2p::round::LocalTrainer;
	use trainchain_trainer::shard::ShardTrainer;
	let dir = tempfile::tempdir().unwrap();
	let data = gaussian_blobs(96, 8, 3, 2.0, 0.5, 3).unwrap();
	let spec = ModelSpec::parse("mlp:8-16-3@4").unwrap();
	for opt in [OptimizerConfig::sgd(0.05, 0.9), OptimizerConfig::adam(0.01)] {
		let cfg = TrainConfig { max_steps: Some(7), ..blobs_cfg(opt) };
		let trainer = || {
			ShardTrainer::new(&spec, data.clone(), 0, None, cfg, 11)
				.unwrap()
				.keep_inner_state()
				.unwrap()
		};
		let model0 = spec.initial_params().unwrap();
		let mut straight = trainer();
		let d0 = straight.train(&model0, 0).unwrap().delta;
		let model1: Vec<f32> = model0.iter().zip(&d0).map(|(m, d)| m + d).collect();
		let want = straight.train(&model1, 1).unwrap().delta;

		let mut first = trainer();
		first.train(&model0, 0).unwrap();
		let inner = first.inner_snapshot().expect("a kept state after a round");
		let path = dir.path().join("resume.safetensors");
		let m1 = Model::from_flat(&spec, &model1).unwrap();
		checkpoint::save_resumable(&m1, None, &[], Some(&inner), &path).unwrap();
		assert_eq!(checkpoint::load(&path, Some(&spec)).unwrap().flat_params().unwrap(), model1);
		let back = checkpoint::load_inner(&path).unwrap().expect("stored");
		assert_eq!(back, inner);
		let mut resumed = trainer();
		resumed.restore_inner(&back).unwrap();
		assert_eq!(resumed.train(&model1, 1).unwrap().delta, want, "{opt:?}");
		assert_ne!(trainer().train(&model1, 1).unwrap().delta, want, "a fresh state differs");
		// `--resume` reads the same state from the file.
		let mut from_file = trainer();
		from_file.resume_inner(&path).unwrap();
		assert_eq!(from_file.train(&model1, 1).unwrap().delta, want, "{opt:?} via --resume");

		// Refused: the other optimizer's state, a state of other sizes, a trainer that
		// starts every round afresh.
		let other = if matches!(opt, OptimizerConfig::Sgd(_)) {
			OptimizerConfig::adam(0.01)
		} else {
			OptimizerConfig::sgd(0.05, 0.9)
		};
		let mut wrong = ShardTrainer::new(&spec, data.clone(), 0, None, blobs_cfg(other), 11)
			.unwrap()
			.keep_inner_state()
			.unwrap();
		assert!(wrong.restore_inner(&back).is_err());
		let mut short = back.clone();
		short.first.pop();
		assert!(trainer().restore_inner(&short).is_err());
		let mut fresh = ShardTrainer::new(&spec, data.clone(), 0, None, cfg, 11).unwrap();
		assert!(fresh.restore_inner(&back).is_err());
		fresh.resume_inner(&path).unwrap(); // ignored, with a warning
		assert!(fresh.inner_snapshot().is_none());
	}
	// A checkpoint without the state has none.
	let m = Model::new(&spec).unwrap();
	let path = dir.path().join("plain.safetensors");
	checkpoint::save(&m, &path).unwrap();
	assert_eq!(checkpoint::load_inner(&path).unwrap(), None);
	// Malformed state tensors are errors: an unknown optimizer, a flag that is not 0/1, no
	// moments.
	let dev = candle_core::Device::Cpu;
	let meta = |v: Vec<u32>| Tensor::from_vec(v, 4, &dev).unwrap();
	let first = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
	for (meta, with_first) in [
		(meta(vec![7, 0, 1, 1]), true),
		(meta(vec![0, 0, 1, 2]), true),
		(meta(vec![0, 0, 1, 1]), false),
	] {
		let mut map = std::collections::HashMap::new();
		map.insert(checkpoint::INNER_META_TENSOR.to_string(), meta);
		if with_first {
			map.insert(checkpoint::INNER_FIRST_TENSOR.to_string(), first.clone());
		}
		let bad = dir.path().join("bad.safetensors");
		candle_core::safetensors::save(&map, &bad).unwrap();
		assert!(checkpoint::load_inner(&bad).is_err());
	}
}
