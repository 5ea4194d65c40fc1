//! Round protocol over real libp2p sockets on 127.0.0.1 with synthetic updates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod p2p_common;
use p2p_common::*;
use trainchain_trainer::compress::Compression;
use trainchain_trainer::p2p::Scheme;
use trainchain_trainer::signing::{verify, Keys};

const SURIS: [&str; 3] = ["//Alice", "//Bob", "//Charlie"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_agree_and_schemes_give_identical_models() {
	init_tracing();
	let chunked = honest_run(&SURIS, 3, |c| c.scheme = Scheme::Chunked).await;
	let h1 = agree(&chunked);
	assert_eq!(h1.len(), 3, "{h1:?}");
	let all = honest_run(&SURIS, 3, |c| c.scheme = Scheme::AllToAll).await;
	let h2 = agree(&all);
	// The chunked scheme sums each coordinate in the same sorted order: bit-identical.
	assert_eq!(h1, h2);

	// Exactly one peer per round holds a complete quorum certificate, and it verifies as the
	// chain would (sr25519 over AggregatePayload::signing_bytes()).
	for round in 0..3u32 {
		let certs: Vec<_> = chunked
			.iter()
			.flat_map(|r| r.iter())
			.filter(|r| r.round == round)
			.filter_map(|r| r.certificate.clone())
			.collect();
		assert_eq!(certs.len(), 1, "round {round}");
		let qc = &certs[0];
		assert!(qc.is_complete());
		assert_eq!(qc.verify().unwrap(), 3);
		assert_eq!(qc.included().len(), 3);
		let holder =
			trainchain_trainer::p2p::round::holder_order(qc.job_id(), round, qc.included())[0];
		let keys: Vec<_> = SURIS.iter().map(|s| Keys::from_suri(s).unwrap().public()).collect();
		assert!(keys.contains(&holder));
		assert!(
			qc.included().windows(2).all(|w| w[0].who < w[1].who),
			"included set sorted by key"
		);
		for e in &qc.signatures {
			assert!(verify(&e.who, &qc.payload.signing_bytes(e.metric), &e.signature));
		}
		// The holder (rotating per round) is the submitter every signer named.
		assert_eq!(qc.payload.submitter, holder);
		assert_eq!(qc.payload.genesis_hash, [5; 32]);
		assert_eq!(qc.model_hash(), h1[round as usize].1);
	}
	// Traffic: the chunked scheme sends about 2·S·(N−1)/N per peer, all-to-all S·(N−1).
	let s = (LEN * 4) as f64;
	let avg = |runs: &Vec<Vec<trainchain_trainer::p2p::RoundReport>>| {
		let v: Vec<f64> = runs
			.iter()
			.flat_map(|r| r.iter().skip(1))
			.map(|r| r.bytes_sent as f64)
			.collect();
		v.iter().sum::<f64>() / v.len() as f64
	};
	let ideal = 2.0 * s * 2.0 / 3.0;
	let ratio = avg(&chunked) / ideal;
	assert!(ratio < 1.25, "chunked bytes ratio {ratio}");
	assert!(avg(&all) > avg(&chunked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_compression_keeps_peers_in_agreement() {
	init_tracing();
	for c in ["fp16", "int8", "topk:0.1", "sparse:0.0156:2"] {
		let comp: Compression = c.parse().unwrap();
		let runs = honest_run(&SURIS, 2, |cfg| cfg.compression = comp).await;
		let h = agree(&runs);
		assert_eq!(h.len(), 2, "{c}");
		let bytes = runs[0][1].update_bytes as f64 / (LEN * 4) as f64;
		match c {
			"fp16" => assert!((bytes - 0.5).abs() < 0.01, "{bytes}"),
			"int8" => assert!(bytes < 0.3, "{bytes}"),
			"topk:0.1" => assert!(bytes < 0.25, "{bytes}"),
			_ => assert!(bytes < 0.01, "{bytes}"),
		}
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_compression_shrinks_both_halves_of_the_exchange_over_100_times() {
	init_tracing();
	let runs =
		honest_run(&SURIS, 2, |cfg| cfg.compression = "sparse:0.027:1".parse().unwrap()).await;
	agree(&runs);
	let n = SURIS.len() as f64;
	let dense = (LEN * 4) as f64;
	for r in runs.iter().flat_map(|r| r.iter()) {
		// The reduce-scatter half: this peer's update, of which (N−1)/N goes to the others.
		let scatter = dense / r.update_bytes as f64;
		// The all-gather half: the reduced chunk this peer owns, re-sparsified (uncompressed:
		// a third of the update's f32 values).
		let gather = (dense / n) / r.reduced_bytes as f64;
		assert!(scatter >= 100.0, "reduce-scatter {scatter:.1}x");
		assert!(gather >= 100.0, "all-gather {gather:.1}x");
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nesterov_outer_step_keeps_peers_identical_and_differs_from_averaging() {
	init_tracing();
	let nesterov: trainchain_trainer::outer::OuterOptimizer = "nesterov:0.7:0.9".parse().unwrap();
	let runs = honest_run(&SURIS, 3, |cfg| cfg.outer = nesterov).await;
	let h_nesterov = agree(&runs);
	assert_eq!(h_nesterov.len(), 3);
	let avg = honest_run(&SURIS, 3, |_| {}).await;
	let h_avg = agree(&avg);
	for (a, b) in h_avg.iter().zip(&h_nesterov) {
		assert_ne!(a.1, b.1, "round {}: the outer step and its momentum change the state", a.0);
	}
}
