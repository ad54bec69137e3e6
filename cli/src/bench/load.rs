//! The HTTP load generator of the `dev` and `localnet` suites.
//!
//! `--connections` connections post NDJSON batches of synthetic CDRs to the validators'
//! `/ingest/cdrs`, round robin (validator i is the i-th dev account), either as fast as they are
//! answered or paced to `--rate`. A latency probe beside them submits one CDR at a time through
//! JSON-RPC and times it until it is committed. When the offer ends, the run waits until every
//! acknowledged CDR is committed: the committed rate is measured to that moment.
//!
//! The JSON-RPC methods the generator calls are each called in one function here
//! ([`peer_count`], [`submit_lines`], [`cdr_status`]).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::procfs::{dir_size, Procs};
use super::{quantile, Args};
use crate::rpc_client::{busy_retry_after, RpcClient};
use cdrchain_node::rpc::api::{CdrApiClient, SystemApiClient};

/// The operators of the validators, in order: the dev node is alice, the localnet's validator i
/// the i-th. An ingest answer's ids are `operator:sequence`.
const OPERATORS: [&str; 4] = ["alice", "bob", "charlie", "dave"];

/// The start of synthetic call 0, in ms since the epoch (call n starts n ms later).
pub(super) const SYNTHETIC_EPOCH_MS: u64 = 1_795_000_000_000;
/// When a synthetic call is answered, after its start.
const SYNTHETIC_RING_MS: u64 = 2_000;
/// When a synthetic call ends, after its start.
pub(super) const SYNTHETIC_CALL_MS: u64 = 62_000;
/// About the bytes of one synthetic CDR as NDJSON (to size the body's buffer).
const NDJSON_LINE_BYTES: usize = 300;

/// How long a connection (or the probe) keeps offering one batch to a node that answers "busy"
/// (waiting each time the `Retry-After` the node gave): as long as the probe waits for a CDR to
/// commit. Longer means the node is stuck. Paced load gives a refused batch up at the end of
/// the offer instead (the excess a node refuses is not part of what it committed).
const BUSY_PATIENCE: Duration = PROBE_PATIENCE;

/// Paced load sends about this many requests per second per connection (each waits for its
/// fsync), so that a low rate is not a few big bursts.
const PACED_REQUESTS_PER_CONNECTION_S: u64 = 4;
/// The fewest CDRs in a paced request, however low the rate.
const MIN_PACED_BATCH_CDRS: u64 = 10;

/// The probe submits one CDR this often.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often the probe asks whether its CDR is committed.
const PROBE_POLL: Duration = Duration::from_millis(10);
/// At most this many probes wait at once, so that the probe's own polling stays a small load
/// when latency grows.
const MAX_OUTSTANDING_PROBES: usize = 20;
/// A probe CDR not committed in this long fails the run.
const PROBE_PATIENCE: Duration = Duration::from_secs(300);

/// The sweep's paced steps, as fractions of the ceiling it measured first: below, at, and twice
/// the ceiling (where admission must refuse the excess and keep the latency of what it takes).
const SWEEP_FRACTIONS: [f64; 4] = [0.25, 0.5, 1.0, 2.0];

/// How often the final wait asks whether a validator's last acknowledged CDR is committed.
const COMMIT_POLL: Duration = Duration::from_millis(20);
/// The final wait gives up `COMMIT_PATIENCE_PER_LOAD_S` seconds per second of `--duration` plus
/// `COMMIT_PATIENCE_EXTRA` after the start of the offer.
const COMMIT_PATIENCE_PER_LOAD_S: u64 = 10;
const COMMIT_PATIENCE_EXTRA: Duration = Duration::from_secs(120);

/// A validator the generator loads: its RPC URL, and the bearer token it wants (a node reached
/// beyond loopback, `bench localnet --attach`).
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) url: String,
    pub(super) token: Option<String>,
}

impl Target {
    /// A node on loopback (no token).
    pub(super) fn local(url: String) -> Target {
        Target { url, token: None }
    }

    pub(super) fn client(&self) -> anyhow::Result<RpcClient> {
        RpcClient::new(&self.url, self.token.clone())
    }
}

/// Counts shared by the connections of one load run.
#[derive(Default)]
struct Tally {
    /// Per validator: CDRs acknowledged (durable).
    acked: Vec<AtomicU64>,
    /// Per validator: the highest sequence number acknowledged.
    highest: Vec<AtomicU64>,
    /// Requests answered 503 (queue full) and sent again.
    busy: AtomicU64,
    /// Paced load: CDRs given up, because the node still refused them when the offer ended, or
    /// not sent while the node had asked their connection to wait (Retry-After).
    shed: AtomicU64,
}

/// How each connection offers its load.
#[derive(Clone, Copy)]
struct Offer {
    /// CDRs per request.
    batch_cdrs: u64,
    /// With `--rate`: one request every this long; otherwise the next when the last is answered.
    interval: Option<Duration>,
    /// When the offer ends.
    deadline: Instant,
}

/// Offers load to the validators at `urls` (validator i is the i-th dev account) for
/// `--duration`, paced by `rate` if given, with a latency probe beside it; then waits until the
/// highest sequence acknowledged at each validator is committed. `next` numbers the synthetic
/// CDRs across runs.
pub(super) async fn load(
    suite: &str,
    urls: &[Target],
    args: &Args,
    rate: Option<u64>,
    next: &Arc<AtomicU64>,
    procs: &Procs,
) -> anyhow::Result<Value> {
    let before = procs.sample();
    let tally = Arc::new(Tally {
        acked: urls.iter().map(|_| AtomicU64::new(0)).collect(),
        highest: urls.iter().map(|_| AtomicU64::new(0)).collect(),
        busy: AtomicU64::new(0),
        shed: AtomicU64::new(0),
    });
    let started = Instant::now();
    let connections = args.connections.max(1) as u64;
    let batch_cdrs = match rate {
        Some(rate) => (rate / (connections * PACED_REQUESTS_PER_CONNECTION_S))
            .clamp(MIN_PACED_BATCH_CDRS, args.batch.max(1) as u64),
        None => args.batch.max(1) as u64,
    };
    let offer = Offer {
        batch_cdrs,
        // With --rate, each connection sends one batch every `interval`.
        interval: rate
            .filter(|r| *r > 0)
            .map(|rate| Duration::from_secs_f64(batch_cdrs as f64 * connections as f64 / rate as f64)),
        deadline: started + Duration::from_secs(args.duration),
    };
    let mut tasks = Vec::new();
    for c in 0..args.connections.max(1) {
        let node = c % urls.len();
        tasks.push(tokio::spawn(connection(urls[node].clone(), node, offer, next.clone(), tally.clone())));
    }
    let probe = tokio::spawn(probe(urls.to_vec(), next.clone(), offer.deadline));
    for task in tasks {
        task.await.context("load task")??;
    }
    let (mut latencies, mut after_ack): (Vec<f64>, Vec<f64>) =
        probe.await.context("probe task")??.into_iter().unzip();
    let offered_seconds = started.elapsed().as_secs_f64();
    let patience = Duration::from_secs(args.duration * COMMIT_PATIENCE_PER_LOAD_S) + COMMIT_PATIENCE_EXTRA;
    let total = wait_committed(urls, &tally, started + patience).await?;
    let committed_seconds = started.elapsed().as_secs_f64();
    let after = procs.sample();
    latencies.sort_by(f64::total_cmp);
    after_ack.sort_by(f64::total_cmp);
    Ok(json!({
        "suite": suite,
        "validators": urls.len(),
        "offered_cdrs_per_s": rate.map_or(json!("unbounded"), |r| json!(r)),
        "connections": args.connections,
        "cdrs_per_request": batch_cdrs,
        "acknowledged_cdrs": total,
        "max_queue_per_node": args.max_queue,
        "requests_refused_busy": tally.busy.load(Ordering::Relaxed),
        "cdrs_shed_refused": tally.shed.load(Ordering::Relaxed),
        "acknowledged_cdrs_per_s": (total as f64 / offered_seconds).round(),
        "committed_cdrs_per_s": (total as f64 / committed_seconds).round(),
        "seconds_until_all_committed": (committed_seconds * 100.0).round() / 100.0,
        "latency_probes": latencies.len(),
        "latency_ms_p50": quantile(&latencies, 0.50),
        "latency_ms_p99": quantile(&latencies, 0.99),
        "latency_ms_max": quantile(&latencies, 1.0),
        "latency_after_ack_ms_p50": quantile(&after_ack, 0.50),
        "latency_after_ack_ms_p99": quantile(&after_ack, 0.99),
        "cpu_percent_per_node": Procs::cpu_percent(&before, &after, committed_seconds),
        "rss_mib_per_node": after.iter().map(|p| p.rss_kib / 1024).collect::<Vec<_>>(),
        "peak_rss_mib_per_node": after.iter().map(|p| p.peak_kib / 1024).collect::<Vec<_>>(),
        "bytes_on_disk_per_cdr": (dir_size(&procs.base) as f64 / next.load(Ordering::Relaxed).max(1) as f64).round(),
    }))
}

/// One run (`--rate` or unbounded), or with `--sweep` the ceiling and then 25%, 50% and
/// 100% of it: `{"steps": [...], ...the ceiling's figures}`.
pub(super) async fn run_suite(
    suite: &str,
    urls: &[Target],
    args: &Args,
    procs: &Procs,
) -> anyhow::Result<Value> {
    let next = Arc::new(AtomicU64::new(0));
    if !args.sweep {
        return load(suite, urls, args, args.rate, &next, procs).await;
    }
    let ceiling = load(suite, urls, args, None, &next, procs).await?;
    eprintln!("{suite}: unbounded: {ceiling}");
    let rate = ceiling["committed_cdrs_per_s"].as_f64().context("no committed rate")?;
    let mut steps = vec![ceiling.clone()];
    for fraction in SWEEP_FRACTIONS {
        let offered = (rate * fraction).round().max(1.0) as u64;
        let step = load(suite, urls, args, Some(offered), &next, procs).await?;
        eprintln!("{suite}: offered {offered}/s: {step}");
        steps.push(step);
    }
    let mut figures = ceiling;
    figures["steps"] = Value::Array(steps);
    Ok(figures)
}

/// One connection to validator `node` at `url`: batches of new CDRs until the offer's deadline.
async fn connection(
    target: Target,
    node: usize,
    offer: Offer,
    next: Arc<AtomicU64>,
    tally: Arc<Tally>,
) -> anyhow::Result<()> {
    let client = Arc::new(target.client()?);
    let url = target.url;
    let mut due = Instant::now();
    // Until when the node asked this connection to wait (its last Retry-After).
    let backoff = Arc::new(std::sync::Mutex::new(Instant::now()));
    // Paced requests do not wait for each other (the offered rate must not depend on the answer
    // time); unbounded load sends the next when the last is answered.
    let mut paced = tokio::task::JoinSet::new();
    while Instant::now() < offer.deadline {
        if let Some(interval) = offer.interval {
            tokio::time::sleep_until(due.into()).await;
            due += interval;
            // A switch told to come back later sends nothing new meanwhile: this tick's CDRs
            // are shed (a real switch keeps them), not generated and posted to be refused.
            let waiting = *backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if Instant::now() < waiting {
                tally.shed.fetch_add(offer.batch_cdrs, Ordering::Relaxed);
                continue;
            }
        }
        let first = next.fetch_add(offer.batch_cdrs, Ordering::Relaxed);
        // Paced load gives a refused batch up when the offer ends; unbounded load waits for room.
        let give_up = offer.interval.map(|_| offer.deadline);
        let request = send_batch(
            Post { client: client.clone(), url: url.clone(), backoff: backoff.clone(), give_up },
            node,
            first..first + offer.batch_cdrs,
            tally.clone(),
        );
        match offer.interval {
            Some(_) => {
                paced.spawn(request);
            }
            None => request.await?,
        }
    }
    while let Some(result) = paced.join_next().await {
        result.context("a paced request")??;
    }
    Ok(())
}

/// Where and how a connection posts: its node, until when that node asked it to wait, and when
/// a paced batch still refused is given up.
struct Post {
    client: Arc<RpcClient>,
    url: String,
    backoff: Arc<std::sync::Mutex<Instant>>,
    give_up: Option<Instant>,
}

/// One request: the new CDRs `cdrs` as one batch, counted once acknowledged (durable), or as
/// shed if the node still refused it at `give_up`.
async fn send_batch(post: Post, node: usize, cdrs: Range<u64>, tally: Arc<Tally>) -> anyhow::Result<()> {
    let count = cdrs.end - cdrs.start;
    // Shared, so that a re-offer does not copy the batch.
    let body = hyper::body::Bytes::from(ndjson(cdrs));
    let Some((status, answer)) = post_ingest(&post, body, &tally.busy).await? else {
        tally.shed.fetch_add(count, Ordering::Relaxed);
        return Ok(());
    };
    if status != 200 {
        bail!("ingest at {} answered {status}: {}", post.url, String::from_utf8_lossy(&answer));
    }
    tally.acked[node].fetch_add(count, Ordering::Relaxed);
    // The highest sequence number acknowledged: "operator:sequence".
    // Typed and borrowed: the generator shares the machine with the nodes.
    let answer: Acknowledged<'_> = serde_json::from_slice(&answer).context("ingest answer")?;
    let last = answer.ids.last().copied().unwrap_or("");
    if let Some(seq) = last.rsplit(':').next().and_then(|s| s.parse::<u64>().ok()) {
        tally.highest[node].fetch_max(seq, Ordering::Relaxed);
    }
    Ok(())
}

/// Posts `body` to `/ingest/cdrs`. While the node answers 503 because the chain is behind,
/// offers the same batch again after the `Retry-After` it gave (counted in `busy`; the
/// connection sends nothing new until then), for at most `BUSY_PATIENCE`, or until the post's
/// `give_up` (then `None`). Returns the first other answer.
async fn post_ingest(
    post: &Post,
    body: hyper::body::Bytes,
    busy: &AtomicU64,
) -> anyhow::Result<Option<(u16, Vec<u8>)>> {
    let started = Instant::now();
    loop {
        let (status, answer) = post.client.post("/ingest/cdrs", body.clone()).await?;
        let Some(retry_after) = (status == 503).then(|| retry_after(&answer)).flatten() else {
            return Ok(Some((status, answer)));
        };
        busy.fetch_add(1, Ordering::Relaxed);
        let again = Instant::now() + retry_after;
        {
            let mut backoff = post.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *backoff = (*backoff).max(again);
        }
        if post.give_up.is_some_and(|end| again >= end) {
            return Ok(None);
        }
        if started.elapsed() > BUSY_PATIENCE {
            bail!(
                "ingest at {} refused a batch for {} s: its queue stays full",
                post.url,
                BUSY_PATIENCE.as_secs()
            );
        }
        tokio::time::sleep_until(again.into()).await;
    }
}

/// The latency probe: every `PROBE_INTERVAL` one CDR, round robin over the validators, timed from
/// submit until it is committed, until `deadline`; at most `MAX_OUTSTANDING_PROBES` overlap.
/// Returns the latencies in ms: from the first attempt, and from the acknowledgement.
async fn probe(
    urls: Vec<Target>,
    next: Arc<AtomicU64>,
    deadline: Instant,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut probes = Vec::new();
    let mut i = 0usize;
    let outstanding = Arc::new(tokio::sync::Semaphore::new(MAX_OUTSTANDING_PROBES));
    while Instant::now() < deadline {
        let url = urls[i % urls.len()].clone();
        i += 1;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            tokio::time::sleep(PROBE_INTERVAL).await;
            continue;
        };
        let n = next.clone();
        probes.push(tokio::spawn(async move {
            let _permit = permit;
            probe_one(&url, &n).await
        }));
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    let mut latencies = Vec::with_capacity(probes.len());
    for probe in probes {
        latencies.push(probe.await.context("probe")??);
    }
    Ok(latencies)
}

/// Submits one new CDR to `url` and waits until it is committed. Two latencies in ms: from the
/// first attempt (a refusal because the chain is behind is part of what a sender waits; the
/// probe waits the `Retry-After` given), and from the acknowledgement (what the node promised).
async fn probe_one(target: &Target, next: &AtomicU64) -> anyhow::Result<(f64, f64)> {
    let client = target.client()?;
    let url = &target.url;
    let n = next.fetch_add(1, Ordering::Relaxed);
    let line: Value = serde_json::from_str(&ndjson(n..n + 1))?;
    let sent = Instant::now();
    let ids = loop {
        match submit_lines(&client, std::slice::from_ref(&line)).await? {
            Ok(ids) => break ids,
            Err(retry_after) if sent.elapsed() < BUSY_PATIENCE => tokio::time::sleep(retry_after).await,
            Err(_) => {
                bail!("{url} refused the probe CDR for {} s: its queue stays full", BUSY_PATIENCE.as_secs())
            }
        }
    };
    let acknowledged = Instant::now();
    let id = ids.first().context("cdr_submit returned no id")?;
    while cdr_status(&client, id).await? != "committed" {
        if sent.elapsed() > PROBE_PATIENCE {
            bail!("probe CDR {id} not committed in {} s", PROBE_PATIENCE.as_secs());
        }
        tokio::time::sleep(PROBE_POLL).await;
    }
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
    Ok((ms(sent), ms(acknowledged)))
}

/// Every acknowledged load CDR is committed once the highest sequence acknowledged at each
/// validator is (sequences commit in order): waits for that until `deadline`. Returns the CDRs
/// acknowledged in all.
async fn wait_committed(urls: &[Target], tally: &Tally, deadline: Instant) -> anyhow::Result<u64> {
    let mut total = 0;
    for (node, target) in urls.iter().enumerate() {
        let client = target.client()?;
        let count = tally.acked[node].load(Ordering::Relaxed);
        total += count;
        if count == 0 {
            continue;
        }
        loop {
            let last = format!("{}:{}", OPERATORS[node], tally.highest[node].load(Ordering::Relaxed));
            let status = cdr_status(&client, &last).await?;
            if status == "committed" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{last} was not committed in time: {status}");
            }
            tokio::time::sleep(COMMIT_POLL).await;
        }
    }
    Ok(total)
}

/// JSON-RPC `system_health`: how many peers the node has (`None` when it does not answer).
pub(super) async fn peer_count(client: &RpcClient) -> Option<u64> {
    let health = client.ask(client.api().health()).await.ok()?;
    u64::try_from(health.peers).ok()
}

/// JSON-RPC `cdr_submit` of `lines` (CDRs as JSON): their ids, or how long to wait when the
/// node refused them because the chain is behind.
async fn submit_lines(client: &RpcClient, lines: &[Value]) -> anyhow::Result<Result<Vec<String>, Duration>> {
    match client.ask(client.api().submit(lines.to_vec())).await {
        Ok(ids) => Ok(Ok(ids)),
        Err(e) => busy_retry_after(&e).map(Err).ok_or(e),
    }
}

/// JSON-RPC `cdr_status` of the CDR `id` (`operator:sequence`): its status, `committed` once it
/// is in a committed block.
async fn cdr_status(client: &RpcClient, id: &str) -> anyhow::Result<String> {
    let status = client.ask(client.api().cdr_status(id.to_string())).await?;
    Ok(status["status"].as_str().map_or_else(|| status.to_string(), str::to_string))
}

/// The ids an ingest answer acknowledges (the rest of the answer is not needed here).
#[derive(serde::Deserialize)]
struct Acknowledged<'a> {
    #[serde(borrow)]
    ids: Vec<&'a str>,
}

/// Synthetic CDRs `range` as one NDJSON body, written into one buffer.
fn ndjson(range: std::ops::Range<u64>) -> String {
    let mut body = String::with_capacity(NDJSON_LINE_BYTES * range.clone().count());
    for n in range {
        if !body.is_empty() {
            body.push('\n');
        }
        write_cdr_line(&mut body, n);
    }
    body
}

/// One synthetic CDR as NDJSON; `n` makes it unique.
fn write_cdr_line(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    let start = SYNTHETIC_EPOCH_MS + n;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        concat!(
            r#"{{"call_id":"bench-{n}@load.invalid","caller":"+4420794{p:05}","callee":"+1415555{q:04}","#,
            r#""caller_operator":"alice","callee_operator":"bob","start":{s},"answer":{a},"end":{e},"#,
            r#""disposition":"answered","q850_cause":16,"sip_status":200}}"#
        ),
        n = n,
        p = n % 100_000,
        q = n % 10_000,
        s = start,
        a = start + SYNTHETIC_RING_MS,
        e = start + SYNTHETIC_CALL_MS,
    );
}

/// When an ingest answer says the chain is behind (a 503 with `retry_after_s`): how long to
/// wait before sending again.
fn retry_after(answer: &[u8]) -> Option<Duration> {
    let seconds = serde_json::from_slice::<Value>(answer).ok()?["retry_after_s"].as_u64()?;
    Some(Duration::from_secs(seconds))
}
