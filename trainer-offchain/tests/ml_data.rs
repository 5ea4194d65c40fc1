//! CSV / IDX loaders (including malformed files), synthetic data and sharding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use trainchain_trainer::data::{
	gaussian_blobs, load_csv, load_idx, shard_iid, shard_label_skew, CsvOptions, Header,
	LabelColumn,
};
use trainchain_trainer::{ModelSpec, TrainerError};

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
	let p = dir.join(name);
	std::fs::write(&p, text).unwrap();
	p
}

#[test]
fn csv_good_files() {
	let dir = tempfile::tempdir().unwrap();
	let p = write(dir.path(), "a.csv", b"x,y,label\n0.5,1,2\n\n-1e-3, 2 ,0\n");
	let d = load_csv(&p, CsvOptions::default()).unwrap();
	assert_eq!((d.len(), d.n_features()), (2, 2));
	assert_eq!(d.features(), &[0.5, 1.0, -1e-3, 2.0]);
	assert_eq!(d.labels(), &[2, 0]);
	assert_eq!(d.num_classes(), 3);
	// No header, label first.
	let p = write(dir.path(), "b.csv", b"1,0.5,0.25\n0,1,1\n");
	let d = load_csv(&p, CsvOptions { label: LabelColumn::First, header: Header::Auto }).unwrap();
	assert_eq!(d.labels(), &[1, 0]);
	assert_eq!(d.features(), &[0.5, 0.25, 1.0, 1.0]);
	// Forced header drops the first numeric row.
	let d = load_csv(&p, CsvOptions { label: LabelColumn::Index(0), header: Header::Yes }).unwrap();
	assert_eq!(d.len(), 1);
}

fn csv_err(text: &str) -> String {
	let dir = tempfile::tempdir().unwrap();
	let p = write(dir.path(), "bad.csv", text.as_bytes());
	let e = load_csv(&p, CsvOptions::default()).unwrap_err();
	assert!(matches!(e, TrainerError::Csv { .. }), "{e}");
	let msg = e.to_string();
	assert!(msg.contains("bad.csv"), "{msg}");
	msg
}

#[test]
fn csv_malformed_files() {
	let m = csv_err("a,b,label\n1,2,0\n1,2\n");
	assert!(m.contains(":3:") && m.contains("ragged"), "{m}");
	let m = csv_err("1,2,0\n1,x,1\n");
	assert!(m.contains(":2:") && m.contains("\"x\" is not a number"), "{m}");
	let m = csv_err("1,2,0\n1,2,1.5\n");
	assert!(m.contains(":2:") && m.contains("label"), "{m}");
	let m = csv_err("1,2,0\n1,2,-1\n");
	assert!(m.contains("label"), "{m}");
	let m = csv_err("1,2,0\n1,inf,1\n");
	assert!(m.contains("not finite"), "{m}");
	let m = csv_err("");
	assert!(m.contains("no data rows"), "{m}");
	let m = csv_err("a,b,label\n");
	assert!(m.contains("no data rows"), "{m}");
	let m = csv_err("5\n");
	assert!(m.contains("column"), "{m}");
	let e = load_csv("/nonexistent/x.csv", CsvOptions::default()).unwrap_err();
	assert!(
		matches!(e, TrainerError::Io { .. }) && e.to_string().contains("/nonexistent/x.csv"),
		"{e}"
	);
}

#[test]
fn label_and_feature_checks_against_model() {
	let dir = tempfile::tempdir().unwrap();
	let p = write(dir.path(), "c.csv", b"1,2,0\n3,4,7\n");
	let d = load_csv(&p, CsvOptions::default()).unwrap();
	let e = d.check_compatible(&ModelSpec::parse("mlp:2-4-5").unwrap()).unwrap_err();
	assert!(matches!(e, TrainerError::LabelOutOfRange { label: 7, classes: 5, .. }), "{e}");
	assert!(e.to_string().contains("sample 1"), "{e}");
	let e = d.check_compatible(&ModelSpec::parse("mlp:3-4-8").unwrap()).unwrap_err();
	assert!(matches!(e, TrainerError::Mismatch { expected: 3, found: 2, .. }), "{e}");
	d.check_compatible(&ModelSpec::parse("logreg:2-8").unwrap()).unwrap();
}

fn idx_images(n: u32, r: u32, c: u32, pixels: &[u8]) -> Vec<u8> {
	let mut v = vec![0, 0, 8, 3];
	for x in [n, r, c] {
		v.extend(x.to_be_bytes());
	}
	v.extend(pixels);
	v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
	let mut v = vec![0, 0, 8, 1];
	v.extend((labels.len() as u32).to_be_bytes());
	v.extend(labels);
	v
}

#[test]
fn idx_loader() {
	let dir = tempfile::tempdir().unwrap();
	let img =
		write(dir.path(), "img", &idx_images(2, 2, 3, &[0, 255, 51, 0, 0, 0, 1, 2, 3, 4, 5, 6]));
	let lab = write(dir.path(), "lab", &idx_labels(&[3, 9]));
	let d = load_idx(&img, &lab).unwrap();
	assert_eq!((d.len(), d.n_features()), (2, 6));
	assert_eq!(d.labels(), &[3, 9]);
	assert_eq!(d.row(0)[1], 1.0);
	assert_eq!(d.row(0)[2], 0.2);
	// Malformed: truncated images, wrong magic, count mismatch, truncated labels, gzip.
	let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
		(idx_images(2, 2, 3, &[0; 11]), idx_labels(&[1, 2]), "need 28 bytes"),
		(vec![0, 0, 8, 1, 0, 0, 0, 0], idx_labels(&[1, 2]), "magic"),
		(idx_images(2, 2, 3, &[0; 12]), idx_labels(&[1]), "1 labels but"),
		(idx_images(2, 2, 3, &[0; 12]), idx_labels(&[1, 2])[..9].to_vec(), "need 10 bytes"),
		(vec![0x1f, 0x8b, 8, 0], idx_labels(&[1]), "gzip"),
		(vec![0, 0], idx_labels(&[1]), "header"),
	];
	for (i, l, want) in cases {
		let ip = write(dir.path(), "bi", &i);
		let lp = write(dir.path(), "bl", &l);
		let e = load_idx(&ip, &lp).unwrap_err();
		assert!(
			matches!(e, TrainerError::Idx { .. }) && e.to_string().contains(want),
			"{e} !~ {want}"
		);
	}
	let e = load_idx(dir.path().join("missing"), &lab).unwrap_err();
	assert!(matches!(e, TrainerError::Io { .. }), "{e}");
}

#[test]
fn blobs_and_sharding() {
	let d = gaussian_blobs(300, 5, 3, 3.0, 0.5, 7).unwrap();
	assert_eq!(d, gaussian_blobs(300, 5, 3, 3.0, 0.5, 7).unwrap(), "seeded");
	assert_ne!(d.features(), gaussian_blobs(300, 5, 3, 3.0, 0.5, 8).unwrap().features());
	assert_eq!(d.class_counts(), vec![100, 100, 100]);

	let shards = shard_iid(&d, 4, 1).unwrap();
	assert_eq!(shards, shard_iid(&d, 4, 1).unwrap());
	assert_ne!(shards, shard_iid(&d, 4, 2).unwrap());
	assert_eq!(shards.iter().map(|s| s.len()).sum::<usize>(), 300);
	assert!(shards.iter().all(|s| s.len() == 75));
	// Every sample lands in exactly one shard.
	let mut all: Vec<Vec<u32>> = shards
		.iter()
		.flat_map(|s| {
			(0..s.len()).map(|i| s.row(i).iter().map(|x| x.to_bits()).collect::<Vec<_>>())
		})
		.collect();
	let mut orig: Vec<Vec<u32>> =
		(0..d.len()).map(|i| d.row(i).iter().map(|x| x.to_bits()).collect()).collect();
	all.sort();
	orig.sort();
	assert_eq!(all, orig);

	let skew = shard_label_skew(&d, 3, 1, 5).unwrap();
	assert_eq!(skew, shard_label_skew(&d, 3, 1, 5).unwrap());
	assert_eq!(skew.iter().map(|s| s.len()).sum::<usize>(), 300);
	for s in &skew {
		// One piece per shard = one class per shard here.
		assert_eq!(s.class_counts().iter().filter(|c| **c > 0).count(), 1, "{}", s.name);
	}
	assert!(shard_iid(&d, 0, 1).is_err());
	assert!(shard_iid(&d, 301, 1).is_err());
	assert!(shard_label_skew(&d, 200, 2, 1).is_err());
}

#[test]
fn committed_digits_testdata() {
	let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
	let train = load_csv(root.join("digits-train.csv"), CsvOptions::default()).unwrap();
	let test = load_csv(root.join("digits-test.csv"), CsvOptions::default()).unwrap();
	assert_eq!((train.len(), test.len()), (1437, 360));
	assert_eq!((train.n_features(), train.num_classes()), (64, 10));
	assert!(train.features().iter().all(|x| (0.0..=1.0).contains(x)));
}
