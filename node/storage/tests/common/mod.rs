//! Helpers shared by the storage integration tests: a sample chain whose blocks are committed to a
//! `Storage` as the node would (build, import, certificate, commit).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cdrchain_runtime::apply::StateChanges;
use cdrchain_runtime::block::{Block, CommitCertificate};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::Round;
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::MemoryState;
use cdrchain_runtime::tx::SignedTransaction;
use cdrchain_storage::Storage;

pub const OPERATORS: [&str; 3] = ["alice", "bob", "carol"];

/// A certificate for `block` without signatures: storage does not verify them.
pub fn certificate(block: &Block) -> CommitCertificate {
    CommitCertificate {
        height: block.header.number,
        round: Round(0),
        block_hash: block.hash(),
        signatures: BoundedVec::default(),
    }
}

/// The sample chain and its genesis state (kept for reopening).
pub struct Fixture {
    pub chain: SampleChain,
    pub genesis: MemoryState,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let chain = SampleChain::new(&OPERATORS);
        let genesis = chain.state.clone();
        Fixture { chain, genesis, dir: tempfile::tempdir().unwrap() }
    }

    pub fn open(&self) -> Storage {
        Storage::open(self.dir.path(), self.chain.genesis_hash(), &self.genesis).unwrap()
    }

    /// Builds a block of `txs` (all must be accepted), imports it into the in-memory chain.
    pub fn next_block(&mut self, txs: Vec<SignedTransaction>, timestamp_ms: u64) -> (Block, StateChanges) {
        let (block, built, refused) = self.chain.build(txs, timestamp_ms).unwrap();
        assert!(refused.is_empty(), "refused: {refused:?}");
        let changes = self.chain.import(block.clone()).unwrap();
        assert_eq!(changes, built);
        (block, changes)
    }

    /// Builds, imports and commits a block.
    pub fn commit(&mut self, storage: &Storage, txs: Vec<SignedTransaction>, timestamp_ms: u64) -> Block {
        let (block, changes) = self.next_block(txs, timestamp_ms);
        storage.commit_block(&block, &changes, &certificate(&block), None).unwrap();
        block
    }
}

/// Every stored node of the state tree, by position.
pub fn tree(storage: &Storage) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut nodes = std::collections::BTreeMap::new();
    storage
        .for_each_tree_node(&mut |k, v| {
            nodes.insert(k.to_vec(), v.to_vec());
        })
        .unwrap();
    nodes
}
