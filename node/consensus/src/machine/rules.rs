//! The upon-rules of Algorithm 1 (lines 22–55), each labelled with the lines it implements,
//! evaluated after every input until none fires. Each rule returns true only when it changed the
//! state.

use cdrchain_runtime::block::{CommitCertificate, CommitSignature, VoteKind};
use cdrchain_runtime::codec::BoundedVec;

use super::{Consensus, Once, MAX_RULE_PASSES};
use crate::messages::SignedProposal;
use crate::types::{Decision, Output, Step, TimeoutKind};

impl Consensus {
    /// Fires the upon-rules, in this order, until none fires.
    pub(super) fn evaluate(&mut self, out: &mut Vec<Output>) {
        // Each rule returns true only when it changed the state, and none can fire forever, so
        // this terminates; the bound is a second guard.
        for _ in 0..MAX_RULE_PASSES {
            let fired = self.rule_decide(out)
                || self.rule_skip_round(out)
                || self.rule_prevote_proposal(out)
                || self.rule_prevote_pol(out)
                || self.rule_prevote_timer(out)
                || self.rule_lock(out)
                || self.rule_precommit_nil(out)
                || self.rule_precommit_timer(out);
            if !fired {
                return;
            }
        }
        debug_assert!(false, "the upon-rules still fired after {MAX_RULE_PASSES} passes");
    }

    /// The first proposal of the current round, if its block has been judged.
    fn current_proposal(&self) -> Option<(&SignedProposal, Option<bool>)> {
        let proposal = self.proposals.get(&self.round)?.first()?;
        Some((proposal, self.validity.get(&proposal.proposal.block_hash).copied()))
    }

    /// Lines 49–54: upon PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)), decide v.
    fn rule_decide(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum = self.validators.quorum();
        let mut found = None;
        for (round, votes) in self.votes.rounds() {
            for hash in votes.values_with(VoteKind::Precommit, quorum) {
                let proposed = self
                    .proposals
                    .get(round)
                    .is_some_and(|list| list.iter().any(|p| p.proposal.block_hash == hash));
                if proposed && self.validity.get(&hash) == Some(&true) {
                    let signatures: Vec<CommitSignature> = votes
                        .votes_for(VoteKind::Precommit, &Some(hash))
                        .into_iter()
                        .map(|v| CommitSignature { authority: v.voter.clone(), signature: v.signature })
                        .collect();
                    found = Some((*round, hash, signatures));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some((round, block_hash, signatures)) = found else { return false };
        let Ok(signatures) = BoundedVec::new(signatures) else { return false };
        let certificate = CommitCertificate { height: self.height, round, block_hash, signatures };
        out.push(Output::Decide(Decision { height: self.height, round, block_hash, certificate }));
        match self.height.next() {
            Some(next) => self.enter_height(next, out),
            None => return false,
        }
        true
    }

    /// Line 55: upon f+1 messages of a later round, StartRound(that round).
    fn rule_skip_round(&mut self, out: &mut Vec<Output>) -> bool {
        let threshold = self.validators.one_honest();
        let target = self
            .votes
            .rounds()
            .filter(|(round, votes)| **round > self.round && votes.senders() >= threshold)
            .map(|(round, _)| *round)
            .max();
        match target {
            Some(round) => {
                self.ready = true;
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// Lines 22–27: upon PROPOSAL(h, r, v, -1) while step = propose, prevote v if it is valid
    /// and we are unlocked or locked on v; otherwise prevote nil.
    fn rule_prevote_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((proposal, Some(valid))) = self.current_proposal() else { return false };
        if proposal.proposal.pol_round.is_some() {
            return false;
        }
        let v = proposal.proposal.block_hash;
        let acceptable = valid && self.locked.is_none_or(|(_, locked)| locked == v);
        self.vote(VoteKind::Prevote, acceptable.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 28–33: upon PROPOSAL(h, r, v, vr) and 2f+1 PREVOTE(h, vr, id(v)) while step =
    /// propose and 0 ≤ vr < r, prevote v if it is valid and our lock is no newer than vr (or is
    /// on v); otherwise prevote nil.
    fn rule_prevote_pol(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((proposal, Some(valid))) = self.current_proposal() else { return false };
        let Some(vr) = proposal.proposal.pol_round else { return false };
        if vr >= self.round {
            return false;
        }
        let v = proposal.proposal.block_hash;
        let quorum = self.validators.quorum();
        let polka = self.votes.round(vr).is_some_and(|r| r.count_for(VoteKind::Prevote, &Some(v)) >= quorum);
        if !polka {
            return false;
        }
        let acceptable =
            valid && self.locked.is_none_or(|(locked_round, locked)| locked_round <= vr || locked == v);
        self.vote(VoteKind::Prevote, acceptable.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 34–35: upon 2f+1 PREVOTE(h, r, *) while step = prevote for the first time, schedule
    /// OnTimeoutPrevote.
    fn rule_prevote_timer(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.fired.contains(&(self.round, Once::PrevoteTimer)) {
            return false;
        }
        let count = self.votes.round(self.round).map_or(0, |r| r.count_any(VoteKind::Prevote));
        if count < self.validators.quorum() {
            return false;
        }
        self.fired.insert((self.round, Once::PrevoteTimer));
        self.schedule(TimeoutKind::Prevote, out);
        true
    }

    /// Lines 36–43: upon PROPOSAL(h, r, v, *) and 2f+1 PREVOTE(h, r, id(v)) while valid(v) and
    /// step ≥ prevote for the first time: if step = prevote, lock on v and precommit it; in any
    /// case v becomes the valid value.
    fn rule_lock(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.fired.contains(&(self.round, Once::Lock)) {
            return false;
        }
        let quorum = self.validators.quorum();
        let Some(votes) = self.votes.round(self.round) else { return false };
        let Some(list) = self.proposals.get(&self.round) else { return false };
        let value = list.iter().map(|p| p.proposal.block_hash).find(|v| {
            self.validity.get(v) == Some(&true) && votes.count_for(VoteKind::Prevote, &Some(*v)) >= quorum
        });
        let Some(v) = value else { return false };
        self.fired.insert((self.round, Once::Lock));
        self.valid = Some((self.round, v));
        if self.step == Step::Prevote {
            self.locked = Some((self.round, v));
            // The WAL record written with the precommit carries the lock and the valid value.
            self.vote(VoteKind::Precommit, Some(v), out);
            self.step = Step::Precommit;
        } else {
            // Not needed for safety, but a restart must remember the valid value and its proof
            // so that it can re-propose it.
            out.push(Output::Wal(self.wal_record()));
        }
        true
    }

    /// Lines 44–46: upon 2f+1 PREVOTE(h, r, nil) while step = prevote, precommit nil.
    fn rule_precommit_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let nil = self.votes.round(self.round).map_or(0, |r| r.count_for(VoteKind::Prevote, &None));
        if nil < self.validators.quorum() {
            return false;
        }
        self.vote(VoteKind::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// Lines 47–48: upon 2f+1 PRECOMMIT(h, r, *) for the first time, schedule
    /// OnTimeoutPrecommit.
    fn rule_precommit_timer(&mut self, out: &mut Vec<Output>) -> bool {
        if self.fired.contains(&(self.round, Once::PrecommitTimer)) {
            return false;
        }
        let count = self.votes.round(self.round).map_or(0, |r| r.count_any(VoteKind::Precommit));
        if count < self.validators.quorum() {
            return false;
        }
        self.fired.insert((self.round, Once::PrecommitTimer));
        self.schedule(TimeoutKind::Precommit, out);
        true
    }
}
