//! The JSON-RPC API: one trait per namespace, with jsonrpsee's `#[rpc(server, client)]`.
//!
//! The server side (`…Server`) is implemented in this module's namespace files; the client side
//! (`…Client`, over any jsonrpsee client) is what the `cdrchain` commands call, so the two cannot
//! drift. Every name on the wire is `<namespace>_<method>`, as in Substrate (`chain_getHeader`).
//!
//! Parameters are positional (a JSON array, as the generated clients send them); an object with
//! the parameters by name is accepted too. Trailing `Option` parameters may be left out.
//! The Rust names are unique across the traits, so that one client can call them all.
//! Results that the node builds from several parts keep their JSON shape as `serde_json::Value`;
//! the small fixed ones are typed below.

// `cdr_query` and `settlement_summary` take six positional parameters (the wire format), and the
// generated server methods add the request's extensions (its grant) to them.
#![allow(clippy::too_many_arguments)]

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `system_health`: what a load balancer or an operator's probe asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Connected peers.
    pub peers: usize,
    /// Whether the node is catching up with its peers' blocks.
    pub is_syncing: bool,
    /// Whether the chain has other validators to talk to (a single-validator chain has none).
    pub should_have_peers: bool,
    /// The head's height.
    pub best: u64,
    /// The finalized head's height: the head, as every committed block is final.
    pub finalized: u64,
    /// Present when this node's operator's CDRs do not move onto the chain: where, since when,
    /// why, and what to do (a queued record that can never be committed, review M8). Shown to a
    /// caller who may read every CDR (the operator's tools), not to an anonymous probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_stuck: Option<crate::ingest::stuck::IngestStuck>,
}

/// `system_properties`: which chain and operator the node serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    /// The chain spec's id (`dev`, `local`, …).
    pub chain: String,
    /// The operator whose node this is: the recorder of the CDRs it ingests.
    pub operator: String,
    /// The genesis hash, `0x…`.
    pub genesis_hash: String,
    /// Whether the node can ingest (it has the consortium secret to hash parties with).
    pub ingest: bool,
    /// Blocks between RSK checkpoints (0: none).
    pub checkpoint_interval: u64,
    /// The RSK chain id checkpoints are signed for.
    pub rsk_chain_id: u64,
}

/// `consensus_status`: where the validator's consensus is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusStatus {
    /// The height being decided.
    pub height: u64,
    /// Its round.
    pub round: u32,
    /// The step within the round.
    pub step: String,
    /// Whether the node is catching up with its peers' blocks.
    pub is_syncing: bool,
    /// Equivocations seen (`consensus_evidence` lists them).
    pub evidence: usize,
}

/// `cdr_check`: what submitting the CDRs would refuse, and what is recorded already.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// Every CDR that would be refused.
    pub errors: Vec<CheckError>,
    /// Every CDR ingested before.
    pub duplicates: Vec<Duplicate>,
}

/// One CDR `cdr_check` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckError {
    /// Its position in the request.
    pub index: usize,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// Why.
    pub message: String,
}

/// One CDR ingested before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// Its position in the request.
    pub index: usize,
    /// The id it was given then (`operator:sequence`).
    pub id: String,
}

/// `cdr_query`: one page of a partner pair's CDRs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryPage {
    /// The CDRs, as `cdr_get` answers them.
    pub cdrs: Vec<Value>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// `cdr_byParty`: one page of a party's CDRs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyPage {
    /// The CDRs, as `cdr_get` answers them.
    pub cdrs: Vec<Value>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
    /// The height through which the party index holds every CDR: it follows the head, behind
    /// it (storage's `parties.rs`); CDRs of later blocks are not found yet.
    pub indexed_through: u64,
    /// The head's height when the page was read.
    pub head: u64,
}

/// Node and peers.
#[rpc(server, client, namespace = "system")]
pub trait SystemApi {
    /// Peers, syncing, best and finalized height; for the operator's own tools, a stuck stream.
    #[method(name = "health", with_extensions)]
    fn health(&self) -> RpcResult<Health>;

    /// The connected peers.
    #[method(name = "peers")]
    fn peers(&self) -> RpcResult<Value>;

    /// Chain, operator, genesis hash, ingest readiness, checkpoint settings.
    #[method(name = "properties")]
    fn properties(&self) -> RpcResult<Properties>;

    /// What this node's ingest took and refused since it started, per source; its queue, the
    /// commit rate it measured, admission refusals, the operator's latest declared sequence gap
    /// and a stuck stream (the portal's operator view).
    #[method(name = "ingestStats")]
    fn ingest_stats(&self) -> RpcResult<Value>;
}

/// Blocks and headers. `at` is a block number, a block hash (`0x…`) or null for the head.
#[rpc(server, client, namespace = "chain")]
pub trait ChainApi {
    /// A header with its hash, or null.
    #[method(name = "getHeader")]
    fn header(&self, at: Option<Value>) -> RpcResult<Option<Value>>;

    /// A block (header, transactions, commit certificate), or null.
    #[method(name = "getBlock", blocking)]
    fn block(&self, at: Option<Value>) -> RpcResult<Option<Value>>;

    /// The finalized head's hash (every committed block is final).
    #[method(name = "getFinalizedHead")]
    fn finalized_head(&self) -> RpcResult<String>;

    /// Blocks and CDRs committed per bucket of the `window_s` seconds (default 3,600, at most a
    /// day) before the head, in `buckets` buckets (default 60, at most 240), by block time; and
    /// each validator's last signed height and the window's blocks it signed.
    #[method(name = "activity", blocking)]
    fn activity(&self, window_s: Option<u64>, buckets: Option<u32>) -> RpcResult<Value>;

    /// Every newly finalized header (WebSocket only).
    #[subscription(
        name = "subscribeFinalizedHeads" => "finalizedHead",
        unsubscribe = "unsubscribeFinalizedHeads",
        item = Value
    )]
    async fn subscribe_finalized_heads(&self) -> SubscriptionResult;
}

/// CDRs: submit, check, look up, prove.
#[rpc(server, client, namespace = "cdr")]
pub trait CdrApi {
    /// Stores canonical CDRs durably (needs the `ingest` role when the node has tokens); their
    /// ids.
    #[method(name = "submit")]
    async fn submit(&self, cdrs: Vec<Value>) -> RpcResult<Vec<String>>;

    /// Validates CDRs without storing them.
    #[method(name = "check", blocking)]
    fn check(&self, cdrs: Vec<Value>) -> RpcResult<CheckReport>;

    /// `committed` (with height, block hash, leaf index), `queued` or `unknown`.
    #[method(name = "status", with_extensions)]
    fn cdr_status(&self, id: String) -> RpcResult<Value>;

    /// A committed CDR with its id, height and leaf index, or null.
    #[method(name = "get", with_extensions)]
    fn cdr(&self, id: String) -> RpcResult<Option<Value>>;

    /// Every committed CDR of a SIP Call-ID.
    #[method(name = "byCallId", blocking, with_extensions)]
    fn by_call_id(&self, call_id: String) -> RpcResult<Vec<Value>>;

    /// The committed CDRs a party took part in (as caller or callee), newest first: `party` is
    /// its keyed digest (hex), which only holders of the consortium secret can compute; a page
    /// of at most `limit` (default 100, at most 1,000) from `cursor`, and how far the party index
    /// (which follows the head) has come.
    #[method(name = "byParty", blocking, with_extensions)]
    fn by_party(&self, party: String, cursor: Option<String>, limit: Option<usize>) -> RpcResult<PartyPage>;

    /// The CDRs between operators `a` and `b` that started in `[from, to)` (RFC 3339 or ms), a
    /// page of at most `limit` (default 1,000, at most 10,000) from `cursor`.
    #[method(name = "query", blocking, with_extensions)]
    fn query(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<QueryPage>;

    /// The inclusion proof bundle of a committed CDR.
    #[method(name = "proof", blocking, with_extensions)]
    fn proof(&self, id: String) -> RpcResult<Value>;

    /// The absence proof bundle of an id not recorded at the head.
    #[method(name = "absenceProof", blocking)]
    fn absence_proof(&self, id: String) -> RpcResult<Value>;

    /// Declares `from`..=`to` of this node's own stream a gap for `reason` (admin): the queued
    /// CDRs there can never be committed; they are quarantined and shown, and the stream goes on.
    #[method(name = "declareGap")]
    fn declare_gap(&self, operator: String, from: u64, to: u64, reason: String) -> RpcResult<Value>;

    /// The consistency proof between the CDR log of `old_size` leaves and that of `new_size`.
    #[method(name = "consistencyProof", blocking)]
    fn consistency_proof(&self, old_size: u64, new_size: u64) -> RpcResult<Value>;
}

/// RSK checkpoints with the validator signatures gathered so far.
#[rpc(server, client, namespace = "checkpoint")]
pub trait CheckpointApi {
    /// The newest recorded checkpoint, or null.
    #[method(name = "latest")]
    fn latest_checkpoint(&self) -> RpcResult<Value>;

    /// The RSK anchor as this node last read it (`--rsk-rpc`): the height the contract holds,
    /// its lag behind the head, when it was read and the last error; `watching: false` without.
    #[method(name = "anchor")]
    fn anchor(&self) -> RpcResult<Value>;

    /// The checkpoint of block `height`, or null.
    #[method(name = "get")]
    fn checkpoint(&self, height: u64) -> RpcResult<Value>;
}

/// The validator's consensus.
#[rpc(server, client, namespace = "consensus")]
pub trait ConsensusApi {
    /// Height, round, step, syncing, evidence count.
    #[method(name = "status")]
    fn consensus_status(&self) -> RpcResult<ConsensusStatus>;

    /// Equivocations seen, each verifiable offline.
    #[method(name = "evidence")]
    fn evidence(&self) -> RpcResult<Vec<Value>>;
}

/// The authority set and its changes (docs/operations.md).
#[rpc(server, client, namespace = "authority")]
pub trait AuthorityApi {
    /// The set that certifies height `at` (default: the next height): its id, first height and
    /// members with their keys. Exact from the current set's first height to the head + the
    /// change delay.
    #[method(name = "set")]
    fn authority_set(&self, at: Option<u64>) -> RpcResult<Value>;

    /// The open proposal (with its approvals and expiry) and the approved change waiting for
    /// its height; null for each when there is none.
    #[method(name = "pending")]
    fn authority_pending(&self) -> RpcResult<Value>;

    /// Proposes `change` as this node's operator: an `AuthorityChange` in JSON (`{"kind":
    /// "remove", "id": …}`, `{"kind": "add", …}` or `{"kind": "rotate-keys", …}` with their
    /// proofs of possession). Checked against the head first; answers the proposal's id.
    #[method(name = "propose", blocking)]
    fn authority_propose(&self, change: Value) -> RpcResult<Value>;

    /// Approves the open proposal `id` as this node's operator; checked against the head first.
    #[method(name = "approve", blocking)]
    fn authority_approve(&self, id: String) -> RpcResult<Value>;

    /// The RSK contract's change to set `set_id` (≥ 1): the new set's EVM addresses ascending,
    /// threshold and nonce, as `changeValidators` takes them, and the signatures the members of
    /// the set before have put on the chain (each with its signer's EVM address in that set and
    /// the contract it is for). Null for a set the chain does not have.
    #[method(name = "contractChange", blocking)]
    fn authority_contract_change(&self, set_id: u64) -> RpcResult<Value>;

    /// The proofs of every authority-set change from genesis to the set of the next height
    /// (`cdrchain_runtime::proof::sets::SetStep`, in order): what a light client walks from the
    /// genesis spec (`cdrchain light-sync`).
    #[method(name = "setChanges", blocking)]
    fn authority_set_changes(&self) -> RpcResult<Value>;
}

/// Interconnect settlement.
#[rpc(server, client, namespace = "settlement")]
pub trait SettlementApi {
    /// The calls between `a` and `b` that started in `[from, to)`, committed at or below block
    /// `at` (default: the head), each call once, under `rounding` (default per-second).
    #[method(name = "summary", blocking, with_extensions)]
    fn summary(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        rounding: Option<String>,
        at: Option<Value>,
    ) -> RpcResult<Value>;
}

/// Interconnect agreements between two operators, sealed to the pair (docs/settlement.md).
#[rpc(server, client, namespace = "agreement")]
pub trait AgreementApi {
    /// Proposes `document` (an agreement in the `cdrchain-agreement` JSON format, checked by the
    /// caller) with `counterparty` as version `version`, as this node's operator: sealed to both
    /// partners' registered encryption keys, checked against the head, pooled. Answers the
    /// agreement's id and commitment.
    #[method(name = "propose", blocking)]
    fn agreement_propose(&self, counterparty: String, version: u32, document: String) -> RpcResult<Value>;

    /// Accepts agreement `id` as this node's operator (its counterparty): the node opens it first
    /// and checks that it is sealed to both partners and matches its commitment.
    #[method(name = "accept", blocking)]
    fn agreement_accept(&self, id: String) -> RpcResult<Value>;

    /// Agreement `id`: who proposed it to whom, its version, heights, commitment and envelope;
    /// with the opening (salt and document) when this node's operator is one of the pair and the
    /// caller's token is not another partner's. Null for an unknown id.
    #[method(name = "get", blocking, with_extensions)]
    fn agreement_get(&self, id: String) -> RpcResult<Value>;

    /// The agreements of the pair `a`–`b` (either order), oldest first, and the one in force.
    #[method(name = "list", blocking)]
    fn agreement_list(&self, a: String, b: String) -> RpcResult<Value>;
}

/// Statements of an interconnect pair's calls under its agreement (docs/settlement.md).
#[rpc(server, client, namespace = "statement")]
pub trait StatementApi {
    /// Rates the calls between `a` and `b` that started in `[from, to)`, committed at or below
    /// block `at` (default: the head), the partners' own records only and each call once, under
    /// the pair's agreement in force at that block: the statement document (lines, day-wise summary, totals,
    /// unrated calls, net position) and its canonical bytes' BLAKE3 hash. Only a node of one of
    /// the pair can (it opens the agreement); a partner's token only for its own pairs.
    #[method(name = "make", blocking, with_extensions)]
    fn statement_make(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        at: Option<Value>,
    ) -> RpcResult<Value>;

    /// Makes the statement as `statement_make` does and proposes it as this node's operator,
    /// sealed to both partners: the other partner signs it (`statement_sign`) or disputes it.
    #[method(name = "propose", blocking)]
    fn statement_propose(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        at: Option<Value>,
    ) -> RpcResult<Value>;

    /// Signs statement `id` as this node's operator (the partner it was proposed to), only if
    /// this node makes the very same bytes from the same block and agreement.
    #[method(name = "sign", blocking)]
    fn statement_sign(&self, id: String) -> RpcResult<Value>;

    /// Statement `id`: partners, agreement, period, heights, commitment and envelope; with the
    /// opened document for the pair's node and tokens. Null for an unknown id.
    #[method(name = "get", blocking, with_extensions)]
    fn statement_get(&self, id: String) -> RpcResult<Value>;

    /// The pair's statements, oldest first, and the periods that are final.
    #[method(name = "list", blocking)]
    fn statement_list(&self, a: String, b: String) -> RpcResult<Value>;
}

/// Disputes of a statement, sealed to the pair (docs/settlement.md).
#[rpc(server, client, namespace = "dispute")]
pub trait DisputeApi {
    /// Opens a dispute of statement `statement` as this node's operator (the partner it was
    /// proposed to) with `document` (the claim: category, amount, evidence), sealed to the pair.
    #[method(name = "open", blocking)]
    fn dispute_open(&self, statement: String, document: String) -> RpcResult<Value>;

    /// Adds a step to dispute `id` as this node's operator: `respond` or `propose-close`, with
    /// its document, sealed to the pair.
    #[method(name = "step", blocking)]
    fn dispute_step(&self, id: String, kind: String, document: String) -> RpcResult<Value>;

    /// Confirms the other side's latest proposal to close dispute `id` (after opening it): the
    /// dispute is closed and the statement's period final.
    #[method(name = "confirm", blocking)]
    fn dispute_confirm(&self, id: String) -> RpcResult<Value>;

    /// Dispute `id` with every step (who, what kind, when, commitment, envelope), and each
    /// step's opened document for the pair's node and tokens. Null for an unknown id.
    #[method(name = "get", blocking, with_extensions)]
    fn dispute_get(&self, id: String) -> RpcResult<Value>;

    /// The disputes of the pair `a`–`b`'s statements, oldest first.
    #[method(name = "list", blocking)]
    fn dispute_list(&self, a: String, b: String) -> RpcResult<Value>;

    /// Dispute `id`'s bundle (`cdrchain-dispute-bundle`, docs/proofs.md): the agreement, the
    /// statement and the dispute proven under the head's finalized header, with every opened
    /// document; `cdrchain verify` checks it offline. Only for the pair's node and tokens.
    #[method(name = "bundle", blocking, with_extensions)]
    fn dispute_bundle(&self, id: String) -> RpcResult<Value>;
}
