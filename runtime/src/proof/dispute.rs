//! Dispute bundles (issue #28): one file with which anyone the partners hand it to checks a
//! dispute offline, and reads who claimed what and what was settled. It carries the agreement,
//! the statement and the dispute as the chain holds them (state entries proven under a
//! finalized header's state root, the keys derived from the dispute's id, never taken from the
//! file), and the openings of their sealed documents (salt and document, which must match the
//! commitments on chain). The documents' own checks, the evidence inside the steps and the proof
//! bundles among it are [`super::dispute_docs`]'s. Format in `docs/proofs.md`.
//!
//! Every field is either checked or derived: unknown fields are refused, readable copies must
//! equal their signed bytes, and the tests change every byte of a bundle to see a named check
//! fail.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::dispute_docs::{self, Documents};
use super::{finish, hex_of, sets, signed_parts, Authority, ChainRef, Check, Expected, Verdict};
use crate::block::{CommitCertificate, Header};
use crate::codec::decode_exact;
use crate::crypto::PublicKey;
use crate::hash::Hash32;
use crate::ids::OperatorId;
use crate::interconnect::dispute::DisputeRecord;
use crate::interconnect::{AgreementRecord, Opening, StatementRecord};
use crate::state::StateKey;

/// The dispute bundle format's name.
pub const DISPUTE_FORMAT: &str = "cdrchain-dispute-bundle";
/// The version this code writes and reads.
pub const DISPUTE_VERSION: u32 = 1;

/// A state entry as a dispute bundle carries it: the value and its path (siblings, root first)
/// to the bundle's state tree root. The key is the verifier's to derive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenValue {
    pub value_scale: String,
    pub siblings: Vec<Hash32>,
}

/// A sealed document's opening: the salt (hex) and the document (UTF-8 text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenedDocument {
    pub salt: String,
    pub document: String,
}

impl OpenedDocument {
    pub fn of(opening: &Opening) -> Option<OpenedDocument> {
        let document = String::from_utf8(opening.content.clone()).ok()?;
        Some(OpenedDocument { salt: hex_of(&opening.salt), document })
    }

    /// The commitment this opening makes, or why it makes none.
    pub(super) fn commitment(&self) -> Result<Hash32, String> {
        let salt = hex::decode(self.salt.strip_prefix("0x").unwrap_or(&self.salt))
            .map_err(|e| format!("the salt is not hex: {e}"))?;
        let salt: [u8; 32] =
            salt.try_into().map_err(|s: Vec<u8>| format!("a salt of {} bytes, not 32", s.len()))?;
        Ok(crate::interconnect::commitment_of(&salt, self.document.as_bytes()))
    }
}

/// A dispute bundle (version 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeBundle {
    pub format: String,
    pub version: u32,
    pub genesis_hash: Hash32,
    /// The authority set that certified the header.
    pub authorities: Vec<Authority>,
    /// As in [`super::ProofBundle::set_changes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<sets::SetStep>,
    pub header: Header,
    pub header_scale: String,
    pub certificate: CommitCertificate,
    pub certificate_scale: String,
    /// The state tree's root: with the header's CDR log it gives the header's state root.
    pub tree_root: Hash32,
    /// The dispute's id.
    pub dispute: Hash32,
    /// `Dispute(dispute)`, `Statement(its statement)`, `Agreement(the statement's agreement)`.
    pub dispute_entry: ProvenValue,
    pub statement_entry: ProvenValue,
    pub agreement_entry: ProvenValue,
    pub agreement_opening: OpenedDocument,
    pub statement_opening: OpenedDocument,
    /// One per step of the dispute, in order; none for a confirmation (it has no document).
    pub step_openings: Vec<Option<OpenedDocument>>,
}

/// What a node reads to make a bundle: the three records' values and paths under one tree root.
#[derive(Clone, Debug)]
pub struct Proven {
    pub tree_root: Hash32,
    pub dispute: ProvenValue,
    pub statement: ProvenValue,
    pub agreement: ProvenValue,
}

impl DisputeBundle {
    /// Assembles a bundle; the caller reads each part from a node's storage and opens the
    /// documents with its operator's key.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        genesis_hash: Hash32,
        authorities: &[(OperatorId, PublicKey)],
        header: Header,
        certificate: CommitCertificate,
        dispute: Hash32,
        proven: Proven,
        openings: [OpenedDocument; 2],
        step_openings: Vec<Option<OpenedDocument>>,
    ) -> DisputeBundle {
        let [agreement_opening, statement_opening] = openings;
        DisputeBundle {
            format: DISPUTE_FORMAT.to_string(),
            version: DISPUTE_VERSION,
            genesis_hash,
            authorities: authorities
                .iter()
                .map(|(operator, ed25519)| Authority { operator: operator.clone(), ed25519: *ed25519 })
                .collect(),
            set_changes: Vec::new(),
            header_scale: hex_of(&header.encode()),
            header,
            certificate_scale: hex_of(&certificate.encode()),
            certificate,
            tree_root: proven.tree_root,
            dispute,
            dispute_entry: proven.dispute,
            statement_entry: proven.statement,
            agreement_entry: proven.agreement,
            agreement_opening,
            statement_opening,
            step_openings,
        }
    }
}

/// The verdict on a dispute bundle, and what its verified documents say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeVerdict {
    pub verdict: Verdict,
    /// Who claimed, answered, proposed and confirmed what, step by step.
    pub story: Vec<String>,
    /// The amount the dispute closed at, with its currency; none while it is open.
    pub settled: Option<String>,
}

/// Reads a bundle from its JSON text and checks it; a text that is not a bundle fails `format`.
pub fn verify_dispute_text(text: &str, expected: Option<&Expected<'_>>) -> DisputeVerdict {
    match serde_json::from_str::<DisputeBundle>(text) {
        Ok(bundle) => verify_dispute(&bundle, expected),
        Err(e) => DisputeVerdict {
            verdict: Verdict {
                checks: vec![Check {
                    name: "format",
                    outcome: Err(format!("not a {DISPUTE_FORMAT} version {DISPUTE_VERSION}: {e}")),
                }],
                valid: false,
                trusted: false,
            },
            story: Vec::new(),
            settled: None,
        },
    }
}

/// The value of `key` proven under `tree_root`, decoded.
fn entry<T: Decode>(key: &StateKey, proven: &ProvenValue, tree_root: &Hash32) -> Result<T, String> {
    let value = super::bytes_of(&proven.value_scale, "value_scale")?;
    match crate::smt::root_from_path(&key.to_bytes(), &value, &proven.siblings) {
        Some(root) if root == *tree_root => {}
        Some(root) => {
            return Err(format!("its path leads to state tree root {root}, the bundle's is {tree_root}"))
        }
        None => return Err(format!("{} siblings, more than the tree's levels", proven.siblings.len())),
    }
    decode_exact(&value).map_err(|e| format!("the value does not decode: {e}"))
}

/// The three records, each proven or the reason it is not (a record that depends on one that
/// failed is not checked).
pub(super) struct Records {
    pub dispute: Result<DisputeRecord, String>,
    pub statement: Result<StatementRecord, String>,
    pub agreement: Result<AgreementRecord, String>,
}

fn records(bundle: &DisputeBundle) -> Records {
    let root = &bundle.tree_root;
    let dispute: Result<DisputeRecord, String> =
        entry(&StateKey::Dispute(bundle.dispute), &bundle.dispute_entry, root);
    let statement: Result<StatementRecord, String> = match &dispute {
        Ok(d) => entry(&StateKey::Statement(d.statement), &bundle.statement_entry, root),
        Err(_) => Err("not checked: the dispute entry is not proven".to_string()),
    };
    let agreement: Result<AgreementRecord, String> = match &statement {
        Ok(s) => entry(&StateKey::Agreement(s.agreement), &bundle.agreement_entry, root),
        Err(_) => Err("not checked: the statement entry is not proven".to_string()),
    };
    Records { dispute, statement, agreement }
}

fn proven<T>(record: &Result<T, String>, what: String, root: &Hash32) -> Result<String, String> {
    record.as_ref().map(|_| format!("{what} under state tree root {root}")).map_err(Clone::clone)
}

/// Checks a dispute bundle, naming every check; with `expected` (the verifier's own chain spec)
/// the authority set must be the spec's, as for proof bundles.
pub fn verify_dispute(bundle: &DisputeBundle, expected: Option<&Expected<'_>>) -> DisputeVerdict {
    let mut checks = Vec::new();
    let mut push = |name: &'static str, outcome: Result<String, String>| checks.push(Check { name, outcome });
    push(
        "format",
        if bundle.format == DISPUTE_FORMAT && bundle.version == DISPUTE_VERSION {
            Ok(format!("{DISPUTE_FORMAT} version {DISPUTE_VERSION}"))
        } else {
            Err(format!("`{}` version {}", bundle.format, bundle.version))
        },
    );
    let (header, certificate, signed) =
        signed_parts(&bundle.header_scale, &bundle.header, &bundle.certificate_scale, &bundle.certificate);
    for check in signed {
        push(check.name, check.outcome);
    }
    let records = records(bundle);
    let root = bundle.tree_root;
    push("dispute entry", proven(&records.dispute, format!("dispute {}", bundle.dispute), &root));
    let statement_id = records.dispute.as_ref().map(|d| d.statement.to_string()).unwrap_or_default();
    push("statement entry", proven(&records.statement, format!("statement {statement_id}"), &root));
    let agreement_id = records.statement.as_ref().map(|s| s.agreement.to_string()).unwrap_or_default();
    push("agreement entry", proven(&records.agreement, format!("agreement {agreement_id}"), &root));
    let root = super::state_root_check(&header, &bundle.tree_root);
    push("state root", root);
    let documents = dispute_docs::check(bundle, &records, expected);
    let Documents { checks: document_checks, story, settled } = documents;
    checks.extend(document_checks);
    let chain = ChainRef { id: String::new(), genesis_hash: bundle.genesis_hash };
    let verdict =
        finish(checks, &chain, &bundle.authorities, &header, &certificate, &bundle.set_changes, expected);
    DisputeVerdict { verdict, story, settled }
}
