//! `floor N FLOATS [direct|tcp|quic]`: the transport alone, for comparison with the exchange.
//!
//! N processes (this benchmark binary again, mode `floor-peer`) on loopback, each with the
//! trainer's own network stack (`p2p::net`: the direct path, or libp2p alone with TCP + noise +
//! yamux or QUIC and its request-response framing), move the bytes of the chunked exchange and nothing else: each
//! sends a piece of S/N bytes to every other peer and waits for the N−1 pieces sent to it, then
//! does it again (the all-gather). No signatures, hashing, decoding or reduction. Prints
//! `bench-floor n=N bytes=S transport=T ms=E`: the slowest peer's time from the start signal to
//! its last piece, median over `BENCH_ROUNDS` rounds (default 4).
//!
//! The parent and its children talk over the children's stdin and stdout, a line each: a child
//! prints `addr <multiaddr>`; the parent answers `peers <addr>…`; the child dials the peers
//! before it, prints `ready` once connected to all, and then, for every `go`, runs a round and
//! prints `done <ms>`; `quit` ends it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use trainchain_trainer::p2p::net::{self, NetConfig, NetEvent};

/// The parent: start `n` children, run the rounds, print the line.
pub fn floor(n: usize, floats: u64, transport: &str, rounds: u64) {
	let bytes = floats as usize * 4;
	let exe = std::env::current_exe().unwrap();
	let mut kids: Vec<(Child, ChildStdin, BufReader<ChildStdout>)> = (0..n)
		.map(|i| {
			let mut c = Command::new(&exe)
				.args(["floor-peer", &i.to_string(), &n.to_string(), &bytes.to_string(), transport])
				.stdin(Stdio::piped())
				.stdout(Stdio::piped())
				.spawn()
				.unwrap();
			let stdin = c.stdin.take().unwrap();
			let stdout = BufReader::new(c.stdout.take().unwrap());
			(c, stdin, stdout)
		})
		.collect();
	let line = |k: &mut (Child, ChildStdin, BufReader<ChildStdout>)| {
		let mut s = String::new();
		k.2.read_line(&mut s).unwrap();
		s.trim().to_string()
	};
	let addrs: Vec<String> = kids
		.iter_mut()
		.map(|k| line(k).strip_prefix("addr ").unwrap().to_string())
		.collect();
	for k in &mut kids {
		writeln!(k.1, "peers {}", addrs.join(" ")).unwrap();
	}
	for k in &mut kids {
		assert_eq!(line(k), "ready");
	}
	let mut per_round: Vec<f64> = (0..rounds)
		.map(|_| {
			for k in &mut kids {
				writeln!(k.1, "go").unwrap();
			}
			kids.iter_mut()
				.map(|k| line(k).strip_prefix("done ").unwrap().parse::<f64>().unwrap())
				.fold(0.0, f64::max)
		})
		.collect();
	for k in &mut kids {
		writeln!(k.1, "quit").unwrap();
		k.0.wait().unwrap();
	}
	per_round.sort_by(f64::total_cmp);
	let update = (bytes / n) * n;
	println!(
		"bench-floor n={n} bytes={update} transport={transport} ms={:.0}",
		per_round[per_round.len() / 2]
	);
}

/// A child: peer `i` of `n`, pieces of `bytes / n` bytes.
pub fn floor_peer(i: usize, n: usize, bytes: usize, transport: &str) {
	trainchain_trainer::tuning::one_arena();
	let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
	let mut cfg = NetConfig::for_job(7);
	let listen =
		if transport == "quic" { "/ip4/127.0.0.1/udp/0/quic-v1" } else { "/ip4/127.0.0.1/tcp/0" };
	cfg.addrs.listen = vec![listen.parse().unwrap()];
	cfg.addrs.no_direct = transport != "direct";
	let (client, mut events) = rt.block_on(net::start(cfg)).unwrap();
	let me = client.local_peer_id();
	let addr = rt.block_on(async {
		loop {
			if let Some(a) = client.listen_addrs().await.unwrap().first() {
				break a.clone();
			}
			tokio::time::sleep(Duration::from_millis(10)).await;
		}
	});
	println!("addr {addr}/p2p/{me}");
	let mut stdin = std::io::stdin().lock();
	let mut cmd = String::new();
	stdin.read_line(&mut cmd).unwrap();
	let addrs: Vec<&str> = cmd.trim().strip_prefix("peers ").unwrap().split(' ').collect();
	for a in addrs.iter().take(i) {
		client.dial(a.parse().unwrap()).unwrap();
	}
	let others: Vec<libp2p::PeerId> = addrs
		.iter()
		.enumerate()
		.filter(|(j, _)| *j != i)
		.map(|(_, a)| a.rsplit('/').next().unwrap().parse().unwrap())
		.collect();
	rt.block_on(async {
		loop {
			let connected = client.connected_peers().await.unwrap();
			if others.iter().all(|p| connected.contains(p)) {
				break;
			}
			tokio::time::sleep(Duration::from_millis(10)).await;
		}
	});
	println!("ready");
	let piece = vec![7u8; bytes / n];
	for round in 0u8.. {
		cmd.clear();
		stdin.read_line(&mut cmd).unwrap();
		if cmd.trim() != "go" {
			break;
		}
		let ms = rt.block_on(one_round(&client, &mut events, &others, &piece, round));
		println!("done {ms:.1}");
	}
	client.shutdown();
}

/// Send `piece` to every other peer, wait for theirs, twice; the time it took in ms.
async fn one_round(
	client: &net::NetClient,
	events: &mut tokio::sync::mpsc::UnboundedReceiver<NetEvent>,
	others: &[libp2p::PeerId],
	piece: &[u8],
	round: u8,
) -> f64 {
	let t0 = Instant::now();
	let mut got = [0usize; 2];
	for phase in 0..2u8 {
		for p in others {
			let mut data = piece.to_vec();
			data[0] = round;
			data[1] = phase;
			client.send_nowait(*p, data).unwrap();
		}
		while got[usize::from(phase)] < others.len() {
			match events.recv().await.expect("network task stopped") {
				NetEvent::Message { data, gossip: false, .. } if data[0] == round => {
					got[usize::from(data[1])] += 1;
				},
				_ => {},
			}
		}
	}
	t0.elapsed().as_secs_f64() * 1e3
}
