//! State sync: adopt a verified model state from a peer (a quorum certificate, or the
//! chain's model), and follow a round this peer is not part of.

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Connect, then adopt the most advanced verified state any connected peer serves (or
	/// keep the initial model if none has one). Announces this peer afterwards.
	pub async fn sync(&mut self, wait_for_peers: Duration) -> Result<()> {
		let deadline = Instant::now() + wait_for_peers;
		self.wait_until(deadline, |s| !s.connected.is_empty()).await?;
		// Let identify/kad connect the rest.
		let settle = Instant::now() + Duration::from_millis(500);
		self.idle(settle).await?;
		self.resync().await
	}

	/// Adopt the most advanced verified state any connected peer serves, then announce.
	pub async fn resync(&mut self) -> Result<()> {
		let peers: Vec<PeerId> = self.connected.iter().copied().collect();
		let mut best: Option<(StateSnapshot, Vec<f32>)> = None;
		for p in peers {
			let bytes = match self.net.fetch_state(p).await {
				Ok(Some(b)) => b,
				Ok(None) => continue,
				Err(e) => {
					tracing::debug!(%p, "state fetch: {e}");
					continue;
				},
			};
			match self.check_snapshot(&bytes) {
				Ok((snap, params)) => {
					if best.as_ref().is_none_or(|(b, _)| snap.next_round > b.next_round) {
						best = Some((snap, params));
					}
				},
				Err(e) => {
					Metrics::inc(&self.metrics().messages_rejected);
					tracing::warn!(%p, "rejected state: {e}");
				},
			}
		}
		if let Some((snap, params)) = best {
			if snap.next_round > self.round {
				tracing::info!(
					round = snap.next_round,
					model_hash = %hex::encode(snap.model_hash),
					certified = snap.certificate.is_some(),
					"synced model state from a peer"
				);
				Metrics::inc(&self.metrics().state_syncs);
				self.model.set(params);
				self.set_round(snap.next_round);
				self.last_qc = snap.certificate;
				self.ef.reset();
				self.reduce_feedback.reset();
			}
		}
		self.publish_state()?;
		self.hello()?;
		Ok(())
	}

	pub(super) fn check_snapshot(&self, bytes: &[u8]) -> Result<(StateSnapshot, Vec<f32>)> {
		let snap = StateSnapshot::decode(&mut &bytes[..])
			.map_err(|e| anyhow!("undecodable state: {e}"))?;
		if snap.job != self.cfg.job_id {
			bail!("state of another job");
		}
		if snap.params.len() != self.model.len() {
			bail!("state has {} params, expected {}", snap.params.len(), self.model.len());
		}
		let params: Vec<f32> = snap.params.iter().map(|b| f32::from_bits(*b)).collect();
		let h = match &self.trainer {
			Some(t) => t.model_hash(&params),
			None => crate::update::state_hash(&params),
		};
		if h != snap.model_hash {
			bail!(
				"model hash mismatch: computed {} vs claimed {}",
				hex::encode(h),
				hex::encode(snap.model_hash)
			);
		}
		if let Some(qc) = &snap.certificate {
			if qc.model_hash() != h || qc.round().checked_add(1) != Some(snap.next_round) {
				bail!("certificate does not match the state");
			}
			if qc.payload.genesis_hash != self.cfg.genesis_hash || qc.job_id() != self.cfg.job_id {
				bail!("certificate of another chain/job");
			}
			let n = qc.verify()?;
			let trusted = self.chain.as_ref().and_then(|c| c.latest_model).is_some_and(|m| m == h);
			// A state is adopted on a quorum (two thirds of the included peers) or because the
			// chain finalised exactly this model; one signature is not enough.
			let quorum = (qc.included().len() * 2).div_ceil(3).max(1);
			if n < quorum && !trusted {
				bail!(
					"certificate with {n} of {} signatures (quorum {quorum})",
					qc.included().len()
				);
			}
		} else if snap.next_round > 0 && !self.chain_finalised(h, snap.next_round) {
			bail!("state of round {} comes without a certificate", snap.next_round);
		}
		Ok((snap, params))
	}

	/// Whether the chain finalised `model_hash` last and has `next_round` or a later round
	/// open: such a state needs no certificate (a peer resumed it from a file; rounds the
	/// chain failed since leave the model as it was). A later round than the chain's is
	/// refused, so that a peer cannot push others past rounds they should take part in.
	fn chain_finalised(&self, model_hash: Hash32, next_round: RoundIndex) -> bool {
		self.chain.as_ref().is_some_and(|c| {
			c.latest_model == Some(model_hash)
				&& c.open_round.is_some_and(|open| next_round <= open)
		})
	}

	/// Follow a round we are not part of: wait for its certificate, then fetch the state.
	pub(super) async fn observe(
		&mut self,
		round: RoundIndex,
		start: &super::run::RoundStart,
		compute_ms: u64,
	) -> Result<RoundReport> {
		tracing::info!(round, "not a participant this round; following the result");
		let dl = Instant::now() + self.cfg.round_timeout * 3;
		self.wait_until(dl, |s| s.st.certificate.as_ref().is_some_and(|q| q.round() == round))
			.await?;
		let fetched = match self.st.certificate.clone() {
			Some(qc) => self.fetch_round_state(&qc, round).await,
			None => Err(anyhow!("no certificate for round {round}")),
		};
		let (qc, snap, params) = match fetched {
			Ok(x) => x,
			Err(e) => {
				tracing::warn!("could not follow round {round}: {e:#}; resyncing from any peer");
				self.resync().await?;
				bail!("round {round}: not a participant; resynced to round {}", self.round);
			},
		};
		Metrics::inc(&self.metrics().state_syncs);
		self.model.set(params);
		self.set_round(round + 1);
		self.last_qc = snap.certificate;
		self.ef.reset();
		self.reduce_feedback.reset();
		self.publish_state()?;
		self.hello()?;
		let report = RoundReport {
			round,
			attempt: 0,
			participated: false,
			included: qc.included().to_vec(),
			update_roots: Vec::new(),
			rejected: Vec::new(),
			model_hash: snap.model_hash,
			signature: None,
			certificate: None,
			payload: Some(qc.payload.clone()),
			bytes_sent: self.metrics().bytes_sent.load(Relaxed) - start.sent0,
			bytes_received: self.metrics().bytes_received.load(Relaxed) - start.recv0,
			messages_sent: self.metrics().messages_sent.load(Relaxed) - start.msgs0,
			direct_bytes_sent: self.metrics().direct_bytes_sent.load(Relaxed) - start.direct0,
			update_bytes: 0,
			reduced_bytes: 0,
			compute_ms,
			exchange_ms: 0,
			network_ms: elapsed_ms(start.t0).saturating_sub(compute_ms),
			train_loss: None,
			eval: None,
		};
		log_report(&report);
		Ok(report)
	}

	/// Fetch the state certified by `qc` from an included peer (retrying briefly while the
	/// peers publish it).
	pub(super) async fn fetch_round_state(
		&mut self,
		qc: &QuorumCertificate,
		round: RoundIndex,
	) -> Result<(QuorumCertificate, StateSnapshot, Vec<f32>)> {
		let dl = Instant::now() + self.cfg.round_timeout;
		loop {
			for s in qc.included() {
				let Some(peer) = self.bindings.get(&s.who).copied() else {
					continue;
				};
				let Ok(Some(bytes)) = self.net.fetch_state(peer).await else {
					continue;
				};
				match self.check_snapshot(&bytes) {
					Ok((snap, params))
						if snap.next_round == round + 1 && snap.model_hash == qc.model_hash() =>
					{
						return Ok((qc.clone(), snap, params));
					},
					Ok(_) => {},
					Err(e) => tracing::warn!("rejected state: {e}"),
				}
			}
			if Instant::now() >= dl {
				bail!("no included peer served the certified state of round {round}");
			}
			let pause = Instant::now() + Duration::from_millis(200);
			self.idle(pause).await?;
		}
	}
}
