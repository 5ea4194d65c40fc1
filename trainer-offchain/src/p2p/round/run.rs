//! Driving rounds: train, agree, exchange (with retries), apply, sign, certify.

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Run one round. Returns the report (an error means the round produced no aggregate;
	/// the model is unchanged and the next call runs the next round).
	pub async fn run_round(&mut self) -> Result<RoundReport> {
		let start = RoundStart {
			t0: Instant::now(),
			sent0: self.metrics().bytes_sent.load(Relaxed),
			recv0: self.metrics().bytes_received.load(Relaxed),
			msgs0: self.metrics().messages_sent.load(Relaxed),
			direct0: self.metrics().direct_bytes_sent.load(Relaxed),
		};
		let future = std::mem::take(&mut self.future);
		for (from, gossip, env) in future {
			self.ingest_envelope(from, gossip, env.view());
		}
		let round = self.round;
		let base_model = self.prepare_round().await?;
		let (local, compute_ms) = self.train_local(round).await?;
		if !self.cfg.error_feedback {
			self.ef.reset();
		}
		let (mine, _decoded) =
			self.ef
				.compress(self.cfg.compression, &local.delta, self.cfg.error_feedback_decay)?;
		let leaves = mine.leaf_hashes();
		let root = compress::merkle_root(&leaves);
		let mine = ReadyUpdate { update: mine, leaves, root, samples: local.samples, base_model };
		match self.agree_and_exchange(round, &mine).await? {
			Exchanged::Observer => self.observe(round, &start, compute_ms).await,
			Exchanged::Failed => {
				Metrics::inc(&self.metrics().rounds_failed);
				self.set_round(round + 1);
				self.publish_state()?;
				bail!("round {round} failed after {} attempts", self.cfg.max_attempts);
			},
			Exchanged::Aggregated {
				attempt,
				participants,
				agg,
				accepted,
				rejected,
				exchange_ms,
			} => {
				let done = Finished {
					attempt,
					participants,
					accepted,
					rejected,
					local,
					compute_ms,
					exchange_ms,
				};
				self.finish_round(round, &agg, done, &mine, start).await
			},
		}
	}

	/// Set the round's base model (updates trained from another one are not mixed in) and,
	/// in round 0, wait for the initial peers. Returns the base model's hash.
	async fn prepare_round(&mut self) -> Result<Hash32> {
		let round = self.round;
		let base_model = self.model_hash();
		self.st.base_model = Some(base_model);
		let stale: Vec<PublicKey> = self
			.st
			.readies
			.iter()
			.filter(|(_, r)| r.base_model != base_model)
			.map(|((_, who), _)| *who)
			.collect();
		if !stale.is_empty() {
			tracing::warn!(round, n = stale.len(), "ignoring ready peers on another base model");
			self.st.readies.retain(|_, r| r.base_model == base_model);
			for who in &stale {
				self.st.roots.remove(who);
			}
		}
		if round == 0 {
			let need = self.cfg.initial_peers;
			let dl = Instant::now() + self.cfg.round_timeout * 3;
			let ok = self.wait_until(dl, |s| s.expected().len() >= need).await?;
			if !ok {
				tracing::warn!(
					have = self.expected().len(),
					need,
					"starting round 0 without all initial peers"
				);
			}
		}
		Ok(base_model)
	}

	/// Train on the local shard off the network task, handling events meanwhile. Returns
	/// the update (with any test-only misbehaviour applied) and the training time.
	async fn train_local(&mut self, round: RoundIndex) -> Result<(LocalUpdate, u64)> {
		let tc = Instant::now();
		let mut trainer = self.trainer.take().context("trainer busy")?;
		let model = self.model().to_vec();
		let mut job = tokio::task::spawn_blocking(move || {
			let r = trainer.train(&model, round);
			(trainer, r)
		});
		let (trainer, trained) = loop {
			tokio::select! {
				r = &mut job => break r.map_err(|e| anyhow!("training task: {e}"))?,
				ev = self.events.recv() => match ev {
					Some(ev) => self.ingest(ev),
					None => bail!("network task stopped"),
				},
			}
		};
		self.trainer = Some(trainer);
		let mut local = trained?;
		match self.cfg.byzantine {
			Some(Byzantine::Scale(f)) => local.delta.iter_mut().for_each(|x| *x *= f),
			Some(Byzantine::Nan) => local.delta.iter_mut().step_by(7).for_each(|x| *x = f32::NAN),
			Some(Byzantine::FreeRide) => {
				local.delta.iter_mut().for_each(|x| *x = 0.0);
				local.samples = local.samples.saturating_mul(3);
			},
			Some(Byzantine::SplitReduced) | None => {},
		}
		Ok((local, elapsed_ms(tc)))
	}

	/// Announce this peer's update, agree on the attempt's participants and exchange; an
	/// attempt that times out is retried without the peers that went missing.
	async fn agree_and_exchange(
		&mut self,
		round: RoundIndex,
		mine: &ReadyUpdate,
	) -> Result<Exchanged> {
		let root = mine.root;
		let len = u32::try_from(self.params_len).context("model too large")?;
		let mut suspects: BTreeSet<PublicKey> = std::mem::take(&mut self.excluded);
		suspects.remove(&self.me);
		for attempt in 0..self.cfg.max_attempts {
			let peer_id = self.net.local_peer_id();
			let compression = self.cfg.compression.tag();
			let ready = Body::Ready {
				attempt,
				peer_id: peer_id_bytes(&peer_id),
				samples: mine.samples,
				len,
				compression,
				root,
				base_model: mine.base_model,
			};
			let env = Envelope::seal(&self.cfg.keys, self.cfg.job_id, self.round, &ready);
			let info = ReadyInfo {
				peer_id,
				samples: mine.samples,
				len,
				compression,
				root,
				base_model: mine.base_model,
				sig: env.sig,
			};
			self.st.roots.insert(self.me, root);
			self.st.readies.insert((attempt, self.me), info);
			self.st.suspects_reported.extend(suspects.iter().copied());
			self.net.publish(env.encode())?;
			let Some(participants) = self.agree(attempt, &suspects).await? else {
				return Ok(Exchanged::Observer);
			};
			let t_exchange = Instant::now();
			match self.exchange(attempt, &participants, &mine.update, &mine.leaves).await? {
				AttemptOutcome::Aggregated { agg, accepted, rejected } => {
					return Ok(Exchanged::Aggregated {
						attempt,
						participants,
						agg,
						accepted,
						rejected,
						exchange_ms: elapsed_ms(t_exchange),
					});
				},
				AttemptOutcome::Retry(left_out) => {
					tracing::warn!(
						round,
						attempt,
						left_out = ?left_out.iter().map(short).collect::<Vec<_>>(),
						"exchange attempt failed; retrying without the missing or equivocating peers"
					);
					suspects.extend(left_out);
				},
			}
		}
		Ok(Exchanged::Failed)
	}

	/// Apply the aggregate, hash, evaluate, sign (with this peer's own metric), certify,
	/// serve the new state, and report.
	async fn finish_round(
		&mut self,
		round: RoundIndex,
		agg: &[f32],
		done: Finished,
		mine: &ReadyUpdate,
		start: RoundStart,
	) -> Result<RoundReport> {
		let (params, outer_state) = self.model.values_mut().split_at_mut(self.params_len);
		self.cfg.outer.apply(params, outer_state, agg)?;
		self.reduce_feedback.commit(self.params_len);
		// Only now, after the exchange, is this peer's update served by its hash (to the
		// verifiers): nobody can copy it into this round any more.
		self.net.put_blob(mine.root, mine.update.to_blob())?;
		let model_hash = self.model_hash();
		let my_chunk = done.participants.iter().position(|p| p.who == self.me);
		let reduced_bytes = my_chunk
			.and_then(|c| self.st.reduced.get(&(done.attempt, c as u32)))
			.map_or(0, |(blocks, _, _)| blocks.iter().map(Vec::len).sum::<usize>() as u64);
		let update_roots: Vec<(PublicKey, Hash32)> =
			done.participants.iter().map(|p| (p.who, p.root)).collect();
		let included = included_shares(&done.accepted, &update_roots);
		// The holder (lowest holder rank among the included, rotating per round) is the
		// payload's submitter: it earns the submitter share whoever sends the extrinsic.
		let holder = holder_order(self.cfg.job_id, round, &included).first().copied();
		let payload = AggregatePayload::new(
			self.cfg.genesis_hash,
			self.cfg.job_id,
			round,
			model_hash,
			holder.unwrap_or(self.me),
			included.clone(),
		);
		let eval = self.evaluate_model().await?;
		let endorsement = Endorsement {
			who: self.me,
			metric: eval.map(metric_ppm),
			signature: self.cfg.keys.sign_payload(&payload, eval.map(metric_ppm)),
		};
		let certificate = self.certify(round, &payload, holder, endorsement).await?;
		Metrics::inc(&self.metrics().rounds_completed);
		let report = RoundReport {
			round,
			attempt: done.attempt,
			participated: true,
			included,
			update_roots,
			rejected: done.rejected.iter().map(|(w, r)| (*w, r.to_string())).collect(),
			model_hash,
			signature: Some(endorsement.signature),
			certificate,
			payload: Some(payload),
			bytes_sent: self.metrics().bytes_sent.load(Relaxed) - start.sent0,
			bytes_received: self.metrics().bytes_received.load(Relaxed) - start.recv0,
			messages_sent: self.metrics().messages_sent.load(Relaxed) - start.msgs0,
			direct_bytes_sent: self.metrics().direct_bytes_sent.load(Relaxed) - start.direct0,
			update_bytes: mine.update.byte_len() as u64,
			reduced_bytes,
			compute_ms: done.compute_ms,
			exchange_ms: done.exchange_ms,
			network_ms: elapsed_ms(start.t0).saturating_sub(done.compute_ms),
			train_loss: Some(done.local.train_loss),
			eval,
		};
		log_report(&report);
		Ok(report)
	}

	/// As holder, collect the certificate and broadcast it; otherwise send this peer's
	/// endorsement to the holder. Moves to the next round and serves the new state (with
	/// the certificate, or this peer's own signature until the full one arrives). Returns
	/// the certificate if this peer holds it.
	async fn certify(
		&mut self,
		round: RoundIndex,
		payload: &AggregatePayload<PublicKey>,
		holder: Option<PublicKey>,
		mine: Endorsement,
	) -> Result<Option<QuorumCertificate>> {
		let my_included = payload.includes(&self.me);
		let mut certificate = None;
		let mut cert_msg = None;
		if holder == Some(self.me) {
			let qc = self.collect_certificate(payload.clone(), mine).await?;
			cert_msg = Some(self.seal(&Body::Certificate(qc.clone())));
			certificate = Some(qc);
		} else if let (Some(h), true) = (holder, my_included) {
			let share = Body::SigShare {
				model_hash: payload.model_hash,
				included: payload.included.clone(),
				metric: mine.metric,
				sig: mine.signature,
			};
			self.send_to(&h, &share);
		}
		self.last_qc = certificate
			.clone()
			.or_else(|| self.st.certificate.clone().filter(|q| q.round() == round));
		self.set_round(round + 1);
		if self.last_qc.is_none() {
			let mut qc = QuorumCertificate::new(payload.clone());
			if my_included {
				qc.add(mine)?;
			}
			self.last_qc = Some(qc);
		}
		self.publish_state()?;
		if let Some(m) = cert_msg {
			// After the new state is served, so followers can fetch it right away.
			self.net.publish(m)?;
		}
		Ok(certificate)
	}

	/// Run `rounds` rounds (errors of single rounds are logged and skipped).
	pub async fn run(&mut self, rounds: RoundIndex) -> Result<Vec<RoundReport>> {
		let mut out = Vec::new();
		let mut failures = 0u32;
		while self.round < rounds {
			let round = self.round;
			match self.run_round().await {
				Ok(r) => out.push(r),
				Err(e) => tracing::warn!(round, "round failed: {e:#}"),
			}
			// An error that leaves the round where it was (too few peers, a stopped network
			// task) is retried a few times, then the round is given up like a failed one:
			// the model stays, the next round starts. `run` always terminates.
			failures = if self.round == round { failures + 1 } else { 0 };
			if failures >= MAX_ROUND_RETRIES {
				tracing::warn!(round, "giving the round up after {failures} failed tries");
				Metrics::inc(&self.metrics().rounds_failed);
				self.set_round(round + 1);
				self.publish_state()?;
				failures = 0;
			}
			self.drain();
		}
		Ok(out)
	}
}

/// When and with which counters a round started.
pub(super) struct RoundStart {
	pub(super) t0: Instant,
	pub(super) sent0: u64,
	pub(super) recv0: u64,
	pub(super) msgs0: u64,
	pub(super) direct0: u64,
}

/// This peer's compressed update and what its `Ready` announces with it.
struct ReadyUpdate {
	update: Compressed,
	/// The update's leaf hashes and Merkle root, computed once per round.
	leaves: Vec<Hash32>,
	root: Hash32,
	samples: u64,
	base_model: Hash32,
}

/// How the agreement and exchange of a round ended.
enum Exchanged {
	/// This peer is not a participant: follow the result.
	Observer,
	/// Every attempt failed.
	Failed,
	/// The aggregate of an attempt, with the updates it took and rejected.
	Aggregated {
		attempt: u32,
		participants: Vec<Participant>,
		agg: Vec<f32>,
		accepted: Vec<Accepted>,
		rejected: Vec<(PublicKey, aggregate::Rejection)>,
		/// Time of the successful attempt's exchange.
		exchange_ms: u64,
	},
}

/// What finishing a round needs from the exchange and the training.
struct Finished {
	attempt: u32,
	participants: Vec<Participant>,
	accepted: Vec<Accepted>,
	rejected: Vec<(PublicKey, aggregate::Rejection)>,
	local: LocalUpdate,
	compute_ms: u64,
	exchange_ms: u64,
}

/// The included shares of the payload: each accepted update's sender, samples and root.
fn included_shares(
	accepted: &[Accepted],
	update_roots: &[(PublicKey, Hash32)],
) -> Vec<IncludedShare<PublicKey>> {
	accepted
		.iter()
		.map(|a| IncludedShare {
			who: a.who,
			samples: a.samples,
			update_hash: update_roots
				.iter()
				.find(|(w, _)| *w == a.who)
				.map_or([0u8; 32], |(_, r)| *r),
		})
		.collect()
}
