//! Proof bundles: everything an auditor needs to check, with no network, that a CDR is on the
//! chain — the CDR, its inclusion path to the CDR log root of a header, that header, and the
//! header's commit certificate from more than two thirds of the authority set. Format in
//! `docs/proofs.md`.
//!
//! The signed objects travel as their exact SCALE bytes (`*_scale`, hex), which is what the
//! checks hash and verify; the readable JSON copies beside them must decode to the same values,
//! so that neither can be edited alone. Everything here is pure.

pub mod dispute;
mod dispute_docs;
pub mod sets;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::block::{CommitCertificate, Header};
use crate::cdr::Cdr;
use crate::checkpoint::Checkpoint;
use crate::codec::decode_exact;
use crate::crypto::EvmAddress;
use crate::crypto::PublicKey;
use crate::hash::Hash32;
use crate::ids::OperatorId;
use crate::merkle::{verify_consistency, verify_inclusion, ConsistencyProof, Domain, InclusionProof};

/// The bundle format's name.
pub const FORMAT: &str = "cdrchain-proof";
/// The bundle format's version this code writes and reads.
pub const VERSION: u32 = 1;
/// The version of absence bundles: 2 since the state tree became a sparse Merkle tree (ADR 0016).
pub const ABSENCE_VERSION: u32 = 2;

/// Which chain a bundle is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRef {
    pub id: String,
    pub genesis_hash: Hash32,
}

/// An authority and its key, as the bundle carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    pub operator: OperatorId,
    pub ed25519: PublicKey,
}

/// An inclusion proof bundle (version 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBundle {
    pub format: String,
    pub version: u32,
    pub chain: ChainRef,
    /// The authority set that signed the certificate (the chain spec's authorities).
    pub authorities: Vec<Authority>,
    /// Readable copy of the CDR; `cdr_scale` is what is hashed.
    pub cdr: Cdr,
    pub cdr_scale: String,
    /// The audit path of the CDR's leaf to the header's CDR log root.
    pub inclusion: InclusionProof,
    pub header: Header,
    pub header_scale: String,
    pub certificate: CommitCertificate,
    pub certificate_scale: String,
    /// Where the chain was anchored on RSK, when the bundle was made with `--rsk-rpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// The authority-set changes from genesis to the set that signed the certificate
    /// ([`sets`]); empty while the genesis set signs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<sets::SetStep>,
}

/// A checkpoint stored in the `CdrCheckpoint` contract, and a consistency proof between its CDR
/// log and the log of the bundle's header (from the smaller size to the larger). The verifier
/// reads the checkpoint back from the contract itself: the copy here says which one, and must
/// equal it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub rsk_chain_id: u64,
    pub contract: EvmAddress,
    pub checkpoint: Checkpoint,
    pub consistency: ConsistencyProof,
}

/// What the verifier read from RSK, independently of the bundle: the chain it talked to, the
/// contract it asked, and the checkpoint that contract stores at the bundle's anchor height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChain {
    pub rsk_chain_id: u64,
    pub contract: EvmAddress,
    pub checkpoint: Checkpoint,
}

fn hex_of(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl ProofBundle {
    /// Assembles a bundle; the caller takes each part from a node's storage.
    pub fn new(
        chain: ChainRef,
        authorities: &[(OperatorId, PublicKey)],
        cdr: Cdr,
        inclusion: InclusionProof,
        header: Header,
        certificate: CommitCertificate,
    ) -> ProofBundle {
        ProofBundle {
            format: FORMAT.to_string(),
            version: VERSION,
            chain,
            authorities: authorities
                .iter()
                .map(|(operator, ed25519)| Authority { operator: operator.clone(), ed25519: *ed25519 })
                .collect(),
            cdr_scale: hex_of(&cdr.encode()),
            cdr,
            inclusion,
            header_scale: hex_of(&header.encode()),
            header,
            certificate_scale: hex_of(&certificate.encode()),
            certificate,
            anchor: None,
            set_changes: Vec::new(),
        }
    }

    /// Whether the bundle's CDR lies within its anchor's CDR log (not just after it).
    pub fn anchor_covers_cdr(&self) -> bool {
        self.anchor.as_ref().is_some_and(|a| self.inclusion.leaf_index < a.checkpoint.cdr_log_size)
    }
}

/// One named check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

/// What the verifier knows about the chain independently of the bundle (from its chain spec).
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub genesis_hash: Hash32,
    pub authorities: &'a [(OperatorId, PublicKey)],
}

/// The verdict of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub checks: Vec<Check>,
    /// Every check passed.
    pub valid: bool,
    /// The authority set was checked against an independent chain spec.
    pub trusted: bool,
}

fn decoded<T: Decode + PartialEq + std::fmt::Debug>(
    hex_text: &str,
    copy: &T,
    what: &str,
) -> Result<T, String> {
    let bytes = hex::decode(hex_text.trim_start_matches("0x"))
        .map_err(|e| format!("{what}_scale is not hex: {e}"))?;
    let value: T = decode_exact(&bytes).map_err(|e| format!("{what}_scale does not decode: {e}"))?;
    if &value != copy {
        return Err(format!("the readable `{what}` differs from the signed bytes `{what}_scale`"));
    }
    Ok(value)
}

/// The header and certificate of a bundle, each decoded from its signed bytes and equal to its
/// readable copy, with the `header` and `certificate encoding` checks that say so.
fn signed_parts(
    header_scale: &str,
    header: &Header,
    certificate_scale: &str,
    certificate: &CommitCertificate,
) -> (Result<Header, String>, Result<CommitCertificate, String>, [Check; 2]) {
    let header = decoded(header_scale, header, "header");
    let certificate = decoded(certificate_scale, certificate, "certificate");
    let checks = [
        Check {
            name: "header",
            outcome: header.as_ref().map(|h| format!("#{} {}", h.number.0, h.hash())).map_err(Clone::clone),
        },
        Check {
            name: "certificate encoding",
            outcome: certificate
                .as_ref()
                .map(|c| format!("{} signatures", c.signatures.len()))
                .map_err(Clone::clone),
        },
    ];
    (header, certificate, checks)
}

/// Checks a bundle, naming every check. With `expected` (from the verifier's own chain spec) the
/// authority set and genesis hash must match it; without, the verdict is not `trusted`: anyone
/// can make a bundle that verifies against an authority set of its own.
pub fn verify(bundle: &ProofBundle, expected: Option<&Expected<'_>>) -> Verdict {
    let mut checks = Vec::new();
    let mut push = |name: &'static str, outcome: Result<String, String>| checks.push(Check { name, outcome });
    let format_ok = bundle.format == FORMAT && bundle.version == VERSION;
    push(
        "format",
        if format_ok {
            Ok(format!("{FORMAT} version {VERSION}"))
        } else {
            Err(format!(
                "`{}` version {}: this verifier reads {FORMAT} version {VERSION}",
                bundle.format, bundle.version
            ))
        },
    );
    let cdr = decoded(&bundle.cdr_scale, &bundle.cdr, "cdr");
    push(
        "cdr",
        cdr.as_ref().map(|c| format!("{} decodes from its signed bytes", c.id())).map_err(Clone::clone),
    );
    let (header, certificate, signed) =
        signed_parts(&bundle.header_scale, &bundle.header, &bundle.certificate_scale, &bundle.certificate);
    for check in signed {
        push(check.name, check.outcome);
    }
    // Inclusion of the CDR's leaf in the header's CDR log.
    let inclusion = match (&cdr, &header) {
        (Ok(_), Ok(header)) => {
            let bytes = hex::decode(bundle.cdr_scale.trim_start_matches("0x")).unwrap_or_default();
            let leaf = Domain::CDR_LOG.leaf(&bytes);
            if bundle.inclusion.tree_size != header.cdr_log_size {
                Err(format!(
                    "the proof is for a log of {} CDRs, the header's log has {}",
                    bundle.inclusion.tree_size, header.cdr_log_size
                ))
            } else {
                verify_inclusion(Domain::CDR_LOG, &leaf, &bundle.inclusion, &header.cdr_log_root)
                    .map(|()| {
                        format!(
                            "leaf {} of {} under CDR log root {}",
                            bundle.inclusion.leaf_index, header.cdr_log_size, header.cdr_log_root
                        )
                    })
                    .map_err(|e| format!("the path does not lead to the header's CDR log root: {e}"))
            }
        }
        _ => Err("not checked: the CDR or header does not decode".to_string()),
    };
    push("inclusion", inclusion);
    finish(checks, &bundle.chain, &bundle.authorities, &header, &certificate, &bundle.set_changes, expected)
}

/// [`verify`], and then the bundle's anchor against what the verifier read from RSK itself
/// (`onchain`; an error when it could not read it): the contract's checkpoint must be the
/// bundle's, for this chain, and the bundle header's CDR log must be consistent with the anchored
/// one, so that the history up to the anchor was never rewritten.
pub fn verify_anchored(
    bundle: &ProofBundle,
    expected: Option<&Expected<'_>>,
    onchain: Result<&OnChain, String>,
) -> Verdict {
    let mut verdict = verify(bundle, expected);
    let header = decoded(&bundle.header_scale, &bundle.header, "header");
    let (stored, consistent) = match (&bundle.anchor, onchain) {
        (None, _) => {
            let missing =
                "the bundle carries no anchor: make it with `cdrchain proof --rsk-rpc URL --contract ADDR`";
            (Err(missing.to_string()), Err("not checked: no anchor".to_string()))
        }
        (Some(_), Err(e)) => (Err(e), Err("not checked: the anchored checkpoint was not read".to_string())),
        (Some(anchor), Ok(onchain)) => (
            anchor_matches(anchor, onchain, &bundle.chain),
            anchor_consistent(anchor, &header, bundle.inclusion.leaf_index),
        ),
    };
    verdict.checks.push(Check { name: "anchor", outcome: stored });
    verdict.checks.push(Check { name: "anchor consistency", outcome: consistent });
    verdict.valid = verdict.checks.iter().all(|c| c.outcome.is_ok());
    verdict
}

/// The contract's checkpoint is the one the bundle names, on the chain and contract the verifier
/// asked, for the bundle's chain.
fn anchor_matches(anchor: &Anchor, onchain: &OnChain, chain: &ChainRef) -> Result<String, String> {
    if anchor.rsk_chain_id != onchain.rsk_chain_id {
        return Err(format!(
            "the bundle was anchored on RSK chain {}, the node asked is chain {}",
            anchor.rsk_chain_id, onchain.rsk_chain_id
        ));
    }
    if anchor.contract != onchain.contract {
        return Err(format!(
            "the bundle was anchored in contract {}, not in {}",
            anchor.contract, onchain.contract
        ));
    }
    if onchain.checkpoint.genesis_hash != chain.genesis_hash {
        return Err(format!(
            "the contract anchors genesis {}, the bundle's chain is {}",
            onchain.checkpoint.genesis_hash, chain.genesis_hash
        ));
    }
    if onchain.checkpoint != anchor.checkpoint {
        return Err(format!(
            "the contract's checkpoint #{} differs from the bundle's: contract {:?}, bundle {:?}",
            anchor.checkpoint.height.0, onchain.checkpoint, anchor.checkpoint
        ));
    }
    Ok(format!(
        "checkpoint #{} (a log of {} CDRs) is stored in {} on RSK chain {}",
        anchor.checkpoint.height.0, anchor.checkpoint.cdr_log_size, anchor.contract, anchor.rsk_chain_id
    ))
}

/// The bundle header's CDR log and the anchored one are one history: the smaller is a prefix of
/// the larger (RFC 9162 consistency), and at the same height they are the same block.
fn anchor_consistent(
    anchor: &Anchor,
    header: &Result<Header, String>,
    leaf_index: u64,
) -> Result<String, String> {
    let header = header.as_ref().map_err(|_| "not checked: the header does not decode".to_string())?;
    let anchored = &anchor.checkpoint;
    if anchored.height == header.number && anchored.block_hash != header.hash() {
        return Err(format!(
            "the anchored block #{} is {}, the bundle's block at that height is {}",
            header.number.0,
            anchored.block_hash,
            header.hash()
        ));
    }
    let (anchor_size, size) = (anchored.cdr_log_size, header.cdr_log_size);
    let (old, new) = if anchor_size <= size {
        ((anchored.cdr_log_root, anchor_size), (header.cdr_log_root, size))
    } else {
        ((header.cdr_log_root, size), (anchored.cdr_log_root, anchor_size))
    };
    let proof = &anchor.consistency;
    if (proof.old_size, proof.new_size) != (old.1, new.1) {
        return Err(format!(
            "the consistency proof is from {} to {} CDRs; the anchor has {anchor_size}, the header {size}",
            proof.old_size, proof.new_size
        ));
    }
    if old.1 == 0 {
        // Any log extends the empty one: there is nothing to check, and nothing is anchored.
        if !proof.path.is_empty() {
            return Err("a consistency proof from an empty log must be empty".to_string());
        }
    } else {
        verify_consistency(Domain::CDR_LOG, &old.0, &new.0, proof)
            .map_err(|e| format!("the anchored CDR log and the header's are not one history: {e}"))?;
    }
    let which = if anchor_size <= size { "extends" } else { "is a prefix of" };
    let covered = if leaf_index < anchor_size {
        format!("leaf {leaf_index} lies within the anchored log")
    } else {
        format!("leaf {leaf_index} came after the anchor: the CDR itself is not anchored yet")
    };
    Ok(format!(
        "the header's log of {size} CDRs {which} the anchored log of {anchor_size} (block #{}); {covered}",
        anchored.height.0
    ))
}

/// The checks every bundle ends with: the certificate finalizes the header under the bundle's
/// authority set (more than two thirds, distinct, valid), and that set is the chain spec's, or
/// the one its set changes lead to from the chain spec's.
fn finish(
    mut checks: Vec<Check>,
    chain: &ChainRef,
    authorities: &[Authority],
    header: &Result<Header, String>,
    certificate: &Result<CommitCertificate, String>,
    steps: &[sets::SetStep],
    expected: Option<&Expected<'_>>,
) -> Verdict {
    let authorities: Vec<(OperatorId, PublicKey)> =
        authorities.iter().map(|a| (a.operator.clone(), a.ed25519)).collect();
    let finality = match (header, certificate) {
        (Ok(header), Ok(certificate)) => certificate
            .verify(header, &chain.genesis_hash, &authorities)
            .map(|()| {
                format!(
                    "{} of {} authorities signed block #{} (more than two thirds)",
                    certificate.signatures.len(),
                    authorities.len(),
                    header.number.0
                )
            })
            .map_err(|e| e.to_string()),
        _ => Err("not checked: the header or certificate does not decode".to_string()),
    };
    checks.push(Check { name: "finality", outcome: finality });
    // With the chain spec: the set the changes lead to from its authorities must have signed.
    let followed = expected.map(|e| sets::follow(&e.genesis_hash, e.authorities, steps));
    let walked;
    let expected = match (&followed, expected) {
        (Some(Ok(set)), Some(e)) if !steps.is_empty() => {
            let at = header.as_ref().map_or(0, |h| h.number.0);
            let outcome = if at >= set.from.0 {
                Ok(format!(
                    "{} changes from the genesis set, each certified by the set before: set {} from #{}",
                    steps.len(),
                    set.id,
                    set.from.0
                ))
            } else {
                Err(format!("set {} takes effect at #{}, after the bundle's block #{at}", set.id, set.from.0))
            };
            checks.push(Check { name: "set changes", outcome });
            walked = Expected { genesis_hash: e.genesis_hash, authorities: &set.authorities };
            Some(&walked)
        }
        (Some(Err(e)), Some(_)) => {
            checks.push(Check { name: "set changes", outcome: Err(e.clone()) });
            expected
        }
        _ => expected,
    };
    checks.push(Check { name: "chain spec", outcome: chain_check(chain, &authorities, expected) });
    let valid = checks.iter().all(|c| c.outcome.is_ok());
    Verdict { checks, valid, trusted: expected.is_some() }
}

/// One pair of the small state with its path in the state tree ([`crate::smt`]): the siblings
/// from the root down to the pair's leaf, and the tree's root, which with the header's CDR log
/// root and size gives the header's state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntryProof {
    pub key_scale: String,
    pub value_scale: String,
    /// Root first; the pair's depth in the tree is their number.
    pub siblings: Vec<Hash32>,
    pub tree_root: Hash32,
}

/// An absence bundle (version 2): `operator:sequence` was not recorded at the header's height,
/// because the operator's next sequence was at most `sequence` there, or because `sequence` lies
/// in a gap the operator declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsenceBundle {
    pub format: String,
    pub version: u32,
    /// Always `absence`.
    pub kind: String,
    pub chain: ChainRef,
    pub authorities: Vec<Authority>,
    pub operator: OperatorId,
    pub sequence: crate::ids::Sequence,
    /// `NextSequence(operator)`, or the `Gap(operator, from)` covering `sequence`.
    pub entry: StateEntryProof,
    pub header: Header,
    pub header_scale: String,
    pub certificate: CommitCertificate,
    pub certificate_scale: String,
    /// As in [`ProofBundle::set_changes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<sets::SetStep>,
}

impl AbsenceBundle {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain: ChainRef,
        authorities: &[(OperatorId, PublicKey)],
        operator: OperatorId,
        sequence: crate::ids::Sequence,
        entry: StateEntryProof,
        header: Header,
        certificate: CommitCertificate,
    ) -> AbsenceBundle {
        AbsenceBundle {
            format: FORMAT.to_string(),
            version: ABSENCE_VERSION,
            kind: "absence".to_string(),
            chain,
            authorities: authorities
                .iter()
                .map(|(operator, ed25519)| Authority { operator: operator.clone(), ed25519: *ed25519 })
                .collect(),
            operator,
            sequence,
            entry,
            header_scale: hex_of(&header.encode()),
            header,
            certificate_scale: hex_of(&certificate.encode()),
            certificate,
            set_changes: Vec::new(),
        }
    }
}

fn bytes_of(hex_text: &str, what: &str) -> Result<Vec<u8>, String> {
    hex::decode(hex_text.trim_start_matches("0x")).map_err(|e| format!("{what} is not hex: {e}"))
}

/// What the state entry of an absence bundle says about `operator:sequence`.
fn absence_claim(bundle: &AbsenceBundle) -> Result<String, String> {
    use crate::state::{GapRecord, StateKey};
    let key_bytes = bytes_of(&bundle.entry.key_scale, "key_scale")?;
    let value_bytes = bytes_of(&bundle.entry.value_scale, "value_scale")?;
    let key: StateKey = decode_exact(&key_bytes).map_err(|e| format!("key_scale does not decode: {e}"))?;
    let sequence = bundle.sequence;
    match key {
        StateKey::NextSequence(operator) if operator == bundle.operator => {
            let next: crate::ids::Sequence =
                decode_exact(&value_bytes).map_err(|e| format!("value_scale does not decode: {e}"))?;
            if next.0 <= sequence.0 {
                Ok(format!(
                    "`{operator}`'s next sequence was {} at the header: {} was not recorded",
                    next.0, sequence.0
                ))
            } else {
                Err(format!(
                    "`{operator}`'s next sequence was {}: sequence {} was recorded",
                    next.0, sequence.0
                ))
            }
        }
        StateKey::Gap(operator, from) if operator == bundle.operator => {
            let gap: GapRecord =
                decode_exact(&value_bytes).map_err(|e| format!("value_scale does not decode: {e}"))?;
            if from.0 <= sequence.0 && sequence.0 <= gap.to.0 {
                Ok(format!(
                    "`{operator}` declared sequences {}..={} missing at height {}: {}",
                    from.0, gap.to.0, gap.declared_at.0, gap.reason
                ))
            } else {
                Err(format!("the declared gap {}..={} does not cover {}", from.0, gap.to.0, sequence.0))
            }
        }
        other => {
            Err(format!("the state entry is {other:?}, not `{}`'s next sequence or gap", bundle.operator))
        }
    }
}

/// Checks an absence bundle, naming every check (as [`verify`] does for inclusion).
pub fn verify_absence(bundle: &AbsenceBundle, expected: Option<&Expected<'_>>) -> Verdict {
    let mut checks = Vec::new();
    let mut push = |name: &'static str, outcome: Result<String, String>| checks.push(Check { name, outcome });
    push(
        "format",
        if bundle.format == FORMAT && bundle.version == ABSENCE_VERSION && bundle.kind == "absence" {
            Ok(format!("{FORMAT} version {ABSENCE_VERSION}, absence"))
        } else {
            Err(format!("`{}` version {} kind `{}`", bundle.format, bundle.version, bundle.kind))
        },
    );
    push("claim", absence_claim(bundle));
    let (header, certificate, signed) =
        signed_parts(&bundle.header_scale, &bundle.header, &bundle.certificate_scale, &bundle.certificate);
    for check in signed {
        push(check.name, check.outcome);
    }
    let entry = &bundle.entry;
    let state = match (bytes_of(&entry.key_scale, "key_scale"), bytes_of(&entry.value_scale, "value_scale")) {
        (Ok(key), Ok(value)) => match crate::smt::root_from_path(&key, &value, &entry.siblings) {
            Some(root) if root == entry.tree_root => Ok(format!(
                "pair at depth {} under state tree root {}",
                entry.siblings.len(),
                entry.tree_root
            )),
            Some(root) => {
                Err(format!("the path leads to state tree root {root}, the bundle says {}", entry.tree_root))
            }
            None => Err(format!(
                "{} siblings, more than the tree's {} levels",
                entry.siblings.len(),
                crate::smt::PATH_BITS
            )),
        },
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    push("state inclusion", state);
    let root = state_root_check(&header, &entry.tree_root);
    push("state root", root);
    finish(checks, &bundle.chain, &bundle.authorities, &header, &certificate, &bundle.set_changes, expected)
}

/// The header's state root is the one `tree_root` gives with the header's CDR log.
fn state_root_check(header: &Result<Header, String>, tree_root: &Hash32) -> Result<String, String> {
    let header = header.as_ref().map_err(|_| "not checked: the header does not decode".to_string())?;
    let computed = crate::state::state_root(&header.cdr_log_root, header.cdr_log_size, tree_root);
    if computed == header.state_root {
        Ok(format!("the header's state root {}", header.state_root))
    } else {
        Err(format!("the state tree gives state root {computed}, the header has {}", header.state_root))
    }
}

fn chain_check(
    chain: &ChainRef,
    authorities: &[(OperatorId, PublicKey)],
    expected: Option<&Expected<'_>>,
) -> Result<String, String> {
    match expected {
        None => {
            Err("no chain spec given: the authority set is the bundle's own (give --chain SPEC)".to_string())
        }
        Some(expected) if expected.genesis_hash != chain.genesis_hash => Err(format!(
            "the bundle is for genesis {}, the chain spec's is {}",
            chain.genesis_hash, expected.genesis_hash
        )),
        Some(expected) if expected.authorities != authorities => {
            Err("the bundle's authority set is not the chain spec's".to_string())
        }
        Some(_) => Ok(format!("genesis {} and its {} authorities", chain.genesis_hash, authorities.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::public_key;
    use crate::ids::Round;
    use crate::merkle::{inclusion_proof, MemoryNodeStore};
    use crate::sample::{certify, operator_key, SampleChain};

    /// A three-validator sample chain with three blocks of five CDRs, a bundle for one CDR of
    /// block 2, the verifier's expectation, the CDR log's node store and the three headers.
    fn sample() -> (ProofBundle, Vec<(OperatorId, PublicKey)>, Hash32, MemoryNodeStore, Vec<Header>) {
        let names = ["alice", "bob", "carol"];
        let mut chain = SampleChain::new(&names);
        let mut log = crate::merkle::Frontier::new();
        let mut store = MemoryNodeStore::new();
        let mut cdrs = Vec::new();
        for (i, first) in [(1u64, 0u64), (2, 5), (3, 10)] {
            let (block, _, refused) = chain.build(vec![chain.batch("alice", first, 5)], 1_000 * i).unwrap();
            assert!(refused.is_empty());
            for tx in &block.transactions {
                if let crate::tx::Transaction::CdrBatch(batch) = &tx.transaction {
                    for (offset, body) in batch.cdrs.iter().enumerate() {
                        let cdr = Cdr {
                            recorder: batch.operator.clone(),
                            sequence: crate::ids::Sequence(batch.first_sequence.0 + offset as u64),
                            body: body.clone(),
                        };
                        log.append(Domain::CDR_LOG, cdr.leaf_hash(), &mut |id, hash| {
                            store.insert(id, hash);
                        })
                        .unwrap();
                        cdrs.push(cdr);
                    }
                }
            }
            chain.import(block).unwrap();
        }
        let header = chain.blocks[1].header.clone();
        assert_eq!(header.cdr_log_size, 10);
        let genesis = chain.genesis_hash();
        let (certificate, authorities) = certify(&header, &names, &genesis);
        let inclusion = inclusion_proof(&store, Domain::CDR_LOG, 7, 10).unwrap();
        let bundle = ProofBundle::new(
            ChainRef { id: "sample".into(), genesis_hash: genesis },
            &authorities,
            cdrs[7].clone(),
            inclusion,
            header,
            certificate,
        );
        let headers = chain.blocks.iter().map(|b| b.header.clone()).collect();
        (bundle, authorities, genesis, store, headers)
    }

    fn fixture() -> (ProofBundle, Vec<(OperatorId, PublicKey)>, Hash32) {
        let (bundle, authorities, genesis, _, _) = sample();
        (bundle, authorities, genesis)
    }

    fn failed(verdict: &Verdict) -> Vec<&'static str> {
        verdict.checks.iter().filter(|c| c.outcome.is_err()).map(|c| c.name).collect()
    }

    #[test]
    fn a_bundle_verifies_against_its_spec_and_not_another() {
        let (bundle, authorities, genesis) = fixture();
        let expected = Expected { genesis_hash: genesis, authorities: &authorities };
        let verdict = verify(&bundle, Some(&expected));
        assert!(verdict.valid && verdict.trusted, "{verdict:#?}");
        // Through JSON and back: the format is its JSON.
        let json = serde_json::to_string(&bundle).unwrap();
        let again: ProofBundle = serde_json::from_str(&json).unwrap();
        assert!(verify(&again, Some(&expected)).valid);
        // Without a spec: valid but not trusted, and the chain-spec check says why.
        let untrusted = verify(&bundle, None);
        assert!(!untrusted.trusted && !untrusted.valid);
        assert_eq!(failed(&untrusted), vec!["chain spec"]);
        // Another chain's spec.
        let other = Expected { genesis_hash: Hash32([9; 32]), authorities: &authorities };
        assert_eq!(failed(&verify(&bundle, Some(&other))), vec!["chain spec"]);
        let fewer = &authorities[..2];
        // (A spec with another authority set.)
        let other = Expected { genesis_hash: genesis, authorities: fewer };
        assert_eq!(failed(&verify(&bundle, Some(&other))), vec!["chain spec"]);
    }

    #[test]
    fn every_single_byte_change_is_caught_and_named() {
        let (bundle, authorities, genesis) = fixture();
        let expected = Expected { genesis_hash: genesis, authorities: &authorities };
        let flip = |hex_text: &str, index: usize| -> String {
            let mut bytes = hex::decode(hex_text.trim_start_matches("0x")).unwrap();
            bytes[index] ^= 0x01;
            hex_of(&bytes)
        };
        let cdr_len = hex::decode(bundle.cdr_scale.trim_start_matches("0x")).unwrap().len();
        for i in 0..cdr_len {
            let mut changed = bundle.clone();
            changed.cdr_scale = flip(&bundle.cdr_scale, i);
            let verdict = verify(&changed, Some(&expected));
            assert!(!verdict.valid, "cdr byte {i}");
            assert!(failed(&verdict).contains(&"cdr"), "cdr byte {i}: {:?}", failed(&verdict));
        }
        let header_len = hex::decode(bundle.header_scale.trim_start_matches("0x")).unwrap().len();
        for i in 0..header_len {
            let mut changed = bundle.clone();
            changed.header_scale = flip(&bundle.header_scale, i);
            let verdict = verify(&changed, Some(&expected));
            assert!(failed(&verdict).contains(&"header"), "header byte {i}: {:?}", failed(&verdict));
        }
        let cert_len = hex::decode(bundle.certificate_scale.trim_start_matches("0x")).unwrap().len();
        for i in 0..cert_len {
            let mut changed = bundle.clone();
            changed.certificate_scale = flip(&bundle.certificate_scale, i);
            let verdict = verify(&changed, Some(&expected));
            assert!(
                failed(&verdict).contains(&"certificate encoding"),
                "certificate byte {i}: {:?}",
                failed(&verdict)
            );
        }
        for step in 0..bundle.inclusion.path.len() {
            for byte in 0..32 {
                let mut changed = bundle.clone();
                changed.inclusion.path[step].0[byte] ^= 0x01;
                assert_eq!(
                    failed(&verify(&changed, Some(&expected))),
                    vec!["inclusion"],
                    "path {step} byte {byte}"
                );
            }
        }
        // Consistent edits of both copies are caught by the hashes and signatures.
        let mut changed = bundle.clone();
        changed.cdr.body.end_ms += 1;
        changed.cdr_scale = hex_of(&changed.cdr.encode());
        assert_eq!(failed(&verify(&changed, Some(&expected))), vec!["inclusion"]);
        let mut changed = bundle.clone();
        changed.header.timestamp_ms += 1;
        changed.header_scale = hex_of(&changed.header.encode());
        assert_eq!(failed(&verify(&changed, Some(&expected))), vec!["finality"]);
        let mut changed = bundle.clone();
        changed.certificate.round = Round(1);
        changed.certificate_scale = hex_of(&changed.certificate.encode());
        assert_eq!(failed(&verify(&changed, Some(&expected))), vec!["finality"]);
        let mut changed = bundle.clone();
        changed.inclusion.leaf_index = 6;
        assert_eq!(failed(&verify(&changed, Some(&expected))), vec!["inclusion"]);
    }

    /// The checkpoint of `header`, as the contract would store it.
    fn checkpoint_of(header: &Header, genesis: Hash32) -> Checkpoint {
        Checkpoint {
            genesis_hash: genesis,
            height: header.number,
            block_hash: header.hash(),
            state_root: header.state_root,
            cdr_log_root: header.cdr_log_root,
            cdr_log_size: header.cdr_log_size,
        }
    }

    #[test]
    fn an_anchor_before_at_or_after_the_block_verifies_and_any_mismatch_is_named() {
        use crate::merkle::consistency_proof;
        let (bundle, authorities, genesis, store, headers) = sample();
        let expected = Expected { genesis_hash: genesis, authorities: &authorities };
        let contract = EvmAddress([7; 20]);
        let anchored = |at: usize| {
            let checkpoint = checkpoint_of(&headers[at], genesis);
            let (a, b) = (checkpoint.cdr_log_size, bundle.header.cdr_log_size);
            let mut b2 = bundle.clone();
            b2.anchor = Some(Anchor {
                rsk_chain_id: 33,
                contract,
                checkpoint,
                consistency: consistency_proof(&store, Domain::CDR_LOG, a.min(b), a.max(b)).unwrap(),
            });
            (b2, OnChain { rsk_chain_id: 33, contract, checkpoint })
        };
        // Blocks 1 (before: leaf 7 came after it), 2 (the block itself) and 3 (after).
        for (at, covers) in [(0, false), (1, true), (2, true)] {
            let (b, onchain) = anchored(at);
            let verdict = verify_anchored(&b, Some(&expected), Ok(&onchain));
            assert!(verdict.valid, "anchor at block {}: {verdict:#?}", at + 1);
            assert_eq!(b.anchor_covers_cdr(), covers, "anchor at block {}", at + 1);
            // The bundle's JSON keeps the anchor.
            let again: ProofBundle = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
            assert!(verify_anchored(&again, Some(&expected), Ok(&onchain)).valid);
        }
        let (b, onchain) = anchored(2);
        // The contract stores something else at that height (a rewritten history's root).
        let mut other = onchain;
        other.checkpoint.cdr_log_root.0[0] ^= 1;
        assert_eq!(failed(&verify_anchored(&b, Some(&expected), Ok(&other))), vec!["anchor"]);
        // Another contract, another RSK chain, another cdrchain.
        let other = OnChain { contract: EvmAddress([8; 20]), ..onchain };
        assert_eq!(failed(&verify_anchored(&b, Some(&expected), Ok(&other))), vec!["anchor"]);
        let other = OnChain { rsk_chain_id: 30, ..onchain };
        assert_eq!(failed(&verify_anchored(&b, Some(&expected), Ok(&other))), vec!["anchor"]);
        // Edits of the bundle's anchor copy, consistently on both sides: the proof catches them.
        let mut changed = b.clone();
        let mut moved = onchain;
        if let Some(anchor) = changed.anchor.as_mut() {
            anchor.checkpoint.cdr_log_root.0[3] ^= 1;
            moved.checkpoint = anchor.checkpoint;
        }
        assert_eq!(
            failed(&verify_anchored(&changed, Some(&expected), Ok(&moved))),
            vec!["anchor consistency"]
        );
        for step in 0..b.anchor.as_ref().unwrap().consistency.path.len() {
            let mut changed = b.clone();
            changed.anchor.as_mut().unwrap().consistency.path[step].0[0] ^= 1;
            assert_eq!(
                failed(&verify_anchored(&changed, Some(&expected), Ok(&onchain))),
                vec!["anchor consistency"],
                "path step {step}"
            );
        }
        // An anchor at the bundle's height must be the bundle's block.
        let (b, mut onchain) = anchored(1);
        let mut changed = b.clone();
        changed.anchor.as_mut().unwrap().checkpoint.block_hash.0[0] ^= 1;
        onchain.checkpoint = changed.anchor.as_ref().unwrap().checkpoint;
        assert_eq!(
            failed(&verify_anchored(&changed, Some(&expected), Ok(&onchain))),
            vec!["anchor consistency"]
        );
        // No anchor in the bundle, or nothing read from RSK: named, never valid.
        let plain = verify_anchored(&bundle, Some(&expected), Ok(&onchain));
        assert_eq!(failed(&plain), vec!["anchor", "anchor consistency"]);
        let unread = verify_anchored(&b, Some(&expected), Err("RSK is down".to_string()));
        assert_eq!(failed(&unread), vec!["anchor", "anchor consistency"]);
    }

    /// An absence bundle built as a node builds it: the chosen entry's path in the state tree.
    fn absence_bundle(
        chain: &SampleChain,
        operator: &str,
        sequence: u64,
        key: crate::state::StateKey,
    ) -> AbsenceBundle {
        let (value, siblings, tree_root) =
            crate::state::prove_pair(&chain.state, &key.encode()).unwrap().unwrap();
        let header = chain.blocks.last().unwrap().header.clone();
        let names: Vec<&str> = chain.operators.iter().map(|o| o.as_str()).collect();
        let (certificate, authorities) = certify(&header, &names, &chain.genesis_hash());
        let entry = StateEntryProof {
            key_scale: hex_of(&key.encode()),
            value_scale: hex_of(&value),
            siblings,
            tree_root,
        };
        AbsenceBundle::new(
            ChainRef { id: "sample".into(), genesis_hash: chain.genesis_hash() },
            &authorities,
            OperatorId::new(operator).unwrap(),
            crate::ids::Sequence(sequence),
            entry,
            header,
            certificate,
        )
    }

    #[test]
    fn absence_is_proven_from_the_state_root_for_unrecorded_sequences_and_gaps_only() {
        use crate::state::StateKey;
        let mut chain = SampleChain::new(&["alice", "bob"]);
        let batch = chain.batch("alice", 0, 5);
        let gap = chain.sign(crate::tx::Transaction::SequenceGap(crate::tx::SequenceGap {
            operator: OperatorId::new("alice").unwrap(),
            from: crate::ids::Sequence(5),
            to: crate::ids::Sequence(9),
            reason: crate::ids::ReasonText::new("switch disk lost").unwrap(),
        }));
        let (block, _, refused) = chain.build(vec![batch, gap], 1_000).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        chain.import(block).unwrap();
        let authorities: Vec<(OperatorId, PublicKey)> = ["alice", "bob"]
            .iter()
            .map(|n| (OperatorId::new(*n).unwrap(), public_key(&operator_key(n))))
            .collect();
        let expected = Expected { genesis_hash: chain.genesis_hash(), authorities: &authorities };
        let alice = || OperatorId::new("alice").unwrap();
        // Next sequence is 10: 12 is not recorded.
        let next = StateKey::NextSequence(alice());
        let bundle = absence_bundle(&chain, "alice", 12, next.clone());
        let verdict = verify_absence(&bundle, Some(&expected));
        assert!(verdict.valid, "{verdict:#?}");
        // Through JSON.
        let again: AbsenceBundle = serde_json::from_str(&serde_json::to_string(&bundle).unwrap()).unwrap();
        assert!(verify_absence(&again, Some(&expected)).valid);
        // 7 lies in the declared gap 5..=9.
        let gap = absence_bundle(&chain, "alice", 7, StateKey::Gap(alice(), crate::ids::Sequence(5)));
        let verdict = verify_absence(&gap, Some(&expected));
        assert!(verdict.valid, "{verdict:#?}");
        assert!(verdict.checks[1].outcome.as_ref().unwrap().contains("switch disk lost"));
        // 3 was recorded: neither entry proves it absent.
        for key in [next, StateKey::Gap(alice(), crate::ids::Sequence(5))] {
            let bundle = absence_bundle(&chain, "alice", 3, key);
            assert_eq!(failed(&verify_absence(&bundle, Some(&expected))), vec!["claim"]);
        }
        // Any changed byte of the entry, path, or root breaks it.
        let mut changed = bundle.clone();
        changed.entry.value_scale = hex_of(&crate::ids::Sequence(13).encode());
        assert!(failed(&verify_absence(&changed, Some(&expected))).contains(&"state inclusion"));
        let mut changed = bundle.clone();
        changed.entry.tree_root.0[0] ^= 1;
        let failures = failed(&verify_absence(&changed, Some(&expected)));
        assert!(failures.contains(&"state inclusion") && failures.contains(&"state root"), "{failures:?}");
        let mut changed = bundle.clone();
        changed.entry.siblings.pop();
        assert_eq!(failed(&verify_absence(&changed, Some(&expected))), vec!["state inclusion"]);
        let mut changed = bundle.clone();
        let first = changed.entry.siblings.first_mut().expect("a state of several pairs has depth");
        first.0[5] ^= 1;
        assert_eq!(failed(&verify_absence(&changed, Some(&expected))), vec!["state inclusion"]);
    }
}
