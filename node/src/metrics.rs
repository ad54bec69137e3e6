//! Prometheus metrics (text format) at `http://<metrics-addr>/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Semaphore};

use cdrchain_runtime::block::CommitCertificate;
use cdrchain_runtime::ids::OperatorId;

use crate::labels::{BoundedNames, OTHER};
use crate::NodeError;

/// The most partner directions (from, to, recorder) counted under their own labels; the rest
/// under `other`. The operator names come from the CDRs, which a member's switch writes.
pub const MAX_PARTNER_DIRECTIONS: usize = 1_024;

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    pub best_height: Gauge,
    pub finalized_height: Gauge,
    pub blocks_committed: Counter,
    pub cdrs_committed: Counter,
    pub tx_pool_depth: Gauge,
    pub tx_pool_bytes: Gauge,
    pub ingest_queue_depth: Gauge,
    pub rocksdb_size_bytes: Gauge,
    pub block_build_seconds: Histogram,
    pub block_import_seconds: Histogram,
    pub peers: Gauge,
    pub consensus_round: Gauge,
    pub equivocations: Counter,
    /// Blocks the party index (search by number) is behind the head.
    pub party_index_lag_blocks: Gauge,
    /// The RSK anchor as `--rsk-rpc` reads it.
    pub anchor: crate::anchor::AnchorGauges,
    /// The metrics with labels (per source, validator, operator or direction).
    labelled: Labelled,
    /// The partner directions counted under their own labels.
    partner_directions: std::sync::Mutex<BoundedNames>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics with labels, registered together.
struct Labelled {
    /// Parties recorded as written (not normalized), by source (`system_id`).
    parties_as_written: Family<Vec<(String, String)>, Counter>,
    /// Committed blocks whose certificate lacks a validator's precommit, by validator.
    missed_precommits: Family<Vec<(String, String)>, Counter>,
    /// The last height whose certificate holds a validator's precommit, by validator.
    last_signed: Family<Vec<(String, String)>, Gauge>,
    /// Declared sequence gaps committed, and the sequence numbers they cover, by operator.
    sequence_gaps: Family<Vec<(String, String)>, Counter>,
    sequence_gap_cdrs: Family<Vec<(String, String)>, Counter>,
    /// The partners' traffic, by direction (`from`, `to`) and `recorder`: calls, answered
    /// calls, billable milliseconds (exported as seconds), counted behind the head.
    partner_calls: Family<Vec<(String, String)>, Counter>,
    partner_answered: Family<Vec<(String, String)>, Counter>,
    partner_billable_seconds: Family<Vec<(String, String)>, Counter<f64>>,
    /// CDRs ingested, by source and outcome (`accepted`, `duplicate`).
    ingest_cdrs: Family<Vec<(String, String)>, Counter>,
    /// Submissions admission refused, by reason.
    admission_refusals: Family<Vec<(String, String)>, Counter>,
}

impl Labelled {
    fn register(registry: &mut Registry) -> Labelled {
        let parties_as_written = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "ingest_parties_as_written",
            "Parties of ingested CDRs recorded as written, not normalized to E.164 (by source system_id; \
             see docs/ingest.md for number rules)",
            parties_as_written.clone(),
        );
        let missed_precommits = labelled(
            registry,
            "validator_missed_precommits",
            "Committed blocks whose commit certificate lacks this validator's precommit (offline, late or \
             partitioned), by validator",
        );
        let last_signed = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "validator_last_signed_height",
            "The last committed height whose certificate holds this validator's precommit",
            last_signed.clone(),
        );
        let sequence_gaps = labelled(
            registry,
            "sequence_gaps",
            "Declared sequence gaps committed (CDRs an operator's node could never commit), by operator",
        );
        let sequence_gap_cdrs =
            labelled(registry, "sequence_gap_cdrs", "Sequence numbers the committed gaps cover, by operator");
        let partner_calls = labelled(
            registry,
            "partner_calls",
            "Calls committed on the chain, by direction (from, to: the caller's and callee's operators) and \
             recorder; counted behind the head with the party index",
        );
        let partner_answered = labelled(
            registry,
            "partner_answered_calls",
            "Answered calls committed on the chain, by direction and recorder: the answer-seizure ratio is \
             this over partner_calls",
        );
        let partner_billable_seconds = Family::<Vec<(String, String)>, Counter<f64>>::default();
        registry.register(
            "partner_billable_seconds",
            "Billable seconds (answer to end) of the calls committed on the chain, by direction and \
             recorder: the average call duration is this over partner_answered_calls",
            partner_billable_seconds.clone(),
        );
        let ingest_cdrs = labelled(
            registry,
            "ingest_cdrs",
            "CDRs submitted to this node, by source system_id and outcome (accepted: stored for the chain; \
             duplicate: already held, answered with its first id)",
        );
        let admission_refusals = labelled(
            registry,
            "ingest_admission_refusals",
            "Submissions refused before they were read, by reason (queue full, chain slower than offered, \
             disk reserve, unavailable): the sender retries after Retry-After",
        );
        Labelled {
            parties_as_written,
            ingest_cdrs,
            admission_refusals,
            missed_precommits,
            last_signed,
            partner_calls,
            partner_answered,
            partner_billable_seconds,
            sequence_gaps,
            sequence_gap_cdrs,
        }
    }
}

/// A counter family with labels, registered.
fn labelled(registry: &mut Registry, name: &str, help: &str) -> Family<Vec<(String, String)>, Counter> {
    let family = Family::<Vec<(String, String)>, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cdrchain");
        let best_height = Gauge::default();
        let finalized_height = Gauge::default();
        let blocks_committed = Counter::default();
        let cdrs_committed = Counter::default();
        let tx_pool_depth = Gauge::default();
        let tx_pool_bytes = Gauge::default();
        let ingest_queue_depth = Gauge::default();
        let rocksdb_size_bytes = Gauge::default();
        let block_build_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let block_import_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let peers = Gauge::default();
        let consensus_round = Gauge::default();
        let equivocations = Counter::default();
        let party_index_lag_blocks = Gauge::default();
        let labelled = Labelled::register(&mut registry);
        let anchor = crate::anchor::AnchorGauges::register(&mut registry);
        registry.register(
            "party_index_lag_blocks",
            "Blocks whose CDRs the party index (search by number) has not reached yet",
            party_index_lag_blocks.clone(),
        );
        registry.register("peers", "Connected peers (validators of this chain)", peers.clone());
        registry.register(
            "consensus_round",
            "Consensus round at the current height",
            consensus_round.clone(),
        );
        registry.register(
            "consensus_equivocations",
            "Equivocations detected (two signed votes or proposals for one height, round and step)",
            equivocations.clone(),
        );
        registry.register("best_height", "Height of the best block", best_height.clone());
        registry.register(
            "finalized_height",
            "Height of the latest finalized block",
            finalized_height.clone(),
        );
        registry.register("blocks_committed", "Blocks committed since start", blocks_committed.clone());
        registry.register("cdrs_committed", "CDRs committed since start", cdrs_committed.clone());
        registry.register("tx_pool_depth", "Transactions waiting in the pool", tx_pool_depth.clone());
        registry.register(
            "tx_pool_bytes",
            "Encoded bytes of the transactions waiting in the pool",
            tx_pool_bytes.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "CDRs acknowledged but not yet committed",
            ingest_queue_depth.clone(),
        );
        registry.register(
            "rocksdb_size_bytes",
            "Approximate size of the database on disk",
            rocksdb_size_bytes.clone(),
        );
        registry.register("block_build_seconds", "Time to build a block", block_build_seconds.clone());
        registry.register("block_import_seconds", "Time to commit a block", block_import_seconds.clone());
        Self {
            registry,
            best_height,
            finalized_height,
            blocks_committed,
            cdrs_committed,
            tx_pool_depth,
            tx_pool_bytes,
            ingest_queue_depth,
            rocksdb_size_bytes,
            party_index_lag_blocks,
            anchor,
            block_build_seconds,
            block_import_seconds,
            peers,
            consensus_round,
            equivocations,
            labelled,
            partner_directions: std::sync::Mutex::new(BoundedNames::new(MAX_PARTNER_DIRECTIONS)),
        }
    }

    /// Counts `parties` recorded as written in CDRs from `system_id` (a label ingest's counts
    /// bounded: `ingest::stats`).
    pub fn count_as_written(&self, system_id: &str, parties: u64) {
        let label = system_id.to_owned();
        self.labelled
            .parties_as_written
            .get_or_create(&vec![("system_id".to_owned(), label)])
            .inc_by(parties);
    }

    /// Counts a submission's CDRs of one source (a bounded label, as above): stored, and
    /// duplicates answered.
    pub fn count_ingested(&self, system_id: &str, accepted: u64, duplicates: u64) {
        let label = system_id.to_owned();
        for (outcome, count) in [("accepted", accepted), ("duplicate", duplicates)] {
            if count > 0 {
                let labels =
                    vec![("system_id".to_owned(), label.clone()), ("outcome".to_owned(), outcome.to_owned())];
                self.labelled.ingest_cdrs.get_or_create(&labels).inc_by(count);
            }
        }
    }

    /// Records who signed a committed block's certificate, of the set in force at its height.
    pub fn on_certificate(&self, members: &[&OperatorId], certificate: &CommitCertificate) {
        for member in members {
            let labels = vec![("validator".to_owned(), member.to_string())];
            if certificate.signatures.iter().any(|s| &s.authority == *member) {
                self.labelled
                    .last_signed
                    .get_or_create(&labels)
                    .set(i64::try_from(certificate.height.0).unwrap_or(i64::MAX));
            } else {
                self.labelled.missed_precommits.get_or_create(&labels).inc();
            }
        }
    }

    /// Counts committed calls of one direction and recorder (`[from, to, recorder]`).
    pub fn count_traffic(
        &self,
        [from, to, recorder]: [String; 3],
        calls: u64,
        answered: u64,
        billable_ms: u64,
    ) {
        let admitted = self
            .partner_directions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(&format!("{from}\0{to}\0{recorder}"));
        let [from, to, recorder] =
            if admitted { [from, to, recorder] } else { [OTHER; 3].map(str::to_owned) };
        let labels =
            vec![("from".to_owned(), from), ("to".to_owned(), to), ("recorder".to_owned(), recorder)];
        self.labelled.partner_calls.get_or_create(&labels).inc_by(calls);
        if answered > 0 {
            self.labelled.partner_answered.get_or_create(&labels).inc_by(answered);
        }
        self.labelled.partner_billable_seconds.get_or_create(&labels).inc_by(billable_ms as f64 / 1_000.0);
    }

    /// Counts a committed sequence gap of `operator` covering `cdrs` sequence numbers.
    pub fn on_sequence_gap(&self, operator: &OperatorId, cdrs: u64) {
        let labels = vec![("operator".to_owned(), operator.to_string())];
        self.labelled.sequence_gaps.get_or_create(&labels).inc();
        self.labelled.sequence_gap_cdrs.get_or_create(&labels).inc_by(cdrs);
    }

    /// Counts a submission admission refused, by reason.
    pub fn count_admission_refusal(&self, reason: &str) {
        self.labelled.admission_refusals.get_or_create(&vec![("reason".to_owned(), reason.to_owned())]).inc();
    }

    /// Records a committed block (instant finality: best = finalized).
    pub fn on_commit(&self, height: u64, cdrs: u64) {
        let height = i64::try_from(height).unwrap_or(i64::MAX);
        self.best_height.set(height);
        self.finalized_height.set(height);
        self.blocks_committed.inc();
        self.cdrs_committed.inc_by(cdrs);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` until `shutdown` turns true. `refresh` updates sampled gauges before each
/// scrape. Connections are capped at 16 at a time.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let bound =
        listener.local_addr().map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let permits = Arc::new(Semaphore::new(16));
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
            let (metrics, refresh) = (metrics.clone(), refresh.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (metrics, refresh) = (metrics.clone(), refresh.clone());
                        async move {
                            let response = if request.uri().path() == "/metrics" {
                                refresh();
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from(metrics.render())));
                                response.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    hyper::header::HeaderValue::from_static(
                                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                    ),
                                );
                                response
                            } else {
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from("see /metrics\n")));
                                *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                                response
                            };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                drop(permit);
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cdrchain_…` names in `text`.
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for (start, _) in text.match_indices("cdrchain_") {
            let name: String =
                text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
        names
    }

    #[test]
    fn partner_directions_past_the_limit_are_counted_as_other() {
        let metrics = Metrics::new();
        for n in 0..MAX_PARTNER_DIRECTIONS + 5 {
            metrics.count_traffic([format!("op{n}"), "bob".into(), "alice".into()], 1, 1, 1_000);
        }
        let rendered = metrics.render();
        let series = rendered.lines().filter(|l| l.starts_with("cdrchain_partner_calls_total{")).count();
        assert_eq!(series, MAX_PARTNER_DIRECTIONS + 1, "the others under one series");
        let other = "cdrchain_partner_calls_total{from=\"other\",to=\"other\",recorder=\"other\"} 5";
        assert!(rendered.lines().any(|l| l == other), "{other}");
    }

    #[test]
    fn the_shipped_rules_and_dashboard_use_only_metrics_the_node_exports(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let metrics = Metrics::new();
        metrics.count_as_written("sbc-1", 1);
        metrics.count_ingested("sbc-1", 3, 1);
        metrics.count_admission_refusal("queue full");
        let dave = OperatorId::new("dave")?;
        let unsigned = CommitCertificate {
            height: cdrchain_runtime::ids::Height(1),
            round: Default::default(),
            block_hash: Default::default(),
            signatures: Default::default(),
        };
        metrics.on_certificate(&[&dave], &unsigned);
        metrics.on_sequence_gap(&dave, 3);
        metrics.count_traffic(["alice".into(), "bob".into(), "alice".into()], 4, 3, 90_500);
        metrics.on_commit(1, 1);
        let rendered = metrics.render();
        for line in [
            "cdrchain_ingest_cdrs_total{system_id=\"sbc-1\",outcome=\"accepted\"} 3",
            "cdrchain_ingest_cdrs_total{system_id=\"sbc-1\",outcome=\"duplicate\"} 1",
            "cdrchain_ingest_admission_refusals_total{reason=\"queue full\"} 1",
            "cdrchain_validator_missed_precommits_total{validator=\"dave\"} 1",
            "cdrchain_sequence_gap_cdrs_total{operator=\"dave\"} 3",
            "cdrchain_partner_calls_total{from=\"alice\",to=\"bob\",recorder=\"alice\"} 4",
            "cdrchain_partner_answered_calls_total{from=\"alice\",to=\"bob\",recorder=\"alice\"} 3",
            "cdrchain_partner_billable_seconds_total{from=\"alice\",to=\"bob\",recorder=\"alice\"} 90.5",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line} in {rendered}");
        }
        let exported: std::collections::BTreeSet<String> = rendered
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        let shipped = [
            ("monitoring/cdrchain-rules.yml", include_str!("../../monitoring/cdrchain-rules.yml")),
            ("monitoring/grafana-cdrchain.json", include_str!("../../monitoring/grafana-cdrchain.json")),
        ];
        for (file, text) in shipped {
            let used = names_in(text);
            assert!(used.len() >= 5, "{file} uses {used:?}");
            for name in used {
                assert!(
                    exported.contains(&name),
                    "{file} uses `{name}`, which the node does not export: {exported:?}"
                );
            }
        }
        // The per-source metric's label, as the rule and the dashboard name it.
        assert!(
            rendered.contains("cdrchain_ingest_parties_as_written_total{system_id=\"sbc-1\"}"),
            "{rendered}"
        );
        Ok(())
    }
}
