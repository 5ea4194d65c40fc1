//! Certification: evaluate the new model, and as holder collect every included peer's
//! endorsement into the quorum certificate.

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Process network events for up to `timeout` until this peer holds a complete
	/// certificate for `round` (the holder broadcasts it), so any included peer can submit
	/// the aggregate if the holder does not.
	pub async fn await_certificate(
		&mut self,
		round: RoundIndex,
		timeout: Duration,
	) -> Result<Option<QuorumCertificate>> {
		let complete = |q: &Option<QuorumCertificate>| {
			q.clone().filter(|q| q.round() == round && q.is_complete())
		};
		let deadline = Instant::now() + timeout;
		self.wait_until(deadline, |s| complete(&s.last_qc).is_some()).await?;
		Ok(complete(&self.last_qc))
	}

	/// Evaluate the current model on this peer's test set (off the async runtime).
	pub(super) async fn evaluate_model(&mut self) -> Result<Option<(f32, f32)>> {
		let Some(mut t) = self.trainer.take() else {
			return Ok(None);
		};
		let m = self.model().to_vec();
		let (t, e) = tokio::task::spawn_blocking(move || {
			let e = t.evaluate(&m);
			(t, e)
		})
		.await
		.map_err(|e| anyhow!("eval task: {e}"))?;
		self.trainer = Some(t);
		Ok(e)
	}

	/// As certificate holder: wait (bounded) for every included peer's endorsement of
	/// `payload` and assemble the certificate from the valid ones.
	pub(super) async fn collect_certificate(
		&mut self,
		payload: AggregatePayload<PublicKey>,
		mine: Endorsement,
	) -> Result<QuorumCertificate> {
		let mut qc = QuorumCertificate::new(payload);
		qc.add(mine)?;
		let dl = Instant::now() + self.cfg.round_timeout.min(Duration::from_secs(10));
		let want: Vec<PublicKey> = qc.payload.included.iter().map(|s| s.who).collect();
		self.wait_until(dl, |s| want.iter().all(|w| *w == s.me || s.st.sigshares.contains_key(w)))
			.await?;
		for (who, (h, inc, metric, signature)) in self.st.sigshares.clone() {
			if h != qc.payload.model_hash || inc != qc.payload.included {
				tracing::warn!(who = %short(&who), "signature over a different aggregate (diverged peer)");
				continue;
			}
			if let Err(e) = qc.add(Endorsement { who, metric, signature }) {
				tracing::warn!("{e}");
			}
		}
		if !qc.is_complete() {
			tracing::warn!(
				have = qc.signatures.len(),
				want = qc.payload.included.len(),
				"incomplete certificate"
			);
		}
		Ok(qc)
	}
}
