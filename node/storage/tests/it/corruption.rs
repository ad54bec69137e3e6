//! Damaged entries are errors naming the column family and key, never panics.

use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{CallId, Height, Sequence};
use cdrchain_runtime::merkle::{inclusion_proof, Domain, NodeId, NodeStore, ProofError};
use cdrchain_storage::{layout, Storage, StorageError, StoredCdr};
use parity_scale_codec::Encode;

use crate::common::Fixture;
use crate::{four_blocks, op, raw, run_of};

#[test]
fn corrupt_values_are_errors_naming_the_column_not_panics() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    {
        let db = raw(fx.dir.path());
        let put = |column: &str, key: &[u8], value: &[u8]| {
            db.put_cf(db.cf_handle(column).unwrap(), key, value).unwrap()
        };
        put(layout::HEADERS, &layout::height_key(Height(2)), b"\xff garbage");
        put(layout::BODIES, &layout::height_key(Height(3)), b"\x01");
        put(layout::CERTIFICATES, &layout::height_key(Height(1)), b"");
        put(layout::HASH_INDEX, &fx.chain.blocks[0].hash().0, b"abc");
        put(layout::CDRS, &layout::cdr_key(&op("alice"), Sequence(10)), b"not a cdr");
        put(layout::LOG_NODES, &layout::node_key(NodeId::leaf(3)), &[1, 2, 3]);
        put(layout::CALL_IDS, b"\x0cabc", b"");
    }
    let storage = fx.open();
    let corrupt_in = |error: StorageError, column: &str| match &error {
        StorageError::Corrupt { column: c, key, reason } => {
            assert_eq!(*c, column, "{error}");
            assert!(!key.is_empty() && !reason.is_empty());
            let message = error.to_string();
            assert!(message.contains(column) && message.contains(key.as_str()), "{message}");
        }
        other => panic!("expected Corrupt in {column}, got {other:?}"),
    };
    corrupt_in(storage.header(Height(2)).unwrap_err(), "headers");
    match storage.header(Height(2)).unwrap_err() {
        StorageError::Corrupt { key, .. } => assert_eq!(key, "0000000000000002"),
        other => panic!("{other:?}"),
    }
    corrupt_in(storage.block(Height(2)).unwrap_err(), "headers");
    corrupt_in(storage.block(Height(3)).unwrap_err(), "bodies");
    corrupt_in(storage.certificate(Height(1)).unwrap_err(), "certificates");
    corrupt_in(storage.height_of(&fx.chain.blocks[0].hash()).unwrap_err(), "hash_index");
    corrupt_in(storage.cdr(&op("alice"), Sequence(10)).unwrap_err(), "cdrs");
    // Blocks are rebuilt with their CDRs from the cdrs column: block 1 reaches the corrupt one.
    corrupt_in(storage.block(Height(1)).unwrap_err(), "cdrs");
    // The partner query reaches the corrupt CDR.
    corrupt_in(storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 100).unwrap_err(), "cdrs");
    corrupt_in(storage.node(NodeId::leaf(3)).unwrap_err(), "log_nodes");
    assert!(matches!(
        inclusion_proof(&storage, Domain::CDR_LOG, 2, 10), // leaf 3 is on its path
        Err(ProofError::Store(StorageError::Corrupt { column: "log_nodes", .. }))
    ));
    corrupt_in(storage.cdrs_by_call_id(&CallId::new("abc").unwrap()).unwrap_err(), "call_ids");
    // Uncorrupted entries still read.
    assert!(storage.header(Height(1)).unwrap().is_some());
    assert!(storage.cdr(&op("alice"), Sequence(11)).unwrap().is_some());
    drop(storage);

    // A CDR stored under another CDR's key, and a corrupt head header: open refuses, no panic.
    {
        let db = raw(fx.dir.path());
        let cdrs = db.cf_handle(layout::CDRS).unwrap();
        let bob_1 = db.get_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(1))).unwrap().unwrap();
        db.put_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(2)), bob_1).unwrap();
        // Blocks are rebuilt from the cdrs column: a changed CDR body and a missing CDR.
        let bob_35 = db.get_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(35))).unwrap().unwrap();
        let mut changed: StoredCdr = decode_exact(&bob_35).unwrap();
        changed.cdr.body.end_ms += 1;
        db.put_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(36)), {
            changed.cdr.sequence = Sequence(36);
            changed.encode()
        })
        .unwrap();
    }
    let storage = fx.open();
    let error = storage.cdr(&op("bob"), Sequence(2)).unwrap_err();
    assert!(error.to_string().contains("bob:1"), "{error}");
    let error = storage.block(Height(4)).unwrap_err();
    assert!(error.to_string().contains("tx_root"), "{error}");
    corrupt_in(error, "bodies");
    drop(storage);
    {
        let db = raw(fx.dir.path());
        db.delete_cf(db.cf_handle(layout::CDRS).unwrap(), layout::cdr_key(&op("bob"), Sequence(36))).unwrap();
    }
    let storage = fx.open();
    let error = storage.block(Height(4)).unwrap_err();
    assert!(error.to_string().contains("bob:36 of block 4 is missing"), "{error}");
    corrupt_in(error, "cdrs");
    drop(storage);
    {
        let db = raw(fx.dir.path());
        db.put_cf(db.cf_handle(layout::HEADERS).unwrap(), layout::height_key(Height(4)), b"\x00").unwrap();
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    corrupt_in(error, "headers");
}

#[test]
fn a_damaged_queue_chunk_is_named_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    let storage = fx.open();
    storage.enqueue(&run_of(0, &[b"a", b"b"]))?;
    drop(storage);
    {
        let db = raw(fx.dir.path());
        let queue = db.cf_handle(layout::QUEUE).ok_or("no such column family")?;
        db.put_cf(queue, 7u64.to_be_bytes(), [3, 0, 0, 0, 9, 0])?;
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err().to_string();
    assert!(error.contains("corrupt entry in column family `queue` under key 0000000000000007"), "{error}");
    Ok(())
}
