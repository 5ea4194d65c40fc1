//! Models you can keep (issue #14): `peer --out` writes the final model with its spec, and
//! `peer --resume` starts from it. Two `peer` processes on loopback train two rounds and save;
//! the saved model's hash is the last round's agreed hash, `hash` on the file gives it too, and
//! two peers resumed from the file start from exactly that model and train on from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod peer_procs;

use peer_procs::{log_dir, model_hashes, trainer_bin, PeerProc};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run two peers with `extra` arguments (peer 0 bootstraps peer 1); each one's events.
fn two_peers(logs: &Path, extra: impl Fn(usize) -> Vec<String>) -> Vec<Vec<Value>> {
	std::fs::create_dir_all(logs).unwrap();
	let common = |i: usize| {
		let mut a: Vec<String> = ["--listen", "/ip4/127.0.0.1/tcp/0", "--min-peers", "2"]
			.iter()
			.map(|s| s.to_string())
			.collect();
		a.extend(extra(i));
		a
	};
	let first = PeerProc::start(Command::new(trainer_bin()), 0, 2, &common(0), logs);
	let (id, addrs) = first.wait_listening(Duration::from_secs(30));
	let mut args = common(1);
	args.extend(["--bootstrap".to_string(), format!("{}/p2p/{id}", addrs[0])]);
	let mut peers = [first, PeerProc::start(Command::new(trainer_bin()), 1, 2, &args, logs)];
	let deadline = Instant::now() + Duration::from_secs(120);
	peers.iter_mut().map(|p| p.finish(deadline)).collect()
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
	events
		.iter()
		.find(|e| e["event"] == name)
		.unwrap_or_else(|| panic!("no {name}: {events:?}"))
}

#[test]
fn a_saved_model_resumes_with_the_same_hash() {
	let logs = log_dir("keep");
	let file = |i: usize| logs.join(format!("model-{i}.safetensors"));
	let first =
		two_peers(&logs.join("first"), |i| vec!["--out".into(), file(i).display().to_string()]);
	let last = model_hashes(&first[0]).into_values().last().unwrap();
	for (i, events) in first.iter().enumerate() {
		assert_eq!(event(events, "saved")["model_hash"], last.as_str(), "peer {i}");
	}
	let hashed = Command::new(trainer_bin())
		.args(["hash", "--weights"])
		.arg(file(0))
		.output()
		.unwrap();
	let printed = String::from_utf8_lossy(&hashed.stdout).to_string();
	assert!(printed.contains(&last), "`hash` printed {printed:?}, expected {last}");

	let resumed = two_peers(&logs.join("resumed"), |_| {
		vec!["--resume".into(), file(0).display().to_string()]
	});
	for (i, events) in resumed.iter().enumerate() {
		assert_eq!(event(events, "joined")["model_hash"], last.as_str(), "peer {i}");
	}
	let after = model_hashes(&resumed[0]);
	assert_eq!(after.len(), 2, "{:?}", resumed[0]);
	assert!(after.values().all(|h| *h != last), "resumed peers trained on");
	assert_eq!(model_hashes(&resumed[1]), after, "resumed peers agree");
}
