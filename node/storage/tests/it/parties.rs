//! CDRs by party: the index written behind the head, step by step; every CDR a party took part
//! in, newest first, paged; a partner's filter; bad cursors; a database of schema 7 upgraded.

use std::collections::BTreeMap;

use cdrchain_runtime::ids::Height;
use cdrchain_runtime::party::PartyDigest;
use cdrchain_runtime::Hash32;
use cdrchain_storage::{layout, Storage, StorageError, StoredCdr, SCHEMA_VERSION};
use parity_scale_codec::Encode;

use crate::common::Fixture;
use crate::{expected_cdrs, four_blocks, raw};

/// Every page of a party's CDRs (of those `keep` accepts), checking the cursor protocol.
fn all_pages(
    storage: &Storage,
    party: &PartyDigest,
    limit: usize,
    keep: impl Fn(&StoredCdr) -> bool + Copy,
) -> Result<Vec<StoredCdr>, StorageError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let (page, next) = storage.cdrs_by_party(party, cursor.as_deref(), limit, keep)?;
        assert!(page.len() <= limit);
        out.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
    panic!("pagination does not end");
}

/// What the index should give for each party: its CDRs, newest start first, then in reverse
/// key order (recorder encoded, sequence).
fn by_party(all: &[StoredCdr]) -> BTreeMap<PartyDigest, Vec<StoredCdr>> {
    let mut map: BTreeMap<PartyDigest, Vec<StoredCdr>> = BTreeMap::new();
    for stored in all {
        map.entry(stored.cdr.body.caller).or_default().push(stored.clone());
        if stored.cdr.body.callee != stored.cdr.body.caller {
            map.entry(stored.cdr.body.callee).or_default().push(stored.clone());
        }
    }
    for cdrs in map.values_mut() {
        cdrs.sort_by_key(|s| (s.cdr.body.start_ms, s.cdr.recorder.encode(), s.cdr.sequence));
        cdrs.reverse();
    }
    map
}

#[test]
fn a_party_finds_every_cdr_it_took_part_in_newest_first() -> Result<(), StorageError> {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    let all = expected_cdrs(&fx.chain);
    let expected = by_party(&all);
    assert!(expected.len() > 100, "the sample has many parties");
    let Some((first, _)) = expected.iter().next() else { panic!("the sample has parties") };
    // Nothing is indexed with the commit: the index follows, a step at a time.
    assert_eq!(storage.parties_indexed()?, Height(0));
    assert_eq!(storage.cdrs_by_party(first, None, 10, |_| true)?, (vec![], None));
    let head = storage.height();
    assert_eq!(storage.index_parties_step(1, |_, _| ())?, Height(1), "a block at least, then stop");
    let mut steps = 1;
    while storage.parties_indexed()? < head {
        storage.index_parties_step(1, |_, _| ())?;
        steps += 1;
        assert!(steps <= head.0, "one block per step at most here");
    }
    assert_eq!(storage.index_parties_step(1_000, |_, _| ())?, head, "caught up: nothing to do");
    assert!(expected.values().any(|cdrs| cdrs.len() >= 3), "some party is in several CDRs");
    for (party, cdrs) in &expected {
        assert_eq!(&all_pages(&storage, party, 1, |_| true)?, cdrs);
        assert_eq!(&all_pages(&storage, party, 1_000, |_| true)?, cdrs);
        // A partner's token: only what its operator recorded.
        let bobs: Vec<StoredCdr> =
            cdrs.iter().filter(|s| s.cdr.recorder.as_str() == "bob").cloned().collect();
        assert_eq!(all_pages(&storage, party, 2, |s| s.cdr.recorder.as_str() == "bob")?, bobs);
    }
    // A party that took part in nothing, and one sharing the first index bytes with one that
    // did: nothing (the CDR's whole digest is compared).
    let nobody = PartyDigest(Hash32([0xAB; 32]));
    assert_eq!(storage.cdrs_by_party(&nobody, None, 10, |_| true)?, (vec![], None));
    let mut twin = first.0 .0;
    twin[31] ^= 1;
    assert_eq!(storage.cdrs_by_party(&PartyDigest(Hash32(twin)), None, 10, |_| true)?, (vec![], None));
    // Bad cursors.
    for bad in ["not hex", "00", ""] {
        let error = storage.cdrs_by_party(first, Some(bad), 5, |_| true).unwrap_err();
        assert!(matches!(error, StorageError::BadCursor { .. }), "{bad:?}: {error:?}");
    }
    Ok(())
}

#[test]
fn a_schema_7_database_is_indexed_from_block_1_after_its_upgrade() -> Result<(), Box<dyn std::error::Error>> {
    let mut fx = Fixture::new();
    let storage = fx.open();
    assert_eq!(storage.upgraded_at_open(), None, "a new database needs no upgrade");
    four_blocks(&mut fx, &storage);
    storage.index_parties_step(usize::MAX, |_, _| ())?;
    drop(storage);
    // What a build of schema 7 left: no `parties` entries.
    {
        let db = raw(fx.dir.path());
        let parties = db.cf_handle(layout::PARTIES).ok_or("no parties column")?;
        let keys: Vec<Box<[u8]>> = db
            .iterator_cf(parties, rocksdb::IteratorMode::Start)
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        assert!(!keys.is_empty());
        for key in keys {
            db.delete_cf(parties, key)?;
        }
        let meta = db.cf_handle(layout::META).ok_or("no meta column")?;
        db.put_cf(meta, layout::META_SCHEMA_VERSION, 7u32.encode())?;
        db.delete_cf(meta, layout::META_PARTIES_INDEXED)?;
    }
    let all = expected_cdrs(&fx.chain);
    let storage = fx.open();
    assert_eq!(storage.upgraded_at_open(), Some(7));
    assert_eq!(storage.parties_indexed()?, Height(0));
    let mut visited = 0;
    assert_eq!(
        storage.index_parties_step(usize::MAX, |_, _| visited += 1)?,
        storage.height(),
        "every block in one step"
    );
    assert_eq!(visited, all.len(), "each CDR visited once");
    for (party, cdrs) in &by_party(&all) {
        assert_eq!(&all_pages(&storage, party, 3, |_| true)?, cdrs);
    }
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.upgraded_at_open(), None, "upgraded once, to {SCHEMA_VERSION}");
    Ok(())
}
