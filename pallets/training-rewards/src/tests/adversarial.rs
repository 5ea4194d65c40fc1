//! Adversarial property test: random sequences of honest and malicious actors. After every
//! step: the ledgers and holds are exact (`do_try_state`), nobody is paid for a round it did
//! not commit in, no honest contributor loses any bond or balance, honest contributors whose
//! commitments reach quorum can always finalise their round, and issuance falls only by burned
//! slashes. `PROPTEST_CASES` sets the number of sequences (1,000 by default, as in CI).
use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Honest contributors.
const HONEST: [u8; 3] = [1, 2, 3];
/// Colluding sybils (4 also front-runs, 5 also equivocates).
const SYBILS: [u8; 2] = [4, 5];
const SQUATTER: u8 = 6;
const GRIEFER: u8 = 7;
const REPORTER: u8 = 8;

#[derive(Debug, Clone)]
enum Op {
	Create { rounds: u32 },
	Join { job: u8, who: u8 },
	HonestCommit { job: u8, who: u8, samples: u64 },
	SybilCommit { job: u8, who: u8, junk: u64 },
	Squat { job: u8, victim: u8 },
	HonestAggregate { job: u8 },
	SybilAggregate { job: u8, model: u8 },
	FrontRun { job: u8 },
	Equivocate { job: u8 },
	FrameHonest { job: u8, victim: u8 },
	Grief,
	Cancel { job: u8 },
	Leave { job: u8, who: u8 },
	Withdraw { job: u8, who: u8 },
	Advance { blocks: u8 },
}

fn op() -> impl Strategy<Value = Op> {
	let job = 0u8..6;
	let member = 1u8..8;
	let honest = proptest::sample::select(HONEST.to_vec());
	prop_oneof![
		1 => (1u32..4).prop_map(|rounds| Op::Create { rounds }),
		3 => (job.clone(), member.clone()).prop_map(|(job, who)| Op::Join { job, who }),
		3 => (job.clone(), honest.clone(), 1u64..1000)
			.prop_map(|(job, who, samples)| Op::HonestCommit { job, who, samples }),
		1 => (job.clone(), proptest::sample::select(SYBILS.to_vec()), any::<u64>())
			.prop_map(|(job, who, junk)| Op::SybilCommit { job, who, junk }),
		1 => (job.clone(), honest.clone()).prop_map(|(job, victim)| Op::Squat { job, victim }),
		2 => job.clone().prop_map(|job| Op::HonestAggregate { job }),
		1 => (job.clone(), any::<u8>()).prop_map(|(job, model)| Op::SybilAggregate { job, model }),
		1 => job.clone().prop_map(|job| Op::FrontRun { job }),
		1 => job.clone().prop_map(|job| Op::Equivocate { job }),
		1 => (job.clone(), honest).prop_map(|(job, victim)| Op::FrameHonest { job, victim }),
		1 => Just(Op::Grief),
		1 => job.clone().prop_map(|job| Op::Cancel { job }),
		1 => (job.clone(), member.clone()).prop_map(|(job, who)| Op::Leave { job, who }),
		1 => (job, member).prop_map(|(job, who)| Op::Withdraw { job, who }),
		2 => (1u8..12).prop_map(|blocks| Op::Advance { blocks }),
	]
}

fn open_round(id: JobId) -> RoundIndex {
	Jobs::<Test>::get(id).map_or(0, |j| j.round.index)
}

/// Members that committed in the open round, with their samples.
fn committed_in_open_round(id: JobId, among: &[u8]) -> Vec<(u8, u64)> {
	let round = open_round(id);
	among
		.iter()
		.filter_map(|n| {
			Commitments::<Test>::get(id, account(*n))
				.filter(|c| c.round == round && c.commitment == commitment(id, round, *n))
				.map(|c| (*n, c.samples))
		})
		.collect()
}

/// True if honest contributors must be able to finalise the open round now.
fn honest_can_finalise(id: JobId, honest: &[(u8, u64)]) -> bool {
	let Some(j) = Jobs::<Test>::get(id) else {
		return false;
	};
	let now = System::block_number();
	j.status == JobStatus::Running
		&& now < j.round.deadline
		&& (now >= j.round.commit_until || j.round.committed >= j.contributors)
		&& !honest.is_empty()
		&& honest.len() as u32 >= TrainingRewards::quorum(&j)
}

fn apply(op: &Op) {
	let _ = match op.clone() {
		Op::Create { rounds } => {
			TrainingRewards::create_job(origin(SPONSOR), spec(), REWARD, rounds)
		},
		Op::Join { job, who } => TrainingRewards::join_job(origin(who), job.into()),
		Op::HonestCommit { job, who, samples } => {
			let id = u64::from(job);
			let round = open_round(id);
			TrainingRewards::commit_update(
				origin(who),
				id,
				round,
				commitment(id, round, who),
				samples,
			)
		},
		Op::SybilCommit { job, who, junk } => {
			// No training: a random hash with the most samples allowed.
			let id = u64::from(job);
			let junk = H256::from_low_u64_be(junk);
			TrainingRewards::commit_update(origin(who), id, open_round(id), junk, 1_000)
		},
		Op::Squat { job, victim } => {
			let id = u64::from(job);
			let round = open_round(id);
			TrainingRewards::commit_update(
				origin(SQUATTER),
				id,
				round,
				commitment(id, round, victim),
				1_000,
			)
		},
		Op::HonestAggregate { job } => {
			let id = u64::from(job);
			let honest = committed_in_open_round(id, &HONEST);
			let must = honest_can_finalise(id, &honest);
			let agg = aggregate(id, open_round(id), H256::repeat_byte(9), &honest);
			let result = TrainingRewards::submit_aggregate(
				origin(honest.first().map_or(1, |h| h.0)),
				id,
				open_round(id),
				agg,
			);
			assert!(!must || result.is_ok(), "honest quorum refused: {result:?}");
			Ok(())
		},
		Op::SybilAggregate { job, model } => {
			let id = u64::from(job);
			let sybils: Vec<(u8, u64)> = SYBILS.iter().map(|s| (*s, 1_000)).collect();
			let agg = aggregate(id, open_round(id), H256::repeat_byte(model), &sybils);
			submit_agg(SYBILS[0], id, open_round(id), agg)
		},
		Op::FrontRun { job } => {
			// Copy the honest aggregate and name itself submitter, or rewrite the metric.
			let id = u64::from(job);
			let honest = committed_in_open_round(id, &HONEST);
			let mut agg = aggregate(id, open_round(id), H256::repeat_byte(9), &honest);
			agg.submitter = account(SYBILS[0]);
			let first = submit_agg(SYBILS[0], id, open_round(id), agg.clone());
			assert!(first.is_err(), "front-runner took the submitter share");
			agg.submitter = account(honest.first().map_or(1, |h| h.0));
			if !agg.contributions.is_empty() {
				agg.contributions[0].metric = Some(1_000_000);
			}
			let second = submit_agg(SYBILS[0], id, open_round(id), agg);
			assert!(second.is_err(), "front-runner rewrote the metric");
			Ok(())
		},
		Op::Equivocate { job } => {
			let id = u64::from(job);
			let round = open_round(id);
			let members = [(SYBILS[1], 1_000u64), (SYBILS[0], 1_000)];
			let a = payload(id, round, H256::repeat_byte(1), &members);
			let b = payload(id, round, H256::repeat_byte(2), &members);
			report_signed(REPORTER, id, round, SYBILS[1], &a, &b)
		},
		Op::FrameHonest { job, victim } => {
			// The victim's honest first attempt and its re-run without a silent member.
			let id = u64::from(job);
			let round = open_round(id);
			let all: Vec<(u8, u64)> = HONEST.iter().map(|h| (*h, 10)).collect();
			let silent = if victim == HONEST[2] { HONEST[0] } else { HONEST[2] };
			let rerun: Vec<(u8, u64)> = all.iter().copied().filter(|(h, _)| *h != silent).collect();
			let a = payload(id, round, H256::repeat_byte(1), &all);
			let b = payload(id, round, H256::repeat_byte(2), &[(victim, 10), (SYBILS[0], 10)]);
			let c = payload(id, round, H256::repeat_byte(3), &rerun);
			let r1 = report_signed(REPORTER, id, round, victim, &a, &b);
			let r2 = report_signed(REPORTER, id, round, victim, &a, &c);
			assert!(r1.is_err() && r2.is_err(), "an honest re-run was slashable");
			Ok(())
		},
		Op::Grief => {
			let mut cheap = spec();
			cheap.min_contributors = 1;
			cheap.contributor_bond = 0;
			let id = NextJobId::<Test>::get();
			let _ = TrainingRewards::create_job(origin(GRIEFER), cheap, 1, 1);
			TrainingRewards::join_job(origin(GRIEFER), id)
		},
		Op::Cancel { job } => TrainingRewards::cancel_job(origin(SPONSOR), job.into()),
		Op::Leave { job, who } => TrainingRewards::leave_job(origin(who), job.into()),
		Op::Withdraw { job, who } => TrainingRewards::withdraw_bond(origin(who), job.into()),
		Op::Advance { blocks } => {
			run_to_block(System::block_number() + u64::from(blocks));
			Ok(())
		},
	};
}

/// Checks on the events of one step: payouts only to accounts that committed in that round,
/// and no honest account slashed.
fn check_events(
	committed: &mut BTreeSet<(JobId, RoundIndex, AccountId)>,
	from: usize,
) -> Result<(), TestCaseError> {
	for e in System::events().iter().skip(from) {
		match &e.event {
			RuntimeEvent::TrainingRewards(Event::UpdateCommitted {
				job_id, round, who, ..
			}) => {
				committed.insert((*job_id, *round, who.clone()));
			},
			RuntimeEvent::TrainingRewards(Event::ContributorPaid {
				job_id,
				round,
				who,
				amount,
			}) => {
				prop_assert!(
					*amount == 0 || committed.contains(&(*job_id, *round, who.clone())),
					"paid without a commitment"
				);
			},
			RuntimeEvent::TrainingRewards(Event::EquivocationSlashed { offender, .. }) => {
				prop_assert!(
					!HONEST.iter().any(|h| account(*h) == *offender),
					"an honest contributor was slashed"
				);
			},
			_ => {},
		}
	}
	Ok(())
}

proptest! {
	#![proptest_config(ProptestConfig {
		cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
		..ProptestConfig::default()
	})]
	#[test]
	fn honest_actors_are_never_robbed_by_adversaries(ops in proptest::collection::vec(op(), 1..60)) {
		new_test_ext().execute_with(|| {
			let issuance = Balances::total_issuance();
			let mut committed = BTreeSet::new();
			for op in &ops {
				let from = System::events().len();
				apply(op);
				prop_assert_eq!(TrainingRewards::do_try_state(), Ok(()), "after {:?}", op);
				check_events(&mut committed, from)?;
				for h in HONEST {
					let total = Balances::total_balance(&account(h));
					prop_assert!(total >= ENDOWMENT, "honest {} lost funds after {:?}", h, op);
				}
			}
			let burned: Balance = System::events().iter().filter_map(|e| match &e.event {
				RuntimeEvent::TrainingRewards(Event::EquivocationSlashed { burned, .. }) => Some(*burned),
				_ => None,
			}).sum();
			prop_assert_eq!(Balances::total_issuance(), issuance - burned);
			Ok(())
		})?;
	}
}
