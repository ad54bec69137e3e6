//! Golden fixtures: the SCALE bytes and hashes of a sample CDR, transaction, header and block are
//! frozen in `tests/fixtures/golden.json`. A change to the wire format or to a hash context makes
//! this test fail; change the fixture only on purpose (`UPDATE_GOLDEN=1 cargo test --test golden`)
//! and say why in the commit, because every node and every stored proof depends on these bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::collections::BTreeMap;

use cdrchain_runtime::apply::{BlockBuilder, ChainContext, ParentRef};
use cdrchain_runtime::cdr::{Cdr, CdrBody, Disposition, Fault, Leg, Mos, Q850Cause, SipStatus};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::crypto::{public_key, EvmAddress};
use cdrchain_runtime::hash::{context, hash_with, Hash32};
use cdrchain_runtime::ids::{CallId, OperatorId, RedirectReason, Sequence, SystemId};
use cdrchain_runtime::party::{PartiesAsWritten, PartyDigest, PartyHasher};
use cdrchain_runtime::state::{genesis_state, OperatorRecord};
use cdrchain_runtime::tx::{CdrBatch, SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;

fn sample_body() -> CdrBody {
    let parties = PartyHasher::new(b"golden consortium secret 0123456", Some("GB")).unwrap();
    CdrBody {
        system_id: SystemId::new("sbc-lon-1").unwrap(),
        call_id: CallId::new("a84b4c76e66710@pc33.example.com").unwrap(),
        caller: parties.digest("+44 20 7946 0018").unwrap(),
        callee: parties.digest("sip:bob@example.net").unwrap(),
        caller_operator: OperatorId::new("alice").unwrap(),
        callee_operator: OperatorId::new("bob").unwrap(),
        destination: Some(cdrchain_runtime::destination::Destination::CountryNetworkV1(4420)),
        start_ms: 1_795_687_200_000,
        answer_ms: Some(1_795_687_205_000),
        end_ms: 1_795_687_400_500,
        disposition: Disposition::Answered,
        q850_cause: Q850Cause::new(16),
        sip_status: SipStatus::new(200),
        mos: Mos::from_hundredths(431),
        fault: Some(Fault::Redirect),
        redirect_reason: Some(RedirectReason::new("unconditional").unwrap()),
        leg: Some(Leg::B),
        linked_id: Some(CallId::new("3da8bf84-c133-4959-9e24-e72875cb33a1").unwrap()),
        as_written: PartiesAsWritten { caller: false, callee: true },
        source: cdrchain_runtime::source::SourceDigest::of_key("sbc-1\u{1f}id\u{1f}golden-1"),
    }
}

fn values() -> BTreeMap<&'static str, String> {
    let body = sample_body();
    let alice = OperatorId::new("alice").unwrap();
    let cdr = Cdr { recorder: alice.clone(), sequence: Sequence(42), body: body.clone() };
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let genesis_hash = hash_with(context::GENESIS, &[b"golden"]);
    let tx = Transaction::CdrBatch(CdrBatch {
        operator: alice.clone(),
        first_sequence: Sequence(0),
        cdrs: BoundedVec::new(vec![body.clone(), body]).unwrap().into(),
    });
    let signed = SignedTransaction::sign(tx, &key, &genesis_hash);
    let record = OperatorRecord { signing_key: public_key(&key), evm_address: EvmAddress([0x11; 20]) };
    let state = genesis_state(&[(alice.clone(), record)], std::slice::from_ref(&alice)).unwrap();
    let ctx = ChainContext {
        genesis_hash,
        max_block_bytes: 1 << 20,
        max_block_cdrs: 100,
        checkpoint_interval: 600,
        rsk_chain_id: 33,
    };
    let mut builder =
        BlockBuilder::new(&ctx, &state, ParentRef::genesis(genesis_hash), alice, 1_795_687_500_000).unwrap();
    builder.push(signed.clone()).unwrap();
    let (block, _) = builder.finish().unwrap();
    let party = PartyDigest(Hash32::ZERO);
    BTreeMap::from([
        ("cdr_scale", hex::encode(cdr.encode())),
        ("cdr_leaf_hash", cdr.leaf_hash().to_string()),
        ("cdr_json", serde_json::to_string(&cdr).unwrap()),
        ("transaction_id", signed.id(&genesis_hash).to_string()),
        ("transaction_signature", signed.signature.to_hex()),
        ("genesis_state_root", state.state_root().to_string()),
        ("block_header_scale", hex::encode(block.header.encode())),
        ("block_hash", block.hash().to_string()),
        ("block_scale_blake3", blake3::hash(&block.encode()).to_hex().to_string()),
        ("party_digest_zero_json", serde_json::to_string(&party).unwrap()),
    ])
}

#[test]
fn wire_formats_and_hashes_are_frozen() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden.json");
    let actual = values();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).expect("fixture missing: run with UPDATE_GOLDEN=1 once");
    let expected: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.len(), actual.len(), "fixture and test disagree on which values are frozen");
    for (name, value) in &actual {
        assert_eq!(
            expected.get(*name),
            Some(value),
            "golden value `{name}` changed: a wire-format or hash change breaks every node and proof"
        );
    }
}
