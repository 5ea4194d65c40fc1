//! What a contributor reads from and sends to the chain around a round: commitments, the
//! chain's view of the job, the certificate holder's submission, waiting for a round to close.

use super::*;

/// How long included peers get to land their commitments (8 blocks of 3 s).
pub(super) const COMMIT_WAIT: Duration = Duration::from_secs(24);

/// Post this peer's commitment for the round, unless it is already there.
pub(super) async fn commit_mine(
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	report: &RoundReport,
	job: u64,
	round: RoundIndex,
	me: &PublicKey,
) {
	let Some(update_hash) = report.update_root_of(me) else {
		tracing::warn!(round, "no agreed update root for this peer; not committing");
		return;
	};
	let Some(samples) = report.included.iter().find(|s| &s.who == me).map(|s| s.samples) else {
		return;
	};
	let salt = salt_of(&update_hash, me);
	let commitment = update_commitment(job, round, me, &update_hash, &salt);
	// Never send the same commitment twice (a re-run round reproduces it).
	let on_chain = chain.contributors(job).await.is_ok_and(|cs| {
		cs.iter()
			.any(|c| c.who.as_ref() as &[u8] == me.as_slice() && c.last_commit_round == Some(round))
	});
	if on_chain {
		return;
	}
	match chain.submit(pair, calls::commit_update(job, round, commitment, samples)).await {
		Ok(_) => tracing::info!(round, samples, "committed update"),
		Err(e) if e.dispatch_error() == Some("TrainingRewards.AlreadyCommitted") => {},
		Err(e) => tracing::warn!(round, "commit failed: {e}"),
	}
}

/// The job's members and last finalised model, as the peer protocol checks them.
pub(super) async fn chain_view(chain: &ChainClient, job: &Job) -> Result<ChainView> {
	let members = chain
		.contributors(job.job_id)
		.await?
		.iter()
		.map(|c| {
			let bytes: &[u8] = c.who.as_ref();
			let mut key = [0u8; 32];
			key.copy_from_slice(bytes);
			key
		})
		.collect();
	let finalized = job.finalized_rounds > 0;
	Ok(ChainView {
		members,
		latest_model: finalized.then_some(job.latest_model),
		open_round: finalized.then_some(job.current_round),
	})
}

/// The commitment `who` must post for `round` if the aggregate includes `share`.
pub(super) fn expected_commitment(
	job: u64,
	round: RoundIndex,
	share: &IncludedShare<PublicKey>,
) -> Hash32 {
	let salt = salt_of(&share.update_hash, &share.who);
	update_commitment(job, round, &share.who, &share.update_hash, &salt)
}

/// Included peers whose commitment for `round` is not on-chain after a few blocks (or when
/// the commit window closes), or is not the one the aggregate needs (another update or
/// another sample count than they announced to the peers: the chain would refuse the
/// aggregate).
pub(super) async fn missing_commitments(
	chain: &ChainClient,
	job: &Job,
	round: RoundIndex,
	report: &RoundReport,
) -> Result<BTreeSet<PublicKey>> {
	let deadline = std::time::Instant::now() + COMMIT_WAIT;
	loop {
		let committed = chain.contributors(job.job_id).await?;
		let missing: BTreeSet<PublicKey> = report
			.included
			.iter()
			.filter(|s| {
				let want = expected_commitment(job.job_id, round, s);
				!committed.iter().any(|c| {
					c.who.as_ref() as &[u8] == s.who.as_slice()
						&& c.last_commit_round == Some(round)
						&& c.current_commitment == Some(want)
						&& c.last_samples == Some(s.samples)
				})
			})
			.map(|s| s.who)
			.collect();
		let window_open = chain
			.existing_job(job.job_id)
			.await
			.is_ok_and(|j| j.current_round == round && j.phase == JobPhase::Commit);
		if missing.is_empty() || !window_open || std::time::Instant::now() > deadline {
			return Ok(missing);
		}
		tokio::time::sleep(Duration::from_millis(500)).await;
	}
}

/// The certificate holder submits; other holders submit as a fallback if the round is still
/// open a few blocks later.
pub(super) async fn submit_if_needed(
	chain: &ChainClient,
	pair: &sp_core::sr25519::Pair,
	qc: &QuorumCertificate,
	job: u64,
	round: RoundIndex,
) {
	if !qc.is_complete() {
		tracing::warn!(round, "the certificate is incomplete; not submitting");
		return;
	}
	let me = pair.public().0;
	let order = holder_order(job, round, &qc.payload.included);
	let position = order.iter().position(|w| *w == me).unwrap_or(usize::MAX);
	if position == usize::MAX {
		return;
	}
	let aggregate = aggregate_of(qc);
	loop {
		if !my_turn_to_submit(chain, job, round, position).await {
			return;
		}
		if position > 0 {
			tracing::info!(round, "fallback: submitting the aggregate");
		}
		match chain.submit(pair, calls::submit_aggregate(job, round, aggregate.clone())).await {
			Ok(_) => return tracing::info!(round, "aggregate accepted on-chain"),
			// A member joined between our read and inclusion: wait for the window again.
			Err(e) if e.dispatch_error() == Some("TrainingRewards.CommitWindowOpen") => {},
			Err(e)
				if matches!(
					e.dispatch_error(),
					Some("TrainingRewards.WrongRound" | "TrainingRewards.JobNotRunning")
				) =>
			{
				return tracing::info!(round, "round already closed on-chain")
			},
			Err(e) => return tracing::warn!(round, "submit_aggregate failed: {e}"),
		}
	}
}

/// Wait, reading the job (which costs nothing), until the chain accepts an aggregate for
/// `round` (every member committed, or the commit window closed; a refused extrinsic would
/// still pay its fee) and then until this peer's turn: the holder (position 0) at once, the
/// fallback at position k 3·k blocks later. False if the round closes first.
pub(super) async fn my_turn_to_submit(
	chain: &ChainClient,
	job: u64,
	round: RoundIndex,
	position: usize,
) -> bool {
	let mut turn = None;
	loop {
		let Ok(j) = chain.existing_job(job).await else {
			return false;
		};
		if j.current_round != round || !matches!(j.phase, JobPhase::Commit | JobPhase::Aggregate) {
			return false;
		}
		if j.phase == JobPhase::Aggregate || j.committed >= j.contributors {
			let at = *turn.get_or_insert_with(|| {
				std::time::Instant::now() + Duration::from_secs(9 * position as u64)
			});
			if std::time::Instant::now() >= at {
				return true;
			}
		}
		tokio::time::sleep(Duration::from_millis(500)).await;
	}
}

/// The `submit_aggregate` argument for a complete certificate: each included peer's reveal
/// (its update hash, as signed, and its derived salt), metric and signature.
pub(super) fn aggregate_of(qc: &QuorumCertificate) -> Aggregate {
	let contributions: Vec<SignedContribution> = qc
		.payload
		.included
		.iter()
		.filter_map(|s| {
			let e = qc.endorsement(&s.who)?;
			Some(SignedContribution {
				who: s.who.into(),
				update_hash: H256(s.update_hash),
				salt: H256(salt_of(&s.update_hash, &s.who)),
				metric: e.metric,
				signature: Sr25519Signature(sp_core::sr25519::Signature::from_raw(e.signature)),
			})
		})
		.collect();
	Aggregate {
		model_hash: H256(qc.payload.model_hash),
		submitter: qc.payload.submitter.into(),
		contributions: BoundedVec::truncate_from(contributions),
	}
}

/// Wait until `round` is no longer the job's open round; return its stored result.
pub(super) async fn wait_round_closed(
	chain: &ChainClient,
	job: u64,
	round: RoundIndex,
) -> Result<Option<trainchain_chain_client::Round>> {
	loop {
		let j = chain.existing_job(job).await?;
		let open =
			j.current_round == round && matches!(j.phase, JobPhase::Commit | JobPhase::Aggregate);
		if !open {
			let rounds = chain.rounds(job).await?;
			return Ok(rounds.into_iter().find(|r| r.round == round));
		}
		tokio::time::sleep(Duration::from_secs(1)).await;
	}
}
