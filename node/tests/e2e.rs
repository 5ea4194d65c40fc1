//! End to end: a real `trainchain-node --dev`, a job created with the sponsor client (real
//! @polkadot/api), three real `trainchain-trainer run` processes on digits shards. At least
//! three rounds finalise on-chain, every trainer's model hash equals the on-chain one each
//! round, the final accuracy is at least 90%, and the escrow accounting is exact.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{free_port, repo_root, sponsor, workspace_bin, DevNode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Three `trainchain-trainer run` processes; killed on drop.
struct Trainers {
    children: Vec<Option<Child>>,
    logs: PathBuf,
}

impl Trainers {
    const SURIS: [&'static str; 3] = ["//Bob", "//Charlie", "//Dave"];

    /// Start one trainer per dev account on shard i/3 of digits; trainer 0 is the bootstrap.
    fn start(node: &DevNode, job_id: u64) -> Self {
        let trainer = workspace_bin("trainchain-trainer");
        assert!(
            trainer.exists(),
            "{} is built by `cargo test -p trainchain-trainer --features chain`",
            trainer.display()
        );
        let data = repo_root().join("trainer-offchain/testdata");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let logs = std::env::temp_dir().join(format!("trainchain-e2e-{}", node.rpc_port));
        std::fs::create_dir_all(&logs).unwrap();
        let mut children = Vec::new();
        for (i, suri) in Self::SURIS.iter().enumerate() {
            let mut cmd = Command::new(&trainer);
            cmd.args(["run", "--node", &node.ws_url(), "--suri", suri])
                .args(["--job", &job_id.to_string()])
                .arg("--data")
                .arg(data.join("digits-train.csv"))
                .arg("--test")
                .arg(data.join("digits-test.csv"))
                .args(["--shard", &format!("{i}/3")])
                .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", ports[i])])
                .args(["--epochs", "2", "--json"])
                .stdout(std::fs::File::create(logs.join(format!("trainer-{i}.jsonl"))).unwrap())
                .stderr(std::fs::File::create(logs.join(format!("trainer-{i}.log"))).unwrap())
                .env(
                    "TRAINCHAIN_LOG",
                    "info,libp2p_kad=warn,libp2p_gossipsub=warn",
                )
                .stdin(Stdio::null());
            if i > 0 {
                cmd.args(["--bootstrap", &format!("/ip4/127.0.0.1/tcp/{}", ports[0])]);
            }
            children.push(Some(cmd.spawn().unwrap()));
        }
        Trainers { children, logs }
    }

    /// Kill trainer `i` (SIGKILL: no goodbye to the peers or the chain).
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            let _ = c.wait();
        }
    }

    /// Let the trainers exit on their own (they stop when the job ends), then kill stragglers.
    fn finish(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.wait_timeout_or_kill(Duration::from_secs(30));
        }
    }

    /// The events trainer `i` printed (one JSON object per line).
    fn events(&self, i: usize, kind: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.logs.join(format!("trainer-{i}.jsonl"))).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }

    /// The `round` events trainer `i` printed.
    fn round_reports(&self, i: usize) -> Vec<Value> {
        self.events(i, "round")
    }

    /// The SS58 account trainer `i` joined with (from its `joined` event).
    fn account(&self, i: usize) -> String {
        let joined = self.events(i, "joined");
        joined[0]["who"].as_str().unwrap().to_string()
    }
}

impl Drop for Trainers {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start a dev node and create a digits job with the sponsor client (real @polkadot/api).
fn node_with_job(rounds: u32) -> (DevNode, u64) {
    let node = DevNode::start();
    node.wait_for(Duration::from_secs(60), "block #1", || {
        node.best_number() >= 1
    });
    let rounds = rounds.to_string();
    let (ok, stdout, stderr) = sponsor(
        &node,
        &[
            "create-job",
            "--model",
            "mlp:64-32-10",
            "--rounds",
            &rounds,
            "--reward",
            "300",
            "--min",
            "2",
            "--max",
            "3",
            "--round-length",
            "60",
            "--commit-window",
            "45",
            "--bond",
            "10",
            "--lr",
            "0.1",
            "--batch",
            "32",
            "--json",
        ],
    );
    assert!(ok, "create-job: {stderr}");
    let job_id = serde_json::from_str::<Value>(stdout.trim().lines().last().unwrap()).unwrap()
        ["jobId"]
        .as_u64()
        .unwrap();
    (node, job_id)
}

/// Wait until the job completes (panics if it fails or is cancelled).
fn wait_completed(node: &DevNode, job_id: u64, logs: &std::path::Path) {
    node.wait_for(Duration::from_secs(900), "the job to complete", || {
        let job = node.rpc("training_job", json!([job_id]));
        let phase = job["phase"].as_str().unwrap_or_default().to_string();
        assert!(
            !["failed", "cancelled"].contains(&phase.as_str()),
            "job ended as {phase}; trainer logs in {}",
            logs.display()
        );
        phase == "completed"
    });
}

/// The finalised rounds of the job's history.
fn finalized_rounds(node: &DevNode, job_id: u64) -> Vec<Value> {
    let history = node.rpc("training_rounds", json!([job_id]));
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "finalized")
        .cloned()
        .collect()
}

/// Payouts + submitter shares + refund = deposit, exactly; nothing left on hold; the per-round
/// payouts add up to the job's total.
fn assert_escrow_exact(node: &DevNode, job_id: u64, finalized: &[Value]) {
    let job = node.rpc("training_job", json!([job_id]));
    let e = &job["escrow"];
    let n = |k: &str| e[k].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(
        n("paidContributors") + n("paidSubmitters") + n("refunded"),
        n("deposited"),
        "escrow ledger: {e}"
    );
    assert_eq!(n("held"), 0);
    let paid_in_rounds: u128 = finalized
        .iter()
        .flat_map(|r| r["payouts"].as_array().unwrap().iter())
        .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    assert_eq!(paid_in_rounds, n("paidContributors"));
}

fn payees(round: &Value) -> Vec<String> {
    round["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["who"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_trainers_train_a_sponsored_job_and_get_paid() {
    let (node, job_id) = node_with_job(3);
    let mut trainers = Trainers::start(&node, job_id);
    wait_completed(&node, job_id, &trainers.logs);
    trainers.finish();

    let finalized = finalized_rounds(&node, job_id);
    assert!(finalized.len() >= 3, "rounds: {finalized:?}");

    // Every trainer's model hash equals the on-chain one for each round it reports.
    let on_chain: BTreeMap<u64, String> = finalized
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().unwrap(),
                r["modelHash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for i in 0..3 {
        let reports = trainers.round_reports(i);
        assert!(
            !reports.is_empty(),
            "trainer {i} reported no round; see {}",
            trainers.logs.display()
        );
        for r in &reports {
            if let Some(expected) = on_chain.get(&r["round"].as_u64().unwrap()) {
                assert_eq!(
                    r["model_hash"].as_str().unwrap(),
                    expected,
                    "trainer {i} round {}",
                    r["round"]
                );
            }
        }
    }
    // Every round paid at least the job's minimum, and every trainer was paid (a trainer that
    // joins after the job started takes part from its next round on).
    for r in &finalized {
        assert!(payees(r).len() >= 2, "round {r}");
    }
    for i in 0..3 {
        let who = trainers.account(i);
        assert!(
            finalized.iter().any(|r| payees(r).contains(&who)),
            "trainer {i} ({who}) was never paid: {finalized:?}"
        );
    }

    // Accuracy after the last round (the aggregate's metric, in ppm).
    let metric = finalized.last().unwrap()["metric"]
        .as_u64()
        .expect("the aggregate carries the accuracy");
    assert!(metric >= 900_000, "final accuracy {}%", metric as f64 / 1e4);

    assert_escrow_exact(&node, job_id, &finalized);
}

#[test]
fn a_killed_trainer_is_not_paid_for_rounds_it_missed() {
    let (node, job_id) = node_with_job(8);
    let mut trainers = Trainers::start(&node, job_id);

    // The job starts once two have joined, so Dave may miss the first round. Kill him
    // (SIGKILL) right after the first round that paid him.
    let mut dave_account = String::new();
    node.wait_for(Duration::from_secs(600), "a round that pays Dave", || {
        if dave_account.is_empty() && !trainers.events(2, "joined").is_empty() {
            dave_account = trainers.account(2);
        }
        !dave_account.is_empty()
            && finalized_rounds(&node, job_id)
                .iter()
                .any(|r| payees(r).contains(&dave_account))
    });
    trainers.kill(2);
    let killed_during = node.rpc("training_job", json!([job_id]))["currentRound"]
        .as_u64()
        .unwrap();

    wait_completed(&node, job_id, &trainers.logs);
    trainers.finish();

    let finalized = finalized_rounds(&node, job_id);
    // Rounds that started after the kill finalise with the other two and do not pay Dave.
    let later: Vec<&Value> = finalized
        .iter()
        .filter(|r| r["round"].as_u64().unwrap() > killed_during)
        .collect();
    assert!(
        !later.is_empty(),
        "no round finalised after the kill (killed during round {killed_during}): {finalized:?}"
    );
    for r in &later {
        let who = payees(r);
        assert_eq!(who.len(), 2, "round {r}");
        assert!(
            !who.contains(&dave_account),
            "Dave paid for a missed round: {r}"
        );
    }
    // Dave's recorded earnings are exactly his payouts (and submitter shares) from the rounds
    // he took part in.
    let contributors = node.rpc("training_contributors", json!([job_id]));
    let earned = contributors
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["who"] == dave_account.as_str())
        .map(|c| c["earned"].as_str().unwrap().parse::<u128>().unwrap());
    let paid: u128 = finalized
        .iter()
        .flat_map(|r| r["payouts"].as_array().unwrap().iter())
        .filter(|p| p["who"] == dave_account.as_str())
        .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    let submitter_shares: u128 = finalized
        .iter()
        .filter(|r| r["submitter"] == dave_account.as_str())
        .map(|r| {
            r["submitterReward"]
                .as_str()
                .unwrap()
                .parse::<u128>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        earned,
        Some(paid + submitter_shares),
        "Dave's recorded earnings"
    );
    assert_escrow_exact(&node, job_id, &finalized);
}

trait WaitTimeout {
    fn wait_timeout_or_kill(&mut self, t: Duration) -> std::io::Result<()>;
}
impl WaitTimeout for Child {
    fn wait_timeout_or_kill(&mut self, t: Duration) -> std::io::Result<()> {
        let start = std::time::Instant::now();
        while start.elapsed() < t {
            if self.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.kill()
    }
}
