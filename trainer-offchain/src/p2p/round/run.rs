//! Driving rounds: train, agree, exchange (with retries), apply, sign, certify.

use super::*;

impl<T: LocalTrainer> Peer<T> {
    /// Run one round. Returns the report (an error means the round produced no aggregate;
    /// the model is unchanged and the next call runs the next round).
    pub async fn run_round(&mut self) -> Result<RoundReport> {
        let t0 = Instant::now();
        let sent0 = self.metrics().bytes_sent.load(Relaxed);
        let recv0 = self.metrics().bytes_received.load(Relaxed);
        let future = std::mem::take(&mut self.future);
        for (from, gossip, env) in future {
            self.ingest_envelope(from, gossip, env);
        }
        let round = self.round;
        // Only updates trained from this model take part.
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

        // 1. Train off the network task, keep handling events meanwhile.
        let tc = Instant::now();
        let mut trainer = self.trainer.take().context("trainer busy")?;
        let model = self.model.clone();
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
        let compute_ms = elapsed_ms(tc);
        match self.cfg.byzantine {
            Some(Byzantine::Scale(f)) => local.delta.iter_mut().for_each(|x| *x *= f),
            Some(Byzantine::Nan) => local
                .delta
                .iter_mut()
                .step_by(7)
                .for_each(|x| *x = f32::NAN),
            None => {}
        }
        let (mine, _decoded) = self.ef.compress(self.cfg.compression, &local.delta)?;
        let root = mine.root();
        let update_bytes = mine.byte_len() as u64;
        let len = u32::try_from(self.model.len()).context("model too large")?;

        // 2–3. Agree and exchange, with retries.
        let mut suspects: BTreeSet<PublicKey> = std::mem::take(&mut self.excluded);
        suspects.remove(&self.me);
        let mut outcome = None;
        for attempt in 0..self.cfg.max_attempts {
            let ready = Body::Ready {
                attempt,
                peer_id: peer_id_bytes(&self.net.local_peer_id()),
                samples: local.samples,
                len,
                compression: self.cfg.compression.tag(),
                root,
                base_model,
            };
            self.st.roots.insert(self.me, root);
            self.st.readies.insert(
                (attempt, self.me),
                ReadyInfo {
                    peer_id: self.net.local_peer_id(),
                    samples: local.samples,
                    len,
                    compression: self.cfg.compression.tag(),
                    root,
                    base_model,
                },
            );
            self.st.suspects_reported.extend(suspects.iter().copied());
            self.net.publish(self.seal(&ready))?;
            let Some(participants) = self.agree(attempt, &suspects).await? else {
                // Not a participant this round: follow the result.
                return self.observe(round, t0, sent0, recv0, compute_ms).await;
            };
            match self.exchange(attempt, &participants, &mine).await? {
                Ok(agg) => {
                    outcome = Some((attempt, participants, agg));
                    break;
                }
                Err(missing) => {
                    tracing::warn!(
                        round,
                        attempt,
                        missing = ?missing.iter().map(short).collect::<Vec<_>>(),
                        "exchange attempt timed out; retrying without the missing peers"
                    );
                    suspects.extend(missing);
                }
            }
        }
        let Some((attempt, participants, (agg, accepted, rejected))) = outcome else {
            Metrics::inc(&self.metrics().rounds_failed);
            self.set_round(round + 1);
            self.publish_state()?;
            bail!(
                "round {round} failed after {} attempts",
                self.cfg.max_attempts
            );
        };

        // 4. Apply, hash, evaluate, sign (with this peer's own metric), certify.
        for (m, a) in self.model.iter_mut().zip(&agg) {
            *m += a;
        }
        let model_hash = self.model_hash();
        let update_roots: Vec<(PublicKey, Hash32)> =
            participants.iter().map(|p| (p.who, p.root)).collect();
        let included: Vec<IncludedShare<PublicKey>> = accepted
            .iter()
            .map(|a| IncludedShare {
                who: a.who,
                samples: a.samples,
                update_hash: update_roots
                    .iter()
                    .find(|(w, _)| *w == a.who)
                    .map_or([0u8; 32], |(_, r)| *r),
            })
            .collect();
        // The holder (lowest included key) is the payload's submitter: it earns the
        // submitter share whoever sends the extrinsic.
        let holder = included.first().map(|s| s.who);
        let payload = AggregatePayload::new(
            self.cfg.genesis_hash,
            self.cfg.job_id,
            round,
            model_hash,
            holder.unwrap_or(self.me),
            included.clone(),
        );
        let eval = self.evaluate_model().await?;
        let mine = Endorsement {
            who: self.me,
            metric: eval.map(metric_ppm),
            signature: self.cfg.keys.sign_payload(&payload, eval.map(metric_ppm)),
        };
        let sig = mine.signature;
        let my_included = included.iter().any(|s| s.who == self.me);
        let mut certificate = None;
        let mut cert_msg = None;
        if holder == Some(self.me) {
            let qc = self.collect_certificate(payload.clone(), mine).await?;
            cert_msg = Some(self.seal(&Body::Certificate(qc.clone())));
            certificate = Some(qc);
        } else if let (Some(h), true) = (holder, my_included) {
            self.send_to(
                &h,
                &Body::SigShare {
                    model_hash,
                    included: included.clone(),
                    metric: mine.metric,
                    sig,
                },
            );
        }
        self.last_qc = certificate
            .clone()
            .or_else(|| self.st.certificate.clone().filter(|q| q.round() == round));
        self.set_round(round + 1);
        if self.last_qc.is_none() {
            // Serve our own signature as a (partial) certificate until the full one arrives.
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
        Metrics::inc(&self.metrics().rounds_completed);
        let report = RoundReport {
            round,
            attempt,
            participated: true,
            included,
            update_roots,
            rejected: rejected.iter().map(|(w, r)| (*w, r.to_string())).collect(),
            model_hash,
            signature: Some(sig),
            certificate,
            payload: Some(payload),
            bytes_sent: self.metrics().bytes_sent.load(Relaxed) - sent0,
            bytes_received: self.metrics().bytes_received.load(Relaxed) - recv0,
            update_bytes,
            compute_ms,
            network_ms: elapsed_ms(t0).saturating_sub(compute_ms),
            train_loss: Some(local.train_loss),
            eval,
        };
        log_report(&report);
        Ok(report)
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
