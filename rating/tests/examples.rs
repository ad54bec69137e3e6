//! The example agreement of docs/examples/agreement.json, rated by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_rating::agreement::AgreementError;
use cdrchain_rating::{Agreement, Call, Direction, RateError, Rater};

fn rater() -> Rater {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json"))
            .unwrap();
    Rater::new(&Agreement::from_json(&text).unwrap()).unwrap()
}

/// Milliseconds of a UTC time `2026-MM-DDTHH:MM:SSZ`.
fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
}

fn rate(
    direction: Direction,
    start: &str,
    duration_ms: u64,
    destination: &str,
) -> Result<(String, bool, u64, String), RateError> {
    let rated = rater().rate(&Call { direction, start_ms: at(start), duration_ms, destination })?;
    Ok((rated.prefix, rated.peak, rated.billed_seconds, rated.amount.to_string()))
}

#[test]
fn calls_rate_by_prefix_peak_increment_fee_minimum_and_amendment() {
    use Direction::*;
    // Wednesday 10:00 in Madrid (09:00Z), peak: 61.2 s bill as 66 s of 0.025/min = 0.0275.
    assert_eq!(
        rate(AToB, "2026-12-02T09:00:00Z", 61_200, "34612345678"),
        Ok(("346".into(), true, 66, "0.0275".into()))
    );
    // 21:00 in Madrid: off-peak 0.020/min = 0.0220.
    assert_eq!(
        rate(AToB, "2026-12-02T20:00:00Z", 61_200, "34612345678"),
        Ok(("346".into(), false, 66, "0.0220".into()))
    );
    // Saturday 10:00: not a peak day.
    assert!(!rate(AToB, "2026-12-05T09:00:00Z", 61_200, "34612345678").unwrap().1);
    // After the amendment of the 16th, the peak rate is 0.022/min: 0.0242.
    assert_eq!(
        rate(AToB, "2026-12-17T09:00:00Z", 61_200, "34612345678"),
        Ok(("346".into(), true, 66, "0.0242".into()))
    );
    // The amendment starts at local midnight: 23:30Z on the 15th is already the 16th in Madrid.
    let tariff = |start: &str| {
        rater()
            .rate(&Call { direction: AToB, start_ms: at(start), duration_ms: 1_000, destination: "346" })
            .unwrap()
            .tariff
    };
    assert_eq!((tariff("2026-12-15T22:59:59Z"), tariff("2026-12-15T23:00:00Z")), (0, 1));
    // A 7 s call bills the first minute: 0.0100; the longest prefix of a Madrid number is 34 here.
    assert_eq!(
        rate(AToB, "2026-12-02T09:00:00Z", 7_000, "34911234567"),
        Ok(("34".into(), true, 60, "0.0100".into()))
    );
    // b→a: connect fee 0.005 + 0.008 × 66/60 = 0.0138, below the minimum 0.02.
    assert_eq!(
        rate(BToA, "2026-12-02T09:00:00Z", 61_000, "34911234567"),
        Ok(("3491".into(), true, 66, "0.0200".into()))
    );
    // 0.005 + 0.009 × 120/60 = 0.023, above it.
    assert_eq!(rate(BToA, "2026-12-02T09:00:00Z", 120_000, "34811234567").unwrap().3, "0.0230");
    // Unanswered: nothing, not even the connect fee.
    assert_eq!(rate(BToA, "2026-12-02T09:00:00Z", 0, "34811234567").unwrap().3, "0.0000");
    assert_eq!(rate(AToB, "2026-11-30T22:59:59Z", 1_000, "34612345678"), Err(RateError::BeforeAgreement));
    assert_eq!(
        rate(AToB, "2026-12-02T09:00:00Z", 1_000, "12125550100"),
        Err(RateError::NoRate("12125550100".into()))
    );
}

#[test]
fn a_bad_agreement_is_refused_naming_the_field() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json"))
            .unwrap();
    let cases = [
        ("\"60/6\"", "\"60/0\"", "increment `60/0`"),
        ("\"Europe/Madrid\"", "\"Europe/Atlantis\"", "time_zone"),
        ("\"0.0250\"", "\"0.02500000001\"", "decimal places"),
        (
            "\"346\", \"name\": \"Spain mobile\", \"per_minute\": \"0.0250\"",
            "\"+346\", \"name\": \"Spain mobile\", \"per_minute\": \"0.0250\"",
            "prefix `+346`",
        ),
        ("\"EUR\"", "\"euro\"", "currency"),
        ("\"2026-12-16T00:00:00+01:00\"", "\"2026-11-16T00:00:00+01:00\"", "tariffs[1] does not start after"),
        ("\"from\": \"08:00\"", "\"from\": \"8h\"", "peak time `8h`"),
    ];
    for (from, to, named) in cases {
        assert!(text.contains(from), "{from}");
        let error = Agreement::from_json(&text.replacen(from, to, 1)).unwrap_err().to_string();
        assert!(error.contains(named), "{to}: {error}");
    }
    let error = Agreement::from_json(&text.replace("\"version\": 1", "\"version\": 2")).unwrap_err();
    assert!(matches!(error, AgreementError::Format { version: 2, .. }));
}

/// docs/schemas/agreement.schema.json takes the example, and refuses what the format refuses and
/// a schema can express.
#[test]
fn the_published_schema_takes_the_example_and_refuses_broken_ones() {
    let read = |path: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let schema = jsonschema::validator_for(&read("docs/schemas/agreement.schema.json")).unwrap();
    let example = read("docs/examples/agreement.json");
    assert!(schema.is_valid(&example));
    let text = example.to_string();
    for (from, to) in [
        ("\"60/6\"", "\"60/0\""),
        ("\"EUR\"", "\"euro\""),
        ("\"0.0250\"", "\"0.02500000001\""),
        ("\"prefix\":\"346\"", "\"prefix\":\"+346\""),
        ("\"from\":\"08:00\"", "\"from\":\"8h\""),
        ("\"half-up\"", "\"nearest\""),
        ("\"version\":1", "\"version\":2"),
        ("\"name\":\"Spain\"", "\"name\":\"Spain\",\"colour\":\"red\""),
    ] {
        assert!(text.contains(from), "{from}");
        let broken: serde_json::Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        assert!(!schema.is_valid(&broken), "the schema takes {to}");
        assert!(Agreement::from_json(&broken.to_string()).is_err(), "the format takes {to}");
    }
}
