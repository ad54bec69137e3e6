//! A member floods the pool through gossip (review H2): the honest operators' next batches still
//! get into the next block, and the pool stays within its quota and budget.

use std::sync::Arc;

use cdrchain_chain_spec::{ChainSpec, DevAccount};
use cdrchain_network::Validation;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{CallId, OperatorId, Sequence};
use cdrchain_runtime::sample::cdr_body;
use cdrchain_runtime::tx::{CdrBatch, SignedTransaction, Transaction};
use cdrchain_storage::Storage;
use parity_scale_codec::Encode;

use super::gossip::check_tx_gossip;
use crate::chain::Chain;
use crate::config::MAX_GOSSIPED_TX_BYTES;
use crate::metrics::Metrics;
use crate::pool::{PoolLimits, TxPool, DEFAULT_POOL_BYTES};
use crate::wire::TxWire;
use crate::MAX_TXS_PER_BUILD;

struct Net {
    _dir: tempfile::TempDir,
    chain: Chain,
    pool: TxPool,
}

/// The local testnet's chain on a fresh database, seen from alice's node.
fn alice_node() -> Net {
    let spec = ChainSpec::local();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = Arc::new(
        Storage::open(dir.path(), spec.genesis_hash(), &spec.genesis_state().expect("the local genesis"))
            .expect("a fresh database"),
    );
    let operators = spec.operators.len();
    let chain = Chain::new(storage, spec, Arc::new(Metrics::new()));
    let pool =
        TxPool::with_limits(PoolLimits::shared(4_096, DEFAULT_POOL_BYTES, operators, Some(op("alice"))));
    Net { _dir: dir, chain, pool }
}

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).expect("a valid operator name")
}

fn batch(net: &Net, operator: &'static str, first: u64, count: u64, call_id_len: usize) -> SignedTransaction {
    let recorder = op(operator);
    let partner = op(if operator == "alice" { "bob" } else { "alice" });
    let cdrs = (first..first + count)
        .map(|i| {
            let mut body = cdr_body(i, &recorder, &partner);
            if call_id_len > 0 {
                body.call_id = CallId::new(format!("{i:0>call_id_len$}")).expect("a valid call id");
            }
            body
        })
        .collect();
    let tx = Transaction::CdrBatch(CdrBatch {
        operator: recorder,
        first_sequence: Sequence(first),
        cdrs: BoundedVec::new(cdrs).expect("a batch within its bound").into(),
    });
    SignedTransaction::sign(tx, &DevAccount::derive(operator).signing_key, &net.chain.ctx.genesis_hash)
}

fn gossip(net: &Net, txs: Vec<SignedTransaction>) -> Validation {
    let wire = TxWire { nonce: 7, txs: BoundedVec::new(txs).expect("at most MAX_TXS_PER_GOSSIP") };
    check_tx_gossip(&net.chain, &net.pool, &wire.encode())
}

#[test]
fn a_flooding_member_keeps_no_honest_batch_out_of_the_next_block() -> Result<(), Box<dyn std::error::Error>> {
    let net = alice_node();
    let genesis = net.chain.ctx.genesis_hash;
    // 4,096 well-signed one-CDR batches from far in bob's future: not pooled, not forwarded.
    let far: Vec<SignedTransaction> =
        (0..4_096).map(|i| batch(&net, "bob", 1_000_000_000_000 + i, 1, 0)).collect();
    for chunk in far.chunks(256) {
        assert_eq!(gossip(&net, chunk.to_vec()), Validation::Ignore);
    }
    assert!(net.pool.is_empty(), "{} far-future batches pooled", net.pool.len());
    // Then as many near-future ones as bob can: they stop at his share of the pool.
    let near: Vec<SignedTransaction> = (0..4_096).map(|i| batch(&net, "bob", 1_000 + i, 1, 0)).collect();
    for chunk in near.chunks(256) {
        gossip(&net, chunk.to_vec());
    }
    let share = net.pool.limits().operator_max_txs;
    assert_eq!(net.pool.len(), share, "bob holds exactly his share");
    // charlie's honest next batch still gets in, and so does this node's own.
    let charlie = batch(&net, "charlie", 0, 10, 0);
    assert_eq!(gossip(&net, vec![charlie.clone()]), Validation::Accept);
    let alice = batch(&net, "alice", 0, 10, 0);
    net.pool.add(alice.id(&genesis), alice.clone())?;

    let built = net.chain.build(&op("alice"), net.pool.candidates(MAX_TXS_PER_BUILD, 1), 1_000)?;
    let ids: Vec<Hash32> = built.included.clone();
    assert!(ids.contains(&alice.id(&genesis)), "alice's batch left out");
    assert!(ids.contains(&charlie.id(&genesis)), "charlie's batch left out");
    assert_eq!(built.block.cdr_count(), 20);
    // bob's lane stalled at its first gap: one refusal, not a signature check per batch.
    assert_eq!(built.refused.len(), 1, "{:?}", built.refused);
    Ok(())
}

#[test]
fn a_batch_over_the_gossip_limit_is_refused_before_its_signature() -> Result<(), Box<dyn std::error::Error>> {
    let net = alice_node();
    let huge = batch(&net, "bob", 0, 10_000, 200);
    assert!(huge.encoded_size() > MAX_GOSSIPED_TX_BYTES, "{} bytes", huge.encoded_size());
    assert_eq!(gossip(&net, vec![huge]), Validation::Reject);
    assert!(net.pool.is_empty());
    Ok(())
}
