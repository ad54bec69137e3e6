//! The simulation's checkers (see the module docs): safety as it goes (each honest message
//! signed once, agreement, validity and certificates at every commit) and liveness and evidence
//! at the end.

use std::collections::BTreeSet;

use cdrchain_runtime::block::{CommitCertificate, Vote, VoteKind};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::Height;

use super::{message_digest, Behaviour, Event, World};
use crate::messages::{ConsensusMessage, Evidence, SignedVote};

impl World {
    /// Safety: an honest validator never signs two different messages for one (height, round,
    /// step), across all its lives, even if nobody saw both.
    pub(super) fn check_signed_once(&mut self, i: usize, message: &ConsensusMessage) {
        if !self.honest(i) {
            return;
        }
        let slot = match message {
            ConsensusMessage::Proposal(_) => 0,
            ConsensusMessage::Vote(v) if v.vote.kind == VoteKind::Prevote => 1,
            ConsensusMessage::Vote(_) => 2,
        };
        let key = (i, message.height().0, message.round().0, slot);
        match self.honest_signed.get(&key) {
            Some(first) if first != message => self.violations.push(format!(
                "SAFETY: honest v{i} signed two different messages: {} and {}",
                first.describe(),
                message.describe()
            )),
            Some(_) => {}
            None => {
                self.honest_signed.insert(key, message.clone());
            }
        }
    }

    /// Evidence validator `i` emitted verifies and accuses a Byzantine validator; it is recorded
    /// for the evidence check at the end.
    pub(super) fn check_evidence_emitted(&mut self, i: usize, evidence: Evidence) {
        if let Err(error) = evidence.verify(self.set_at(evidence.height().0)) {
            self.violations.push(format!("v{i} emitted evidence that does not verify: {error}"));
        }
        let offender = evidence.offender().clone();
        let culprit = self.nodes.iter().find(|n| n.id == offender).map(|n| n.behaviour);
        if culprit == Some(Behaviour::Honest) {
            self.violations.push(format!("v{i} accused honest validator {offender}: {evidence:?}"));
        }
        self.nodes[i].evidence.insert((offender, evidence.height(), evidence.round(), evidence.step()));
    }

    /// Checks and records a commit: agreement, validity, certificate.
    pub(super) fn commit(
        &mut self,
        i: usize,
        height: Height,
        hash: Hash32,
        certificate: CommitCertificate,
        how: &str,
    ) {
        let expected = self.nodes[i].chain.len() as u64 + 1;
        if height.0 != expected {
            self.violations
                .push(format!("v{i} committed height {height} by {how} but its next height is {expected}"));
            return;
        }
        if let Some(first) = self.decided.get(&height.0) {
            if *first != hash {
                self.violations.push(format!(
                    "AGREEMENT: v{i} committed {hash} at height {height} by {how}, another validator committed {first}"
                ));
            }
        } else {
            self.decided.insert(height.0, hash);
        }
        if !self.values.is_valid(&hash) {
            self.violations.push(format!("VALIDITY: v{i} committed invalid block {hash} at height {height}"));
        }
        if let Err(reason) = self.check_certificate(&certificate, height, hash) {
            self.violations.push(format!("v{i} committed height {height} with a bad certificate: {reason}"));
        }
        self.nodes[i].chain.push((hash, certificate));
        if self.nodes[i].machine.is_some() {
            self.feed_sets(i, height.0, false);
            let epoch = self.nodes[i].epoch;
            let at = self.now + 10;
            self.push(at, Event::Ready { node: i, epoch });
        }
    }

    /// A certificate is for this block and holds a quorum of valid precommit signatures, each
    /// from a different member of the set in force at its height (no block is certified by a set
    /// not in force at its height).
    pub(super) fn check_certificate(
        &self,
        certificate: &CommitCertificate,
        height: Height,
        hash: Hash32,
    ) -> Result<(), String> {
        if certificate.height != height || certificate.block_hash != hash {
            return Err("certificate is for another block".into());
        }
        let validators = self.set_at(height.0);
        let mut signers = BTreeSet::new();
        for entry in &certificate.signatures {
            let vote = SignedVote {
                vote: Vote {
                    kind: VoteKind::Precommit,
                    height,
                    round: certificate.round,
                    block_hash: Some(hash),
                },
                voter: entry.authority.clone(),
                signature: entry.signature,
            };
            validators.verify_vote(&vote).map_err(|e| e.to_string())?;
            if !signers.insert(entry.authority.clone()) {
                return Err(format!("{} signed twice", entry.authority));
            }
        }
        if signers.len() < validators.quorum() {
            return Err(format!("{} signatures, {} needed", signers.len(), validators.quorum()));
        }
        Ok(())
    }

    /// Progress: once the network has healed, every honest validator reached the target height.
    pub(super) fn check_progress(&mut self) {
        let target = self.config.target_height as usize;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.behaviour == Behaviour::Honest && node.chain.len() < target {
                self.violations.push(format!(
                    "PROGRESS: honest v{i} reached height {} of {target} by {} ms (network healed at {} ms)",
                    node.chain.len(),
                    self.now,
                    self.heal_at
                ));
            }
        }
    }

    /// Evidence: every equivocation both halves of which an honest validator handled at that
    /// height (in one life) is in its evidence.
    pub(super) fn check_evidence(&mut self) {
        for (first, second) in &self.equivocations {
            let (d1, d2) = (message_digest(first), message_digest(second));
            for (i, node) in self.nodes.iter().enumerate() {
                if node.behaviour != Behaviour::Honest {
                    continue;
                }
                let both = node.handled_epoch.get(&d1).is_some_and(|e| node.handled.contains(&(*e, d2)));
                if !both {
                    continue;
                }
                let step = match first {
                    ConsensusMessage::Proposal(_) => "proposal",
                    ConsensusMessage::Vote(v) if v.vote.kind == VoteKind::Prevote => "prevote",
                    ConsensusMessage::Vote(_) => "precommit",
                };
                let key = (first.signer().clone(), first.height(), first.round(), step);
                if !node.evidence.contains(&key) {
                    self.violations.push(format!(
                        "EVIDENCE: v{i} handled both halves of {}'s {step} equivocation at height {} round {} but recorded no evidence",
                        key.0, key.1, key.2 .0
                    ));
                }
            }
        }
    }
}
