//! Sixteen trainer processes (issue #13): `trainchain-trainer peer` × 16 on loopback, each on
//! its own shard of the digits, discover each other from one bootstrap peer, complete two
//! rounds with every model hash equal, and each sends O(N) messages per round.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod peer_procs;

use peer_procs::{log_dir, model_hashes, rounds, trainer_bin, PeerProc};
use std::process::Command;
use std::time::{Duration, Instant};

const N: usize = 16;

#[test]
fn sixteen_peer_processes_agree_with_linear_messages_per_peer() {
	let logs = log_dir("many");
	let common = |extra: &[String]| {
		let mut a: Vec<String> =
			["--listen", "/ip4/127.0.0.1/tcp/0", "--min-peers", "16", "--round-timeout", "40"]
				.iter()
				.map(|s| s.to_string())
				.collect();
		a.extend_from_slice(extra);
		a
	};
	let first = PeerProc::start(Command::new(trainer_bin()), 0, N, &common(&[]), &logs);
	let (id, addrs) = first.wait_listening(Duration::from_secs(30));
	let boot = format!("{}/p2p/{id}", addrs[0]);
	let mut peers = vec![first];
	for i in 1..N {
		let args = common(&["--bootstrap".into(), boot.clone()]);
		peers.push(PeerProc::start(Command::new(trainer_bin()), i, N, &args, &logs));
	}
	let deadline = Instant::now() + Duration::from_secs(300);
	let events: Vec<_> = peers.iter_mut().map(|p| p.finish(deadline)).collect();
	let hashes: Vec<_> = events.iter().map(|e| model_hashes(e)).collect();
	assert_eq!(hashes[0].len(), 2, "peer 0 rounds: {:?}", events[0]);
	assert!(hashes.iter().all(|h| *h == hashes[0]), "model hashes differ: {hashes:?}");
	let mut most = 0;
	for (i, e) in events.iter().enumerate() {
		for r in rounds(e) {
			assert_eq!(r["included"].as_array().unwrap().len(), N, "peer {i}: {r}");
			most = most.max(r["messages_sent"].as_u64().unwrap());
		}
	}
	// The chunked exchange sends a chunk, a norms report, a reduced chunk and a digest to each
	// of the N − 1 others, plus a few gossip publishes and a signature share: about 4·N. A
	// scheme that relayed every update through every peer would send N² = 256.
	println!("most messages sent by one peer in one round: {most} (N = {N})");
	assert!(most <= 6 * N as u64, "{most} messages in one round by one peer, N = {N}");
}
