//! Public-data jobs (issue #12): the shards and their root, and the verifier's two checks —
//! the shard comparison (an update should help its assigned shard more than another one; one
//! that does not is re-computed) and the re-computation (it must match) — against honest
//! contributors over several rounds and against contributors that skip work.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use trainchain_primitives::public_data::{assign_shard, ShardAssignment};
use trainchain_trainer::compress::{Compressed, Compression};
use trainchain_trainer::data::{load_csv, CsvOptions};
use trainchain_trainer::model::{Model, ModelSpec};
use trainchain_trainer::public_data::{
	relative_error, train_config, PublicCheck, PublicRole, PublicShards, Rejection,
	RECOMPUTE_TOLERANCE,
};
use trainchain_trainer::score::{score_round, Contribution};
use trainchain_trainer::train::local_round;

const SHARDS: u32 = 8;
const JOB: u64 = 4;

fn testdata(name: &str) -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

fn digits() -> PublicShards {
	PublicShards::load(&testdata("digits-train.csv"), SHARDS, None).unwrap()
}

fn spec() -> ModelSpec {
	ModelSpec::parse("mlp:64-32-10").unwrap()
}

/// A contributor's honest round: the assigned shard, the assigned seed, int8 as sent.
fn honest(shards: &PublicShards, base: &[f32], a: ShardAssignment) -> Vec<f32> {
	let mut model = Model::from_flat(&spec(), base).unwrap();
	let cfg = train_config(100_000, 32, 20);
	let out = local_round(&mut model, shards.shard(a.shard).unwrap(), &cfg, a.seed).unwrap();
	Compressed::new(Compression::Int8, &out.update).decode().unwrap()
}

fn check(shards: &PublicShards) -> PublicCheck<'_> {
	PublicCheck { shards, cfg: train_config(100_000, 32, 20) }
}

#[test]
fn shards_split_by_row_and_the_root_binds_them() {
	let all = load_csv(testdata("digits-train.csv"), CsvOptions::default()).unwrap();
	let s = PublicShards::split(&all, SHARDS).unwrap();
	assert_eq!(s.count(), SHARDS);
	assert_eq!(s.shard(3).unwrap().row(1), all.row(3 + SHARDS as usize));
	let total: usize = (0..SHARDS).map(|i| s.shard(i).unwrap().len()).sum();
	assert_eq!(total, all.len());
	assert_eq!(PublicShards::split(&all, SHARDS).unwrap().root(), s.root(), "deterministic");
	assert_ne!(PublicShards::split(&all, SHARDS - 1).unwrap().root(), s.root());
	// One changed label changes the root; a loader given the job's root refuses it.
	let mut labels = all.labels().to_vec();
	labels[100] = (labels[100] + 1) % 10;
	let changed = trainchain_trainer::data::Dataset::new(
		"changed",
		all.n_features(),
		all.features().to_vec(),
		labels,
	)
	.unwrap();
	assert_ne!(PublicShards::split(&changed, SHARDS).unwrap().root(), s.root());
	let wrong = [7u8; 32];
	let err = PublicShards::load(&testdata("digits-train.csv"), SHARDS, Some(wrong));
	assert!(err.err().unwrap().to_string().contains("commits to"));
}

/// Honest contributors over five FedAvg rounds, compared on *every* other shard: none is
/// rejected, and each re-computes exactly (relative error 0 on the same build). Prints how
/// often an honest update fails the shard comparison: why it screens and does not decide.
#[test]
fn honest_contributors_pass_both_checks_in_every_round() {
	let shards = digits();
	let check = check(&shards);
	let mut base = spec().initial_params().unwrap();
	let who: Vec<[u8; 32]> = (1u8..=4).map(|i| [i; 32]).collect();
	let mut model = Model::new(&spec()).unwrap();
	let (mut compared, mut screened) = (0, 0);
	for round in 0..5 {
		let mut mean = vec![0f32; base.len()];
		for w in &who {
			let a = assign_shard(JOB, round, w, SHARDS);
			let delta = honest(&shards, &base, a);
			for other in (0..SHARDS).filter(|s| *s != a.shard) {
				let role = PublicRole { assigned: a, compare: other, recompute: false };
				let got =
					check.check(&mut model, &base, &delta, Compression::Int8, 0.25, &role).unwrap();
				assert_eq!(got, None, "round {round}, shard {} vs {other}", a.shard);
				compared += 1;
				if !check.own_shard_first(&mut model, &base, &delta, 0.25, &role).unwrap() {
					screened += 1;
				}
			}
			let role = PublicRole { assigned: a, compare: (a.shard + 1) % SHARDS, recompute: true };
			let err = check
				.recompute_error(&mut model, &base, &delta, Compression::Int8, &role)
				.unwrap();
			assert_eq!(err, 0.0, "same build, same CPU: bit-identical");
			for (m, d) in mean.iter_mut().zip(&delta) {
				*m += d / who.len() as f32;
			}
		}
		for (b, m) in base.iter_mut().zip(&mean) {
			*b += m;
		}
	}
	println!(
		"honest updates that failed the shard comparison (and were re-computed): \
		 {screened} of {compared}"
	);
	assert!(screened < compared / 4, "the comparison should hold for most honest updates");
}

/// Skipping work is caught: an update trained on another shard, compared on the shard it came
/// from, fails the comparison and is re-computed (and rejected) though not sampled; half the
/// steps, a scaled update and another shuffle seed miss the re-computation by far more than
/// the tolerance.
#[test]
fn work_skipped_or_made_up_is_rejected() {
	let shards = digits();
	let check = check(&shards);
	let base = spec().initial_params().unwrap();
	let mut model = Model::new(&spec()).unwrap();
	let a = assign_shard(JOB, 2, &[9u8; 32], SHARDS);
	let elsewhere = ShardAssignment { shard: (a.shard + 3) % SHARDS, seed: a.seed };
	let wrong = honest(&shards, &base, elsewhere);
	let role = PublicRole { assigned: a, compare: elsewhere.shard, recompute: false };
	let got = check.check(&mut model, &base, &wrong, Compression::Int8, 0.25, &role).unwrap();
	assert!(matches!(got, Some(Rejection { screened: true, .. })), "{got:?}");
	let role = PublicRole { assigned: a, compare: (a.shard + 1) % SHARDS, recompute: true };
	let redone = |d: &[f32], model: &mut Model| {
		check.recompute_error(model, &base, d, Compression::Int8, &role).unwrap()
	};
	let e_wrong = redone(&wrong, &mut model);
	let mut half = Model::from_flat(&spec(), &base).unwrap();
	let cfg = train_config(100_000, 32, 10);
	let half = local_round(&mut half, shards.shard(a.shard).unwrap(), &cfg, a.seed).unwrap();
	let e_half = redone(&half.update, &mut model);
	let right = honest(&shards, &base, a);
	let scaled: Vec<f32> = right.iter().map(|x| x * 1.05).collect();
	let e_scaled = redone(&scaled, &mut model);
	let other_seed = honest(&shards, &base, ShardAssignment { shard: a.shard, seed: a.seed ^ 1 });
	let e_seed = redone(&other_seed, &mut model);
	println!(
		"relative error: other shard {e_wrong:.3}, half the steps {e_half:.3}, \
		 scaled x1.05 {e_scaled:.3}, other shuffle seed {e_seed:.3}"
	);
	for (what, e) in
		[("other shard", e_wrong), ("half steps", e_half), ("scaled", e_scaled), ("seed", e_seed)]
	{
		assert!(e > 4.0 * RECOMPUTE_TOLERANCE, "{what}: {e}");
	}
	let got = check.check(&mut model, &base, &scaled, Compression::Int8, 0.25, &role).unwrap();
	assert!(got.is_some_and(|r| r.relative_error > RECOMPUTE_TOLERANCE), "{got:?}");
	// Not sampled and helping its own shard first: not re-computed, so it passes.
	let unsampled = PublicRole { recompute: false, ..role };
	if check.own_shard_first(&mut model, &base, &scaled, 0.25, &unsampled).unwrap() {
		let got = check.check(&mut model, &base, &scaled, Compression::Int8, 0.25, &unsampled);
		assert_eq!(got.unwrap(), None);
	}
	assert_eq!(relative_error(&right, &right), 0.0);
}

/// In a round's scoring, the contribution that fails a check scores 0 while honest ones keep
/// their held-out score.
#[test]
fn a_rejected_contribution_scores_zero_in_the_round() {
	let shards = digits();
	let check = check(&shards);
	let validation = load_csv(testdata("digits-test.csv"), CsvOptions::default()).unwrap();
	let base = spec().initial_params().unwrap();
	let mut model = Model::new(&spec()).unwrap();
	let contributions: Vec<Contribution> = (1u8..=3)
		.map(|i| {
			let a = assign_shard(JOB, 0, &[i; 32], SHARDS);
			// Contributor 3 trains the shard after its own.
			let trained =
				if i == 3 { ShardAssignment { shard: (a.shard + 1) % SHARDS, ..a } } else { a };
			Contribution {
				delta: Some(honest(&shards, &base, trained)),
				committed_at: 1,
				compression: Compression::Int8,
				public: Some(PublicRole {
					assigned: a,
					compare: (a.shard + 2) % SHARDS,
					recompute: true,
				}),
			}
		})
		.collect();
	let s = score_round(&mut model, &base, &contributions, &validation, Some(&check)).unwrap();
	assert!(s.scores[0] > 0 && s.scores[1] > 0, "{:?}", s.scores);
	assert_eq!(s.scores[2], 0);
	assert!(s.rejections[2].is_some() && s.rejections[0].is_none());
}

#[test]
fn a_public_data_trainer_cannot_keep_its_inner_state() {
	use trainchain_trainer::shard::ShardTrainer;
	let cfg = train_config(100_000, 32, 20);
	let public = ShardTrainer::public(&spec(), digits(), JOB, [7; 32], None, cfg, false).unwrap();
	let err = public.keep_inner_state().err().expect("refused").to_string();
	assert!(err.contains("re-computable"), "{err}");
	// A contributor's own shard can.
	let own = digits().shard(0).unwrap().clone();
	assert!(ShardTrainer::new(&spec(), own, 0, None, cfg, 1)
		.unwrap()
		.keep_inner_state()
		.is_ok());
}
