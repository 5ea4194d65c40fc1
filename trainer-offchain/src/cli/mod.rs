//! Command line: one clap subcommand per file (`train`, `eval`, `hash`, `corpus`, `peer`, `run`);
//! add new subcommands as variants of [`Command`]. Parsing and printing live here; the
//! library does the work.

mod common;
mod corpus;
mod eval;
mod hash;
mod peer;
#[cfg(feature = "chain")]
mod run;
mod train;
#[cfg(feature = "chain")]
mod verify;

use clap::{Parser, Subcommand};
use trainchain_trainer::tuning::Cores;

/// trainchain contributor: train, evaluate and hash models.
#[derive(Parser, Debug)]
#[command(name = "trainchain-trainer", version, about)]
pub struct Cli {
	/// Log filter (tracing EnvFilter syntax), e.g. info or trainchain_trainer=debug.
	#[arg(long, global = true, env = "TRAINCHAIN_LOG", default_value = "warn")]
	pub log: String,
	/// Worker threads for candle/rayon (sets RAYON_NUM_THREADS; default: all cores).
	#[arg(long, global = true)]
	pub threads: Option<usize>,
	/// The subcommand.
	#[command(subcommand)]
	pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
	/// Train a model on a data set (one process) and save it as safetensors.
	Train(train::TrainArgs),
	/// Evaluate saved weights on a data set.
	Eval(eval::EvalArgs),
	/// Print a model's commitment and state hash.
	Hash(hash::HashArgs),
	/// Write the seeded English-like text corpus (for language-model training).
	Corpus(corpus::CorpusArgs),
	/// Train on a shard and average with peers over libp2p every round.
	Peer(peer::PeerArgs),
	/// Join a job on a trainchain node: train with peers, commit, submit, get paid.
	#[cfg(feature = "chain")]
	Run(run::RunArgs),
	/// Verify a job: score every included update of the rounds this account is picked for.
	#[cfg(feature = "chain")]
	Verify(verify::VerifyArgs),
}

/// Parse the command line and run.
pub fn main() -> anyhow::Result<()> {
	let cli = Cli::parse();
	// A `train` job owns the machine's cores; the others share them (tuning.rs).
	let cores = match cli.command {
		Command::Train(_) => Cores::Dedicated,
		_ => Cores::Shared,
	};
	trainchain_trainer::tuning::apply(cores);
	if let Some(t) = cli.threads {
		if t == 0 {
			anyhow::bail!("--threads must be positive");
		}
		// Before any candle/rayon work, so the thread pools pick it up.
		std::env::set_var("RAYON_NUM_THREADS", t.to_string());
	}
	let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
		.map_err(|e| anyhow::anyhow!("bad --log filter {:?}: {e}", cli.log))?;
	tracing_subscriber::fmt()
		.with_env_filter(filter)
		.with_writer(std::io::stderr)
		.init();
	match cli.command {
		Command::Train(a) => train::run(a),
		Command::Eval(a) => eval::run(a),
		Command::Hash(a) => hash::run(a),
		Command::Corpus(a) => corpus::run(a),
		Command::Peer(a) => peer::run(a),
		#[cfg(feature = "chain")]
		Command::Run(a) => run::run(a),
		#[cfg(feature = "chain")]
		Command::Verify(a) => verify::run(a),
	}
}
