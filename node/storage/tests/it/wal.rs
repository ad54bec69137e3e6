//! The consensus WAL and the node's metadata.

use crate::common::Fixture;

#[test]
fn wal_and_metadata_survive_reopen() {
    let fx = Fixture::new();
    let storage = fx.open();
    storage.wal_put(b"vote/5/0", b"prevote").unwrap();
    storage.wal_put(b"lock", b"round 2").unwrap();
    storage.meta_put("next_ingest_sequence", &42u64.to_le_bytes()).unwrap();
    // The node's keys cannot collide with storage's own (`sys/head` here).
    storage.meta_put("head", b"not the head").unwrap();
    storage.wal_delete(b"lock").unwrap();
    storage.flush().unwrap();
    assert!(storage.size_on_disk() > 0);
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.wal_get(b"vote/5/0").unwrap(), Some(b"prevote".to_vec()));
    assert_eq!(storage.wal_get(b"lock").unwrap(), None);
    assert_eq!(storage.meta_get("next_ingest_sequence").unwrap(), Some(42u64.to_le_bytes().to_vec()));
    assert_eq!(storage.meta_get("head").unwrap(), Some(b"not the head".to_vec()));
    assert_eq!(storage.meta_get("absent").unwrap(), None);
    assert_eq!(storage.head(), None);
}
