//! Deterministic sample data for tests, benchmarks and load generators: operators with keys
//! derived from their names, CDR bodies derived from an index, and a small in-memory chain that
//! builds and imports blocks through the real state transition.
//!
//! The keys here are derived from public strings: never use them for anything but tests.

use ed25519_dalek::SigningKey;

use crate::apply::{apply_block, BlockBuilder, ChainContext, ParentRef, PushError, StateChanges};
use crate::block::Block;
use crate::cdr::{CdrBody, Disposition, Mos, Q850Cause, SipStatus};
use crate::codec::BoundedVec;
use crate::crypto::{public_key, EvmAddress};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{CallId, OperatorId, Sequence, SystemId};
use crate::party::{PartiesAsWritten, PartyDigest};
use crate::state::{genesis_state, MemoryState, OperatorRecord};
use crate::tx::{CdrBatch, SignedTransaction, Transaction};

/// A test operator's signing key, derived from its name.
pub fn operator_key(name: &str) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key("cdrchain sample operator key INSECURE v1", name.as_bytes()))
}

fn operator(name: &str) -> OperatorId {
    // Sample names are fixed lower-case words.
    OperatorId::new(name).unwrap_or_else(|_| OperatorId::new("sample").unwrap_or_else(|_| unreachable_name()))
}

#[allow(clippy::panic)]
fn unreachable_name() -> OperatorId {
    panic!("`sample` is a valid operator id")
}

/// A deterministic, valid CDR body; `index` varies every field.
pub fn cdr_body(index: u64, caller_operator: &OperatorId, callee_operator: &OperatorId) -> CdrBody {
    let start_ms = 1_795_000_000_000 + index * 1_000;
    let answered = index % 5 != 4;
    let length_ms = 1_000 * (index % 600) + 500;
    let party = |role: &str| PartyDigest(hash_with(context::PARTY, &[role.as_bytes(), &index.to_le_bytes()]));
    CdrBody {
        system_id: SystemId::new(format!("sbc-{}", index % 3)).unwrap_or_else(|_| sample_system()),
        call_id: CallId::new(format!("{index:016x}-call@sample.invalid")).unwrap_or_else(|_| sample_call()),
        caller: party("caller"),
        callee: party("callee"),
        caller_operator: caller_operator.clone(),
        callee_operator: callee_operator.clone(),
        // Three destinations, as an interconnect's traffic has a few.
        destination: Some(crate::destination::Destination::CountryNetworkV1(
            [4420, 34612, 1202][(index % 3) as usize],
        )),
        start_ms,
        answer_ms: answered.then_some(start_ms + 2_000),
        end_ms: start_ms + 2_000 + length_ms,
        disposition: if answered { Disposition::Answered } else { Disposition::Busy },
        q850_cause: Q850Cause::new(if answered { 16 } else { 17 }),
        sip_status: SipStatus::new(if answered { 200 } else { 486 }),
        mos: answered.then(|| Mos::from_hundredths(300 + (index % 200) as u16)).flatten(),
        fault: None,
        redirect_reason: None,
        leg: None,
        linked_id: None,
        as_written: PartiesAsWritten::default(),
        source: crate::source::SourceDigest::of_key(&format!("{caller_operator}\u{1f}id\u{1f}{index}")),
    }
}

#[allow(clippy::panic)]
fn sample_system() -> SystemId {
    panic!("sample system ids are valid")
}

#[allow(clippy::panic)]
fn sample_call() -> CallId {
    panic!("sample call ids are valid")
}

/// A commit certificate of `header` signed by every sample operator of `names` (round 0), and
/// their authority set: what a proof bundle's verifier checks.
pub fn certify(
    header: &crate::block::Header,
    names: &[&str],
    genesis: &Hash32,
) -> (crate::block::CommitCertificate, Vec<(OperatorId, crate::crypto::PublicKey)>) {
    use crate::block::{CommitCertificate, CommitSignature, Vote, VoteKind};
    let vote = Vote {
        kind: VoteKind::Precommit,
        height: header.number,
        round: crate::ids::Round(0),
        block_hash: Some(header.hash()),
    };
    let signatures: Vec<CommitSignature> = names
        .iter()
        .map(|n| CommitSignature {
            authority: operator(n),
            signature: crate::crypto::sign(&operator_key(n), &vote.signing_message(genesis)),
        })
        .collect();
    let certificate = CommitCertificate {
        height: header.number,
        round: crate::ids::Round(0),
        block_hash: header.hash(),
        signatures: BoundedVec::new(signatures).unwrap_or_default(),
    };
    let authorities = names.iter().map(|n| (operator(n), public_key(&operator_key(n)))).collect();
    (certificate, authorities)
}

/// An in-memory chain of named operators, all authorities, that builds and imports blocks.
#[derive(Debug, Clone)]
pub struct SampleChain {
    pub ctx: ChainContext,
    pub operators: Vec<OperatorId>,
    pub state: MemoryState,
    pub parent: ParentRef,
    pub blocks: Vec<Block>,
}

impl SampleChain {
    pub fn new(names: &[&str]) -> SampleChain {
        let operators: Vec<OperatorId> = names.iter().map(|n| operator(n)).collect();
        let records: Vec<_> = operators
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let record = OperatorRecord {
                    signing_key: public_key(&operator_key(id.as_str())),
                    evm_address: EvmAddress([u8::try_from(i).unwrap_or(0); 20]),
                };
                (id.clone(), record)
            })
            .collect();
        let state = genesis_state(&records, &operators).unwrap_or_default();
        let genesis_hash = hash_with(context::GENESIS, &[names.join(",").as_bytes()]);
        SampleChain {
            ctx: ChainContext {
                genesis_hash,
                max_block_bytes: 32 * 1024 * 1024,
                max_block_cdrs: 200_000,
                checkpoint_interval: 0,
                rsk_chain_id: 33,
            },
            operators,
            state,
            parent: ParentRef::genesis(genesis_hash),
            blocks: Vec::new(),
        }
    }

    pub fn genesis_hash(&self) -> Hash32 {
        self.ctx.genesis_hash
    }

    /// A signed batch of `count` sample CDRs from `recorder`, starting at `first_sequence`.
    pub fn batch(&self, recorder: &str, first_sequence: u64, count: u64) -> SignedTransaction {
        let recorder = operator(recorder);
        let partner = self.operators.iter().find(|o| **o != recorder).unwrap_or(&recorder).clone();
        let cdrs =
            (first_sequence..first_sequence + count).map(|i| cdr_body(i, &recorder, &partner)).collect();
        let tx = Transaction::CdrBatch(CdrBatch {
            first_sequence: Sequence(first_sequence),
            cdrs: BoundedVec::new(cdrs).unwrap_or_default().into(),
            operator: recorder.clone(),
        });
        self.sign(tx)
    }

    /// Signs `tx` with its operator's sample key.
    pub fn sign(&self, tx: Transaction) -> SignedTransaction {
        let key = operator_key(tx.operator().as_str());
        SignedTransaction::sign(tx, &key, &self.ctx.genesis_hash)
    }

    /// The first member of the set in force at the next height (the first operator until a set
    /// change).
    pub fn proposer(&self) -> OperatorId {
        let next = self.parent.number.next().unwrap_or(self.parent.number);
        crate::governance::authority_set_at(&self.state, next)
            .ok()
            .and_then(|set| set.members.iter().next().map(|m| m.id.clone()))
            .or_else(|| self.operators.first().cloned())
            .unwrap_or_else(|| operator("sample"))
    }

    /// Builds a block of `txs` on the current head (proposer: [`SampleChain::proposer`]); refused
    /// transactions are returned with their reasons, and are not in the block.
    pub fn build(
        &self,
        txs: Vec<SignedTransaction>,
        timestamp_ms: u64,
    ) -> Result<(Block, StateChanges, Vec<PushError>), crate::apply::ApplyError> {
        let proposer = self.proposer();
        let mut builder =
            BlockBuilder::new(&self.ctx, &self.state, self.parent.clone(), proposer, timestamp_ms)?;
        let mut refused = Vec::new();
        for tx in txs {
            if let Err(error) = builder.push(tx) {
                refused.push(error);
            }
        }
        let (block, changes) = builder.finish()?;
        Ok((block, changes, refused))
    }

    /// Imports `block` through `apply_block` and makes it the head.
    pub fn import(&mut self, block: Block) -> Result<StateChanges, crate::apply::ApplyError> {
        let changes = apply_block(&self.ctx, &self.state, &self.parent, &block)?;
        self.state.apply(&changes);
        self.parent = ParentRef::of(&block.header);
        self.blocks.push(block);
        Ok(changes)
    }
}
