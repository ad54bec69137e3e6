//! Interconnect agreements between two operators, on chain but confidential to the pair
//! (issue #28).
//!
//! Two competitors agree rates while sharing validators with others, so the chain carries each
//! document only as a [`Sealed`]: a commitment to its opening (salt and content) and an envelope
//! that only the two partners can open (HPKE, RFC 9180, to the encryption keys they registered:
//! [`crate::state::StateKey::EncryptionKey`]; the envelope's format is the `rating` crate's,
//! opaque here). Validators check who signed what and that the commitments match, never the
//! contents. Whoever is handed an opening checks it against the commitment
//! ([`commitment_of`]).
//!
//! The rules ([`InterconnectTx`], applied in `rules.rs`):
//! - an operator registers (or replaces) its own encryption key: `RegisterKey`;
//! - `ProposeAgreement` names the counterparty and the agreement's version; both must be members
//!   with an encryption key, the version must be above the pair's accepted one, and the pair may
//!   hold at most [`MAX_AGREEMENTS_PER_PAIR`] proposals; its id is the proposing transaction's id;
//! - `AcceptAgreement` is signed by the counterparty alone and repeats the commitment it opened
//!   and checked; from its block the agreement is the pair's one in force (its own document says
//!   from when each tariff applies);
//! - `ProposeStatement` (a statement of the pair's calls in `[from_ms, to_ms)`, rated under an
//!   accepted agreement) is made by either partner; at most [`MAX_STATEMENTS_PER_PAIR`] per pair;
//! - `SignStatement` is the other partner's signature, repeating the commitment: a statement
//!   signed by both is final for its period, and no statement whose period overlaps a final one
//!   can be proposed or signed after it;
//! - or that partner opens a dispute on it, within the agreement's dispute window from the
//!   statement's block; the two add steps (responses, proposals to close) and close it when one
//!   confirms the other's proposal to close: the statement's period is then final
//!   ([`dispute`]).

pub mod dispute;
mod rules;

pub use rules::InterconnectError;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::codec::{hex_bytes, BoundedVec};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{Height, OperatorId};

/// Largest sealed envelope, in bytes: an agreement, a statement or a dispute step with its
/// evidence. A block (16 MiB by default) holds several.
pub const MAX_SEALED_BYTES: usize = 1024 * 1024;

/// Most agreement proposals one pair may make over the chain's life (versions and amendments).
pub const MAX_AGREEMENTS_PER_PAIR: usize = 1024;

/// Most statements one pair may propose over the chain's life: daily statements for 27 years.
pub const MAX_STATEMENTS_PER_PAIR: usize = 10_000;

hex_bytes!(
    /// An operator's X25519 public key (HPKE `DHKEM(X25519, HKDF-SHA256)`), to which documents
    /// for it are sealed.
    EncryptionKey,
    32
);

/// A sealed envelope's bytes, hex in JSON.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Default)]
pub struct Envelope(pub BoundedVec<u8, MAX_SEALED_BYTES>);

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", hex::encode(self.0.as_slice())))
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes =
            hex::decode(text.strip_prefix("0x").unwrap_or(&text)).map_err(serde::de::Error::custom)?;
        let len = bytes.len();
        BoundedVec::new(bytes).map(Envelope).map_err(|_| {
            serde::de::Error::custom(format!("envelope of {len} bytes, over {MAX_SEALED_BYTES}"))
        })
    }
}

/// A document as the chain holds it: what it commits to, and sealed to the pair.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Sealed {
    /// [`commitment_of`] the opening.
    pub commitment: Hash32,
    pub envelope: Envelope,
}

/// What is sealed: the document's bytes and the salt that hides them in the commitment (a
/// commitment to a short document without a salt could be opened by guessing).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Opening {
    pub salt: [u8; 32],
    pub content: Vec<u8>,
}

impl Opening {
    pub fn commitment(&self) -> Hash32 {
        commitment_of(&self.salt, &self.content)
    }
}

/// `BLAKE3-derive-key("… interconnect commitment v1", salt ‖ content)`; the salt's fixed
/// length keeps the two apart.
pub fn commitment_of(salt: &[u8; 32], content: &[u8]) -> Hash32 {
    hash_with(context::INTERCONNECT_COMMITMENT, &[salt, content])
}

/// An interconnect transaction, signed by `operator`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct InterconnectTx {
    pub operator: OperatorId,
    pub action: Action,
}

/// What an interconnect transaction does.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// The signer's encryption key from now on (documents already sealed stay sealed to the old).
    #[codec(index = 0)]
    RegisterKey { key: EncryptionKey },
    /// `dispute_window_days` repeats the document's dispute window in the open, so that the
    /// chain can enforce it (the counterparty's node checks the two agree before accepting).
    #[codec(index = 1)]
    ProposeAgreement { counterparty: OperatorId, version: u32, dispute_window_days: u32, sealed: Sealed },
    #[codec(index = 2)]
    AcceptAgreement { agreement: Hash32, commitment: Hash32 },
    /// A statement of the pair's calls that started in `[from_ms, to_ms)` under `agreement`.
    #[codec(index = 3)]
    ProposeStatement { agreement: Hash32, from_ms: u64, to_ms: u64, sealed: Sealed },
    /// The other partner signs `statement`, whose opening it checked.
    #[codec(index = 4)]
    SignStatement { statement: Hash32, commitment: Hash32 },
    /// The partner a statement was proposed to disputes it instead of signing
    /// ([`dispute`]): the claim, its category and evidence are sealed.
    #[codec(index = 5)]
    OpenDispute { statement: Hash32, sealed: Sealed },
    /// A response, or a proposal to close at an amount, by either side of an open dispute.
    #[codec(index = 6)]
    DisputeStep { dispute: Hash32, step: dispute::StepKind, sealed: Sealed },
    /// The other side confirms the proposal to close, naming its commitment: the dispute is
    /// closed and the statement's period final at the agreed amount.
    #[codec(index = 7)]
    ConfirmClose { dispute: Hash32, commitment: Hash32 },
}

impl Action {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Action::RegisterKey { .. } => "register-key",
            Action::ProposeAgreement { .. } => "propose-agreement",
            Action::AcceptAgreement { .. } => "accept-agreement",
            Action::ProposeStatement { .. } => "propose-statement",
            Action::SignStatement { .. } => "sign-statement",
            Action::OpenDispute { .. } => "open-dispute",
            Action::DisputeStep { .. } => "dispute-step",
            Action::ConfirmClose { .. } => "confirm-close",
        }
    }
}

/// An agreement on chain: [`crate::state::StateKey::Agreement`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct AgreementRecord {
    /// The proposer.
    pub a: OperatorId,
    /// The counterparty, who accepts.
    pub b: OperatorId,
    pub version: u32,
    /// The document's dispute window, in days, in the open.
    pub dispute_window_days: u32,
    pub proposed_at: Height,
    pub accepted_at: Option<Height>,
    pub sealed: Sealed,
}

/// An unordered pair of operators, as state keys hold it: the lesser id first.
pub fn pair_key(one: &OperatorId, other: &OperatorId) -> (OperatorId, OperatorId) {
    if one <= other {
        (one.clone(), other.clone())
    } else {
        (other.clone(), one.clone())
    }
}

/// A pair's agreements: [`crate::state::StateKey::PairAgreements`].
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode, Serialize, Deserialize)]
pub struct PairAgreements {
    /// Every proposal's id, oldest first.
    pub proposals: BoundedVec<Hash32, MAX_AGREEMENTS_PER_PAIR>,
    /// The accepted agreement in force (the latest accepted), and its version.
    pub in_force: Option<(Hash32, u32)>,
}

/// A statement on chain: [`crate::state::StateKey::Statement`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct StatementRecord {
    pub agreement: Hash32,
    /// The proposer.
    pub a: OperatorId,
    /// The partner who signs it.
    pub b: OperatorId,
    pub from_ms: u64,
    pub to_ms: u64,
    pub proposed_at: Height,
    /// The proposing block's time: the dispute window runs from it.
    pub proposed_at_ms: u64,
    pub signed_at: Option<Height>,
    /// The dispute opened on it, if any (it is then closed by the dispute, not signed).
    pub dispute: Option<Hash32>,
    pub sealed: Sealed,
}

/// A final statement's period: `[from_ms, to_ms)` and its id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct FinalPeriod {
    pub from_ms: u64,
    pub to_ms: u64,
    pub statement: Hash32,
}

impl FinalPeriod {
    pub fn overlaps(&self, from_ms: u64, to_ms: u64) -> bool {
        from_ms < self.to_ms && self.from_ms < to_ms
    }
}

/// A pair's statements: [`crate::state::StateKey::PairStatements`].
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode, Serialize, Deserialize)]
pub struct PairStatements {
    /// Every proposal's id, oldest first.
    pub proposals: BoundedVec<Hash32, MAX_STATEMENTS_PER_PAIR>,
    /// The periods of the statements signed by both, in the order they became final.
    pub final_periods: BoundedVec<FinalPeriod, MAX_STATEMENTS_PER_PAIR>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_binds_salt_and_content() {
        let opening = Opening { salt: [7; 32], content: b"{\"rates\":1}".to_vec() };
        let commitment = opening.commitment();
        assert_ne!(commitment, Opening { salt: [8; 32], ..opening.clone() }.commitment());
        assert_ne!(
            commitment,
            Opening { content: b"{\"rates\":2}".to_vec(), ..opening.clone() }.commitment()
        );
        assert_eq!(commitment, commitment_of(&[7; 32], b"{\"rates\":1}"));
    }

    #[test]
    fn a_pair_is_the_same_either_way_round() {
        let (alice, bob) = (OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap());
        assert_eq!(pair_key(&alice, &bob), pair_key(&bob, &alice));
        assert_eq!(pair_key(&bob, &alice).0, alice);
    }

    #[test]
    fn envelopes_are_hex_in_json_and_bounded() {
        let sealed = Sealed {
            commitment: Hash32([1; 32]),
            envelope: Envelope(BoundedVec::new(vec![0xab, 0xcd]).unwrap()),
        };
        let json = serde_json::to_value(&sealed).unwrap();
        assert_eq!(json["envelope"], "0xabcd");
        assert_eq!(serde_json::from_value::<Sealed>(json).unwrap(), sealed);
        let big = format!("\"0x{}\"", "00".repeat(MAX_SEALED_BYTES + 1));
        assert!(serde_json::from_str::<Envelope>(&big).unwrap_err().to_string().contains("over"));
    }
}
