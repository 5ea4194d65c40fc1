//! `trainchain-trainer` binary: see `cli` for the subcommands.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
	match cli::main() {
		Ok(()) => ExitCode::SUCCESS,
		Err(e) => {
			// One line: the error and its causes, outermost first.
			eprintln!("error: {e:#}");
			ExitCode::FAILURE
		},
	}
}
