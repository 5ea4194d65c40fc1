//! DiLoCo against synchronous data-parallel training on the generated corpus (#14), with the
//! real round protocol: 4 in-process peers over loopback libp2p, each training a `gpt` on its
//! IID shard of `testdata/corpus.txt`.
//!
//! - **DiLoCo, H local steps**: every round, each peer takes `H` AdamW steps (batch `B`) from
//!   the shared model; the exchange averages the 4 updates and the Nesterov outer step (lr 0.7,
//!   momentum 0.9) applies them. `STEPS / H` rounds.
//! - **Synchronous**: what 4 data-parallel workers that average their gradients every step
//!   compute: one AdamW on the 4 shards together, batch `4·B`, `STEPS` steps (its optimiser
//!   state persists, as in synchronous training). Its exchange would be one all-reduce of the
//!   model's gradient per step: `STEPS` × the same per-round payload.
//!
//! Both see `STEPS · 4B` samples (same total inner steps per worker) and start from the same
//! model: the seeded one, or with `DILOCO_WARMSTART=W` the model after `W` synchronous steps
//! (the DiLoCo paper starts its runs from a pretrained checkpoint; the synchronous run simply
//! goes on from there with its optimiser state, DiLoCo's workers start from its parameters).
//! Steps and curves count from that start. Prints one line per `H`:
//! `bench-diloco h=H peers=4 loss=L sync_loss=L1 loss_ratio=L/L1 bytes_ratio=B`
//! (loss: validation loss per byte on the held-out 10% of the corpus; B = bytes DiLoCo's peers
//! sent as payload / bytes the synchronous run would send), the learning curves as
//! `bench-diloco-curve run=... step=... loss=...` lines, and an SVG plot of them.
//!
//! Env: DILOCO_MODEL (gpt:256-64-2-4-64@0), DILOCO_STEPS (400), DILOCO_H (50), comma list,
//! DILOCO_BATCH (16), DILOCO_LR (0.003), DILOCO_OUTER (nesterov:0.7:0.9), DILOCO_COMPRESSION
//! (none), DILOCO_VALIDATION_ROWS (400, evenly spaced rows of the held-out part),
//! DILOCO_PLOT (out/diloco.svg), DILOCO_SYNC_LOSS (skip the synchronous run, use this loss),
//! DILOCO_WARMSTART (0), DILOCO_EF_DECAY (1: classic error feedback; 0.95 is SparseLoCo's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/p2p_common/mod.rs"]
mod p2p_common;
use p2p_common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use trainchain_trainer::compress::Compression;
use trainchain_trainer::data::{self, Dataset};
use trainchain_trainer::model::{Model, ModelSpec};
use trainchain_trainer::outer::OuterOptimizer;
use trainchain_trainer::p2p::{net, Peer, RoundReport};
use trainchain_trainer::rng::SplitMix64;
use trainchain_trainer::shard::ShardTrainer;
use trainchain_trainer::train::{OptimizerConfig, TrainConfig, Trainer};

const PEERS: usize = 4;
const SEED: u64 = 42;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
	std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Setup {
	spec: ModelSpec,
	shards: Vec<Dataset>,
	train: Dataset,
	validation: Dataset,
	steps: usize,
	batch: usize,
	lr: f64,
	/// Synchronous steps before both runs start (see the module docs).
	warm: usize,
}

fn adamw(lr: f64) -> OptimizerConfig {
	OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
}

fn setup() -> Setup {
	let spec = ModelSpec::parse(&env("DILOCO_MODEL", "gpt:256-64-2-4-64@0".to_string())).unwrap();
	let ctx = ModelSpec::lm_context(&spec.to_string()).unwrap().unwrap();
	let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus.txt");
	let (train, held_out) = data::load_text_split(&corpus, ctx, ctx).unwrap();
	let rows: usize = env("DILOCO_VALIDATION_ROWS", 400);
	let every = (held_out.len() / rows.max(1)).max(1);
	let idx: Vec<usize> = (0..held_out.len()).step_by(every).take(rows).collect();
	let validation = held_out.subset("validation", &idx).unwrap();
	let shards = data::shard_iid(&train, PEERS, SEED).unwrap();
	Setup {
		spec,
		shards,
		train,
		validation,
		steps: env("DILOCO_STEPS", 400),
		batch: env("DILOCO_BATCH", 16),
		lr: env("DILOCO_LR", 0.003),
		warm: env("DILOCO_WARMSTART", 0),
	}
}

fn val_loss(spec: &ModelSpec, params: &[f32], validation: &Dataset) -> f32 {
	let m = Model::from_flat(spec, params).unwrap();
	trainchain_trainer::eval::evaluate(&m, validation).unwrap().loss
}

/// The synchronous run of `steps` steps after the warm start: `(step, validation loss)`
/// every `every` steps (counted from the warm start), and the parameters at the warm start.
fn synchronous(s: &Setup, steps: usize, every: usize) -> (Vec<(usize, f32)>, Vec<f32>) {
	let model = Model::new(&s.spec).unwrap();
	let cfg =
		TrainConfig { batch_size: PEERS * s.batch, optimizer: adamw(s.lr), ..Default::default() };
	let mut trainer = Trainer::new(&model, &cfg).unwrap();
	let mut curve = Vec::new();
	let mut start = Vec::new();
	let mut order: Vec<usize> = Vec::new();
	let mut epoch = 0u64;
	for step in 0..=s.warm + steps {
		if step == s.warm {
			start = model.flat_params().unwrap();
			curve.push((0, val_loss(&s.spec, &start, &s.validation)));
		}
		if step == s.warm + steps {
			break;
		}
		if order.len() < cfg.batch_size {
			let mut o: Vec<usize> = (0..s.train.len()).collect();
			SplitMix64::derive(SEED, &[epoch]).shuffle(&mut o);
			order.extend(o);
			epoch += 1;
		}
		let batch: Vec<usize> = order.drain(..cfg.batch_size).collect();
		trainer.step(&s.train, &batch).unwrap();
		let after = (step + 1).saturating_sub(s.warm);
		if step >= s.warm && (after % every == 0 || after == steps) {
			curve.push((after, val_loss(&s.spec, &model.flat_params().unwrap(), &s.validation)));
		}
	}
	(curve, start)
}

/// The DiLoCo run over the real protocol: per-peer round reports.
async fn diloco(
	s: &Setup,
	h: usize,
	outer: OuterOptimizer,
	comp: Compression,
	ef_decay: f32,
	start: &[f32],
) -> Vec<Vec<RoundReport>> {
	let rounds = (s.steps / h) as u32;
	let suris = ["//Alice", "//Bob", "//Charlie", "//Dave"];
	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, suri) in suris.iter().enumerate() {
		let mut cfg = peer_cfg(suri, PEERS);
		cfg.outer = outer;
		cfg.compression = comp;
		cfg.error_feedback_decay = ef_decay;
		cfg.initial_peers = PEERS;
		cfg.round_timeout = Duration::from_secs(120);
		let tcfg = TrainConfig {
			max_steps: Some(h),
			batch_size: s.batch,
			optimizer: adamw(s.lr),
			..Default::default()
		};
		// Peer 0 evaluates every round on the validation rows (the learning curve).
		let test = (i == 0).then(|| s.validation.clone());
		let t =
			ShardTrainer::new(&s.spec, s.shards[i].clone(), i as u64, test, tcfg, SEED).unwrap();
		let (client, events) = net::start(net_cfg(boot.clone())).await.unwrap();
		let a = client.listen_addrs().await.unwrap()[0].clone();
		boot.push(a.with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id())));
		let initial = start.to_vec();
		handles.push(tokio::spawn(async move {
			let mut peer = Peer::new(cfg, client.clone(), events, t, initial);
			peer.sync(Duration::from_secs(10)).await.unwrap();
			let out = peer.run(rounds).await.unwrap();
			tokio::time::sleep(Duration::from_secs(2)).await;
			client.shutdown();
			out
		}));
	}
	let mut out = Vec::new();
	for h in handles {
		out.push(h.await.unwrap());
	}
	out
}

/// Payload bytes a peer sent over the run (its update chunks to the other owners and its
/// reduced chunk to the others), averaged over peers.
fn payload_per_peer(reports: &[Vec<RoundReport>]) -> f64 {
	let n = PEERS as f64;
	let total: f64 = reports
		.iter()
		.flatten()
		.map(|r| r.update_bytes as f64 * (n - 1.0) / n + r.reduced_bytes as f64 * (n - 1.0))
		.sum();
	total / reports.len() as f64
}

fn svg(curves: &[(String, Vec<(usize, f32)>)], path: &str) {
	let (w, h, pad) = (640.0, 400.0, 50.0);
	let max_x = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0)).max().unwrap_or(1) as f64;
	let ys = || curves.iter().flat_map(|c| c.1.iter().map(|p| f64::from(p.1)));
	let (lo, hi) = (ys().fold(f64::INFINITY, f64::min), ys().fold(0.0, f64::max));
	let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
	let mut body = String::new();
	for (k, (name, pts)) in curves.iter().enumerate() {
		let line: Vec<String> = pts
			.iter()
			.map(|(x, y)| {
				let px = pad + (*x as f64 / max_x) * (w - 2.0 * pad);
				let py = h - pad - (f64::from(*y) - lo) / (hi - lo).max(1e-9) * (h - 2.0 * pad);
				format!("{px:.1},{py:.1}")
			})
			.collect();
		let c = colours[k % colours.len()];
		body += &format!(
			"<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{c}\" font-size=\"13\">{name}</text>\n",
			line.join(" "),
			w - 230.0,
			30.0 + 18.0 * k as f64
		);
	}
	let doc = format!(
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{pad}\" y=\"20\" font-size=\"14\">validation loss (nats/byte) against inner steps per worker; {lo:.3} .. {hi:.3}</text>\n<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n{body}</svg>\n",
		h - pad,
		w - pad,
		h - pad,
		h - pad
	);
	if let Some(dir) = std::path::Path::new(path).parent() {
		std::fs::create_dir_all(dir).unwrap();
	}
	std::fs::write(path, doc).unwrap();
}

async fn bench() {
	init_tracing();
	let s = setup();
	let hs: Vec<usize> = env("DILOCO_H", "50".to_string())
		.split(',')
		.map(|h| h.trim().parse().unwrap())
		.collect();
	let outer: OuterOptimizer =
		env("DILOCO_OUTER", "nesterov:0.7:0.9".to_string()).parse().unwrap();
	let comp: Compression = env("DILOCO_COMPRESSION", "none".to_string()).parse().unwrap();
	let ef_decay: f32 = env("DILOCO_EF_DECAY", 1.0);
	let params = s.spec.num_params().unwrap();
	eprintln!(
		"model {} ({params} params), {} train rows in {PEERS} shards, {} validation rows, {} steps, batch {} per worker",
		s.spec,
		s.train.len(),
		s.validation.len(),
		s.steps,
		s.batch
	);
	let t0 = Instant::now();
	// DILOCO_SYNC_LOSS=L: skip the synchronous run (a tuning aid; its curve is then empty).
	let every = *hs.iter().min().unwrap_or(&50);
	let (sync, start) =
		match std::env::var("DILOCO_SYNC_LOSS").ok().and_then(|v| v.parse::<f32>().ok()) {
			Some(l) => {
				let (mut c, start) = synchronous(&s, 0, every);
				c.push((s.steps, l));
				(c, start)
			},
			None => synchronous(&s, s.steps, every),
		};
	let sync_loss = sync.last().unwrap().1;
	eprintln!("synchronous: {:.1} s", t0.elapsed().as_secs_f64());
	for (step, loss) in &sync {
		println!("bench-diloco-curve run=sync step={step} loss={loss:.4}");
	}
	let mut curves = vec![("synchronous (batch 4B)".to_string(), sync)];
	// What synchronous data-parallel training sends per peer per step: one uncompressed
	// chunked all-reduce of the model (the same payload formula as a DiLoCo round).
	let s_bytes = (4 * params) as f64;
	let n = PEERS as f64;
	let sync_bytes = s.steps as f64 * (s_bytes * (n - 1.0) / n + s_bytes / n * (n - 1.0));
	for h in hs {
		let t = Instant::now();
		let reports = diloco(&s, h, outer, comp, ef_decay, &start).await;
		agree(&reports);
		let curve: Vec<(usize, f32)> = std::iter::once((0, curves[0].1[0].1))
			.chain(
				reports[0]
					.iter()
					.filter_map(|r| r.eval.map(|e| ((r.round as usize + 1) * h, e.0))),
			)
			.collect();
		let loss = curve.last().unwrap().1;
		eprintln!(
			"diloco h={h}: {} rounds in {:.1} s",
			reports[0].len(),
			t.elapsed().as_secs_f64()
		);
		for (step, l) in &curve {
			println!("bench-diloco-curve run=diloco-h{h} step={step} loss={l:.4}");
		}
		println!(
			"bench-diloco h={h} peers={PEERS} loss={loss:.4} sync_loss={sync_loss:.4} loss_ratio={:.4} bytes_ratio={:.4} outer={outer} compression={comp} ef_decay={} steps={} warmstart={}",
			loss / sync_loss,
			payload_per_peer(&reports) / sync_bytes,
			ef_decay,
			s.steps,
			s.warm
		);
		curves.push((format!("DiLoCo H={h} ({outer}, {comp})"), curve));
	}
	let plot = env("DILOCO_PLOT", "out/diloco.svg".to_string());
	svg(&curves, &plot);
	eprintln!("plot: {plot}");
}

fn main() {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Shared);
	tokio::runtime::Builder::new_multi_thread()
		.worker_threads(2)
		.enable_all()
		.build()
		.expect("tokio runtime")
		.block_on(bench());
}
