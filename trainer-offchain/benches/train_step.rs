//! Training-step benchmark (harness = false): times forward + backward + optimizer step.
//!
//! ```text
//! cargo bench -p trainchain-trainer                       # default matrix, current threads
//! cargo bench -p trainchain-trainer -- --model mlp:784-256-10 --batch 64 --steps 300
//! cargo bench -p trainchain-trainer -- --model gpt:256-64-2-4-64 --batch 16 --steps 50
//! RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench -p trainchain-trainer -- --rss
//! ```
//! Prints one line per case:
//! `candle-step model=mlp:784-256-10 batch=64 threads=1 steps=300 median_ms=... p10_ms=... p90_ms=...`
//! and, with `--rss`, the process's peak resident set size (VmHWM) after the runs.
//! A `gpt` model trains on 4096 rows of the generated corpus (`corpus::generate`, seed 0),
//! the loss over every position; the others on Gaussian blobs.

use std::time::Instant;

use candle_core::Tensor;
use trainchain_trainer::corpus;
use trainchain_trainer::data::{gaussian_blobs, text_dataset, Dataset};
use trainchain_trainer::rng::SplitMix64;
use trainchain_trainer::train::{OptimizerConfig, TrainConfig, Trainer};
use trainchain_trainer::{Model, ModelSpec};

struct Args {
	models: Vec<String>,
	batches: Vec<usize>,
	steps: usize,
	warmup: usize,
	optimizer: String,
	rss: bool,
	baseline: bool,
}

fn parse_args() -> Result<Args, String> {
	let mut a = Args {
		models: vec!["mlp:64-128-10".into(), "mlp:784-256-10".into()],
		batches: vec![64, 256],
		steps: 300,
		warmup: 30,
		optimizer: "sgd".into(),
		rss: false,
		baseline: false,
	};
	let mut it = std::env::args().skip(1);
	while let Some(arg) = it.next() {
		let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
		match arg.as_str() {
			"--bench" => {},
			"--model" => a.models = val()?.split(',').map(str::to_string).collect(),
			"--batch" => {
				a.batches = val()?
					.split(',')
					.map(|b| b.parse().map_err(|_| format!("bad batch {b}")))
					.collect::<Result<_, _>>()?
			},
			"--steps" => a.steps = val()?.parse().map_err(|_| "bad --steps")?,
			"--warmup" => a.warmup = val()?.parse().map_err(|_| "bad --warmup")?,
			"--optimizer" => a.optimizer = val()?,
			"--rss" => a.rss = true,
			"--baseline" => a.baseline = true,
			other => return Err(format!("unknown argument {other}")),
		}
	}
	Ok(a)
}

/// The same step with stock candle ops only (matmul + broadcast_add, candle_nn cross-entropy,
/// tensor-op momentum SGD): what the fused kernels in `trainchain_trainer::ops` replace.
struct Baseline {
	velocity: Vec<Option<Tensor>>,
}

impl Baseline {
	fn step(&mut self, model: &Model, data: &Dataset, idx: &[usize]) -> candle_core::Result<f32> {
		let f = data.n_features();
		let mut xb = Vec::with_capacity(idx.len() * f);
		let mut yb = Vec::with_capacity(idx.len());
		for &i in idx {
			xb.extend_from_slice(data.row(i));
			yb.push(data.labels().get(i).copied().unwrap_or(0));
		}
		let xs = Tensor::from_vec(xb, (idx.len(), f), model.device())?;
		let ys = Tensor::from_vec(yb, idx.len(), model.device())?;
		let vars = model.vars();
		let n = vars.len() / 2;
		let mut h = xs;
		for (i, pair) in vars.chunks_exact(2).enumerate() {
			let [w, b] = pair else { continue };
			h = h.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
			if i + 1 < n {
				h = h.relu()?;
			}
		}
		let loss = candle_nn::loss::cross_entropy(&h, &ys)?;
		let grads = loss.backward()?;
		if self.velocity.is_empty() {
			self.velocity = vec![None; vars.len()];
		}
		for (var, v) in vars.iter().zip(self.velocity.iter_mut()) {
			let Some(g) = grads.get(var) else { continue };
			let nv = match v.take() {
				Some(v) => ((v * 0.9)? + g)?,
				None => g.clone(),
			};
			var.set(&(var.as_tensor() - (&nv * 0.01)?)?)?;
			*v = Some(nv);
		}
		loss.to_scalar::<f32>()
	}
}

fn peak_rss_kib() -> Option<u64> {
	let s = std::fs::read_to_string("/proc/self/status").ok()?;
	let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
	line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Dedicated);
	let args = parse_args()?;
	let threads = candle_core::utils::get_num_threads();
	for m in &args.models {
		let spec = ModelSpec::parse(m)?;
		if args.baseline && spec.is_lm() {
			return Err("--baseline covers dense models only".into());
		}
		let data = if spec.is_lm() {
			let t = spec.in_features() - 1;
			let text = corpus::generate(0, 4096 * t + 1);
			text_dataset("corpus", text.as_bytes(), t, t)?
		} else {
			gaussian_blobs(4096, spec.in_features(), spec.classes(), 1.0, 1.0, 1)?
		};
		for &batch in &args.batches {
			let model = Model::new(&spec)?;
			let optimizer = match args.optimizer.as_str() {
				"adam" => OptimizerConfig::adam(1e-3),
				"sgd" => OptimizerConfig::sgd(0.01, 0.9),
				other => return Err(format!("--optimizer {other:?}: sgd or adam").into()),
			};
			let cfg = TrainConfig {
				epochs: 1,
				max_steps: None,
				batch_size: batch,
				optimizer,
				..Default::default()
			};
			let mut trainer = Trainer::new(&model, &cfg)?;
			let mut baseline = Baseline { velocity: Vec::new() };
			let mut rng = SplitMix64::new(7);
			let mut idx = vec![0usize; batch];
			let mut times = Vec::with_capacity(args.steps);
			for s in 0..args.warmup + args.steps {
				for i in idx.iter_mut() {
					*i = rng.below(data.len());
				}
				let t = Instant::now();
				if args.baseline {
					baseline.step(&model, &data, &idx)?;
				} else {
					trainer.step(&data, &idx)?;
				}
				if s >= args.warmup {
					times.push(t.elapsed().as_secs_f64() * 1e3);
				}
			}
			times.sort_by(f64::total_cmp);
			let q = |p: f64| {
				times
					.get(((times.len() as f64 - 1.0) * p).round() as usize)
					.copied()
					.unwrap_or(f64::NAN)
			};
			println!(
                "{} model={} batch={batch} threads={threads} steps={} median_ms={:.4} p10_ms={:.4} p90_ms={:.4}",
                if args.baseline { "candle-baseline-step" } else { "candle-step" },
                m.trim_start_matches("mlp:"),
                args.steps,
                q(0.5),
                q(0.1),
                q(0.9)
            );
		}
	}
	if args.rss {
		println!("candle-peak-rss kib={}", peak_rss_kib().unwrap_or(0));
	}
	Ok(())
}
