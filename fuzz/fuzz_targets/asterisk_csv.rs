//! Asterisk cdr_csv Master.csv (16, 18 or 21 columns, any bytes): reading it never panics.
#![no_main]

use cdrchain_formats::{asterisk, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = asterisk::Options { timezone: chrono_tz::Europe::London };
    let _ = asterisk::parse(data, &Context::new("alice"), &options);
});
