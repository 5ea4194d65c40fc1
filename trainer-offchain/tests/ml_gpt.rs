//! The `gpt` language model: shapes, gradients, causality, determinism, specs, learning on
//! the generated corpus, checkpoints, and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Tensor};
use trainchain_trainer::corpus;
use trainchain_trainer::data::{self, text_dataset, Dataset};
use trainchain_trainer::eval::evaluate;
use trainchain_trainer::gpt::{self, Sampling};
use trainchain_trainer::model::Arch;
use trainchain_trainer::train::{local_round, OptimizerConfig, Schedule, TrainConfig};
use trainchain_trainer::{checkpoint, Model, ModelSpec, TrainerError};

const TINY: &str = "gpt:7-8-2-2-5@3";

/// Parameters moved off their initial values (generic, larger weights and non-zero biases
/// and LayerNorm offsets) so every gradient is exercised.
fn perturbed(spec: &str) -> Model {
	let spec = ModelSpec::parse(spec).unwrap();
	let mut m = Model::new(&spec).unwrap();
	let p: Vec<f32> = m
		.flat_params()
		.unwrap()
		.iter()
		.enumerate()
		.map(|(i, x)| x + 0.3 * ((i as f32 * 0.7).sin()))
		.collect();
	m.set_flat_params(&p).unwrap();
	m
}

/// `rows` rows of `context + 1` token ids below `vocab`, from a fixed pattern.
fn token_rows(rows: usize, context: usize, vocab: usize) -> Dataset {
	let w = context + 1;
	let feats: Vec<f32> = (0..rows * w).map(|i| ((i * 5 + i / 3) % vocab) as f32).collect();
	let labels = (0..rows).map(|r| feats[r * w + context] as u32).collect();
	Dataset::new("tokens", w, feats, labels).unwrap()
}

fn batch(m: &Model, d: &Dataset) -> (Tensor, Tensor) {
	let xs = Tensor::from_slice(d.features(), (d.len(), d.n_features()), m.device()).unwrap();
	let ys = Tensor::from_slice(d.labels(), d.len(), m.device()).unwrap();
	(xs, ys)
}

fn loss_of(m: &Model, xs: &Tensor, ys: &Tensor) -> f32 {
	m.batch_loss(xs, ys).unwrap().0.to_scalar::<f32>().unwrap()
}

#[test]
fn shapes_and_parameter_order() {
	let spec = ModelSpec::parse(TINY).unwrap();
	assert_eq!(spec.arch, Arch::Gpt { vocab: 7, d_model: 8, layers: 2, heads: 2, context: 5 });
	assert_eq!((spec.in_features(), spec.classes()), (6, 7));
	let m = Model::new(&spec).unwrap();
	let infos: Vec<(String, Vec<usize>)> =
		m.param_infos().iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
	assert_eq!(infos.len(), 2 + 12 * 2 + 2);
	assert_eq!(infos[0], ("wte".into(), vec![7, 8]));
	assert_eq!(infos[1], ("wpe".into(), vec![5, 8]));
	assert_eq!(infos[4], ("h0.attn.qkv.weight".into(), vec![8, 24]));
	assert_eq!(infos[12], ("h0.mlp.proj.weight".into(), vec![32, 8]));
	assert_eq!(infos[14], ("h1.ln1.weight".into(), vec![8]));
	assert_eq!(infos[27], ("ln_f.bias".into(), vec![8]));
	// d² · 12 + 13·d per block (qkv 3d²+3d, proj d²+d, fc 4d²+4d, proj 4d²+d, 2 LNs 4d).
	let per_block = 12 * 64 + 13 * 8;
	assert_eq!(m.num_params(), 7 * 8 + 5 * 8 + 2 * per_block + 2 * 8);
	// Init: LayerNorm gains 1, biases 0, weights within 0.02·√3.
	let p = spec.initial_params().unwrap();
	let bound = 0.02f32 * 3f32.sqrt();
	assert!(p[..56].iter().all(|w| w.abs() <= bound) && p[..56].iter().any(|w| *w != 0.0));
	assert!(p[96..104].iter().all(|g| *g == 1.0) && p[104..112].iter().all(|b| *b == 0.0));
	let d = token_rows(3, 5, 7);
	let (xs, ys) = batch(&m, &d);
	assert_eq!(m.forward(&xs).unwrap().dims(), &[3, 5, 7]);
	let (loss, logits, targets) = m.batch_loss(&xs, &ys).unwrap();
	assert_eq!((logits.dims(), targets.dims()), (&[15, 7][..], &[15][..]));
	// Near-uniform predictions at init: loss ≈ ln 7.
	assert!((loss.to_scalar::<f32>().unwrap() - 7f32.ln()).abs() < 0.1);
	let short = Tensor::from_slice(&[1u32, 2, 3], (1, 3), m.device()).unwrap();
	assert_eq!(gpt::forward_tokens(&m, &short).unwrap().dims(), &[1, 3, 7]);
	let long = Tensor::zeros((1, 6), DType::U32, m.device()).unwrap();
	assert!(matches!(gpt::forward_tokens(&m, &long), Err(TrainerError::Mismatch { .. })));
	let oov = Tensor::from_slice(&[1u32, 7], (1, 2), m.device()).unwrap();
	assert!(gpt::forward_tokens(&m, &oov).is_err());
}

#[test]
fn finite_difference_gradients_of_every_tensor() {
	let mut m = perturbed(TINY);
	let d = token_rows(3, 5, 7);
	let (xs, ys) = batch(&m, &d);
	let grads = m.backward(&m.batch_loss(&xs, &ys).unwrap().0).unwrap();
	let p = m.flat_params().unwrap();
	let infos = m.param_infos().to_vec();
	let mut analytic = Vec::new();
	for v in m.vars() {
		analytic.extend(grads.get(v).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
	}
	assert_eq!(analytic.len(), p.len());
	let eps = 2e-3f32;
	let (mut off, mut worst, mut checked) = (0usize, 0f32, 0usize);
	for info in &infos {
		let n = info.len();
		// Up to 5 entries of every tensor, spread over it.
		for k in 0..n.min(5) {
			let i = off + k * n / n.min(5) + (k % 2);
			let i = i.min(off + n - 1);
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
			checked += 1;
			assert!(
				err < 0.05,
				"{} (param {i}): numeric {numeric} vs analytic {}",
				info.name,
				analytic[i]
			);
		}
		off += n;
	}
	// Not vacuous: the gradients are not all ~0.
	assert!(analytic.iter().filter(|g| g.abs() > 1e-3).count() > analytic.len() / 4);
	eprintln!("{TINY}: {checked} entries, worst relative gradient error {worst:.2e}");
}

#[test]
fn attention_is_causal_bit_exactly() {
	let m = perturbed("gpt:11-16-2-4-8@5");
	let base: Vec<u32> = vec![1, 4, 9, 2, 7, 3, 10, 5, 0, 6, 8, 2, 1, 3, 5, 7];
	let ids = |v: &[u32]| Tensor::from_slice(v, (2, 8), m.device()).unwrap();
	let logits = |v: &[u32]| gpt::forward_tokens(&m, &ids(v)).unwrap().to_vec3::<f32>().unwrap();
	let before = logits(&base);
	for k in [0usize, 3, 7] {
		let mut changed = base.clone();
		changed[k] = (changed[k] + 1) % 11; // row 0, position k
		let after = logits(&changed);
		for pos in 0..8 {
			let same = before[0][pos]
				.iter()
				.zip(&after[0][pos])
				.all(|(a, b)| a.to_bits() == b.to_bits());
			assert_eq!(same, pos < k, "change at {k}, position {pos}");
		}
		// The other row is untouched.
		assert_eq!(before[1], after[1]);
	}
}

fn tiny_corpus_data(bytes: usize, context: usize) -> (Dataset, Dataset, f32) {
	let text = corpus::generate(7, bytes);
	let cut = text.len() * 9 / 10;
	let (head, tail) = text.as_bytes().split_at(cut);
	let train = text_dataset("corpus[..90%]", head, context, context).unwrap();
	let test = text_dataset("corpus[90%..]", tail, context, context).unwrap();
	// Unigram entropy (nats) of the training bytes: the best loss without context.
	let mut counts = [0usize; 256];
	for &b in head {
		counts[b as usize] += 1;
	}
	let n = head.len() as f64;
	let h: f64 = counts
		.iter()
		.filter(|&&c| c > 0)
		.map(|&c| {
			let p = c as f64 / n;
			-p * p.ln()
		})
		.sum();
	(train, test, h as f32)
}

/// AdamW at 3e-3: at 1e-2 this tiny model sits on the unigram plateau for hundreds of steps.
fn adam_steps(steps: usize, batch: usize, schedule: Schedule) -> TrainConfig {
	TrainConfig {
		epochs: 1,
		max_steps: Some(steps),
		batch_size: batch,
		optimizer: OptimizerConfig::Adam {
			lr: 3e-3,
			beta1: 0.9,
			beta2: 0.99,
			eps: 1e-8,
			weight_decay: 0.01,
		},
		schedule,
		first_step: 0,
	}
}

#[test]
fn learns_the_corpus_below_its_unigram_entropy() {
	let started = Instant::now();
	let (train, test, entropy) = tiny_corpus_data(120_000, 16);
	let test = test.subset("test", &(0..300).collect::<Vec<_>>()).unwrap();
	let spec = ModelSpec::parse("gpt:256-32-1-2-16@1").unwrap();
	let mut m = Model::new(&spec).unwrap();
	let before = evaluate(&m, &test).unwrap();
	let out = local_round(&mut m, &train, &adam_steps(200, 32, Schedule::Constant), 0).unwrap();
	let after = evaluate(&m, &test).unwrap();
	eprintln!(
		"unigram entropy {entropy:.3}; held-out loss {:.3} -> {:.3} (ppl {:.2}, acc {:.3}), \
		 train loss {:.3}, {:.1}s",
		before.loss,
		after.loss,
		after.perplexity(),
		after.accuracy,
		out.loss,
		started.elapsed().as_secs_f64()
	);
	assert!((before.loss - 256f32.ln()).abs() < 0.1, "{before:?}");
	assert!(after.loss < 0.85 * entropy, "held-out {after:?} vs unigram entropy {entropy}");
	assert!((after.perplexity() - after.loss.exp()).abs() < 1e-4);
	assert!(after.accuracy > 0.3, "{after:?}");
}

#[test]
fn training_is_deterministic_and_checkpoints_round_trip() {
	let (train, test, _) = tiny_corpus_data(20_000, 8);
	let spec = ModelSpec::parse("gpt:256-16-2-2-8@9").unwrap();
	let run = || {
		let mut m = Model::new(&spec).unwrap();
		let cosine = Schedule::WarmupCosine { warmup: 2, total: 6, min_ratio: 0.1 };
		local_round(&mut m, &train, &adam_steps(6, 8, cosine), 4).unwrap();
		m
	};
	let (a, b) = (run(), run());
	let pa = a.flat_params().unwrap();
	assert_eq!(
		pa.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
		b.flat_params().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
	);
	assert_ne!(pa, spec.initial_params().unwrap());
	// Save → load: the same parameters and the same held-out loss.
	let dir = tempfile::tempdir().unwrap();
	let path = dir.path().join("gpt.safetensors");
	checkpoint::save(&a, &path).unwrap();
	assert_eq!(checkpoint::read_spec(&path).unwrap(), Some(spec.clone()));
	let loaded = checkpoint::load(&path, None).unwrap();
	assert_eq!(loaded.flat_params().unwrap(), pa);
	assert_eq!(evaluate(&loaded, &test).unwrap(), evaluate(&a, &test).unwrap());
	// A different seed in the checkpoint request is refused.
	let other = ModelSpec::parse("gpt:256-16-2-2-8@10").unwrap();
	assert!(checkpoint::load(&path, Some(&other)).is_err());
	// Sampling is deterministic for a seed; greedy is deterministic.
	let prompt: Vec<u32> = b"The ".iter().map(|&c| u32::from(c)).collect();
	let how = Sampling::Temperature { temperature: 0.8, seed: 3 };
	let s1 = gpt::sample(&a, &prompt, 20, how).unwrap();
	assert_eq!(s1, gpt::sample(&loaded, &prompt, 20, how).unwrap());
	assert_eq!(s1.len(), 20);
	assert_eq!(
		gpt::sample(&a, &prompt, 12, Sampling::Greedy).unwrap(),
		gpt::sample(&a, &prompt, 12, Sampling::Greedy).unwrap()
	);
}

#[test]
fn spec_parsing_encoding_and_commitment() {
	let s = ModelSpec::parse("gpt:256-64-2-4-64@7").unwrap();
	assert_eq!(s.to_string(), "gpt:256-64-2-4-64@7");
	assert_eq!(ModelSpec::parse(&s.to_string()).unwrap(), s);
	assert_eq!(ModelSpec::from_canonical_bytes(&s.canonical_bytes()).unwrap(), s);
	let json = serde_json::to_string(&s).unwrap();
	assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), s);
	let s8 = ModelSpec::parse("gpt:256-64-2-4-64@8").unwrap();
	assert_ne!(s.commitment().unwrap(), s8.commitment().unwrap());
	assert_ne!(
		s.canonical_bytes(),
		ModelSpec::parse("gpt:256-64-2-4-32@7").unwrap().canonical_bytes()
	);
	assert_eq!(s.commitment().unwrap(), s.commitment().unwrap());
	assert_eq!(ModelSpec::resolve("gpt", 65, 256).unwrap().to_string(), "gpt:256-64-2-4-64@0");
	assert_eq!(ModelSpec::resolve("gpt@2", 33, 100).unwrap().to_string(), "gpt:256-64-2-4-32@2");
	assert_eq!(ModelSpec::lm_context("gpt").unwrap(), Some(64));
	assert_eq!(ModelSpec::lm_context("gpt:256-8-1-2-16@1").unwrap(), Some(16));
	assert_eq!(ModelSpec::lm_context("mlp:4-3").unwrap(), None);
	for bad in [
		"gpt:256-64-2-4",
		"gpt:256-10-2-4-64",
		"gpt:1-8-1-1-8",
		"gpt:256-8-0-1-8",
		"gpt:256-8-1-1-5000",
		"gpt:70000-8-1-1-8",
	] {
		assert!(matches!(ModelSpec::parse(bad), Err(TrainerError::Spec { .. })), "{bad}");
	}
}

#[test]
fn text_rows_split_and_token_checks() {
	let d = text_dataset("t", b"abcdefghij", 3, 2).unwrap();
	assert_eq!((d.len(), d.n_features()), (4, 4));
	assert_eq!(d.row(1), &[99.0, 100.0, 101.0, 102.0]); // "cdef"
	assert_eq!(d.labels()[1], u32::from(b'f'));
	assert!(text_dataset("t", b"ab", 3, 1).is_err());
	assert!(text_dataset("t", b"abcdef", 0, 1).is_err());
	let dir = tempfile::tempdir().unwrap();
	let path = dir.path().join("c.txt");
	std::fs::write(&path, corpus::generate(1, 5_000)).unwrap();
	let len = std::fs::metadata(&path).unwrap().len() as usize;
	let (train, test) = data::load_text_split(&path, 8, 8).unwrap();
	let cut = len - len / 10;
	assert_eq!(train.len(), (cut - 9) / 8 + 1);
	assert_eq!(test.len(), (len - cut - 9) / 8 + 1);
	let all = data::load_text(&path, 8, 8).unwrap();
	assert_eq!(all.row(0), train.row(0));
	// Sharding and subsets keep rows whole.
	let shards = data::shard_iid(&all, 3, 1).unwrap();
	assert_eq!(shards.iter().map(Dataset::len).sum::<usize>(), all.len());
	// Token ids must be integers below the vocabulary.
	let spec = ModelSpec::parse("gpt:100-8-1-1-8").unwrap();
	assert!(all.check_compatible(&spec).is_err()); // letters are >= 100
	let spec = ModelSpec::parse("gpt:256-8-1-1-8").unwrap();
	all.check_compatible(&spec).unwrap();
	let frac = Dataset::new("f", 9, vec![1.5; 9], vec![1]).unwrap();
	assert!(frac.check_compatible(&spec).is_err());
}

fn bin() -> Command {
	Command::new(env!("CARGO_BIN_EXE_trainchain-trainer"))
}

#[test]
fn cli_trains_evaluates_and_samples_a_gpt() {
	let dir = tempfile::tempdir().unwrap();
	let text = dir.path().join("corpus.txt");
	let o = bin()
		.args(["corpus", "--bytes", "60000", "--seed", "3", "--out"])
		.arg(&text)
		.output()
		.unwrap();
	assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
	assert!(std::fs::metadata(&text).unwrap().len() >= 60_000);
	let weights = dir.path().join("gpt.safetensors");
	let o = bin()
		.args([
			"train",
			"--model",
			"gpt:256-32-1-2-16@1",
			"--holdout",
			"--max-steps",
			"200",
			"--batch-size",
			"32",
			"--lr",
			"0.003",
			"--schedule",
			"cosine",
			"--warmup",
			"10",
			"--log-every",
			"40",
			"--sample",
			"60",
			"--seed",
			"5",
			"--data",
		])
		.arg(&text)
		.arg("--out")
		.arg(&weights)
		.output()
		.unwrap();
	let stdout = String::from_utf8_lossy(&o.stdout);
	assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
	eprintln!("{stdout}");
	assert!(stdout.contains("step 40/200 train_loss="), "{stdout}");
	assert!(stdout.contains("test_loss=") && stdout.contains("test_ppl="), "{stdout}");
	assert!(stdout.contains("sample (--prompt \"The \", 60 bytes):\nThe "), "{stdout}");
	assert!(!stdout.contains("inputs standardised"));
	let o = bin()
		.args(["eval", "--data"])
		.arg(&text)
		.arg("--weights")
		.arg(&weights)
		.output()
		.unwrap();
	let stdout = String::from_utf8_lossy(&o.stdout);
	assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
	assert!(stdout.contains("perplexity=") && stdout.contains("loss="), "{stdout}");
	// Text data needs a gpt.
	let o = bin().args(["train", "--model", "mlp", "--data"]).arg(&text).output().unwrap();
	assert!(!o.status.success());
	assert!(String::from_utf8_lossy(&o.stderr).contains("gpt"));
}

#[test]
fn corpus_file_is_the_generator_output() {
	let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus.txt");
	let committed = std::fs::read_to_string(path).unwrap();
	assert_eq!(
		committed.len(),
		corpus::generate(corpus::DEFAULT_SEED, corpus::DEFAULT_BYTES).len()
	);
	assert_eq!(committed, corpus::generate(corpus::DEFAULT_SEED, corpus::DEFAULT_BYTES));
}

fn idx_file(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
	let mut v = magic.to_be_bytes().to_vec();
	for d in dims {
		v.extend(d.to_be_bytes());
	}
	v.extend_from_slice(body);
	v
}

#[test]
fn load_shard_reads_csv_idx_pairs_and_text() {
	use trainchain_trainer::shard::load_shard;
	let dir = tempfile::tempdir().unwrap();
	let (img, lab) = (dir.path().join("img.idx"), dir.path().join("lab.idx"));
	std::fs::write(&img, idx_file(0x0803, &[4, 2, 2], &[7u8; 16])).unwrap();
	std::fs::write(&lab, idx_file(0x0801, &[4], &[0, 1, 2, 1])).unwrap();
	let pair = Path::new(&format!("{},{}", img.display(), lab.display())).to_path_buf();
	let (all, i, mine, test) = load_shard(&pair, "1/2", 0, Some(&pair), "mlp").unwrap();
	assert_eq!((all.len(), all.n_features(), i, mine.len()), (4, 4, 1, 2));
	assert_eq!(test.unwrap().len(), 4);
	// Text needs the model's context (a bare gpt: the default 64).
	let txt = dir.path().join("c.txt");
	std::fs::write(&txt, corpus::generate(2, 3_000)).unwrap();
	let (all, _, mine, _) = load_shard(&txt, "0/3", 0, None, "gpt:256-8-1-1-16@1").unwrap();
	assert_eq!(all.n_features(), 17);
	assert_eq!(mine.len(), all.len().div_ceil(3));
	let (all, ..) = load_shard(&txt, "0/1", 0, None, "gpt").unwrap();
	assert_eq!(all.n_features(), 65);
	assert_eq!(
		ModelSpec::resolve("gpt", all.n_features(), all.num_classes())
			.unwrap()
			.to_string(),
		"gpt:256-64-2-4-64@0"
	);
	let err = load_shard(&txt, "0/1", 0, None, "mlp").unwrap_err();
	assert!(err.to_string().contains("gpt"), "{err}");
	// CSV as before.
	let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/digits-test.csv");
	let (all, ..) = load_shard(&csv, "0/1", 0, None, "mlp").unwrap();
	assert_eq!(all.n_features(), 64);
}
