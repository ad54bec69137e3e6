//! Reconciliation in the browser: the user's own CDR export (any ingest format) is read and its
//! parties hashed **in the page**, with the code `cdrchain reconcile` runs (`cdrchain_formats::
//! file`, `cdrchain_runtime::reconcile`); the page fetches the chain's records of the pair for
//! the window the file spans and hands them back here. The export never leaves the browser.
//!
//! Two calls, both JSON in and out: [`export_text`] reads the file (how many records, which do
//! not read, the window of the calls with the partner) and [`reconcile_text`] compares it with the
//! chain's records (the report, its CSV, and the totals per direction).

use std::cell::RefCell;
use std::rc::Rc;

use cdrchain_formats::file::{self, FileFormat};
use cdrchain_formats::Context;
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::hash::{hash_with, Hash32};
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::party::PartyHasher;
use cdrchain_runtime::reconcile::{from_node_answer, reconcile, window_of};
use serde_json::{json, Value};

/// Start times and durations within this many seconds agree, unless the user says otherwise
/// (as `cdrchain reconcile --tolerance-s`).
pub const DEFAULT_TOLERANCE_S: u64 = 2;

/// What the page passes with the file.
struct Options {
    me: OperatorId,
    partner: OperatorId,
    hasher: PartyHasher,
    format: FileFormat,
    timezone: Option<chrono_tz::Tz>,
    system_id: Option<String>,
    tolerance_ms: u64,
    window: Option<(u64, u64)>,
}

/// Reads `{secret, region, me, partner, format, file_name, timezone, system_id, tolerance_s,
/// from, to}` (`format` empty: told from `file_name`; `from`/`to` in ms, both or neither).
fn options(text: &str) -> Result<Options, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("not a reconciliation request: {e}"))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::trim).unwrap_or_default();
    let operator =
        |name: &str| OperatorId::new(field(name)).map_err(|e| format!("{name} {:?}: {e}", field(name)));
    let (me, partner) = (operator("me")?, operator("partner")?);
    if me == partner {
        return Err(format!("the partner is `{partner}`, which is you: name the other operator"));
    }
    let secret = value.get("secret").and_then(Value::as_str).unwrap_or_default();
    if secret.is_empty() {
        return Err("the consortium secret is empty: the file's parties are hashed with it".into());
    }
    let region = Some(field("region")).filter(|r| !r.is_empty());
    let hasher = PartyHasher::new(secret.as_bytes(), region).map_err(|e| e.to_string())?.with_memo(100_000);
    let format = match field("format") {
        "" => FileFormat::from_file_name(field("file_name")).ok_or_else(|| {
            format!("cannot tell the format of {:?} from its name: choose it", field("file_name"))
        })?,
        name => FileFormat::named(name).ok_or_else(|| format!("no format named {name:?}"))?,
    };
    let timezone = match field("timezone") {
        "" => None,
        zone => Some(zone.parse::<chrono_tz::Tz>().map_err(|e| format!("time zone {zone:?}: {e}"))?),
    };
    let system_id = Some(field("system_id")).filter(|s| !s.is_empty()).map(str::to_string);
    let tolerance_s = value.get("tolerance_s").and_then(Value::as_u64).unwrap_or(DEFAULT_TOLERANCE_S);
    let window = match (value.get("from").and_then(Value::as_u64), value.get("to").and_then(Value::as_u64)) {
        (Some(from), Some(to)) if from < to => Some((from, to)),
        (Some(from), Some(to)) => return Err(format!("the window [{from}, {to}) ms is empty")),
        _ => None,
    };
    let tolerance_ms = tolerance_s.saturating_mul(1_000);
    Ok(Options { me, partner, hasher, format, timezone, system_id, tolerance_ms, window })
}

/// The user's CDRs read from a file, and the lines that did not read.
type Mine = Rc<(Vec<Cdr>, Vec<String>)>;

thread_local! {
    /// The last file read, by the digest of its request and bytes: the page reads a file
    /// ([`export_text`]), fetches the chain's records for its window, then reconciles the same
    /// file with the same request ([`reconcile_text`]). Its parties, the costly part, are
    /// normalized and hashed once.
    static LAST: RefCell<Option<(Hash32, Mine)>> = const { RefCell::new(None) };
}

/// Context of the digest that recognizes a file read again.
const LAST_READ_CONTEXT: &str = "cdrchain 2026-12 portal reconciliation file v1";

/// The file's records as the user's CDRs, and the lines that did not read (read once per
/// request and file: [`LAST`]).
fn mine(options_text: &str, options: &Options, file: &[u8]) -> Result<Mine, String> {
    let key = hash_with(
        LAST_READ_CONTEXT,
        &[&(options_text.len() as u64).to_le_bytes(), options_text.as_bytes(), file],
    );
    if let Some(mine) =
        LAST.with_borrow(|last| last.as_ref().filter(|(k, _)| *k == key).map(|(_, m)| m.clone()))
    {
        return Ok(mine);
    }
    let ctx = Context { operator: options.me.to_string(), system_id: options.system_id.clone() };
    let contents = file::read(file, options.format, &ctx, options.timezone).map_err(|e| e.to_string())?;
    let (cdrs, unreadable) = file::hashed(contents.records, &options.me, &options.hasher);
    let unreadable = contents.errors.iter().chain(&unreadable).map(ToString::to_string).collect();
    let mine = Rc::new((cdrs, unreadable));
    LAST.set(Some((key, mine.clone())));
    Ok(mine)
}

/// The window compared: the user's, else the file's calls with the partner.
fn window(options: &Options, mine: &[Cdr]) -> Result<(u64, u64), String> {
    options.window.or_else(|| window_of(mine, &options.partner)).ok_or_else(|| {
        format!("the file holds no call between {} and {}: give the period", options.me, options.partner)
    })
}

/// Reads the export: `{records, unreadable: [..], from, to, fetch_from, fetch_to}`, where
/// `fetch_*` is the window widened by the tolerance (the chain records to fetch), or `{error}`.
pub fn export_text(options_text: &str, file: &[u8]) -> Value {
    let result = options(options_text).and_then(|options| {
        let mine = mine(options_text, &options, file)?;
        let (cdrs, unreadable) = &*mine;
        let (from, to) = window(&options, cdrs)?;
        Ok(json!({
            "records": cdrs.len(),
            "unreadable": unreadable,
            "from": from,
            "to": to,
            "fetch_from": from.saturating_sub(options.tolerance_ms),
            "fetch_to": to.saturating_add(options.tolerance_ms),
        }))
    });
    result.unwrap_or_else(|error| json!({ "error": error }))
}

/// Reconciles the export with `chain` (a JSON array of the CDRs `cdr_query` answered for the
/// fetch window): `{report, csv, unreadable, parties_differ_everywhere}` (the report as `cdrchain reconcile --json` writes
/// it, the CSV as `--csv`), or `{error}`.
pub fn reconcile_text(options_text: &str, file: &[u8], chain: &str) -> Value {
    let result = options(options_text).and_then(|options| {
        let mine = mine(options_text, &options, file)?;
        let (cdrs, unreadable) = &*mine;
        let window = window(&options, cdrs)?;
        let chain: Vec<Value> = serde_json::from_str(chain)
            .map_err(|e| format!("the chain's records are not a JSON array: {e}"))?;
        let chain = chain
            .into_iter()
            .map(from_node_answer)
            .collect::<Result<Vec<Cdr>, _>>()
            .map_err(|e| format!("the node answered a record that does not read: {e}"))?;
        let report = reconcile(&options.me, &options.partner, cdrs, &chain, options.tolerance_ms, window);
        let csv = cdrchain_formats::reconciliation::report_csv(&report).map_err(|e| e.to_string())?;
        Ok(json!({
            "parties_differ_everywhere": report.parties_differ_everywhere(),
            "report": report,
            "csv": String::from_utf8_lossy(&csv),
            "unreadable": unreadable,
        }))
    });
    result.unwrap_or_else(|error| json!({ "error": error }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::ids::Sequence;
    use cdrchain_runtime::input::CdrInput;

    const SECRET: &str = "the consortium's secret";

    fn call(n: u64) -> Value {
        let start = 1_795_000_000_000u64 + n * 60_000;
        json!({
            "call_id": format!("call-{n}@test.invalid"), "caller": format!("+4420794600{n:02}"),
            "callee": "+33142685300", "caller_operator": "alice", "callee_operator": "bob",
            "system_id": "sbc", "start": start, "answer": start + 2_000, "end": start + 32_000,
            "disposition": "answered",
        })
    }

    /// The chain's record of `call`, as `cdr_query` answers it.
    fn on_chain(call: &Value, sequence: u64) -> Value {
        let hasher = PartyHasher::new(SECRET.as_bytes(), None).unwrap();
        let body = CdrInput::from_value(call.clone()).unwrap().to_body(&hasher).unwrap();
        let cdr = Cdr { recorder: OperatorId::new("alice").unwrap(), sequence: Sequence(sequence), body };
        let mut value = serde_json::to_value(cdr).unwrap();
        value["id"] = json!(format!("alice:{sequence}"));
        value["height"] = json!(1);
        value["leaf_index"] = json!(sequence);
        value
    }

    #[test]
    fn an_export_is_read_and_reconciled_with_the_chain_records() {
        let chain: Vec<Value> = (0..5).map(|n| on_chain(&call(n), n)).collect();
        let mut mine: Vec<Value> = [0, 1, 3, 4].iter().map(|&n| call(n)).collect();
        mine[1]["end"] = json!(mine[1]["end"].as_u64().unwrap() + 60_000);
        let file: String = mine.iter().map(|c| format!("{c}\n")).collect();
        let options =
            json!({ "secret": SECRET, "me": "alice", "partner": "bob", "file_name": "mine.ndjson" })
                .to_string();

        let summary = export_text(&options, file.as_bytes());
        assert_eq!(summary["records"], 4, "{summary}");
        assert_eq!(summary["from"], 1_795_000_000_000u64);
        assert_eq!(summary["fetch_to"], 1_795_000_000_000u64 + 4 * 60_000 + 1 + 2_000);

        let chain = Value::Array(chain).to_string();
        let result = reconcile_text(&options, file.as_bytes(), &chain);
        let report = &result["report"];
        assert_eq!(report["matched"], 3, "{result}");
        assert_eq!(result["parties_differ_everywhere"], false);
        assert_eq!(report["mismatched"][0]["id"], "alice:1");
        assert_eq!(report["mismatched"][0]["differences"][0]["field"], "duration");
        assert_eq!(report["missing_in_file"][0]["id"], "alice:2");
        let csv = result["csv"].as_str().unwrap();
        assert!(csv.starts_with("kind,line,chain_id,call_id,field,mine,chain\n"), "{csv}");
        assert!(csv.contains("mismatched,2,alice:1,call-1@test.invalid,duration,"), "{csv}");
        assert!(csv.contains("missing-in-file,,alice:2,call-2@test.invalid,,,\n"), "{csv}");

        for (options, error) in [
            (
                json!({ "secret": SECRET, "me": "alice", "partner": "alice", "file_name": "a.ndjson" }),
                "which is you",
            ),
            (
                json!({ "secret": "", "me": "alice", "partner": "bob", "file_name": "a.ndjson" }),
                "secret is empty",
            ),
            (
                json!({ "secret": SECRET, "me": "alice", "partner": "bob", "file_name": "acc.log" }),
                "cannot tell the format",
            ),
            (
                json!({ "secret": SECRET, "me": "alice", "partner": "carol", "file_name": "a.ndjson" }),
                "no call between",
            ),
        ] {
            let got = export_text(&options.to_string(), file.as_bytes());
            assert!(got["error"].as_str().is_some_and(|e| e.contains(error)), "{options}: {got}");
        }
        // Another file, or another secret, is read again (not the last file's reading).
        let fewer: String = mine[..2].iter().map(|c| format!("{c}\n")).collect();
        assert_eq!(export_text(&options, fewer.as_bytes())["records"], 2);
        let wrong_secret =
            json!({ "secret": "not the consortium secret", "me": "alice", "partner": "bob", "file_name": "mine.ndjson" })
                .to_string();
        let result = reconcile_text(&wrong_secret, file.as_bytes(), &chain);
        assert_eq!(result["report"]["matched"], 0, "{result}");
        assert_eq!(result["parties_differ_everywhere"], true, "{result}");
        let broken = reconcile_text(&options, file.as_bytes(), "[{\"not\": \"a cdr\"}]");
        assert!(broken["error"].as_str().is_some_and(|e| e.contains("does not read")), "{broken}");
    }
}
