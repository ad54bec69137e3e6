//! Dispute bundles (issue #28): a dispute argued and closed on a sample chain through the real
//! state transition, bundled as a node bundles it, verifies offline and tells who claimed what;
//! every single changed byte of the bundle's file fails a named check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use base64::Engine as _;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::dispute::StepKind;
use cdrchain_runtime::interconnect::{Action, EncryptionKey, Envelope, InterconnectTx, Opening, Sealed};
use cdrchain_runtime::proof::dispute::{
    verify_dispute, verify_dispute_text, DisputeBundle, OpenedDocument, Proven, ProvenValue,
};
use cdrchain_runtime::proof::{AbsenceBundle, ChainRef, Expected, StateEntryProof};
use cdrchain_runtime::sample::{certify, SampleChain};
use cdrchain_runtime::state::{prove_pair, StateKey};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::Encode;
use serde_json::json;

const NAMES: [&str; 3] = ["alice", "bob", "charlie"];

fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A document sealed with a salt of its own (the envelope's bytes stand in for HPKE's: the
/// bundle never reads them).
fn sealed(salt: u8, document: &str) -> (Sealed, Opening) {
    let opening = Opening { salt: [salt; 32], content: document.as_bytes().to_vec() };
    let sealed = Sealed {
        commitment: opening.commitment(),
        envelope: Envelope(BoundedVec::new(vec![salt; 48]).unwrap()),
    };
    (sealed, opening)
}

struct Run {
    chain: SampleChain,
    time: u64,
}

impl Run {
    fn tx(&self, by: &str, action: Action) -> SignedTransaction {
        let operator = OperatorId::new(by).unwrap();
        self.chain.sign(Transaction::Interconnect(Box::new(InterconnectTx { operator, action })))
    }

    /// One block of `txs`, every one accepted; answers the first one's id.
    fn block(&mut self, txs: Vec<SignedTransaction>) -> Hash32 {
        self.time += 60_000;
        let id = txs[0].id(&self.chain.genesis_hash());
        let (block, _, refused) = self.chain.build(txs, self.time).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        self.chain.import(block).unwrap();
        id
    }

    fn entry(&self, key: &StateKey) -> (ProvenValue, Hash32) {
        let (value, siblings, root) = prove_pair(&self.chain.state, &key.encode()).unwrap().unwrap();
        (ProvenValue { value_scale: hex_of(&value), siblings }, root)
    }

    /// `alice`'s next sequence, proven at the head: the absence bundle a partner would attach.
    fn absence_bundle(&self) -> serde_json::Value {
        let key = StateKey::NextSequence(OperatorId::new("alice").unwrap()).encode();
        let (value, siblings, tree_root) = prove_pair(&self.chain.state, &key).unwrap().unwrap();
        let header = self.chain.blocks.last().unwrap().header.clone();
        let (certificate, authorities) = certify(&header, &NAMES, &self.chain.genesis_hash());
        let entry =
            StateEntryProof { key_scale: hex_of(&key), value_scale: hex_of(&value), siblings, tree_root };
        let chain = ChainRef { id: "sample".into(), genesis_hash: self.chain.genesis_hash() };
        let bundle = AbsenceBundle::new(
            chain,
            &authorities,
            OperatorId::new("alice").unwrap(),
            cdrchain_runtime::ids::Sequence(7),
            entry,
            header,
            certificate,
        );
        serde_json::to_value(bundle).unwrap()
    }
}

fn evidence(name: &str, bytes: &[u8]) -> serde_json::Value {
    json!({
        "name": name,
        "blake3": format!("0x{}", blake3::hash(bytes).to_hex()),
        "bytes": bytes.len(),
        "content_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn step(kind: &str, fields: serde_json::Value) -> String {
    let mut document = json!({ "format": "cdrchain-dispute-step", "version": 1, "kind": kind });
    document.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    document.to_string()
}

/// Alice and bob agree, alice proposes a statement, bob disputes it with a day-wise summary,
/// alice answers with an absence bundle, bob proposes 1.00 and alice confirms; the bundle is
/// made at the head, as `dispute_bundle` makes it.
fn argued() -> (DisputeBundle, Vec<(OperatorId, PublicKey)>, Hash32) {
    let mut run = Run { chain: SampleChain::new(&NAMES), time: 0 };
    let keys = vec![
        run.tx("alice", Action::RegisterKey { key: EncryptionKey([1; 32]) }),
        run.tx("bob", Action::RegisterKey { key: EncryptionKey([2; 32]) }),
        run.chain.batch("alice", 0, 7),
    ];
    run.block(keys);
    let terms = json!({
        "format": "cdrchain-agreement", "version": 1, "a": "alice", "b": "bob", "currency": "EUR",
        "dispute": { "window_days": 30, "volume_tolerance_percent": "0.2", "minimum_amount": "1" },
    })
    .to_string();
    let (agreement_sealed, agreement_opening) = sealed(1, &terms);
    let commitment = agreement_sealed.commitment;
    let propose = run.tx(
        "alice",
        Action::ProposeAgreement {
            counterparty: OperatorId::new("bob").unwrap(),
            version: 1,
            dispute_window_days: 30,
            sealed: agreement_sealed,
        },
    );
    let agreement = run.block(vec![propose]);
    let accept = run.tx("bob", Action::AcceptAgreement { agreement, commitment });
    run.block(vec![accept]);
    let document = json!({
        "format": "cdrchain-statement", "version": 1, "agreement": agreement.to_string(),
        "agreement_version": 1, "height": 3, "calls": 7,
        "statement": { "a": "alice", "b": "bob", "currency": "EUR", "from_ms": 0, "to_ms": 86_400_000,
                       "net_a_owes_b": "3.2100" },
    })
    .to_string();
    let (statement_sealed, statement_opening) = sealed(2, &document);
    let action =
        Action::ProposeStatement { agreement, from_ms: 0, to_ms: 86_400_000, sealed: statement_sealed };
    let statement = run.block(vec![run.tx("alice", action)]);

    let days = b"day,direction,statement,mine\n1970-01-01,a-to-b,7,6\n";
    let open = step(
        "open",
        json!({ "statement": statement.to_string(), "category": "volume", "claim": "1.50", "currency": "EUR",
                "own_calls": 6, "evidence": [evidence("days.csv", days)] }),
    );
    let (open_sealed, open_opening) = sealed(3, &open);
    let dispute = run.block(vec![run.tx("bob", Action::OpenDispute { statement, sealed: open_sealed })]);
    let absence = serde_json::to_vec(&run.absence_bundle()).unwrap();
    let respond = step(
        "respond",
        json!({ "answer": "reject", "amount": null, "evidence": [evidence("absence.json", &absence)] }),
    );
    let (respond_sealed, respond_opening) = sealed(4, &respond);
    let kind = StepKind::Respond;
    run.block(vec![run.tx("alice", Action::DisputeStep { dispute, step: kind, sealed: respond_sealed })]);
    let (close_sealed, close_opening) = sealed(5, &step("propose-close", json!({ "amount": "1.00" })));
    let commitment = close_sealed.commitment;
    let kind = StepKind::ProposeClose;
    run.block(vec![run.tx("bob", Action::DisputeStep { dispute, step: kind, sealed: close_sealed })]);
    run.block(vec![run.tx("alice", Action::ConfirmClose { dispute, commitment })]);

    let (dispute_entry, tree_root) = run.entry(&StateKey::Dispute(dispute));
    let (statement_entry, _) = run.entry(&StateKey::Statement(statement));
    let (agreement_entry, _) = run.entry(&StateKey::Agreement(agreement));
    let header = run.chain.blocks.last().unwrap().header.clone();
    let genesis = run.chain.genesis_hash();
    let (certificate, authorities) = certify(&header, &NAMES, &genesis);
    let opened = |o: &Opening| OpenedDocument::of(o).unwrap();
    let steps = [&open_opening, &respond_opening, &close_opening].map(|o| Some(opened(o)));
    let bundle = DisputeBundle::new(
        genesis,
        &authorities,
        header,
        certificate,
        dispute,
        Proven { tree_root, dispute: dispute_entry, statement: statement_entry, agreement: agreement_entry },
        [opened(&agreement_opening), opened(&statement_opening)],
        steps.into_iter().chain([None]).collect(),
    );
    (bundle, authorities, genesis)
}

fn failed(checks: &[cdrchain_runtime::proof::Check]) -> Vec<&'static str> {
    checks.iter().filter(|c| c.outcome.is_err()).map(|c| c.name).collect()
}

#[test]
fn a_closed_dispute_verifies_offline_and_says_who_claimed_what_and_what_was_settled() {
    let (bundle, authorities, genesis) = argued();
    let expected = Expected { genesis_hash: genesis, authorities: &authorities };
    let verdict = verify_dispute(&bundle, Some(&expected));
    assert!(verdict.verdict.valid && verdict.verdict.trusted, "{verdict:#?}");
    assert_eq!(verdict.settled.as_deref(), Some("1.00 EUR"));
    let story = verdict.story.join("\n");
    assert!(
        story.contains("`bob` opened a volume dispute claiming 1.50 EUR (its own records: 6 calls)"),
        "{story}"
    );
    assert!(story.contains("`alice` responded: reject; evidence: absence.json"), "{story}");
    assert!(story.contains("`alice` confirmed: closed at 1.00 EUR"), "{story}");
    let evidence = verdict.verdict.checks.iter().find(|c| c.name == "evidence").unwrap();
    assert!(evidence
        .outcome
        .as_ref()
        .unwrap()
        .contains("2 items match their BLAKE3 hashes; 1 proof bundles"));
    // Without the chain spec: consistent, untrusted, and only that check fails.
    let untrusted = verify_dispute(&bundle, None);
    assert_eq!(failed(&untrusted.verdict.checks), ["chain spec"]);
    // Another chain's spec, another authority set.
    let other = Expected { genesis_hash: Hash32([7; 32]), authorities: &authorities };
    assert!(failed(&verify_dispute(&bundle, Some(&other)).verdict.checks).contains(&"chain spec"));
    let fewer = Expected { genesis_hash: genesis, authorities: &authorities[..2] };
    // (The absence bundle among the evidence is checked against the same spec, and fails too.)
    assert_eq!(failed(&verify_dispute(&bundle, Some(&fewer)).verdict.checks), ["evidence", "chain spec"]);
}

#[test]
fn swapped_or_altered_documents_fail_the_check_that_names_them() {
    let (bundle, authorities, genesis) = argued();
    let expected = Expected { genesis_hash: genesis, authorities: &authorities };
    let failures = |b: &DisputeBundle| failed(&verify_dispute(b, Some(&expected)).verdict.checks);
    // A consistent rewrite of a step (a bigger claim) no longer opens the chain's commitment.
    let mut changed = bundle.clone();
    let open = changed.step_openings[0].as_mut().unwrap();
    open.document = open.document.replace("\"1.50\"", "\"9.50\"");
    assert_eq!(failures(&changed), ["steps", "evidence"]);
    // The statement's opening handed in for the agreement's.
    let mut changed = bundle.clone();
    changed.agreement_opening = bundle.statement_opening.clone();
    assert_eq!(failures(&changed), ["agreement document"]);
    // A confirmation cannot be given a document, nor a document dropped.
    let mut changed = bundle.clone();
    changed.step_openings[3] = changed.step_openings[2].clone();
    assert_eq!(failures(&changed), ["steps", "evidence"]);
    let mut changed = bundle.clone();
    changed.step_openings.pop();
    assert_eq!(failures(&changed), ["steps", "evidence"]);
    // Another dispute's id: its entry is not under the root.
    let mut changed = bundle.clone();
    changed.dispute.0[0] ^= 1;
    let names = failures(&changed);
    assert!(names.starts_with(&["dispute entry", "statement entry", "agreement entry"]), "{names:?}");
}

#[test]
fn every_changed_byte_of_the_file_fails_a_named_check() {
    let (bundle, authorities, genesis) = argued();
    let expected = Expected { genesis_hash: genesis, authorities: &authorities };
    let text = serde_json::to_string_pretty(&bundle).unwrap();
    assert!(verify_dispute_text(&text, Some(&expected)).verdict.valid);
    let mut bytes = text.into_bytes();
    for index in 0..bytes.len() {
        bytes[index] ^= 0x01;
        // A flip that leaves the text not UTF-8 cannot be read as a bundle at all.
        if let Ok(changed) = std::str::from_utf8(&bytes) {
            let verdict = verify_dispute_text(changed, Some(&expected));
            let names = failed(&verdict.verdict.checks);
            assert!(
                !verdict.verdict.valid && !names.is_empty(),
                "byte {index} ({:?}) changed and still valid",
                bytes[index.saturating_sub(20)..(index + 20).min(bytes.len())]
                    .iter()
                    .map(|b| *b as char)
                    .collect::<String>()
            );
        }
        bytes[index] ^= 0x01;
    }
}
