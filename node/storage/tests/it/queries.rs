//! Partner queries: pagination in start order, cursors across reopens, bad cursors.

use std::collections::BTreeSet;

use cdrchain_runtime::ids::CdrId;
use cdrchain_storage::{Storage, StorageError, StoredCdr};
use parity_scale_codec::Encode;

use crate::common::Fixture;
use crate::{expected_cdrs, four_blocks, op, start};

/// All pages of a partner query, checking the cursor protocol on the way.
fn all_pages(
    storage: &Storage,
    a: &str,
    b: &str,
    from: u64,
    to: u64,
    limit: usize,
) -> (Vec<StoredCdr>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) =
            storage.query_partners(&op(a), &op(b), from, to, cursor.as_deref(), limit).unwrap();
        pages += 1;
        assert!(page.len() <= limit);
        match next {
            Some(next) => {
                assert_eq!(page.len(), limit, "only a full page has a next page");
                cursor = Some(next);
            }
            None => {
                out.extend(page);
                return (out, pages);
            }
        }
        out.extend(page);
        assert!(pages < 1_000, "pagination does not end");
    }
}

/// The partner index's order: start time, then the encoded recorder, then the sequence.
fn index_order(cdrs: &mut [StoredCdr]) {
    cdrs.sort_by_key(|s| (s.cdr.body.start_ms, s.cdr.recorder.encode(), s.cdr.sequence));
}

#[test]
fn partner_queries_paginate_in_start_order() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    let storage = fx.open();
    let all = expected_cdrs(&fx.chain);
    let between = |x: &str, y: &str| -> Vec<StoredCdr> {
        let mut cdrs: Vec<StoredCdr> = all
            .iter()
            .filter(|s| {
                let (caller, callee) =
                    (s.cdr.body.caller_operator.as_str(), s.cdr.body.callee_operator.as_str());
                (caller, callee) == (x, y) || (caller, callee) == (y, x)
            })
            .cloned()
            .collect();
        index_order(&mut cdrs);
        cdrs
    };

    // alice ↔ bob: alice's 80 CDRs (alice → bob) and bob's 40 (bob → alice).
    let expected = between("alice", "bob");
    assert_eq!(expected.len(), 120);
    let (got, pages) = all_pages(&storage, "alice", "bob", 0, u64::MAX, 7);
    assert_eq!(pages, 120usize.div_ceil(7));
    assert_eq!(got, expected, "every CDR exactly once, in start-time order");
    let ids: BTreeSet<CdrId> = got.iter().map(|s| s.cdr.id()).collect();
    assert_eq!(ids.len(), 120);
    assert!(got.windows(2).all(|w| w[0].cdr.body.start_ms <= w[1].cdr.body.start_ms));
    // Either direction, any page size.
    assert_eq!(all_pages(&storage, "bob", "alice", 0, u64::MAX, 7).0, expected);
    assert_eq!(all_pages(&storage, "bob", "alice", 0, u64::MAX, 1).0, expected);
    assert_eq!(all_pages(&storage, "alice", "bob", 0, u64::MAX, 10_000), (expected.clone(), 1));
    // Carol's CDRs go to alice only.
    assert_eq!(all_pages(&storage, "carol", "alice", 0, u64::MAX, 6).0, between("alice", "carol"));
    assert_eq!(all_pages(&storage, "carol", "alice", 0, u64::MAX, 6).0.len(), 20);
    assert!(all_pages(&storage, "carol", "bob", 0, u64::MAX, 6).0.is_empty());

    // The window is half-open: [start(10), start(20)) holds indexes 10..=19 of alice and bob.
    let (window, pages) = all_pages(&storage, "alice", "bob", start(10), start(20), 3);
    assert_eq!(window.len(), 20);
    assert_eq!(pages, 7);
    assert_eq!(window.first().unwrap().cdr.body.start_ms, start(10));
    assert_eq!(window.last().unwrap().cdr.body.start_ms, start(19));
    let expected_window: Vec<StoredCdr> =
        expected.iter().filter(|s| (start(10)..start(20)).contains(&s.cdr.body.start_ms)).cloned().collect();
    assert_eq!(window, expected_window);
    // A page that ends exactly at the end of the results has no next cursor.
    let (page, next) =
        storage.query_partners(&op("alice"), &op("bob"), start(10), start(20), None, 20).unwrap();
    assert_eq!((page.len(), next), (20, None));
    // Empty and inverted windows.
    assert_eq!(
        storage.query_partners(&op("alice"), &op("bob"), start(5), start(5), None, 5).unwrap(),
        (vec![], None)
    );
    assert_eq!(
        storage.query_partners(&op("alice"), &op("bob"), start(9), start(5), None, 5).unwrap(),
        (vec![], None)
    );
    // A limit of 0 is taken as 1.
    let (page, next) = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 0).unwrap();
    assert_eq!(page.len(), 1);
    assert!(next.is_some());

    // A cursor survives a reopen (it is derived from keys, not from memory).
    let (first, cursor) = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 50).unwrap();
    drop(storage);
    let storage = fx.open();
    let (second, _) =
        storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, cursor.as_deref(), 50).unwrap();
    assert_eq!([first, second].concat(), expected[..100].to_vec());

    // Bad cursors.
    for bad in ["not hex", "00", "", &hex_of(b"\x00\x00\x00\x00\x00\x00\x00\x01garbage")] {
        let error = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, Some(bad), 5).unwrap_err();
        assert!(matches!(error, StorageError::BadCursor { .. }), "{bad:?}: {error:?}");
    }
    let (_, cursor) =
        storage.query_partners(&op("alice"), &op("bob"), start(10), start(20), None, 3).unwrap();
    let cursor = cursor.unwrap();
    let error =
        storage.query_partners(&op("alice"), &op("bob"), start(30), start(40), Some(&cursor), 3).unwrap_err();
    assert!(matches!(error, StorageError::BadCursor { .. }), "{error:?}");
    assert!(error.to_string().contains("outside the window"), "{error}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
