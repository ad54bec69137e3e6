//! The canonical CSV of `cdrchain submit`: reading never panics, and each row it yields reads as
//! a canonical CDR or is refused with a reason.
#![no_main]

use cdrchain_formats::canonical::csv_records;
use cdrchain_runtime::input::CdrInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(rows) = csv_records(text) else { return };
    for (row, _line) in rows {
        let _ = CdrInput::from_value(row);
    }
});
