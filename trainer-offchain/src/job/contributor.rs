//! The rounds of a job as one contributor takes part in them: readiness (resync, resume),
//! the peer round with its re-runs, commits, the chain's result, saving the model.

use super::*;

/// How often a round is re-run without peers that were included but never committed.
pub(super) const MAX_RERUNS: u32 = 3;
/// A contributor taking part in a job's on-chain rounds.
pub(super) struct Contributor {
	pub(super) args: RunOptions,
	pub(super) chain: ChainClient,
	pub(super) pair: sp_core::sr25519::Pair,
	pub(super) me: PublicKey,
	pub(super) peer: Peer<ShardTrainer>,
	pub(super) spec: ModelSpec,
	/// The whole model state (parameters, then outer optimiser state) of `--resume`.
	pub(super) resume: Option<Vec<f32>>,
}

/// What one peer round produced: the report, the certificate when this peer has one, and
/// the time spent in peer rounds (re-runs included; commits and chain waits excluded).
pub(super) type Attempted = (RoundReport, Option<QuorumCertificate>, Duration);

impl Contributor {
	/// One chain round after another until the job ends (or `--max-rounds`).
	pub(super) async fn run_rounds(&mut self) -> Result<()> {
		let mut rounds_done = 0u32;
		loop {
			let job = self.chain.existing_job(self.args.job).await?;
			match job.phase {
				JobPhase::Completed | JobPhase::Failed | JobPhase::Cancelled => {
					(self.args.events)(JobEvent::JobEnded { phase: job.phase.as_str() });
					self.save_model(&job)?;
					return self.serve_until_settled().await;
				},
				JobPhase::WaitingForContributors | JobPhase::Aggregate => {
					tokio::time::sleep(Duration::from_secs(1)).await;
					continue;
				},
				JobPhase::Commit => {},
			}
			if !self.ready_for(&job).await? {
				self.wait_closed(job.current_round).await?;
				continue;
			}
			self.chain_round(&job).await?;
			rounds_done += 1;
			if self.args.max_rounds.is_some_and(|m| rounds_done >= m) {
				return Ok(());
			}
		}
	}

	/// Whether this peer can take part in the job's open round: it holds the model the
	/// chain finalised last (resyncing from a peer if not), and it did not join after the
	/// round's peer exchange.
	async fn ready_for(&mut self, job: &Job) -> Result<bool> {
		let round = job.current_round;
		self.peer.set_chain_view(chain_view(&self.chain, job).await?);
		// Before the first finalised round, `latest_model` is the commitment (checked above) and
		// the job's model is its initial one. A trainer that joined late may have synced the
		// result of a round the chain never accepted (it was re-run without a member that never
		// committed): kept, that model would leave it out of every later round.
		if job.finalized_rounds == 0 {
			self.back_to_initial_model(round)?;
		}
		if job.finalized_rounds > 0 && self.peer.model_hash_now() != job.latest_model {
			// We missed a round (or restarted): take the state the chain finalised, from our
			// own saved file if it holds it, else from a peer.
			self.resume_from_file(job)?;
		}
		if job.finalized_rounds > 0 && self.peer.model_hash_now() != job.latest_model {
			self.peer.resync().await.context("fetching the current model from a peer")?;
			if self.peer.model_hash_now() != job.latest_model {
				tracing::warn!(round, "after resync the model hash still differs from the chain; sitting this round out");
				return Ok(false);
			}
		}
		// A trainer that joined after this round's peer exchange synced its result from the
		// peers (its state is already for a later round): the exchange ran without it, so it
		// sits this round out and takes part from the next one.
		if self.peer.round() > round {
			tracing::info!(
				round,
				synced_round = self.peer.round(),
				"joined after this round's peer exchange; taking part from the next round"
			);
			return Ok(false);
		}
		Ok(true)
	}

	/// Take the `--resume` state if it is the model the chain finalised last (once: a file
	/// that does not match is dropped with a warning, and the peers are asked instead).
	fn resume_from_file(&mut self, job: &Job) -> Result<()> {
		let Some(state) = self.resume.take() else { return Ok(()) };
		let before = self.peer.checkpoint();
		self.peer.adopt(state, job.current_round)?;
		let hash = self.peer.model_hash_now();
		if hash == job.latest_model {
			(self.args.events)(JobEvent::Resumed { round: job.current_round, model_hash: hash });
			return Ok(());
		}
		tracing::warn!(
			saved = %hex::encode(hash),
			chain = %hex::encode(job.latest_model),
			"the --resume file does not hold the job's latest model; taking it from the peers"
		);
		self.peer.restore(before)
	}

	/// Go back to the job's initial model if this trainer holds another one while the chain
	/// has accepted no round.
	fn back_to_initial_model(&mut self, round: RoundIndex) -> Result<()> {
		let initial = self.spec.initial_params()?;
		let same = self
			.peer
			.model()
			.iter()
			.map(|x| x.to_bits())
			.eq(initial.iter().map(|x| x.to_bits()));
		if !same {
			tracing::warn!(
				round,
				"holding a model the chain never accepted (synced from peers); going back to the \
				 job's initial model"
			);
			self.peer.reset(initial, round)?;
		}
		Ok(())
	}

	/// One on-chain round: run it with the peers (re-running without included peers that
	/// never commit), submit, wait for the chain's result, report, roll back if it failed.
	async fn chain_round(&mut self, job: &Job) -> Result<()> {
		let round = job.current_round;
		let checkpoint = self.peer.checkpoint();
		let Some((report, certificate, t_peer)) = self.attempt_round(job, &checkpoint).await?
		else {
			self.peer.restore(checkpoint)?;
			return self.wait_closed(round).await;
		};
		let t1 = std::time::Instant::now();
		let included_me = report.included.iter().any(|s| s.who == self.me);
		match certificate {
			Some(qc) => submit_if_needed(&self.chain, &self.pair, &qc, self.args.job, round).await,
			None if included_me => tracing::warn!(
				round,
				"no complete certificate reached this peer; it cannot submit the aggregate"
			),
			None => {},
		}
		let closed = wait_round_closed(&self.chain, self.args.job, round).await?;
		report_round(
			&self.args.events,
			&report,
			closed.as_ref(),
			included_me,
			t_peer,
			t1.elapsed(),
		);
		let matches = closed.as_ref().and_then(|r| r.model_hash) == Some(report.model_hash);
		if closed.as_ref().is_some_and(|r| !r.finalized) {
			// The round failed on-chain: the model stays what the chain last finalised.
			self.peer.restore(checkpoint)?;
		} else if !matches {
			tracing::warn!(round, "local model differs from the chain's result; will resync");
		} else if let Err(e) = self.save_model(&self.chain.existing_job(self.args.job).await?) {
			// The round stands; a file that cannot be written only costs the resume point.
			tracing::warn!(round, "cannot save the model: {e:#}");
		}
		Ok(())
	}

	/// Run the peer round; if peers that were included never commit on-chain (crashed, out
	/// of funds, withholding), run it again without them. Training is deterministic per
	/// (model, round), so the re-run reproduces every remaining update and its commitment.
	/// `None`: the round cannot produce an aggregate this peer takes part in.
	async fn attempt_round(
		&mut self,
		job: &Job,
		checkpoint: &crate::p2p::round::Checkpoint,
	) -> Result<Option<Attempted>> {
		let round = job.current_round;
		let mut excluded: BTreeSet<PublicKey> = BTreeSet::new();
		let mut t_peer = Duration::ZERO;
		for attempt in 0..MAX_RERUNS {
			if attempt > 0 {
				self.peer.restore(checkpoint.clone())?;
				self.peer.exclude(excluded.iter().copied());
			}
			self.peer.set_round(round);
			let t = std::time::Instant::now();
			let run = self.peer.run_round().await;
			t_peer += t.elapsed();
			let report = match run {
				Ok(r) => r,
				Err(e) => {
					tracing::warn!(round, "peer round failed: {e:#}");
					return Ok(None);
				},
			};
			emit_signed(&self.args.events, &report);
			if !report.included.iter().any(|s| s.who == self.me) {
				return Ok(Some((report, None, t_peer)));
			}
			if !self.args.fault_commit_delay.is_zero() {
				tokio::time::sleep(self.args.fault_commit_delay).await;
			}
			if !self.args.fault_skip_commit {
				commit_mine(&self.chain, &self.pair, &report, self.args.job, round, &self.me).await;
			}
			let missing = missing_commitments(&self.chain, job, round, &report).await?;
			if missing.contains(&self.me) {
				return Ok(Some((report, None, t_peer)));
			}
			if !missing.is_empty() {
				tracing::warn!(
					round,
					missing = missing.len(),
					"included peers did not commit on-chain; re-running the round without them"
				);
				excluded.extend(missing);
				continue;
			}
			// The holder has the certificate; the other included peers take the copy it
			// broadcasts, so they can submit if the holder does not (see `submit_if_needed`).
			// If it never comes (the holder died after committing), re-run without the holder:
			// every commitment on-chain stays valid.
			let certificate = match report.certificate.clone() {
				Some(qc) => Some(qc),
				None => self
					.peer
					.await_certificate(round, Duration::from_secs(10))
					.await
					.unwrap_or_default(),
			};
			let holder = holder_order(self.args.job, round, &report.included).first().copied();
			match (certificate, holder) {
				(None, Some(holder)) if holder != self.me => {
					tracing::warn!(
						round,
						"no certificate from the holder; re-running the round without it"
					);
					excluded.insert(holder);
				},
				(certificate, _) => return Ok(Some((report, certificate, t_peer))),
			}
		}
		Ok(None)
	}

	/// With `--out`, write the model state this peer holds, which must be the chain's latest
	/// (after each finalised round and when the job ends; see `--resume`).
	fn save_model(&self, job: &Job) -> Result<()> {
		let Some(file) = &self.args.out else { return Ok(()) };
		let model_hash = self.peer.model_hash_now();
		if job.finalized_rounds > 0 && model_hash != job.latest_model {
			bail!(
				"not writing {}: this trainer's model 0x{} is not the job's latest 0x{}",
				file.display(),
				hex::encode(model_hash),
				hex::encode(job.latest_model)
			);
		}
		let model = crate::model::Model::from_flat(&self.spec, self.peer.model())?;
		// The model takes standardised inputs in a job that names them: `eval` must too.
		let input = plan_of(job)?.input.standardizer(self.spec.in_features())?;
		let outer = self.peer.state().get(model.num_params()..).unwrap_or_default();
		let inner = self.peer.inner_snapshot();
		crate::checkpoint::save_resumable(&model, input.as_ref(), outer, inner.as_ref(), file)?;
		(self.args.events)(JobEvent::Saved { file: file.clone(), model_hash });
		Ok(())
	}

	/// In a verified job, keep serving this peer's updates and models (by hash, from the
	/// network task) until the verifiers have scored every round and its payouts are made.
	async fn serve_until_settled(&self) -> Result<()> {
		loop {
			let job = self.chain.existing_job(self.args.job).await?;
			if job.open_settlements == 0 {
				return Ok(());
			}
			tokio::time::sleep(Duration::from_secs(2)).await;
		}
	}

	async fn wait_closed(&self, round: RoundIndex) -> Result<()> {
		wait_round_closed(&self.chain, self.args.job, round).await?;
		Ok(())
	}
}

/// Report one round's outcome: the model against the chain's, accuracy, time split, bytes.
pub(super) fn report_round(
	events: &EventSink,
	report: &RoundReport,
	closed: Option<&trainchain_chain_client::Round>,
	included_me: bool,
	t_peer: Duration,
	t_chain: Duration,
) {
	events(JobEvent::Round(RoundOutcome {
		round: report.round,
		included: report.included.len(),
		included_me,
		model_hash: report.model_hash,
		chain_model_hash: closed.and_then(|r| r.model_hash),
		finalized: closed.is_some_and(|r| r.finalized),
		eval: report.eval,
		compute_ms: report.compute_ms,
		network_ms: report.network_ms,
		peer_round_ms: t_peer.as_millis() as u64,
		chain_ms: t_chain.as_millis() as u64,
		bytes_sent: report.bytes_sent,
		bytes_received: report.bytes_received,
	}));
}

/// Report the exact statement this peer signed in a round attempt and its signature.
pub(super) fn emit_signed(events: &EventSink, report: &RoundReport) {
	let (Some(payload), Some(signature)) = (&report.payload, report.signature) else {
		return;
	};
	let statement = payload.signing_bytes(report.eval.map(crate::p2p::round::metric_ppm));
	events(JobEvent::Signed {
		round: report.round,
		included: payload.included.len(),
		statement,
		signature,
	});
}
