//! Errors of the chain client: each says in one line what went wrong.

use sp_core::H256;

/// What can go wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
	/// No node answers at the URL.
	#[error("cannot reach a node at {url}: {reason}")]
	Unreachable {
		/// The URL.
		url: String,
		/// Why.
		reason: String,
	},
	/// The node runs a different chain than expected.
	#[error("the node is on another chain: genesis {found:?}, expected {expected:?}")]
	GenesisMismatch {
		/// Expected genesis hash.
		expected: H256,
		/// The node's genesis hash.
		found: H256,
	},
	/// The node does not run the trainchain runtime.
	#[error("the node at {url} runs '{spec_name}', not trainchain")]
	NotTrainchain {
		/// The URL.
		url: String,
		/// Its runtime's spec name.
		spec_name: String,
	},
	/// No job with this id.
	#[error("job {0} does not exist on this chain")]
	UnknownJob(u64),
	/// The secret URI is not a valid key.
	#[error("the key (--suri) is not a valid sr25519 secret URI")]
	BadKey,
	/// The transaction pool refused the transaction, e.g. because fees cannot be paid.
	#[error("transaction refused: {0}")]
	Rejected(String),
	/// The extrinsic was included but its dispatch failed.
	#[error("dispatch failed: {0}")]
	Dispatch(String),
	/// The node answered with an RPC error.
	#[error("RPC error: {0}")]
	Rpc(String),
	/// The node's answer could not be understood.
	#[error("unexpected answer from the node: {0}")]
	Protocol(String),
	/// Waited too long.
	#[error("timed out {0}")]
	Timeout(String),
}

impl From<jsonrpsee_core::ClientError> for ChainError {
	fn from(e: jsonrpsee_core::ClientError) -> Self {
		ChainError::Rpc(e.to_string())
	}
}

impl ChainError {
	/// Map an error of `author_submitAndWatchExtrinsic` to a clear message.
	pub(crate) fn from_submit(e: jsonrpsee_core::ClientError) -> Self {
		let text = e.to_string();
		if text.contains("Inability to pay some fees") {
			ChainError::Rejected("the account cannot pay the transaction fee (no funds?)".into())
		} else if text.contains("1010") || text.contains("Invalid Transaction") {
			ChainError::Rejected(text)
		} else {
			ChainError::Rpc(text)
		}
	}

	/// The pallet error name of a failed dispatch, e.g. `TrainingRewards.AlreadyJoined`.
	pub fn dispatch_error(&self) -> Option<&str> {
		match self {
			ChainError::Dispatch(name) => Some(name),
			_ => None,
		}
	}
}
