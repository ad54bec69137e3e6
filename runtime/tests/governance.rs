//! Authority-set changes in the state transition: proposals, approvals by more than two thirds,
//! the delay before a change takes effect, one change at a time, proofs of possession, removal
//! and key rotation, and what an old key can still do afterwards (nothing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{ApplyError, PushError, TxError};
use cdrchain_runtime::block::{CommitCertificate, CommitSignature, Vote, VoteKind};
use cdrchain_runtime::checkpoint::evm_address;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::crypto::{public_key, Signature};
use cdrchain_runtime::governance::{
    authority_set_at, current_set, pending_change, prove, scheduled_change, ApproveChange, AuthorityChange,
    ProposeChange, AUTHORITY_CHANGE_DELAY_BLOCKS, PROPOSAL_LIFETIME_MS,
};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use cdrchain_runtime::proof::sets::{follow, SetStep};
use cdrchain_runtime::proof::StateEntryProof;
use cdrchain_runtime::sample::{operator_key, SampleChain};
use cdrchain_runtime::state::{genesis_state, OperatorRecord, StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use k256::ecdsa::SigningKey as EvmKey;
use parity_scale_codec::Encode;

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn id(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

fn evm_key(seed: u8) -> EvmKey {
    EvmKey::from_slice(&[seed; 32]).unwrap()
}

fn network_key(name: &str) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key("governance test network key", name.as_bytes()))
}

/// Four validators with real EVM keys (seeds 1..=4).
fn chain() -> SampleChain {
    let mut chain = SampleChain::new(&NAMES);
    let records: Vec<_> = NAMES
        .iter()
        .zip(1u8..)
        .map(|(name, seed)| {
            let record = OperatorRecord {
                signing_key: public_key(&operator_key(name)),
                evm_address: evm_address(evm_key(seed).verifying_key()),
            };
            (id(name), record)
        })
        .collect();
    chain.state = genesis_state(&records, &chain.operators).unwrap();
    chain
}

struct Clock(u64);

/// Builds and imports one block of `txs`; answers what was refused.
fn advance(chain: &mut SampleChain, clock: &mut Clock, txs: Vec<SignedTransaction>) -> Vec<PushError> {
    clock.0 += 1_000;
    let (block, _, refused) = chain.build(txs, clock.0).unwrap();
    chain.import(block).unwrap();
    refused
}

fn refusal(refused: &[PushError]) -> &TxError {
    match refused {
        [PushError::Invalid(error)] => error,
        other => panic!("expected one refusal, got {other:?}"),
    }
}

fn propose(chain: &SampleChain, by: &str, change: AuthorityChange) -> SignedTransaction {
    chain.sign(Transaction::ProposeChange(Box::new(ProposeChange { operator: id(by), change })))
}

fn approve(chain: &SampleChain, by: &str, proposal: Hash32) -> SignedTransaction {
    chain.sign(Transaction::ApproveChange(ApproveChange { operator: id(by), proposal }))
}

fn erin(chain: &SampleChain) -> AuthorityChange {
    let add = prove::new_authority(
        &chain.genesis_hash(),
        &id("erin"),
        &operator_key("erin"),
        &network_key("erin"),
        &evm_key(5),
    )
    .unwrap();
    AuthorityChange::Add(add)
}

fn members(chain: &SampleChain, height: u64) -> Vec<String> {
    let set = authority_set_at(&chain.state, Height(height)).unwrap();
    set.members.iter().map(|m| m.id.as_str().to_string()).collect()
}

/// Proposes `change` as `by` and has the next authorities approve it until it is scheduled;
/// answers the height it takes effect.
fn pass(chain: &mut SampleChain, clock: &mut Clock, by: &str, change: AuthorityChange) -> u64 {
    let proposal = propose(chain, by, change);
    let proposal_id = proposal.id(&chain.genesis_hash());
    assert!(advance(chain, clock, vec![proposal]).is_empty());
    let set = current_set(&chain.state).unwrap();
    let approvers: Vec<_> =
        set.members.iter().map(|m| m.id.as_str().to_string()).filter(|n| n != by).collect();
    for approver in approvers.iter().take(set.quorum() - 1) {
        let tx = approve(chain, approver, proposal_id);
        assert!(advance(chain, clock, vec![tx]).is_empty());
    }
    let scheduled = scheduled_change(&chain.state).unwrap().expect("a quorum schedules the change");
    assert_eq!(scheduled.approved_at.0, chain.parent.number.0);
    assert_eq!(scheduled.set.from.0, chain.parent.number.0 + AUTHORITY_CHANGE_DELAY_BLOCKS);
    scheduled.set.from.0
}

fn until(chain: &mut SampleChain, clock: &mut Clock, height: u64) {
    while chain.parent.number.0 + 1 < height {
        advance(chain, clock, Vec::new());
    }
}

#[test]
fn an_operator_joins_after_a_quorum_and_the_delay() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let proposal = propose(&chain, "alice", erin(&chain));
    let proposal_id = proposal.id(&chain.genesis_hash());
    assert!(advance(&mut chain, &mut clock, vec![proposal]).is_empty());
    let pending = pending_change(&chain.state).unwrap().unwrap();
    assert_eq!(pending.id, proposal_id);
    assert_eq!(pending.approvals.len(), 1, "proposing approves");
    // Two of four are not more than two thirds; three are.
    assert!({
        let txs = vec![approve(&chain, "bob", proposal_id)];
        advance(&mut chain, &mut clock, txs)
    }
    .is_empty());
    assert!(scheduled_change(&chain.state).unwrap().is_none());
    // Erin is nobody yet: her transactions are refused.
    let early = chain.batch("erin", 0, 1);
    let refused = {
        let txs = vec![approve(&chain, "carol", proposal_id), early];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::UnknownOperator(who) if who.as_str() == "erin"));
    let scheduled = scheduled_change(&chain.state).unwrap().unwrap();
    let effective = scheduled.set.from.0;
    assert_eq!(effective, chain.parent.number.0 + AUTHORITY_CHANGE_DELAY_BLOCKS);
    assert_eq!(scheduled.set.id, 1);
    assert!(pending_change(&chain.state).unwrap().is_none());

    // The set for each height is known ahead: the old one until the effective height.
    assert_eq!(members(&chain, effective - 1), NAMES);
    assert_eq!(members(&chain, effective), ["alice", "bob", "carol", "dave", "erin"]);
    until(&mut chain, &mut clock, effective);
    assert!({
        let txs = vec![chain.batch("erin", 0, 3)];
        advance(&mut chain, &mut clock, txs)
    }
    .is_empty());
    assert_eq!(chain.parent.number.0, effective);
    let set = current_set(&chain.state).unwrap();
    assert_eq!((set.id, set.from.0, set.len()), (1, effective, 5));
    let network: Option<Vec<u8>> = chain.state.get(&StateKey::NetworkKey(id("erin")).encode()).unwrap();
    assert_eq!(
        decode_exact::<cdrchain_runtime::crypto::PublicKey>(&network.unwrap()).unwrap(),
        public_key(&network_key("erin"))
    );

    // Erin now proposes blocks.
    let (block, _, _) = build_as(&chain, "erin", clock.0 + 1_000);
    chain.import(block).unwrap();
}

fn build_as(
    chain: &SampleChain,
    proposer: &str,
    timestamp_ms: u64,
) -> (cdrchain_runtime::block::Block, cdrchain_runtime::apply::StateChanges, ()) {
    let builder = cdrchain_runtime::apply::BlockBuilder::new(
        &chain.ctx,
        &chain.state,
        chain.parent.clone(),
        id(proposer),
        timestamp_ms,
    )
    .unwrap();
    let (block, changes) = builder.finish().unwrap();
    (block, changes, ())
}

#[test]
fn one_change_at_a_time() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let first = propose(&chain, "alice", erin(&chain));
    let first_id = first.id(&chain.genesis_hash());
    let second = propose(&chain, "bob", AuthorityChange::Remove { id: id("dave") });
    let refused = advance(&mut chain, &mut clock, vec![first, second.clone()]);
    assert!(
        matches!(refusal(&refused), TxError::ChangeInFlight { state: "open", proposal } if *proposal == first_id)
    );
    {
        let txs = vec![approve(&chain, "bob", first_id), approve(&chain, "carol", first_id)];
        advance(&mut chain, &mut clock, txs)
    };
    let refused = advance(&mut chain, &mut clock, vec![second.clone()]);
    assert!(matches!(refusal(&refused), TxError::ChangeInFlight { state: "scheduled", .. }));
    // Late approvals of a scheduled proposal are refused, not counted twice.
    let refused = {
        let txs = vec![approve(&chain, "dave", first_id)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::NoSuchProposal(_)));
    let effective = scheduled_change(&chain.state).unwrap().unwrap().set.from.0;
    until(&mut chain, &mut clock, effective);
    advance(&mut chain, &mut clock, Vec::new());
    // Once in force, the next change may be proposed.
    assert!(advance(&mut chain, &mut clock, vec![second]).is_empty());
}

#[test]
fn approvals_count_once_and_only_from_the_set() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let proposal = propose(&chain, "alice", AuthorityChange::Remove { id: id("dave") });
    let proposal_id = proposal.id(&chain.genesis_hash());
    advance(&mut chain, &mut clock, vec![proposal]);
    let refused = {
        let txs = vec![approve(&chain, "alice", proposal_id)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::AlreadyApproved { .. }));
    let refused = {
        let txs = vec![approve(&chain, "bob", Hash32([7; 32]))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::NoSuchProposal(_)));
    // A registered operator that is not an authority does not govern.
    let mut chain2 = SampleChain::new(&NAMES);
    let records: Vec<_> = NAMES
        .iter()
        .map(|n| {
            (
                id(n),
                OperatorRecord {
                    signing_key: public_key(&operator_key(n)),
                    evm_address: cdrchain_runtime::crypto::EvmAddress([0; 20]),
                },
            )
        })
        .collect();
    chain2.operators.truncate(3);
    chain2.state = genesis_state(&records, &chain2.operators).unwrap();
    let refused = {
        let txs = vec![propose(&chain2, "dave", AuthorityChange::Remove { id: id("bob") })];
        advance(&mut chain2, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::NotAGovernor(who) if who.as_str() == "dave"));
}

#[test]
fn an_unapproved_proposal_expires() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let proposal = propose(&chain, "alice", AuthorityChange::Remove { id: id("dave") });
    let proposal_id = proposal.id(&chain.genesis_hash());
    advance(&mut chain, &mut clock, vec![proposal]);
    let expires = pending_change(&chain.state).unwrap().unwrap().expires_at_ms;
    assert_eq!(expires, clock.0 + PROPOSAL_LIFETIME_MS);
    clock.0 = expires - 2_000;
    assert!({
        let txs = vec![approve(&chain, "bob", proposal_id)];
        advance(&mut chain, &mut clock, txs)
    }
    .is_empty());
    assert!(pending_change(&chain.state).unwrap().is_some(), "open until its time");
    let refused = {
        let txs = vec![approve(&chain, "carol", proposal_id)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::NoSuchProposal(_)));
    assert!(pending_change(&chain.state).unwrap().is_none());
    assert!(scheduled_change(&chain.state).unwrap().is_none());
}

#[test]
fn every_new_key_proves_possession() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let good = match erin(&chain) {
        AuthorityChange::Add(add) => add,
        _ => unreachable!(),
    };
    let cases: Vec<(&str, AuthorityChange)> = vec![
        ("ed25519", {
            let mut add = good.clone();
            add.signing_proof = Signature([1; 64]);
            AuthorityChange::Add(add)
        }),
        ("network", {
            let mut add = good.clone();
            add.network_proof = add.signing_proof;
            AuthorityChange::Add(add)
        }),
        ("EVM", {
            // Proofs made for another operator id do not transfer.
            let other = prove::new_authority(
                &chain.genesis_hash(),
                &id("frank"),
                &operator_key("erin"),
                &network_key("erin"),
                &evm_key(5),
            )
            .unwrap();
            let mut add = good.clone();
            add.evm_proof = other.evm_proof;
            AuthorityChange::Add(add)
        }),
    ];
    for (what, change) in cases {
        let refused = {
            let txs = vec![propose(&chain, "alice", change)];
            advance(&mut chain, &mut clock, txs)
        };
        match refusal(&refused) {
            TxError::BadPossession { what: named, .. } => assert_eq!(*named, what),
            other => panic!("{what}: {other}"),
        }
    }
    // Somebody else's key cannot be brought in.
    let mut stolen = good.clone();
    stolen.signing_key = public_key(&operator_key("bob"));
    let refused = {
        let txs = vec![propose(&chain, "alice", AuthorityChange::Add(stolen))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::KeyInUse { other, .. } if other.as_str() == "bob"));
    let refused = {
        let txs = vec![propose(
            &chain,
            "alice",
            AuthorityChange::Add(
                prove::new_authority(
                    &chain.genesis_hash(),
                    &id("bob"),
                    &operator_key("bob"),
                    &network_key("bob"),
                    &evm_key(2),
                )
                .unwrap(),
            ),
        )];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::AlreadyAuthority(_)));
    assert!(pending_change(&chain.state).unwrap().is_none());
}

#[test]
fn a_removed_operator_signs_nothing_from_the_effective_height() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let effective = pass(&mut chain, &mut clock, "alice", AuthorityChange::Remove { id: id("dave") });
    until(&mut chain, &mut clock, effective - 1);
    // Until the height before, dave still submits.
    assert!({
        let txs = vec![chain.batch("dave", 0, 2)];
        advance(&mut chain, &mut clock, txs)
    }
    .is_empty());
    assert_eq!(members(&chain, effective), ["alice", "bob", "carol"]);
    let refused = {
        let txs = vec![chain.batch("dave", 2, 2)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::Retired(who) if who.as_str() == "dave"));
    let retired: Option<Vec<u8>> = chain.state.get(&StateKey::Retired(id("dave")).encode()).unwrap();
    assert_eq!(decode_exact::<Height>(&retired.unwrap()).unwrap(), Height(effective));
    // Nor does it propose blocks.
    let builder = cdrchain_runtime::apply::BlockBuilder::new(
        &chain.ctx,
        &chain.state,
        chain.parent.clone(),
        id("dave"),
        clock.0 + 1,
    );
    assert!(matches!(builder, Err(ApplyError::ProposerNotAuthority(_))));
    // And it does not come back under its old id.
    let back = prove::new_authority(
        &chain.genesis_hash(),
        &id("dave"),
        &operator_key("dave"),
        &network_key("dave"),
        &evm_key(4),
    )
    .unwrap();
    let refused = {
        let txs = vec![propose(&chain, "alice", AuthorityChange::Add(back))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::Retired(_)));
}

#[test]
fn the_last_authority_cannot_leave() {
    let mut chain = SampleChain::new(&["alice"]);
    let mut clock = Clock(0);
    let refused = {
        let txs = vec![propose(&chain, "alice", AuthorityChange::Remove { id: id("alice") })];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::LastAuthority(_)));
}

#[test]
fn a_single_validator_chain_grows_by_its_own_approval() {
    let mut chain = SampleChain::new(&["alice"]);
    let mut clock = Clock(0);
    let change = erin(&chain);
    let effective = pass(&mut chain, &mut clock, "alice", change);
    assert_eq!(members(&chain, effective), ["alice", "erin"]);
}

#[test]
fn rotated_keys_take_over_at_the_effective_height() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let new_key = operator_key("bob-2027");
    let rotation =
        prove::rotation(&chain.genesis_hash(), &id("bob"), Some(&new_key), Some((&evm_key(2), &evm_key(9))))
            .unwrap();
    // Only bob rotates bob's keys.
    let refused = {
        let txs = vec![propose(&chain, "alice", AuthorityChange::RotateKeys(rotation.clone()))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::RotateOthers { .. }));
    // The old EVM key must hand over.
    let mut forged = rotation.clone();
    if let Some(evm) = &mut forged.evm {
        evm.old_proof =
            prove::rotation(&chain.genesis_hash(), &id("bob"), None, Some((&evm_key(7), &evm_key(9))))
                .unwrap()
                .evm
                .unwrap()
                .old_proof;
    }
    let refused = {
        let txs = vec![propose(&chain, "bob", AuthorityChange::RotateKeys(forged))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::BadPossession { what: "old EVM hand-over", .. }));
    let same = prove::rotation(&chain.genesis_hash(), &id("bob"), Some(&operator_key("bob")), None).unwrap();
    let refused = {
        let txs = vec![propose(&chain, "bob", AuthorityChange::RotateKeys(same))];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::NothingToRotate(_)));

    let effective = pass(&mut chain, &mut clock, "bob", AuthorityChange::RotateKeys(rotation));
    until(&mut chain, &mut clock, effective - 1);
    // The old key still signs before the effective height...
    assert!({
        let txs = vec![chain.batch("bob", 0, 1)];
        advance(&mut chain, &mut clock, txs)
    }
    .is_empty());
    let set = authority_set_at(&chain.state, Height(effective)).unwrap();
    let bob = set.get(&id("bob")).unwrap();
    assert_eq!(bob.signing_key, public_key(&new_key));
    assert_eq!(bob.evm_address, evm_address(evm_key(9).verifying_key()));
    // ... and nothing from it: the new key does.
    let old = chain.batch("bob", 1, 1);
    let new = SignedTransaction::sign(old.transaction.clone(), &new_key, &chain.genesis_hash());
    let refused = advance(&mut chain, &mut clock, vec![old]);
    assert!(matches!(refusal(&refused), TxError::BadSignature(_)));
    assert!(advance(&mut chain, &mut clock, vec![new]).is_empty());
    let record: OperatorRecord =
        decode_exact(&chain.state.get(&StateKey::Operator(id("bob")).encode()).unwrap().unwrap()).unwrap();
    assert_eq!(record.evm_address, evm_address(evm_key(9).verifying_key()));
}

fn sign_change(chain: &SampleChain, by: &str, seed: u8, set_id: u64) -> SignedTransaction {
    use cdrchain_runtime::governance::contract::{
        change_and_signers, SetChangeSignature, ValidatorSetChange,
    };
    let contract = cdrchain_runtime::crypto::EvmAddress([0x5f; 20]);
    // What the state says the change to `set_id` is; a set it does not know gets a stand-in.
    let digest = match change_and_signers(&chain.state, set_id).unwrap() {
        Some((target, _)) => ValidatorSetChange::of(&target).digest(chain.ctx.rsk_chain_id, &contract),
        None => [0u8; 32],
    };
    let signature = cdrchain_runtime::checkpoint::sign_digest(&evm_key(seed), &digest).unwrap();
    chain.sign(Transaction::SetChangeSignature(SetChangeSignature {
        operator: id(by),
        set_id,
        contract,
        signature,
    }))
}

/// The RSK contract's change to a new set is signed by the set before it, with the EVM keys it
/// had there: while the change is scheduled and while the new set is in force, once per
/// member; nobody else, no other key, no set the chain does not know.
#[test]
fn the_set_before_a_change_signs_the_contracts_change_to_it() {
    use cdrchain_runtime::governance::contract::{change_and_signers, ValidatorSetChange};
    let mut chain = chain();
    let mut clock = Clock(0);
    // Nothing to sign before any change.
    let refused = {
        let txs = vec![sign_change(&chain, "alice", 1, 1)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::UnknownSetChange(1)));
    let effective = pass(&mut chain, &mut clock, "alice", AuthorityChange::Remove { id: id("dave") });
    // Scheduled: the set in force signs, dave too (he is in it).
    for (name, seed) in [("alice", 1), ("dave", 4)] {
        let txs = vec![sign_change(&chain, name, seed, 1)];
        assert!(advance(&mut chain, &mut clock, txs).is_empty(), "{name}");
    }
    let refused = {
        let txs = vec![sign_change(&chain, "alice", 1, 1)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::ChangeAlreadySigned { set_id: 1, .. }));
    let refused = {
        let txs = vec![sign_change(&chain, "bob", 3, 1)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::WrongSetChangeSigner { set_id: 1, .. }));
    // In force: still signed by the set before it (kept as the previous set).
    until(&mut chain, &mut clock, effective + 1);
    let (target, signers) = change_and_signers(&chain.state, 1).unwrap().unwrap();
    assert_eq!(signers.members.len(), 4);
    let change = ValidatorSetChange::of(&target);
    assert_eq!((change.validators.len(), change.threshold, change.nonce), (3, 3, 0));
    assert!(change.validators.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
    for (name, seed) in [("bob", 2), ("carol", 3)] {
        let txs = vec![sign_change(&chain, name, seed, 1)];
        assert!(advance(&mut chain, &mut clock, txs).is_empty(), "{name}");
    }
    let stored = chain.state.get(&StateKey::SetChangeSignature(1, id("carol")).encode()).unwrap();
    assert!(stored.is_some());
    // Dave, removed, signs nothing any more.
    let refused = {
        let txs = vec![sign_change(&chain, "dave", 4, 1)];
        advance(&mut chain, &mut clock, txs)
    };
    assert!(matches!(refusal(&refused), TxError::Retired(_)));
}

/// Signs the precommit of `header` by `names` (their sample keys): a commit certificate.
fn certify(
    header: &cdrchain_runtime::block::Header,
    names: &[String],
    genesis: &Hash32,
) -> CommitCertificate {
    let vote = Vote {
        kind: VoteKind::Precommit,
        height: header.number,
        round: Round(0),
        block_hash: Some(header.hash()),
    };
    let signatures = names
        .iter()
        .map(|n| CommitSignature {
            authority: id(n),
            signature: cdrchain_runtime::crypto::sign(&operator_key(n), &vote.signing_message(genesis)),
        })
        .collect();
    CommitCertificate {
        height: header.number,
        round: Round(0),
        block_hash: header.hash(),
        signatures: cdrchain_runtime::codec::BoundedVec::new(signatures).unwrap(),
    }
}

/// Proposes `change` as alice, has the set approve it, and answers the step proving it: the
/// approving block, its certificate by the set in force, and the scheduled change under its
/// state root.
fn step_of(chain: &mut SampleChain, clock: &mut Clock, change: AuthorityChange) -> SetStep {
    let set = current_set(&chain.state).unwrap();
    let names: Vec<String> = set.members.iter().map(|m| m.id.as_str().to_string()).collect();
    let proposal = propose(chain, "alice", change);
    let proposal_id = proposal.id(&chain.genesis_hash());
    assert!(advance(chain, clock, vec![proposal]).is_empty());
    let mut last = None;
    for approver in names.iter().filter(|n| *n != "alice").take(set.quorum() - 1) {
        clock.0 += 1_000;
        let tx = approve(chain, approver, proposal_id);
        let (block, _, refused) = chain.build(vec![tx], clock.0).unwrap();
        assert!(refused.is_empty());
        chain.import(block.clone()).unwrap();
        last = Some(block);
    }
    let header = last.unwrap().header;
    let scheduled = scheduled_change(&chain.state).unwrap().unwrap();
    let key = StateKey::ScheduledChange.encode();
    let (value, siblings, tree_root) =
        cdrchain_runtime::state::prove_pair(&chain.state, &key).unwrap().unwrap();
    let entry = StateEntryProof {
        key_scale: format!("0x{}", hex::encode(&key)),
        value_scale: format!("0x{}", hex::encode(&value)),
        siblings,
        tree_root,
    };
    let certificate = certify(&header, &names, &chain.genesis_hash());
    let step = SetStep::new(scheduled.set.id, header, certificate, entry);
    until(chain, clock, scheduled.set.from.0 + 1);
    step
}

/// Flips one byte of the hex string at `field` (past its `0x`).
fn flip_hex(text: &str, byte: usize) -> String {
    let mut bytes = hex::decode(text.trim_start_matches("0x")).unwrap();
    bytes[byte] ^= 0x01;
    format!("0x{}", hex::encode(bytes))
}

/// Proofs across set changes: two changes walk from the genesis set to the set of two; any byte of
/// either step's header, certificate or scheduled set flipped, a sibling changed, or the steps
/// out of order, fails the walk naming the step.
#[test]
fn set_steps_lead_from_the_genesis_set_and_any_tampering_names_its_step() {
    let mut chain = chain();
    let mut clock = Clock(0);
    let genesis = chain.genesis_hash();
    let genesis_set = current_set(&chain.state).unwrap().signing_keys();
    let steps = vec![
        step_of(&mut chain, &mut clock, AuthorityChange::Remove { id: id("dave") }),
        step_of(&mut chain, &mut clock, AuthorityChange::Remove { id: id("carol") }),
    ];
    let followed = follow(&genesis, &genesis_set, &steps).unwrap();
    assert_eq!(followed.id, 2);
    let names: Vec<&str> = followed.authorities.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    for (index, step) in steps.iter().enumerate() {
        let named = format!("set change {}", index + 1);
        let fails = |edited: SetStep| {
            let mut all = steps.clone();
            all[index] = edited;
            let error = follow(&genesis, &genesis_set, &all).unwrap_err();
            assert!(error.starts_with(&named), "{error}");
        };
        for field in ["header", "certificate", "value"] {
            let text = match field {
                "header" => &step.header_scale,
                "certificate" => &step.certificate_scale,
                _ => &step.entry.value_scale,
            };
            for byte in 0..hex::decode(text.trim_start_matches("0x")).unwrap().len() {
                let mut edited = step.clone();
                let flipped = flip_hex(text, byte);
                match field {
                    "header" => {
                        // The readable copy follows the bytes where they still decode, so the
                        // signature or the state root must catch it, not only the copy check.
                        if let Ok(header) =
                            decode_exact(&hex::decode(flipped.trim_start_matches("0x")).unwrap())
                        {
                            edited.header = header;
                        }
                        edited.header_scale = flipped;
                    }
                    "certificate" => {
                        if let Ok(certificate) =
                            decode_exact(&hex::decode(flipped.trim_start_matches("0x")).unwrap())
                        {
                            edited.certificate = certificate;
                        }
                        edited.certificate_scale = flipped;
                    }
                    _ => edited.entry.value_scale = flipped,
                }
                fails(edited);
            }
        }
        let mut edited = step.clone();
        edited.entry.siblings[0].0[0] ^= 1;
        fails(edited);
    }
    let reversed: Vec<SetStep> = steps.iter().rev().cloned().collect();
    assert!(follow(&genesis, &genesis_set, &reversed).unwrap_err().starts_with("set change 1"));
}
