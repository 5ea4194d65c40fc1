//! Agreement on an attempt's participant set: who proposes, building and checking
//! proposals against the signed `Ready` messages.

use super::*;

impl<T: LocalTrainer> Peer<T> {
	/// Keys not eligible this attempt (suspected, reported, equivocating).
	pub(super) fn excluded(&self, local_suspects: &BTreeSet<PublicKey>) -> BTreeSet<PublicKey> {
		local_suspects
			.iter()
			.chain(self.st.suspects_reported.iter())
			.chain(self.st.equivocators.iter())
			.copied()
			.filter(|k| *k != self.me)
			.collect()
	}

	/// Who should propose the attempt: the expected, eligible peer of lowest proposer rank
	/// (rotating per round and attempt, see [`crate::p2p::roles`]).
	pub(super) fn proposer(&self, attempt: u32, local_suspects: &BTreeSet<PublicKey>) -> PublicKey {
		let excluded = self.excluded(local_suspects);
		let eligible: Vec<PublicKey> = self.expected().difference(&excluded).copied().collect();
		let role = Role::Proposer { attempt };
		roles::in_rank_order(self.cfg.job_id, self.round, role, &eligible)
			.first()
			.copied()
			.unwrap_or(self.me)
	}

	pub(super) fn ready_keys(
		&self,
		attempt: u32,
		local_suspects: &BTreeSet<PublicKey>,
	) -> BTreeSet<PublicKey> {
		let excluded = self.excluded(local_suspects);
		self.st
			.readies
			.keys()
			.filter(|(a, k)| *a == attempt && !excluded.contains(k))
			.map(|(_, k)| *k)
			.collect()
	}

	/// Wait for the attempt's proposal (or make it). `None`: we are not a participant.
	pub(super) async fn agree(
		&mut self,
		attempt: u32,
		my_suspects: &BTreeSet<PublicKey>,
	) -> Result<Option<Vec<Participant>>> {
		let timeout = self.cfg.round_timeout;
		let ready_deadline = Instant::now() + timeout;
		let mut local_suspects = my_suspects.clone();
		// Round 0 also waits for the configured number of initial peers to be ready.
		let initial = if self.round == 0 { self.cfg.initial_peers } else { 0 };
		loop {
			let proposer = self.proposer(attempt, &local_suspects);
			if proposer == self.me {
				let ls = &local_suspects;
				let all_ready = |s: &Self| {
					let r = s.ready_keys(attempt, ls);
					let ex = s.excluded(ls);
					r.len() >= initial && s.expected().difference(&ex).all(|k| r.contains(k))
				};
				self.wait_until(ready_deadline, |s| {
					all_ready(s) || s.st.proposals.contains_key(&attempt)
				})
				.await?;
				if let Some(p) = self.take_proposal(attempt) {
					return Ok(p);
				}
				let excluded = self.excluded(&local_suspects);
				let mut participants = self.build_proposal(attempt, &excluded);
				if participants.len() < self.cfg.min_peers {
					tracing::warn!(
						have = participants.len(),
						min = self.cfg.min_peers,
						"not enough ready peers"
					);
					let more = Instant::now() + timeout;
					let min = self.cfg.min_peers;
					self.wait_until(more, |s| s.ready_keys(attempt, ls).len() >= min).await?;
					participants = self.build_proposal(attempt, &excluded);
					if participants.len() < min {
						bail!(
							"round {}: only {} ready peers, need {}",
							self.round,
							participants.len(),
							min
						);
					}
				}
				return self.propose(attempt, participants).map(Some);
			}
			// Wait for the proposer; if it stays silent past the deadline, suspect it.
			let dl = ready_deadline.max(Instant::now()) + timeout / 2;
			let ls = &local_suspects;
			let got = self
				.wait_until(dl, |s| {
					s.st.proposals.contains_key(&attempt) || s.proposer(attempt, ls) != proposer
				})
				.await?;
			if let Some(p) = self.take_proposal(attempt) {
				return Ok(p);
			}
			if !got {
				tracing::warn!(proposer = %short(&proposer), "no proposal in time; suspecting the proposer");
				local_suspects.insert(proposer);
			}
		}
	}

	/// A proposal may only list members of the job, each exactly as its own signed `Ready`
	/// for the attempt said (root, samples, peer id), where this peer has that `Ready`. An
	/// entry that differs from this peer's copy stands if it carries the member's signature
	/// of what it states: then the member signed two different `Ready`s (it equivocated), and
	/// the proposer only passed one of them on. Without that signature, the proposer lied.
	pub(super) fn check_proposal(
		&self,
		attempt: u32,
		participants: &[Participant],
	) -> Result<(), String> {
		for p in participants {
			if !self.is_member(&p.who) {
				return Err(format!("lists {}, not a member of the job", short(&p.who)));
			}
			if let Some(r) = self.st.readies.get(&(attempt, p.who)) {
				let same = r.root == p.root
					&& r.samples == p.samples
					&& peer_id_bytes(&r.peer_id) == p.peer_id;
				if !same && !p.ready_is_signed(self.cfg.job_id, self.round, attempt) {
					return Err(format!("misstates the ready message of {}", short(&p.who)));
				}
				if !same {
					tracing::warn!(who = %short(&p.who), attempt, "a participant signed two different ready messages; following the proposal");
				}
			}
		}
		Ok(())
	}

	pub(super) fn take_proposal(&mut self, attempt: u32) -> Option<Option<Vec<Participant>>> {
		let (proposer, parts) = self.st.proposals.get(&attempt)?.clone();
		tracing::debug!(proposer = %short(&proposer), n = parts.len(), attempt, "proposal");
		if parts.iter().any(|p| p.who == self.me) {
			for p in &parts {
				if let Ok(pid) = PeerId::from_bytes(&p.peer_id) {
					self.bindings.entry(p.who).or_insert(pid);
				}
			}
			Some(Some(parts))
		} else {
			Some(None)
		}
	}

	pub(super) fn build_proposal(
		&mut self,
		attempt: u32,
		excluded: &BTreeSet<PublicKey>,
	) -> Vec<Participant> {
		let len = self.params_len as u32;
		let tag = self.cfg.compression.tag();
		let mut out = Vec::new();
		for ((a, who), r) in &self.st.readies {
			if *a != attempt || excluded.contains(who) {
				continue;
			}
			let reachable = *who == self.me
				|| self.bindings.get(who).is_some_and(|p| self.connected.contains(p));
			if !reachable {
				tracing::warn!(who = %short(who), "leaving out a ready peer that disconnected");
				continue;
			}
			if r.len != len || r.compression != tag {
				Metrics::inc(&self.net.metrics().updates_rejected);
				tracing::warn!(who = %short(who), len = r.len, compression = r.compression, "rejecting update of the wrong shape");
				continue;
			}
			out.push(Participant {
				who: *who,
				peer_id: peer_id_bytes(&r.peer_id),
				samples: r.samples,
				root: r.root,
				len: r.len,
				compression: r.compression,
				base_model: r.base_model,
				ready_sig: r.sig,
			});
		}
		out
	}

	pub(super) fn propose(
		&mut self,
		attempt: u32,
		participants: Vec<Participant>,
	) -> Result<Vec<Participant>> {
		tracing::info!(
			round = self.round,
			attempt,
			n = participants.len(),
			"proposing participant set"
		);
		self.net
			.publish(self.seal(&Body::Proposal { attempt, participants: participants.clone() }))?;
		self.st.proposals.insert(attempt, (self.me, participants.clone()));
		Ok(participants)
	}
}
