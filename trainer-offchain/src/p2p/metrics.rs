//! Prometheus-style counters (text exposition) and a tiny HTTP endpoint serving them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

macro_rules! counters {
    ($($name:ident : $help:literal),* $(,)?) => {
        /// Process-wide counters of the p2p layer.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// Text exposition format.
            pub fn render(&self) -> String {
                let mut s = String::new();
                $(
                    s.push_str(&format!(
                        "# HELP trainchain_p2p_{0} {1}\n# TYPE trainchain_p2p_{0} counter\ntrainchain_p2p_{0} {2}\n",
                        stringify!($name), $help, self.$name.load(Relaxed)
                    ));
                )*
                s
            }
        }
    };
}

counters! {
	bytes_sent: "Application bytes sent (request-response frames and gossip publishes).",
	bytes_received: "Application bytes received.",
	sends_retried: "Messages sent again after their request failed (connection closed, dial failure, I/O error).",
	messages_sent: "Messages sent: request-response requests and gossip publishes (a publish counts once).",
	rounds_completed: "Rounds that produced an aggregate.",
	rounds_failed: "Rounds that ended without an aggregate.",
	updates_rejected: "Contributions rejected by screening (NaN/inf, wrong shape, norm outlier).",
	messages_rejected: "Messages rejected (bad signature, wrong job/round, unknown sender, bad binding).",
	malformed: "Undecodable frames or messages.",
	oversized: "Frames refused for exceeding the size limit.",
	equivocations: "Peers caught sending two different updates in one round.",
	replays: "Messages from an earlier round.",
	impersonations: "Messages whose libp2p sender is not the claimed key's peer.",
	exchange_rejected: "Exchange messages (chunk, norms, reduced) from a peer that is not a participant / the chunk's owner in the agreed proposal, or bound to another proposal.",
	state_syncs: "Model states fetched from peers.",
	direct_bytes_sent: "Application bytes sent on the direct path (also counted in bytes_sent).",
	direct_bytes_received: "Application bytes received on the direct path (also counted in bytes_received).",
	direct_fallbacks: "Times the direct path to a peer failed and its messages went by libp2p.",
}

impl Metrics {
	/// Add one.
	pub fn inc(c: &AtomicU64) {
		c.fetch_add(1, Relaxed);
	}
}

/// Serve `GET /metrics` (any path) on `addr` until the process exits.
pub async fn serve(
	addr: std::net::SocketAddr,
	metrics: Arc<Metrics>,
) -> anyhow::Result<std::net::SocketAddr> {
	use tokio::io::{AsyncReadExt, AsyncWriteExt};
	let listener = tokio::net::TcpListener::bind(addr).await?;
	let local = listener.local_addr()?;
	tokio::spawn(async move {
		while let Ok((mut sock, _)) = listener.accept().await {
			let m = metrics.clone();
			tokio::spawn(async move {
				let mut buf = [0u8; 1024];
				let _ = sock.read(&mut buf).await;
				let body = m.render();
				let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
				let _ = sock.write_all(resp.as_bytes()).await;
			});
		}
	});
	Ok(local)
}
