//! Interconnect agreements in the state transition: who may propose and accept, versions,
//! commitments, and what the chain keeps (issue #28). The contents are sealed and never read here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{PushError, TxError};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::{
    commitment_of, Action, AgreementRecord, EncryptionKey, Envelope, FinalPeriod, InterconnectError,
    InterconnectTx, PairAgreements, PairStatements, Sealed, StatementRecord,
};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::{Decode, Encode};

fn id(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

fn id_of(name: &str) -> OperatorId {
    id(name)
}

fn tx(chain: &SampleChain, by: &str, action: Action) -> SignedTransaction {
    chain.sign(Transaction::Interconnect(Box::new(InterconnectTx { operator: id(by), action })))
}

fn sealed(content: &[u8]) -> Sealed {
    Sealed {
        commitment: commitment_of(&[9; 32], content),
        envelope: Envelope(BoundedVec::new(vec![1, 2, 3]).unwrap()),
    }
}

fn propose(chain: &SampleChain, by: &str, to: &str, version: u32, content: &[u8]) -> SignedTransaction {
    tx(
        chain,
        by,
        Action::ProposeAgreement {
            counterparty: id(to),
            version,
            dispute_window_days: 30,
            sealed: sealed(content),
        },
    )
}

fn accept(chain: &SampleChain, by: &str, agreement: Hash32, content: &[u8]) -> SignedTransaction {
    tx(chain, by, Action::AcceptAgreement { agreement, commitment: commitment_of(&[9; 32], content) })
}

/// Builds and imports one block; answers what was refused.
fn advance(
    chain: &mut SampleChain,
    time: &mut u64,
    txs: impl FnOnce(&SampleChain) -> Vec<SignedTransaction>,
) -> Vec<PushError> {
    *time += 1_000;
    let txs = txs(chain);
    let (block, _, refused) = chain.build(txs, *time).unwrap();
    chain.import(block).unwrap();
    refused
}

fn refusal(refused: &[PushError]) -> &InterconnectError {
    match refused {
        [PushError::Invalid(TxError::Interconnect(error))] => error,
        other => panic!("expected one interconnect refusal, got {other:?}"),
    }
}

fn read<T: Decode>(chain: &SampleChain, key: &StateKey) -> Option<T> {
    chain.state.get(&key.encode()).unwrap().map(|bytes| T::decode(&mut &bytes[..]).unwrap())
}

/// alice, bob and charlie; alice and bob registered encryption keys, charlie did not.
fn chain_with_keys(time: &mut u64) -> SampleChain {
    let mut chain = SampleChain::new(&["alice", "bob", "charlie"]);
    let keys = vec![
        tx(&chain, "alice", Action::RegisterKey { key: EncryptionKey([1; 32]) }),
        tx(&chain, "bob", Action::RegisterKey { key: EncryptionKey([2; 32]) }),
    ];
    assert!(advance(&mut chain, time, |_| keys).is_empty());
    chain
}

#[test]
fn an_agreement_is_proposed_by_one_and_accepted_by_the_other() {
    let mut time = 0;
    let mut chain = chain_with_keys(&mut time);
    assert_eq!(
        read::<EncryptionKey>(&chain, &StateKey::EncryptionKey(id("bob"))),
        Some(EncryptionKey([2; 32]))
    );
    let proposal = propose(&chain, "alice", "bob", 1, b"v1");
    let agreement = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![proposal]).is_empty());
    let proposed_at = chain.parent.number;

    // The proposer cannot accept its own proposal; an outsider to the pair neither.
    for by in ["alice", "charlie"] {
        let refused = advance(&mut chain, &mut time, |c| vec![accept(c, by, agreement, b"v1")]);
        assert!(matches!(refusal(&refused), InterconnectError::NotCounterparty { .. }), "{by}");
    }
    // The counterparty must name the commitment it opened.
    let refused = advance(&mut chain, &mut time, |c| vec![accept(c, "bob", agreement, b"other")]);
    assert!(matches!(refusal(&refused), InterconnectError::CommitmentDiffers { .. }));

    assert!(advance(&mut chain, &mut time, |c| vec![accept(c, "bob", agreement, b"v1")]).is_empty());
    let record: AgreementRecord = read(&chain, &StateKey::Agreement(agreement)).unwrap();
    assert_eq!((record.a.as_str(), record.b.as_str(), record.version), ("alice", "bob", 1));
    assert_eq!(record.proposed_at, proposed_at);
    assert_eq!(record.accepted_at, Some(chain.parent.number));
    let pair: PairAgreements = read(&chain, &StateKey::PairAgreements(id("alice"), id("bob"))).unwrap();
    assert_eq!(pair.in_force, Some((agreement, 1)));
    assert_eq!(pair.proposals.as_slice(), &[agreement]);

    let refused = advance(&mut chain, &mut time, |c| vec![accept(c, "bob", agreement, b"v1")]);
    assert_eq!(refusal(&refused), &InterconnectError::AlreadyAccepted(agreement));
}

#[test]
fn amendments_take_over_by_version_from_either_side() {
    let mut time = 0;
    let mut chain = chain_with_keys(&mut time);
    let first = propose(&chain, "alice", "bob", 1, b"v1");
    let first_id = first.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![first]).is_empty());
    // Either partner proposes; two proposals may be open at once.
    let second = propose(&chain, "bob", "alice", 2, b"v2");
    let second_id = second.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![second]).is_empty());
    assert!(advance(&mut chain, &mut time, |c| vec![accept(c, "alice", second_id, b"v2")]).is_empty());
    // Version 1 can no longer be accepted or proposed: version 2 is in force.
    let refused = advance(&mut chain, &mut time, |c| vec![accept(c, "bob", first_id, b"v1")]);
    assert_eq!(refusal(&refused), &InterconnectError::StaleVersion { version: 1, in_force: 2 });
    let refused = advance(&mut chain, &mut time, |c| vec![propose(c, "alice", "bob", 2, b"again")]);
    assert_eq!(refusal(&refused), &InterconnectError::StaleVersion { version: 2, in_force: 2 });
    let pair: PairAgreements = read(&chain, &StateKey::PairAgreements(id("alice"), id("bob"))).unwrap();
    assert_eq!(pair.in_force, Some((second_id, 2)));
    assert_eq!(pair.proposals.as_slice(), &[first_id, second_id]);
}

#[test]
fn both_partners_need_an_encryption_key_and_membership() {
    let mut time = 0;
    let mut chain = chain_with_keys(&mut time);
    let refused = advance(&mut chain, &mut time, |c| vec![propose(c, "alice", "charlie", 1, b"x")]);
    assert_eq!(refusal(&refused), &InterconnectError::NoEncryptionKey(id("charlie")));
    let refused = advance(&mut chain, &mut time, |c| vec![propose(c, "charlie", "alice", 1, b"x")]);
    assert_eq!(refusal(&refused), &InterconnectError::NoEncryptionKey(id("charlie")));
    let refused = advance(&mut chain, &mut time, |c| vec![propose(c, "alice", "zed", 1, b"x")]);
    assert_eq!(refusal(&refused), &InterconnectError::UnknownCounterparty(id("zed")));
    let refused = advance(&mut chain, &mut time, |c| vec![propose(c, "alice", "alice", 1, b"x")]);
    assert_eq!(refusal(&refused), &InterconnectError::SelfAgreement(id("alice")));
    let empty = tx(
        &chain,
        "alice",
        Action::ProposeAgreement {
            counterparty: id("bob"),
            version: 1,
            dispute_window_days: 30,
            sealed: Sealed { commitment: Hash32([0; 32]), envelope: Envelope::default() },
        },
    );
    let refused = advance(&mut chain, &mut time, |_| vec![empty]);
    assert_eq!(refusal(&refused), &InterconnectError::EmptyEnvelope);
    let refused = advance(&mut chain, &mut time, |c| vec![accept(c, "bob", Hash32([5; 32]), b"x")]);
    assert_eq!(refusal(&refused), &InterconnectError::NoSuchAgreement(Hash32([5; 32])));
    // Once charlie registers a key, it can agree with alice.
    let key = tx(&chain, "charlie", Action::RegisterKey { key: EncryptionKey([3; 32]) });
    assert!(advance(&mut chain, &mut time, |_| vec![key]).is_empty());
    assert!(advance(&mut chain, &mut time, |c| vec![propose(c, "alice", "charlie", 1, b"x")]).is_empty());
}

#[test]
fn interconnect_transactions_round_trip_through_scale_and_json() {
    let chain = SampleChain::new(&["alice", "bob"]);
    let signed = propose(&chain, "alice", "bob", 7, b"doc");
    let bytes = signed.encode();
    assert_eq!(SignedTransaction::decode(&mut &bytes[..]).unwrap(), signed);
    let json = serde_json::to_value(&signed.transaction).unwrap();
    assert_eq!(json["type"], "interconnect");
    assert_eq!(json["action"]["kind"], "propose-agreement");
    assert_eq!(json["action"]["sealed"]["envelope"], "0x010203");
    assert_eq!(serde_json::from_value::<Transaction>(json).unwrap(), signed.transaction);
}

/// alice and bob with agreement version 1 accepted; answers its id.
fn agreed(time: &mut u64) -> (SampleChain, Hash32) {
    let mut chain = chain_with_keys(time);
    let proposal = propose(&chain, "alice", "bob", 1, b"v1");
    let agreement = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, time, |_| vec![proposal]).is_empty());
    assert!(advance(&mut chain, time, |c| vec![accept(c, "bob", agreement, b"v1")]).is_empty());
    (chain, agreement)
}

fn statement(
    chain: &SampleChain,
    by: &str,
    agreement: Hash32,
    period: (u64, u64),
    content: &[u8],
) -> SignedTransaction {
    let (from_ms, to_ms) = period;
    tx(chain, by, Action::ProposeStatement { agreement, from_ms, to_ms, sealed: sealed(content) })
}

fn sign(chain: &SampleChain, by: &str, statement: Hash32, content: &[u8]) -> SignedTransaction {
    tx(chain, by, Action::SignStatement { statement, commitment: commitment_of(&[9; 32], content) })
}

#[test]
fn a_statement_signed_by_both_is_final_for_its_period() {
    let mut time = 0;
    let (mut chain, agreement) = agreed(&mut time);
    let december = (1_000, 2_000);
    let proposal = statement(&chain, "bob", agreement, december, b"s1");
    let id = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![proposal]).is_empty());
    // A competing proposal for the same period may exist until one is final.
    let rival = statement(&chain, "alice", agreement, (1_500, 2_500), b"s2");
    let rival_id = rival.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![rival]).is_empty());

    for by in ["bob", "charlie"] {
        let refused = advance(&mut chain, &mut time, |c| vec![sign(c, by, id, b"s1")]);
        assert!(matches!(refusal(&refused), InterconnectError::NotTheSigner { .. }), "{by}");
    }
    let refused = advance(&mut chain, &mut time, |c| vec![sign(c, "alice", id, b"other")]);
    assert!(matches!(refusal(&refused), InterconnectError::CommitmentDiffers { .. }));
    assert!(advance(&mut chain, &mut time, |c| vec![sign(c, "alice", id, b"s1")]).is_empty());
    let record: StatementRecord = read(&chain, &StateKey::Statement(id)).unwrap();
    assert_eq!((record.a.as_str(), record.b.as_str()), ("bob", "alice"));
    assert_eq!(record.signed_at, Some(chain.parent.number));
    let refused = advance(&mut chain, &mut time, |c| vec![sign(c, "alice", id, b"s1")]);
    assert_eq!(refusal(&refused), &InterconnectError::AlreadySigned(id));

    // The overlapping rival can no longer be signed, nor a new overlapping statement proposed;
    // the next period can.
    let refused = advance(&mut chain, &mut time, |c| vec![sign(c, "bob", rival_id, b"s2")]);
    assert!(
        matches!(refusal(&refused), InterconnectError::PeriodFinal { statement, .. } if *statement == id)
    );
    let refused =
        advance(&mut chain, &mut time, |c| vec![statement(c, "alice", agreement, (1_999, 3_000), b"x")]);
    assert!(matches!(refusal(&refused), InterconnectError::PeriodFinal { .. }));
    assert!(advance(&mut chain, &mut time, |c| vec![statement(c, "alice", agreement, (2_000, 3_000), b"x")])
        .is_empty());
    let pair: PairStatements = read(&chain, &StateKey::PairStatements(id_of("alice"), id_of("bob"))).unwrap();
    assert_eq!(pair.proposals.len(), 3);
    assert_eq!(pair.final_periods.as_slice(), &[FinalPeriod { from_ms: 1_000, to_ms: 2_000, statement: id }]);
}

#[test]
fn statements_need_an_accepted_agreement_its_partners_and_a_period() {
    let mut time = 0;
    let mut chain = chain_with_keys(&mut time);
    let proposal = propose(&chain, "alice", "bob", 1, b"v1");
    let agreement = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![proposal]).is_empty());
    let refused = advance(&mut chain, &mut time, |c| vec![statement(c, "alice", agreement, (0, 10), b"s")]);
    assert_eq!(refusal(&refused), &InterconnectError::AgreementNotAccepted(agreement));
    assert!(advance(&mut chain, &mut time, |c| vec![accept(c, "bob", agreement, b"v1")]).is_empty());
    let refused = advance(&mut chain, &mut time, |c| vec![statement(c, "charlie", agreement, (0, 10), b"s")]);
    assert!(matches!(refusal(&refused), InterconnectError::NotAPartner { .. }));
    let refused = advance(&mut chain, &mut time, |c| vec![statement(c, "alice", agreement, (10, 10), b"s")]);
    assert_eq!(refusal(&refused), &InterconnectError::EmptyPeriod { from_ms: 10, to_ms: 10 });
    let refused =
        advance(&mut chain, &mut time, |c| vec![statement(c, "alice", Hash32([4; 32]), (0, 10), b"s")]);
    assert_eq!(refusal(&refused), &InterconnectError::NoSuchAgreement(Hash32([4; 32])));
    let refused = advance(&mut chain, &mut time, |c| vec![sign(c, "bob", Hash32([4; 32]), b"s")]);
    assert_eq!(refusal(&refused), &InterconnectError::NoSuchStatement(Hash32([4; 32])));
}

fn dispute_tx(chain: &SampleChain, by: &str, action: Action) -> SignedTransaction {
    tx(chain, by, action)
}

#[test]
fn a_dispute_opens_in_its_window_takes_steps_and_closes_the_period() {
    use cdrchain_runtime::interconnect::dispute::{DisputeError, DisputeRecord, StepKind};
    let mut time = 0;
    let (mut chain, agreement) = agreed(&mut time);
    let proposal = statement(&chain, "alice", agreement, (1_000, 2_000), b"s1");
    let statement_id = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![proposal]).is_empty());
    let open = |c: &SampleChain, by: &str| {
        dispute_tx(c, by, Action::OpenDispute { statement: statement_id, sealed: sealed(b"claim") })
    };
    // Only bob, to whom alice proposed it, disputes it.
    let refused = advance(&mut chain, &mut time, |c| vec![open(c, "alice")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::NotTheOpener { .. })));
    let opening = open(&chain, "bob");
    let dispute = opening.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![opening]).is_empty());
    let refused = advance(&mut chain, &mut time, |c| vec![open(c, "bob")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::AlreadyDisputed { .. })));
    // A disputed statement is not signed; the dispute closes it.
    let refused = advance(&mut chain, &mut time, |c| vec![sign(c, "bob", statement_id, b"s1")]);
    assert!(matches!(refusal(&refused), InterconnectError::Disputed { .. }));

    let step = |c: &SampleChain, by: &str, step: StepKind, content: &[u8]| {
        dispute_tx(c, by, Action::DisputeStep { dispute, step, sealed: sealed(content) })
    };
    let confirm = |c: &SampleChain, by: &str, content: &[u8]| {
        dispute_tx(c, by, Action::ConfirmClose { dispute, commitment: commitment_of(&[9; 32], content) })
    };
    assert!(
        advance(&mut chain, &mut time, |c| vec![step(c, "alice", StepKind::Respond, b"evidence")]).is_empty()
    );
    let refused = advance(&mut chain, &mut time, |c| vec![step(c, "charlie", StepKind::Respond, b"x")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::NotASide(_))));
    let refused = advance(&mut chain, &mut time, |c| vec![confirm(c, "bob", b"evidence")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::NothingToConfirm { .. })));
    assert!(advance(&mut chain, &mut time, |c| vec![step(c, "bob", StepKind::ProposeClose, b"close at 10")])
        .is_empty());
    // The proposer cannot confirm its own proposal; the other side must name it exactly.
    let refused = advance(&mut chain, &mut time, |c| vec![confirm(c, "bob", b"close at 10")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::NothingToConfirm { .. })));
    let refused = advance(&mut chain, &mut time, |c| vec![confirm(c, "alice", b"close at 9")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::WrongProposal { .. })));
    assert!(advance(&mut chain, &mut time, |c| vec![confirm(c, "alice", b"close at 10")]).is_empty());

    let record: DisputeRecord = read(&chain, &StateKey::Dispute(dispute)).unwrap();
    assert_eq!(record.closed_at, Some(chain.parent.number));
    let kinds: Vec<StepKind> = record.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [StepKind::Open, StepKind::Respond, StepKind::ProposeClose, StepKind::ConfirmClose]);
    let pair: PairStatements = read(&chain, &StateKey::PairStatements(id_of("alice"), id_of("bob"))).unwrap();
    assert_eq!(
        pair.final_periods.as_slice(),
        &[FinalPeriod { from_ms: 1_000, to_ms: 2_000, statement: statement_id }]
    );
    let refused = advance(&mut chain, &mut time, |c| vec![step(c, "bob", StepKind::Respond, b"late")]);
    assert!(matches!(refusal(&refused), InterconnectError::Dispute(DisputeError::Closed(_))));
}

#[test]
fn a_dispute_after_the_window_is_refused() {
    use cdrchain_runtime::interconnect::dispute::{DisputeError, DAY_MS};
    let mut time = 0;
    let (mut chain, agreement) = agreed(&mut time);
    let proposal = statement(&chain, "alice", agreement, (1_000, 2_000), b"s1");
    let statement_id = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut time, |_| vec![proposal]).is_empty());
    // The agreement's window is 30 days of block time from the statement's block.
    time += 30 * DAY_MS;
    let refused = advance(&mut chain, &mut time, |c| {
        vec![dispute_tx(c, "bob", Action::OpenDispute { statement: statement_id, sealed: sealed(b"late") })]
    });
    assert!(matches!(
        refusal(&refused),
        InterconnectError::Dispute(DisputeError::WindowClosed { days: 30, .. })
    ));
}
