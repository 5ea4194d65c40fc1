//! Traffic and wall-time benchmark of the averaging schemes (a bench target, run by
//! scripts/bench-allreduce.sh in release mode). Prints
//! `p2p-bench N FLOATS BYTES SCHEME BYTES_RATIO MS` per configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/p2p_common/mod.rs"]
mod p2p_common;
use p2p_common::*;
use std::time::Duration;
use trainchain_trainer::p2p::Scheme;

fn env_list(name: &str, default: &str) -> Vec<String> {
	std::env::var(name)
		.unwrap_or_else(|_| default.into())
		.split_whitespace()
		.map(String::from)
		.collect()
}

async fn bench_allreduce() {
	init_tracing();
	let rounds: u32 = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
	let suris = ["//Alice", "//Bob", "//Charlie", "//Dave"];
	for n in env_list("BENCH_NS", "2 3 4") {
		let n: usize = n.parse().unwrap();
		for floats in env_list("BENCH_SIZES", "75000 10000000") {
			let floats: usize = floats.parse().unwrap();
			for scheme in env_list("BENCH_SCHEMES", "chunked all-to-all") {
				let scheme: Scheme = scheme.parse().unwrap();
				let mut handles = Vec::new();
				let mut boot = Vec::new();
				for (i, s) in suris.iter().take(n).enumerate() {
					let mut cfg = peer_cfg(s, n);
					cfg.scheme = scheme;
					cfg.round_timeout = Duration::from_secs(120);
					cfg.min_peers = n;
					let mut ncfg = net_cfg(boot.clone());
					ncfg.max_message = 256 << 20;
					ncfg.request_timeout = Duration::from_secs(300);
					let t = Synth { idx: i as u64, len: floats, wrong_len: false };
					let (h, addr, _) = spawn_peer_with(cfg, ncfg, t, floats, rounds + 1).await;
					if boot.is_empty() {
						boot.push(addr);
					}
					handles.push(h);
				}
				let mut all = Vec::new();
				for h in handles {
					all.push(h.await.unwrap());
				}
				agree(&all);
				let s = (floats * 4) as f64;
				let ideal = 2.0 * s * (n as f64 - 1.0) / n as f64;
				// Skip round 0 (connection set-up).
				let sent: Vec<f64> = all
					.iter()
					.flat_map(|r| r.iter().skip(1))
					.map(|r| r.bytes_sent as f64)
					.collect();
				let ratio = sent.iter().sum::<f64>() / sent.len() as f64 / ideal;
				let mut ms: Vec<u64> = (1..=rounds)
					.map(|round| {
						all.iter()
							.filter_map(|r| r.iter().find(|x| x.round == round))
							.map(|x| x.network_ms)
							.max()
							.unwrap_or(0)
					})
					.collect();
				ms.sort();
				let med = ms[ms.len() / 2];
				println!("p2p-bench {n} {floats} {} {scheme} {ratio:.3} {med}", floats * 4);
			}
		}
	}
}

fn main() {
	tokio::runtime::Builder::new_multi_thread()
		.worker_threads(2)
		.enable_all()
		.build()
		.expect("tokio runtime")
		.block_on(bench_allreduce());
}
