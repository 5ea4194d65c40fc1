//! The CLI end to end: train → eval → hash, and bad input gives errors, not panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
	Command::new(env!("CARGO_BIN_EXE_trainchain-trainer"))
}

fn testdata(name: &str) -> String {
	Path::new(env!("CARGO_MANIFEST_DIR"))
		.join("testdata")
		.join(name)
		.display()
		.to_string()
}

#[test]
fn train_eval_hash() {
	let dir = tempfile::tempdir().unwrap();
	let out = dir.path().join("m.safetensors");
	let o = bin()
		.args([
			"train",
			"--model",
			"mlp:64-32-10@1",
			"--data",
			&testdata("digits-train.csv"),
			"--test",
			&testdata("digits-test.csv"),
			"--epochs",
			"2",
			"--json",
			"--out",
		])
		.arg(&out)
		.output()
		.unwrap();
	assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
	let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
		.unwrap()
		.lines()
		.map(|l| serde_json::from_str(l).unwrap())
		.collect();
	assert_eq!(lines.len(), 4, "start, 2 epochs, done");
	assert_eq!(lines[1]["event"], "epoch");
	let done = &lines[3];
	let trained_hash = done["model_hash"].as_str().unwrap().to_string();
	assert!(done["test_accuracy"].as_f64().unwrap() > 0.8);

	let o = bin()
		.args(["eval", "--json", "--data", &testdata("digits-test.csv"), "--weights"])
		.arg(&out)
		.output()
		.unwrap();
	assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
	let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
	assert_eq!(v["model_hash"], trained_hash.as_str());
	assert_eq!(v["accuracy"], done["test_accuracy"]);

	let o = bin().args(["hash", "--json", "--weights"]).arg(&out).output().unwrap();
	let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
	assert_eq!(v["weights_state_hash"], trained_hash.as_str());
	assert_eq!(v["spec"], "mlp:64-32-10@1");
	assert!(v["model_commitment"].as_str().unwrap().starts_with("0x"));
	assert_eq!(v["model_commitment"].as_str().unwrap().len(), 66);
}

fn fails_with(args: &[&str], want: &str) {
	let o = bin().args(args).output().unwrap();
	let err = String::from_utf8_lossy(&o.stderr);
	assert!(!o.status.success(), "{args:?} succeeded");
	assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
	assert!(err.contains(want), "{args:?}: {err:?} does not mention {want:?}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
	let dir = tempfile::tempdir().unwrap();
	let ragged = dir.path().join("ragged.csv");
	std::fs::write(&ragged, "1,2,0\n1,0\n").unwrap();
	let ragged = ragged.display().to_string();
	let train = testdata("digits-train.csv");
	fails_with(&["train", "--data", "/nonexistent.csv"], "/nonexistent.csv");
	fails_with(&["train", "--data", &ragged], "ragged.csv:2: ragged row");
	fails_with(
		&["train", "--model", "mlp:64-32-5", "--data", &train, "--epochs", "1"],
		"outside the model's 5 classes",
	);
	fails_with(
		&["train", "--model", "mlp:60-32-10", "--data", &train, "--epochs", "1"],
		"expected 60, found 64",
	);
	fails_with(&["train", "--model", "rnn:1-2", "--data", &train], "unknown model kind");
	fails_with(&["train", "--data", &train, "--batch-size", "0"], "batch size");
	fails_with(&["hash"], "--model");
	fails_with(
		&["eval", "--weights", "/nonexistent.safetensors", "--data", &train],
		"/nonexistent.safetensors",
	);
}

/// Three Gaussian blobs in 4 features on raw-measurement scales (around 1,000 with spreads
/// of hundreds, plus one feature on a scale of 1): `(train.csv, test.csv)` in `dir`.
fn raw_scale_blobs(dir: &Path) -> (String, String) {
	let scale = [300.0f32, 1.0, 150.0, 500.0];
	let offset = [1000.0f32, 0.0, 1500.0, 800.0];
	let blobs = trainchain_trainer::data::gaussian_blobs(400, 4, 3, 3.0, 1.0, 14).unwrap();
	let write = |name: &str, rows: std::ops::Range<usize>| {
		let mut text = String::from("a,b,c,d,label\n");
		for i in rows {
			for (j, x) in blobs.row(i).iter().enumerate() {
				text.push_str(&format!("{},", x * scale[j] + offset[j]));
			}
			text.push_str(&format!("{}\n", blobs.labels()[i]));
		}
		let p = dir.join(name);
		std::fs::write(&p, text).unwrap();
		p.display().to_string()
	};
	(write("train.csv", 0..300), write("test.csv", 300..400))
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
	String::from_utf8_lossy(stdout)
		.lines()
		.map(|l| serde_json::from_str(l).unwrap())
		.collect()
}

#[test]
fn raw_scale_features_are_standardised_and_eval_reuses_the_statistics() {
	let dir = tempfile::tempdir().unwrap();
	let (train, test) = raw_scale_blobs(dir.path());
	for model in ["mlp", "logreg"] {
		let out = dir.path().join(format!("{model}.safetensors"));
		let o = bin()
			.args(["train", "--model", model, "--data", &train, "--test", &test, "--json", "--out"])
			.arg(&out)
			.output()
			.unwrap();
		assert!(o.status.success(), "{model}: {}", String::from_utf8_lossy(&o.stderr));
		let lines = json_lines(&o.stdout);
		assert_eq!(lines[0]["standardize"], true);
		let done = lines.last().unwrap();
		assert_eq!(done["event"], "done");
		let acc = done["test_accuracy"].as_f64().unwrap();
		assert!(acc > 0.9, "{model}: test accuracy {acc} (chance is 1/3)");

		let o = bin()
			.args(["eval", "--json", "--data", &test, "--weights"])
			.arg(&out)
			.output()
			.unwrap();
		assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
		let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
		assert_eq!(v["standardized"], true);
		assert_eq!(v["accuracy"], done["test_accuracy"], "{model}: eval differs from train");
		assert_eq!(v["loss"], done["test_loss"], "{model}: eval differs from train");
	}
}

#[test]
fn unscaled_features_with_a_big_lr_fail_loudly_and_save_nothing() {
	let dir = tempfile::tempdir().unwrap();
	let (train, test) = raw_scale_blobs(dir.path());
	for model in ["mlp", "logreg"] {
		let out = dir.path().join(format!("{model}.safetensors"));
		let o = bin()
			.args(["train", "--model", model, "--data", &train, "--test", &test])
			.args(["--no-standardize", "--lr", "0.5", "--out"])
			.arg(&out)
			.output()
			.unwrap();
		let (stdout, stderr) =
			(String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
		assert!(!o.status.success(), "{model} succeeded: {stdout}");
		assert!(!stderr.contains("panicked"), "{stderr}");
		assert!(
			stderr.contains("training diverged") || stderr.contains("training did not converge"),
			"{model}: {stderr}"
		);
		assert!(stderr.contains("learning rate") && stderr.contains("unscaled"), "{stderr}");
		assert!(stderr.contains("--no-standardize") && stderr.contains("NOT saved"), "{stderr}");
		assert!(!stdout.contains("trained"), "{model} claims success: {stdout}");
		assert!(!out.exists(), "{model}: a failed run saved {}", out.display());
	}
}
