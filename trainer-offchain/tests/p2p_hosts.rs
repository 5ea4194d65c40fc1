//! Trainers on separate hosts (issue #13): each `trainchain-trainer peer` process runs in its
//! own network namespace with its own address, reaching the others only through the routes
//! the test sets up ([`netns::Lab`]). Run as root (CI is); elsewhere each test prints `SKIP`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod netns;
mod peer_procs;

use netns::Lab;
use peer_procs::{model_hashes, PeerProc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A digits MLP with 75,010 parameters (300 KB updates, 100 KB chunks among three).
const WIDE_MODEL: &str = "mlp:64-1000-10";

/// Bytes a peer's rounds sent on the direct path.
fn direct_bytes(events: &[Value]) -> u64 {
	events
		.iter()
		.filter(|v| v["event"] == "round")
		.map(|r| r["direct_bytes_sent"].as_u64().unwrap())
		.sum()
}

/// Peer `i` of `n`, in namespace `ns` of `lab`.
fn start_in(lab: &Lab, ns: &str, i: usize, n: usize, args: &[String], logs: &Path) -> PeerProc {
	PeerProc::start(lab.command(ns, peer_procs::trainer_bin()), i, n, args, logs)
}

/// Three peers on three hosts, routed through the public namespace, listening on all
/// interfaces with the CLI's default addresses except for the port of peer 0, which the others
/// bootstrap to at its host address over `transport` ("tcp" or "quic").
fn three_hosts_agree(transport: &str) {
	let Some(lab) = Lab::new(3) else { return };
	lab.set_forwarding(true);
	let logs = std::env::temp_dir().join(format!("trainchain-hosts-{transport}-{}", lab.public));
	std::fs::create_dir_all(&logs).unwrap();
	let (listen, boot) = match transport {
		"tcp" => {
			("/ip4/0.0.0.0/tcp/30400".to_string(), format!("/ip4/{}/tcp/30400", lab.host_ip(0)))
		},
		_ => (
			"/ip4/0.0.0.0/udp/30400/quic-v1".to_string(),
			format!("/ip4/{}/udp/30400/quic-v1", lab.host_ip(0)),
		),
	};
	let mut peers: Vec<PeerProc> = (0..3)
		.map(|i| {
			// All three must be there before round 0 (`peer` starts with 2 by default).
			let mut args =
				vec!["--listen".to_string(), listen.clone(), "--min-peers".into(), "3".into()];
			// Updates of 300 KB: chunks large enough for the direct path.
			args.extend(["--model".to_string(), WIDE_MODEL.to_string()]);
			if i > 0 {
				args.extend(["--bootstrap".to_string(), boot.clone()]);
			}
			start_in(&lab, &lab.hosts[i], i, 3, &args, &logs)
		})
		.collect();
	let deadline = Instant::now() + Duration::from_secs(120);
	let events: Vec<Vec<Value>> = peers.iter_mut().map(|p| p.finish(deadline)).collect();
	let hashes: Vec<BTreeMap<u64, String>> = events.iter().map(|e| model_hashes(e)).collect();
	assert_eq!(hashes[0].len(), 2, "peer 0 rounds: {:?}", events[0]);
	assert!(hashes.iter().all(|h| *h == hashes[0]), "model hashes differ: {hashes:?}");
	// Chunks crossed between the hosts on the direct path (a TCP connection of its own, also
	// next to a QUIC libp2p connection).
	for (i, e) in events.iter().enumerate() {
		assert!(direct_bytes(e) > 0, "peer {i} sent nothing on the direct path");
	}
	// Each peer listened on its own host only: no other host's address among its own.
	for (i, e) in events.iter().enumerate() {
		let listening = e.iter().find(|v| v["event"] == "listening").unwrap().to_string();
		for j in (0..3).filter(|j| *j != i) {
			assert!(!listening.contains(&format!("{}/", lab.host_ip(j))), "peer {i}: {listening}");
		}
	}
}

#[test]
fn peers_on_separate_hosts_agree_over_tcp() {
	three_hosts_agree("tcp");
}

#[test]
fn peers_on_separate_hosts_agree_over_quic() {
	three_hosts_agree("quic");
}

/// The lab itself: host 0 reaches a listener on host 1 only while the public namespace
/// forwards between them.
#[test]
fn hosts_see_each_other_only_through_the_routes_the_test_sets() {
	let Some(lab) = Lab::new(2) else { return };
	let listen = "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',30499))\ns.listen()\ntime.sleep(60)";
	let mut listener = lab
		.command(&lab.hosts[1], Path::new("python3"))
		.args(["-c", listen])
		.stdin(Stdio::null())
		.spawn()
		.unwrap();
	lab.set_forwarding(true);
	// The listener may take a while to start on a busy machine: retry for up to 20 s.
	let deadline = Instant::now() + Duration::from_secs(20);
	let mut routed = false;
	while !routed && Instant::now() < deadline {
		routed = lab.tcp_reachable(0, &lab.host_ip(1), 30499);
		if !routed {
			std::thread::sleep(Duration::from_millis(200));
		}
	}
	lab.set_forwarding(false);
	let unrouted = lab.tcp_reachable(0, &lab.host_ip(1), 30499);
	let _ = listener.kill();
	let _ = listener.wait();
	assert!(routed, "with forwarding on, host 0 must reach host 1");
	assert!(!unrouted, "with forwarding off, host 0 must not reach host 1");
}

/// No direct path (issue #13): two trainers on hosts that cannot reach each other, only the
/// public namespace, where a third peer trains and relays (`--relay-server`). Both reserve a
/// circuit on it (`--relay`) and the three complete two rounds with equal model hashes, the
/// updates between the two hosts going through the relay.
#[test]
fn peers_without_a_direct_path_train_through_a_relay() {
	relay_pair(true);
}

/// The same with a relay that is not told its address: AutoNAT confirms it (the hosts dial it
/// back at the address they see it at), and only then can circuits be reserved on it.
#[test]
fn a_relay_learns_its_address_by_autonat() {
	relay_pair(false);
}

fn relay_pair(external_address: bool) {
	let Some(lab) = Lab::new(2) else { return };
	lab.set_forwarding(false);
	let logs = std::env::temp_dir().join(format!("trainchain-relay-{}", lab.public));
	std::fs::create_dir_all(&logs).unwrap();
	let common = |extra: &[&str]| {
		let mut a: Vec<String> =
			["--listen", "/ip4/0.0.0.0/tcp/30400", "--min-peers", "3", "--model", WIDE_MODEL]
				.iter()
				.map(|s| s.to_string())
				.collect();
		a.extend(extra.iter().map(|s| s.to_string()));
		a
	};
	// A relay serves circuits only on an address it knows to be reachable.
	let (ext0, ext1) = (
		format!("/ip4/{}/tcp/30400", lab.gateway(0)),
		format!("/ip4/{}/tcp/30400", lab.gateway(1)),
	);
	let relay_args = if external_address {
		common(&["--relay-server", "--external-address", &ext0, "--external-address", &ext1])
	} else {
		common(&["--relay-server"])
	};
	let relay = start_in(&lab, &lab.public, 0, 3, &relay_args, &logs);
	let (id, _) = relay.wait_listening(Duration::from_secs(20));
	let mut peers = vec![relay];
	for h in 0..2 {
		let via = format!("/ip4/{}/tcp/30400/p2p/{id}", lab.gateway(h));
		let args = common(&["--bootstrap", &via, "--relay", &via]);
		peers.push(start_in(&lab, &lab.hosts[h], h + 1, 3, &args, &logs));
	}
	let deadline = Instant::now() + Duration::from_secs(150);
	let events: Vec<Vec<Value>> = peers.iter_mut().map(|p| p.finish(deadline)).collect();
	let hashes: Vec<BTreeMap<u64, String>> = events.iter().map(|e| model_hashes(e)).collect();
	assert_eq!(hashes[0].len(), 2, "relay peer rounds: {:?}", events[0]);
	assert!(hashes.iter().all(|h| *h == hashes[0]), "model hashes differ: {hashes:?}");
	// Every round included all three: the two hosts exchanged updates through the relay.
	for e in &events {
		for r in e.iter().filter(|v| v["event"] == "round") {
			assert_eq!(r["included"].as_array().unwrap().len(), 3, "{r}");
		}
	}
}
