//! What `open` refuses (another genesis, another schema version, data without metadata, a second
//! open) and the schema-3 upgrade.

use cdrchain_runtime::ids::Height;
use cdrchain_runtime::sample::SampleChain;
use cdrchain_storage::{layout, Storage, StorageError, SCHEMA_VERSION};
use parity_scale_codec::Encode;

use crate::common::{self, Fixture};
use crate::{path_text, raw};

#[test]
fn another_genesis_is_refused_naming_both_hashes_and_the_path() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    let txs = vec![fx.chain.batch("alice", 0, 3)];
    fx.commit(&storage, txs, 1_000);
    drop(storage);
    let other = SampleChain::new(&["alice", "bob"]);
    let error = Storage::open(fx.dir.path(), other.genesis_hash(), &other.state).unwrap_err();
    match &error {
        StorageError::WrongGenesis { path, expected, found } => {
            assert_eq!(path, fx.dir.path());
            assert_eq!(*expected, other.genesis_hash());
            assert_eq!(*found, fx.chain.genesis_hash());
        }
        other => panic!("expected WrongGenesis, got {other:?}"),
    }
    let message = error.to_string();
    for needle in [other.genesis_hash().to_hex(), fx.chain.genesis_hash().to_hex(), path_text(fx.dir.path())]
    {
        assert!(message.contains(&needle), "`{message}` lacks `{needle}`");
    }
    // The refusal changed nothing: the right chain still opens.
    assert_eq!(fx.open().height(), Height(1));
}

#[test]
fn another_schema_version_is_refused_naming_both_versions_and_the_path() {
    let fx = Fixture::new();
    drop(fx.open());
    {
        let mut db = raw(fx.dir.path());
        let meta = db.cf_handle(layout::META).unwrap();
        db.put_cf(meta, layout::META_SCHEMA_VERSION, (SCHEMA_VERSION + 1).encode()).unwrap();
        // A future schema may add column families: they must not hide the version check.
        db.create_cf("from_the_future", &rocksdb::Options::default()).unwrap();
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    match &error {
        StorageError::WrongSchema { path, expected, found } => {
            assert_eq!(path, fx.dir.path());
            assert_eq!((*expected, *found), (SCHEMA_VERSION, SCHEMA_VERSION + 1));
        }
        other => panic!("expected WrongSchema, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("version {}", SCHEMA_VERSION + 1))
            && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
    assert!(message.contains(&path_text(fx.dir.path())), "{message}");
}

#[test]
fn a_database_with_data_but_no_metadata_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), layout::COLUMNS).unwrap();
        db.put_cf(db.cf_handle(layout::HEADERS).unwrap(), [0u8; 8], b"something").unwrap();
    }
    let chain = SampleChain::new(&common::OPERATORS);
    let error = Storage::open(dir.path(), chain.genesis_hash(), &chain.state).unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { column: "headers", .. }), "{error:?}");
}

#[test]
fn a_database_of_an_older_cdr_format_is_refused_with_the_reason() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    drop(fx.open());
    {
        let db = raw(fx.dir.path());
        let meta = db.cf_handle(layout::META).ok_or("no such column family")?;
        db.put_cf(meta, layout::META_SCHEMA_VERSION, 6u32.encode())?;
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).err().ok_or("opened")?;
    assert!(matches!(error, StorageError::WrongSchema { expected: 8, found: 6, .. }), "{error:?}");
    assert!(error.to_string().contains("older format (CDRs or state root)"), "{error}");
    Ok(())
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let fx = Fixture::new();
    let _storage = fx.open();
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    assert!(matches!(error, StorageError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains(&path_text(fx.dir.path())), "{error}");
}
