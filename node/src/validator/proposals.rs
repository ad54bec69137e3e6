//! The proposal store: every proposed block this validator holds or waits to complete, through
//! one lifecycle, without IO.
//!
//! ```text
//!  on the wire, compact ──(the pool has every transaction, or a whole copy arrives)──▶ Full
//!  on the wire, whole ─────────────────────────────────────────────────────────────▶ Full
//!  built here ─────────────────────────────────────────────────────────────────────▶ Executed
//!  Full ──(the machine's valid(v): apply_block succeeded)──▶ Executed ──▶ taken for commit
//!  anything at or below a committed height ──▶ pruned
//! ```
//!
//! The rules kept here, each with a unit test below:
//! - a proposal is kept only when the machine can use it now (this height up to one round
//!   ahead, or round 0 of the next height), and at most [`MAX_BLOCKS_PER_SLOT`] blocks are kept
//!   for one (height, round): a Byzantine proposer cannot fill memory with conflicting blocks;
//! - a block over the chain's size limit is refused, whichever form it came in;
//! - this node's proposals go out compact for their first [`COMPACT_SENDS`] sends, then whole;
//! - a block the machine asked to execute before it was complete here is executed when it
//!   completes ([`ProposalStore::take_wanted`]);
//! - only an executed block is committed from here; everything else comes by sync.
//!
//! What it does not do: read the clock, touch the network or storage, or talk to the machine.
//! The driver asks it and carries out the rest.

use std::collections::HashMap;

use cdrchain_runtime::apply::StateChanges;
use cdrchain_runtime::block::Block;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, Round};
use parity_scale_codec::Encode;

use crate::pool::TxPool;
use crate::wire::{BlockWire, CompactBlock};

/// Most blocks kept for one (height, round): the honest proposer's, and one conflicting block
/// so that an equivocating proposer is still seen (the machine records the evidence).
pub(super) const MAX_BLOCKS_PER_SLOT: usize = 2;
/// A proposal's first sends carry its block compact (header and transaction ids); later
/// re-broadcasts carry it whole, for a validator that still lacks some of its transactions.
pub(super) const COMPACT_SENDS: u32 = 2;

const _: () = assert!(MAX_BLOCKS_PER_SLOT >= 2, "an equivocating proposer's second block must be seen");
const _: () = assert!(COMPACT_SENDS >= 1);

/// A consensus height and round: the slot a proposal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) height: Height,
    pub(super) round: Round,
}

/// Why a block does not make a proposal's block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BlockError {
    #[error("its block is {size} bytes, over the chain's {max}")]
    TooLarge { size: usize, max: usize },
    #[error("{count} transactions, more than a block holds")]
    TooManyTransactions { count: usize },
}

/// Why a proposal's block was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    /// Too far ahead of the machine to use now; the proposer re-sends when it matters.
    #[error("height {} round {} is not one this node can use now", .slot.height, .slot.round.0)]
    NotUseful { slot: Slot },
    /// A third block for one (height, round).
    #[error("already {} blocks for height {} round {}", MAX_BLOCKS_PER_SLOT, .slot.height, .slot.round.0)]
    SlotFull { slot: Slot },
    #[error("the proposal carries no block")]
    NoBlock,
    #[error("its block is for height {block_height}")]
    WrongHeight { block_height: Height },
    #[error("the attached block has another hash")]
    WrongHash,
    #[error(transparent)]
    Block(#[from] BlockError),
}

impl Refusal {
    /// Whether the sender is at fault (a malformed proposal), rather than the proposal merely
    /// being of no use here now.
    pub(super) fn is_fault(&self) -> bool {
        !matches!(self, Refusal::NotUseful { .. } | Refusal::SlotFull { .. })
    }
}

/// What became of a proposal's block that was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arrival {
    /// This message brought a block new here and claimed a place in its slot: if the machine
    /// refuses the proposal, [`ProposalStore::forget`] gives the place back.
    pub(super) claimed: bool,
    /// The block is whole here (false: a compact block waits for some of its transactions).
    pub(super) complete: bool,
}

/// The compact blocks that [`ProposalStore::complete_from`] looked at.
#[derive(Debug, Default)]
pub(super) struct Completion {
    /// Now whole.
    pub(super) completed: Vec<Hash32>,
    /// Whole, but not a valid block: dropped (their slot stays claimed).
    pub(super) dropped: Vec<(Hash32, BlockError)>,
}

/// Where a proposed block is in its lifecycle.
#[derive(Debug)]
enum Stage {
    /// The header and transaction ids; some transactions are not in the pool yet.
    Compact(CompactBlock),
    /// Whole, not (or no longer) checked against our head.
    Full(Block),
    /// Whole and applied on our head (built here, or checked for the machine's valid(v)): its
    /// state changes are what a commit writes (boxed: they are larger than the other stages).
    Executed { block: Block, changes: Box<StateChanges> },
}

/// One proposed block.
#[derive(Debug)]
struct Entry {
    stage: Stage,
    /// Set once this node broadcast the block with its own proposal.
    sent: Option<Sent>,
}

/// This node's sends of one of its proposals' blocks.
#[derive(Debug)]
struct Sent {
    /// How many times the block went out (compact up to [`COMPACT_SENDS`], then whole).
    count: u32,
    /// The compact form, made on the first send.
    compact: CompactBlock,
}

impl Entry {
    fn new(stage: Stage) -> Self {
        Entry { stage, sent: None }
    }

    fn height(&self) -> Height {
        match &self.stage {
            Stage::Compact(compact) => compact.header.number,
            Stage::Full(block) | Stage::Executed { block, .. } => block.header.number,
        }
    }

    fn block(&self) -> Option<&Block> {
        match &self.stage {
            Stage::Compact(_) => None,
            Stage::Full(block) | Stage::Executed { block, .. } => Some(block),
        }
    }
}

/// The proposed blocks of the current and next height, by hash.
#[derive(Debug)]
pub(super) struct ProposalStore {
    /// Every block held or waiting to complete, with where it is in its lifecycle.
    entries: HashMap<Hash32, Entry>,
    /// The slot each block claimed when it arrived or was built. Kept when a block is dropped
    /// as invalid after its arrival, so that a peer cannot take the place again and again with
    /// blocks that never complete; freed by [`ProposalStore::forget`] and pruning.
    slots: HashMap<Hash32, Slot>,
    /// Blocks the machine asked to execute before they were whole here, with the height it
    /// asked at: executed when they complete, as long as that height lasts.
    wanted: HashMap<Hash32, Height>,
    /// The chain's block size limit, in encoded bytes.
    max_block_bytes: usize,
    /// The chain's genesis hash, which scopes transaction ids.
    genesis: Hash32,
}

/// Whether the machine, at `current`, can use a proposal for `slot`: this height up to one
/// round ahead, or round 0 of the next height.
pub(super) fn is_useful(slot: Slot, current: Slot) -> bool {
    (slot.height == current.height && slot.round.0 <= current.round.0.saturating_add(1))
        || (Some(slot.height) == current.height.next() && slot.round.0 == 0)
}

impl ProposalStore {
    pub(super) fn new(max_block_bytes: usize, genesis: Hash32) -> Self {
        ProposalStore {
            entries: HashMap::new(),
            slots: HashMap::new(),
            wanted: HashMap::new(),
            max_block_bytes,
            genesis,
        }
    }

    /// A proposal for `slot` arrived with `block` (the proposal signs `hash`), while the machine
    /// is at `current`. A compact block is completed from `pool` when it can be.
    pub(super) fn on_wire(
        &mut self,
        slot: Slot,
        hash: Hash32,
        block: Option<BlockWire>,
        current: Slot,
        pool: &TxPool,
    ) -> Result<Arrival, Refusal> {
        let known = self.entries.contains_key(&hash);
        if !known {
            if !is_useful(slot, current) {
                return Err(Refusal::NotUseful { slot });
            }
            if self.blocks_in(slot) >= MAX_BLOCKS_PER_SLOT {
                return Err(Refusal::SlotFull { slot });
            }
        }
        let block = block.ok_or(Refusal::NoBlock)?;
        if block.header().number != slot.height {
            return Err(Refusal::WrongHeight { block_height: block.header().number });
        }
        if block.header().hash() != hash {
            return Err(Refusal::WrongHash);
        }
        match block {
            BlockWire::Full(block) => {
                self.fits(&block)?;
                let claimed = match self.entries.get_mut(&hash) {
                    Some(entry) => {
                        if let Stage::Compact(_) = entry.stage {
                            entry.stage = Stage::Full(block);
                        }
                        false
                    }
                    None => {
                        self.entries.insert(hash, Entry::new(Stage::Full(block)));
                        self.slots.insert(hash, slot);
                        true
                    }
                };
                Ok(Arrival { claimed, complete: true })
            }
            BlockWire::Compact(_) if known => {
                Ok(Arrival { claimed: false, complete: self.block(&hash).is_some() })
            }
            BlockWire::Compact(compact) => {
                self.entries.insert(hash, Entry::new(Stage::Compact(compact)));
                // On an error the entry is gone and the slot was never claimed.
                let complete = self.complete(hash, pool)?;
                self.slots.insert(hash, slot);
                Ok(Arrival { claimed: true, complete })
            }
        }
    }

    /// The machine refused the proposal whose arrival claimed `hash`'s place: drops the block
    /// and frees its slot.
    pub(super) fn forget(&mut self, hash: &Hash32) {
        self.entries.remove(hash);
        self.slots.remove(hash);
    }

    /// Completes every compact block whose transactions are all in `pool` now.
    pub(super) fn complete_from(&mut self, pool: &TxPool) -> Completion {
        let waiting: Vec<Hash32> = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry.stage, Stage::Compact(_)))
            .map(|(hash, _)| *hash)
            .collect();
        let mut completion = Completion::default();
        for hash in waiting {
            match self.complete(hash, pool) {
                Ok(true) => completion.completed.push(hash),
                Ok(false) => {}
                Err(error) => completion.dropped.push((hash, error)),
            }
        }
        completion
    }

    /// Makes the compact block `hash` whole from `pool`: `Ok(true)` when it is whole (now or
    /// already), `Ok(false)` while a transaction is missing (or it is not here), `Err` when the
    /// whole block is not a valid one (it is dropped).
    fn complete(&mut self, hash: Hash32, pool: &TxPool) -> Result<bool, BlockError> {
        let Some(entry) = self.entries.get(&hash) else { return Ok(false) };
        let Stage::Compact(compact) = &entry.stage else { return Ok(true) };
        // Checked before anything is cloned: batches are large.
        if !compact.tx_ids.iter().all(|id| pool.contains(id)) {
            return Ok(false);
        }
        let txs = pool.get_many(&compact.tx_ids);
        if txs.len() != compact.tx_ids.len() {
            // Evicted between the two looks: it stays compact until it arrives again.
            return Ok(false);
        }
        let Some(Entry { stage: Stage::Compact(compact), sent }) = self.entries.remove(&hash) else {
            return Ok(false);
        };
        // As many transactions as the compact block's (bounded) ids: this always fits.
        let transactions = BoundedVec::new(txs).map_err(|txs| {
            debug_assert!(false, "{} transactions from {} bounded ids", txs.len(), compact.tx_ids.len());
            BlockError::TooManyTransactions { count: txs.len() }
        })?;
        let block = Block { header: compact.header, transactions };
        self.fits(&block)?;
        self.entries.insert(hash, Entry { stage: Stage::Full(block), sent });
        Ok(true)
    }

    /// Whether `block` is within the chain's size limit.
    fn fits(&self, block: &Block) -> Result<(), BlockError> {
        let size = block.encoded_size();
        if size > self.max_block_bytes {
            return Err(BlockError::TooLarge { size, max: self.max_block_bytes });
        }
        Ok(())
    }

    /// How many blocks claimed `slot`.
    fn blocks_in(&self, slot: Slot) -> usize {
        self.slots.values().filter(|claimed| **claimed == slot).count()
    }

    /// The whole block `hash`, if it is here.
    pub(super) fn block(&self, hash: &Hash32) -> Option<&Block> {
        self.entries.get(hash).and_then(Entry::block)
    }

    /// A block this node built for `round`, with the state changes its building computed.
    pub(super) fn insert_built(&mut self, block: Block, round: Round, changes: StateChanges) {
        let hash = block.hash();
        let slot = Slot { height: block.header.number, round };
        let sent = self.entries.remove(&hash).and_then(|entry| entry.sent);
        self.entries
            .insert(hash, Entry { stage: Stage::Executed { block, changes: Box::new(changes) }, sent });
        self.slots.insert(hash, slot);
    }

    /// A block the machine was locked on (or held as valid) before a restart, read back from the
    /// WAL: whole, to be checked again against our head when the machine asks.
    pub(super) fn restore(&mut self, block: Block, round: Round) {
        let hash = block.hash();
        let slot = Slot { height: block.header.number, round };
        self.entries.entry(hash).or_insert_with(|| Entry::new(Stage::Full(block)));
        self.slots.insert(hash, slot);
    }

    /// The machine asked at `height` to execute `hash`, which is not whole here yet.
    pub(super) fn want(&mut self, hash: Hash32, height: Height) {
        self.wanted.insert(hash, height);
    }

    /// The height at which the machine asked to execute `hash`, once `hash` is whole here
    /// (asked once: the wish is spent).
    pub(super) fn take_wanted(&mut self, hash: &Hash32) -> Option<Height> {
        self.block(hash)?;
        self.wanted.remove(hash)
    }

    /// `hash` applied on our head with `changes`.
    pub(super) fn record_execution(&mut self, hash: Hash32, changes: StateChanges) {
        let Some(Entry { stage, sent }) = self.entries.remove(&hash) else {
            debug_assert!(false, "executed block {hash} is not held");
            return;
        };
        let stage = match stage {
            Stage::Full(block) | Stage::Executed { block, .. } => {
                Stage::Executed { block, changes: Box::new(changes) }
            }
            compact @ Stage::Compact(_) => {
                debug_assert!(false, "executed block {hash} is not whole");
                compact
            }
        };
        self.entries.insert(hash, Entry { stage, sent });
    }

    /// What goes on the wire with the next send of this node's proposal of `hash`: the compact
    /// block for the first [`COMPACT_SENDS`] sends, then the whole block. `None` when the block
    /// is not whole here (after a restart, a proposal signed before it).
    pub(super) fn next_send(&mut self, hash: &Hash32) -> Option<BlockWire> {
        let genesis = self.genesis;
        let Entry { stage, sent } = self.entries.get_mut(hash)?;
        let (block, changes) = match stage {
            Stage::Compact(_) => return None,
            Stage::Full(block) => (&*block, None),
            Stage::Executed { block, changes } => (&*block, Some(&**changes)),
        };
        let sent =
            sent.get_or_insert_with(|| Sent { count: 0, compact: compact_of(block, changes, &genesis) });
        sent.count = sent.count.saturating_add(1);
        let complete = sent.compact.tx_ids.len() == block.transactions.len();
        Some(if sent.count <= COMPACT_SENDS && complete {
            BlockWire::Compact(sent.compact.clone())
        } else {
            BlockWire::Full(block.clone())
        })
    }

    /// The decided block `hash` with its state changes, when it was executed here; otherwise
    /// `None` and it stays (the node syncs it).
    pub(super) fn take_for_commit(&mut self, hash: &Hash32) -> Option<(Block, StateChanges)> {
        if !matches!(self.entries.get(hash)?.stage, Stage::Executed { .. }) {
            return None;
        }
        match self.entries.remove(hash)?.stage {
            Stage::Executed { block, changes } => Some((block, *changes)),
            Stage::Compact(_) | Stage::Full(_) => None,
        }
    }

    /// Forgets the blocks of `current.height` claimed for rounds before `current.round - 1`,
    /// but those in `keep` (the machine's locked and valid values); answers how many. A later
    /// round that re-proposes a forgotten block brings it again.
    pub(super) fn prune_stale_rounds(&mut self, current: Slot, keep: &[Hash32]) -> usize {
        let stale: Vec<Hash32> = self
            .slots
            .iter()
            .filter(|(hash, slot)| {
                slot.height == current.height
                    && slot.round.0.saturating_add(1) < current.round.0
                    && !keep.contains(hash)
            })
            .map(|(hash, _)| *hash)
            .collect();
        for hash in &stale {
            self.entries.remove(hash);
            self.slots.remove(hash);
            self.wanted.remove(hash);
        }
        stale.len()
    }

    /// Forgets everything at or below the committed `height`. The executions of later blocks
    /// were against the old head, so they are forgotten too (none exist: executing a block needs
    /// storage at the block's height).
    pub(super) fn prune_through(&mut self, height: Height) {
        self.entries = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|(_, entry)| entry.height() > height)
            .map(|(hash, Entry { stage, sent })| {
                let stage = match stage {
                    Stage::Executed { block, .. } => {
                        debug_assert!(
                            false,
                            "block #{} executed before #{height} was committed",
                            block.header.number
                        );
                        Stage::Full(block)
                    }
                    other => other,
                };
                (hash, Entry { stage, sent })
            })
            .collect();
        self.wanted.retain(|_, wanted| *wanted > height);
        self.slots.retain(|_, slot| slot.height > height);
    }
}

/// The compact form of `block`. Its build or execution computed the transaction ids (`changes`);
/// without them, each transaction is hashed again.
fn compact_of(block: &Block, changes: Option<&StateChanges>, genesis: &Hash32) -> CompactBlock {
    let ids = match changes {
        Some(changes) if changes.tx_ids.len() == block.transactions.len() => changes.tx_ids.clone(),
        _ => block.transactions.iter().map(|tx| tx.id(genesis)).collect(),
    };
    // As many ids as the block's (bounded) transactions: this always fits.
    let tx_ids = BoundedVec::new(ids).unwrap_or_else(|ids| {
        debug_assert!(false, "{} ids for a block of {} transactions", ids.len(), block.transactions.len());
        BoundedVec::default()
    });
    CompactBlock { header: block.header.clone(), tx_ids }
}

#[cfg(test)]
mod tests {
    use cdrchain_runtime::sample::SampleChain;
    use cdrchain_runtime::tx::SignedTransaction;

    use super::*;

    const MAX_BLOCK_BYTES: usize = 1024 * 1024;

    fn slot(height: u64, round: u32) -> Slot {
        Slot { height: Height(height), round: Round(round) }
    }

    /// A chain of one operator and `count` of its batches, in sequence.
    fn chain_and_txs(count: u64) -> (SampleChain, Vec<SignedTransaction>) {
        let chain = SampleChain::new(&["alice", "bob"]);
        let txs = (0..count).map(|i| chain.batch("alice", i * 10, 10)).collect();
        (chain, txs)
    }

    /// A block at height 1 of `txs`; `timestamp_ms` tells blocks of the same transactions apart.
    fn block(chain: &SampleChain, txs: &[SignedTransaction], timestamp_ms: u64) -> (Block, StateChanges) {
        let (block, changes, refused) = chain.build(txs.to_vec(), timestamp_ms).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        (block, changes)
    }

    fn compact(chain: &SampleChain, block: &Block) -> BlockWire {
        BlockWire::Compact(compact_of(block, None, &chain.genesis_hash()))
    }

    fn pool_of(chain: &SampleChain, txs: &[SignedTransaction]) -> TxPool {
        let pool = TxPool::new(1_000);
        for tx in txs {
            pool.add(tx.id(&chain.genesis_hash()), tx.clone()).unwrap();
        }
        pool
    }

    fn empty_store(chain: &SampleChain) -> ProposalStore {
        ProposalStore::new(MAX_BLOCK_BYTES, chain.genesis_hash())
    }

    #[test]
    fn a_proposal_is_kept_only_for_this_height_up_to_one_round_ahead_or_the_next_round_0() {
        let current = slot(5, 3);
        let cases = [
            (slot(5, 0), true),
            (slot(5, 3), true),
            (slot(5, 4), true),
            (slot(5, 5), false),
            (slot(6, 0), true),
            (slot(6, 1), false),
            (slot(7, 0), false),
            (slot(4, 0), false),
        ];
        for (proposal, useful) in cases {
            assert_eq!(is_useful(proposal, current), useful, "{proposal:?} at {current:?}");
        }
        // Through the store: refused without blame, nothing kept.
        let (chain, txs) = chain_and_txs(1);
        let (block, _) = block(&chain, &txs, 1_000);
        let hash = block.hash();
        let mut store = empty_store(&chain);
        let refusal =
            store.on_wire(slot(1, 2), hash, Some(BlockWire::Full(block)), slot(1, 0), &TxPool::new(1));
        assert_eq!(refusal, Err(Refusal::NotUseful { slot: slot(1, 2) }));
        assert!(!refusal.unwrap_err().is_fault());
        assert!(store.block(&hash).is_none());
    }

    #[test]
    fn a_third_block_for_one_height_and_round_is_ignored_unless_already_held() {
        let (chain, txs) = chain_and_txs(1);
        let pool = pool_of(&chain, &txs);
        let blocks: Vec<Block> = (0..3).map(|i| block(&chain, &txs, 1_000 + i).0).collect();
        let mut store = empty_store(&chain);
        let here = slot(1, 0);
        for block in &blocks[..2] {
            let arrival =
                store.on_wire(here, block.hash(), Some(BlockWire::Full(block.clone())), here, &pool);
            assert_eq!(arrival, Ok(Arrival { claimed: true, complete: true }));
        }
        let third = &blocks[2];
        let refusal = store.on_wire(here, third.hash(), Some(compact(&chain, third)), here, &pool);
        assert_eq!(refusal, Err(Refusal::SlotFull { slot: here }));
        assert!(!refusal.unwrap_err().is_fault());
        assert!(store.block(&third.hash()).is_none());
        // A block already held is still taken again (a re-broadcast), claiming nothing.
        let again = store.on_wire(here, blocks[0].hash(), Some(compact(&chain, &blocks[0])), here, &pool);
        assert_eq!(again, Ok(Arrival { claimed: false, complete: true }));
        // Another round is another slot; and a block the machine refused frees its place.
        assert!(store
            .on_wire(slot(1, 1), third.hash(), Some(BlockWire::Full(third.clone())), here, &pool)
            .is_ok());
        store.forget(&blocks[0].hash());
        assert!(store.block(&blocks[0].hash()).is_none());
        let (fourth, _) = block(&chain, &txs, 2_000);
        assert!(store
            .on_wire(here, fourth.hash(), Some(BlockWire::Full(fourth.clone())), here, &pool)
            .is_ok());
    }

    #[test]
    fn a_block_built_here_counts_in_its_slot() {
        let (chain, txs) = chain_and_txs(1);
        let pool = pool_of(&chain, &txs);
        let mut store = empty_store(&chain);
        let (ours, changes) = block(&chain, &txs, 1_000);
        store.insert_built(ours, Round(0), changes);
        let (theirs, _) = block(&chain, &txs, 1_001);
        let here = slot(1, 0);
        assert!(store.on_wire(here, theirs.hash(), Some(BlockWire::Full(theirs)), here, &pool).is_ok());
        let (third, _) = block(&chain, &txs, 1_002);
        let refusal = store.on_wire(here, third.hash(), Some(BlockWire::Full(third)), here, &pool);
        assert_eq!(refusal, Err(Refusal::SlotFull { slot: here }));
    }

    #[test]
    fn a_malformed_proposal_is_refused_with_blame_and_nothing_is_kept() {
        let (chain, txs) = chain_and_txs(1);
        let pool = pool_of(&chain, &txs);
        let (first, _) = block(&chain, &txs, 1_000);
        let (other, _) = block(&chain, &txs, 1_001);
        let here = slot(1, 0);
        let mut store = empty_store(&chain);
        let cases = [
            (slot(1, 0), first.hash(), None, Refusal::NoBlock),
            (
                slot(2, 0),
                first.hash(),
                Some(BlockWire::Full(first.clone())),
                Refusal::WrongHeight { block_height: Height(1) },
            ),
            (slot(1, 0), first.hash(), Some(BlockWire::Full(other.clone())), Refusal::WrongHash),
            (slot(1, 0), first.hash(), Some(compact(&chain, &other)), Refusal::WrongHash),
        ];
        for (proposal, hash, wire, expected) in cases {
            let refusal = store.on_wire(proposal, hash, wire, here, &pool).unwrap_err();
            assert!(refusal.is_fault(), "{refusal}");
            assert_eq!(refusal, expected);
        }
        assert!(store.entries.is_empty() && store.slots.is_empty());
    }

    #[test]
    fn a_block_over_the_size_limit_is_refused_whole_or_dropped_once_completed() {
        let (chain, txs) = chain_and_txs(2);
        let (big, _) = block(&chain, &txs, 1_000);
        let size = big.encoded_size();
        let mut store = ProposalStore::new(size - 1, chain.genesis_hash());
        let here = slot(1, 0);
        let too_large = Refusal::Block(BlockError::TooLarge { size, max: size - 1 });
        let refusal =
            store.on_wire(here, big.hash(), Some(BlockWire::Full(big.clone())), here, &TxPool::new(1));
        assert_eq!(refusal, Err(too_large.clone()));
        // Compact with every transaction in the pool: refused on arrival.
        let pool = pool_of(&chain, &txs);
        let refusal = store.on_wire(here, big.hash(), Some(compact(&chain, &big)), here, &pool);
        assert_eq!(refusal, Err(too_large));
        assert!(store.entries.is_empty() && store.slots.is_empty());
        // Compact and completed later: dropped then, its slot still claimed.
        let partial = pool_of(&chain, &txs[..1]);
        let arrival = store.on_wire(here, big.hash(), Some(compact(&chain, &big)), here, &partial);
        assert_eq!(arrival, Ok(Arrival { claimed: true, complete: false }));
        partial.add(txs[1].id(&chain.genesis_hash()), txs[1].clone()).unwrap();
        let completion = store.complete_from(&partial);
        assert!(completion.completed.is_empty());
        assert_eq!(completion.dropped, vec![(big.hash(), BlockError::TooLarge { size, max: size - 1 })]);
        assert!(store.block(&big.hash()).is_none());
        assert_eq!(store.blocks_in(here), 1);
    }

    #[test]
    fn a_compact_block_is_completed_from_the_pool_or_by_a_whole_copy() {
        let (chain, txs) = chain_and_txs(3);
        let (full, _) = block(&chain, &txs, 1_000);
        let hash = full.hash();
        let here = slot(1, 0);
        let pool = pool_of(&chain, &txs[..2]);
        let mut store = empty_store(&chain);
        let arrival = store.on_wire(here, hash, Some(compact(&chain, &full)), here, &pool);
        assert_eq!(arrival, Ok(Arrival { claimed: true, complete: false }));
        assert!(store.block(&hash).is_none());
        assert!(store.complete_from(&pool).completed.is_empty(), "a transaction is still missing");
        pool.add(txs[2].id(&chain.genesis_hash()), txs[2].clone()).unwrap();
        let completion = store.complete_from(&pool);
        assert_eq!(completion.completed, vec![hash]);
        assert_eq!(store.block(&hash), Some(&full));
        // Or: a whole copy (a later re-broadcast) completes it, claiming nothing more.
        let mut store = empty_store(&chain);
        let short = pool_of(&chain, &txs[..1]);
        store.on_wire(here, hash, Some(compact(&chain, &full)), here, &short).unwrap();
        let arrival = store.on_wire(here, hash, Some(BlockWire::Full(full.clone())), here, &short);
        assert_eq!(arrival, Ok(Arrival { claimed: false, complete: true }));
        assert_eq!(store.block(&hash), Some(&full));
        assert_eq!(store.blocks_in(here), 1);
    }

    #[test]
    fn a_block_wanted_before_it_was_complete_is_executed_when_it_completes() {
        let (chain, txs) = chain_and_txs(2);
        let (full, _) = block(&chain, &txs, 1_000);
        let hash = full.hash();
        let here = slot(1, 0);
        let pool = pool_of(&chain, &txs[..1]);
        let mut store = empty_store(&chain);
        // The machine asks before the proposal is here at all, then it arrives compact.
        store.want(hash, Height(1));
        assert_eq!(store.take_wanted(&hash), None, "not whole yet");
        store.on_wire(here, hash, Some(compact(&chain, &full)), here, &pool).unwrap();
        assert_eq!(store.take_wanted(&hash), None, "still not whole");
        pool.add(txs[1].id(&chain.genesis_hash()), txs[1].clone()).unwrap();
        assert_eq!(store.complete_from(&pool).completed, vec![hash]);
        assert_eq!(store.take_wanted(&hash), Some(Height(1)));
        assert_eq!(store.take_wanted(&hash), None, "asked once, executed once");
        // A block nobody asked about is not executed when it completes.
        let (other, _) = block(&chain, &txs, 1_001);
        store.on_wire(here, other.hash(), Some(BlockWire::Full(other.clone())), here, &pool).unwrap();
        assert_eq!(store.take_wanted(&other.hash()), None);
    }

    #[test]
    fn our_proposal_goes_compact_for_its_first_sends_then_whole() {
        let (chain, txs) = chain_and_txs(2);
        let (ours, changes) = block(&chain, &txs, 1_000);
        let hash = ours.hash();
        let mut store = empty_store(&chain);
        assert_eq!(store.next_send(&hash), None, "not held: nothing to send");
        store.insert_built(ours.clone(), Round(0), changes);
        let expected = compact(&chain, &ours);
        for _ in 0..COMPACT_SENDS {
            assert_eq!(store.next_send(&hash), Some(expected.clone()));
        }
        for _ in 0..3 {
            assert_eq!(store.next_send(&hash), Some(BlockWire::Full(ours.clone())));
        }
    }

    #[test]
    fn only_an_executed_block_is_taken_for_commit() {
        let (chain, txs) = chain_and_txs(1);
        let pool = pool_of(&chain, &txs);
        let (full, changes) = block(&chain, &txs, 1_000);
        let hash = full.hash();
        let here = slot(1, 0);
        let mut store = empty_store(&chain);
        assert!(store.take_for_commit(&hash).is_none(), "not here");
        store.on_wire(here, hash, Some(BlockWire::Full(full.clone())), here, &pool).unwrap();
        assert!(store.take_for_commit(&hash).is_none(), "not executed");
        assert_eq!(store.block(&hash), Some(&full), "and still held");
        store.record_execution(hash, changes.clone());
        assert_eq!(store.take_for_commit(&hash), Some((full, changes)));
        assert!(store.block(&hash).is_none());
    }

    #[test]
    fn pruning_forgets_everything_through_the_committed_height() {
        let (mut chain, txs) = chain_and_txs(2);
        let pool = pool_of(&chain, &txs);
        let (first, changes) = block(&chain, &txs[..1], 1_000);
        let (sibling, _) = block(&chain, &txs[..1], 1_001);
        let mut store = empty_store(&chain);
        store.insert_built(first.clone(), Round(0), changes);
        let at_1 = slot(1, 0);
        store.on_wire(at_1, sibling.hash(), Some(compact(&chain, &sibling)), at_1, &TxPool::new(1)).unwrap();
        store.want(sibling.hash(), Height(1));
        chain.import(first.clone()).unwrap();
        let (next, _) = block(&chain, &txs[1..], 2_000);
        let at_2 = slot(2, 0);
        store.on_wire(at_2, next.hash(), Some(BlockWire::Full(next.clone())), at_1, &pool).unwrap();
        store.want(Hash32::default(), Height(2));
        store.prune_through(Height(1));
        assert!(store.block(&first.hash()).is_none());
        assert!(!store.entries.contains_key(&sibling.hash()));
        assert_eq!(store.blocks_in(at_1), 0);
        assert_eq!(store.wanted.keys().collect::<Vec<_>>(), vec![&Hash32::default()]);
        assert_eq!(store.block(&next.hash()), Some(&next));
        assert_eq!(store.blocks_in(at_2), 1);
    }

    #[test]
    fn a_stall_without_quorum_keeps_two_rounds_and_the_locked_value() {
        let (chain, txs) = chain_and_txs(2);
        let mut store = ProposalStore::new(MAX_BLOCK_BYTES, chain.genesis_hash());
        // One new block per round for 60 rounds, as a proposer does while no round decides.
        let mut hashes = Vec::new();
        for round in 0..60u32 {
            let (block, changes) = block(&chain, &txs, 1_000 + u64::from(round));
            hashes.push(block.hash());
            store.insert_built(block, Round(round), changes);
            // Locked on round 3's block once it exists.
            let locked: Vec<Hash32> = hashes.get(3).copied().into_iter().collect();
            store.prune_stale_rounds(slot(1, round), &locked);
            assert!(store.entries.len() <= 3, "round {round}: {} blocks held", store.entries.len());
        }
        // Rounds 58 and 59, and round 3's block, the locked value.
        for (round, hash) in hashes.iter().enumerate() {
            assert_eq!(store.block(hash).is_some(), round >= 58 || round == 3, "round {round}");
        }
        assert_eq!(store.slots.len(), store.entries.len());
        // The next height's blocks are never pruned by this height's rounds.
        assert_eq!(store.prune_stale_rounds(slot(0, 100), &[]), 0);
    }
}
