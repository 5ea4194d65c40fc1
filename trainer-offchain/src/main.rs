//! `trainchain-trainer` binary: see `cli` for the subcommands.

mod cli;

fn main() -> anyhow::Result<()> {
    cli::main()
}
