//! Separate hosts on one machine: Linux network namespaces joined by veth links (issue #13).
//!
//! A [`Lab`] is one "public" namespace (the internet: a router, and where a bootstrap or relay
//! peer lives) and `n` host namespaces. Host `i` has the address `10.{net}.{i}.2/24` on a veth
//! whose other end, `10.{net}.{i}.1`, is in the public namespace, and its default route points
//! there. With forwarding on in the public namespace the hosts reach each other through it
//! (routed, separate hosts); with forwarding off they reach only the public namespace (no
//! direct path). Links can be shaped with `tc ... tbf`. Everything is deleted on drop.
//!
//! Creating namespaces needs root (CAP_SYS_ADMIN); [`Lab::new`] returns `None` where it
//! cannot, and the tests then skip with a message.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// Run `ip` (or another command) and fail loudly: a half-built lab is worse than none.
fn run(args: &[&str]) -> Result<(), String> {
	let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{e}"))?;
	if out.status.success() {
		Ok(())
	} else {
		Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
	}
}

/// A public namespace and its hosts.
pub struct Lab {
	/// Name of the public namespace.
	pub public: String,
	/// Names of the host namespaces.
	pub hosts: Vec<String>,
	net: u32,
}

impl Lab {
	/// Build a lab with `n` hosts; `None` (after printing why) where namespaces cannot be made.
	pub fn new(n: usize) -> Option<Self> {
		// Second octet per lab: unique within this process, varied by pid across processes.
		let k = NEXT_NET.fetch_add(1, Ordering::Relaxed);
		let net = 100 + (std::process::id() % 50 + k * 50) % 150;
		let tag = format!("{}{}", std::process::id() % 100_000, k);
		let public = format!("tcpub{tag}");
		if let Err(e) = run(&["ip", "netns", "add", &public]) {
			eprintln!("SKIP: cannot create network namespaces here ({e}); run as root");
			return None;
		}
		let mut lab = Lab { public, hosts: Vec::new(), net };
		lab.exec_ok(&lab.public.clone(), &["ip", "link", "set", "lo", "up"]);
		for i in 0..n {
			lab.add_host(i, &tag);
		}
		Some(lab)
	}

	fn add_host(&mut self, i: usize, tag: &str) {
		let host = format!("tch{tag}x{i}");
		run(&["ip", "netns", "add", &host]).unwrap();
		let (inner, outer) = (format!("tci{tag}x{i}"), format!("tco{tag}x{i}"));
		run(&["ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer]).unwrap();
		run(&["ip", "link", "set", &inner, "netns", &host]).unwrap();
		run(&["ip", "link", "set", &outer, "netns", &self.public]).unwrap();
		let (host_ip, gw) = (self.host_ip(i), self.gateway(i));
		self.exec_ok(&host, &["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &inner]);
		self.exec_ok(&host, &["ip", "link", "set", &inner, "up"]);
		self.exec_ok(&host, &["ip", "link", "set", "lo", "up"]);
		self.exec_ok(&host, &["ip", "route", "add", "default", "via", &gw]);
		let public = self.public.clone();
		self.exec_ok(&public, &["ip", "addr", "add", &format!("{gw}/24"), "dev", &outer]);
		self.exec_ok(&public, &["ip", "link", "set", &outer, "up"]);
		self.hosts.push(host);
	}

	/// Host `i`'s address.
	pub fn host_ip(&self, i: usize) -> String {
		format!("10.{}.{i}.2", self.net)
	}

	/// The public namespace's address on host `i`'s link (host `i` can always reach it).
	pub fn gateway(&self, i: usize) -> String {
		format!("10.{}.{i}.1", self.net)
	}

	/// Let the public namespace route between hosts (`true`) or not (no direct path).
	pub fn set_forwarding(&self, on: bool) {
		let v = if on { "1" } else { "0" };
		self.exec_ok(&self.public, &["sysctl", "-q", "-w", &format!("net.ipv4.ip_forward={v}")]);
	}

	/// Limit host `i`'s link to `mbit` Mbit/s in both directions (`tc ... tbf`). The bucket
	/// holds 10 ms of traffic (at least 32 KB): a smaller one cannot keep a fast link busy
	/// between the kernel's timer ticks.
	pub fn shape(&self, i: usize, mbit: u32) {
		let rate = format!("{mbit}mbit");
		let burst = (u64::from(mbit) * 1250).max(32 * 1024).to_string();
		let (host, public) = (self.hosts[i].clone(), self.public.clone());
		let tag = host.trim_start_matches("tch").to_string();
		for (ns, dev) in [(host, format!("tci{tag}")), (public, format!("tco{tag}"))] {
			self.exec_ok(
				&ns,
				&[
					"tc", "qdisc", "add", "dev", &dev, "root", "tbf", "rate", &rate, "burst",
					&burst, "latency", "50ms",
				],
			);
		}
	}

	/// Keep host `i`'s TCP congestion window across idle periods
	/// (`net.ipv4.tcp_slow_start_after_idle=0`; Linux's default restarts from slow start
	/// after an idle time of one retransmission timeout).
	pub fn no_idle_restart(&self, i: usize) {
		let host = self.hosts[i].clone();
		self.exec_ok(&host, &["sysctl", "-q", "-w", "net.ipv4.tcp_slow_start_after_idle=0"]);
	}

	/// A command that runs `program` inside namespace `ns`.
	pub fn command(&self, ns: &str, program: &std::path::Path) -> Command {
		let mut c = Command::new("ip");
		c.args(["netns", "exec", ns]).arg(program);
		c
	}

	fn exec_ok(&self, ns: &str, args: &[&str]) {
		let mut all = vec!["ip", "netns", "exec", ns];
		all.extend_from_slice(args);
		run(&all).unwrap();
	}

	/// Whether a TCP connection from host `from` to `ip:port` opens within 2 s.
	pub fn tcp_reachable(&self, from: usize, ip: &str, port: u16) -> bool {
		let probe = format!("exec 3<>/dev/tcp/{ip}/{port}");
		Command::new("ip")
			.args(["netns", "exec", &self.hosts[from], "timeout", "2", "bash", "-c", &probe])
			.output()
			.map(|o| o.status.success())
			.unwrap_or(false)
	}
}

impl Drop for Lab {
	fn drop(&mut self) {
		// Deleting a namespace deletes its end of each veth, and with it the other end.
		for ns in self.hosts.iter().chain(std::iter::once(&self.public)) {
			let _ = run(&["ip", "netns", "del", ns]);
		}
	}
}
