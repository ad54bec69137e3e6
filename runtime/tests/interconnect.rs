//! Interconnect agreements in the state transition: who may propose and accept, versions,
//! commitments, and what the chain keeps (issue #28). The contents are sealed and never read here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{PushError, TxError};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::{
    commitment_of, Action, AgreementRecord, EncryptionKey, Envelope, InterconnectError, InterconnectTx,
    PairAgreements, Sealed,
};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::{Decode, Encode};

fn id(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
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
    tx(chain, by, Action::ProposeAgreement { counterparty: id(to), version, sealed: sealed(content) })
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
