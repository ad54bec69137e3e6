//! The verification of proof, absence and dispute bundles (`cdrchain_runtime::proof`, the code
//! `cdrchain verify` runs) for the partner portal, compiled to WebAssembly (issue #29): the page
//! checks a bundle on the user's own machine, against a chain spec the user chose, trusting
//! neither the node that served it nor the operator that runs it.
//!
//! The same module does in the page what must not leave it: a party's keyed digest for a search
//! by number ([`party_text`]), and the reading and reconciliation of the user's own CDR export
//! ([`reconcile`]).
//!
//! [`verify_text`], [`party_text`] and [`reconcile`] are the whole logic (tested natively); the
//! `wasm32` build exports them through a small C ABI ([`wasm`]): the page writes the texts into
//! memory it allocates with `alloc`, calls `verify` (or `party`, `export`, `reconcile`) and reads
//! the JSON answer back. Nothing here needs randomness: the `wasm32`
//! build registers a source that always fails, so that a dependency that asked would fail loudly
//! rather than weaken anything.

use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::party::{NormalizedParty, PartyHasher};
use cdrchain_runtime::proof::dispute::{verify_dispute, DisputeBundle, DISPUTE_FORMAT};
use cdrchain_runtime::proof::{verify, verify_absence, AbsenceBundle, Expected, ProofBundle, Verdict};
use serde_json::{json, Value};

pub mod reconcile;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// The chain spec the user chose: `dev`, `local`, or a spec's JSON text.
pub fn spec_of(text: &str) -> Result<ChainSpec, String> {
    match text.trim() {
        "dev" => Ok(ChainSpec::dev()),
        "local" => Ok(ChainSpec::local()),
        json => ChainSpec::from_json(json, "the chosen chain spec").map_err(|e| e.to_string()),
    }
}

/// Verifies `bundle` (a `cdrchain proof` file: one bundle or an array, or a `cdrchain dispute
/// bundle` file) against the chain spec `spec` (see [`spec_of`]; empty: none, so nothing can be
/// trusted). Answers `{chain, genesis_hash, results: [{kind, subject, valid, trusted, checks:
/// [{name, ok, detail}], story, settled}]}` or `{error}`.
pub fn verify_text(bundle: &str, spec: &str) -> Value {
    let spec = match spec.trim() {
        "" => None,
        text => match spec_of(text) {
            Ok(spec) => Some(spec),
            Err(e) => return json!({ "error": format!("the chain spec: {e}") }),
        },
    };
    let keys = spec.as_ref().map(ChainSpec::authority_keys).unwrap_or_default();
    let expected = spec.as_ref().map(|s| Expected { genesis_hash: s.genesis_hash(), authorities: &keys });
    let value: Value = match serde_json::from_str(bundle) {
        Ok(value) => value,
        Err(e) => return json!({ "error": format!("the file is not JSON: {e}") }),
    };
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let results: Vec<Value> = items.into_iter().map(|item| one(item, expected.as_ref())).collect();
    json!({
        "chain": spec.as_ref().map(|s| s.id.clone()),
        "genesis_hash": expected.as_ref().map(|e| e.genesis_hash.to_string()),
        "results": results,
    })
}

/// A party's keyed digest, as ingest computes it, for a search by number: the input is
/// `{"secret": text, "region": "GB" or "", "party": text}`; answers `{canonical, kind, digest}`
/// (the digest in hex, what `cdr_byParty` takes) or `{error}`. The secret and the number stay in
/// the page: only the digest is sent to the node.
pub fn party_text(input: &str) -> Value {
    let value: Value = match serde_json::from_str(input) {
        Ok(value) => value,
        Err(e) => return json!({ "error": format!("not a party request: {e}") }),
    };
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let (secret, region, party) = (field("secret"), field("region").trim(), field("party"));
    if secret.is_empty() {
        return json!({ "error": "the consortium secret is empty: parties are hashed with it" });
    }
    let hasher = match PartyHasher::new(secret.as_bytes(), Some(region).filter(|r| !r.is_empty())) {
        Ok(hasher) => hasher,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    match hasher.normalize(party) {
        Ok(party) => json!({
            "canonical": party.canonical(),
            "kind": match party {
                NormalizedParty::E164(_) => "telephone number",
                NormalizedParty::SipUri(_) => "SIP address",
                NormalizedParty::Dialstring(_) => "dial string",
                NormalizedParty::Anonymous => "anonymous",
                NormalizedParty::AsWritten(_) => "as written (not a valid number)",
            },
            "digest": format!("0x{}", hasher.digest_normalized(&party).0.to_hex()),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn one(item: Value, expected: Option<&Expected<'_>>) -> Value {
    let read = |e: serde_json::Error| {
        json!({ "kind": "unreadable", "valid": false, "trusted": false, "checks": [
            { "name": "format", "ok": false, "detail": format!("not a bundle this verifier reads: {e}") }
        ]})
    };
    if item["format"] == DISPUTE_FORMAT {
        return match serde_json::from_value::<DisputeBundle>(item) {
            Ok(bundle) => {
                let checked = verify_dispute(&bundle, expected);
                let mut out = verdict("dispute", &bundle.dispute.to_string(), &checked.verdict);
                out["story"] = json!(checked.story);
                out["settled"] = json!(checked.settled);
                out
            }
            Err(e) => read(e),
        };
    }
    if item["kind"] == "absence" {
        return match serde_json::from_value::<AbsenceBundle>(item) {
            Ok(b) => {
                verdict("absence", &format!("{}:{}", b.operator, b.sequence.0), &verify_absence(&b, expected))
            }
            Err(e) => read(e),
        };
    }
    match serde_json::from_value::<ProofBundle>(item) {
        Ok(b) => verdict("inclusion", &b.cdr.id().to_string(), &verify(&b, expected)),
        Err(e) => read(e),
    }
}

fn verdict(kind: &str, subject: &str, verdict: &Verdict) -> Value {
    let checks: Vec<Value> = verdict
        .checks
        .iter()
        .map(|c| match &c.outcome {
            Ok(detail) => json!({ "name": c.name, "ok": true, "detail": detail }),
            Err(reason) => json!({ "name": c.name, "ok": false, "detail": reason }),
        })
        .collect();
    json!({ "kind": kind, "subject": subject, "valid": verdict.valid, "trusted": verdict.trusted, "checks": checks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::ids::OperatorId;
    use cdrchain_runtime::proof::{ChainRef, StateEntryProof};
    use cdrchain_runtime::sample::{certify, SampleChain};
    use cdrchain_runtime::state::{prove_pair, StateKey};
    use parity_scale_codec::Encode;

    /// An absence bundle of `alice:12` from a sample chain where alice recorded 5 CDRs.
    fn absence() -> Value {
        let mut chain = SampleChain::new(&["alice", "bob"]);
        let (block, _, refused) = chain.build(vec![chain.batch("alice", 0, 5)], 1_000).unwrap();
        assert!(refused.is_empty());
        chain.import(block).unwrap();
        let alice = OperatorId::new("alice").unwrap();
        let key = StateKey::NextSequence(alice.clone()).encode();
        let (value, siblings, tree_root) = prove_pair(&chain.state, &key).unwrap().unwrap();
        let header = chain.blocks[0].header.clone();
        let (certificate, authorities) = certify(&header, &["alice", "bob"], &chain.genesis_hash());
        let hex = |b: &[u8]| format!("0x{}", hex::encode(b));
        let entry = StateEntryProof { key_scale: hex(&key), value_scale: hex(&value), siblings, tree_root };
        let chain_ref = ChainRef { id: "sample".into(), genesis_hash: chain.genesis_hash() };
        let bundle = AbsenceBundle::new(
            chain_ref,
            &authorities,
            alice,
            cdrchain_runtime::ids::Sequence(12),
            entry,
            header,
            certificate,
        );
        serde_json::to_value(bundle).unwrap()
    }

    #[test]
    fn a_party_hashes_as_ingest_hashes_it() {
        let secret = "consortium secret";
        let ingest = PartyHasher::new(secret.as_bytes(), Some("GB")).unwrap();
        let expected = format!("0x{}", ingest.digest("+44 20 7946 0018").unwrap().0.to_hex());
        for written in ["+442079460018", "020 7946 0018", "sip:+442079460018@sbc.example;user=phone"] {
            let got = party_text(&json!({ "secret": secret, "region": "GB", "party": written }).to_string());
            assert_eq!(got["digest"], expected.as_str(), "{written}: {got}");
            assert_eq!(got["canonical"], "tel:+442079460018");
            assert_eq!(got["kind"], "telephone number");
        }
        // Another secret, another digest; no region, a national number is as written.
        let other = party_text(&json!({ "secret": "other", "party": "+442079460018" }).to_string());
        assert_ne!(other["digest"], expected.as_str());
        let national = party_text(&json!({ "secret": secret, "party": "020 7946 0018" }).to_string());
        assert_ne!(national["digest"], expected.as_str());
        for (input, error) in [
            (json!({ "secret": "", "party": "+442079460018" }).to_string(), "secret is empty"),
            (json!({ "secret": secret, "party": "" }).to_string(), "empty"),
            (json!({ "secret": secret, "region": "XX", "party": "1" }).to_string(), "XX"),
            ("not json".to_string(), "not a party request"),
        ] {
            let got = party_text(&input);
            assert!(got["error"].as_str().is_some_and(|e| e.contains(error)), "{input}: {got}");
        }
    }

    fn failed(result: &Value) -> Vec<&str> {
        result["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_bundle_is_checked_and_every_check_named() {
        let bundle = absence().to_string();
        // Without a spec: consistent, untrusted.
        let verdict = verify_text(&bundle, "");
        let result = &verdict["results"][0];
        assert_eq!(
            (result["kind"].as_str(), result["subject"].as_str()),
            (Some("absence"), Some("alice:12"))
        );
        assert_eq!((result["valid"].as_bool(), result["trusted"].as_bool()), (Some(false), Some(false)));
        assert_eq!(failed(result), ["chain spec"]);
        // Against the dev chain's spec: another genesis, named.
        let verdict = verify_text(&bundle, "dev");
        assert_eq!(verdict["chain"], "dev");
        assert_eq!(failed(&verdict["results"][0]), ["chain spec"]);
        // A changed sequence fails the claim.
        let changed = bundle.replace("\"sequence\":12", "\"sequence\":3");
        assert!(failed(&verify_text(&changed, "")["results"][0]).contains(&"claim"));
        // An array: one result each.
        let both = format!("[{bundle},{bundle}]");
        assert_eq!(verify_text(&both, "")["results"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn what_is_not_a_bundle_or_a_spec_says_so() {
        assert!(verify_text("not json", "")["error"].as_str().unwrap().contains("not JSON"));
        assert!(verify_text("{}", "{\"id\": 1}")["error"].as_str().unwrap().contains("the chain spec"));
        let unreadable = &verify_text("{\"format\": \"cdrchain-dispute-bundle\"}", "")["results"][0];
        assert_eq!(unreadable["kind"], "unreadable");
        assert_eq!(failed(unreadable), ["format"]);
    }
}
