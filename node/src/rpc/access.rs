//! Who may call what (review H1): roles, bearer tokens, and one table of every JSON-RPC method
//! and HTTP route with what it needs. README.md's method table repeats the "who" column, and a
//! test holds the two together.
//!
//! | role | may |
//! | --- | --- |
//! | `ingest` | submit CDRs: `/ingest/*`, `cdr_submit`, `cdr_check` (switches, importers) |
//! | `read` | read the chain and its CDRs (operators' own tools); with a `party`, only the CDRs that operator recorded or is a party to (a partner's token) |
//! | `admin` | everything |
//!
//! A node without tokens (the dev default, loopback only: the CLI refuses it beyond loopback)
//! grants every role to every request that passes the browser checks. With tokens, a request
//! without one may call `system_health` alone. `--rpc-token` is one token with every role.

use std::collections::BTreeSet;

use cdrchain_runtime::ids::OperatorId;
use serde::{Deserialize, Serialize};

/// A role a token grants.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

/// What a method or route needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Need {
    /// Anyone who reaches the port (a load balancer's probe).
    Open,
    /// The chain without CDR contents (headers, checkpoints, consensus): any `read` token.
    Chain,
    /// CDR contents: any `read` token; a partner's sees only its operator's CDRs.
    Records,
    /// Every CDR at once (whole blocks): a `read` token without a party.
    AllRecords,
    /// Submitting CDRs: `ingest`.
    Ingest,
    /// Operating the node: `admin`.
    Admin,
}

impl Need {
    /// The README's name of the need ("who" column).
    pub fn who(self) -> &'static str {
        match self {
            Need::Open => "anyone",
            Need::Chain => "read",
            Need::Records => "read (a partner: its CDRs)",
            Need::AllRecords => "read (not a partner)",
            Need::Ingest => "ingest",
            Need::Admin => "admin",
        }
    }
}

/// Every JSON-RPC method and what it needs. A method missing here is refused to everyone but
/// `admin` (and a test fails).
pub const METHODS: &[(&str, Need)] = &[
    ("system_health", Need::Open),
    ("system_peers", Need::Chain),
    ("system_properties", Need::Chain),
    ("system_ingestStats", Need::AllRecords),
    ("chain_getHeader", Need::Chain),
    ("chain_getBlock", Need::AllRecords),
    ("chain_getFinalizedHead", Need::Chain),
    ("chain_activity", Need::Chain),
    ("chain_subscribeFinalizedHeads", Need::Chain),
    ("chain_unsubscribeFinalizedHeads", Need::Chain),
    ("cdr_submit", Need::Ingest),
    ("cdr_check", Need::Ingest),
    ("cdr_status", Need::Records),
    ("cdr_get", Need::Records),
    ("cdr_byCallId", Need::Records),
    ("cdr_byParty", Need::Records),
    ("cdr_query", Need::Records),
    ("cdr_proof", Need::Records),
    ("cdr_absenceProof", Need::Records),
    ("cdr_consistencyProof", Need::Chain),
    ("cdr_declareGap", Need::Admin),
    ("agreement_propose", Need::Admin),
    ("agreement_accept", Need::Admin),
    ("agreement_get", Need::Chain),
    ("agreement_list", Need::Chain),
    ("statement_make", Need::Records),
    ("statement_propose", Need::Admin),
    ("statement_sign", Need::Admin),
    ("statement_get", Need::Chain),
    ("statement_list", Need::Chain),
    ("dispute_open", Need::Admin),
    ("dispute_step", Need::Admin),
    ("dispute_confirm", Need::Admin),
    ("dispute_get", Need::Chain),
    ("dispute_list", Need::Chain),
    ("dispute_bundle", Need::Chain),
    ("checkpoint_latest", Need::Chain),
    ("checkpoint_get", Need::Chain),
    ("checkpoint_anchor", Need::Chain),
    ("settlement_summary", Need::Records),
    ("consensus_status", Need::Chain),
    ("consensus_evidence", Need::Chain),
    ("authority_set", Need::Chain),
    ("authority_pending", Need::Chain),
    ("authority_propose", Need::Admin),
    ("authority_approve", Need::Admin),
    ("authority_contractChange", Need::Chain),
    ("authority_setChanges", Need::Chain),
];

/// Every HTTP route besides JSON-RPC (`POST /`), and what it needs.
pub const ROUTES: &[(&str, Need)] = &[
    ("/ingest/cdrs", Need::Ingest),
    ("/ingest/freeswitch", Need::Ingest),
    ("/ingest/kamailio", Need::Ingest),
];

/// What `method` needs ([`Need::Admin`] for one not in [`METHODS`]).
pub fn need_of(method: &str) -> Need {
    METHODS.iter().find(|(name, _)| *name == method).map_or(Need::Admin, |(_, need)| *need)
}

/// What a request may do, from its bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    roles: BTreeSet<Role>,
    /// A partner's token: only the CDRs this operator recorded or is a party to.
    party: Option<OperatorId>,
    /// Whether the request carried a token at all (for 401 against 403).
    pub presented: bool,
}

impl Grant {
    /// Every role, every CDR.
    pub fn everything() -> Grant {
        Grant { roles: [Role::Ingest, Role::Read, Role::Admin].into(), party: None, presented: true }
    }

    /// No role: `system_health` only.
    pub fn nothing(presented: bool) -> Grant {
        Grant { roles: BTreeSet::new(), party: None, presented }
    }

    pub fn new(roles: impl IntoIterator<Item = Role>, party: Option<OperatorId>) -> Grant {
        Grant { roles: roles.into_iter().collect(), party, presented: true }
    }

    fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Whether this grant meets `need`.
    pub fn allows(&self, need: Need) -> bool {
        match need {
            Need::Open => true,
            Need::Chain | Need::Records => self.has(Role::Read),
            Need::AllRecords => {
                self.has(Role::Read) && (self.party.is_none() || self.roles.contains(&Role::Admin))
            }
            Need::Ingest => self.has(Role::Ingest),
            Need::Admin => self.roles.contains(&Role::Admin),
        }
    }

    /// The operator whose CDRs alone this grant reads; `None`: every CDR.
    pub fn party(&self) -> Option<&OperatorId> {
        if self.roles.contains(&Role::Admin) {
            None
        } else {
            self.party.as_ref()
        }
    }

    /// Why this grant does not meet `need`, for the error.
    pub fn refusal(&self, what: &str, need: Need) -> String {
        if self.presented {
            format!("{what} needs a token with the {} role; this one does not have it", need.who())
        } else {
            format!("{what} needs `Authorization: Bearer <token>` ({})", need.who())
        }
    }
}

/// One configured token.
#[derive(Clone)]
pub struct Token {
    /// A name for the logs (never the token).
    pub name: String,
    pub secret: Vec<u8>,
    pub grant: Grant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).field("grant", &self.grant).finish_non_exhaustive()
    }
}

/// The node's tokens; none: every request gets every role (a loopback dev node).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Tokens {
        Tokens { tokens }
    }

    /// No token configured: the node is open to whoever passes the browser checks.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The grant of an `Authorization` header value. Every configured token is compared in
    /// constant time, so the answer's timing does not say which one nearly matched.
    pub fn grant(&self, authorization: Option<&str>) -> Grant {
        if self.is_open() {
            return Grant::everything();
        }
        let Some(given) = authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim) else {
            return Grant::nothing(false);
        };
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(given.as_bytes(), &token.secret) && found.is_none() {
                found = Some(token.grant.clone());
            }
        }
        found.unwrap_or_else(|| Grant::nothing(true))
    }
}

/// Compares two byte strings in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> OperatorId {
        OperatorId::new(name).expect("a valid name")
    }

    #[test]
    fn roles_meet_needs_as_the_table_says() {
        let ingest = Grant::new([Role::Ingest], None);
        let read = Grant::new([Role::Read], None);
        let partner = Grant::new([Role::Read], Some(op("bob")));
        let admin = Grant::new([Role::Admin], Some(op("bob")));
        let none = Grant::nothing(false);
        let needs = [Need::Open, Need::Chain, Need::Records, Need::AllRecords, Need::Ingest, Need::Admin];
        let table = [
            (&ingest, [true, false, false, false, true, false]),
            (&read, [true, true, true, true, false, false]),
            (&partner, [true, true, true, false, false, false]),
            (&admin, [true, true, true, true, true, true]),
            (&none, [true, false, false, false, false, false]),
        ];
        for (grant, allowed) in table {
            for (need, want) in needs.iter().zip(allowed) {
                assert_eq!(grant.allows(*need), want, "{grant:?} {need:?}");
            }
        }
        assert_eq!(partner.party(), Some(&op("bob")));
        assert_eq!(admin.party(), None, "admin reads everything");
    }

    #[test]
    fn tokens_give_their_grants_and_nothing_else() {
        let tokens = Tokens::new(vec![
            Token {
                name: "switches".into(),
                secret: b"s3cret-ingest".to_vec(),
                grant: Grant::new([Role::Ingest], None),
            },
            Token {
                name: "bob".into(),
                secret: b"s3cret-bob".to_vec(),
                grant: Grant::new([Role::Read], Some(op("bob"))),
            },
        ]);
        assert_eq!(tokens.grant(Some("Bearer s3cret-ingest")), Grant::new([Role::Ingest], None));
        assert_eq!(tokens.grant(Some("Bearer s3cret-bob")).party(), Some(&op("bob")));
        assert_eq!(tokens.grant(Some("Bearer s3cret-bo")), Grant::nothing(true));
        assert_eq!(tokens.grant(Some("s3cret-bob")), Grant::nothing(false));
        assert_eq!(tokens.grant(None), Grant::nothing(false));
        assert_eq!(Tokens::default().grant(None), Grant::everything());
    }

    #[test]
    fn every_method_is_classified_once() {
        let names: BTreeSet<&str> = METHODS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), METHODS.len(), "a method is listed twice");
        assert_eq!(need_of("no_such"), Need::Admin);
    }
}
