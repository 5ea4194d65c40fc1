//! Helpers for the in-process p2p tests: real libp2p swarms on 127.0.0.1, synthetic
//! trainers (deterministic vectors), so the protocol is tested without the ML core.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use trainchain_trainer::p2p::{
	net, LocalTrainer, LocalUpdate, NetClient, NetConfig, Peer, PeerConfig, RoundReport,
};
use trainchain_trainer::signing::Keys;

/// Deterministic synthetic "training": a smooth vector depending on the peer, the round and
/// the model.
pub struct Synth {
	pub idx: u64,
	pub len: usize,
	pub wrong_len: bool,
}

impl LocalTrainer for Synth {
	fn train(&mut self, model: &[f32], round: u32) -> anyhow::Result<LocalUpdate> {
		let n = if self.wrong_len { self.len + 3 } else { self.len };
		let delta = (0..n)
			.map(|j| {
				let m = model.get(j).copied().unwrap_or(0.0);
				((j as f32) * 0.013 + self.idx as f32 * 0.7 + round as f32 * 0.3).sin() * 0.01
					- 0.05 * m
			})
			.collect();
		Ok(LocalUpdate { delta, samples: 10 + self.idx, train_loss: 1.0 / (1.0 + round as f32) })
	}
}

pub fn net_cfg(bootstrap: Vec<libp2p::Multiaddr>) -> NetConfig {
	let mut c = NetConfig::for_job(7);
	c.addrs.bootstrap = bootstrap;
	c.max_message = 1 << 20;
	c.request_timeout = Duration::from_secs(20);
	c
}

pub fn peer_cfg(suri: &str, n: usize) -> PeerConfig {
	let mut c = PeerConfig::new(7, Keys::from_suri(suri).unwrap());
	c.genesis_hash = [5; 32];
	c.min_peers = 2;
	c.initial_peers = n;
	c.round_timeout = Duration::from_secs(4);
	c
}

pub const LEN: usize = 5000;

/// Start an in-process peer; returns its task and its first listen address.
pub async fn spawn_peer<T: LocalTrainer>(
	cfg: PeerConfig,
	bootstrap: Vec<libp2p::Multiaddr>,
	trainer: T,
	rounds: u32,
) -> (tokio::task::JoinHandle<Vec<RoundReport>>, libp2p::Multiaddr, NetClient) {
	spawn_peer_with(cfg, net_cfg(bootstrap), trainer, LEN, rounds).await
}

/// [`spawn_peer`] with a custom network config and model length.
pub async fn spawn_peer_with<T: LocalTrainer>(
	cfg: PeerConfig,
	ncfg: NetConfig,
	trainer: T,
	len: usize,
	rounds: u32,
) -> (tokio::task::JoinHandle<Vec<RoundReport>>, libp2p::Multiaddr, NetClient) {
	let (client, events) = net::start(ncfg).await.unwrap();
	let addr = client.listen_addrs().await.unwrap().into_iter().next().unwrap();
	let addr = addr.with(libp2p::multiaddr::Protocol::P2p(client.local_peer_id()));
	let c2 = client.clone();
	let h = tokio::spawn(async move {
		let mut peer = Peer::new(cfg, c2.clone(), events, trainer, vec![0.0; len]);
		peer.sync(Duration::from_secs(10)).await.unwrap();
		let out = peer.run(rounds).await.unwrap();
		// Linger so slower peers can finish.
		tokio::time::sleep(Duration::from_secs(2)).await;
		c2.shutdown();
		out
	});
	(h, addr, client)
}

/// Run `n` honest synthetic peers for `rounds` rounds; returns per-peer reports.
pub async fn honest_run(
	suris: &[&str],
	rounds: u32,
	tweak: impl Fn(&mut PeerConfig),
) -> Vec<Vec<RoundReport>> {
	let mut handles = Vec::new();
	let mut boot = Vec::new();
	for (i, s) in suris.iter().enumerate() {
		let mut cfg = peer_cfg(s, suris.len());
		tweak(&mut cfg);
		let (h, addr, _) = spawn_peer(
			cfg,
			boot.clone(),
			Synth { idx: i as u64, len: LEN, wrong_len: false },
			rounds,
		)
		.await;
		// Every peer dials all earlier ones: with only the first as bootstrap, later peers
		// met each other at Kademlia's periodic bootstrap, sometimes after round 0's ready
		// deadline, and round 0 then ran without them.
		boot.push(addr);
		handles.push(h);
	}
	let mut out = Vec::new();
	for h in handles {
		out.push(h.await.unwrap());
	}
	out
}

/// The per-round model hashes of one peer.
pub fn hashes(r: &[RoundReport]) -> Vec<(u32, [u8; 32])> {
	r.iter().map(|x| (x.round, x.model_hash)).collect()
}

/// Assert all peers have the same per-round hashes; return them.
pub fn agree(all: &[Vec<RoundReport>]) -> Vec<(u32, [u8; 32])> {
	let first = hashes(&all[0]);
	for (i, r) in all.iter().enumerate() {
		assert_eq!(hashes(r), first, "peer {i} diverged");
	}
	first
}

pub fn init_tracing() {
	let _ = tracing_subscriber::fmt()
		.with_env_filter(
			tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
		)
		.with_test_writer()
		.try_init();
}
