//! Arguments and helpers shared by subcommands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libp2p::Multiaddr;
use trainchain_trainer::data::{self, CsvOptions, Dataset, Header, LabelColumn};
use trainchain_trainer::p2p::net::{node_key_from_file, NetAddrs, DEFAULT_LISTEN};
use trainchain_trainer::ModelSpec;

/// The secret URI from `--suri` or `--key-file` (trimmed); never printed.
pub fn secret_uri(suri: Option<&String>, key_file: Option<&PathBuf>) -> Result<String> {
	match (suri, key_file) {
		(Some(s), _) => Ok(s.clone()),
		(None, Some(f)) => Ok(std::fs::read_to_string(f)
			.with_context(|| format!("reading key file {}", f.display()))?
			.trim()
			.to_string()),
		(None, None) => anyhow::bail!("--suri or --key-file is required"),
	}
}

/// Where a trainer listens, whom it dials first, how others reach it (`peer`, `run`,
/// `verify`).
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
	/// Multiaddr to listen on (repeatable). Default: every interface, TCP and QUIC, ephemeral
	/// ports; e.g. /ip4/0.0.0.0/tcp/30400 and /ip4/0.0.0.0/udp/30400/quic-v1 for fixed ones.
	#[arg(long, default_values = DEFAULT_LISTEN)]
	pub listen: Vec<Multiaddr>,
	/// Multiaddr of a peer to connect to at start (repeatable).
	#[arg(long)]
	pub bootstrap: Vec<Multiaddr>,
	/// An address other peers can reach this one at (repeatable): a public IP, or a port a
	/// NAT forwards, e.g. /ip4/203.0.113.7/tcp/30400.
	#[arg(long = "external-address")]
	pub external: Vec<Multiaddr>,
	/// A relay to be reachable through, with its peer id (repeatable), e.g.
	/// /ip4/198.51.100.1/tcp/30400/p2p/12D3Koo…: for a host that peers cannot dial directly.
	#[arg(long)]
	pub relay: Vec<Multiaddr>,
	/// Relay circuits for other peers (run it on a host every peer can reach).
	#[arg(long)]
	pub relay_server: bool,
	/// Keep this node's libp2p key in FILE (hex of an ed25519 secret; created if missing), so
	/// its peer id survives restarts: what a relay or bootstrap peer others name by id needs.
	#[arg(long, value_name = "FILE")]
	pub node_key_file: Option<PathBuf>,
	/// TCP port of the direct path (0: an ephemeral one): peers connected to this trainer
	/// without a relay send it update chunks over a TCP connection of their own, sealed with
	/// AES-256-GCM under a key given over libp2p. Open it in a firewall next to the libp2p port.
	#[arg(long, default_value_t = 0, value_name = "PORT")]
	pub direct_port: u16,
	/// No direct path: every message goes through libp2p (noise + yamux, or QUIC).
	#[arg(long)]
	pub no_direct: bool,
}

impl NetArgs {
	/// The library's form (reads or creates the node key file).
	pub fn addrs(&self) -> Result<NetAddrs> {
		Ok(NetAddrs {
			listen: self.listen.clone(),
			bootstrap: self.bootstrap.clone(),
			external: self.external.clone(),
			relays: self.relay.clone(),
			relay_server: self.relay_server,
			node_key: self.node_key_file.as_deref().map(node_key_from_file).transpose()?,
			no_direct: self.no_direct,
			direct_port: self.direct_port,
		})
	}
}

/// How to read CSV files.
#[derive(clap::Args, Debug, Clone)]
pub struct CsvArgs {
	/// Label column of CSV files: last, first or a 0-based index.
	#[arg(long, default_value = "last")]
	pub label_column: String,
	/// Header row of CSV files: auto (skip a first row with non-numeric fields), yes, no.
	#[arg(long, default_value = "auto")]
	pub header: String,
}

impl CsvArgs {
	pub fn options(&self) -> Result<CsvOptions> {
		let label = match self.label_column.as_str() {
			"last" => LabelColumn::Last,
			"first" => LabelColumn::First,
			s => LabelColumn::Index(s.parse().with_context(|| {
				format!("--label-column {s:?}: expected last, first or an index")
			})?),
		};
		let header = match self.header.as_str() {
			"auto" => Header::Auto,
			"yes" | "true" => Header::Yes,
			"no" | "false" => Header::No,
			s => anyhow::bail!("--header {s:?}: expected auto, yes or no"),
		};
		Ok(CsvOptions { label, header })
	}
}

/// How to cut text into language-model rows: the model's context and the stride between
/// rows (default: the context).
#[derive(Clone, Copy, Debug)]
pub struct TextRows {
	pub context: usize,
	pub stride: usize,
}

impl TextRows {
	/// The rows for `model` (a spec or bare kind), `None` unless it is a `gpt`.
	pub fn for_model(model: &str, stride: Option<usize>) -> Result<Option<Self>> {
		Ok(ModelSpec::lm_context(model)?
			.map(|context| Self { context, stride: stride.unwrap_or(context) }))
	}
}

/// True for a `.txt` path.
pub fn is_text(path: &Path) -> bool {
	path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

/// Load a data set: text as language-model rows when `text` is given (a gpt model), a CSV
/// file, or an IDX image file when `labels` (the IDX label file) is given.
pub fn load(
	path: &Path,
	labels: Option<&PathBuf>,
	csv: &CsvArgs,
	text: Option<TextRows>,
) -> Result<Dataset> {
	let d = match (labels, text) {
		(Some(l), _) => data::load_idx(path, l)?,
		(None, Some(t)) => data::load_text(path, t.context, t.stride)?,
		(None, None) if is_text(path) => {
			anyhow::bail!("{}: text data needs a gpt model (--model gpt:...)", path.display())
		},
		(None, None) => data::load_csv(path, csv.options()?)?,
	};
	tracing::info!(file = %path.display(), samples = d.len(), features = d.n_features(), "loaded data");
	Ok(d)
}

/// Resolve `--model` (a full spec, or a bare kind sized from the data sets).
pub fn resolve_spec(model: &str, sets: &[&Dataset]) -> Result<ModelSpec> {
	let features = sets.first().map_or(0, |d| d.n_features());
	let classes = sets.iter().map(|d| d.num_classes()).max().unwrap_or(0);
	Ok(ModelSpec::resolve(model, features, classes)?)
}

/// Print a JSON value on one line.
pub fn print_json(v: &serde_json::Value) {
	println!("{v}");
}

/// `--error-feedback-decay`: a fraction in (0, 1].
pub fn parse_decay(s: &str) -> std::result::Result<f32, String> {
	let d: f32 = s.parse().map_err(|e| format!("{e}"))?;
	if d > 0.0 && d <= 1.0 {
		Ok(d)
	} else {
		Err(format!("{d} is not in (0, 1]"))
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn a_decay_is_a_fraction_in_zero_one() {
		assert_eq!(parse_decay("0.95"), Ok(0.95));
		assert_eq!(parse_decay("1"), Ok(1.0));
		for bad in ["0", "-0.5", "1.01", "NaN", "inf", "x"] {
			assert!(parse_decay(bad).is_err(), "{bad}");
		}
	}
}
