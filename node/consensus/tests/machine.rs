//! The state machine driven by hand: one rule at a time, refusals, evidence, restarts; and a
//! property test that no input sequence (with restarts from the WAL anywhere) makes a validator
//! sign two different messages for one (height, round, step), or send one before its WAL record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::collections::BTreeMap;

use cdrchain_consensus::{
    Consensus, ConsensusMessage, Evidence, Input, MessageError, Output, Params, Proposal, Step, Timeout,
    TimeoutKind, Validators, Verdict, WalRecord,
};
use cdrchain_runtime::block::{Vote, VoteKind};
use cdrchain_runtime::crypto::public_key;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const N: usize = 4;

fn keys() -> Vec<(OperatorId, SigningKey)> {
    (0..N)
        .map(|i| {
            let id = OperatorId::new(format!("v{i}")).unwrap();
            (id, SigningKey::from_bytes(&[i as u8 + 1; 32]))
        })
        .collect()
}

fn validators() -> Validators {
    let list = keys().into_iter().map(|(id, key)| (id, public_key(&key))).collect();
    Validators::new(Hash32([7; 32]), list).unwrap()
}

fn value(n: u8) -> Hash32 {
    Hash32([n; 32])
}

fn vote(from: usize, kind: VoteKind, height: u64, round: u32, block: Option<Hash32>) -> ConsensusMessage {
    let (id, key) = &keys()[from];
    let vote = Vote { kind, height: Height(height), round: Round(round), block_hash: block };
    ConsensusMessage::Vote(validators().sign_vote(key, id, vote))
}

fn proposal(from: usize, height: u64, round: u32, block: Hash32, pol: Option<u32>) -> ConsensusMessage {
    let (id, key) = &keys()[from];
    let p = Proposal {
        height: Height(height),
        round: Round(round),
        block_hash: block,
        pol_round: pol.map(Round),
    };
    ConsensusMessage::Proposal(validators().sign_proposal(key, id, p))
}

/// Validator `me` at height 1 (whose round-0 proposer is v1), made ready.
fn machine(me: usize) -> Consensus {
    let (id, key) = keys().swap_remove(me);
    let (mut m, _) = Consensus::new(validators(), Some((id, key)), Params::default(), Height(1), None);
    m.handle(Input::Ready);
    m
}

fn broadcasts(outputs: &[Output]) -> Vec<ConsensusMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn own_votes(outputs: &[Output], kind: VoteKind) -> Vec<Option<Hash32>> {
    broadcasts(outputs)
        .into_iter()
        .filter_map(|m| match m {
            ConsensusMessage::Vote(v) if v.vote.kind == kind => Some(v.vote.block_hash),
            _ => None,
        })
        .collect()
}

fn feed(m: &mut Consensus, message: ConsensusMessage) -> (Vec<Output>, Verdict) {
    m.handle(Input::Message(message))
}

#[test]
fn happy_path_proposer_builds_and_all_commit() {
    // v1 proposes at height 1 round 0.
    let (id, key) = keys().swap_remove(1);
    let (mut proposer, _) = Consensus::new(validators(), Some((id, key)), Params::default(), Height(1), None);
    let (out, _) = proposer.handle(Input::Ready);
    assert!(out.contains(&Output::Build { height: Height(1), round: Round(0) }), "{out:?}");
    let (out, _) = proposer.handle(Input::Built { height: Height(1), round: Round(0), block_hash: value(9) });
    let sent = broadcasts(&out);
    assert!(matches!(&sent[0], ConsensusMessage::Proposal(p) if p.proposal.block_hash == value(9)));
    // Its own proposal makes it prevote the block at once.
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![Some(value(9))]);

    // Validator v0 receives the proposal, executes it, prevotes it.
    let mut m = machine(0);
    let (out, verdict) = feed(&mut m, sent[0].clone());
    assert_eq!(verdict, Verdict::Accepted);
    assert!(out.contains(&Output::Execute { height: Height(1), block_hash: value(9) }), "{out:?}");
    let (out, _) = m.handle(Input::Executed { height: Height(1), block_hash: value(9), valid: true });
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![Some(value(9))]);
    assert_eq!(m.step(), Step::Prevote);

    // Two more prevotes make a quorum (3 of 4): lock and precommit.
    feed(&mut m, vote(1, VoteKind::Prevote, 1, 0, Some(value(9))));
    let (out, _) = feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, Some(value(9))));
    assert_eq!(own_votes(&out, VoteKind::Precommit), vec![Some(value(9))]);
    assert_eq!(m.locked(), Some((Round(0), value(9))));

    // Two more precommits: decided, with a certificate of three signatures, and on to height 2.
    feed(&mut m, vote(1, VoteKind::Precommit, 1, 0, Some(value(9))));
    let (out, _) = feed(&mut m, vote(3, VoteKind::Precommit, 1, 0, Some(value(9))));
    let decision = out
        .iter()
        .find_map(|o| match o {
            Output::Decide(d) => Some(d.clone()),
            _ => None,
        })
        .expect("decided");
    assert_eq!((decision.height, decision.block_hash), (Height(1), value(9)));
    assert_eq!(decision.certificate.signatures.len(), 3);
    for entry in &decision.certificate.signatures {
        let v = cdrchain_consensus::SignedVote {
            vote: decision.certificate.vote(),
            voter: entry.authority.clone(),
            signature: entry.signature,
        };
        validators().verify_vote(&v).unwrap();
    }
    assert_eq!((m.height(), m.round(), m.step()), (Height(2), Round(0), Step::Propose));
    assert_eq!(m.locked(), None);
}

#[test]
fn invalid_block_gets_a_nil_prevote_and_a_timeout_leads_to_the_next_round() {
    let mut m = machine(0);
    feed(&mut m, proposal(1, 1, 0, value(5), None));
    let (out, _) = m.handle(Input::Executed { height: Height(1), block_hash: value(5), valid: false });
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![None]);
    // A quorum of nil prevotes: precommit nil.
    feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, None));
    let (out, _) = feed(&mut m, vote(3, VoteKind::Prevote, 1, 0, None));
    assert_eq!(own_votes(&out, VoteKind::Precommit), vec![None]);
    // A quorum of precommits of any kind schedules the precommit timeout; it moves to round 1.
    feed(&mut m, vote(2, VoteKind::Precommit, 1, 0, None));
    let (out, _) = feed(&mut m, vote(3, VoteKind::Precommit, 1, 0, None));
    let timeout = Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Precommit };
    assert!(out.iter().any(|o| matches!(o, Output::Schedule { timeout: t, .. } if *t == timeout)), "{out:?}");
    m.handle(Input::Timeout(timeout));
    assert_eq!((m.round(), m.step()), (Round(1), Step::Propose));
}

#[test]
fn propose_timeout_prevotes_nil_and_stale_timeouts_do_nothing() {
    let mut m = machine(0);
    let stale = Timeout { height: Height(1), round: Round(5), kind: TimeoutKind::Propose };
    let (out, _) = m.handle(Input::Timeout(stale));
    assert!(broadcasts(&out).is_empty());
    let (out, _) =
        m.handle(Input::Timeout(Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Propose }));
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![None]);
    assert_eq!(m.step(), Step::Prevote);
}

#[test]
fn a_locked_validator_prevotes_nil_for_another_block_unless_shown_a_newer_polka() {
    let mut m = machine(0);
    feed(&mut m, proposal(1, 1, 0, value(1), None));
    m.handle(Input::Executed { height: Height(1), block_hash: value(1), valid: true });
    feed(&mut m, vote(1, VoteKind::Prevote, 1, 0, Some(value(1))));
    feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, Some(value(1))));
    assert_eq!(m.locked(), Some((Round(0), value(1))));
    m.handle(Input::Timeout(Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Precommit }));
    assert_eq!(m.round(), Round(1));

    // Round 1 (proposer v2) offers another block without a proof of lock: nil.
    feed(&mut m, proposal(2, 1, 1, value(2), None));
    let (out, _) = m.handle(Input::Executed { height: Height(1), block_hash: value(2), valid: true });
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![None]);
    m.handle(Input::Timeout(Timeout { height: Height(1), round: Round(1), kind: TimeoutKind::Prevote }));
    m.handle(Input::Timeout(Timeout { height: Height(1), round: Round(1), kind: TimeoutKind::Precommit }));
    assert_eq!(m.round(), Round(2));

    // Round 2 (proposer v3) re-proposes value 2 with a polka from round 1, which we now see:
    // our lock (round 0) is older, so we prevote it (line 28).
    for from in [1, 2, 3] {
        feed(&mut m, vote(from, VoteKind::Prevote, 1, 1, Some(value(2))));
    }
    let (out, _) = feed(&mut m, proposal(3, 1, 2, value(2), Some(1)));
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![Some(value(2))]);
}

#[test]
fn refusals_are_precise() {
    let mut m = machine(0);
    // Not the proposer of (1, 0): v1 is.
    let (_, verdict) = feed(&mut m, proposal(2, 1, 0, value(1), None));
    assert!(matches!(verdict, Verdict::Rejected(MessageError::NotTheProposer { .. })), "{verdict:?}");
    // A forged signature.
    let mut forged = vote(2, VoteKind::Prevote, 1, 0, None);
    if let ConsensusMessage::Vote(v) = &mut forged {
        v.vote.block_hash = Some(value(3));
    }
    let (_, verdict) = feed(&mut m, forged);
    assert!(matches!(verdict, Verdict::Rejected(MessageError::BadSignature { .. })), "{verdict:?}");
    // Not an authority.
    let outsider = OperatorId::new("mallory").unwrap();
    let key = SigningKey::from_bytes(&[99; 32]);
    let v = Vote { kind: VoteKind::Prevote, height: Height(1), round: Round(0), block_hash: None };
    let message = ConsensusMessage::Vote(validators().sign_vote(&key, &outsider, v));
    let (_, verdict) = feed(&mut m, message);
    assert!(matches!(verdict, Verdict::Rejected(MessageError::NotAnAuthority { .. })), "{verdict:?}");
    // A proof-of-lock round that is not earlier than the round.
    let (_, verdict) = feed(&mut m, proposal(1, 1, 0, value(1), Some(0)));
    assert!(matches!(verdict, Verdict::Rejected(MessageError::BadPolRound { .. })), "{verdict:?}");
    // Another chain's signature (another genesis hash) does not verify here.
    let other = Validators::new(Hash32([8; 32]), validators().list().to_vec()).unwrap();
    let (id, key) = &keys()[2];
    let v = Vote { kind: VoteKind::Prevote, height: Height(1), round: Round(0), block_hash: None };
    let (_, verdict) = feed(&mut m, ConsensusMessage::Vote(other.sign_vote(key, id, v)));
    assert!(matches!(verdict, Verdict::Rejected(MessageError::BadSignature { .. })), "{verdict:?}");
    // A duplicate is ignored; a message for a later height says we are behind.
    feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, None));
    let (_, verdict) = feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, None));
    assert_eq!(verdict, Verdict::Ignored);
    // Far ahead: a reason to sync, not forwarded; the next height: kept and forwarded.
    let (out, verdict) = feed(&mut m, vote(2, VoteKind::Prevote, 9, 0, None));
    assert_eq!(verdict, Verdict::Ignored);
    assert!(out.iter().any(|o| matches!(o, Output::Ahead { height: Height(9), .. })), "{out:?}");
    let (out, verdict) = feed(&mut m, vote(2, VoteKind::Prevote, 2, 0, None));
    assert_eq!(verdict, Verdict::Accepted);
    assert!(out.iter().any(|o| matches!(o, Output::Ahead { height: Height(2), .. })), "{out:?}");
    let (_, verdict) = feed(&mut m, vote(2, VoteKind::Prevote, 2, 0, None));
    assert_eq!(verdict, Verdict::Ignored, "a duplicate of a buffered message");
}

#[test]
fn equivocations_become_verifiable_evidence() {
    let mut m = machine(0);
    feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, Some(value(1))));
    let (out, verdict) = feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, Some(value(2))));
    assert_eq!(verdict, Verdict::Accepted, "the second half is forwarded so others see it too");
    let evidence: Vec<Evidence> = out
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    evidence[0].verify(&validators()).unwrap();
    assert_eq!((evidence[0].offender().as_str(), evidence[0].step()), ("v2", "prevote"));

    feed(&mut m, proposal(1, 1, 0, value(1), None));
    let (out, _) = feed(&mut m, proposal(1, 1, 0, value(2), None));
    let e = out.iter().find_map(|o| match o {
        Output::Evidence(e) => Some(e.clone()),
        _ => None,
    });
    let e = e.expect("proposal evidence");
    e.verify(&validators()).unwrap();
    assert_eq!(e.step(), "proposal");

    // Evidence that is not an equivocation does not verify.
    if let (ConsensusMessage::Vote(a), ConsensusMessage::Vote(b)) =
        (vote(2, VoteKind::Prevote, 1, 0, None), vote(3, VoteKind::Prevote, 1, 0, Some(value(1))))
    {
        assert!(Evidence::ConflictingVotes { first: a.clone(), second: b }.verify(&validators()).is_err());
        assert!(Evidence::ConflictingVotes { first: a.clone(), second: a }.verify(&validators()).is_err());
    }
}

#[test]
fn f_plus_one_messages_of_a_later_round_skip_to_it() {
    let mut m = machine(0);
    feed(&mut m, vote(2, VoteKind::Prevote, 1, 3, None));
    assert_eq!(m.round(), Round(0));
    feed(&mut m, vote(3, VoteKind::Precommit, 1, 3, None));
    assert_eq!(m.round(), Round(3));
}

#[test]
fn round_zero_waits_for_work_or_another_validator() {
    let (id, key) = keys().swap_remove(0);
    let (mut m, out) = Consensus::new(validators(), Some((id, key)), Params::default(), Height(1), None);
    assert!(!out.iter().any(|o| matches!(o, Output::Schedule { .. })), "idle: no timers yet: {out:?}");
    let (out, _) = feed(&mut m, vote(2, VoteKind::Prevote, 1, 0, None));
    let propose = Timeout { height: Height(1), round: Round(0), kind: TimeoutKind::Propose };
    assert!(
        out.iter().any(|o| matches!(o, Output::Schedule { timeout, .. } if *timeout == propose)),
        "{out:?}"
    );
}

#[test]
fn a_restarted_validator_resends_what_it_signed_and_signs_nothing_else() {
    let mut m = machine(0);
    feed(&mut m, proposal(1, 1, 0, value(1), None));
    let (out, _) = m.handle(Input::Executed { height: Height(1), block_hash: value(1), valid: true });
    let record = out
        .iter()
        .find_map(|o| match o {
            Output::Wal(r) => Some(r.clone()),
            _ => None,
        })
        .expect("WAL record before the prevote");
    // Crash here. The restarted machine resumes in the prevote step and sends the same prevote.
    let (id, key) = keys().swap_remove(0);
    let (mut again, out) =
        Consensus::new(validators(), Some((id, key)), Params::default(), Height(1), Some(record));
    assert_eq!(own_votes(&out, VoteKind::Prevote), vec![Some(value(1))]);
    assert_eq!(again.step(), Step::Prevote);
    // A prevote timeout now leads to a nil precommit, never to a second prevote.
    let (out, _) = again.handle(Input::Timeout(Timeout {
        height: Height(1),
        round: Round(0),
        kind: TimeoutKind::Propose,
    }));
    assert!(own_votes(&out, VoteKind::Prevote).is_empty(), "{out:?}");
    // A record of another height is ignored.
    let stale = WalRecord {
        height: Height(0),
        round: Round(3),
        step: Step::Precommit,
        locked: None,
        valid: None,
        signed: Vec::new(),
        polka: Vec::new(),
    };
    let (id, key) = keys().swap_remove(0);
    let (fresh, _) = Consensus::new(validators(), Some((id, key)), Params::default(), Height(1), Some(stale));
    assert_eq!((fresh.round(), fresh.step()), (Round(0), Step::Propose));
}

#[derive(Debug, Clone)]
enum Action {
    Message { from: usize, kind: u8, round: u32, value: u8 },
    Timeout { round: u32, kind: u8 },
    Executed { value: u8, valid: bool },
    Built { round: u32, value: u8 },
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1..N, 0u8..3, 0u32..3, 0u8..4).prop_map(|(from, kind, round, value)| Action::Message { from, kind, round, value }),
        3 => (0u32..3, 0u8..3).prop_map(|(round, kind)| Action::Timeout { round, kind }),
        2 => (1u8..4, any::<bool>()).prop_map(|(value, valid)| Action::Executed { value, valid }),
        1 => (0u32..3, 1u8..4).prop_map(|(round, value)| Action::Built { round, value }),
        1 => Just(Action::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, and wherever the validator restarts from its WAL, it never signs two
    /// different messages for one (height, round, step), and never sends a message it signed
    /// before a WAL record holding it.
    #[test]
    fn never_equivocates_even_across_restarts(actions in proptest::collection::vec(action(), 1..120)) {
        let me = 0usize;
        let (id, key) = keys().swap_remove(me);
        let new_machine = |wal: Option<WalRecord>, height: Height| {
            Consensus::new(validators(), Some((id.clone(), key.clone())), Params::default(), height, wal)
        };
        let (mut m, mut out) = new_machine(None, Height(1));
        let mut wal: Option<WalRecord> = None;
        let mut signed: BTreeMap<(u64, u32, u8), ConsensusMessage> = BTreeMap::new();
        let mut check = |outputs: &[Output], wal: &mut Option<WalRecord>| -> Result<(), TestCaseError> {
            for output in outputs {
                match output {
                    Output::Wal(record) => *wal = Some(record.clone()),
                    Output::Broadcast(message) if message.signer() == &keys()[me].0 => {
                        let slot = match message {
                            ConsensusMessage::Proposal(_) => 0,
                            ConsensusMessage::Vote(v) if v.vote.kind == VoteKind::Prevote => 1,
                            ConsensusMessage::Vote(_) => 2,
                        };
                        let key = (message.height().0, message.round().0, slot);
                        if let Some(before) = signed.get(&key) {
                            prop_assert_eq!(before, message, "two different messages for {:?}", key);
                        }
                        signed.insert(key, message.clone());
                        let durable = wal.as_ref().is_some_and(|r| r.height == message.height() && r.signed.contains(message));
                        prop_assert!(durable, "{} sent before its WAL record", message.describe());
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        check(&out, &mut wal)?;
        m.handle(Input::Ready);
        for action in actions {
            let height = m.height();
            out = match action {
                Action::Message { from, kind, round, value } => {
                    let block = (value > 0).then_some(Hash32([value; 32]));
                    let message = match kind {
                        0 => proposal(from, height.0, round, block.unwrap_or(Hash32([1; 32])), None),
                        1 => vote(from, VoteKind::Prevote, height.0, round, block),
                        _ => vote(from, VoteKind::Precommit, height.0, round, block),
                    };
                    // Only the right proposer's proposals are accepted; others are refused.
                    m.handle(Input::Message(message)).0
                }
                Action::Timeout { round, kind } => {
                    let kind = [TimeoutKind::Propose, TimeoutKind::Prevote, TimeoutKind::Precommit][kind as usize];
                    m.handle(Input::Timeout(Timeout { height, round: Round(round), kind })).0
                }
                Action::Executed { value, valid } => {
                    m.handle(Input::Executed { height, block_hash: Hash32([value; 32]), valid }).0
                }
                Action::Built { round, value } => {
                    m.handle(Input::Built { height, round: Round(round), block_hash: Hash32([value; 32]) }).0
                }
                Action::Restart => {
                    let (again, out) = new_machine(wal.clone(), height);
                    m = again;
                    out
                }
            };
            check(&out, &mut wal)?;
        }
    }
}
