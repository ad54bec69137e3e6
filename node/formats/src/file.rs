//! Whole files in any ingest format, read into canonical records: what `cdrchain submit` and
//! `cdrchain reconcile` read from disk, and what the partner portal reads in the browser (the
//! same code, compiled to WebAssembly), so that an export reads alike everywhere.
//!
//! Pure, as the adapters are: bytes in, records out. Canonical records are kept as JSON values
//! (the node, or the caller, validates them); an adapter's records are its [`CdrInput`]s as JSON.

use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::ids::{OperatorId, Sequence};
use cdrchain_runtime::party::PartyHasher;
use serde_json::Value;

use crate::{
    asterisk, canonical, freeswitch, kamailio, opensips, CdrInput, Context, FormatError, Outcome, RecordError,
};

/// A file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Canonical CDRs: a JSON array or one object.
    Json,
    /// Canonical CDRs, one JSON object per line.
    Ndjson,
    /// Canonical CDRs as CSV with the canonical field names as header.
    Csv,
    /// FreeSWITCH mod_json_cdr documents (one per file, or one per line).
    FreeswitchJson,
    /// Kamailio acc_json documents (NDJSON).
    KamailioJson,
    /// Kamailio acc and dialog-CDR log lines.
    KamailioAcc,
    /// Asterisk cdr_csv Master.csv; needs a time zone.
    AsteriskCsv,
    /// OpenSIPS acc log lines.
    OpensipsAcc,
}

impl FileFormat {
    /// Every format with its name (as `cdrchain submit --format` spells it) and what it is (the
    /// command line's help).
    pub const ALL: [(FileFormat, &'static str, &'static str); 8] = [
        (FileFormat::Json, "json", "Canonical CDRs: a JSON array or one object"),
        (FileFormat::Ndjson, "ndjson", "Canonical CDRs, one JSON object per line"),
        (FileFormat::Csv, "csv", "Canonical CDRs as CSV with the canonical field names as header"),
        (
            FileFormat::FreeswitchJson,
            "freeswitch-json",
            "FreeSWITCH mod_json_cdr documents (one per file, or an NDJSON file of them): e.g. the files \
             FreeSWITCH left in its err-log-dir",
        ),
        (FileFormat::KamailioJson, "kamailio-json", "Kamailio acc_json documents (NDJSON)"),
        (FileFormat::KamailioAcc, "kamailio-acc", "Kamailio acc and dialog-CDR log lines (syslog or stderr)"),
        (
            FileFormat::AsteriskCsv,
            "asterisk-csv",
            "Asterisk cdr_csv Master.csv (16, 18 or 21 columns); needs --timezone",
        ),
        (FileFormat::OpensipsAcc, "opensips-acc", "OpenSIPS acc log lines (syslog)"),
    ];

    /// The format named `name` (see [`FileFormat::ALL`]).
    pub fn named(name: &str) -> Option<FileFormat> {
        FileFormat::ALL.iter().find(|(_, n, _)| *n == name).map(|(f, _, _)| *f)
    }

    /// Whether the format is a switch's own (read by an adapter), not the canonical CDR.
    pub fn is_adapter(self) -> bool {
        !matches!(self, FileFormat::Json | FileFormat::Ndjson | FileFormat::Csv)
    }

    /// The canonical format a file name's extension says (`.json`, `.ndjson`/`.jsonl`, `.csv`);
    /// a switch's own format cannot be told from its name.
    pub fn from_file_name(name: &str) -> Option<FileFormat> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(FileFormat::Json),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }
}

/// One record of a file, as canonical JSON, with the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq)]
pub struct FileRecord {
    pub value: Value,
    pub line: usize,
}

/// What a file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileContents {
    pub records: Vec<FileRecord>,
    /// Records that could not be read, each with line, field and reason.
    pub errors: Vec<RecordError>,
    /// Records skipped on purpose (not call records).
    pub skipped: usize,
}

/// Why a whole file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not UTF-8 text")]
    NotText,
    #[error(
        "Asterisk Master.csv times carry no time zone: give the switch's zone (e.g. Europe/Madrid; \
         UTC when cdr.conf has usegmtime=yes)"
    )]
    NoTimezone,
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("expected a JSON array of CDR objects or one object")]
    NotCdrJson,
    #[error("not canonical CSV: {0}")]
    Csv(#[from] canonical::CsvError),
    #[error("line {line}: not a JSON object: {source}")]
    NotJsonLine { line: usize, source: serde_json::Error },
    #[error("encoding a CDR: {0}")]
    Encode(serde_json::Error),
}

/// Reads a whole file of `format`. `timezone` is needed by Asterisk's local times only.
pub fn read(
    bytes: &[u8],
    format: FileFormat,
    ctx: &Context,
    timezone: Option<chrono_tz::Tz>,
) -> Result<FileContents, FileError> {
    let text = || std::str::from_utf8(bytes).map_err(|_| FileError::NotText);
    match format {
        FileFormat::AsteriskCsv => {
            let timezone = timezone.ok_or(FileError::NoTimezone)?;
            from_outcome(asterisk::parse(bytes, ctx, &asterisk::Options { timezone })?)
        }
        FileFormat::FreeswitchJson => from_outcome(freeswitch_file(text()?, ctx)?),
        FileFormat::KamailioJson => from_outcome(kamailio::parse_json(text()?, ctx)?),
        FileFormat::KamailioAcc => from_outcome(kamailio::parse_log(text()?, ctx)?),
        FileFormat::OpensipsAcc => from_outcome(opensips::parse_log(text()?, ctx)?),
        FileFormat::Json | FileFormat::Ndjson | FileFormat::Csv => canonical_file(format, text()?),
    }
}

/// The file's records as `me`'s CDRs (`sequence` = the record's line), parties hashed as ingest
/// hashes them: what reconciliation compares with the chain. A record that does not read is
/// returned as an error naming its line.
pub fn hashed(
    records: Vec<FileRecord>,
    me: &OperatorId,
    hasher: &PartyHasher,
) -> (Vec<Cdr>, Vec<RecordError>) {
    let mut cdrs = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for record in records {
        let body = CdrInput::from_value(record.value).and_then(|input| input.to_body(hasher));
        match body {
            Ok(body) => cdrs.push(Cdr { recorder: me.clone(), sequence: Sequence(record.line as u64), body }),
            Err(e) => errors.push(RecordError::new(record.line, None, e.to_string())),
        }
    }
    (cdrs, errors)
}

/// One document per file (as FreeSWITCH writes them), or one per line.
fn freeswitch_file(text: &str, ctx: &Context) -> Result<Outcome, FormatError> {
    let whole = match freeswitch::parse_document(text, ctx) {
        Ok(outcome) => return Ok(outcome),
        Err(whole) => whole,
    };
    let mut outcome = Outcome::default();
    let mut any = false;
    for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match freeswitch::parse_document(line, ctx) {
            Ok(mut one) => {
                any = true;
                for parsed in &mut one.cdrs {
                    parsed.line = index + 1;
                }
                for error in &mut one.errors {
                    error.line = index + 1;
                }
                outcome.cdrs.extend(one.cdrs);
                outcome.errors.extend(one.errors);
            }
            Err(e) => outcome.errors.push(RecordError::new(index + 1, None, e.to_string())),
        }
    }
    if any {
        Ok(outcome)
    } else {
        Err(whole)
    }
}

fn from_outcome(outcome: Outcome) -> Result<FileContents, FileError> {
    let records = outcome
        .cdrs
        .into_iter()
        .map(|parsed| {
            serde_json::to_value(&parsed.input)
                .map(|value| FileRecord { value, line: parsed.line })
                .map_err(FileError::Encode)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FileContents { records, errors: outcome.errors, skipped: outcome.skipped.len() })
}

fn canonical_file(format: FileFormat, text: &str) -> Result<FileContents, FileError> {
    let records = match format {
        FileFormat::Json => match serde_json::from_str(text).map_err(FileError::NotJson)? {
            Value::Array(items) => {
                items.into_iter().enumerate().map(|(i, value)| FileRecord { value, line: i + 1 }).collect()
            }
            object @ Value::Object(_) => vec![FileRecord { value: object, line: 1 }],
            _ => return Err(FileError::NotCdrJson),
        },
        FileFormat::Csv => canonical::csv_records(text)?
            .into_iter()
            .map(|(value, line)| FileRecord { value, line })
            .collect(),
        _ => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map(|value| FileRecord { value, line: i + 1 })
                    .map_err(|source| FileError::NotJsonLine { line: i + 1, source })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(FileContents { records, errors: Vec::new(), skipped: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_named_and_canonical_ones_told_from_the_file_name() {
        for (format, name, _) in FileFormat::ALL {
            assert_eq!(FileFormat::named(name), Some(format));
        }
        assert_eq!(FileFormat::named("excel"), None);
        assert_eq!(FileFormat::from_file_name("export.JSONL"), Some(FileFormat::Ndjson));
        assert_eq!(FileFormat::from_file_name("Master.csv"), Some(FileFormat::Csv));
        assert_eq!(FileFormat::from_file_name("acc.log"), None);
        assert_eq!(FileFormat::from_file_name("noextension"), None);
    }

    #[test]
    fn each_format_reads_its_fixture_and_refuses_what_it_is_not() -> Result<(), FileError> {
        let ctx = Context::new("alice");
        let kamailio = crate::fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_and_cdr_log_stderr.log");
        let read_log = read(kamailio.as_bytes(), FileFormat::KamailioAcc, &ctx, None)?;
        assert!(!read_log.records.is_empty());
        assert!(read_log.records.iter().all(|r| r.line >= 1 && r.value.is_object()));
        let asterisk = crate::fixture("asterisk_Master_BugaDM_TelephonySwitching.csv");
        assert!(matches!(
            read(asterisk.as_bytes(), FileFormat::AsteriskCsv, &ctx, None),
            Err(FileError::NoTimezone)
        ));
        assert!(!read(asterisk.as_bytes(), FileFormat::AsteriskCsv, &ctx, Some(chrono_tz::UTC))?
            .records
            .is_empty());
        assert!(matches!(read(b"\xff\xfe", FileFormat::Ndjson, &ctx, None), Err(FileError::NotText)));
        assert!(matches!(read(b"42", FileFormat::Json, &ctx, None), Err(FileError::NotCdrJson)));
        let lines = read(b"{\"a\":1}\n\nnot json\n", FileFormat::Ndjson, &ctx, None).unwrap_err();
        assert!(matches!(lines, FileError::NotJsonLine { line: 3, .. }), "{lines}");
        let two = read(b"[{\"a\":1},{\"b\":2}]", FileFormat::Json, &ctx, None)?;
        assert_eq!(two.records.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2]);
        Ok(())
    }
}
