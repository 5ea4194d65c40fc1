//! The trainer's link to a trainchain node.
//!
//! A thin layer on the runtime's own types (no subxt, no metadata codegen): calls are
//! `trainchain_runtime::RuntimeCall` values, extrinsics are built with the runtime's
//! `TxExtension` and signed with sr25519, reads go through the `TrainingRewardsApi` runtime API
//! (`state_call`) and typed storage, and dispatch errors are decoded into the runtime's own
//! error enums, so a failure reads `TrainingRewards.AlreadyJoined`. Because the types are the
//! runtime's, a change of a call or event breaks compilation rather than a live run.
//!
//! The connection is re-established transparently when the node drops it (e.g. restarts);
//! every request is retried once after a reconnect.

mod error;
mod events;
mod extrinsic;

use std::{sync::Arc, time::Duration};

use codec::{Decode, Encode};
use jsonrpsee_core::{
	client::{ClientT, SubscriptionClientT},
	rpc_params,
};
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use pallet_training_rewards_runtime_api::{ContributorView, JobView, RoundView};
use serde_json::Value;
use sp_core::{sr25519, Pair, H256};
use tokio::sync::Mutex;
use trainchain_runtime::{AccountId, Balance, BlockNumber, Runtime, RuntimeCall, RuntimeEvent};

pub use error::ChainError;
pub use events::{dispatch_error_name, EventRecord};
pub use extrinsic::signed as signed_extrinsic;
pub use frame_support::BoundedVec;
pub use pallet_training_rewards::Sr25519Signature;
pub use pallet_training_rewards_runtime_api::JobPhase;
pub use sp_runtime::MultiSignature;
pub use trainchain_primitives::{JobId, RoundIndex};

/// A job as the runtime API shows it.
pub type Job = JobView<AccountId, Balance, BlockNumber>;
/// A round result as the runtime API shows it.
pub type Round = RoundView<AccountId, Balance, BlockNumber>;
/// A contributor as the runtime API shows it.
pub type Contributor = ContributorView<AccountId, Balance, BlockNumber>;
/// The aggregate type `submit_aggregate` takes.
pub type Aggregate = pallet_training_rewards::AggregateOf<Runtime>;
/// A signed contribution inside an [`Aggregate`].
pub type SignedContribution =
	pallet_training_rewards::SignedContribution<AccountId, Sr25519Signature>;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, ChainError>;

/// Where an extrinsic ended up.
#[derive(Debug, Clone)]
pub struct Included {
	/// Block it was included in.
	pub block_hash: H256,
	/// Number of that block.
	pub block_number: BlockNumber,
	/// Events it emitted (in order).
	pub events: Vec<RuntimeEvent>,
}

struct Chain {
	genesis: H256,
	spec_version: u32,
	transaction_version: u32,
}

/// A connection to a trainchain node.
#[derive(Clone)]
pub struct ChainClient {
	url: String,
	rpc: Arc<Mutex<Arc<WsClient>>>,
	chain: Arc<Chain>,
	/// Serialises submissions so nonces are taken in order.
	submit_lock: Arc<Mutex<()>>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn open(url: &str) -> Result<WsClient> {
	let client = tokio::time::timeout(
		CONNECT_TIMEOUT,
		WsClientBuilder::default()
			.request_timeout(REQUEST_TIMEOUT)
			.connection_timeout(CONNECT_TIMEOUT)
			.max_request_size(16 * 1024 * 1024)
			.max_response_size(64 * 1024 * 1024)
			.build(url),
	)
	.await
	.map_err(|_| ChainError::Unreachable { url: url.into(), reason: "timed out".into() })?
	.map_err(|e| ChainError::Unreachable { url: url.into(), reason: e.to_string() })?;
	Ok(client)
}

fn from_hex(s: &str) -> Result<Vec<u8>> {
	hex::decode(s.trim_start_matches("0x"))
		.map_err(|e| ChainError::Protocol(format!("bad hex: {e}")))
}

fn hash_from_value(v: &Value) -> Result<H256> {
	let s = v
		.as_str()
		.ok_or_else(|| ChainError::Protocol(format!("expected a hash, got {v}")))?;
	let bytes = from_hex(s)?;
	if bytes.len() != 32 {
		return Err(ChainError::Protocol(format!("expected 32 bytes, got {}", bytes.len())));
	}
	Ok(H256::from_slice(&bytes))
}

impl ChainClient {
	/// Connect to a node and check that it runs trainchain.
	///
	/// With `expected_genesis`, a node of another chain is refused with
	/// [`ChainError::GenesisMismatch`].
	pub async fn connect(url: &str, expected_genesis: Option<H256>) -> Result<Self> {
		let rpc = Arc::new(open(url).await?);
		let genesis = hash_from_value(
			&rpc.request::<Value, _>("chain_getBlockHash", rpc_params![0u32]).await?,
		)?;
		if let Some(expected) = expected_genesis {
			if expected != genesis {
				return Err(ChainError::GenesisMismatch { expected, found: genesis });
			}
		}
		let version: Value = rpc.request("state_getRuntimeVersion", rpc_params![]).await?;
		let spec_name = version["specName"].as_str().unwrap_or_default().to_string();
		if spec_name != "trainchain" {
			return Err(ChainError::NotTrainchain { url: url.into(), spec_name });
		}
		let spec_version = version["specVersion"].as_u64().unwrap_or_default() as u32;
		let transaction_version = version["transactionVersion"].as_u64().unwrap_or_default() as u32;
		Ok(Self {
			url: url.into(),
			rpc: Arc::new(Mutex::new(rpc)),
			chain: Arc::new(Chain { genesis, spec_version, transaction_version }),
			submit_lock: Arc::new(Mutex::new(())),
		})
	}

	/// The node's URL.
	pub fn url(&self) -> &str {
		&self.url
	}

	/// The chain's genesis hash (what aggregate payloads sign).
	pub fn genesis_hash(&self) -> H256 {
		self.chain.genesis
	}

	async fn client(&self) -> Result<Arc<WsClient>> {
		let mut guard = self.rpc.lock().await;
		if !guard.is_connected() {
			tracing::warn!(url = %self.url, "RPC connection lost; reconnecting");
			let mut delay = Duration::from_millis(250);
			let mut last = None;
			for _ in 0..20 {
				match open(&self.url).await {
					Ok(c) => {
						*guard = Arc::new(c);
						tracing::info!(url = %self.url, "reconnected");
						return Ok(guard.clone());
					},
					Err(e) => last = Some(e),
				}
				tokio::time::sleep(delay).await;
				delay = (delay * 2).min(Duration::from_secs(3));
			}
			return Err(last.unwrap_or_else(|| ChainError::Unreachable {
				url: self.url.clone(),
				reason: "reconnect failed".into(),
			}));
		}
		Ok(guard.clone())
	}

	/// A JSON-RPC request, retried once over a fresh connection if the transport failed.
	pub async fn request(&self, method: &str, params: Vec<Value>) -> Result<Value> {
		let mut attempt = 0;
		loop {
			let client = self.client().await?;
			let mut p = jsonrpsee_core::params::ArrayParams::new();
			for v in &params {
				p.insert(v).map_err(|e| ChainError::Protocol(e.to_string()))?;
			}
			match client.request::<Value, _>(method, p).await {
				Ok(v) => return Ok(v),
				Err(jsonrpsee_core::ClientError::RestartNeeded(_)) if attempt == 0 => {
					attempt += 1;
					continue;
				},
				Err(e) => return Err(e.into()),
			}
		}
	}

	async fn state_call<R: Decode>(&self, method: &str, args: impl Encode) -> Result<R> {
		let data = format!("0x{}", hex::encode(args.encode()));
		let v = self.request("state_call", vec![method.into(), data.into()]).await?;
		let bytes = from_hex(v.as_str().unwrap_or_default())?;
		R::decode(&mut &bytes[..]).map_err(|e| ChainError::Protocol(format!("{method}: {e}")))
	}

	/// A job, or `None` if no job has this id.
	pub async fn job(&self, job_id: JobId) -> Result<Option<Job>> {
		self.state_call("TrainingRewardsApi_job", job_id).await
	}

	/// A job that must exist.
	pub async fn existing_job(&self, job_id: JobId) -> Result<Job> {
		self.job(job_id).await?.ok_or(ChainError::UnknownJob(job_id))
	}

	/// Stored round results of a job, oldest first.
	pub async fn rounds(&self, job_id: JobId) -> Result<Vec<Round>> {
		self.state_call("TrainingRewardsApi_rounds", job_id).await
	}

	/// Contributors of a job.
	pub async fn contributors(&self, job_id: JobId) -> Result<Vec<Contributor>> {
		self.state_call("TrainingRewardsApi_contributors", job_id).await
	}

	/// Number of the best block.
	pub async fn best_number(&self) -> Result<BlockNumber> {
		let header = self.request("chain_getHeader", vec![]).await?;
		parse_number(&header["number"])
	}

	/// Number of the last finalised block.
	pub async fn finalized_number(&self) -> Result<BlockNumber> {
		let hash = self.request("chain_getFinalizedHead", vec![]).await?;
		let header = self.request("chain_getHeader", vec![hash]).await?;
		parse_number(&header["number"])
	}

	/// Raw storage at the best block.
	pub async fn storage(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
		let v = self
			.request("state_getStorage", vec![format!("0x{}", hex::encode(key)).into()])
			.await?;
		match v.as_str() {
			None => Ok(None),
			Some(s) => Ok(Some(from_hex(s)?)),
		}
	}

	/// Free balance of an account.
	pub async fn free_balance(&self, who: &AccountId) -> Result<Balance> {
		let key = frame_system::Account::<Runtime>::hashed_key_for(who);
		let Some(bytes) = self.storage(&key).await? else {
			return Ok(0);
		};
		let info = frame_system::AccountInfo::<
			trainchain_runtime::Nonce,
			pallet_balances::AccountData<Balance>,
		>::decode(&mut &bytes[..])
		.map_err(|e| ChainError::Protocol(format!("account info: {e}")))?;
		Ok(info.data.free)
	}

	/// Sign `call` with `signer`, submit it, wait until it is in a block, and return its
	/// events; a failed dispatch is [`ChainError::Dispatch`] with the error's name.
	pub async fn submit(&self, signer: &sr25519::Pair, call: RuntimeCall) -> Result<Included> {
		let _guard = self.submit_lock.lock().await;
		let who: AccountId = signer.public().into();
		let nonce_v = self.request("system_accountNextIndex", vec![who.to_string().into()]).await?;
		let nonce = nonce_v.as_u64().unwrap_or_default() as u32;
		let xt = extrinsic::signed(
			signer,
			call,
			nonce,
			self.chain.genesis,
			self.chain.spec_version,
			self.chain.transaction_version,
		);
		let encoded = xt.encode();
		let xt_hash = H256(sp_crypto_hashing::blake2_256(&encoded));
		let client = self.client().await?;
		let mut sub = client
			.subscribe::<Value, _>(
				"author_submitAndWatchExtrinsic",
				rpc_params![format!("0x{}", hex::encode(&encoded))],
				"author_unwatchExtrinsic",
			)
			.await
			.map_err(ChainError::from_submit)?;
		let block_hash = loop {
			let status = tokio::time::timeout(Duration::from_secs(120), sub.next())
				.await
				.map_err(|_| ChainError::Timeout("waiting for inclusion".into()))?
				.ok_or_else(|| ChainError::Protocol("status stream ended".into()))?
				.map_err(|e| ChainError::Protocol(e.to_string()))?;
			if let Some(h) = status.get("inBlock").or_else(|| status.get("finalized")) {
				break hash_from_value(h)?;
			}
			if status.get("invalid").is_some()
				|| status.get("dropped").is_some()
				|| status.get("usurped").is_some()
			{
				return Err(ChainError::Rejected(status.to_string()));
			}
		};
		drop(sub);
		self.outcome(block_hash, xt_hash).await
	}

	async fn outcome(&self, block_hash: H256, xt_hash: H256) -> Result<Included> {
		let hash_v: Value = format!("{block_hash:?}").into();
		let block = self.request("chain_getBlock", vec![hash_v.clone()]).await?;
		let block_number = parse_number(&block["block"]["header"]["number"])?;
		let index = block["block"]["extrinsics"]
			.as_array()
			.and_then(|xts| {
				xts.iter().position(|x| {
					x.as_str()
						.and_then(|s| from_hex(s).ok())
						.map(|b| sp_crypto_hashing::blake2_256(&b) == xt_hash.0)
						.unwrap_or(false)
				})
			})
			.ok_or_else(|| ChainError::Protocol("extrinsic not found in its block".into()))?
			as u32;
		let records = self.events_at(block_hash).await?;
		events::outcome_of(records, index).map(|events| Included {
			block_hash,
			block_number,
			events,
		})
	}

	/// All event records of a block.
	pub async fn events_at(&self, block_hash: H256) -> Result<Vec<EventRecord>> {
		// `System.Events`: twox128("System") ‖ twox128("Events") (the storage item is private).
		let mut key = sp_crypto_hashing::twox_128(b"System").to_vec();
		key.extend_from_slice(&sp_crypto_hashing::twox_128(b"Events"));
		let v = self
			.request(
				"state_getStorage",
				vec![format!("0x{}", hex::encode(key)).into(), format!("{block_hash:?}").into()],
			)
			.await?;
		let Some(s) = v.as_str() else {
			return Ok(Vec::new());
		};
		let bytes = from_hex(s)?;
		Vec::<EventRecord>::decode(&mut &bytes[..])
			.map_err(|e| ChainError::Protocol(format!("events: {e}")))
	}

	/// Hash of block `number` on the best chain.
	pub async fn block_hash(&self, number: BlockNumber) -> Result<Option<H256>> {
		let v = self.request("chain_getBlockHash", vec![number.into()]).await?;
		if v.is_null() {
			return Ok(None);
		}
		hash_from_value(&v).map(Some)
	}
}

fn parse_number(v: &Value) -> Result<BlockNumber> {
	let s = v
		.as_str()
		.ok_or_else(|| ChainError::Protocol(format!("bad block number {v}")))?;
	u32::from_str_radix(s.trim_start_matches("0x"), 16)
		.map_err(|e| ChainError::Protocol(format!("bad block number {s}: {e}")))
}

/// Calls of `pallet-training-rewards`, built from the runtime's types.
pub mod calls {
	use super::*;
	use pallet_training_rewards::Call as T;
	use sp_core::H256;

	/// `join_job`.
	pub fn join_job(job_id: JobId) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::join_job { job_id })
	}

	/// `leave_job`.
	pub fn leave_job(job_id: JobId) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::leave_job { job_id })
	}

	/// `commit_update`.
	pub fn commit_update(
		job_id: JobId,
		round: RoundIndex,
		commitment: [u8; 32],
		samples: u64,
	) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::commit_update {
			job_id,
			round,
			commitment: H256(commitment),
			samples,
		})
	}

	/// `submit_aggregate`.
	pub fn submit_aggregate(job_id: JobId, round: RoundIndex, aggregate: Aggregate) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::submit_aggregate { job_id, round, aggregate })
	}

	/// `create_job`.
	pub fn create_job(
		spec: pallet_training_rewards::JobSpecOf<Runtime>,
		reward_per_round: Balance,
		rounds: u32,
	) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::create_job { spec, reward_per_round, rounds })
	}

	/// `cancel_job`.
	pub fn cancel_job(job_id: JobId) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::cancel_job { job_id })
	}

	/// `join_as_verifier` (holds the job's verifier bond).
	pub fn join_as_verifier(job_id: JobId) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::join_as_verifier { job_id })
	}

	/// `submit_scores`: one score per included contributor (micro-units of validation-loss
	/// decrease, in aggregate order) and the aggregated model's validation loss and accuracy.
	pub fn submit_scores(
		job_id: JobId,
		round: RoundIndex,
		verifier: crate::AccountId,
		scores: Vec<i32>,
		loss_micro: u32,
		accuracy_ppm: u32,
	) -> RuntimeCall {
		use frame_support::BoundedVec;
		let sheet = pallet_training_rewards::ScoreSheet {
			verifier,
			scores: BoundedVec::truncate_from(scores),
			loss_micro,
			accuracy_ppm,
		};
		RuntimeCall::TrainingRewards(T::submit_scores { job_id, round, sheet })
	}

	/// `challenge_round` (holds the job's challenge bond).
	pub fn challenge_round(job_id: JobId, round: RoundIndex) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::challenge_round { job_id, round })
	}

	/// `withdraw_bond` (after `leave_job` and the unbonding period).
	pub fn withdraw_bond(job_id: JobId) -> RuntimeCall {
		RuntimeCall::TrainingRewards(T::withdraw_bond { job_id })
	}

	/// `report_equivocation` with two signed statements of `offender`.
	pub fn report_equivocation(
		job_id: JobId,
		round: RoundIndex,
		offender: crate::AccountId,
		first: (Vec<u8>, crate::Sr25519Signature),
		second: (Vec<u8>, crate::Sr25519Signature),
	) -> RuntimeCall {
		use frame_support::BoundedVec;
		use pallet_training_rewards::{EquivocationProof, SignedEvidence};
		let evidence = |(statement, signature): (Vec<u8>, crate::Sr25519Signature)| {
			SignedEvidence { statement: BoundedVec::truncate_from(statement), signature }
		};
		RuntimeCall::TrainingRewards(T::report_equivocation {
			proof: Box::new(EquivocationProof {
				job_id,
				round,
				offender,
				first: evidence(first),
				second: evidence(second),
			}),
		})
	}
}

/// The sr25519 key of a secret URI (`//Alice`, a mnemonic, or a hex seed).
pub fn pair_from_suri(suri: &str) -> Result<sr25519::Pair> {
	sr25519::Pair::from_string(suri, None).map_err(|_| ChainError::BadKey)
}

/// The account of an sr25519 key.
pub fn account_of(pair: &sr25519::Pair) -> AccountId {
	pair.public().into()
}
