//! trainchain validator node.
#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error`, the errors every Substrate node command returns, are
// large; boxing them here would only convert back and forth at the sc-cli boundary.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
	command::run()
}
