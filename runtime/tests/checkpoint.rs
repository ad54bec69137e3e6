//! Checkpoints in the state transition: recorded by the block after a checkpoint height, signed
//! by validators with their registered EVM keys, each signature checked and kept once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{PushError, TxError};
use cdrchain_runtime::checkpoint::{
    evm_address, sign_digest, Checkpoint, CheckpointSignature, StoredSignature,
};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::crypto::{public_key, EvmAddress};
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::sample::{operator_key, SampleChain};
use cdrchain_runtime::state::{genesis_state, OperatorRecord, StateKey, StateView};
use cdrchain_runtime::tx::Transaction;
use k256::ecdsa::SigningKey as EvmKey;
use parity_scale_codec::Encode;

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const CONTRACT: EvmAddress = EvmAddress([0x5f; 20]);

fn evm_key(i: usize) -> EvmKey {
    EvmKey::from_slice(&[u8::try_from(i).unwrap() + 1; 32]).unwrap()
}

/// Four validators with real EVM keys, a checkpoint every 2 blocks.
fn chain() -> SampleChain {
    let mut chain = SampleChain::new(&NAMES);
    chain.ctx.checkpoint_interval = 2;
    let records: Vec<_> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let record = OperatorRecord {
                signing_key: public_key(&operator_key(name)),
                evm_address: evm_address(evm_key(i).verifying_key()),
            };
            (OperatorId::new(*name).unwrap(), record)
        })
        .collect();
    chain.state = genesis_state(&records, &chain.operators).unwrap();
    chain
}

fn advance(chain: &mut SampleChain, txs: Vec<cdrchain_runtime::tx::SignedTransaction>) -> Vec<PushError> {
    let timestamp = 1_000 * (chain.blocks.len() as u64 + 1);
    let (block, _, refused) = chain.build(txs, timestamp).unwrap();
    chain.import(block).unwrap();
    refused
}

fn stored<T: parity_scale_codec::Decode>(chain: &SampleChain, key: StateKey) -> Option<T> {
    chain.state.get(&key.encode()).unwrap().map(|bytes| decode_exact(&bytes).unwrap())
}

fn signature(
    chain: &SampleChain,
    who: usize,
    height: u64,
    key: &EvmKey,
    contract: EvmAddress,
) -> cdrchain_runtime::tx::SignedTransaction {
    let checkpoint: Checkpoint = stored(chain, StateKey::Checkpoint(Height(height))).unwrap();
    let digest = checkpoint.digest(chain.ctx.rsk_chain_id, &contract);
    chain.sign(Transaction::CheckpointSignature(CheckpointSignature {
        operator: OperatorId::new(NAMES[who]).unwrap(),
        height: Height(height),
        contract,
        signature: sign_digest(key, &digest).unwrap(),
    }))
}

fn refusal(refused: &[PushError]) -> &TxError {
    match refused {
        [PushError::Invalid(error)] => error,
        other => panic!("expected one refusal, got {other:?}"),
    }
}

#[test]
fn the_block_after_a_checkpoint_height_records_it_and_validators_sign_it_once() {
    let mut chain = chain();
    let batch = chain.batch("alice", 0, 3);
    advance(&mut chain, vec![batch]);
    advance(&mut chain, vec![]);
    assert_eq!(
        stored::<Checkpoint>(&chain, StateKey::Checkpoint(Height(2))),
        None,
        "block 2's hash is not known yet"
    );
    let block2 = chain.blocks[1].header.clone();
    advance(&mut chain, vec![]);
    let checkpoint: Checkpoint = stored(&chain, StateKey::Checkpoint(Height(2))).unwrap();
    assert_eq!(
        checkpoint,
        Checkpoint {
            genesis_hash: chain.genesis_hash(),
            height: Height(2),
            block_hash: block2.hash(),
            state_root: block2.state_root,
            cdr_log_root: block2.cdr_log_root,
            cdr_log_size: 3,
        }
    );
    assert_eq!(
        stored::<Checkpoint>(&chain, StateKey::Checkpoint(Height(1))),
        None,
        "1 is not a checkpoint height"
    );

    // Three validators sign; each signature is kept with its contract.
    let txs: Vec<_> = (0..3).map(|i| signature(&chain, i, 2, &evm_key(i), CONTRACT)).collect();
    let refused = advance(&mut chain, txs);
    assert!(refused.is_empty(), "{refused:?}");
    for (i, name) in NAMES.iter().enumerate().take(3) {
        let kept: StoredSignature =
            stored(&chain, StateKey::CheckpointSignature(Height(2), OperatorId::new(*name).unwrap()))
                .unwrap();
        assert_eq!(kept.contract, CONTRACT);
        let digest = checkpoint.digest(33, &CONTRACT);
        assert_eq!(
            cdrchain_runtime::checkpoint::recover(&digest, &kept.signature).unwrap(),
            evm_address(evm_key(i).verifying_key())
        );
    }

    // A second signature of the same validator and height is refused.
    let again = signature(&chain, 0, 2, &evm_key(0), EvmAddress([0x60; 20]));
    assert!(matches!(refusal(&advance(&mut chain, vec![again])), TxError::AlreadySigned { .. }));
}

#[test]
fn wrong_signers_unknown_checkpoints_and_non_validators_are_refused() {
    let mut chain = chain();
    for _ in 0..3 {
        advance(&mut chain, vec![]);
    }
    // dave signs with bob's EVM key.
    let forged = signature(&chain, 3, 2, &evm_key(1), CONTRACT);
    let error = refusal(&advance(&mut chain, vec![forged])).clone();
    match error {
        TxError::WrongCheckpointSigner { recovered, expected, .. } => {
            assert_eq!(recovered, evm_address(evm_key(1).verifying_key()).to_hex());
            assert_eq!(expected, evm_address(evm_key(3).verifying_key()).to_hex());
        }
        other => panic!("{other:?}"),
    }
    // A height that is no checkpoint.
    let mut tx = signature(&chain, 0, 2, &evm_key(0), CONTRACT);
    if let Transaction::CheckpointSignature(c) = &mut tx.transaction {
        c.height = Height(3);
    }
    let tx = chain.sign(tx.transaction);
    assert!(matches!(refusal(&advance(&mut chain, vec![tx])), TxError::UnknownCheckpoint(Height(3))));
    // A malformed signature (v = 29).
    let mut tx = signature(&chain, 0, 2, &evm_key(0), CONTRACT);
    if let Transaction::CheckpointSignature(c) = &mut tx.transaction {
        c.signature.0[64] = 29;
    }
    let tx = chain.sign(tx.transaction);
    assert!(matches!(refusal(&advance(&mut chain, vec![tx])), TxError::BadCheckpointSignature { .. }));
    // The chain's state root covers the record: another interval gives another root.
    let mut other = self::chain();
    other.ctx.checkpoint_interval = 3;
    for _ in 0..3 {
        advance(&mut other, vec![]);
    }
    assert_ne!(other.blocks[2].header.state_root, chain.blocks[2].header.state_root);
}
