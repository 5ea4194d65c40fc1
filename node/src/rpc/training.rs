//! `training_*` JSON-RPC methods: jobs, rounds and contributors of `pallet-training-rewards`
//! as JSON a person can read (accounts as SS58, amounts as decimal strings, hashes as
//! 0x-hex).

use std::sync::Arc;

use jsonrpsee::{
	core::RpcResult,
	proc_macros::rpc,
	types::{ErrorObject, ErrorObjectOwned},
};
use pallet_training_rewards_runtime_api::{
	ContributorView, JobId, JobView, RoundView, TrainingRewardsApi,
};
use serde_json::{json, Value};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::crypto::Ss58Codec;
use trainchain_runtime::{opaque::Block, AccountId, Balance, BlockNumber};

/// Hash of a block, as the RPC receives it.
type BlockHash = <Block as sp_runtime::traits::Block>::Hash;

/// The `training_*` methods.
#[rpc(client, server)]
pub trait TrainingApi {
	/// Up to `limit` jobs (default 100, at most 1,000) with ids from `start` (default 0) on,
	/// oldest first, in one runtime call. Page with `start = last jobId + 1`.
	#[method(name = "training_jobs")]
	fn jobs(
		&self,
		start: Option<JobId>,
		limit: Option<u32>,
		at: Option<BlockHash>,
	) -> RpcResult<Vec<Value>>;

	/// One job in full, or `null`.
	#[method(name = "training_job")]
	fn job(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Option<Value>>;

	/// The stored round results of a job (round history and payouts).
	#[method(name = "training_rounds")]
	fn rounds(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Vec<Value>>;

	/// The contributors of a job: bond, earnings, latest commitment.
	#[method(name = "training_contributors")]
	fn contributors(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Vec<Value>>;

	/// The genesis hash that aggregate payloads sign, as 0x-hex.
	#[method(name = "training_genesisHash")]
	fn genesis_hash(&self) -> RpcResult<String>;
}

/// Implementation over a client that provides the runtime API.
pub struct TrainingRpc<C> {
	client: Arc<C>,
}

impl<C> TrainingRpc<C> {
	/// New handler.
	pub fn new(client: Arc<C>) -> Self {
		Self { client }
	}
}

fn runtime_error(e: impl std::fmt::Debug) -> ErrorObjectOwned {
	ErrorObject::owned(1, "runtime API call failed", Some(format!("{e:?}")))
}

fn hex32(h: &[u8; 32]) -> String {
	format!("0x{}", hex::encode(h))
}

fn account(a: &AccountId) -> String {
	a.to_ss58check()
}

fn amount(b: Balance) -> String {
	b.to_string()
}

/// JSON of a job.
pub fn job_json(j: &JobView<AccountId, Balance, BlockNumber>) -> Value {
	json!({
		"jobId": j.job_id,
		"sponsor": account(&j.sponsor),
		"modelCommitment": hex32(&j.model_commitment),
		"datasetCommitment": hex32(&j.dataset_commitment),
		"metadata": String::from_utf8_lossy(&j.metadata),
		"hyperparameters": {
			"learningRatePpm": j.learning_rate_ppm,
			"batchSize": j.batch_size,
			"localSteps": j.local_steps,
		},
		"minContributors": j.min_contributors,
		"maxContributors": j.max_contributors,
		"roundLength": j.round_length,
		"commitWindow": j.commit_window,
		"contributorBond": amount(j.contributor_bond),
		"maxSamples": j.max_samples,
		"maxFailedRounds": j.max_failed_rounds,
		"rewardPerRound": amount(j.reward_per_round),
		"rounds": j.rounds,
		"phase": j.phase.as_str(),
		"createdAt": j.created_at,
		"contributors": j.contributors,
		"currentRound": j.current_round,
		"roundStartedAt": j.round_started_at,
		"commitUntil": j.commit_until,
		"deadline": j.deadline,
		"committed": j.committed,
		"quorum": j.quorum,
		"finalizedRounds": j.finalized_rounds,
		"consecutiveFailures": j.consecutive_failures,
		"latestModel": hex32(&j.latest_model),
		"escrow": {
			"deposited": amount(j.escrow_deposited),
			"held": amount(j.escrow_held),
			"paidContributors": amount(j.paid_contributors),
			"paidSubmitters": amount(j.paid_submitters),
			"refunded": amount(j.refunded),
			"paidVerifiers": amount(j.paid_verifiers),
			"reserved": amount(j.escrow_reserved),
		},
		"bonds": { "held": amount(j.bonds_held), "slashed": amount(j.bonds_slashed) },
		"verification": j.verifiers_per_round.map(|k| json!({
			"verifiersPerRound": k,
			"validationSet": j.validation_set.as_ref().map(hex32),
			"publicData": j.public_data.as_ref().map(|(root, shards, recompute)| json!({
				"shardsRoot": hex32(root),
				"shards": shards,
				"recompute": recompute,
			})),
			"verifiers": j.verifiers,
			"reserved": amount(j.escrow_reserved),
			"paidVerifiers": amount(j.paid_verifiers),
			"openSettlements": j.open_settlements,
		})),
	})
}

/// JSON of a round result.
pub fn round_json(r: &RoundView<AccountId, Balance, BlockNumber>) -> Value {
	json!({
		"round": r.round,
		"outcome": if r.finalized { "finalized" } else { "failed" },
		"closedAt": r.closed_at,
		"committed": r.committed,
		"modelHash": r.model_hash.as_ref().map(hex32),
		"metric": r.metric,
		"submitter": r.submitter.as_ref().map(account),
		"submitterReward": amount(r.submitter_reward),
		"payouts": r.payouts.iter().map(|p| json!({
			"who": account(&p.who),
			"samples": p.samples,
			"amount": amount(p.amount),
		})).collect::<Vec<_>>(),
		"lossMicro": r.loss_micro,
		"verifierPayouts": r.verifier_payouts.iter().map(|(who, a)| json!({
			"who": account(who),
			"amount": amount(*a),
		})).collect::<Vec<_>>(),
		"scores": r.scores,
		"settling": r.settling,
		"seed": r.seed.as_ref().map(hex32),
		"assignedShards": r.assigned_shards,
	})
}

/// JSON of a contributor.
pub fn contributor_json(c: &ContributorView<AccountId, Balance, BlockNumber>) -> Value {
	json!({
		"who": account(&c.who),
		"bond": amount(c.bond),
		"joinedAt": c.joined_at,
		"earned": amount(c.earned),
		"roundsIncluded": c.rounds_included,
		"lastCommitRound": c.last_commit_round,
		"currentCommitment": c.current_commitment.as_ref().map(hex32),
		"lastSamples": c.last_samples,
	})
}

impl<C> TrainingApiServer for TrainingRpc<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: TrainingRewardsApi<Block, AccountId, Balance, BlockNumber>,
{
	fn jobs(
		&self,
		start: Option<JobId>,
		limit: Option<u32>,
		at: Option<BlockHash>,
	) -> RpcResult<Vec<Value>> {
		let at = at.unwrap_or_else(|| self.client.info().best_hash);
		let jobs = self
			.client
			.runtime_api()
			.jobs(at, start.unwrap_or(0), limit.unwrap_or(100))
			.map_err(runtime_error)?;
		Ok(jobs.iter().map(job_json).collect())
	}

	fn job(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Option<Value>> {
		let at = at.unwrap_or_else(|| self.client.info().best_hash);
		let job = self.client.runtime_api().job(at, job_id).map_err(runtime_error)?;
		Ok(job.as_ref().map(job_json))
	}

	fn rounds(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Vec<Value>> {
		let at = at.unwrap_or_else(|| self.client.info().best_hash);
		let rounds = self.client.runtime_api().rounds(at, job_id).map_err(runtime_error)?;
		Ok(rounds.iter().map(round_json).collect())
	}

	fn contributors(&self, job_id: JobId, at: Option<BlockHash>) -> RpcResult<Vec<Value>> {
		let at = at.unwrap_or_else(|| self.client.info().best_hash);
		let cs = self.client.runtime_api().contributors(at, job_id).map_err(runtime_error)?;
		Ok(cs.iter().map(contributor_json).collect())
	}

	fn genesis_hash(&self) -> RpcResult<String> {
		let at = self.client.info().best_hash;
		let h = self.client.runtime_api().genesis_hash(at).map_err(runtime_error)?;
		Ok(hex32(&h))
	}
}
