//! `trainchain-trainer run` against a real `--dev` node, with bad input: each case ends with a
//! one-line `error: …` naming the problem and a non-zero exit, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{free_port, repo_root, sponsor, workspace_bin, DevNode};
use serde_json::Value;
use std::{
	process::{Command, Stdio},
	time::{Duration, Instant},
};

/// Run `trainchain-trainer run` with `args`; returns (exit code, stderr). Killed after 60 s.
fn run_trainer(args: &[&str]) -> (Option<i32>, String) {
	let data = repo_root().join("trainer-offchain/testdata/digits-train.csv");
	let mut child = Command::new(workspace_bin("trainchain-trainer"))
		.arg("run")
		.args(args)
		.arg("--data")
		.arg(data)
		.args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", free_port())])
		.stdout(Stdio::null())
		.stderr(Stdio::piped())
		.stdin(Stdio::null())
		.spawn()
		.unwrap();
	let start = Instant::now();
	while child.try_wait().unwrap().is_none() {
		if start.elapsed() > Duration::from_secs(60) {
			let _ = child.kill();
			panic!("trainchain-trainer run {args:?} hung for 60 s");
		}
		std::thread::sleep(Duration::from_millis(100));
	}
	let out = child.wait_with_output().unwrap();
	(out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_clear_error(args: &[&str], needle: &str) {
	let (code, stderr) = run_trainer(args);
	assert_eq!(code, Some(1), "{args:?}: exit code; stderr: {stderr}");
	assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
	let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
	assert_eq!(errors.len(), 1, "{args:?}: one error line expected: {stderr}");
	assert!(errors[0].contains(needle), "{args:?}: expected {needle:?} in {:?}", errors[0]);
}

fn create_job(node: &DevNode, extra: &[&str]) -> u64 {
	let mut args =
		vec!["create-job", "--rounds", "2", "--reward", "10", "--min", "2", "--max", "3", "--json"];
	args.extend_from_slice(extra);
	let (ok, stdout, stderr) = sponsor(node, &args);
	assert!(ok, "create-job {extra:?}: {stderr}");
	serde_json::from_str::<Value>(stdout.trim().lines().last().unwrap()).unwrap()["jobId"]
		.as_u64()
		.unwrap()
}

#[test]
fn bad_input_gives_one_line_errors_and_a_nonzero_exit() {
	let node = DevNode::start();
	node.wait_for(Duration::from_secs(60), "block #1", || node.best_number() >= 1);
	let url = node.ws_url();
	let good = create_job(&node, &["--model", "mlp:64-32-10"]);
	let good = good.to_string();
	let fake = format!("0x{}", "11".repeat(32));
	let unsupported =
		create_job(&node, &["--model", "transformer:big", "--model-commitment", &fake]).to_string();
	let wrong_weights =
		create_job(&node, &["--model", "mlp:64-32-10", "--model-commitment", &fake]).to_string();
	let expensive =
		create_job(&node, &["--model", "mlp:64-32-10", "--bond", "1000000000"]).to_string();

	// Nothing listens on this port.
	let dead = format!("ws://127.0.0.1:{}", free_port());
	assert_clear_error(&["--node", &dead, "--suri", "//Bob", "--job", &good], "127.0.0.1");
	// A node of another chain.
	assert_clear_error(
		&["--node", &url, "--genesis", &fake, "--suri", "//Bob", "--job", &good],
		"genesis",
	);
	assert_clear_error(&["--node", &url, "--suri", "//Bob", "--job", "999"], "999");
	assert_clear_error(
		&["--node", &url, "--suri", "//Bob", "--job", &unsupported],
		"unsupported model",
	);
	assert_clear_error(
		&["--node", &url, "--suri", "//Bob", "--job", &wrong_weights],
		"refusing the job",
	);
	// The bond is more than Bob has.
	assert_clear_error(
		&["--node", &url, "--suri", "//Bob", "--job", &expensive],
		"InsufficientBalance",
	);
	// A key without funds cannot pay the fee of `join_job`.
	assert_clear_error(
		&["--node", &url, "--suri", "//NobodyWithoutFunds", "--job", &good],
		"cannot pay the transaction fee",
	);
}
