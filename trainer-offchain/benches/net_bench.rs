//! Network benchmarks with one `trainchain-trainer peer` process per peer (issue #13); run by
//! `scripts/bench-network.sh`, which names what each line means. Modes (first argument):
//!
//! - `allreduce N FLOATS [SCHEME [TRANSPORT]]`: N peers on loopback, an MLP of FLOATS
//!   parameters, no compression, the `chunked` (default) or `all-to-all` scheme; prints
//!   `net-allreduce n=N floats=F bytes=S scheme=X transport=T bytes_ratio=R exchange_ms=E
//!   round_ms=T`.
//! - `bandwidth N FLOATS MBIT [TRANSPORT] [no-idle-restart]`: N peers, each in its own network
//!   namespace, every link shaped to MBIT Mbit/s each way with `tc tbf`; prints
//!   `bench-bandwidth n=N bytes=S link_mbit=M transport=T goodput_ratio=G exchange_ms=E
//!   bytes_ratio=R`. `no-idle-restart` sets the hosts' `net.ipv4.tcp_slow_start_after_idle=0`
//!   (adds `host=no-idle-restart` to the line).
//!
//! TRANSPORT: `direct` (default: the trainer's defaults, TCP with large messages on the
//! AES-256-GCM direct path), `tcp` (libp2p alone: TCP + noise + yamux) or `quic` (libp2p QUIC).
//! - `peers N`: N peers on loopback training the digits MLP; prints
//!   `bench-peers n=N round_ms=T bytes_per_peer=B messages_per_peer=M`.
//! - `floor N FLOATS [TRANSPORT]`: the transport alone moving the exchange's bytes (see
//!   `net_floor`); prints `bench-floor n=N bytes=S transport=T ms=E`.
//!
//! Definitions: `S` is one update's size in bytes; the ring-optimal bytes a peer sends in a
//! round are `2·S·(N−1)/N`; `bytes_ratio` is the mean bytes a peer sent per round over that;
//! `exchange_ms` is the exchange of the agreed attempt (reduce-scatter, screening, all-gather,
//! cross-check) of the slowest peer; `round_ms` a whole round (training included);
//! `goodput_ratio = 2·S·(N−1)/N / exchange time / link rate`. Each figure is the median over
//! the rounds after the first (round 0 includes start-up); `BENCH_ROUNDS` (default 4) rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod net_floor;
#[path = "../tests/netns/mod.rs"]
mod netns;
#[path = "../tests/peer_procs/mod.rs"]
mod peer_procs;

use peer_procs::{log_dir, rounds, trainer_bin, PeerProc};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
	trainchain_trainer::tuning::apply(trainchain_trainer::tuning::Cores::Shared);
	let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
	let num = |i: usize| -> u64 { args[i].parse().expect("a number") };
	match args.first().map(String::as_str) {
		Some("allreduce") => {
			let scheme = args.get(3).map_or("chunked", String::as_str);
			let transport = args.get(4).map_or("direct", String::as_str);
			allreduce(num(1) as usize, num(2), scheme, transport)
		},
		Some("bandwidth") => {
			let transport = args.get(4).map_or("direct", String::as_str);
			let idle_restart = args.get(5).map(String::as_str) != Some("no-idle-restart");
			bandwidth(num(1) as usize, num(2), num(3), transport, idle_restart)
		},
		Some("peers") => peers(num(1) as usize),
		Some("floor") => {
			let transport = args.get(3).map_or("direct", String::as_str);
			net_floor::floor(num(1) as usize, num(2), transport, bench_rounds())
		},
		Some("floor-peer") => {
			let transport = args.get(4).map_or("tcp", String::as_str);
			net_floor::floor_peer(num(1) as usize, num(2) as usize, num(3) as usize, transport)
		},
		_ => eprintln!(
			"usage: net_bench allreduce N FLOATS [SCHEME [direct|tcp|quic]] | bandwidth N FLOATS MBIT [direct|tcp|quic] | peers N | floor N FLOATS [direct|tcp|quic]"
		),
	}
}

fn bench_rounds() -> u64 {
	std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)
}

/// An MLP on the digits' 64 features with close to `floats` parameters: 64-H-10 has 75·H + 10.
fn model_of(floats: u64) -> String {
	format!("mlp:64-{}-10", ((floats.saturating_sub(10)) / 75).max(1))
}

/// Arguments of every peer of a run: `--rounds`, `--min-peers`, generous deadlines.
fn common(n: usize, extra: &[String]) -> Vec<String> {
	let mut a: Vec<String> = vec![
		"--rounds".into(),
		bench_rounds().to_string(),
		"--min-peers".into(),
		n.to_string(),
		"--round-timeout".into(),
		"120".into(),
	];
	a.extend_from_slice(extra);
	a
}

/// Run every peer to the end; each one's round events.
fn finish(mut peers: Vec<PeerProc>) -> Vec<Vec<Value>> {
	let deadline = Instant::now() + Duration::from_secs(1800);
	let events: Vec<Vec<Value>> = peers.iter_mut().map(|p| p.finish(deadline)).collect();
	events.iter().map(|e| rounds(e).into_iter().cloned().collect()).collect()
}

/// Per round after the first: the slowest peer's `key` (`max`) or the peers' mean; then the
/// median over rounds.
fn per_round(events: &[Vec<Value>], key: &str, max: bool) -> f64 {
	let last = bench_rounds();
	let mut per: Vec<f64> = (1..last)
		.filter_map(|round| {
			let vals: Vec<f64> = events
				.iter()
				.filter_map(|e| e.iter().find(|r| r["round"].as_u64() == Some(round)))
				.map(|r| value(r, key))
				.collect();
			if vals.len() < events.len() {
				return None;
			}
			Some(if max {
				vals.iter().copied().fold(0.0, f64::max)
			} else {
				vals.iter().sum::<f64>() / vals.len() as f64
			})
		})
		.collect();
	assert!(!per.is_empty(), "no round after the first completed at every peer");
	per.sort_by(f64::total_cmp);
	per[per.len() / 2]
}

fn value(r: &Value, key: &str) -> f64 {
	match key {
		"round_ms" => value(r, "compute_ms") + value(r, "network_ms"),
		k => r[k].as_f64().unwrap_or_else(|| panic!("no {k} in {r}")),
	}
}

/// Start `n` loopback peers, the first as bootstrap.
fn loopback(n: usize, name: &str, extra: &[String], transport: &str) -> Vec<PeerProc> {
	let logs = log_dir(name);
	let mut args = common(n, extra);
	let (port, direct) = transport_args(transport);
	args.extend(["--listen".to_string(), format!("/ip4/127.0.0.1/{port}")]);
	args.extend(direct.iter().map(|s| s.to_string()));
	let first = PeerProc::start(Command::new(trainer_bin()), 0, n, &args, &logs);
	let (id, addrs) = first.wait_listening(Duration::from_secs(60));
	let boot = format!("{}/p2p/{id}", addrs[0]);
	let mut peers = vec![first];
	for i in 1..n {
		let mut a = args.clone();
		a.extend(["--bootstrap".to_string(), boot.clone()]);
		peers.push(PeerProc::start(Command::new(trainer_bin()), i, n, &a, &logs));
	}
	peers
}

/// The listen protocol of a transport and the flags it needs: `direct` is the default (TCP,
/// large messages on the direct path), `tcp` and `quic` are libp2p alone (`--no-direct`).
fn transport_args(transport: &str) -> (&'static str, &'static [&'static str]) {
	match transport {
		"direct" => ("tcp/0", &[]),
		"tcp" => ("tcp/0", &["--no-direct"]),
		"quic" => ("udp/0/quic-v1", &["--no-direct"]),
		t => panic!("unknown transport {t}: direct, tcp or quic"),
	}
}

fn ring_bytes(n: usize, update: f64) -> f64 {
	2.0 * update * (n as f64 - 1.0) / n as f64
}

fn allreduce(n: usize, floats: u64, scheme: &str, transport: &str) {
	let extra = ["--model".into(), model_of(floats), "--scheme".into(), scheme.into()];
	let events = finish(loopback(n, "net-allreduce", &extra, transport));
	let update = per_round(&events, "update_bytes", false);
	let sent = per_round(&events, "bytes_sent", false);
	println!(
		"net-allreduce n={n} floats={floats} bytes={update:.0} scheme={scheme} transport={transport} bytes_ratio={:.2} exchange_ms={:.0} round_ms={:.0}",
		sent / ring_bytes(n, update),
		per_round(&events, "exchange_ms", true),
		per_round(&events, "round_ms", true),
	);
}

fn bandwidth(n: usize, floats: u64, mbit: u64, transport: &str, idle_restart: bool) {
	let Some(lab) = netns::Lab::new(n) else { return };
	lab.set_forwarding(true);
	for i in 0..n {
		lab.shape(i, mbit as u32);
		if !idle_restart {
			lab.no_idle_restart(i);
		}
	}
	let logs = log_dir("net-bandwidth");
	let mut args = common(n, &["--model".into(), model_of(floats)]);
	let (proto, direct) = transport_args(transport);
	let port = proto.replacen("/0", "/30400", 1);
	args.extend(["--listen".to_string(), format!("/ip4/0.0.0.0/{port}")]);
	args.extend(direct.iter().map(|s| s.to_string()));
	let boot = format!("/ip4/{}/{port}", lab.host_ip(0));
	let peers: Vec<PeerProc> = (0..n)
		.map(|i| {
			let mut a = args.clone();
			if i > 0 {
				a.extend(["--bootstrap".to_string(), boot.clone()]);
			}
			PeerProc::start(lab.command(&lab.hosts[i], trainer_bin()), i, n, &a, &logs)
		})
		.collect();
	let events = finish(peers);
	let update = per_round(&events, "update_bytes", false);
	let exchange_ms = per_round(&events, "exchange_ms", true);
	let goodput = ring_bytes(n, update) * 8.0 / (exchange_ms / 1e3) / (mbit as f64 * 1e6);
	println!(
		"bench-bandwidth n={n} bytes={update:.0} link_mbit={mbit} transport={transport}{} goodput_ratio={goodput:.2} exchange_ms={exchange_ms:.0} bytes_ratio={:.2}",
		if idle_restart { "" } else { " host=no-idle-restart" },
		per_round(&events, "bytes_sent", false) / ring_bytes(n, update),
	);
}

fn peers(n: usize) {
	let events = finish(loopback(n, "net-peers", &[], "direct"));
	println!(
		"bench-peers n={n} round_ms={:.0} bytes_per_peer={:.0} messages_per_peer={:.0}",
		per_round(&events, "round_ms", true),
		per_round(&events, "bytes_sent", false),
		per_round(&events, "messages_sent", false),
	);
}
