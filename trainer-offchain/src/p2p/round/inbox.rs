//! Inbox: authenticate every incoming message (job, signature, bound peer id, round) and
//! file it into the round state; exchange messages only from their owner under the agreed
//! proposal. Also the event-loop helpers that wait on the network.

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Handle one network event (validation, binding, buffering).
	pub(super) fn ingest(&mut self, ev: NetEvent) {
		match ev {
			NetEvent::Connected(p) => {
				self.connected.insert(p);
			},
			NetEvent::Disconnected(p) => {
				self.connected.remove(&p);
			},
			NetEvent::Listening(_) => {},
			NetEvent::Message { from, data, gossip } => match EnvelopeView::parse(&data) {
				Ok(env) => self.ingest_envelope(from, gossip, env),
				Err(e) => {
					Metrics::inc(&self.metrics().malformed);
					tracing::warn!(%from, len = data.len(), "dropping malformed message: {e}");
				},
			},
		}
	}

	pub(super) fn reject(&self, from: &PeerId, env: &EnvelopeView<'_>, why: &str) {
		Metrics::inc(&self.metrics().messages_rejected);
		tracing::warn!(%from, who = %short(&env.who), round = env.round, "rejected message: {why}");
	}

	/// Check and file one message, read in place (`env.body` borrows the message's bytes;
	/// only a message for a later round is copied, to keep it).
	pub(super) fn ingest_envelope(&mut self, from: PeerId, gossip: bool, env: EnvelopeView<'_>) {
		if env.job != self.cfg.job_id {
			return self.reject(&from, &env, "wrong job");
		}
		if env.who == self.me {
			// Our own gossip echoed back, or someone claiming our key.
			if from != self.net.local_peer_id() {
				Metrics::inc(&self.metrics().impersonations);
				self.reject(&from, &env, "claims our own key");
			}
			return;
		}
		let (body, opened) = match env.open_checked() {
			Ok(b) => b,
			Err(e) => {
				return self.reject(&from, &env, &format!("{e} (forged or claimed identity)"))
			},
		};
		if env.round < self.round && !matches!(body, Body::Hello { .. } | Body::Certificate(_)) {
			Metrics::inc(&self.metrics().replays);
			return self.reject(&from, &env, "message from an earlier round (replay or late)");
		}
		// Bind / check the sender's libp2p identity.
		match &body {
			Body::Hello { peer_id, .. } | Body::Ready { peer_id, .. } => {
				if peer_id.as_slice() != peer_id_bytes(&from).as_slice() {
					Metrics::inc(&self.metrics().impersonations);
					return self.reject(
						&from,
						&env,
						"signed peer id differs from the sending peer (replayed)",
					);
				}
				self.bindings.insert(env.who, from);
				if let Body::Hello { joining_round, .. } = body {
					tracing::debug!(who = %short(&env.who), %from, joining_round, "hello");
					self.joining.insert(env.who, joining_round);
					return;
				}
			},
			Body::Certificate(_) => {},
			_ => {
				let bound = self.bindings.get(&env.who);
				let ok = bound == Some(&from) || (gossip && bound.is_none());
				if !ok {
					Metrics::inc(&self.metrics().impersonations);
					return self.reject(&from, &env, "sender is not the key's bound peer");
				}
			},
		}
		if env.round < self.round {
			if let Body::Certificate(qc) = body {
				self.on_certificate(qc);
				return;
			}
			Metrics::inc(&self.metrics().replays);
			return self.reject(&from, &env, "message from an earlier round (replay or late)");
		}
		if env.round > self.round {
			if self.future.len() < 10_000 {
				self.future.push((from, gossip, env.to_envelope()));
			}
			return;
		}
		self.on_body(from, (env.who, env.sig), body, opened);
	}

	pub(super) fn on_certificate(&mut self, qc: QuorumCertificate) {
		if qc.job_id() != self.cfg.job_id || qc.payload.genesis_hash != self.cfg.genesis_hash {
			return;
		}
		match qc.verify() {
			Ok(n) if n > 0 => {
				let newer = self
					.last_qc
					.as_ref()
					.is_none_or(|q| q.round() < qc.round() || q.signatures.len() < n);
				if newer {
					tracing::debug!(round = qc.round(), signatures = n, "certificate");
					if qc.round().checked_add(1) == Some(self.round)
						&& qc.model_hash() == self.model_hash()
					{
						self.last_qc = Some(qc.clone());
						let _ = self.publish_state();
					} else if qc.round() >= self.round {
						self.st.certificate = Some(qc.clone());
					}
				}
				if qc.round() == self.round {
					self.st.certificate = Some(qc);
				}
			},
			_ => {
				Metrics::inc(&self.metrics().messages_rejected);
				tracing::warn!("invalid certificate");
			},
		}
	}

	/// File an authenticated message body (`opened`: its envelope's signature check).
	pub(super) fn on_body(
		&mut self,
		from: PeerId,
		(who, sig): (PublicKey, SignatureBytes),
		body: Body,
		opened: Opened,
	) {
		if matches!(body, Body::Ready { .. } | Body::Proposal { .. }) && !self.is_member(&who) {
			Metrics::inc(&self.net.metrics().messages_rejected);
			tracing::warn!(who = %short(&who), "ignoring a peer that has not joined the job on-chain");
			return;
		}
		if let Body::Proposal { attempt, participants } = &body {
			if let Err(why) = self.check_proposal(*attempt, participants) {
				Metrics::inc(&self.net.metrics().messages_rejected);
				tracing::warn!(who = %short(&who), "invalid proposal: {why}");
				return;
			}
		}
		let st = &mut self.st;
		match body {
			Body::Hello { .. } => {},
			Body::Ready { attempt, samples, len, compression, root, base_model, .. } => {
				if st.base_model.is_some_and(|b| b != base_model) {
					Metrics::inc(&self.net.metrics().messages_rejected);
					tracing::warn!(who = %short(&who), "ready on another base model (lagging peer); not mixing it in");
					return;
				}
				if let Some(prev) = st.roots.get(&who) {
					if *prev != root {
						if st.equivocators.insert(who) {
							Metrics::inc(&self.net.metrics().equivocations);
							tracing::warn!(who = %short(&who), round = self.round, "equivocation: two different updates in one round; excluding sender");
						}
						return;
					}
				} else {
					st.roots.insert(who, root);
				}
				st.readies.insert(
					(attempt, who),
					ReadyInfo { peer_id: from, samples, len, compression, root, base_model, sig },
				);
			},
			Body::Proposal { attempt, participants } => {
				let valid = participants.iter().any(|p| p.who == who)
					&& participants
						.windows(2)
						.all(|w| w.first().map(|a| a.who) < w.get(1).map(|b| b.who));
				if !valid {
					Metrics::inc(&self.net.metrics().messages_rejected);
					tracing::warn!(who = %short(&who), "invalid proposal");
					return;
				}
				// Two proposers (views differ): every peer keeps the one of lowest rank.
				let rank = |k: &PublicKey| {
					roles::rank(self.cfg.job_id, self.round, Role::Proposer { attempt }, k)
				};
				let better = st.proposals.get(&attempt).is_none_or(|(p, _)| rank(&who) < rank(p));
				if better {
					st.proposals.insert(attempt, (who, participants));
				}
			},
			body @ (Body::Chunk { .. }
			| Body::Norms { .. }
			| Body::Reduced { .. }
			| Body::ReducedDigests { .. }
			| Body::ReducedConflict { .. }) => self.on_exchange(who, body, opened),
			Body::SigShare { model_hash, included, metric, sig } => {
				st.sigshares.insert(who, (model_hash, included, metric, sig));
			},
			Body::Certificate(qc) => self.on_certificate(qc),
		}
	}

	/// An exchange message: checked against its attempt's agreed proposal, or kept until
	/// this peer agrees on that attempt.
	pub(super) fn on_exchange(&mut self, who: PublicKey, body: Body, opened: Opened) {
		let Some((attempt, _, _)) = body.exchange_key() else {
			return;
		};
		if attempt >= self.cfg.max_attempts {
			return self.reject_exchange(&who, &body, "attempt beyond the last one");
		}
		if !self.is_member(&who) {
			return self.reject_exchange(&who, &body, "sender has not joined the job on-chain");
		}
		if self.st.agreed.contains_key(&attempt) {
			return self.accept_exchange(who, body, opened);
		}
		if self.st.early.len() < EARLY_CAP {
			self.st.early.entry((attempt, who, body.kind())).or_insert((body, opened));
		}
	}

	/// Store an exchange message if its sender may send it in the agreed proposal (any
	/// participant for `Chunk` and the cross-check messages, the chunk's owner for `Norms` /
	/// `Reduced`); first message per slot wins, so only the owner can fill a chunk's slot.
	pub(super) fn accept_exchange(&mut self, who: PublicKey, body: Body, opened: Opened) {
		let Some((attempt, proposal, chunk)) = body.exchange_key() else {
			return;
		};
		let verdict = match self.st.agreed.get(&attempt) {
			Some((agreed, parts)) => check_exchange(agreed, parts, &who, proposal, chunk),
			None => Err("no agreed proposal for the attempt"),
		};
		if let Err(why) = verdict {
			return self.reject_exchange(&who, &body, why);
		}
		tracing::debug!(kind = body.kind(), who = %short(&who), "exchange: in");
		let st = &mut self.st;
		match body {
			Body::Chunk { first_block, blocks, proof, .. } => {
				st.chunks.entry((attempt, who)).or_insert((
					first_block,
					blocks,
					proof,
					opened.leaves,
				));
			},
			Body::Norms { chunk, stats, .. } => {
				st.norms.entry((attempt, chunk)).or_insert(stats);
			},
			Body::Reduced { chunk, blocks, .. } => {
				st.reduced
					.entry((attempt, chunk))
					.or_insert((blocks, opened.sig, opened.digest));
			},
			Body::ReducedDigests { digests, .. } => {
				st.digests.entry((attempt, who)).or_insert(digests);
			},
			Body::ReducedConflict { evidence, .. } => {
				self.on_reduced_conflict(who, attempt, evidence)
			},
			_ => {},
		}
	}

	pub(super) fn reject_exchange(&self, who: &PublicKey, body: &Body, why: &str) {
		Metrics::inc(&self.metrics().exchange_rejected);
		Metrics::inc(&self.metrics().messages_rejected);
		let (attempt, chunk) = body.exchange_key().map(|(a, _, c)| (a, c)).unwrap_or_default();
		tracing::warn!(who = %short(who), kind = body.kind(), round = self.round, attempt, ?chunk, "rejected exchange message: {why}");
	}

	/// Process events until `cond` holds or `deadline` passes. Returns whether `cond` held.
	pub(super) async fn wait_until(
		&mut self,
		deadline: Instant,
		cond: impl Fn(&Self) -> bool,
	) -> Result<bool> {
		loop {
			if cond(self) {
				return Ok(true);
			}
			let now = Instant::now();
			if now >= deadline {
				return Ok(false);
			}
			match tokio::time::timeout(deadline - now, self.events.recv()).await {
				Ok(Some(ev)) => self.ingest(ev),
				Ok(None) => bail!("network task stopped"),
				Err(_) => return Ok(cond(self)),
			}
		}
	}

	/// Keep handling network events (hellos, early messages for the next round) until `until`,
	/// without starting a round.
	pub async fn idle(&mut self, until: Instant) -> Result<()> {
		self.wait_until(until, |_| false).await.map(|_| ())
	}

	/// Drain pending events without waiting.
	pub(super) fn drain(&mut self) {
		while let Ok(ev) = self.events.try_recv() {
			self.ingest(ev);
		}
	}

	/// Keys expected to contribute to the current round (connected, announced, joined).
	pub(super) fn expected(&self) -> BTreeSet<PublicKey> {
		let mut s: BTreeSet<PublicKey> = self
			.bindings
			.iter()
			.filter(|(k, p)| {
				self.connected.contains(p) && self.joining.get(*k).is_some_and(|j| *j <= self.round)
			})
			.map(|(k, _)| *k)
			.collect();
		s.insert(self.me);
		s
	}
}

/// Whether `who` may send an exchange message bound to `proposal` (about `chunk`, for the
/// per-chunk messages) in an attempt whose agreed proposal has hash `agreed` and
/// participants `parts`: the hashes must match and the sender must be a participant
/// (`Chunk`) or the chunk's owner, participant number `chunk` (`Norms`, `Reduced`).
fn check_exchange(
	agreed: &Hash32,
	parts: &[Participant],
	who: &PublicKey,
	proposal: Hash32,
	chunk: Option<u32>,
) -> std::result::Result<(), &'static str> {
	if proposal != *agreed {
		return Err("bound to another proposal");
	}
	match chunk {
		None if parts.iter().any(|p| p.who == *who) => Ok(()),
		None => Err("sender is not a participant"),
		Some(c) if parts.get(c as usize).is_some_and(|p| p.who == *who) => Ok(()),
		Some(_) => Err("sender does not own the chunk"),
	}
}

#[cfg(test)]
mod tests {
	#![allow(clippy::unwrap_used)]
	use super::*;
	use crate::signing::Keys;

	fn part(suri: &str) -> Participant {
		Participant {
			who: Keys::from_suri(suri).unwrap().public(),
			peer_id: Vec::new(),
			samples: 1,
			root: [0; 32],
			len: 1,
			compression: 0,
			base_model: [0; 32],
			ready_sig: [0; 64],
		}
	}

	#[test]
	fn exchange_messages_only_from_owner_of_agreed_proposal() {
		let parts = vec![part("//Bob"), part("//Alice")];
		let (bob, alice) = (parts[0].who, parts[1].who);
		let eve = part("//Eve").who;
		let h = proposal_hash(0, 0, &parts);
		assert_eq!(check_exchange(&h, &parts, &bob, h, Some(0)), Ok(()));
		assert_eq!(check_exchange(&h, &parts, &alice, h, Some(1)), Ok(()));
		assert!(check_exchange(&h, &parts, &alice, h, Some(0)).is_err());
		assert!(check_exchange(&h, &parts, &eve, h, Some(0)).is_err());
		assert!(check_exchange(&h, &parts, &bob, h, Some(2)).is_err());
		assert!(check_exchange(&h, &parts, &bob, [1; 32], Some(0)).is_err());
		assert_eq!(check_exchange(&h, &parts, &alice, h, None), Ok(()));
		assert!(check_exchange(&h, &parts, &eve, h, None).is_err());
	}
}
