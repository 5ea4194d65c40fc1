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
use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

struct Trainers(Vec<Child>);
impl Drop for Trainers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn three_trainers_train_a_sponsored_job_and_get_paid() {
    let node = DevNode::start();
    node.wait_for(Duration::from_secs(60), "block #1", || {
        node.best_number() >= 1
    });
    let trainer = workspace_bin("trainchain-trainer");
    assert!(
        trainer.exists(),
        "{} is built by `cargo test -p trainchain-trainer`",
        trainer.display()
    );

    let rounds = 3;
    let (ok, stdout, stderr) = sponsor(
        &node,
        &[
            "create-job",
            "--model",
            "mlp:64-32-10",
            "--rounds",
            &rounds.to_string(),
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

    let data = repo_root().join("trainer-offchain/testdata");
    let base = free_port();
    let ports: Vec<u16> = (0..3)
        .map(|i| if i == 0 { base } else { free_port() })
        .collect();
    let logs = std::env::temp_dir().join(format!("trainchain-e2e-{}", node.rpc_port));
    std::fs::create_dir_all(&logs).unwrap();
    let mut children = Vec::new();
    for (i, suri) in ["//Bob", "//Charlie", "//Dave"].iter().enumerate() {
        let mut cmd = Command::new(&trainer);
        cmd.args([
            "run",
            "--node",
            &node.ws_url(),
            "--suri",
            suri,
            "--job",
            &job_id.to_string(),
        ])
        .arg("--data")
        .arg(data.join("digits-train.csv"))
        .arg("--test")
        .arg(data.join("digits-test.csv"))
        .args([
            "--shard",
            &format!("{i}/3"),
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{}", ports[i]),
            "--json",
        ])
        .args(["--epochs", "2"])
        .stdout(std::fs::File::create(logs.join(format!("trainer-{i}.jsonl"))).unwrap())
        .stderr(std::fs::File::create(logs.join(format!("trainer-{i}.log"))).unwrap())
        .stdin(Stdio::null());
        if i > 0 {
            cmd.args(["--bootstrap", &format!("/ip4/127.0.0.1/tcp/{}", ports[0])]);
        }
        children.push(cmd.spawn().unwrap());
    }
    let mut trainers = Trainers(children);

    node.wait_for(Duration::from_secs(900), "the job to complete", || {
        let job = node.rpc("training_job", json!([job_id]));
        if ["failed", "cancelled"].contains(&job["phase"].as_str().unwrap_or_default()) {
            panic!(
                "job ended as {}; trainer logs in {}",
                job["phase"],
                logs.display()
            );
        }
        job["phase"] == "completed"
    });
    for c in &mut trainers.0 {
        let _ = c.wait_timeout_or_kill(Duration::from_secs(30));
    }

    let job = node.rpc("training_job", json!([job_id]));
    let history = node.rpc("training_rounds", json!([job_id]));
    let finalized: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "finalized")
        .collect();
    assert!(finalized.len() >= 3, "rounds: {history}");

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
        let text = std::fs::read_to_string(logs.join(format!("trainer-{i}.jsonl"))).unwrap();
        let reports: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "round")
            .collect();
        assert!(
            !reports.is_empty(),
            "trainer {i} reported no round; see {}",
            logs.display()
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

    // Accuracy after the last round (the aggregate's metric, in ppm).
    let last = finalized.last().unwrap();
    let metric = last["metric"]
        .as_u64()
        .expect("the aggregate carries the accuracy");
    assert!(metric >= 900_000, "final accuracy {}%", metric as f64 / 1e4);

    // Escrow: payouts + submitter shares + refund = deposit, exactly.
    let e = &job["escrow"];
    let n = |k: &str| e[k].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(
        n("paidContributors") + n("paidSubmitters") + n("refunded"),
        n("deposited")
    );
    assert_eq!(n("held"), 0);
    let paid_in_rounds: u128 = finalized
        .iter()
        .flat_map(|r| r["payouts"].as_array().unwrap().iter())
        .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    assert_eq!(paid_in_rounds, n("paidContributors"));
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
