//! Asterisk `cdr_csv`: the `Master.csv` file Asterisk writes in `/var/log/asterisk/cdr-csv/`.
//!
//! # The file
//!
//! One row per CDR, no header row, fields quoted with `"` (doubled inside), `duration` and
//! `billsec` unquoted. The columns, in this order:
//!
//! | columns | written when | names |
//! | --- | --- | --- |
//! | 1–16 | always | accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags |
//! | 17–18 | `cdr.conf` `[csv]` sets `loguniqueid` and `loguserfield` (as its sample does) | uniqueid, userfield |
//! | 19–21 | `cdr.conf` `[csv]` also sets `newcdrcolumns` | peeraccount, linkedid, sequence |
//!
//! A file has 16, 18 or 21 columns, the same in every row; the first row fixes the layout and a
//! row with another count is an error of that row. A first row of column names (a header some
//! tools add) is skipped, as is any later row repeating it. `cdr_custom`'s default `Master.csv`
//! template (clid first, 19 columns) is recognised and the file refused as
//! [`FormatError::NotThisFormat`], saying so: it needs cdr_csv's file, or a `cdr_custom` template
//! in cdr_csv's column order. Any other column count is refused the same way; a file without rows
//! is [`FormatError::Unreadable`]. Fields are read as bytes: a field this adapter does not use
//! (`clid` of real files holds non-UTF-8 bytes) may be anything, a field it uses must be UTF-8 or
//! its row is an error naming the field. A row gives one CDR or one error: the first problem
//! found, in column order, then the cross-checks. A leading UTF-8 byte order mark is ignored;
//! whitespace-only rows are skipped.
//!
//! # Mapping
//!
//! | source column | canonical field | rule |
//! | --- | --- | --- |
//! | `uniqueid` | `call_id` | trimmed; must not be empty (18 and 21 columns) |
//! | `channel`, `start` | `call_id` | 16 columns (no uniqueid): `<channel>@<start>`, start as written, e.g. `SIP/100-00000000@2015-03-24 15:44:40` |
//! | `src` | `caller` | trimmed; when empty, the number in `<…>` of `clid` (`"Alice" <1001>`) if there is one, else `anonymous` (no caller id was presented) |
//! | `dst` | `callee` | trimmed; empty, or one of Asterisk's special extensions (`s`, `t`, `T`, `i`, `h`, `a`, `o`, `e`: the call entered a context without a dialled number), an error (field `dst`) |
//! | – | `caller_operator`, `callee_operator` | the recording operator ([`Context::operator`]): cdr_csv does not name interconnect partners |
//! | – | `system_id` | the context's, else `asterisk` |
//! | `start` | `start` | `YYYY-MM-DD HH:MM:SS` in the import's time zone ([`Options::timezone`]), to integer ms since the epoch |
//! | `answer` | `answer` | as `start`; empty: none. Only for an `ANSWERED` row, which must have one within [start, end]; other rows' `answer` (Asterisk fills it on some unanswered rows) is read, then dropped |
//! | `end` | `end` | as `start` |
//! | `disposition` | `disposition`, `q850_cause` | `ANSWERED` → answered, 16; `BUSY` → busy, 17; `NO ANSWER` → no-answer, 19; `CONGESTION` → failed, 34; `FAILED` → failed, none; anything else: an error |
//! | `duration`, `billsec` | – | checked, not stored: whole seconds, and within 1 s of `end − start` and (answered rows) `end − answer`, which catches a file of another column layout |
//! | `linkedid` | `linked_id` | 21 columns, when not empty; else none |
//! | `uniqueid`, `sequence` | `source_id` | 21 columns: `<uniqueid>/<sequence>` |
//! | `uniqueid`, `dstchannel`, `start` | `source_id` | 18 columns: `<uniqueid>/<dstchannel>/<start>`, start as written |
//! | `channel`, `dstchannel`, `start` | `source_id` | 16 columns: `<channel>/<dstchannel>/<start>`, start as written |
//! | – | `sip_status`, `mos`, `fault`, `redirect_reason`, `leg` | none: cdr_csv records none of them |
//! | accountcode, dcontext, clid, lastapp, lastdata, amaflags, userfield, peeraccount | – | not used (clid only for a missing `src`) |
//!
//! # Times
//!
//! Asterisk writes local time (unless `usegmtime=yes`, then UTC) with no offset, so the import
//! names the zone. A local time that occurs twice (the hour repeated when daylight saving ends)
//! is taken as the earlier instant; a local time that does not exist (the hour skipped when it
//! begins) is an error naming the field. The times are whole seconds (Asterisk truncates them),
//! so `end − start` and `end − answer` may exceed `duration` and `billsec` by a second: hence the
//! 1 s tolerance of the cross-checks. The node gets the times, not `billsec`.
//!
//! # Several rows per call, and re-imports
//!
//! One call can give several rows sharing a `uniqueid`: one per target of a `Dial` (`Dial(SIP/a&
//! SIP/b)`), and more for `Local` channels; 21-column rows of one call share `linkedid`. Each row
//! is a CDR of its own. `source_id` tells the node that a record was already submitted: it is
//! made of the row's own text (not of the time zone option, nor of the line number), so
//! importing the same file again, or a longer copy of it (Asterisk appends), gives each row the
//! same `source_id`; and it separates the rows of one call (one per Dial target: distinct
//! `dstchannel`; 21 columns: distinct `sequence`). Should two rows of one file still have the
//! same key, the second and later ones get `#2`, `#3`, … appended, counted in file order.
//!
//! Each record's `line` is the line where its row starts in the file (1-based).

use std::collections::HashMap;

use cdrchain_runtime::cdr::Disposition;
use cdrchain_runtime::input::CdrInput;
use chrono::{LocalResult, NaiveDateTime, TimeZone};
use csv::ByteRecord;

use crate::{causes, Context, FormatError, Outcome, Parsed, RecordError, Skipped};

/// The format's name in errors.
const FORMAT: &str = "Asterisk cdr_csv Master.csv";

/// How `start`, `answer` and `end` are written.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// cdr_csv's columns, in order (the first 16, 18 or 21 are written).
const COLUMNS: [&str; 21] = [
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "sequence",
];

/// The columns of cdr_custom's default `Master.csv` template (`cdr_custom.conf.sample`).
const CDR_CUSTOM_COLUMNS: [&str; 19] = [
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "accountcode",
    "uniqueid",
    "userfield",
    "sequence",
];

const SRC: usize = 1;
const DST: usize = 2;
const CLID: usize = 4;
const CHANNEL: usize = 5;
const DSTCHANNEL: usize = 6;
const START: usize = 9;
const ANSWER: usize = 10;
const END: usize = 11;
const DURATION: usize = 12;
const BILLSEC: usize = 13;
const DISPOSITION: usize = 14;
const UNIQUEID: usize = 16;
const LINKEDID: usize = 19;
const SEQUENCE: usize = 20;

/// Options of an Asterisk import.
#[derive(Clone, Debug)]
pub struct Options {
    /// The zone of the times in the file: the Asterisk host's local zone, or UTC when
    /// `cdr.conf` sets `usegmtime=yes`.
    pub timezone: chrono_tz::Tz,
}

/// Which optional columns a file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// The 16 base columns: no uniqueid.
    Base,
    /// With uniqueid and userfield.
    Unique,
    /// With uniqueid, userfield, peeraccount, linkedid and sequence.
    Linked,
}

impl Layout {
    fn of_count(count: usize) -> Option<Layout> {
        match count {
            16 => Some(Layout::Base),
            18 => Some(Layout::Unique),
            21 => Some(Layout::Linked),
            _ => None,
        }
    }

    fn columns(self) -> usize {
        match self {
            Layout::Base => 16,
            Layout::Unique => 18,
            Layout::Linked => 21,
        }
    }
}

/// Reads an Asterisk cdr_csv `Master.csv` (16, 18 or 21 columns, no header row).
pub fn parse(bytes: &[u8], ctx: &Context, options: &Options) -> Result<Outcome, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut record = ByteRecord::new();
    let mut outcome = Outcome::default();
    let mut layout: Option<(Layout, usize)> = None;
    let mut source_ids = SourceIds::default();
    let mut rows = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                return Err(FormatError::Unreadable {
                    format: FORMAT,
                    reason: format!("not readable as CSV: {error}"),
                })
            }
        }
        let line = record.position().and_then(|p| usize::try_from(p.line()).ok()).unwrap_or(0);
        if record.iter().all(|field| field.iter().all(u8::is_ascii_whitespace)) {
            outcome.skipped.push(Skipped { line, reason: "blank row".to_string() });
            continue;
        }
        rows += 1;
        let (layout, layout_line) = match layout {
            Some(known) => known,
            None => {
                let (detected, header) = detect(&record, line)?;
                layout = Some((detected, line));
                if header {
                    outcome.skipped.push(Skipped { line, reason: header_reason(detected) });
                    continue;
                }
                (detected, line)
            }
        };
        if record.len() != layout.columns() {
            outcome.errors.push(RecordError::new(
                line,
                None,
                format!(
                    "{} columns, but this file's rows have {} (line {layout_line}): a Master.csv has one \
                     layout (a truncated row, or cdr.conf changed while the file was written?)",
                    record.len(),
                    layout.columns()
                ),
            ));
            continue;
        }
        if is_header(&record) {
            outcome.skipped.push(Skipped { line, reason: header_reason(layout) });
            continue;
        }
        match read_row(&Row { record: &record, line }, layout, ctx, options) {
            Ok((mut input, key)) => {
                input.source_id = Some(source_ids.assign(key));
                outcome.cdrs.push(Parsed { input, line });
            }
            Err(error) => outcome.errors.push(error),
        }
    }
    if rows == 0 {
        return Err(FormatError::Unreadable { format: FORMAT, reason: "empty: no rows".to_string() });
    }
    Ok(outcome)
}

fn header_reason(layout: Layout) -> String {
    format!("header row (the names of cdr_csv's {} columns)", layout.columns())
}

/// The fields of a record, lossily decoded, trimmed and lower-cased (for recognising names).
fn names(record: &ByteRecord) -> Vec<String> {
    record.iter().map(|field| String::from_utf8_lossy(field).trim().to_ascii_lowercase()).collect()
}

/// Whether a record is cdr_csv's column names (the first 16, 18 or 21 of them, any case).
fn is_header(record: &ByteRecord) -> bool {
    Layout::of_count(record.len()).is_some()
        && record
            .iter()
            .zip(COLUMNS)
            .all(|(field, name)| field.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

/// The layout of a file from its first row, and whether that row is a header.
fn detect(record: &ByteRecord, line: usize) -> Result<(Layout, bool), FormatError> {
    let names = names(record);
    let looks_like_names = names.len() >= 2
        && (names[0] == COLUMNS[0] || names[0] == CDR_CUSTOM_COLUMNS[0])
        && names[1] == COLUMNS[SRC];
    if looks_like_names {
        if names.iter().map(String::as_str).eq(CDR_CUSTOM_COLUMNS) {
            return Err(cdr_custom(line));
        }
        return match Layout::of_count(names.len()) {
            Some(layout) if is_header(record) => Ok((layout, true)),
            _ => Err(FormatError::NotThisFormat {
                format: FORMAT,
                reason: format!(
                    "line {line} is a header naming the columns {}; cdr_csv's columns are, in this order, \
                     the first 16, 18 or 21 of {}",
                    names.join(","),
                    COLUMNS.join(",")
                ),
            }),
        };
    }
    match Layout::of_count(record.len()) {
        Some(layout) => Ok((layout, false)),
        None if record.len() == CDR_CUSTOM_COLUMNS.len() && looks_like_cdr_custom(record) => {
            Err(cdr_custom(line))
        }
        None => Err(FormatError::NotThisFormat {
            format: FORMAT,
            reason: format!(
                "line {line} has {} columns; cdr_csv writes 16, 18 (loguniqueid, loguserfield) or 21 \
                 (also newcdrcolumns)",
                record.len()
            ),
        }),
    }
}

/// A 19-column row whose `start` (9th) is a time or whose `disposition` (14th) is a disposition
/// where cdr_custom's default template puts them.
fn looks_like_cdr_custom(record: &ByteRecord) -> bool {
    let field =
        |index: usize| std::str::from_utf8(record.get(index).unwrap_or_default()).unwrap_or("").trim();
    NaiveDateTime::parse_from_str(field(8), TIME_FORMAT).is_ok() || disposition(field(13)).is_some()
}

fn cdr_custom(line: usize) -> FormatError {
    FormatError::NotThisFormat {
        format: FORMAT,
        reason: format!(
            "line {line} looks like cdr_custom's default Master.csv template (clid first, 19 columns: {}); \
             this import reads cdr_csv's column order: import the Master.csv that cdr_csv writes (in \
             cdr-csv/), or give cdr_custom a template in cdr_csv's column order (16, 18 or 21 columns: {})",
            CDR_CUSTOM_COLUMNS.join(","),
            COLUMNS.join(",")
        ),
    }
}

/// One row with its line, for reading fields with errors that name them.
struct Row<'a> {
    record: &'a ByteRecord,
    line: usize,
}

impl Row<'_> {
    fn bytes(&self, index: usize) -> &[u8] {
        self.record.get(index).unwrap_or_default()
    }

    fn error(&self, index: usize, reason: impl Into<String>) -> RecordError {
        RecordError::new(self.line, COLUMNS.get(index).copied(), reason)
    }

    /// A field used by the mapping: UTF-8, trimmed.
    fn text(&self, index: usize) -> Result<&str, RecordError> {
        let bytes = self.bytes(index);
        std::str::from_utf8(bytes).map(str::trim).map_err(|_| {
            self.error(index, format!("{} is not valid UTF-8", shown(&String::from_utf8_lossy(bytes))))
        })
    }

    /// A time field as ms since the epoch; `None` when empty.
    fn time(&self, index: usize, options: &Options) -> Result<Option<u64>, RecordError> {
        let text = self.text(index)?;
        if text.is_empty() {
            return Ok(None);
        }
        local_ms(text, options.timezone).map(Some).map_err(|reason| self.error(index, reason))
    }

    /// A time field that must be there.
    fn required_time(&self, index: usize, options: &Options) -> Result<u64, RecordError> {
        self.time(index, options)?.ok_or_else(|| self.error(index, "empty"))
    }

    /// A whole number of seconds (`duration`, `billsec`).
    fn seconds(&self, index: usize) -> Result<u64, RecordError> {
        let text = self.text(index)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(index, format!("{} is not a whole number of seconds", shown(text))));
        }
        text.parse().map_err(|_| self.error(index, format!("{} is too large", shown(text))))
    }
}

/// Characters of a value an error message shows; longer values are cut.
const MAX_SHOWN_CHARS: usize = 64;

/// A value for an error message: quoted, and cut after `MAX_SHOWN_CHARS` characters.
fn shown(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

/// A local time in `tz` to ms since the epoch: the earlier instant of an ambiguous time, an error
/// for a time that does not exist.
fn local_ms(text: &str, tz: chrono_tz::Tz) -> Result<u64, String> {
    let naive = NaiveDateTime::parse_from_str(text, TIME_FORMAT)
        .map_err(|error| format!("{} is not a `YYYY-MM-DD HH:MM:SS` time: {error}", shown(text)))?;
    let instant = match tz.from_local_datetime(&naive) {
        LocalResult::Single(instant) => instant,
        LocalResult::Ambiguous(one, other) => one.min(other),
        LocalResult::None => {
            return Err(format!(
            "{} does not exist in {} (the clocks skipped it when daylight saving began): wrong time zone?",
            shown(text),
            tz.name()
        ))
        }
    };
    u64::try_from(instant.timestamp_millis())
        .map_err(|_| format!("{} is before 1970-01-01 00:00:00 UTC", shown(text)))
}

/// The canonical disposition and Q.850 cause of an Asterisk disposition.
fn disposition(text: &str) -> Option<(Disposition, Option<u8>)> {
    Some(match text.trim().to_ascii_uppercase().as_str() {
        "ANSWERED" => (Disposition::Answered, Some(causes::NORMAL_CLEARING)),
        "BUSY" => (Disposition::Busy, Some(17)),
        "NO ANSWER" => (Disposition::NoAnswer, Some(19)),
        "CONGESTION" => (Disposition::Failed, Some(34)),
        "FAILED" => (Disposition::Failed, None),
        _ => return None,
    })
}

/// The number in `<…>` of a caller id such as `"Alice" <1001>`, if any.
fn clid_number(clid: &str) -> Option<&str> {
    let open = clid.rfind('<')?;
    let rest = clid.get(open + 1..)?;
    let number = rest.get(..rest.find('>')?)?.trim();
    (!number.is_empty() && !number.contains(char::REPLACEMENT_CHARACTER)).then_some(number)
}

/// How far `duration` and `billsec` may be from the times: Asterisk truncates both to whole
/// seconds (see the module docs).
const SECONDS_TOLERANCE_MS: u64 = 1_000;

/// Checks a `duration` or `billsec` column against the times: within `SECONDS_TOLERANCE_MS`.
fn check_seconds(
    row: &Row<'_>,
    index: usize,
    seconds: u64,
    measured_ms: u64,
    what: &str,
) -> Result<(), RecordError> {
    let difference = i128::from(measured_ms) - i128::from(seconds) * 1000;
    if difference.abs() > i128::from(SECONDS_TOLERANCE_MS) {
        return Err(row.error(
            index,
            format!(
                "{} is {seconds} s but {what} is {} s: more than 1 s apart (is this file in cdr_csv's \
                 column order?)",
                COLUMNS.get(index).copied().unwrap_or("?"),
                measured_ms / 1000
            ),
        ));
    }
    Ok(())
}

/// Asterisk's special dialplan extensions, which a CDR's `dst` holds when a call entered a
/// context without a dialled number of its own.
fn special_extension(exten: &str) -> Option<&'static str> {
    Some(match exten {
        "s" => "start",
        "t" => "timeout",
        "T" => "absolute timeout",
        "i" => "invalid",
        "h" => "hangup",
        "a" => "assistant",
        "o" => "operator",
        "e" => "exception",
        _ => return None,
    })
}

/// One row to a CDR (without `source_id`) and its source key. The first problem found, in
/// column order, then the cross-checks, is the row's error.
fn read_row(
    row: &Row<'_>,
    layout: Layout,
    ctx: &Context,
    options: &Options,
) -> Result<(CdrInput, String), RecordError> {
    let caller = caller(row)?;
    let callee = callee(row)?;
    let channel = row.text(CHANNEL)?;
    let dstchannel = row.text(DSTCHANNEL)?;
    let start_text = row.text(START)?;
    let start = row.required_time(START, options)?;
    let answer = row.time(ANSWER, options)?;
    let end = row.required_time(END, options)?;
    let duration = row.seconds(DURATION)?;
    let billsec = row.seconds(BILLSEC)?;
    let (disposition, q850_cause) = row_disposition(row)?;
    let identity = identity(row, layout, channel, dstchannel, start_text)?;
    if end < start {
        return Err(
            row.error(END, format!("{} is before start {}", shown(row.text(END)?), shown(start_text)))
        );
    }
    check_seconds(row, DURATION, duration, end - start, "end - start")?;
    let answer = if disposition == Disposition::Answered {
        Some(answered_at(row, answer, start_text, start, end, billsec)?)
    } else {
        None
    };
    let input = CdrInput {
        call_id: identity.call_id,
        caller,
        callee: callee.to_string(),
        caller_operator: ctx.operator.clone(),
        callee_operator: ctx.operator.clone(),
        system_id: Some(ctx.system_id(None, "asterisk")),
        start: serde_json::Value::from(start),
        answer: answer.map(serde_json::Value::from),
        end: serde_json::Value::from(end),
        disposition: disposition.as_str().to_string(),
        q850_cause: q850_cause.map(serde_json::Value::from),
        linked_id: identity.linked_id,
        ..CdrInput::default()
    };
    Ok((input, identity.key))
}

/// The caller: `src`, else the number of `clid`, else `anonymous`.
fn caller(row: &Row<'_>) -> Result<String, RecordError> {
    Ok(match row.text(SRC)? {
        // No caller id presented: the call still happened and is billable; its caller is
        // `anonymous` (what the node's party rules make of a withheld identity).
        "" => {
            let clid = String::from_utf8_lossy(row.bytes(CLID));
            clid_number(&clid).unwrap_or("anonymous").to_string()
        }
        src => src.to_string(),
    })
}

/// The callee: `dst`, which must be a dialled number.
fn callee<'a>(row: &'a Row<'_>) -> Result<&'a str, RecordError> {
    let callee = row.text(DST)?;
    if callee.is_empty() {
        return Err(row.error(DST, "empty: no dialled number"));
    }
    if let Some(meaning) = special_extension(callee) {
        return Err(row.error(
            DST,
            format!(
                "`{callee}` is Asterisk's {meaning} extension, not a dialled number: the row does not say \
                 which number was called"
            ),
        ));
    }
    Ok(callee)
}

/// The row's canonical disposition and Q.850 cause.
fn row_disposition(row: &Row<'_>) -> Result<(Disposition, Option<u8>), RecordError> {
    let text = row.text(DISPOSITION)?;
    disposition(text).ok_or_else(|| {
        row.error(
            DISPOSITION,
            format!(
                "{} is not an Asterisk disposition (ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION)",
                shown(text)
            ),
        )
    })
}

/// Who a row is: its call id, its source key (see the module docs), and the id linking it to the
/// other rows of its call.
struct Identity {
    call_id: String,
    key: String,
    linked_id: Option<String>,
}

/// A row's identity in `layout`; `start_text` is the start as written.
fn identity(
    row: &Row<'_>,
    layout: Layout,
    channel: &str,
    dstchannel: &str,
    start_text: &str,
) -> Result<Identity, RecordError> {
    let (call_id, key, linked_id) = match layout {
        Layout::Base => {
            if channel.is_empty() {
                return Err(row.error(
                    CHANNEL,
                    "empty: a 16-column row has no uniqueid, and its call_id is <channel>@<start>",
                ));
            }
            (format!("{channel}@{start_text}"), format!("{channel}/{dstchannel}/{start_text}"), None)
        }
        Layout::Unique | Layout::Linked => {
            let uniqueid = row.text(UNIQUEID)?;
            if uniqueid.is_empty() {
                return Err(row.error(UNIQUEID, "empty: the call_id of the row"));
            }
            if layout == Layout::Unique {
                (uniqueid.to_string(), format!("{uniqueid}/{dstchannel}/{start_text}"), None)
            } else {
                let linkedid = row.text(LINKEDID)?;
                let sequence = row.text(SEQUENCE)?;
                let linked_id = (!linkedid.is_empty()).then(|| linkedid.to_string());
                (uniqueid.to_string(), format!("{uniqueid}/{sequence}"), linked_id)
            }
        }
    };
    Ok(Identity { call_id, key, linked_id })
}

/// The answer time of an `ANSWERED` row: present, within [start, end], and `billsec` within
/// 1 s of `end - answer`. `start_text` is the start as written, `start` and `end` in ms.
fn answered_at(
    row: &Row<'_>,
    answer: Option<u64>,
    start_text: &str,
    start: u64,
    end: u64,
    billsec: u64,
) -> Result<u64, RecordError> {
    let answer = answer.ok_or_else(|| row.error(ANSWER, "empty, but the row is ANSWERED"))?;
    if answer < start || answer > end {
        return Err(row.error(
            ANSWER,
            format!(
                "{} is outside [start, end] = [{}, {}]",
                shown(row.text(ANSWER)?),
                shown(start_text),
                shown(row.text(END)?)
            ),
        ));
    }
    check_seconds(row, BILLSEC, billsec, end - answer, "end - answer")?;
    Ok(answer)
}

/// Gives each row its source id: its key, with `#n` appended to the n-th row of a file with the
/// same key (n ≥ 2), and never one given before.
#[derive(Debug, Default)]
struct SourceIds {
    /// For each key, how many rows had it.
    counts: HashMap<String, u64>,
}

impl SourceIds {
    fn assign(&mut self, key: String) -> String {
        let mut n = self.counts.get(&key).copied().unwrap_or(0);
        loop {
            n += 1;
            let candidate = if n == 1 { key.clone() } else { format!("{key}#{n}") };
            // A candidate with a suffix could equal another row's own key: skip those.
            if n == 1 || !self.counts.contains_key(&candidate) {
                self.counts.insert(key.clone(), n);
                if n > 1 {
                    self.counts.entry(candidate.clone()).or_insert(1);
                }
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono_tz::Tz;
    use proptest::prelude::*;

    use super::*;

    const BUGADM: &[u8] =
        include_bytes!("../../../tests/fixtures/real-cdrs/asterisk_Master_BugaDM_TelephonySwitching.csv");
    const KARTHIK: &[u8] =
        include_bytes!("../../../tests/fixtures/real-cdrs/asterisk_Master_karthik0112_synk_bug_freepbx.csv");
    const MINEEV: &[u8] =
        include_bytes!("../../../tests/fixtures/real-cdrs/asterisk_Master_mineevburyat_dj-asterisk-cdr.csv");
    const SIMULARENT: &[u8] = include_bytes!(
        "../../../tests/fixtures/real-cdrs/asterisk_Master_simularent_asterisk-for-speech-to-text.csv"
    );
    const TEJDEEP: &[u8] =
        include_bytes!("../../../tests/fixtures/real-cdrs/asterisk_Master_tejdeepsingh_hackathon2025.csv");
    const CDR_CUSTOM: &[u8] =
        include_bytes!("../../../tests/fixtures/real-cdrs/asterisk_cdr-custom_Master_KelySaina_cdr.csv");

    fn ctx() -> Context {
        Context::new("alice")
    }

    fn read(bytes: &[u8], timezone: Tz) -> Result<Outcome, FormatError> {
        parse(bytes, &ctx(), &Options { timezone })
    }

    fn read_ok(bytes: &[u8], timezone: Tz) -> Outcome {
        match read(bytes, timezone) {
            Ok(outcome) => outcome,
            Err(error) => panic!("refused: {error}"),
        }
    }

    fn at(outcome: &Outcome, line: usize) -> &CdrInput {
        match outcome.cdrs.iter().find(|cdr| cdr.line == line) {
            Some(cdr) => &cdr.input,
            None => panic!("no CDR from line {line}: {:?}", outcome.errors.iter().find(|e| e.line == line)),
        }
    }

    fn ms(value: &serde_json::Value) -> u64 {
        value.as_u64().unwrap()
    }

    /// What a test expects of one row.
    struct Expect<'a> {
        line: usize,
        call_id: &'a str,
        caller: &'a str,
        callee: &'a str,
        start: u64,
        answer: Option<u64>,
        end: u64,
        /// The billsec column: `end - answer` of answered rows.
        billsec: u64,
        disposition: &'a str,
        q850: Option<u64>,
    }

    fn check(outcome: &Outcome, expect: &Expect<'_>) {
        let cdr = at(outcome, expect.line);
        assert_eq!(cdr.call_id, expect.call_id, "line {}", expect.line);
        assert_eq!(cdr.caller, expect.caller, "line {}", expect.line);
        assert_eq!(cdr.callee, expect.callee, "line {}", expect.line);
        assert_eq!(ms(&cdr.start), expect.start, "line {}", expect.line);
        assert_eq!(cdr.answer.as_ref().map(ms), expect.answer, "line {}", expect.line);
        assert_eq!(ms(&cdr.end), expect.end, "line {}", expect.line);
        let billable = expect.answer.map_or(0, |answer| (ms(&cdr.end) - answer) / 1000);
        assert_eq!(billable, expect.billsec, "line {}", expect.line);
        assert_eq!(cdr.disposition, expect.disposition, "line {}", expect.line);
        assert_eq!(
            cdr.q850_cause.as_ref().and_then(serde_json::Value::as_u64),
            expect.q850,
            "line {}",
            expect.line
        );
        assert_eq!(cdr.caller_operator, "alice");
        assert_eq!(cdr.callee_operator, "alice");
        assert_eq!(cdr.system_id.as_deref(), Some("asterisk"));
        assert_eq!(cdr.sip_status, None);
        assert_eq!(cdr.leg, None);
    }

    fn error_lines(outcome: &Outcome, field: &str) -> Vec<usize> {
        assert!(outcome.errors.iter().all(|e| e.field.as_deref() == Some(field)), "{:?}", outcome.errors);
        outcome.errors.iter().map(|e| e.line).collect()
    }

    fn distinct_source_ids(outcome: &Outcome) {
        let ids: HashSet<&str> = outcome.cdrs.iter().filter_map(|c| c.input.source_id.as_deref()).collect();
        assert_eq!(ids.len(), outcome.cdrs.len());
    }

    #[test]
    fn bugadm_18_columns() {
        let outcome = read_ok(BUGADM, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 90);
        assert!(outcome.skipped.is_empty());
        // 15 calls into the dialplan's `s` and `t` extensions name no dialled number.
        assert_eq!(outcome.errors.len(), 15, "{:?}", outcome.errors);
        assert!(outcome.errors.iter().all(|e| e.field.as_deref() == Some("dst")), "{:?}", outcome.errors);
        // Five calls from the `apptel` application have no src (clid `apptel`, no <number>):
        // no caller id was presented, so the caller is anonymous.
        for line in [59, 60, 64, 65, 68] {
            assert!(outcome.errors.iter().any(|e| e.line == line), "line {line} went to `s`");
        }
        assert!(outcome.cdrs.iter().all(|c| !c.input.caller.is_empty()));
        check(
            &outcome,
            &Expect {
                line: 1,
                call_id: "1427211880.0",
                caller: "100",
                callee: "700",
                start: 1_427_211_880_000,
                answer: Some(1_427_211_880_000),
                end: 1_427_211_883_000,
                billsec: 3,
                disposition: "answered",
                q850: Some(16),
            },
        );
        assert_eq!(at(&outcome, 1).source_id.as_deref(), Some("1427211880.0//2015-03-24 15:44:40"));
        assert_eq!(at(&outcome, 1).linked_id, None);
        check(
            &outcome,
            &Expect {
                line: 13,
                call_id: "1427214511.0",
                caller: "100",
                callee: "101",
                start: 1_427_214_511_000,
                answer: None,
                end: 1_427_214_511_000,
                billsec: 0,
                disposition: "failed",
                q850: None,
            },
        );
        // BUSY, yet Asterisk filled answer (= start) and billsec 27: answer dropped.
        check(
            &outcome,
            &Expect {
                line: 74,
                call_id: "1429025256.1",
                caller: "102",
                callee: "100",
                start: 1_429_025_256_000,
                answer: None,
                end: 1_429_025_283_000,
                billsec: 0,
                disposition: "busy",
                q850: Some(17),
            },
        );
        distinct_source_ids(&outcome);
    }

    #[test]
    fn karthik_freepbx_18_columns() {
        let outcome = read_ok(KARTHIK, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 608);
        // 128 rows of calls into `s`/`t`/`h`-type extensions name no dialled number.
        assert_eq!(outcome.errors.len(), 128);
        assert!(outcome.errors.iter().all(|e| e.reason.contains("extension, not a dialled number")));
        check(
            &outcome,
            &Expect {
                line: 1,
                call_id: "1655439214.5",
                caller: "1001",
                callee: "1002",
                start: 1_655_439_214_000,
                answer: None,
                end: 1_655_439_214_000,
                billsec: 0,
                disposition: "failed",
                q850: Some(34),
            },
        );
        check(
            &outcome,
            &Expect {
                line: 32,
                call_id: "1655724000.89",
                caller: "1001",
                callee: "1002",
                start: 1_655_724_000_000,
                answer: Some(1_655_724_004_000),
                end: 1_655_724_031_000,
                billsec: 27,
                disposition: "answered",
                q850: Some(16),
            },
        );
        // Lines 3 and 4: one call (uniqueid), two rows (the Dial to SIP/1002, then Busy()).
        for line in [3, 4] {
            check(
                &outcome,
                &Expect {
                    line,
                    call_id: "1655439415.29",
                    caller: "1002",
                    callee: "1002",
                    start: 1_655_439_415_000,
                    answer: None,
                    end: 1_655_439_415_000,
                    billsec: 0,
                    disposition: "busy",
                    q850: Some(17),
                },
            );
        }
        assert_eq!(
            at(&outcome, 3).source_id.as_deref(),
            Some("1655439415.29/SIP/1002-00000005/2022-06-17 04:16:55")
        );
        assert_eq!(at(&outcome, 4).source_id.as_deref(), Some("1655439415.29//2022-06-17 04:16:55"));
        // 175 uniqueids are shared by several rows; every row still has its own source_id.
        let call_ids: HashSet<&str> = outcome.cdrs.iter().map(|c| c.input.call_id.as_str()).collect();
        assert!(call_ids.len() < outcome.cdrs.len());
        distinct_source_ids(&outcome);
        let count =
            |disposition: &str| outcome.cdrs.iter().filter(|c| c.input.disposition == disposition).count();
        assert_eq!(
            [count("answered"), count("busy"), count("no-answer"), count("failed")],
            // Answered and failed rows into `s`/`h` extensions are refused above.
            [285, 172, 145, 6]
        );
        // Every non-ANSWERED row lost its answer (175 of them had one in the file).
        assert!(outcome.cdrs.iter().all(|c| (c.input.disposition == "answered") == c.input.answer.is_some()));
    }

    #[test]
    fn mineevburyat_21_columns_with_non_utf8_clid() {
        assert!(String::from_utf8(MINEEV.to_vec()).is_err());
        let outcome = read_ok(MINEEV, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 84);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        check(
            &outcome,
            &Expect {
                line: 1,
                call_id: "1706368044.0",
                caller: "89245555937",
                callee: "211474",
                start: 1_706_368_044_000,
                answer: Some(1_706_368_044_000),
                end: 1_706_368_071_000,
                billsec: 27,
                disposition: "answered",
                q850: Some(16),
            },
        );
        assert_eq!(at(&outcome, 1).linked_id.as_deref(), Some("1706368044.0"));
        assert_eq!(at(&outcome, 1).source_id.as_deref(), Some("1706368044.0/0"));
        // A Local channel's row: its own uniqueid, the call's linkedid.
        check(
            &outcome,
            &Expect {
                line: 7,
                call_id: "1706372196.14",
                caller: "89245555937",
                callee: "ch1",
                start: 1_706_372_196_000,
                answer: None,
                end: 1_706_372_211_000,
                billsec: 0,
                disposition: "no-answer",
                q850: Some(19),
            },
        );
        assert_eq!(at(&outcome, 7).linked_id.as_deref(), Some("1706372196.12"));
        assert_eq!(at(&outcome, 7).source_id.as_deref(), Some("1706372196.14/10"));
        // The rows whose clid holds bytes \xa5\xa5 (not UTF-8).
        for line in [41, 42, 43, 44, 69, 70, 79, 80] {
            let cdr = at(&outcome, line);
            assert!(cdr.linked_id.is_some(), "line {line}");
            assert!(cdr.caller.starts_with("8107"), "line {line}");
            assert_eq!(cdr.callee, "211553");
        }
        let cdr = at(&outcome, 42);
        assert_eq!(cdr.call_id, "1706415046.98");
        assert_eq!(cdr.caller, "81079246516548");
        assert_eq!(cdr.disposition, "answered");
        assert_eq!(cdr.answer.as_ref().map(ms), Some(1_706_415_052_000));
        // `systemname` set in asterisk.conf prefixes the uniqueid.
        assert_eq!(at(&outcome, 84).call_id, "mainserverdss-1706445411.103");
        distinct_source_ids(&outcome);
    }

    #[test]
    fn the_time_zone_is_applied() {
        let utc = read_ok(MINEEV, Tz::UTC);
        let moscow = read_ok(MINEEV, Tz::Europe__Moscow);
        assert_eq!(moscow.cdrs.len(), 84);
        let cdr = at(&moscow, 1);
        assert_eq!(ms(&cdr.start), 1_706_368_044_000 - 3 * 3_600_000);
        assert_eq!(cdr.answer.as_ref().map(ms), Some(1_706_368_044_000 - 3 * 3_600_000));
        assert_eq!(ms(&cdr.end), 1_706_368_071_000 - 3 * 3_600_000);
        for (a, b) in utc.cdrs.iter().zip(&moscow.cdrs) {
            assert_eq!(ms(&a.input.start) - ms(&b.input.start), 3 * 3_600_000);
            // The time zone is not part of a row's identity.
            assert_eq!(a.input.source_id, b.input.source_id);
        }
    }

    #[test]
    fn simularent_18_columns_mostly_without_src() {
        let outcome = read_ok(SIMULARENT, Tz::UTC);
        // Calls from the trunk and Local channels with no caller id (src empty, clid `"" <>`)
        // have an anonymous caller; lines 60 and 61 name no dialled number either.
        assert_eq!(outcome.cdrs.len(), 262);
        assert_eq!(outcome.errors.len(), 7);
        assert_eq!(error_lines(&outcome, "dst"), [13, 14, 18, 20, 27, 60, 61]);
        assert_eq!(at(&outcome, 269).caller, "anonymous");
        check(
            &outcome,
            &Expect {
                line: 1,
                call_id: "1473179935.0",
                caller: "1500",
                callee: "12489398620",
                start: 1_473_179_935_000,
                answer: None,
                end: 1_473_179_936_000,
                billsec: 0,
                disposition: "no-answer",
                q850: Some(19),
            },
        );
        // Line 20 went to the dialplan's `s` extension: no dialled number.
        let error = outcome.errors.iter().find(|e| e.line == 20).unwrap();
        assert_eq!(error.field.as_deref(), Some("dst"));
        assert!(error.reason.contains("`s` is Asterisk's start extension"), "{error}");
        distinct_source_ids(&outcome);
    }

    #[test]
    fn tejdeepsingh_pjsip_ivr() {
        let outcome = read_ok(TEJDEEP, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 18);
        assert_eq!(outcome.errors.len(), 15, "{:?}", outcome.errors);
        assert!(outcome.cdrs.iter().all(|c| c.input.disposition == "answered"));
        // Line 1 is the IVR's `t` (timeout) extension: no dialled number.
        let error = outcome.errors.iter().find(|e| e.line == 1).unwrap();
        assert!(error.reason.contains("`t` is Asterisk's timeout extension"), "{error}");
        // Line 5 (Record(), billsec 21): the times are truncated to whole seconds, so end - answer
        // shows 22 s. Within the 1 s tolerance.
        let cdr = at(&outcome, 5);
        assert_eq!((cdr.callee.as_str(), ms(&cdr.start)), ("1", 1_753_245_056_000));
        assert_eq!(ms(&cdr.end) - cdr.answer.as_ref().map(ms).unwrap(), 22_000);
        check(
            &outcome,
            &Expect {
                line: 33,
                call_id: "1753256736.64",
                caller: "1001",
                callee: "2",
                start: 1_753_256_736_000,
                answer: Some(1_753_256_736_000),
                end: 1_753_256_760_000,
                billsec: 24,
                disposition: "answered",
                q850: Some(16),
            },
        );
    }

    #[test]
    fn cdr_custom_default_template_is_refused() {
        match read(CDR_CUSTOM, Tz::UTC) {
            Err(FormatError::NotThisFormat { format, reason }) => {
                assert_eq!(format, "Asterisk cdr_csv Master.csv");
                assert!(reason.contains("cdr_custom's default"), "{reason}");
                assert!(reason.contains("clid first, 19 columns"), "{reason}");
                assert!(reason.contains("template in cdr_csv's column order"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    // ---- rows built by the tests ----

    /// The fields of an answered 18-column row (a 10 s call, 8 s billed).
    fn fields() -> Vec<String> {
        [
            "",
            "100",
            "700",
            "phones",
            "\"Bob\" <100>",
            "SIP/100-00000000",
            "SIP/700-00000001",
            "Dial",
            "SIP/700",
            "2015-03-24 15:44:40",
            "2015-03-24 15:44:42",
            "2015-03-24 15:44:50",
            "10",
            "8",
            "ANSWERED",
            "DOCUMENTATION",
            "1427211880.0",
            "",
        ]
        .map(str::to_string)
        .to_vec()
    }

    fn with(changes: &[(usize, &str)]) -> Vec<String> {
        let mut fields = fields();
        for (index, value) in changes {
            fields[*index] = value.to_string();
        }
        fields
    }

    /// A CSV line as cdr_csv writes it (text quoted, duration and billsec not).
    fn line(fields: &[String]) -> String {
        let quoted: Vec<String> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == DURATION || i == BILLSEC || i == SEQUENCE {
                    f.clone()
                } else {
                    format!("\"{}\"", f.replace('"', "\"\""))
                }
            })
            .collect();
        quoted.join(",") + "\n"
    }

    fn file(rows: &[Vec<String>]) -> Vec<u8> {
        rows.iter().map(|r| line(r)).collect::<String>().into_bytes()
    }

    fn one_error(bytes: &[u8], timezone: Tz) -> RecordError {
        let outcome = read_ok(bytes, timezone);
        assert!(outcome.cdrs.is_empty(), "{:?}", outcome.cdrs);
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        outcome.errors[0].clone()
    }

    #[test]
    fn a_built_row_parses() {
        let outcome = read_ok(&file(&[fields()]), Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 1);
        let cdr = at(&outcome, 1);
        assert_eq!(ms(&cdr.start), 1_427_211_880_000);
        assert_eq!(cdr.answer.as_ref().map(ms), Some(1_427_211_882_000));
        assert_eq!(ms(&cdr.end), 1_427_211_890_000);
        assert_eq!(cdr.source_id.as_deref(), Some("1427211880.0/SIP/700-00000001/2015-03-24 15:44:40"));
    }

    #[test]
    fn header_rows_are_skipped() {
        let header: Vec<String> = COLUMNS[..18].iter().map(|c| c.to_string()).collect();
        let mut bytes = file(&[header.clone(), fields()]);
        // A header repeated later (files concatenated) is skipped too.
        bytes.extend(file(&[header, with(&[(UNIQUEID, "1427211880.9")])]));
        let outcome = read_ok(&bytes, Tz::UTC);
        assert_eq!(outcome.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 3]);
        assert!(outcome.skipped[0].reason.contains("header"));
        assert_eq!(outcome.cdrs.iter().map(|c| c.line).collect::<Vec<_>>(), [2, 4]);
        assert!(outcome.errors.is_empty());
        // An upper-case header of 16 columns fixes the layout.
        let header16 = COLUMNS[..16].iter().map(|c| c.to_uppercase()).collect::<Vec<_>>().join(",");
        let outcome = read_ok(format!("{header16}\n{}", line(&fields()[..16])).as_bytes(), Tz::UTC);
        assert_eq!(outcome.skipped.len(), 1);
        assert_eq!(outcome.cdrs.len(), 1);
        // Only a header: no CDR, no error.
        let outcome = read_ok(COLUMNS.join(",").as_bytes(), Tz::UTC);
        assert_eq!((outcome.cdrs.len(), outcome.skipped.len(), outcome.errors.len()), (0, 1, 0));
    }

    #[test]
    fn headers_in_another_order_are_refused() {
        let custom = CDR_CUSTOM_COLUMNS.join(",") + "\n";
        match read(custom.as_bytes(), Tz::UTC) {
            Err(FormatError::NotThisFormat { reason, .. }) => {
                assert!(reason.contains("cdr_custom"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let odd = "accountcode,src,start,dst\n";
        match read(odd.as_bytes(), Tz::UTC) {
            Err(FormatError::NotThisFormat { reason, .. }) => {
                assert!(reason.contains("accountcode,src,start,dst"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn column_counts() {
        let mut seventeen = fields();
        seventeen.pop();
        match read(&file(&[seventeen]), Tz::UTC) {
            Err(FormatError::NotThisFormat { format, reason }) => {
                assert_eq!(format, FORMAT);
                assert!(reason.contains("has 17 columns"), "{reason}");
                assert!(reason.contains("16, 18"), "{reason}");
                assert!(reason.contains("21"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // 19 columns that are not cdr_custom's: the generic message.
        let mut nineteen = vec!["x".to_string(); 19];
        nineteen[0] = "a".into();
        match read(&file(&[nineteen]), Tz::UTC) {
            Err(FormatError::NotThisFormat { reason, .. }) => {
                assert!(reason.contains("has 19 columns"), "{reason}");
                assert!(!reason.contains("cdr_custom"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A later row of another count (here a truncated last row) is an error of that row.
        let mut bytes = file(&[fields()]);
        bytes.extend_from_slice(b"\"\",\"100\",\"700\",\"pho");
        let outcome = read_ok(&bytes, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 1);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!((outcome.errors[0].line, outcome.errors[0].field.as_deref()), (2, None));
        assert!(outcome.errors[0].reason.contains("4 columns, but this file's rows have 18"));
    }

    #[test]
    fn empty_input_is_unreadable() {
        for bytes in [&b""[..], b"\n\n", b"\xEF\xBB\xBF", b"  \n"] {
            match read(bytes, Tz::UTC) {
                Err(FormatError::Unreadable { format, .. }) => assert_eq!(format, FORMAT),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn layouts_16_and_21() {
        // 16 columns: no uniqueid.
        let outcome = read_ok(&file(&[fields()[..16].to_vec()]), Tz::UTC);
        let cdr = at(&outcome, 1);
        assert_eq!(cdr.call_id, "SIP/100-00000000@2015-03-24 15:44:40");
        assert_eq!(cdr.source_id.as_deref(), Some("SIP/100-00000000/SIP/700-00000001/2015-03-24 15:44:40"));
        assert_eq!(cdr.linked_id, None);
        let error = one_error(&file(&[with(&[(CHANNEL, "")])[..16].to_vec()]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("channel"));
        // 21 columns: linkedid and sequence.
        let mut row = fields();
        row.extend(["".to_string(), "1427211879.0".to_string(), "7".to_string()]);
        let mut unlinked = row.clone();
        unlinked[LINKEDID] = String::new();
        unlinked[SEQUENCE] = "8".into();
        let outcome = read_ok(&file(&[row, unlinked]), Tz::UTC);
        assert_eq!(at(&outcome, 1).call_id, "1427211880.0");
        assert_eq!(at(&outcome, 1).linked_id.as_deref(), Some("1427211879.0"));
        assert_eq!(at(&outcome, 1).source_id.as_deref(), Some("1427211880.0/7"));
        assert_eq!(at(&outcome, 2).linked_id, None);
        assert_eq!(at(&outcome, 2).source_id.as_deref(), Some("1427211880.0/8"));
    }

    #[test]
    fn bad_dates_name_the_field() {
        for (index, name) in [(START, "start"), (ANSWER, "answer"), (END, "end")] {
            let error = one_error(&file(&[with(&[(index, "2015-02-30 10:00:00")])]), Tz::UTC);
            assert_eq!((error.line, error.field.as_deref()), (1, Some(name)));
            assert!(error.reason.contains("`2015-02-30 10:00:00`"), "{error}");
        }
        let error = one_error(&file(&[with(&[(START, "24/03/2015 15:44")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("start"));
        let error = one_error(&file(&[with(&[(END, "")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("end"));
        let error = one_error(&file(&[with(&[(START, "1969-12-31 23:59:59")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("start"));
    }

    #[test]
    fn daylight_saving_changes() {
        let london = Tz::Europe__London;
        // 2026-03-29 01:30 does not exist in London (01:00 GMT -> 02:00 BST).
        let gap = with(&[
            (START, "2026-03-29 01:30:00"),
            (ANSWER, "2026-03-29 01:30:02"),
            (END, "2026-03-29 01:30:10"),
        ]);
        let error = one_error(&file(std::slice::from_ref(&gap)), london);
        assert_eq!((error.line, error.field.as_deref()), (1, Some("start")));
        assert!(error.reason.contains("does not exist in Europe/London"), "{error}");
        // The same times are fine in UTC.
        assert_eq!(read_ok(&file(&[gap]), Tz::UTC).cdrs.len(), 1);
        // 2026-10-25 01:30 happens twice (BST, then GMT): the earlier, 00:30 UTC.
        let twice = with(&[
            (START, "2026-10-25 01:30:00"),
            (ANSWER, "2026-10-25 01:30:02"),
            (END, "2026-10-25 01:30:10"),
        ]);
        let outcome = read_ok(&file(&[twice]), london);
        let cdr = at(&outcome, 1);
        let expected = 1_792_888_200_000; // 2026-10-25T00:30:00Z
        assert_eq!(ms(&cdr.start), expected);
        assert_eq!(cdr.answer.as_ref().map(ms), Some(expected + 2_000));
        assert_eq!(ms(&cdr.end), expected + 10_000);
        // Summer time otherwise applies: 2026-07-01 12:00 in London is 11:00 UTC.
        let summer = with(&[
            (START, "2026-07-01 12:00:00"),
            (ANSWER, "2026-07-01 12:00:02"),
            (END, "2026-07-01 12:00:10"),
        ]);
        assert_eq!(ms(&at(&read_ok(&file(&[summer]), london), 1).start), 1_782_903_600_000);
    }

    #[test]
    fn answered_needs_an_answer() {
        let error = one_error(&file(&[with(&[(ANSWER, "")])]), Tz::UTC);
        assert_eq!((error.line, error.field.as_deref()), (1, Some("answer")));
        assert!(error.reason.contains("ANSWERED"), "{error}");
        let error = one_error(&file(&[with(&[(ANSWER, ""), (BILLSEC, "0")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("answer"));
        // An answer outside [start, end].
        let error = one_error(&file(&[with(&[(ANSWER, "2015-03-24 15:44:39")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("answer"));
    }

    #[test]
    fn unanswered_rows_lose_their_answer() {
        for (text, disposition, cause) in
            [("NO ANSWER", "no-answer", Some(19)), ("BUSY", "busy", Some(17)), ("FAILED", "failed", None)]
        {
            let outcome = read_ok(&file(&[with(&[(DISPOSITION, text)])]), Tz::UTC);
            let cdr = at(&outcome, 1);
            assert_eq!(cdr.answer, None, "{text}");
            assert_eq!(cdr.disposition, disposition);
            assert_eq!(cdr.q850_cause.as_ref().and_then(serde_json::Value::as_u64), cause);
        }
        let outcome = read_ok(&file(&[with(&[(DISPOSITION, "CONGESTION"), (ANSWER, "")])]), Tz::UTC);
        assert_eq!(at(&outcome, 1).disposition, "failed");
        assert_eq!(at(&outcome, 1).q850_cause, Some(serde_json::Value::from(34)));
        let error = one_error(&file(&[with(&[(DISPOSITION, "CANCEL")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("disposition"));
        assert!(error.reason.contains("`CANCEL`"));
    }

    #[test]
    fn durations_are_checked() {
        let error = one_error(&file(&[with(&[(DURATION, "ten")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("duration"));
        let error = one_error(&file(&[with(&[(BILLSEC, "-8")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("billsec"));
        // Within a second is Asterisk's rounding; more is another layout.
        assert_eq!(read_ok(&file(&[with(&[(DURATION, "11"), (BILLSEC, "7")])]), Tz::UTC).cdrs.len(), 1);
        let error = one_error(&file(&[with(&[(DURATION, "12")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("duration"));
        assert!(error.reason.contains("end - start is 10 s"), "{error}");
        let error = one_error(&file(&[with(&[(BILLSEC, "10")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("billsec"));
        let error = one_error(&file(&[with(&[(DURATION, "99999999999999999999")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("duration"));
        // The end before the start.
        let error = one_error(
            &file(&[with(&[(DISPOSITION, "FAILED"), (END, "2015-03-24 15:44:30"), (DURATION, "0")])]),
            Tz::UTC,
        );
        assert_eq!(error.field.as_deref(), Some("end"));
        assert!(error.reason.contains("before start"), "{error}");
    }

    #[test]
    fn parties() {
        let outcome = read_ok(&file(&[with(&[(SRC, " "), (CLID, "\"Bob\"")])]), Tz::UTC);
        assert_eq!(at(&outcome, 1).caller, "anonymous");
        let error = one_error(&file(&[with(&[(DST, "")])]), Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("dst"));
        // An empty src, but a number in clid.
        let outcome = read_ok(&file(&[with(&[(SRC, ""), (CLID, "\"Bob\" < 1001 >")])]), Tz::UTC);
        assert_eq!(at(&outcome, 1).caller, "1001");
        // Surrounding spaces go.
        let outcome = read_ok(&file(&[with(&[(SRC, " +442079460018 "), (DST, " 700")])]), Tz::UTC);
        assert_eq!(
            (at(&outcome, 1).caller.as_str(), at(&outcome, 1).callee.as_str()),
            ("+442079460018", "700")
        );
    }

    #[test]
    fn non_utf8_bytes_matter_only_in_used_fields() {
        let mut bytes = line(&fields()).into_bytes();
        // clid `"Bob"` -> `"B\xa5b"`: not used, fine.
        let at_clid = bytes.windows(3).position(|w| w == b"Bob").unwrap();
        bytes[at_clid + 1] = 0xa5;
        let outcome = read_ok(&bytes, Tz::UTC);
        assert_eq!(outcome.cdrs.len(), 1);
        // src `100` -> `1\xff0`: an error naming src.
        let at_src = bytes.windows(5).position(|w| w == b"\"100\"").unwrap();
        bytes[at_src + 2] = 0xff;
        let error = one_error(&bytes, Tz::UTC);
        assert_eq!(error.field.as_deref(), Some("src"));
        assert!(error.reason.contains("UTF-8"));
    }

    #[test]
    fn source_ids_are_stable_and_distinct() {
        // Three rows of one call (uniqueid): two Dial targets and the Hangup row, then a copy of
        // the second row (the same key), and a row whose own key is that copy's suffixed key.
        let rows = [
            fields(),
            with(&[(DSTCHANNEL, "SIP/701-00000002"), (DISPOSITION, "NO ANSWER")]),
            with(&[(DSTCHANNEL, "")]),
            with(&[(DSTCHANNEL, "SIP/701-00000002"), (DISPOSITION, "NO ANSWER")]),
            with(&[(UNIQUEID, "1427211880.0/SIP/701-00000002/2015-03-24 15:44:40#2"), (DSTCHANNEL, "")]),
        ];
        let bytes = file(&rows);
        let first = read_ok(&bytes, Tz::UTC);
        let again = read_ok(&bytes, Tz::UTC);
        assert_eq!(first, again);
        let ids: Vec<&str> = first.cdrs.iter().filter_map(|c| c.input.source_id.as_deref()).collect();
        assert_eq!(
            ids,
            [
                "1427211880.0/SIP/700-00000001/2015-03-24 15:44:40",
                "1427211880.0/SIP/701-00000002/2015-03-24 15:44:40",
                "1427211880.0//2015-03-24 15:44:40",
                "1427211880.0/SIP/701-00000002/2015-03-24 15:44:40#2",
                "1427211880.0/SIP/701-00000002/2015-03-24 15:44:40#2//2015-03-24 15:44:40",
            ]
        );
        assert!(first.cdrs[..4].iter().all(|c| c.input.call_id == "1427211880.0"));
        // A longer copy of the file (Asterisk appends) keeps the ids of the rows already there.
        let mut longer = bytes.clone();
        longer.extend(file(&[with(&[(UNIQUEID, "1427211999.5")])]));
        let grown = read_ok(&longer, Tz::UTC);
        assert_eq!(grown.cdrs[..5], first.cdrs[..]);
        // Fixture re-imports: identical.
        assert_eq!(read_ok(KARTHIK, Tz::UTC), read_ok(KARTHIK, Tz::UTC));
    }

    #[test]
    fn source_ids_never_repeat() {
        let mut ids = SourceIds::default();
        let keys = ["a", "a#2", "a", "a", "a#3", "a#2", "b", "a#2#2"];
        let given: Vec<String> = keys.iter().map(|k| ids.assign(k.to_string())).collect();
        let distinct: HashSet<&String> = given.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{given:?}");
        assert_eq!(given[0], "a");
        assert_eq!(given[1], "a#2");
        assert_eq!(given[2], "a#3");
    }

    #[test]
    fn lines_count_multi_line_fields() {
        let first = with(&[(CLID, "\"Bob\nSmith\" <100>")]);
        let outcome = read_ok(&file(&[first, with(&[(UNIQUEID, "2.0")])]), Tz::UTC);
        assert_eq!(outcome.cdrs.iter().map(|c| c.line).collect::<Vec<_>>(), [1, 3]);
    }

    /// Formats epoch seconds as local wall-clock text at a fixed offset.
    fn wall_clock(seconds: i64, offset_seconds: i64) -> String {
        chrono::DateTime::from_timestamp(seconds + offset_seconds, 0)
            .unwrap()
            .naive_utc()
            .format(TIME_FORMAT)
            .to_string()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read(&bytes, Tz::UTC);
        }

        #[test]
        fn mutated_rows_never_panic(
            edits in proptest::collection::vec((0usize..400, prop::sample::select(
                b"\",\n\r 0123456789-:ANSWERED\xa5\xff<>".to_vec())), 0..12),
            columns in prop::sample::select(vec![16usize, 18, 19, 21]),
        ) {
            let mut row = fields();
            row.extend(["".to_string(), "1.0".to_string(), "3".to_string()]);
            row.truncate(columns);
            let mut bytes = file(&[row.clone(), row]);
            for (at, byte) in edits {
                if let Some(slot) = bytes.get_mut(at) {
                    *slot = byte;
                }
            }
            let _ = read(&bytes, Tz::Europe__London);
        }

        #[test]
        fn generated_rows_round_trip(
            calls in proptest::collection::vec(
                (946_684_800i64..2_000_000_000, 0i64..120, 0i64..7_200, 0usize..5, "[0-9]{3,12}", "[0-9]{3,12}"),
                1..6,
            ),
            columns in prop::sample::select(vec![16usize, 18, 21]),
            tokyo in any::<bool>(),
        ) {
            // Asia/Tokyo has had no daylight saving since 1951: a fixed +9 h.
            let (timezone, offset) = if tokyo { (Tz::Asia__Tokyo, 9 * 3600) } else { (Tz::UTC, 0) };
            let dispositions = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"];
            let mut rows = Vec::new();
            for (i, (start, ring, talk, disposition, src, dst)) in calls.iter().enumerate() {
                let answered = *disposition == 0;
                let answer = start + ring;
                let end = if answered { answer + talk } else { answer };
                let mut row = with(&[
                    (SRC, src),
                    (DST, dst),
                    (START, &wall_clock(*start, offset)),
                    (ANSWER, &if answered { wall_clock(answer, offset) } else { String::new() }),
                    (END, &wall_clock(end, offset)),
                    (DURATION, &(end - start).to_string()),
                    (BILLSEC, &if answered { talk.to_string() } else { "0".to_string() }),
                    (DISPOSITION, dispositions[*disposition]),
                    (UNIQUEID, &format!("{start}.{i}")),
                ]);
                row.extend(["".to_string(), format!("{start}.0"), i.to_string()]);
                row.truncate(columns);
                rows.push(row);
            }
            let outcome = read_ok(&file(&rows), timezone);
            prop_assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            prop_assert_eq!(outcome.cdrs.len(), calls.len());
            for (i, (cdr, (start, ring, talk, disposition, src, dst))) in outcome.cdrs.iter().zip(&calls).enumerate() {
                let answered = *disposition == 0;
                let input = &cdr.input;
                prop_assert_eq!(cdr.line, i + 1);
                prop_assert_eq!(&input.caller, src);
                prop_assert_eq!(&input.callee, dst);
                let start_ms = u64::try_from(*start).unwrap() * 1000;
                prop_assert_eq!(ms(&input.start), start_ms);
                let ring_ms = u64::try_from(*ring).unwrap() * 1000;
                let talk_ms = u64::try_from(*talk).unwrap() * 1000;
                if answered {
                    prop_assert_eq!(input.answer.as_ref().map(ms), Some(start_ms + ring_ms));
                    prop_assert_eq!(ms(&input.end), start_ms + ring_ms + talk_ms);
                } else {
                    prop_assert_eq!(input.answer.as_ref(), None);
                    prop_assert_eq!(ms(&input.end), start_ms + ring_ms);
                }
                prop_assert_eq!(input.linked_id.is_some(), columns == 21);
                if columns == 16 {
                    prop_assert_eq!(&input.call_id, &format!("SIP/100-00000000@{}", wall_clock(*start, offset)));
                } else {
                    prop_assert_eq!(&input.call_id, &format!("{start}.{i}"));
                }
            }
            let ids: HashSet<&str> = outcome.cdrs.iter().filter_map(|c| c.input.source_id.as_deref()).collect();
            prop_assert_eq!(ids.len(), calls.len());
        }
    }
}
