//! The canonical CDR as submitted whole: a body of CDR objects (a JSON array, one object, or
//! NDJSON), and the canonical CSV of `cdrchain submit`. Reading never touches storage; every
//! error names the CDR (index, line) and, through [`InputError`], the field. Here, apart from the
//! node, so that the fuzz targets reach it without RocksDB.

use cdrchain_runtime::input::{CdrInput, InputError};
use serde_json::{Map, Value};

/// Most CDRs in one submission (one RPC call or HTTP request).
pub const MAX_CDRS_PER_SUBMISSION: usize = 100_000;
/// Most bytes in one submission body.
pub const MAX_SUBMISSION_BYTES: usize = 64 * 1024 * 1024;

/// Why a submission body was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("CDR {index}{}: {error}", line_suffix(*.line))]
    Invalid { index: usize, line: Option<usize>, error: InputError },
    #[error("malformed submission{}: {reason}", line_suffix(*.line))]
    Malformed { line: Option<usize>, reason: String },
    #[error("{count} CDRs in one submission, more than the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error("the submission is empty")]
    Empty,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Reads a submission body: a JSON array of CDR objects, a single object, or NDJSON.
pub fn parse_documents(body: &[u8]) -> Result<Vec<(CdrInput, Option<usize>)>, DocumentError> {
    if body.len() > MAX_SUBMISSION_BYTES {
        return Err(DocumentError::Malformed {
            line: None,
            reason: format!("{} bytes, more than the limit of {MAX_SUBMISSION_BYTES}", body.len()),
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| DocumentError::Malformed { line: None, reason: format!("not UTF-8: {e}") })?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(DocumentError::Empty);
    }
    if trimmed.starts_with('[') {
        return parse_array(text);
    }
    // NDJSON (a single object is one line of it, possibly spread over several lines).
    if let Ok(input) = CdrInput::from_json(text) {
        return Ok(vec![(input, Some(1))]);
    }
    parse_lines(body, text)
}

/// A JSON array of CDR objects.
fn parse_array(text: &str) -> Result<Vec<(CdrInput, Option<usize>)>, DocumentError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| DocumentError::Malformed {
            line: Some(e.line()),
            reason: format!("not a JSON array of CDR objects: {e}"),
        })?;
    check_count(values.len())?;
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            CdrInput::from_value(value).map(|input| (input, None)).map_err(|error| DocumentError::Invalid {
                index,
                line: None,
                error,
            })
        })
        .collect()
}

/// NDJSON: one CDR object per non-blank line.
fn parse_lines(body: &[u8], text: &str) -> Result<Vec<(CdrInput, Option<usize>)>, DocumentError> {
    let mut out = Vec::with_capacity(
        usize::try_from(estimated_records(body)).unwrap_or(0).min(MAX_CDRS_PER_SUBMISSION),
    );
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        check_count(out.len() + 1)?;
        let input = CdrInput::from_json(line).map_err(|error| DocumentError::Invalid {
            index: out.len(),
            line: Some(number + 1),
            error,
        })?;
        out.push((input, Some(number + 1)));
    }
    if out.is_empty() {
        return Err(DocumentError::Empty);
    }
    Ok(out)
}

/// How many records a submission body holds, read without parsing it: its lines (NDJSON has one
/// record per line), at least one. Pretty-printed JSON over-counts, which only refuses it a little
/// earlier near a full queue; a one-line array under-counts, and the writer's exact check refuses
/// it after parsing. Counted with `memchr` (SIMD): a byte-by-byte count of each ~0.5 MiB body,
/// twice per submission, was ~4 % of the dev node's CPU at its ceiling.
pub fn estimated_records(body: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', body).count() as u64;
    let unterminated = u64::from(body.last().is_some_and(|&byte| byte != b'\n'));
    (newlines + unterminated).max(1)
}

/// Refuses more CDRs than one submission may hold.
pub fn check_count(count: usize) -> Result<(), DocumentError> {
    if count > MAX_CDRS_PER_SUBMISSION {
        Err(DocumentError::TooMany { count, max: MAX_CDRS_PER_SUBMISSION })
    } else {
        Ok(())
    }
}

/// Why a canonical CSV file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("no CSV header: {0}")]
    Header(#[source] csv::Error),
    #[error("line {line}: bad CSV row: {source}")]
    Row {
        line: usize,
        #[source]
        source: csv::Error,
    },
}

/// The canonical CSV of `cdrchain submit` (a header of canonical field names, a CDR per row):
/// each row as a CDR object with its line. Empty cells are absent fields; numeric cells are
/// numbers, except in the fields that are text (call ids, numbers, system and source ids).
pub fn csv_records(text: &str) -> Result<Vec<(Value, usize)>, CsvError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(CsvError::Header)?.clone();
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|source| CsvError::Row { line: i + 2, source })?;
        let mut object = Map::new();
        for (name, cell) in headers.iter().zip(row.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let textual = matches!(
                name,
                "call_id" | "caller" | "callee" | "system_id" | "source_id" | "linked_id" | "leg"
            );
            let value = match cell.parse::<u64>() {
                Ok(n) if !textual => Value::from(n),
                _ => Value::String(cell.to_string()),
            };
            object.insert(name.to_string(), value);
        }
        out.push((Value::Object(object), i + 2));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_objects_with_text_fields_kept_as_text() {
        let rows = csv_records("call_id,caller,start,q850_cause,mos\n123,0044,1795000000000,16,\n").unwrap();
        assert_eq!(rows.len(), 1);
        let (row, line) = &rows[0];
        assert_eq!(*line, 2);
        assert_eq!(row["call_id"], "123");
        assert_eq!(row["caller"], "0044");
        assert_eq!(row["start"], 1_795_000_000_000u64);
        assert_eq!(row["q850_cause"], 16);
        assert!(row.get("mos").is_none());
        let error = csv_records("a,b\n1,2,3\n").unwrap_err().to_string();
        assert!(error.starts_with("line 2: bad CSV row"), "{error}");
    }

    #[test]
    fn bodies_are_arrays_objects_or_ndjson_and_errors_name_the_line() {
        let cdr = r#"{"call_id":"a@x","caller":"+1","callee":"+2","caller_operator":"alice","callee_operator":"bob","start":1,"end":2,"disposition":"busy"}"#;
        assert_eq!(parse_documents(format!("[{cdr},{cdr}]").as_bytes()).unwrap().len(), 2);
        assert_eq!(parse_documents(cdr.as_bytes()).unwrap().len(), 1);
        assert_eq!(parse_documents(format!("{cdr}\n\n{cdr}\n").as_bytes()).unwrap().len(), 2);
        assert!(matches!(parse_documents(b"  \n"), Err(DocumentError::Empty)));
        let error = parse_documents(format!("{cdr}\nnot json").as_bytes()).unwrap_err();
        assert!(matches!(error, DocumentError::Invalid { index: 1, line: Some(2), .. }), "{error}");
        assert_eq!(estimated_records(b"a\nb\nc"), 3);
    }
}
