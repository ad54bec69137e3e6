//! Party identities: callers and callees enter a record only as keyed digests.
//!
//! A party (caller or callee) is never written to the chain in clear. It is first brought to a
//! canonical form ([`NormalizedParty`]), and the record carries the keyed BLAKE3 digest of that
//! form ([`PartyDigest`]). The key is derived from a consortium secret that operators hold
//! outside the chain (`blake3::derive_key(context::PARTY, secret)`), so a consortium member can
//! test "was +442079460018 called?" by hashing the number, while an outsider who reads the chain
//! learns nothing, not even by hashing every telephone number there is.
//!
//! Everything here is pure: no IO, clock or randomness, and no input makes it panic. Telephone
//! numbers are read and validated by the `rlibphonenumber` crate (a port of Google's
//! libphonenumber, with its metadata); this module writes no numbering-plan rules of its own.
//! (It replaced the `phonenumber` crate, which disagreed with Google's reference on about 1 % of
//! random numbers and took ~2 ms per number on traffic to many countries: its regular-expression
//! cache held 100 entries. See docs/ingest.md.)
//!
//! # Canonical forms
//!
//! | kind | canonical text (what is hashed) | example |
//! | --- | --- | --- |
//! | [`NormalizedParty::E164`] | `tel:` + E.164 | `tel:+442079460018` |
//! | [`NormalizedParty::SipUri`] | `sip:user@host` or `sip:host` | `sip:alice@example.com` |
//! | [`NormalizedParty::Dialstring`] | `dial:` + digits, `*`, `#` | `dial:1001` |
//! | [`NormalizedParty::Anonymous`] | `anonymous` | `anonymous` |
//! | [`NormalizedParty::AsWritten`] | `raw:` + the text as written, visual separators removed, ASCII-lower-cased | `raw:+447700900123` |
//!
//! The prefixes keep kinds apart: no number, URI or dial string can hash like one of another
//! kind. Every canonical text is itself accepted by [`PartyHasher::normalize`] and gives back
//! the same party (normalization is idempotent).
//!
//! # Normalization rules
//!
//! Rules apply in this order to the input (`raw`); "region" is the hasher's default region.
//!
//! | input | rule | result |
//! | --- | --- | --- |
//! | any | surrounding whitespace is trimmed | |
//! | empty after trimming | | error `Empty` |
//! | longer than [`MAX_PARTY_LEN`] bytes | | error `TooLong` |
//! | any control character (also `%00`-style escapes in a SIP user part) | | error `ControlCharacter` |
//! | `anonymous`, `restricted`, `unknown`, `withheld`, `private`, `unavailable` (any case) | withheld caller id | `Anonymous` |
//! | `"Alice" <…>`, `Alice <…>`, `<…>` | display name and angle brackets dropped, as are header parameters after `>` (`;tag=…`); the inside follows the rules below | |
//! | `tel:NUMBER;params` | visual separators (space `-` `.` `(` `)`) removed; parameters dropped, except that a `phone-context=+CC…` completes a local number | the number rule below |
//! | `sip:` / `sips:` (any case) | `sips` folds to `sip` (the same address of record); password, port, URI parameters (`;transport=udp`) and headers (`?…`) dropped; user part percent-decoded (`%2B` → `+`) | see the next rows |
//! | SIP user `anonymous`, or host `anonymous.invalid` (RFC 3323) | | `Anonymous` |
//! | SIP user starting with `+`, or URI with `;user=phone` | the user part (its own `;isub=`, `;ext=` … parameters dropped) is a telephone number | the number rule below (an invalid one is an error, never a `SipUri`) |
//! | SIP user of digits and visual separators that is a valid number in the region | | `E164` |
//! | any other SIP user | user and host ASCII-lower-cased; user re-escaped: only `A-Z a-z 0-9 - _ . ! ~ * ' ( ) & = + $ , /` stay literal, other bytes become `%XX` (upper-case hex) | `SipUri("sip:user@host")` |
//! | SIP URI without a user part (`sip:example.com`) | host lower-cased | `SipUri("sip:example.com")` |
//! | `dial:DIGITS` (the canonical form of a dial string) | | `Dialstring` if it fits the limits below, else an error |
//! | plain text of digits, `*`, `#`, visual separators and a leading `+` | the number rule below | |
//! | any other plain text (`alice`, `alice@example.com`, `Alice Smith`) or another URI scheme | | error `NotAParty` "not a telephone number or SIP URI" |
//!
//! **As written.** Whatever the rules above would refuse as a party (a number that is not valid:
//! a misdial, a range newer than the metadata, a national number without a region, a dialplan
//! name such as `ch1`) is recorded as written ([`NormalizedParty::AsWritten`]), never refused: a
//! record of a call is a fact, and the validity of a dialled number is not the node's to judge.
//! Only an empty, over-long or control-character input is an error. An as-written party is
//! flagged in its CDR ([`PartiesAsWritten`]); per-source rules (`crate::numbering`) bring most
//! such numbers to E.164 before hashing. Below, "error `InvalidNumber`" and "error `NotAParty`"
//! name what [`PartyHasher::classify`] reports; [`PartyHasher::normalize`] records them as
//! written.
//!
//! The number rule, on the text with visual separators removed:
//!
//! | number | result |
//! | --- | --- |
//! | `+` and digits, valid for its country code | `E164` |
//! | `+` and anything else, or not valid | error `InvalidNumber` |
//! | digits only, valid in the region (national form `020 7946 0018`, or international with the region's IDD: `00 44 …` from GB, `011 44 …` from US) | `E164` |
//! | digits only, not valid in the region (or no region), at most [`MAX_DIALSTRING_DIGITS`] digits (`1001`, `112`) | `Dialstring` |
//! | digits only, not valid in the region, longer | error `InvalidNumber` |
//! | contains `*` or `#` (`*97`, `#31#`) and at most [`MAX_DIALSTRING_DIGITS`] digits and [`MAX_DIALSTRING_LEN`] characters | `Dialstring` |
//! | contains `*` or `#`, longer | error `InvalidNumber` |
//!
//! Consequences worth knowing:
//! - A PBX extension written as a SIP URI (`sip:1001@pbx.example.com`) keeps its host and is a
//!   `SipUri`; the same extension as a bare string (`1001`) is a `Dialstring`. They do not match,
//!   which is deliberate: an extension means nothing without its PBX.
//! - Ports are dropped (`sip:alice@example.com:5080` is `sip:alice@example.com`): a port is a
//!   hop's transport detail that proxies and SBCs rewrite, not part of the identity.
//! - Case folding is ASCII only; SIP user parts are compared case-insensitively.
//! - What counts as a "valid" number is libphonenumber's metadata: e.g. US `202 555 0123`
//!   (a fictional 555-01XX number) is valid, while the UK drama mobile range `07700 900xxx` is not.

use std::fmt::{self, Write as _};

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use rlibphonenumber::enums::Region;
use rlibphonenumber::{PhoneNumberFormat, PHONE_NUMBER_UTIL};
use serde::{Deserialize, Serialize};

use crate::destination::Destination;
use crate::hash::{context, Hash32};

/// The longest input, in bytes (after trimming surrounding whitespace), that is accepted.
pub const MAX_PARTY_LEN: usize = 256;

/// The most digits a dial string (an extension, a service code) may have.
pub const MAX_DIALSTRING_DIGITS: usize = 6;

/// The most characters (digits, `*`, `#`) a dial string may have.
pub const MAX_DIALSTRING_LEN: usize = 16;

/// The most digits handed to the number parser; E.164 numbers have at most 15, plus an IDD.
pub(crate) const MAX_NUMBER_DIGITS: usize = 20;

/// How many characters of an offending input an error repeats.
const EXCERPT_CHARS: usize = 80;

/// Withheld caller ids, compared ASCII-case-insensitively.
const ANONYMOUS_WORDS: [&str; 6] =
    ["anonymous", "restricted", "unknown", "withheld", "private", "unavailable"];

/// Visual separators removed from telephone numbers.
pub(crate) const VISUAL_SEPARATORS: [char; 5] = [' ', '-', '.', '(', ')'];

/// Keyed digest of a normalized party identity.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Encode,
    Decode,
    MaxEncodedLen,
    Serialize,
    Deserialize,
)]
pub struct PartyDigest(pub Hash32);

impl fmt::Display for PartyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A party identity in its canonical form, the exact bytes that are hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NormalizedParty {
    /// A telephone number in E.164, e.g. "+442079460018".
    E164(String),
    /// A SIP/SIPS URI that is not a telephone number: "sip:alice@example.com". `sips` is folded
    /// to `sip`; display name, angle brackets, password, port, URI parameters and headers are
    /// dropped; user and host are ASCII-lower-cased; the user part is re-escaped (see the module
    /// documentation).
    SipUri(String),
    /// A short dial string that is not a valid number even with the default region (an
    /// extension like "1001", a service code like "112", "*97"): digits, `*` and `#` only.
    Dialstring(String),
    /// An anonymous or withheld caller id.
    Anonymous,
    /// A party no rule could read (see the module documentation): the text as written, visual
    /// separators removed and ASCII-lower-cased ([`as_written`]).
    AsWritten(String),
}

/// The as-written form of `text` (already trimmed): a number-like text (digits, `*`, `#`, visual
/// separators, a leading `+`) loses its visual separators; any other text is ASCII-lower-cased.
/// Idempotent.
pub fn as_written(text: &str) -> String {
    let number_like = text.strip_prefix('+').unwrap_or(text).chars().all(is_dial_char);
    if number_like {
        text.chars().filter(|c| !VISUAL_SEPARATORS.contains(c)).collect()
    } else {
        text.to_ascii_lowercase()
    }
}

/// Which of a CDR's parties were recorded as written, not normalized (see the module
/// documentation): flagged so that reconciliation and partners know that a digest of the E.164
/// number will not find them.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Encode, Decode, MaxEncodedLen, Serialize, Deserialize,
)]
pub struct PartiesAsWritten {
    pub caller: bool,
    pub callee: bool,
}

impl PartiesAsWritten {
    /// Both parties were normalized (nothing to flag).
    pub fn is_none(&self) -> bool {
        !self.caller && !self.callee
    }
}

impl NormalizedParty {
    /// The hashed text, with a type tag so that kinds never collide: "tel:+442079460018",
    /// "sip:alice@example.com", "dial:1001", "anonymous".
    pub fn canonical(&self) -> String {
        match self {
            NormalizedParty::E164(number) => format!("tel:{number}"),
            NormalizedParty::SipUri(uri) => uri.clone(),
            NormalizedParty::Dialstring(dial) => format!("dial:{dial}"),
            NormalizedParty::Anonymous => "anonymous".to_owned(),
            NormalizedParty::AsWritten(text) => format!("raw:{text}"),
        }
    }

    /// Recorded as written, not normalized.
    pub fn is_as_written(&self) -> bool {
        matches!(self, NormalizedParty::AsWritten(_))
    }
}

/// Why a party identity or a hasher's configuration was refused. Inputs are repeated truncated
/// to 80 characters; the consortium secret is never repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyError {
    #[error("empty party identity")]
    Empty,
    #[error("party identity {input:?} is {len} bytes long, more than the maximum of {max}")]
    TooLong { input: String, len: usize, max: usize },
    #[error("party identity {input:?} contains a control character at byte {position}")]
    ControlCharacter { input: String, position: usize },
    #[error("unknown region {region:?}: expected an ISO 3166 alpha-2 code such as \"GB\"")]
    UnknownRegion { region: String },
    #[error("consortium secret is {len} bytes long, fewer than the minimum of {min}")]
    SecretTooShort { len: usize, min: usize },
    #[error("{input:?} is not a party identity: {reason}")]
    NotAParty { input: String, reason: String },
    #[error("{input:?} is not a valid telephone number: {reason}")]
    InvalidNumber { input: String, reason: String },
}

/// Normalizes party identities and computes their keyed digests.
#[derive(Clone)]
pub struct PartyHasher {
    key: [u8; 32],
    default_region: Option<Region>,
    /// Digests of recently seen inputs ([`PartyHasher::with_memo`]); shared by clones.
    memo: Option<std::sync::Arc<Memo>>,
}

/// The digest memo. Keys are hashed with foldhash (seeded per process), not the standard
/// library's SipHash: hashing the key was a fifth of the lookup, and lookups ~5 % of a validator's
/// CPU under load. The cache is bounded, so colliding keys could only slow it, never grow it.
/// Keys are `CompactString`s, which hold up to 24 bytes (any E.164 number, short URIs) inline: a
/// `String` key sent each comparison to the heap, one more cache miss per lookup in a memo far
/// larger than the CPU caches (`cargo bench -p cdrchain-runtime -- remembered_110k`: 350 → 206 ns).
type Memo = quick_cache::sync::Cache<
    compact_str::CompactString,
    Remembered,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// What the memo keeps of an input: its digest, whether it was recorded as written, and, once a
/// callee asked for it, its destination (a caller's is never computed).
type Remembered = (PartyDigest, bool, Option<Option<Destination>>);

/// A party's digest, whether it was recorded as written, and its destination.
pub type WithDestination = (PartyDigest, bool, Option<Destination>);

impl fmt::Debug for PartyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyHasher").finish_non_exhaustive()
    }
}

impl PartyHasher {
    /// The shortest consortium secret accepted, in bytes.
    pub const MIN_SECRET_BYTES: usize = 16;

    /// `default_region`: ISO 3166 alpha-2 code ("GB", "US", "DE"; any case) used for numbers
    /// written in national form; `None` means national-form numbers that cannot be read without a
    /// region are Dialstrings if short (at most [`MAX_DIALSTRING_DIGITS`] digits) or an error
    /// otherwise.
    pub fn new(consortium_secret: &[u8], default_region: Option<&str>) -> Result<PartyHasher, PartyError> {
        if consortium_secret.len() < Self::MIN_SECRET_BYTES {
            return Err(PartyError::SecretTooShort {
                len: consortium_secret.len(),
                min: Self::MIN_SECRET_BYTES,
            });
        }
        let default_region = match default_region {
            None => None,
            Some(code) => Some(parse_region(code)?),
        };
        Ok(PartyHasher {
            key: blake3::derive_key(context::PARTY, consortium_secret),
            default_region,
            memo: None,
        })
    }

    /// Remembers the digests of up to about `capacity` inputs (a scan-resistant cache), so that
    /// a number seen again is not parsed again: telephone-number parsing (libphonenumber's
    /// regular expressions) is most of the cost of ingest, and VoIP traffic repeats its numbers.
    /// The digest of an input never changes for one hasher, so the answers are the same; only
    /// successful digests are remembered. About 100 bytes per entry.
    pub fn with_memo(mut self, capacity: usize) -> PartyHasher {
        self.memo = (capacity > 0)
            .then(|| {
                // Half the capacity for entries seen once: the default (3%) treats a population
                // of numbers that recurs only after many others (a large customer base) as a
                // scan and never keeps it.
                let options = quick_cache::OptionsBuilder::new()
                    .estimated_items_capacity(capacity)
                    .weight_capacity(capacity as u64)
                    .hot_allocation(0.5)
                    .build()
                    .ok()?;
                Some(std::sync::Arc::new(quick_cache::sync::Cache::with_options(
                    options,
                    quick_cache::UnitWeighter,
                    foldhash::fast::RandomState::default(),
                    quick_cache::sync::DefaultLifecycle::default(),
                )))
            })
            .flatten();
        self
    }

    /// The default region, as its ISO 3166 alpha-2 code.
    pub fn default_region(&self) -> Option<String> {
        self.default_region.map(|region| region.to_string())
    }

    /// Brings `raw` to its canonical form (see the module documentation for the rules); what no
    /// rule can read is recorded as written. Errors only for an empty, over-long or
    /// control-character input.
    pub fn normalize(&self, raw: &str) -> Result<NormalizedParty, PartyError> {
        match self.classify(raw) {
            Err(PartyError::InvalidNumber { .. } | PartyError::NotAParty { .. }) => {
                Ok(NormalizedParty::AsWritten(as_written(raw.trim())))
            }
            other => other,
        }
    }

    /// Like [`PartyHasher::normalize`], but says why a party cannot be normalized instead of
    /// recording it as written (for tools that check numbers, and for the flag's reason).
    pub fn classify(&self, raw: &str) -> Result<NormalizedParty, PartyError> {
        let input = raw.trim();
        if input.is_empty() {
            return Err(PartyError::Empty);
        }
        if input.len() > MAX_PARTY_LEN {
            return Err(PartyError::TooLong { input: excerpt(input), len: input.len(), max: MAX_PARTY_LEN });
        }
        if let Some((position, _)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(PartyError::ControlCharacter { input: excerpt(input), position });
        }
        if let Some(rest) =
            input.get(..4).filter(|scheme| scheme.eq_ignore_ascii_case("raw:")).and(input.get(4..))
        {
            // The canonical form of a party recorded as written.
            return Ok(NormalizedParty::AsWritten(as_written(rest)));
        }
        let job = Job { input, region: self.default_region };
        let inner = job.strip_name_addr(input)?;
        job.party(inner)
    }

    /// The keyed digest of `raw`'s canonical form.
    pub fn digest(&self, raw: &str) -> Result<PartyDigest, PartyError> {
        self.digest_flagged(raw).map(|(digest, _)| digest)
    }

    /// The keyed digest of `raw`'s canonical form, and whether `raw` was recorded as written.
    pub fn digest_flagged(&self, raw: &str) -> Result<(PartyDigest, bool), PartyError> {
        if let Some((digest, as_written, _)) = self.memo.as_ref().and_then(|memo| memo.get(raw)) {
            return Ok((digest, as_written));
        }
        let party = self.normalize(raw)?;
        let (digest, as_written) = (self.digest_normalized(&party), party.is_as_written());
        self.remember(raw, (digest, as_written, None));
        Ok((digest, as_written))
    }

    /// Like [`PartyHasher::digest_flagged`], with the destination of a telephone number
    /// ([`Destination::of_e164`]; `None` for any other party), computed once per input.
    pub fn digest_with_destination(&self, raw: &str) -> Result<WithDestination, PartyError> {
        if let Some((digest, as_written, Some(destination))) =
            self.memo.as_ref().and_then(|memo| memo.get(raw))
        {
            return Ok((digest, as_written, destination));
        }
        let party = self.normalize(raw)?;
        let destination = match &party {
            NormalizedParty::E164(number) => Destination::of_e164(number),
            _ => None,
        };
        let (digest, as_written) = (self.digest_normalized(&party), party.is_as_written());
        self.remember(raw, (digest, as_written, Some(destination)));
        Ok((digest, as_written, destination))
    }

    fn remember(&self, raw: &str, remembered: Remembered) {
        if let Some(memo) = &self.memo {
            memo.insert(compact_str::CompactString::from(raw), remembered);
        }
    }

    /// `blake3::keyed_hash(key, party.canonical())`.
    pub fn digest_normalized(&self, party: &NormalizedParty) -> PartyDigest {
        let hash = blake3::keyed_hash(&self.key, party.canonical().as_bytes());
        PartyDigest(Hash32(*hash.as_bytes()))
    }
}

pub(crate) fn parse_region(code: &str) -> Result<Region, PartyError> {
    let unknown = || PartyError::UnknownRegion { region: excerpt(code) };
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(unknown());
    }
    let region = Region::from_code(code).map_err(|_| unknown())?;
    // Every pair of letters names a `Region`; only those with numbering-plan metadata are
    // regions (not "UK", not "ZZ").
    if PHONE_NUMBER_UTIL.get_country_code_for_region(region).is_none() {
        return Err(unknown());
    }
    Ok(region)
}

/// At most [`EXCERPT_CHARS`] characters of `text`, with an ellipsis if cut.
fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// One normalization: the (trimmed) input that errors name, and the default region.
struct Job<'a> {
    input: &'a str,
    region: Option<Region>,
}

impl Job<'_> {
    fn not_a_party(&self, reason: impl Into<String>) -> PartyError {
        PartyError::NotAParty { input: excerpt(self.input), reason: reason.into() }
    }

    fn invalid_number(&self, reason: impl Into<String>) -> PartyError {
        PartyError::InvalidNumber { input: excerpt(self.input), reason: reason.into() }
    }

    /// Drops a display name and angle brackets (and header parameters after `>`), if any.
    fn strip_name_addr<'s>(&self, text: &'s str) -> Result<&'s str, PartyError> {
        let rest = if let Some(quoted) = text.strip_prefix('"') {
            let mut escaped = false;
            let mut close = None;
            for (index, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    close = Some(index);
                    break;
                }
            }
            let after = close
                .and_then(|index| quoted.get(index + 1..))
                .ok_or_else(|| self.not_a_party("unterminated quoted display name"))?;
            after
                .trim_start()
                .strip_prefix('<')
                .ok_or_else(|| self.not_a_party("a display name must be followed by <URI>"))?
        } else if let Some((name, after)) = text.split_once('<') {
            if name.contains(['>', '"']) {
                return Err(self.not_a_party("malformed display name"));
            }
            after
        } else if text.contains('>') {
            return Err(self.not_a_party("'>' without '<'"));
        } else {
            return Ok(text);
        };
        let (inner, after) = rest.split_once('>').ok_or_else(|| self.not_a_party("'<' without '>'"))?;
        let after = after.trim_start();
        if !(after.is_empty() || after.starts_with(';')) {
            return Err(self.not_a_party("unexpected text after '>'"));
        }
        if inner.contains('<') {
            return Err(self.not_a_party("nested '<'"));
        }
        let inner = inner.trim();
        if inner.is_empty() {
            return Err(self.not_a_party("empty <>"));
        }
        Ok(inner)
    }

    /// Classifies a party without display name or angle brackets.
    fn party(&self, text: &str) -> Result<NormalizedParty, PartyError> {
        if ANONYMOUS_WORDS.iter().any(|word| text.eq_ignore_ascii_case(word)) {
            return Ok(NormalizedParty::Anonymous);
        }
        if let Some((scheme, rest)) = text.split_once(':') {
            if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
                return self.sip(rest);
            }
            if scheme.eq_ignore_ascii_case("tel") {
                return self.tel(rest);
            }
            if scheme.eq_ignore_ascii_case("dial") {
                return self.dial(rest);
            }
            return Err(self.not_a_party("not a telephone number or SIP URI"));
        }
        if text.starts_with('+') || text.chars().all(is_dial_char) {
            return self.number(text);
        }
        Err(self.not_a_party("not a telephone number or SIP URI"))
    }

    /// `dial:` canonical forms: a dial string, never a number.
    fn dial(&self, rest: &str) -> Result<NormalizedParty, PartyError> {
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
            return Err(self.not_a_party("a dial string has only digits, '*' and '#'"));
        }
        self.dialstring(rest)
    }

    fn dialstring(&self, cleaned: &str) -> Result<NormalizedParty, PartyError> {
        let digits = cleaned.bytes().filter(u8::is_ascii_digit).count();
        if digits > MAX_DIALSTRING_DIGITS || cleaned.len() > MAX_DIALSTRING_LEN {
            return Err(self.invalid_number(format!(
                "not a valid number, and too long for a dial string (at most \
                 {MAX_DIALSTRING_DIGITS} digits and {MAX_DIALSTRING_LEN} characters)"
            )));
        }
        Ok(NormalizedParty::Dialstring(cleaned.to_owned()))
    }

    /// The number rule, on text of digits, `*`, `#`, visual separators and a leading `+`.
    fn number(&self, text: &str) -> Result<NormalizedParty, PartyError> {
        let cleaned: String = text.chars().filter(|c| !VISUAL_SEPARATORS.contains(c)).collect();
        if cleaned.is_empty() {
            return Err(self.not_a_party("no digits"));
        }
        if let Some(digits) = cleaned.strip_prefix('+') {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.invalid_number("'+' must be followed by digits only"));
            }
            if digits.len() > MAX_NUMBER_DIGITS {
                return Err(self.invalid_number("too many digits"));
            }
            return e164(None, &cleaned)
                .map(NormalizedParty::E164)
                .ok_or_else(|| self.invalid_number("not a valid number for its country code"));
        }
        if !cleaned.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
            return Err(self.not_a_party("not a telephone number or SIP URI"));
        }
        if cleaned.contains(['*', '#']) {
            return self.dialstring(&cleaned);
        }
        if cleaned.len() > MAX_NUMBER_DIGITS {
            return Err(self.invalid_number("too many digits"));
        }
        if let Some(region) = self.region {
            if let Some(number) = e164(Some(region), &cleaned) {
                return Ok(NormalizedParty::E164(number));
            }
        }
        if cleaned.len() <= MAX_DIALSTRING_DIGITS {
            return Ok(NormalizedParty::Dialstring(cleaned));
        }
        Err(self.invalid_number(match self.region {
            Some(region) => format!("not a valid number in region {region}"),
            None => "a number in national form needs a default region".to_owned(),
        }))
    }

    /// A telephone-subscriber (RFC 3966): a number followed by `;` parameters, of which only a
    /// global `phone-context` is used.
    fn subscriber(&self, text: &str) -> Result<NormalizedParty, PartyError> {
        let mut pieces = text.split(';');
        let number = pieces.next().unwrap_or_default();
        if number.is_empty() {
            return Err(self.not_a_party("no telephone number"));
        }
        if !number.chars().all(|c| is_dial_char(c) || (c == '+' && number.starts_with('+'))) {
            return Err(self.invalid_number(
                "a telephone number has only digits, '*', '#', visual separators and a leading '+'",
            ));
        }
        let context = pieces.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim().eq_ignore_ascii_case("phone-context").then_some(value.trim())
        });
        match context {
            Some(context)
                if context.starts_with('+') && !number.starts_with('+') && !number.contains(['*', '#']) =>
            {
                self.number(&format!("{context}{number}"))
            }
            _ => self.number(number),
        }
    }

    fn tel(&self, rest: &str) -> Result<NormalizedParty, PartyError> {
        let decoded = self.percent_decode(rest)?;
        let text = std::str::from_utf8(&decoded)
            .ok()
            .filter(|text| text.is_ascii())
            .ok_or_else(|| self.invalid_number("a tel URI has only ASCII characters"))?;
        self.subscriber(text)
    }

    fn sip(&self, rest: &str) -> Result<NormalizedParty, PartyError> {
        // '@' can be neither in URI parameters nor in headers, so it splits user from host.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((userinfo, hostpart)) => (Some(userinfo), hostpart),
            None => (None, rest),
        };
        if hostpart.contains('@') {
            return Err(self.not_a_party("more than one '@' in a SIP URI"));
        }
        let hostport = hostpart.split([';', '?']).next().unwrap_or_default().trim();
        let params = hostpart.split('?').next().unwrap_or_default();
        let user_phone = params.split(';').skip(1).any(|param| {
            param.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("user") && value.trim().eq_ignore_ascii_case("phone")
            })
        });
        let host = self.host(hostport)?;
        if host == "anonymous.invalid" {
            return Ok(NormalizedParty::Anonymous);
        }
        let Some(userinfo) = userinfo else {
            return Ok(NormalizedParty::SipUri(format!("sip:{host}")));
        };
        let user = userinfo.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return Err(self.not_a_party("empty user part in a SIP URI"));
        }
        let mut user = self.percent_decode(user)?;
        user.make_ascii_lowercase();
        if user == b"anonymous" {
            return Ok(NormalizedParty::Anonymous);
        }
        if user_phone || user.starts_with(b"+") {
            let number = std::str::from_utf8(&user)
                .ok()
                .filter(|text| text.is_ascii())
                .ok_or_else(|| self.invalid_number("a telephone number has only ASCII characters"))?;
            return self.subscriber(number);
        }
        if let (Some(region), Ok(text)) = (self.region, std::str::from_utf8(&user)) {
            let digits: String = text.chars().filter(|c| !VISUAL_SEPARATORS.contains(c)).collect();
            if !digits.is_empty()
                && digits.len() <= MAX_NUMBER_DIGITS
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                if let Some(number) = e164(Some(region), &digits) {
                    return Ok(NormalizedParty::E164(number));
                }
            }
        }
        let mut uri = String::from("sip:");
        for byte in user {
            if byte.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,/".contains(&byte) {
                uri.push(char::from(byte));
            } else {
                // Writing to a String cannot fail.
                let _ = write!(uri, "%{byte:02X}");
            }
        }
        uri.push('@');
        uri.push_str(&host);
        Ok(NormalizedParty::SipUri(uri))
    }

    /// The lower-cased host of `host[:port]` or `[ipv6][:port]`; the port is checked and dropped.
    fn host(&self, hostport: &str) -> Result<String, PartyError> {
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (address, after) = bracketed
                .split_once(']')
                .ok_or_else(|| self.not_a_party("unterminated IPv6 reference in a SIP URI"))?;
            if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(self.not_a_party("malformed IPv6 reference in a SIP URI"));
            }
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(self.not_a_party("unexpected text after an IPv6 reference")),
            };
            (format!("[{address}]"), port)
        } else {
            let (host, port) = match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            };
            if host.is_empty() {
                return Err(self.not_a_party("SIP URI without a host"));
            }
            if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
                return Err(self.not_a_party("malformed host in a SIP URI"));
            }
            (host.to_owned(), port)
        };
        if let Some(port) = port {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.not_a_party("malformed port in a SIP URI"));
            }
        }
        Ok(host.to_ascii_lowercase())
    }

    /// Decodes `%XX` escapes in `text` (a part of the input); malformed escapes and escapes
    /// that decode to control characters are errors.
    fn percent_decode(&self, text: &str) -> Result<Vec<u8>, PartyError> {
        // `text` is a sub-slice of the input: its offset there, for error positions.
        let base = (text.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
        let control = |position: usize| PartyError::ControlCharacter { input: excerpt(self.input), position };
        let mut out = Vec::with_capacity(text.len());
        let mut bytes = text.bytes().enumerate();
        while let Some((index, byte)) = bytes.next() {
            if byte != b'%' {
                out.push(byte);
                continue;
            }
            let high = bytes.next().and_then(|(_, b)| hex_value(b));
            let low = bytes.next().and_then(|(_, b)| hex_value(b));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(self.not_a_party("malformed %-escape"));
            };
            let decoded = (high << 4) | low;
            if decoded.is_ascii_control() {
                return Err(control(base.saturating_add(index)));
            }
            out.push(decoded);
        }
        // C1 controls (U+0080..U+009F) written as escaped UTF-8.
        if String::from_utf8_lossy(&out).chars().any(char::is_control) {
            return Err(control(base));
        }
        Ok(out)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).and_then(|value| u8::try_from(value).ok())
}

fn is_dial_char(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#' || VISUAL_SEPARATORS.contains(&c)
}

/// The E.164 form of `number` (ASCII: an optional `+` and at most [`MAX_NUMBER_DIGITS`] digits),
/// if libphonenumber reads it as a valid number, with `region` for national and IDD forms.
pub(crate) fn e164(region: Option<Region>, number: &str) -> Option<String> {
    let parsed = PHONE_NUMBER_UTIL.parse(number, region).ok()?;
    if !parsed.is_valid() {
        return None;
    }
    let out = parsed.format_as(PhoneNumberFormat::E164).to_string();
    let digits = out.strip_prefix('+')?;
    let well_formed = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    well_formed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"cdrchain test consortium secret!";

    fn hasher(region: Option<&str>) -> PartyHasher {
        PartyHasher::new(SECRET, region).unwrap()
    }

    #[test]
    fn a_number_remembered_as_a_caller_still_gets_its_destination_as_a_callee() {
        let parties = hasher(None).with_memo(16);
        let (digest, _) = parties.digest_flagged("+442079460018").unwrap();
        let (again, _, destination) = parties.digest_with_destination("+442079460018").unwrap();
        assert_eq!(digest, again);
        assert_eq!(destination.map(|d| d.digits()).as_deref(), Some("4420"));
        // And from the memo the second time.
        let (_, _, remembered) = parties.digest_with_destination("+442079460018").unwrap();
        assert_eq!(remembered, destination);
        assert_eq!(parties.digest_with_destination("sip:bob@example.net").unwrap().2, None);
    }

    /// What a table row expects: a canonical text, or an error of the named kind.
    #[derive(Debug)]
    enum Want {
        Ok(&'static str),
        Err(&'static str),
    }
    use Want::{Err as Fails, Ok as Gives};

    fn error_kind(err: &PartyError) -> &'static str {
        match err {
            PartyError::Empty => "Empty",
            PartyError::TooLong { .. } => "TooLong",
            PartyError::ControlCharacter { .. } => "ControlCharacter",
            PartyError::UnknownRegion { .. } => "UnknownRegion",
            PartyError::SecretTooShort { .. } => "SecretTooShort",
            PartyError::NotAParty { .. } => "NotAParty",
            PartyError::InvalidNumber { .. } => "InvalidNumber",
        }
    }

    /// Checks one row; returns a description of the mismatch, if any.
    /// `classify` gives `want`, and `normalize` the same party, or, for a party no rule can
    /// read, the party as written.
    fn check(input: &str, region: Option<&str>, want: &Want) -> Option<String> {
        let got = hasher(region).classify(input);
        let recorded = hasher(region).normalize(input);
        let matches = match (&got, want) {
            (Ok(party), Want::Ok(expected)) => {
                party.canonical() == *expected && recorded.as_ref() == Ok(party)
            }
            (Err(err), Want::Err(kind)) => {
                error_kind(err) == *kind
                    && match err {
                        PartyError::InvalidNumber { .. } | PartyError::NotAParty { .. } => {
                            recorded == Ok(NormalizedParty::AsWritten(as_written(input.trim())))
                        }
                        _ => recorded.as_ref().err() == Some(err),
                    }
            }
            _ => false,
        };
        (!matches).then(|| format!("{input:?} (region {region:?}): want {want:?}, got {got:?}"))
    }

    #[test]
    fn normalization_table() {
        let long = "1".repeat(MAX_PARTY_LEN + 1);
        let table: Vec<(&str, Option<&str>, Want)> = vec![
            // Plain numbers: UK, US, DE, international prefix, national form.
            ("+44 20 7946 0018", None, Gives("tel:+442079460018")),
            ("  +442079460018\t", Some("US"), Gives("tel:+442079460018")),
            ("00442079460018", Some("GB"), Gives("tel:+442079460018")),
            ("011 44 20 7946 0018", Some("US"), Gives("tel:+442079460018")),
            ("020 7946 0018", Some("GB"), Gives("tel:+442079460018")),
            ("020-7946-0018", Some("gb"), Gives("tel:+442079460018")),
            ("+44 (0)20 7946 0018", None, Gives("tel:+442079460018")),
            ("(202) 555-0123", Some("US"), Gives("tel:+12025550123")),
            ("1 202.555.0123", Some("US"), Gives("tel:+12025550123")),
            ("030 901820", Some("DE"), Gives("tel:+4930901820")),
            ("+49 30 901820", Some("GB"), Gives("tel:+4930901820")),
            // tel URIs, separators and parameters.
            ("tel:+44-20-7946-0018", None, Gives("tel:+442079460018")),
            ("TEL:+1-202-555-0123;ext=42", None, Gives("tel:+12025550123")),
            ("tel:7946-0018;phone-context=+44-20", None, Gives("tel:+442079460018")),
            ("tel:1001;phone-context=pbx.example.com", None, Gives("dial:1001")),
            ("tel:%2B442079460018", None, Gives("tel:+442079460018")),
            // SIP URIs that are telephone numbers.
            ("\"Alice\" <sip:+44 20 7946 0018@example.com;user=phone>", None, Gives("tel:+442079460018")),
            ("sip:%2B442079460018@gw.example.com", None, Gives("tel:+442079460018")),
            (
                "<sips:+12025550123;isub=7@carrier.example:5061;transport=tls>",
                None,
                Gives("tel:+12025550123"),
            ),
            ("sip:02079460018@trunk.example.com", Some("GB"), Gives("tel:+442079460018")),
            ("sip:00442079460018@trunk.example.com;transport=udp", Some("GB"), Gives("tel:+442079460018")),
            ("sip:1001@pbx.example.com;user=phone", Some("GB"), Gives("dial:1001")),
            // SIP URIs that are not.
            ("Alice <sip:alice@Example.COM>", None, Gives("sip:alice@example.com")),
            (
                "SIPS:Alice:secret@EXAMPLE.com:5080;transport=tcp?subject=hi",
                None,
                Gives("sip:alice@example.com"),
            ),
            ("<sip:alice@example.com>;tag=1928301774", None, Gives("sip:alice@example.com")),
            ("sip:1001@pbx.example.com", Some("GB"), Gives("sip:1001@pbx.example.com")),
            ("sip:02079460018@trunk.example.com", None, Gives("sip:02079460018@trunk.example.com")),
            ("sip:j%2esmith%40home@example.com", None, Gives("sip:j.smith%40home@example.com")),
            ("sip:bob%20jones@[2001:DB8::1]:5060", None, Gives("sip:bob%20jones@[2001:db8::1]")),
            ("sip:example.com", None, Gives("sip:example.com")),
            ("sip:Example.com:5060;lr", None, Gives("sip:example.com")),
            // Anonymous.
            ("anonymous", None, Gives("anonymous")),
            ("Anonymous", Some("GB"), Gives("anonymous")),
            ("RESTRICTED", None, Gives("anonymous")),
            ("unknown", None, Gives("anonymous")),
            ("\"Anonymous\" <sip:anonymous@anonymous.invalid>", None, Gives("anonymous")),
            ("sip:Anonymous@10.0.0.1", None, Gives("anonymous")),
            // Extensions and service codes.
            ("1001", Some("GB"), Gives("dial:1001")),
            ("1001", None, Gives("dial:1001")),
            ("112", Some("DE"), Gives("dial:112")),
            ("911", Some("US"), Gives("dial:911")),
            ("*97", Some("US"), Gives("dial:*97")),
            ("#31#", None, Gives("dial:#31#")),
            ("dial:1001", Some("GB"), Gives("dial:1001")),
            // Errors.
            ("", None, Fails("Empty")),
            ("   ", Some("GB"), Fails("Empty")),
            (&long, None, Fails("TooLong")),
            ("+44 20\n7946 0018", None, Fails("ControlCharacter")),
            ("sip:al%00ice@example.com", None, Fails("ControlCharacter")),
            ("sip:al%C2%85ice@example.com", None, Fails("ControlCharacter")),
            ("alice", None, Fails("NotAParty")),
            ("alice@example.com", None, Fails("NotAParty")),
            ("mailto:alice@example.com", None, Fails("NotAParty")),
            ("sip:", None, Fails("NotAParty")),
            ("sip:@example.com", None, Fails("NotAParty")),
            ("sip:a@b@example.com", None, Fails("NotAParty")),
            ("sip:al%4ice@example.com", None, Fails("NotAParty")),
            ("Alice <sip:alice@example.com", None, Fails("NotAParty")),
            ("\"Alice <sip:alice@example.com>", None, Fails("NotAParty")),
            ("02079460018", None, Fails("InvalidNumber")),
            ("0207946001", Some("GB"), Fails("InvalidNumber")),
            ("07700 900123", Some("GB"), Fails("InvalidNumber")),
            ("+999 1234 5678", None, Fails("InvalidNumber")),
            ("+44 20 7946 001*", None, Fails("InvalidNumber")),
            ("20+7946", None, Fails("NotAParty")),
            ("sip:+4420@example.com", None, Fails("InvalidNumber")),
            ("tel:+44-20-7946-0018x", None, Fails("InvalidNumber")),
            ("*31#02079460018", Some("GB"), Fails("InvalidNumber")),
            ("dial:02079460018", Some("GB"), Fails("InvalidNumber")),
        ];
        assert!(table.len() >= 25);
        let failures: Vec<String> =
            table.iter().filter_map(|(input, region, want)| check(input, *region, want)).collect();
        assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn the_table_check_can_fail() {
        assert!(check("1001", Some("GB"), &Gives("dial:1002")).is_some());
        assert!(check("1001", Some("GB"), &Fails("InvalidNumber")).is_some());
        assert!(check("alice", None, &Gives("sip:alice")).is_some());
        assert!(check("alice", None, &Fails("InvalidNumber")).is_some());
        assert!(check("alice", None, &Fails("NotAParty")).is_none());
    }

    #[test]
    fn normalized_kinds_and_canonical_tags() {
        let h = hasher(Some("GB"));
        assert_eq!(h.normalize("020 7946 0018").unwrap(), NormalizedParty::E164("+442079460018".into()));
        assert_eq!(h.normalize("1001").unwrap(), NormalizedParty::Dialstring("1001".into()));
        assert_eq!(
            h.normalize("sip:alice@example.com").unwrap(),
            NormalizedParty::SipUri("sip:alice@example.com".into())
        );
        assert_eq!(h.normalize("withheld").unwrap(), NormalizedParty::Anonymous);
        assert_eq!(NormalizedParty::Anonymous.canonical(), "anonymous");
    }

    #[test]
    fn errors_name_the_input_truncated() {
        let h = hasher(None);
        let err = h.classify("alice").unwrap_err();
        assert!(err.to_string().contains("\"alice\""), "{err}");
        assert!(err.to_string().contains("not a telephone number or SIP URI"), "{err}");
        let long = format!("sip:{}@example.com", "x".repeat(300));
        match h.normalize(&long).unwrap_err() {
            PartyError::TooLong { input, len, max } => {
                assert_eq!(input.chars().count(), 81, "80 characters and an ellipsis");
                assert_eq!((len, max), (long.len(), MAX_PARTY_LEN));
            }
            other => panic!("{other:?}"),
        }
        match h.normalize("ab\u{7}c").unwrap_err() {
            PartyError::ControlCharacter { position, .. } => assert_eq!(position, 2),
            other => panic!("{other:?}"),
        }
        // Truncation counts characters, never cuts one in half.
        let wide = "é".repeat(100);
        match h.classify(&wide).unwrap_err() {
            PartyError::NotAParty { input, .. } => assert_eq!(input.chars().count(), 81),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn configuration_errors() {
        assert_eq!(
            PartyHasher::new(b"short", None).unwrap_err(),
            PartyError::SecretTooShort { len: 5, min: 16 }
        );
        for region in ["UK", "", "G", "GBR", "1A", "Ü1", "ZZ"] {
            assert!(
                matches!(PartyHasher::new(SECRET, Some(region)), Err(PartyError::UnknownRegion { .. })),
                "{region:?}"
            );
        }
        assert_eq!(hasher(Some("de")).default_region().as_deref(), Some("DE"));
        assert_eq!(hasher(None).default_region(), None);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", hasher(Some("GB"))), "PartyHasher { .. }");
    }

    #[test]
    fn equivalent_spellings_share_a_digest() {
        let h = hasher(Some("GB"));
        let spellings = [
            "+442079460018",
            "+44 20 7946 0018",
            "00442079460018",
            "020 7946 0018",
            "(020) 7946-0018",
            "tel:+44-20-7946-0018",
            "tel:+442079460018;phone-context=+44",
            "\"Alice\" <sip:+44 20 7946 0018@example.com;user=phone>",
            "sip:%2B442079460018@other.example.net",
            "sips:02079460018@trunk.example.com;transport=tls",
        ];
        let expected = h.digest("+442079460018").unwrap();
        for spelling in spellings {
            assert_eq!(h.digest(spelling).unwrap(), expected, "{spelling}");
        }
        // Another region reads the international forms the same way.
        assert_eq!(hasher(Some("US")).digest("+44 20 7946 0018").unwrap(), expected);
        assert_eq!(hasher(None).digest("tel:+44-20-7946-0018").unwrap(), expected);
        // SIP spellings of one address.
        assert_eq!(
            h.digest("Alice <SIP:Alice@Example.COM:5060;transport=udp>").unwrap(),
            h.digest("sips:alice@example.com").unwrap()
        );
    }

    #[test]
    fn different_parties_and_secrets_differ() {
        let h = hasher(Some("GB"));
        let parties = [
            "+442079460018",
            "+442079460019",
            "+12025550123",
            "sip:alice@example.com",
            "sip:bob@example.com",
            "sip:alice@example.org",
            "1001",
            "sip:1001@pbx.example.com",
            "anonymous",
        ];
        let digests: Vec<PartyDigest> = parties.iter().map(|p| h.digest(p).unwrap()).collect();
        for (i, a) in digests.iter().enumerate() {
            for (j, b) in digests.iter().enumerate() {
                assert_eq!(i == j, a == b, "{} vs {}", parties[i], parties[j]);
            }
        }
        let other = PartyHasher::new(b"another consortium secret", Some("GB")).unwrap();
        assert_ne!(other.digest("+442079460018").unwrap(), h.digest("+442079460018").unwrap());
        // The region matters only for reading, not for the key.
        assert_eq!(hasher(None).digest("+442079460018").unwrap(), h.digest("+442079460018").unwrap());
    }

    /// Golden value: changing the key derivation, the context or the canonical form breaks it.
    const GOLDEN_UK_DIGEST: &str = "e3898809a9f3e77e521dd65c2259d81badbf3be079c16d47d349be85310c70a8";

    #[test]
    fn digest_is_keyed_blake3_of_the_canonical_text() {
        let h = hasher(Some("GB"));
        let key = blake3::derive_key(crate::hash::context::PARTY, SECRET);
        let expected = blake3::keyed_hash(&key, b"tel:+442079460018");
        let digest = h.digest("020 7946 0018").unwrap();
        assert_eq!(digest.0 .0, *expected.as_bytes());
        assert_eq!(digest.0.to_hex(), GOLDEN_UK_DIGEST);
        let party = h.normalize("sip:alice@example.com").unwrap();
        assert_eq!(
            h.digest_normalized(&party).0 .0,
            *blake3::keyed_hash(&key, b"sip:alice@example.com").as_bytes()
        );
    }

    #[test]
    fn digest_encodings_round_trip() {
        use parity_scale_codec::{Decode, Encode};
        let digest = hasher(None).digest("+442079460018").unwrap();
        let encoded = digest.encode();
        assert_eq!(encoded.len(), 32);
        assert_eq!(PartyDigest::decode(&mut &encoded[..]).unwrap(), digest);
        assert_eq!(digest.to_string(), format!("0x{}", digest.0.to_hex()));
    }

    const REGIONS: [Option<&str>; 4] = [None, Some("GB"), Some("US"), Some("DE")];

    /// Normalizing a result's canonical text gives the result back.
    fn assert_fixed_point(h: &PartyHasher, input: &str) -> Result<(), TestCaseError> {
        if let Ok(party) = h.normalize(input) {
            let again = h.normalize(&party.canonical());
            prop_assert_eq!(again.as_ref(), Ok(&party), "input {:?}", input);
        }
        Ok(())
    }

    proptest! {
        /// The memo changes no answer: the same digests and the same refusals, asked once or
        /// again, through a clone that shares it.
        #[test]
        fn a_memo_gives_the_same_digests(
            inputs in proptest::collection::vec("[ +]?[0-9 ]{3,14}|sip:[a-z]{1,5}@x\\.example|anonymous", 1..20),
            region in 0..REGIONS.len(),
        ) {
            let plain = hasher(REGIONS[region]);
            let memo = hasher(REGIONS[region]).with_memo(8);
            let shared = memo.clone();
            for input in inputs.iter().chain(inputs.iter()) {
                let want = plain.digest(input);
                prop_assert_eq!(&memo.digest(input), &want);
                prop_assert_eq!(&shared.digest(input), &want);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(input in any::<String>(), region in 0..REGIONS.len()) {
            let h = hasher(REGIONS[region]);
            let _ = h.normalize(&input);
            assert_fixed_point(&h, &input)?;
        }

        #[test]
        fn never_panics_on_uri_like_text(
            input in "[ \"<>]{0,2}(sip|SIPS|tel|dial|x)?:?[a-zA-Z0-9%@:;=?.+*#\\[\\]()é \\-]{0,40}[>;a-z=]{0,3}",
            region in 0..REGIONS.len(),
        ) {
            let h = hasher(REGIONS[region]);
            assert_fixed_point(&h, &input)?;
        }

        #[test]
        fn numbers_are_idempotent(
            input in "(\\+|00|011|0)?[0-9 ()\\-.]{1,18}",
            region in 0..REGIONS.len(),
        ) {
            let h = hasher(REGIONS[region]);
            if let Ok(party @ NormalizedParty::E164(_)) = h.normalize(&input) {
                prop_assert_eq!(h.normalize(&party.canonical()), Ok(party.clone()));
                // The bare E.164 text reads back the same too, with any region.
                if let NormalizedParty::E164(number) = &party {
                    for other in REGIONS {
                        prop_assert_eq!(hasher(other).normalize(number), Ok(party.clone()));
                    }
                }
            }
        }

        #[test]
        fn never_panics_in_any_region(region in "[A-Z]{2}", input in "\\+?[0-9*#]{0,22}") {
            if let Ok(h) = PartyHasher::new(SECRET, Some(&region)) {
                assert_fixed_point(&h, &input)?;
            }
        }
    }
}
