//! Getting ready for a job: its model and plan checked against the commitment, this
//! trainer's data, joining, the peer started, and a `--resume` file read.

use super::*;

/// The job, its model (checked against the job's commitment) and this trainer's shard (or,
/// in a public-data job, the dataset checked against the job's shards root).
pub(super) async fn prepare_job(
	args: &RunOptions,
	chain: &ChainClient,
	me: PublicKey,
) -> Result<(Job, ModelSpec, ShardTrainer)> {
	let job = chain.existing_job(args.job).await?;
	if matches!(job.phase, JobPhase::Completed | JobPhase::Failed | JobPhase::Cancelled) {
		bail!("job {} has ended ({})", job.job_id, job.phase.as_str());
	}
	let model = model_of(&job)?;
	let spec = ModelSpec::parse(&model)
		.with_context(|| format!("job {}: unsupported model {model:?}", job.job_id))?;
	let plan = plan_of(&job)?;
	let commitment = job_commitment(&spec, &plan)?;
	if commitment != job.model_commitment {
		bail!(
			"job {}: model commitment 0x{} is not what this trainer computes for {model:?} with {} (0x{}); refusing the job",
			job.job_id,
			hex::encode(job.model_commitment),
			plan.canonical(),
			hex::encode(commitment)
		);
	}
	check_input(&job, &spec, &plan)?;
	let trainer = match job.public_data {
		Some((root, shards, _)) => {
			let data =
				PublicShards::load(&args.data, shards, Some(root))?.transformed(&plan.input)?;
			let test = args.test.as_deref().map(|p| -> crate::error::Result<data::Dataset> {
				plan.input.apply(data::load_csv(p, CsvOptions::default())?)
			});
			let cfg =
				public_data::train_config(job.learning_rate_ppm, job.batch_size, job.local_steps);
			ShardTrainer::public(
				&spec,
				data,
				job.job_id,
				me,
				test.transpose()?,
				cfg,
				args.fault_wrong_shard,
			)?
		},
		None => {
			let (_, shard_i, shard, test) =
				load_shard(&args.data, &args.shard, args.seed, args.test.as_deref(), &model)?;
			let shard = plan.input.apply(shard)?;
			let test = test.map(|t| plan.input.apply(t)).transpose()?;
			let lr = f64::from(job.learning_rate_ppm) / 1e6;
			let max_steps = plan.names_optimisation().then_some(job.local_steps.max(1) as usize);
			let cfg = TrainConfig {
				epochs: args.epochs,
				max_steps,
				batch_size: job.batch_size.max(1) as usize,
				optimizer: plan.inner.with_lr(lr),
				schedule: plan.schedule(job.rounds, job.local_steps),
				first_step: 0,
			};
			ShardTrainer::new(&spec, shard, shard_i as u64, test, cfg, args.seed)?
		},
	};
	// The trainer refuses to keep its state in a public-data job (updates must be re-computable).
	let trainer = if plan.keep_inner_state {
		trainer.keep_inner_state().with_context(|| format!("job {}", job.job_id))?
	} else {
		trainer
	};
	Ok((job, spec, trainer))
}

/// Refuse a plan whose input transform cannot apply to the job's model: token ids are
/// categories, not measurements, and per-feature statistics must match the model's inputs.
pub fn check_input(job: &Job, spec: &ModelSpec, plan: &TrainingPlan) -> Result<()> {
	if plan.input == crate::standardize::InputTransform::Raw {
		return Ok(());
	}
	if spec.is_lm() {
		bail!("job {}: a language model's token ids cannot be standardised (input=)", job.job_id);
	}
	plan.input
		.standardizer(spec.in_features())
		.with_context(|| format!("job {}: its input transform for model {spec}", job.job_id))?;
	Ok(())
}

/// Join the job (bond on hold) unless this account already is a member.
pub(super) async fn join_once(
	args: &RunOptions,
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	job: &Job,
) -> Result<()> {
	let account = account_of(pair);
	let already = chain.contributors(job.job_id).await?.iter().any(|c| c.who == account);
	if !already {
		chain.submit(pair, calls::join_job(job.job_id)).await.map_err(explain)?;
		(args.events)(JobEvent::Joined { job: job.job_id, who: account.to_string() });
	}
	Ok(())
}

/// Start libp2p and the round runner, and take the job's current model from the peers.
pub(super) async fn start_peer(
	args: &RunOptions,
	chain: &ChainClient,
	job: &Job,
	keys: Keys,
	spec: &ModelSpec,
	trainer: ShardTrainer,
) -> Result<Peer<ShardTrainer>> {
	let mut pcfg = PeerConfig::new(job.job_id, keys);
	pcfg.genesis_hash = chain.genesis_hash().0;
	pcfg.min_peers = job.min_contributors.max(1) as usize;
	pcfg.initial_peers = job.min_contributors.max(1) as usize;
	pcfg.round_timeout = args.round_timeout;
	pcfg.robust = RobustConfig { aggregator: args.aggregator, ..RobustConfig::default() };
	pcfg.compression = args.compression;
	pcfg.error_feedback_decay = args.error_feedback_decay;
	pcfg.scheme = Scheme::Chunked;
	pcfg.outer = plan_of(job)?.outer;
	pcfg.byzantine = args.fault_byzantine;
	// A public-data update must be this round's training alone, so that it can be re-computed.
	pcfg.error_feedback = job.public_data.is_none();
	let ncfg = NetConfig::for_job(job.job_id).with_addrs(&args.net);
	let (client, events) = net::start(ncfg).await?;
	let addrs = client.listen_addrs().await?;
	let peer_id = client.local_peer_id().to_string();
	(args.events)(JobEvent::Listening { peer_id, addrs });
	// The job's initial model (checked against its commitment); a job that already has
	// finalised rounds gets its current model from the peers in `sync`.
	let initial = spec.initial_params()?;
	let mut peer = Peer::new(pcfg, client, events, trainer, initial);
	peer.set_chain_view(chain_view(chain, job).await?);
	peer.sync(Duration::from_secs(60)).await?;
	Ok(peer)
}

/// The model state stored by `--out` in `path`: the job's spec, its parameters followed by
/// the outer optimiser state the job's plan keeps (zeros if the file has none and the plan
/// keeps none).
pub(super) fn resume_state(
	path: &std::path::Path,
	spec: &ModelSpec,
	plan: &TrainingPlan,
) -> Result<Vec<f32>> {
	let (model, _, outer) = crate::checkpoint::load_all(path, Some(spec))
		.with_context(|| format!("--resume {}", path.display()))?;
	let mut state = model.flat_params()?;
	let want = plan.outer.state_len(state.len());
	if outer.len() != want {
		bail!(
			"--resume {}: {} values of outer optimiser state, the job's {} keeps {want}",
			path.display(),
			outer.len(),
			plan.outer
		);
	}
	state.extend(outer);
	Ok(state)
}
