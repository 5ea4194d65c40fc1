//! `trainchain-trainer corpus`: write the seeded text corpus of [`trainchain_trainer::corpus`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use trainchain_trainer::corpus;

/// Arguments of `corpus`.
#[derive(clap::Args, Debug)]
pub struct CorpusArgs {
	/// Output file.
	#[arg(long)]
	pub out: PathBuf,
	/// Minimum size in bytes (generation stops at the end of a paragraph).
	#[arg(long, default_value_t = corpus::DEFAULT_BYTES)]
	pub bytes: usize,
	/// Seed of the grammar's choices (the committed testdata/corpus.txt uses the default).
	#[arg(long, default_value_t = corpus::DEFAULT_SEED)]
	pub seed: u64,
}

pub fn run(a: CorpusArgs) -> Result<()> {
	let text = corpus::generate(a.seed, a.bytes);
	std::fs::write(&a.out, &text).with_context(|| format!("writing {}", a.out.display()))?;
	println!("wrote {} bytes (seed {}) to {}", text.len(), a.seed, a.out.display());
	Ok(())
}
