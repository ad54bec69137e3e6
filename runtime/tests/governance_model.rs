//! Property test of authority-set changes against a model: random proposals (add, remove,
//! rotate), approvals by random members, and runs of blocks with time jumps past a proposal's
//! lifetime. The chain must accept exactly what the model accepts, and after every block the set
//! for the next height, the open proposal and the scheduled change must be the model's. The
//! safety rules hold throughout: at most one change in flight, a set never empties, each change
//! alters one member, and it takes effect exactly `AUTHORITY_CHANGE_DELAY_BLOCKS` after the
//! block that completed more than two thirds of approvals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::block::quorum;
use cdrchain_runtime::governance::{
    authority_set_at, pending_change, prove, scheduled_change, ApproveChange, AuthorityChange, ProposeChange,
    AUTHORITY_CHANGE_DELAY_BLOCKS, PROPOSAL_LIFETIME_MS,
};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::sample::{operator_key, SampleChain};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Propose { by: usize, kind: u8, target: usize },
    Approve { by: usize },
    Blocks { count: u8, expire: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..8usize, 0..3u8, 0..8usize).prop_map(|(by, kind, target)| Op::Propose { by, kind, target }),
        4 => (0..8usize).prop_map(|by| Op::Approve { by }),
        2 => (1..6u8, prop_oneof![6 => Just(false), 1 => Just(true)])
            .prop_map(|(count, expire)| Op::Blocks { count, expire }),
    ]
}

fn key_of(name: &str, generation: u32) -> SigningKey {
    operator_key(&format!("{name}#{generation}"))
}

fn evm(name: &str) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&blake3::derive_key("governance model evm", name.as_bytes())).unwrap()
}

/// An operator's name and key generation.
type Rotation = Option<(String, u32)>;

/// The open proposal: id, approvals, expiry, the members after it, the rotation it makes.
type Pending = (Hash32, Vec<String>, u64, Vec<String>, Rotation);

#[derive(Clone, Debug)]
struct Model {
    members: Vec<String>,
    /// Key generation of each operator ever added (0 = the sample key).
    generations: std::collections::BTreeMap<String, u32>,
    pending: Option<Pending>,
    /// (from, members after, rotation applied then)
    scheduled: Option<(u64, Vec<String>, Rotation)>,
    added: u32,
}

impl Model {
    fn key(&self, name: &str) -> SigningKey {
        match self.generations.get(name) {
            Some(0) | None if !name.starts_with("new") => operator_key(name),
            generation => key_of(name, generation.copied().unwrap_or(0)),
        }
    }

    fn set_at(&self, height: u64) -> Vec<String> {
        match &self.scheduled {
            Some((from, members, _)) if *from <= height => members.clone(),
            _ => self.members.clone(),
        }
    }

    /// What happens at the start of block `height` with timestamp `now`.
    fn begin_block(&mut self, height: u64, now: u64) {
        if let Some((from, members, rotation)) = self.scheduled.clone() {
            if from <= height {
                self.members = members;
                if let Some((name, generation)) = rotation {
                    self.generations.insert(name, generation);
                }
                self.scheduled = None;
            }
        }
        if self.pending.as_ref().is_some_and(|p| now >= p.2) {
            self.pending = None;
        }
    }

    fn count(&mut self, height: u64) {
        let Some((_, approvals, _, after, rotation)) = self.pending.clone() else { return };
        if approvals.len() >= quorum(self.members.len()) {
            self.scheduled = Some((height + AUTHORITY_CHANGE_DELAY_BLOCKS, after, rotation));
            self.pending = None;
        }
    }
}

struct Harness {
    chain: SampleChain,
    model: Model,
    now: u64,
}

impl Harness {
    /// Signs with the key `model` (the model as the block begins) gives the operator.
    fn sign(&self, model: &Model, tx: Transaction) -> SignedTransaction {
        let key = model.key(tx.operator().as_str());
        SignedTransaction::sign(tx, &key, &self.chain.genesis_hash())
    }

    /// One block holding `tx`; answers whether the chain took it.
    fn block(&mut self, tx: Option<SignedTransaction>, jump_ms: u64) -> bool {
        self.now += 1_000 + jump_ms;
        let height = self.chain.parent.number.0 + 1;
        self.model.begin_block(height, self.now);
        let had_tx = tx.is_some();
        let (block, _, refused) = self.chain.build(tx.into_iter().collect(), self.now).unwrap();
        self.chain.import(block).unwrap();
        had_tx && refused.is_empty()
    }

    fn check(&self) {
        let next = self.chain.parent.number.0 + 1;
        let set = authority_set_at(&self.chain.state, Height(next)).unwrap();
        let ids: Vec<String> = set.members.iter().map(|m| m.id.as_str().to_string()).collect();
        assert_eq!(ids, self.model.set_at(next), "the set for height {next}");
        assert!(!ids.is_empty());
        for member in set.members.iter() {
            let name = member.id.as_str();
            let key = match &self.model.scheduled {
                Some((from, _, Some((rotated, generation)))) if *from <= next && rotated == name => {
                    key_of(name, *generation)
                }
                _ => self.model.key(name),
            };
            assert_eq!(
                member.signing_key,
                cdrchain_runtime::crypto::public_key(&key),
                "{name}'s key at {next}"
            );
        }
        let pending = pending_change(&self.chain.state).unwrap();
        let scheduled = scheduled_change(&self.chain.state).unwrap();
        assert_eq!(pending.is_some(), self.model.pending.is_some(), "open proposal");
        assert_eq!(scheduled.is_some(), self.model.scheduled.is_some(), "scheduled change");
        assert!(pending.is_none() || scheduled.is_none(), "two changes in flight");
        if let (Some(pending), Some(model)) = (pending, &self.model.pending) {
            let approvals: Vec<String> = pending.approvals.iter().map(|a| a.as_str().to_string()).collect();
            assert_eq!((pending.id, approvals), (model.0, model.1.clone()));
        }
        if let (Some(scheduled), Some(model)) = (scheduled, &self.model.scheduled) {
            assert_eq!(scheduled.set.from.0, model.0);
            assert_eq!(scheduled.set.from.0, scheduled.approved_at.0 + AUTHORITY_CHANGE_DELAY_BLOCKS);
        }
    }
}

fn run(ops: Vec<Op>) {
    let names = ["alice", "bob", "carol", "dave"];
    let chain = SampleChain::new(&names);
    let generations = names.iter().map(|n| (n.to_string(), 0)).collect();
    let model = Model {
        members: names.iter().map(|n| n.to_string()).collect(),
        generations,
        pending: None,
        scheduled: None,
        added: 0,
    };
    let mut h = Harness { chain, model, now: 0 };
    for op in ops {
        let members = h.model.members.clone();
        match op {
            Op::Propose { by, kind, target } => {
                let by = members[by % members.len()].clone();
                let genesis = h.chain.genesis_hash();
                // The model as this block begins: a scheduled change may take effect, a proposal
                // expire.
                let mut ahead = h.model.clone();
                ahead.begin_block(h.chain.parent.number.0 + 1, h.now + 1_000);
                let in_flight = ahead.pending.is_some() || ahead.scheduled.is_some();
                let members = ahead.members.clone();
                let (change, after, rotation, valid) = match kind {
                    0 => {
                        let name = format!("new{}", h.model.added);
                        let id = OperatorId::new(name.clone()).unwrap();
                        let add = prove::new_authority(
                            &genesis,
                            &id,
                            &key_of(&name, 0),
                            &key_of(&name, 99),
                            &evm(&name),
                        )
                        .unwrap();
                        let mut after = members.clone();
                        after.push(name.clone());
                        (AuthorityChange::Add(add), after, Some((name, 0)), true)
                    }
                    1 => {
                        let target = members[target % members.len()].clone();
                        let after: Vec<String> = members.iter().filter(|m| **m != target).cloned().collect();
                        let valid = !after.is_empty();
                        (AuthorityChange::Remove { id: OperatorId::new(target).unwrap() }, after, None, valid)
                    }
                    _ => {
                        let generation = ahead.generations.get(&by).copied().unwrap_or(0) + 1;
                        let id = OperatorId::new(by.clone()).unwrap();
                        let rotation =
                            prove::rotation(&genesis, &id, Some(&key_of(&by, generation)), None).unwrap();
                        (
                            AuthorityChange::RotateKeys(rotation),
                            members.clone(),
                            Some((by.clone(), generation)),
                            true,
                        )
                    }
                };
                let tx = h.sign(
                    &ahead,
                    Transaction::ProposeChange(Box::new(ProposeChange {
                        operator: OperatorId::new(by.clone()).unwrap(),
                        change,
                    })),
                );
                let id = tx.id(&genesis);
                let expected = valid && !in_flight && members.contains(&by);
                let accepted = h.block(Some(tx), 0);
                assert_eq!(accepted, expected, "propose by {by}");
                if accepted {
                    if kind == 0 {
                        h.model.added += 1;
                        if let Some((name, _)) = &rotation {
                            h.model.generations.insert(name.clone(), 0);
                        }
                    }
                    let expires = h.now + PROPOSAL_LIFETIME_MS;
                    let rotation = if kind == 2 { rotation } else { None };
                    // New operators sign with generation 0 of their name-derived key.
                    h.model.pending = Some((id, vec![by], expires, after, rotation));
                    h.model.count(h.chain.parent.number.0);
                }
            }
            Op::Approve { by } => {
                let by = members[by % members.len()].clone();
                let proposal = h.model.pending.as_ref().map_or(Hash32([9; 32]), |p| p.0);
                // The model's view once this block begins (a scheduled change may take effect
                // or the proposal expire first).
                let mut ahead = h.model.clone();
                ahead.begin_block(h.chain.parent.number.0 + 1, h.now + 1_000);
                let tx = h.sign(
                    &ahead,
                    Transaction::ApproveChange(ApproveChange {
                        operator: OperatorId::new(by.clone()).unwrap(),
                        proposal,
                    }),
                );
                let expected = ahead.pending.as_ref().is_some_and(|p| p.0 == proposal && !p.1.contains(&by))
                    && ahead.members.contains(&by);
                let accepted = h.block(Some(tx), 0);
                assert_eq!(accepted, expected, "approve by {by}");
                if accepted {
                    if let Some(pending) = &mut h.model.pending {
                        pending.1.push(by);
                    }
                    h.model.count(h.chain.parent.number.0);
                }
            }
            Op::Blocks { count, expire } => {
                for i in 0..count {
                    let jump = if expire && i == 0 { PROPOSAL_LIFETIME_MS } else { 0 };
                    h.block(None, jump);
                }
            }
        }
        h.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn governance_follows_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
