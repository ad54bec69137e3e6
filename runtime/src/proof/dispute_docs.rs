//! The documents of a dispute bundle ([`super::dispute`]): each opening must match its record's
//! commitment on chain and be the document that record says it is (the agreement of the pair,
//! the statement of the period under that agreement, each step of the kind the chain ordered);
//! the evidence inside the steps must match its stated BLAKE3 hash and size, and the proof
//! bundles among it (`cdrchain proof` files: inclusion or absence, one or an array) must verify
//! against the same chain. From the verified documents it tells who claimed what, and what was
//! settled.

use base64::Engine as _;
use serde_json::Value;

use super::dispute::{DisputeBundle, OpenedDocument, Records};
use super::{AbsenceBundle, Check, Expected, ProofBundle, Verdict};
use crate::interconnect::dispute::{DisputeRecord, StepKind};
use crate::interconnect::{AgreementRecord, Sealed, StatementRecord};

/// The step document format the CLI writes (`cdrchain dispute open|respond|close`).
pub const STEP_FORMAT: &str = "cdrchain-dispute-step";

/// What [`check`] found.
pub(super) struct Documents {
    pub checks: Vec<Check>,
    pub story: Vec<String>,
    pub settled: Option<String>,
}

pub(super) fn check(bundle: &DisputeBundle, records: &Records, expected: Option<&Expected<'_>>) -> Documents {
    let (Ok(dispute), Ok(statement), Ok(agreement)) =
        (&records.dispute, &records.statement, &records.agreement)
    else {
        let skipped = || Err("not checked: a record is not proven".to_string());
        let names = ["parties", "agreement document", "statement document", "steps", "evidence"];
        let checks = names.into_iter().map(|name| Check { name, outcome: skipped() }).collect();
        return Documents { checks, story: Vec::new(), settled: None };
    };
    let mut checks = vec![Check { name: "parties", outcome: parties(bundle, dispute, statement, agreement) }];
    let terms = agreement_document(&bundle.agreement_opening, agreement);
    let currency = terms.as_ref().ok().and_then(|t| t["currency"].as_str()).unwrap_or("").to_string();
    checks.push(Check {
        name: "agreement document",
        outcome: terms.as_ref().map(describe_terms).map_err(Clone::clone),
    });
    let ids = (statement.agreement.to_string(), dispute.statement.to_string());
    checks.push(Check {
        name: "statement document",
        outcome: statement_document(&bundle.statement_opening, statement, &ids.0),
    });
    let steps = steps(bundle, dispute, &ids.1);
    let (story, settled, evidence) = match &steps {
        Ok(documents) => {
            let (story, settled) = tell(dispute, documents, &currency);
            (story, settled, evidence(documents, bundle, expected))
        }
        Err(_) => (Vec::new(), None, Err("not checked: the steps do not open".to_string())),
    };
    checks.push(Check {
        name: "steps",
        outcome: steps.map(|d| format!("{} steps, each the document its commitment on chain names", d.len())),
    });
    checks.push(Check { name: "evidence", outcome: evidence });
    Documents { checks, story, settled }
}

/// The records name each other and one pair in the roles the chain gave them.
fn parties(
    bundle: &DisputeBundle,
    dispute: &DisputeRecord,
    statement: &StatementRecord,
    agreement: &AgreementRecord,
) -> Result<String, String> {
    if statement.dispute != Some(bundle.dispute) {
        return Err(format!("the statement names dispute {:?}, not {}", statement.dispute, bundle.dispute));
    }
    let pair = |a: &crate::ids::OperatorId, b: &crate::ids::OperatorId| crate::interconnect::pair_key(a, b);
    if pair(&statement.a, &statement.b) != pair(&agreement.a, &agreement.b) {
        return Err(format!(
            "the statement is between `{}` and `{}`, its agreement between `{}` and `{}`",
            statement.a, statement.b, agreement.a, agreement.b
        ));
    }
    if (&dispute.opener, &dispute.respondent) != (&statement.b, &statement.a) {
        return Err(format!(
            "dispute by `{}` against `{}` of a statement `{}` proposed to `{}`",
            dispute.opener, dispute.respondent, statement.a, statement.b
        ));
    }
    if let Some(step) = dispute.steps.iter().find(|s| s.by != dispute.opener && s.by != dispute.respondent) {
        return Err(format!("a step by `{}`, who is neither side", step.by));
    }
    Ok(format!(
        "`{}` disputes the statement `{}` proposed under their agreement version {}",
        dispute.opener, statement.a, agreement.version
    ))
}

/// The opening's document, once it matches `sealed`'s commitment and is JSON.
fn opened(opening: &OpenedDocument, sealed: &Sealed) -> Result<Value, String> {
    let commitment = opening.commitment()?;
    if commitment != sealed.commitment {
        return Err(format!(
            "the opening commits to {commitment}, the chain holds {}: not the document sealed on chain",
            sealed.commitment
        ));
    }
    serde_json::from_str(&opening.document).map_err(|e| format!("the document is not JSON: {e}"))
}

fn agreement_document(opening: &OpenedDocument, record: &AgreementRecord) -> Result<Value, String> {
    let terms = opened(opening, &record.sealed)?;
    if terms["format"] != "cdrchain-agreement" {
        return Err(format!("a `{}` document, not a cdrchain-agreement", terms["format"]));
    }
    let named = [terms["a"].as_str().unwrap_or(""), terms["b"].as_str().unwrap_or("")];
    if !named.contains(&record.a.as_str()) || !named.contains(&record.b.as_str()) {
        return Err(format!(
            "the document is between {named:?}, the record between `{}` and `{}`",
            record.a, record.b
        ));
    }
    if terms["dispute"]["window_days"].as_u64() != Some(u64::from(record.dispute_window_days)) {
        return Err(format!(
            "the document's dispute window is {}, the chain's {} days",
            terms["dispute"]["window_days"], record.dispute_window_days
        ));
    }
    Ok(terms)
}

fn describe_terms(terms: &Value) -> String {
    let dispute = &terms["dispute"];
    format!(
        "between `{}` and `{}` in {}: dispute window {} days, volume tolerance {} %, minimum {}",
        text(&terms["a"]),
        text(&terms["b"]),
        text(&terms["currency"]),
        dispute["window_days"],
        text(&dispute["volume_tolerance_percent"]),
        text(&dispute["minimum_amount"])
    )
}

fn statement_document(
    opening: &OpenedDocument,
    record: &StatementRecord,
    agreement: &str,
) -> Result<String, String> {
    let document = opened(opening, &record.sealed)?;
    if document["format"] != "cdrchain-statement" {
        return Err(format!("a `{}` document, not a cdrchain-statement", document["format"]));
    }
    if document["agreement"].as_str() != Some(agreement) {
        return Err(format!("it names agreement {}, the chain {agreement}", document["agreement"]));
    }
    let body = &document["statement"];
    let period = (body["from_ms"].as_u64(), body["to_ms"].as_u64());
    if period != (Some(record.from_ms), Some(record.to_ms)) {
        return Err(format!(
            "its period is {period:?}, the chain's [{}, {}) ms",
            record.from_ms, record.to_ms
        ));
    }
    let named = [body["a"].as_str().unwrap_or(""), body["b"].as_str().unwrap_or("")];
    if !named.contains(&record.a.as_str()) || !named.contains(&record.b.as_str()) {
        return Err(format!(
            "the document is between {named:?}, the record between `{}` and `{}`",
            record.a, record.b
        ));
    }
    Ok(format!(
        "{} calls of [{}, {}) ms at block #{}: `{}` owes `{}` {} {} net",
        document["calls"],
        record.from_ms,
        record.to_ms,
        document["height"],
        text(&body["a"]),
        text(&body["b"]),
        text(&body["net_a_owes_b"]),
        text(&body["currency"])
    ))
}

/// Every step's document (none for a confirmation), checked against the chain's step.
fn steps(
    bundle: &DisputeBundle,
    dispute: &DisputeRecord,
    statement: &str,
) -> Result<Vec<Option<Value>>, String> {
    if bundle.step_openings.len() != dispute.steps.len() {
        return Err(format!(
            "{} openings for the chain's {} steps",
            bundle.step_openings.len(),
            dispute.steps.len()
        ));
    }
    let mut documents: Vec<Option<Value>> = Vec::with_capacity(dispute.steps.len());
    for (index, (step, opening)) in dispute.steps.iter().zip(&bundle.step_openings).enumerate() {
        let n = index + 1;
        let document = match (&step.sealed, opening) {
            (Some(sealed), Some(opening)) => opened(opening, sealed).map_err(|e| format!("step {n}: {e}"))?,
            (None, None) => {
                confirms(dispute, index).map_err(|e| format!("step {n}: {e}"))?;
                documents.push(None);
                continue;
            }
            (Some(_), None) => return Err(format!("step {n} has a document on chain and no opening here")),
            (None, Some(_)) => return Err(format!("step {n} is a confirmation: it has no document to open")),
        };
        let kind = serde_json::to_value(step.kind).unwrap_or(Value::Null);
        if document["format"] != STEP_FORMAT || document["version"] != 1 || document["kind"] != kind {
            return Err(format!(
                "step {n}: a `{}` v{} `{}` document for the chain's `{kind}` step",
                text(&document["format"]),
                document["version"],
                text(&document["kind"])
            ));
        }
        if step.kind == StepKind::Open && document["statement"].as_str().is_some_and(|s| s != statement) {
            return Err(format!(
                "step 1 disputes statement {}, the chain's is {statement}",
                document["statement"]
            ));
        }
        documents.push(Some(document));
    }
    Ok(documents)
}

/// A confirmation names the commitment of the other side's proposal to close just before it.
fn confirms(dispute: &DisputeRecord, index: usize) -> Result<(), String> {
    let steps = dispute.steps.as_slice();
    let step = &steps[index];
    let proposal = index.checked_sub(1).map(|i| &steps[i]);
    match proposal {
        Some(p) if p.kind == StepKind::ProposeClose && p.by != step.by && p.commitment == step.commitment => {
            Ok(())
        }
        _ => {
            Err("a confirmation that does not name the other side's proposal to close before it".to_string())
        }
    }
}

/// Each evidence item's content matches its hash and size; proof bundles among it verify.
fn evidence(
    documents: &[Option<Value>],
    bundle: &DisputeBundle,
    expected: Option<&Expected<'_>>,
) -> Result<String, String> {
    let (mut items, mut proofs) = (0usize, 0usize);
    for (index, document) in documents.iter().enumerate() {
        let Some(document) = document else { continue };
        for item in document["evidence"].as_array().into_iter().flatten() {
            let name = text(&item["name"]);
            let at = format!("step {}, evidence `{name}`", index + 1);
            let content = item["content_base64"].as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|e| format!("{at}: not base64: {e}"))?;
            let hash = format!("0x{}", blake3::hash(&bytes).to_hex());
            if item["blake3"].as_str() != Some(hash.as_str())
                || item["bytes"].as_u64() != Some(bytes.len() as u64)
            {
                return Err(format!(
                    "{at}: its content ({} bytes, {hash}) is not what the step states",
                    bytes.len()
                ));
            }
            proofs += nested_proofs(&bytes, bundle, expected).map_err(|e| format!("{at}: {e}"))?;
            items += 1;
        }
    }
    Ok(format!("{items} items match their BLAKE3 hashes; {proofs} proof bundles among them verify"))
}

/// Verifies the proof bundles in an evidence file (none when it is not one): answers how many.
fn nested_proofs(
    bytes: &[u8],
    bundle: &DisputeBundle,
    expected: Option<&Expected<'_>>,
) -> Result<usize, String> {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else { return Ok(0) };
    let is_proof = |v: &Value| v["format"] == super::FORMAT;
    let items: Vec<&Value> = match &value {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_proof) => items.iter().collect(),
        one if is_proof(one) => vec![one],
        _ => return Ok(0),
    };
    for (index, item) in items.iter().enumerate() {
        let verdict = if item["kind"] == "absence" {
            serde_json::from_value::<AbsenceBundle>((*item).clone())
                .map(|b| (super::verify_absence(&b, expected), b.chain.genesis_hash))
        } else {
            serde_json::from_value::<ProofBundle>((*item).clone())
                .map(|b| (super::verify(&b, expected), b.chain.genesis_hash))
        };
        let (verdict, genesis) = verdict.map_err(|e| format!("proof bundle {index} does not read: {e}"))?;
        if genesis != bundle.genesis_hash {
            return Err(format!(
                "proof bundle {index} is of chain {genesis}, the dispute's is {}",
                bundle.genesis_hash
            ));
        }
        if !acceptable(&verdict, expected.is_some()) {
            let failed: Vec<String> = verdict
                .checks
                .iter()
                .filter_map(|c| c.outcome.as_ref().err().map(|e| format!("{}: {e}", c.name)))
                .collect();
            return Err(format!("proof bundle {index} fails: {}", failed.join("; ")));
        }
    }
    Ok(items.len())
}

/// Valid; or, with no chain spec to check against, failing only that check (the dispute
/// bundle's own verdict then says it is untrusted).
fn acceptable(verdict: &Verdict, trusted: bool) -> bool {
    verdict.valid
        || (!trusted && verdict.checks.iter().filter(|c| c.outcome.is_err()).all(|c| c.name == "chain spec"))
}

/// The story of the dispute from its verified documents, and the amount it closed at.
fn tell(
    dispute: &DisputeRecord,
    documents: &[Option<Value>],
    currency: &str,
) -> (Vec<String>, Option<String>) {
    let mut story = Vec::new();
    let mut settled = None;
    for (step, document) in dispute.steps.iter().zip(documents) {
        let at = format!("#{} `{}`", step.at.0, step.by);
        let null = Value::Null;
        let d = document.as_ref().unwrap_or(&null);
        let evidence: Vec<String> = d["evidence"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} ({} bytes)", text(&e["name"]), e["bytes"]))
            .collect();
        let evidence =
            if evidence.is_empty() { String::new() } else { format!("; evidence: {}", evidence.join(", ")) };
        let line = match step.kind {
            StepKind::Open => format!(
                "{at} opened a {} dispute claiming {} {currency}{}{evidence}",
                text(&d["category"]),
                text(&d["claim"]),
                d["own_calls"].as_u64().map(|n| format!(" (its own records: {n} calls)")).unwrap_or_default()
            ),
            StepKind::Respond => {
                let amount = d["amount"].as_str().map(|a| format!(" {a} {currency}")).unwrap_or_default();
                format!("{at} responded: {}{amount}{evidence}", text(&d["answer"]))
            }
            StepKind::ProposeClose => format!("{at} proposed to close at {} {currency}", text(&d["amount"])),
            StepKind::ConfirmClose => {
                let amount = last_proposal(dispute, documents, step.at).unwrap_or_default();
                settled = Some(format!("{amount} {currency}"));
                format!("{at} confirmed: closed at {amount} {currency}")
            }
        };
        story.push(line);
    }
    if dispute.closed_at.is_none() {
        settled = None;
    }
    (story, settled)
}

/// The amount of the latest proposal to close before height `before`.
fn last_proposal(
    dispute: &DisputeRecord,
    documents: &[Option<Value>],
    before: crate::ids::Height,
) -> Option<String> {
    dispute
        .steps
        .iter()
        .zip(documents)
        .rfind(|(s, _)| s.kind == StepKind::ProposeClose && s.at <= before)
        .and_then(|(_, d)| d.as_ref())
        .map(|d| text(&d["amount"]))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
