//! Bytes per round and accuracy for each compression on the digits data, 4 in-process
//! peers over real loopback sockets (a bench target; numbers go to the README):
//! `cargo bench -p trainchain-trainer --bench p2p_compression_report`
//!
//! Every compression runs with the same seeds as the uncompressed run (the first of
//! `REPORT_COMPRESSIONS`, default `none`), and a `bench-compress data=digits ratio=X
//! metric_drop=D` line compares them: `X` = uncompressed / compressed **payload** bytes per
//! peer per round over both halves of the exchange (a peer's update chunks to the other
//! owners, `(N−1)/N` of its update, plus its reduced chunk to the `N−1` others), `D` = test
//! accuracy points lost after the last round. Envelopes, signatures and proofs are not
//! payload; `bytes_sent_per_peer_per_round` is everything on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/p2p_common/mod.rs"]
mod p2p_common;
use p2p_common::*;
use std::path::PathBuf;
use std::time::Duration;
use trainchain_trainer::compress::Compression;
use trainchain_trainer::data::{self, CsvOptions};
use trainchain_trainer::model::ModelSpec;
use trainchain_trainer::p2p::{net, Peer};
use trainchain_trainer::shard::ShardTrainer;
use trainchain_trainer::train::{OptimizerConfig, TrainConfig};

async fn compression_report() {
	init_tracing();
	let rounds: u32 = std::env::var("REPORT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
	let model = std::env::var("REPORT_MODEL").unwrap_or_else(|_| "mlp".into());
	let local_steps: Option<usize> =
		std::env::var("REPORT_LOCAL_STEPS").ok().and_then(|v| v.parse().ok());
	let ef_decay: f32 = std::env::var("REPORT_EF_DECAY")
		.ok()
		.and_then(|v| v.parse().ok())
		.unwrap_or(1.0);
	let keep_inner = std::env::var("REPORT_KEEP_INNER").is_ok_and(|v| v == "1");
	let (all, test) = load(&model);
	let text = ModelSpec::lm_context(&model).unwrap().is_some();
	let spec = ModelSpec::resolve(&model, all.n_features(), all.num_classes()).unwrap();
	// A language model trains with AdamW (SGD at 0.05 barely moves a transformer).
	let optimizer = if text {
		OptimizerConfig::Adam { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
	} else {
		OptimizerConfig::sgd(0.05, 0.9)
	};
	let shards = data::shard_iid(&all, 4, 42).unwrap();
	let suris = ["//Alice", "//Bob", "//Charlie", "//Dave"];
	let list = std::env::var("REPORT_COMPRESSIONS")
		.unwrap_or_else(|_| "none,fp16,int8,topk:0.1,topk:0.01,sparse:0.0156:2".into());
	let mut baseline: Option<(f64, f32)> = None;
	for comp in list.split(',') {
		let compression: Compression = comp.parse().unwrap();
		let mut handles = Vec::new();
		let mut boot = Vec::new();
		for (i, s) in suris.iter().enumerate() {
			let mut cfg = peer_cfg(s, 4);
			cfg.compression = compression;
			cfg.error_feedback_decay = ef_decay;
			cfg.round_timeout = Duration::from_secs(if text { 120 } else { 20 });
			let cfgt = TrainConfig { optimizer, max_steps: local_steps, ..Default::default() };
			let t =
				ShardTrainer::new(&spec, shards[i].clone(), i as u64, Some(test.clone()), cfgt, 42)
					.unwrap();
			let t = if keep_inner { t.keep_inner_state().unwrap() } else { t };
			let (client, events) = net::start(net_cfg(boot.clone())).await.unwrap();
			if boot.is_empty() {
				let a = client.listen_addrs().await.unwrap()[0].clone();
				boot.push(a.with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id())));
			}
			let initial = spec.initial_params().unwrap();
			handles.push(tokio::spawn(async move {
				let mut peer = Peer::new(cfg, client.clone(), events, t, initial);
				peer.sync(Duration::from_secs(10)).await.unwrap();
				let out = peer.run(rounds).await.unwrap();
				tokio::time::sleep(Duration::from_secs(2)).await;
				client.shutdown();
				out
			}));
		}
		let mut all_reports = Vec::new();
		for h in handles {
			all_reports.push(h.await.unwrap());
		}
		agree(&all_reports);
		let sent: Vec<u64> = all_reports
			.iter()
			.flat_map(|r| r.iter().skip(1))
			.map(|r| r.bytes_sent)
			.collect();
		let avg = sent.iter().sum::<u64>() / sent.len() as u64;
		let upd = all_reports[0].last().unwrap().update_bytes;
		let eval = all_reports[0].last().unwrap().eval.unwrap();
		// Digits: accuracy, points lost. Text: validation loss, relative increase.
		let acc = if text { eval.0 } else { eval.1 };
		let n = suris.len() as f64;
		let payload: Vec<f64> = all_reports
			.iter()
			.flat_map(|r| r.iter())
			.map(|r| r.update_bytes as f64 * (n - 1.0) / n + r.reduced_bytes as f64 * (n - 1.0))
			.collect();
		let payload = payload.iter().sum::<f64>() / payload.len() as f64;
		let (base_payload, base_acc) = *baseline.get_or_insert((payload, acc));
		if text {
			println!(
				"bench-compress data=text compression={comp} rounds={rounds} ratio={:.1} metric_drop={:.4} loss={acc:.4} base_loss={base_acc:.4} ef_decay={ef_decay} keep_inner={keep_inner}",
				base_payload / payload,
				(acc - base_acc) / base_acc,
			);
		} else {
			println!(
				"bench-compress data=digits compression={comp} rounds={rounds} ratio={:.1} metric_drop={:.2} accuracy={acc:.4} base_accuracy={base_acc:.4} ef_decay={ef_decay}",
				base_payload / payload,
				100.0 * (base_acc - acc),
			);
		}
		println!(
			"compression-report compression={comp} params={} update_bytes={upd} bytes_sent_per_peer_per_round={avg} rounds={rounds} {}={acc:.4}",
			spec.num_params().unwrap(),
			if text { "loss" } else { "accuracy" },
		);
	}
}

/// Training and test data of `model`: digits (CSV) for a classifier; for a `gpt`, the
/// generated corpus with its last 10% held out (400 evenly spaced held-out rows).
fn load(model: &str) -> (data::Dataset, data::Dataset) {
	let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
	match ModelSpec::lm_context(model).unwrap() {
		Some(ctx) => {
			let (train, held_out) =
				data::load_text_split(dir.join("corpus.txt"), ctx, ctx).unwrap();
			let every = (held_out.len() / 400).max(1);
			let idx: Vec<usize> = (0..held_out.len()).step_by(every).take(400).collect();
			(train, held_out.subset("validation", &idx).unwrap())
		},
		None => (
			data::load_csv(dir.join("digits-train.csv"), CsvOptions::default()).unwrap(),
			data::load_csv(dir.join("digits-test.csv"), CsvOptions::default()).unwrap(),
		),
	}
}

fn main() {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Shared);
	tokio::runtime::Builder::new_multi_thread()
		.worker_threads(2)
		.enable_all()
		.build()
		.expect("tokio runtime")
		.block_on(compression_report());
}
