//! The state transition: `apply_block(view, parent, block) -> StateChanges`, and the block builder
//! that shares its execution path.
//!
//! Pure: the parent state comes in through [`StateView`], the changes go out as [`StateChanges`]
//! for storage to write in one batch. Nothing here reads a clock or the disk; the block's timestamp
//! is an input chosen by its proposer.

use std::collections::{BTreeMap, BTreeSet};

use parity_scale_codec::{Decode, Encode};

use crate::block::{Block, Header};
use crate::cdr::CdrError;
use crate::checkpoint::{Checkpoint, CheckpointSignature, StoredSignature};
use crate::codec::{decode_exact, BoundedVec};
use crate::crypto::{self, PublicKey, SignatureError};
use crate::hash::Hash32;
use crate::ids::{CallId, Height, OperatorId, Sequence};
use crate::merkle::{Domain, Frontier, NodeId};
use crate::smt;
use crate::state::{state_root, tree_changes, Authorities, OperatorRecord, StateKey, StateView, TreeOf};
use crate::tx::{tx_root, CallState, CdrBatch, SignedTransaction, Transaction};

/// What the runtime needs to know about the chain besides its state: the genesis hash (every
/// signature is bound to it) and the chain spec's block limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainContext {
    pub genesis_hash: Hash32,
    pub max_block_bytes: usize,
    pub max_block_cdrs: usize,
    /// Every this many blocks the chain records a checkpoint (0: never).
    pub checkpoint_interval: u64,
    /// The RSK chain id checkpoint signatures are made for (EIP-712 domain).
    pub rsk_chain_id: u64,
}

/// The parent a block builds on: the previous header, or the genesis for height 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    pub hash: Hash32,
    pub number: Height,
    pub timestamp_ms: u64,
    /// The parent's roots, for the checkpoint a block records of its parent.
    pub state_root: Hash32,
    pub cdr_log_root: Hash32,
    pub cdr_log_size: u64,
}

impl ParentRef {
    /// The parent of block 1 (height 0 is never checkpointed).
    pub fn genesis(genesis_hash: Hash32) -> Self {
        Self {
            hash: genesis_hash,
            number: Height(0),
            timestamp_ms: 0,
            state_root: Hash32::ZERO,
            cdr_log_root: Hash32::ZERO,
            cdr_log_size: 0,
        }
    }

    pub fn of(header: &Header) -> Self {
        Self::with_hash(header, header.hash())
    }

    /// [`ParentRef::of`] when the header's hash is already known.
    pub fn with_hash(header: &Header, hash: Hash32) -> Self {
        Self {
            hash,
            number: header.number,
            timestamp_ms: header.timestamp_ms,
            state_root: header.state_root,
            cdr_log_root: header.cdr_log_root,
            cdr_log_size: header.cdr_log_size,
        }
    }

    /// The checkpoint of this parent, when its height is a checkpoint height.
    pub fn checkpoint(&self, ctx: &ChainContext) -> Option<Checkpoint> {
        let height = self.number.0;
        (ctx.checkpoint_interval > 0 && height > 0 && height.is_multiple_of(ctx.checkpoint_interval))
            .then_some(Checkpoint {
                genesis_hash: ctx.genesis_hash,
                height: self.number,
                block_hash: self.hash,
                state_root: self.state_root,
                cdr_log_root: self.cdr_log_root,
                cdr_log_size: self.cdr_log_size,
            })
    }
}

/// Everything a block changes, for storage to write in one atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChanges {
    /// New values by encoded key; `None` deletes.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The state tree's node writes by position ([`smt::position_key`]); `None` deletes.
    pub tree_writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The CDR log's frontier after the block.
    pub cdr_log: Frontier,
    /// Perfect subtrees of the log completed by the block (the leaves included).
    pub new_log_nodes: Vec<(NodeId, Hash32)>,
    /// Log index of the block's first CDR (the parent's log size).
    pub first_leaf_index: u64,
    /// The ids of the block's transactions, in order (the leaves of `tx_root`): computed once
    /// here, so the node need not encode and hash every batch again after the block.
    pub tx_ids: Vec<Hash32>,
    pub tx_root: Hash32,
    pub cdr_log_root: Hash32,
    pub state_root: Hash32,
}

/// Why one transaction is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("`{0}` is not a registered operator")]
    UnknownOperator(OperatorId),
    #[error("bad signature: {0}")]
    BadSignature(#[from] SignatureError),
    #[error("duplicate: `{operator}` is at sequence {expected}, the transaction starts at {got}")]
    DuplicateSequence { operator: OperatorId, expected: Sequence, got: Sequence },
    #[error(
        "gap: `{operator}` is at sequence {expected}, the transaction starts at {got}; declare a SequenceGap"
    )]
    SequenceGap { operator: OperatorId, expected: Sequence, got: Sequence },
    #[error("sequence numbers of `{operator}` would pass 2^64")]
    SequenceOverflow { operator: OperatorId },
    #[error("the batch holds no CDRs")]
    EmptyBatch,
    #[error("CDR {index} of the batch: {error}")]
    InvalidCdr { index: usize, error: CdrError },
    #[error("the gap {from}..={to} runs backwards")]
    GapBackwards { from: Sequence, to: Sequence },
    #[error("call `{call_id}`: {} -> {} is not a legal transition", state_name(.from), to.name())]
    IllegalCallTransition { call_id: CallId, from: Option<CallState>, to: CallState },
    #[error("call `{call_id}`: event at {at_ms} ms is before the previous one at {previous_ms} ms")]
    CallEventBeforePrevious { call_id: CallId, at_ms: u64, previous_ms: u64 },
    #[error("transaction {id} appears twice in the block")]
    Duplicate { id: Hash32 },
    #[error("`{0}` is not an authority: only validators sign checkpoints")]
    NotAnAuthority(OperatorId),
    #[error("no checkpoint at height {0} (not a checkpoint height, or its next block is not in yet)")]
    UnknownCheckpoint(Height),
    #[error(
        "`{operator}` opened {max} gaps in this block, its most per block: the gap waits for the next block"
    )]
    GapQuota { operator: OperatorId, max: u32 },
    #[error("`{operator}` has {max} live calls, its most: end or let calls time out first")]
    LiveCallQuota { operator: OperatorId, max: u32 },
    #[error("`{operator}` already signed the checkpoint at height {height}")]
    AlreadySigned { operator: OperatorId, height: Height },
    #[error("the checkpoint signature of `{operator}` at height {height} recovers to {recovered}, not its EVM address {expected}")]
    WrongCheckpointSigner { operator: OperatorId, height: Height, recovered: String, expected: String },
    #[error("the checkpoint signature of `{operator}` at height {height} is malformed: {reason}")]
    BadCheckpointSignature { operator: OperatorId, height: Height, reason: String },
    #[error("`{0}` was removed from the consortium: it signs nothing the chain accepts")]
    Retired(OperatorId),
    #[error("`{0}` is not an authority: only validators propose and approve set changes")]
    NotAGovernor(OperatorId),
    #[error("a set change is already {state} (proposal {proposal}): one change at a time")]
    ChangeInFlight { state: &'static str, proposal: Hash32 },
    #[error("no open proposal {0} (never made, expired, or already approved by a quorum)")]
    NoSuchProposal(Hash32),
    #[error("`{operator}` already approved proposal {proposal}")]
    AlreadyApproved { operator: OperatorId, proposal: Hash32 },
    #[error("`{0}` is not an authority: only authorities are removed or rotate keys by governance")]
    NotInSet(OperatorId),
    #[error("`{0}` is already an authority")]
    AlreadyAuthority(OperatorId),
    #[error("`{operator}` is registered with another {what}: a member joins the set with its own keys")]
    KeysDiffer { operator: OperatorId, what: &'static str },
    #[error("the set has {max} authorities, its most")]
    SetFull { max: usize },
    #[error("`{0}` is the last authority: a set never empties")]
    LastAuthority(OperatorId),
    #[error("`{proposer}` cannot rotate the keys of `{subject}`: an operator rotates its own keys")]
    RotateOthers { proposer: OperatorId, subject: OperatorId },
    #[error("the rotation of `{0}` names no new key, or only its current ones")]
    NothingToRotate(OperatorId),
    #[error("the {what} of `{operator}` is already `{other}`'s")]
    KeyInUse { operator: OperatorId, other: OperatorId, what: &'static str },
    #[error("the {what} proof of possession for `{operator}` does not verify: {reason}")]
    BadPossession { operator: OperatorId, what: &'static str, reason: String },
    #[error(
        "set {0} is neither scheduled nor in force with the set before it known: nothing to sign for it"
    )]
    UnknownSetChange(u64),
    #[error("`{operator}` is not in the set that signs the change to set {set_id}")]
    NotASigner { operator: OperatorId, set_id: u64 },
    #[error("`{operator}` already signed the contract's change to set {set_id}")]
    ChangeAlreadySigned { operator: OperatorId, set_id: u64 },
    #[error("the signature of `{operator}` for the change to set {set_id} recovers to {recovered}, not its EVM address {expected}")]
    WrongSetChangeSigner { operator: OperatorId, set_id: u64, recovered: String, expected: String },
    #[error(transparent)]
    Interconnect(#[from] crate::interconnect::InterconnectError),
}

fn state_name(state: &Option<CallState>) -> &'static str {
    state.map_or("(no call)", CallState::name)
}

impl CallState {
    pub fn name(self) -> &'static str {
        match self {
            CallState::Setup => "setup",
            CallState::Ringing => "ringing",
            CallState::Answered => "answered",
            CallState::Ended => "ended",
        }
    }
}

/// Why a block is invalid (or could not be checked).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("block is {len} bytes, over the chain's limit of {max}")]
    BlockTooLarge { len: usize, max: usize },
    #[error("block holds {count} CDRs, over the chain's limit of {max}")]
    TooManyCdrs { count: usize, max: usize },
    #[error("block's parent is {got}, expected {expected}")]
    WrongParent { expected: Hash32, got: Hash32 },
    #[error("block is at height {got}, expected {expected}")]
    WrongHeight { expected: Height, got: Height },
    #[error("block timestamp {got} ms is before its parent's {parent} ms")]
    TimestampBeforeParent { parent: u64, got: u64 },
    #[error("proposer `{0}` is not an authority")]
    ProposerNotAuthority(OperatorId),
    #[error("transaction {index}: {error}")]
    Transaction { index: usize, error: TxError },
    #[error("header {field} is {header}, the block computes {computed}")]
    RootMismatch { field: &'static str, header: Hash32, computed: Hash32 },
    #[error("header cdr_log_size is {header}, the block computes {computed}")]
    LogSizeMismatch { header: u64, computed: u64 },
    #[error("state entry {key} does not decode: {reason}")]
    CorruptState { key: String, reason: String },
    #[error("the CDR log would pass 2^64 leaves")]
    LogFull,
    #[error("reading the parent state failed: {0}")]
    State(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Either the transaction is at fault, or the state could not be read.
pub(crate) enum Failure {
    Tx(TxError),
    Fatal(ApplyError),
}

impl From<TxError> for Failure {
    fn from(error: TxError) -> Self {
        Failure::Tx(error)
    }
}

impl From<ApplyError> for Failure {
    fn from(error: ApplyError) -> Self {
        Failure::Fatal(error)
    }
}

/// The execution shared by import and building: an overlay of writes over the parent state.
pub(crate) struct Executor<'a, V: StateView> {
    pub(crate) ctx: &'a ChainContext,
    pub(crate) view: &'a V,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    log: Frontier,
    first_leaf_index: u64,
    new_log_nodes: Vec<(NodeId, Hash32)>,
    tx_ids: Vec<Hash32>,
    seen_ids: BTreeSet<Hash32>,
    cdr_count: usize,
    pub(crate) height: Height,
    /// The block's timestamp: live calls' deadlines are block times.
    pub(crate) timestamp_ms: u64,
    /// Gaps each operator opened in this block (merges into an adjacent gap do not count).
    pub(crate) new_gaps: BTreeMap<OperatorId, u32>,
    /// Reused for leaf encodings: one allocation per block, not per CDR.
    leaf_buffer: Vec<u8>,
    /// Transaction keys read in this block, by operator: a block holds many transactions of a
    /// few operators. Keys change only when a set change is enacted, before the first
    /// transaction, so what is read once holds for the block.
    keys: BTreeMap<OperatorId, PublicKey>,
}

impl<'a, V: StateView> Executor<'a, V> {
    fn new(
        ctx: &'a ChainContext,
        view: &'a V,
        parent: &ParentRef,
        height: Height,
        timestamp_ms: u64,
    ) -> Result<Self, ApplyError> {
        let log = view.cdr_log().map_err(|e| ApplyError::State(Box::new(e)))?;
        let mut executor = Self {
            ctx,
            view,
            writes: BTreeMap::new(),
            first_leaf_index: log.size(),
            log,
            new_log_nodes: Vec::new(),
            tx_ids: Vec::new(),
            seen_ids: BTreeSet::new(),
            cdr_count: 0,
            height,
            timestamp_ms,
            new_gaps: BTreeMap::new(),
            leaf_buffer: Vec::with_capacity(512),
            keys: BTreeMap::new(),
        };
        // A block records its parent's checkpoint: only now is the parent's hash known.
        if let Some(checkpoint) = parent.checkpoint(ctx) {
            executor.write(&StateKey::Checkpoint(checkpoint.height), Some(&checkpoint));
        }
        // A scheduled set change takes effect before anything in the block is checked.
        executor.enact_and_expire()?;
        executor.expire_calls()?;
        Ok(executor)
    }

    pub(crate) fn read<T: Decode>(&self, key: &StateKey) -> Result<Option<T>, ApplyError> {
        let encoded = key.encode();
        let bytes = match self.writes.get(&encoded) {
            Some(value) => value.clone(),
            None => self.view.get(&encoded).map_err(|e| ApplyError::State(Box::new(e)))?,
        };
        bytes
            .map(|bytes| {
                decode_exact(&bytes)
                    .map_err(|e| ApplyError::CorruptState { key: format!("{key:?}"), reason: e.to_string() })
            })
            .transpose()
    }

    pub(crate) fn write<T: Encode>(&mut self, key: &StateKey, value: Option<&T>) {
        self.writes.insert(key.encode(), value.map(Encode::encode));
    }

    pub(crate) fn authorities(&self) -> Result<Authorities, ApplyError> {
        Ok(self.read(&StateKey::Authorities)?.unwrap_or_default())
    }

    /// The key that signs `operator`'s transactions; refused once it was removed. Read from the
    /// state once per operator and block.
    fn signing_key(&mut self, operator: &OperatorId) -> Result<PublicKey, Failure> {
        if let Some(key) = self.keys.get(operator) {
            return Ok(*key);
        }
        let record: Option<OperatorRecord> = self.read(&StateKey::Operator(operator.clone()))?;
        let record = record.ok_or_else(|| Failure::Tx(TxError::UnknownOperator(operator.clone())))?;
        if self.read::<Height>(&StateKey::Retired(operator.clone()))?.is_some() {
            return Err(TxError::Retired(operator.clone()).into());
        }
        self.keys.insert(operator.clone(), record.signing_key);
        Ok(record.signing_key)
    }

    pub(crate) fn next_sequence(&self, operator: &OperatorId) -> Result<Sequence, Failure> {
        self.read(&StateKey::NextSequence(operator.clone()))?
            .ok_or_else(|| Failure::Tx(TxError::UnknownOperator(operator.clone())))
    }

    pub(crate) fn expect_sequence(&self, operator: &OperatorId, got: Sequence) -> Result<Sequence, Failure> {
        let expected = self.next_sequence(operator)?;
        match got.cmp(&expected) {
            std::cmp::Ordering::Equal => Ok(expected),
            std::cmp::Ordering::Less => {
                Err(TxError::DuplicateSequence { operator: operator.clone(), expected, got }.into())
            }
            std::cmp::Ordering::Greater => {
                Err(TxError::SequenceGap { operator: operator.clone(), expected, got }.into())
            }
        }
    }

    /// Executes one transaction whose signature was already checked. Checks everything before it
    /// writes anything, so a refused transaction leaves the overlay as it was.
    fn execute(&mut self, tx: &SignedTransaction, id: Hash32) -> Result<(), Failure> {
        if self.seen_ids.contains(&id) {
            return Err(TxError::Duplicate { id }.into());
        }
        match &tx.transaction {
            Transaction::CdrBatch(batch) => self.cdr_batch(batch)?,
            Transaction::SequenceGap(gap) => self.sequence_gap(gap)?,
            Transaction::CallEvent(event) => self.call_event(event)?,
            Transaction::CheckpointSignature(signature) => self.checkpoint_signature(signature)?,
            Transaction::ProposeChange(propose) => self.propose_change(propose, id)?,
            Transaction::ApproveChange(approve) => self.approve_change(approve)?,
            Transaction::SetChangeSignature(signature) => self.set_change_signature(signature)?,
            Transaction::Interconnect(tx) => self.interconnect(tx, id)?,
        }
        self.seen_ids.insert(id);
        self.tx_ids.push(id);
        Ok(())
    }

    /// A validator's checkpoint signature: for a recorded checkpoint, once per validator and
    /// height, recovering to the validator's registered EVM address for the contract it names.
    fn checkpoint_signature(&mut self, tx: &CheckpointSignature) -> Result<(), Failure> {
        let operator = &tx.operator;
        let record: OperatorRecord = self
            .read(&StateKey::Operator(operator.clone()))?
            .ok_or_else(|| Failure::Tx(TxError::UnknownOperator(operator.clone())))?;
        if !self.authorities()?.contains(operator) {
            return Err(TxError::NotAnAuthority(operator.clone()).into());
        }
        let checkpoint: Checkpoint = self
            .read(&StateKey::Checkpoint(tx.height))?
            .ok_or(Failure::Tx(TxError::UnknownCheckpoint(tx.height)))?;
        let key = StateKey::CheckpointSignature(tx.height, operator.clone());
        if self.read::<StoredSignature>(&key)?.is_some() {
            return Err(TxError::AlreadySigned { operator: operator.clone(), height: tx.height }.into());
        }
        let digest = checkpoint.digest(self.ctx.rsk_chain_id, &tx.contract);
        let recovered = crate::checkpoint::recover(&digest, &tx.signature).map_err(|e| {
            TxError::BadCheckpointSignature {
                operator: operator.clone(),
                height: tx.height,
                reason: e.to_string(),
            }
        })?;
        if recovered != record.evm_address {
            return Err(TxError::WrongCheckpointSigner {
                operator: operator.clone(),
                height: tx.height,
                recovered: recovered.to_hex(),
                expected: record.evm_address.to_hex(),
            }
            .into());
        }
        self.write(&key, Some(&StoredSignature { contract: tx.contract, signature: tx.signature }));
        Ok(())
    }

    fn cdr_batch(&mut self, batch: &CdrBatch) -> Result<(), Failure> {
        if batch.cdrs.is_empty() {
            return Err(TxError::EmptyBatch.into());
        }
        let first = self.expect_sequence(&batch.operator, batch.first_sequence)?;
        let count = u64::try_from(batch.cdrs.len()).map_err(|_| TxError::EmptyBatch)?;
        let next = first
            .0
            .checked_add(count)
            .ok_or_else(|| TxError::SequenceOverflow { operator: batch.operator.clone() })?;
        for (index, cdr) in batch.cdrs.iter().enumerate() {
            cdr.validate().map_err(|error| TxError::InvalidCdr { index, error })?;
        }
        if self.log.size().checked_add(count).is_none() {
            return Err(ApplyError::LogFull.into());
        }
        for (body, sequence) in batch.cdrs.iter().zip(first.0..) {
            let leaf =
                crate::cdr::leaf_hash(&batch.operator, Sequence(sequence), body, &mut self.leaf_buffer);
            let nodes = &mut self.new_log_nodes;
            self.log
                .append(Domain::CDR_LOG, leaf, &mut |id, hash| nodes.push((id, hash)))
                .map_err(|_| ApplyError::LogFull)?;
        }
        self.cdr_count += batch.cdrs.len();
        self.write(&StateKey::NextSequence(batch.operator.clone()), Some(&Sequence(next)));
        Ok(())
    }

    /// The roots of the parent state plus the overlay: the state tree is updated along the
    /// paths of the written keys only (O(writes × depth), never a scan of the state).
    fn finish(self) -> Result<StateChanges, ApplyError> {
        let tree = smt::update(&TreeOf(self.view), &tree_changes(&self.writes)).map_err(|e| match e {
            smt::TreeError::Read(e) => ApplyError::State(Box::new(e)),
            other => ApplyError::CorruptState { key: "state tree".to_string(), reason: other.to_string() },
        })?;
        let cdr_log_root = self.log.root(Domain::CDR_LOG);
        Ok(StateChanges {
            state_root: state_root(&cdr_log_root, self.log.size(), &tree.root),
            tx_root: tx_root(&self.tx_ids),
            tx_ids: self.tx_ids,
            cdr_log_root,
            cdr_log: self.log,
            new_log_nodes: self.new_log_nodes,
            first_leaf_index: self.first_leaf_index,
            writes: self.writes,
            tree_writes: tree.writes,
        })
    }
}

fn check_parent(parent: &ParentRef, header: &Header) -> Result<(), ApplyError> {
    if header.parent_hash != parent.hash {
        return Err(ApplyError::WrongParent { expected: parent.hash, got: header.parent_hash });
    }
    let expected = parent
        .number
        .next()
        .ok_or(ApplyError::WrongHeight { expected: parent.number, got: header.number })?;
    if header.number != expected {
        return Err(ApplyError::WrongHeight { expected, got: header.number });
    }
    if header.timestamp_ms < parent.timestamp_ms {
        return Err(ApplyError::TimestampBeforeParent {
            parent: parent.timestamp_ms,
            got: header.timestamp_ms,
        });
    }
    Ok(())
}

/// Checks `block` against its parent state and returns what it changes. Every rule is checked:
/// parent, height, limits, proposer, every signature (batch-verified), every transaction, and the
/// header's roots against the recomputed ones.
pub fn apply_block<V: StateView>(
    ctx: &ChainContext,
    view: &V,
    parent: &ParentRef,
    block: &Block,
) -> Result<StateChanges, ApplyError> {
    let len = block.encoded_size();
    if len > ctx.max_block_bytes {
        return Err(ApplyError::BlockTooLarge { len, max: ctx.max_block_bytes });
    }
    let count = block.cdr_count();
    if count > ctx.max_block_cdrs {
        return Err(ApplyError::TooManyCdrs { count, max: ctx.max_block_cdrs });
    }
    let header = &block.header;
    check_parent(parent, header)?;
    let mut executor = Executor::new(ctx, view, parent, header.number, header.timestamp_ms)?;
    if !executor.authorities()?.contains(&header.proposer) {
        return Err(ApplyError::ProposerNotAuthority(header.proposer.clone()));
    }

    // Signatures: one batch for the whole block; on failure, strict single checks name the culprit.
    let mut batch = Vec::with_capacity(block.transactions.len());
    for (index, tx) in block.transactions.iter().enumerate() {
        let key = executor.signing_key(tx.transaction.operator()).map_err(|f| at(index, f))?;
        batch.push((key, tx.id(&ctx.genesis_hash), tx.signature));
    }
    if crypto::verify_batch(&batch).is_err() {
        for (index, (key, id, signature)) in batch.iter().enumerate() {
            crypto::verify(key, id, signature)
                .map_err(|e| ApplyError::Transaction { index, error: TxError::BadSignature(e) })?;
        }
        // The batch failed but every single check passed: a key the batch refused (weak key).
        return Err(ApplyError::Transaction {
            index: 0,
            error: TxError::BadSignature(SignatureError::BatchInvalid { count: batch.len() }),
        });
    }

    for (index, (tx, (_, id, _))) in block.transactions.iter().zip(&batch).enumerate() {
        executor.execute(tx, *id).map_err(|f| at(index, f))?;
    }
    let changes = executor.finish()?;
    compare("tx_root", header.tx_root, changes.tx_root)?;
    compare("cdr_log_root", header.cdr_log_root, changes.cdr_log_root)?;
    if header.cdr_log_size != changes.cdr_log.size() {
        return Err(ApplyError::LogSizeMismatch {
            header: header.cdr_log_size,
            computed: changes.cdr_log.size(),
        });
    }
    compare("state_root", header.state_root, changes.state_root)?;
    Ok(changes)
}

fn at(index: usize, failure: Failure) -> ApplyError {
    match failure {
        Failure::Tx(error) => ApplyError::Transaction { index, error },
        Failure::Fatal(error) => error,
    }
}

fn compare(field: &'static str, header: Hash32, computed: Hash32) -> Result<(), ApplyError> {
    if header == computed {
        Ok(())
    } else {
        Err(ApplyError::RootMismatch { field, header, computed })
    }
}

/// Why the builder did not take a transaction.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The transaction is invalid against this state: drop it (and tell its submitter).
    #[error("transaction refused: {0}")]
    Invalid(TxError),
    /// The block is full: keep the transaction for the next block.
    #[error("the block is full")]
    Full,
    /// The transaction is over a per-block quota of its operator: keep it for the next block.
    #[error("later: {0}")]
    Later(TxError),
    /// The state could not be read: stop building.
    #[error(transparent)]
    Fatal(ApplyError),
}

/// Roughly the bytes of a header and the block's length prefixes: reserved when counting.
const BLOCK_OVERHEAD_BYTES: usize = 512;

/// Builds a block on a parent state, transaction by transaction, through the same execution as
/// [`apply_block`], so a block it builds always imports.
pub struct BlockBuilder<'a, V: StateView> {
    executor: Executor<'a, V>,
    parent: ParentRef,
    proposer: OperatorId,
    timestamp_ms: u64,
    transactions: Vec<SignedTransaction>,
    bytes: usize,
}

impl<V: StateView> std::fmt::Debug for BlockBuilder<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder")
            .field("parent", &self.parent)
            .field("transactions", &self.transactions.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<'a, V: StateView> BlockBuilder<'a, V> {
    /// Starts a block on `parent`. `timestamp_ms` is raised to the parent's if the clock is behind.
    pub fn new(
        ctx: &'a ChainContext,
        view: &'a V,
        parent: ParentRef,
        proposer: OperatorId,
        timestamp_ms: u64,
    ) -> Result<Self, ApplyError> {
        let height = parent
            .number
            .next()
            .ok_or(ApplyError::WrongHeight { expected: parent.number, got: parent.number })?;
        let timestamp_ms = timestamp_ms.max(parent.timestamp_ms);
        let executor = Executor::new(ctx, view, &parent, height, timestamp_ms)?;
        if !executor.authorities()?.contains(&proposer) {
            return Err(ApplyError::ProposerNotAuthority(proposer));
        }
        Ok(Self {
            executor,
            timestamp_ms,
            parent,
            proposer,
            transactions: Vec::new(),
            bytes: BLOCK_OVERHEAD_BYTES,
        })
    }

    /// Verifies `tx` strictly and executes it; a refused transaction changes nothing.
    pub fn push(&mut self, tx: SignedTransaction) -> Result<(), PushError> {
        let ctx = self.executor.ctx;
        let size = tx.encoded_size();
        if self.bytes + size > ctx.max_block_bytes
            || self.executor.cdr_count + tx.transaction.cdr_count() > ctx.max_block_cdrs
            || self.transactions.len() >= crate::block::MAX_TRANSACTIONS_PER_BLOCK
        {
            return Err(PushError::Full);
        }
        let key = self.executor.signing_key(tx.transaction.operator()).map_err(push_error)?;
        let id = tx.id(&ctx.genesis_hash);
        crypto::verify(&key, &id, &tx.signature).map_err(|e| PushError::Invalid(TxError::BadSignature(e)))?;
        self.executor.execute(&tx, id).map_err(push_error)?;
        self.bytes += size;
        self.transactions.push(tx);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    pub fn cdr_count(&self) -> usize {
        self.executor.cdr_count
    }

    /// Seals the block: computes the roots and fills the header.
    pub fn finish(self) -> Result<(Block, StateChanges), ApplyError> {
        let number = self.executor.height;
        let changes = self.executor.finish()?;
        let header = Header {
            parent_hash: self.parent.hash,
            number,
            timestamp_ms: self.timestamp_ms,
            proposer: self.proposer,
            tx_root: changes.tx_root,
            cdr_log_root: changes.cdr_log_root,
            cdr_log_size: changes.cdr_log.size(),
            state_root: changes.state_root,
        };
        let transactions = BoundedVec::new(self.transactions).map_err(|v| ApplyError::TooManyCdrs {
            count: v.len(),
            max: crate::block::MAX_TRANSACTIONS_PER_BLOCK,
        })?;
        Ok((Block { header, transactions }, changes))
    }
}

fn push_error(failure: Failure) -> PushError {
    match failure {
        Failure::Tx(error @ TxError::GapQuota { .. }) => PushError::Later(error),
        Failure::Tx(error) => PushError::Invalid(error),
        Failure::Fatal(error) => PushError::Fatal(error),
    }
}
