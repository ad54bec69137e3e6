use proptest::prelude::*;

use super::*;
use crate::party::{NormalizedParty, PartyHasher};

fn rules(config: SourceRulesConfig) -> SourceRules {
    SourceRules::new(&config).expect("valid rules")
}

fn gb_pbx() -> SourceRules {
    rules(SourceRulesConfig {
        sources: vec!["pbx-lon".into()],
        region: Some("GB".into()),
        international_prefixes: vec!["00".into(), "011".into()],
        country_code_without_plus: true,
        national_prefix: Some("0".into()),
    })
}

#[test]
fn the_table_of_the_module_docs() {
    let r = gb_pbx();
    let cases = [
        ("+44 20 7946 0018", "+44 20 7946 0018"),
        ("00442079460018", "+442079460018"),
        ("011 44 20 7946 0018", "+442079460018"),
        ("020 7946 0018", "+442079460018"),
        ("442079460018", "+442079460018"),
        // The UK drama range is not valid in the metadata: the national prefix still gives the
        // E.164 shape, which the hasher then records as written.
        ("07700 900123", "+447700900123"),
        ("sip:00442079460018@trunk.example;user=phone", "+442079460018"),
        ("tel:020-7946-0018;phone-context=example.com", "+442079460018"),
        ("1001", "1001"),
        ("ch1", "ch1"),
        ("sip:alice@example.com", "sip:alice@example.com"),
        ("00", "00"),
    ];
    for (raw, want) in cases {
        assert_eq!(r.rewrite(raw), want, "{raw}");
    }
}

#[test]
fn each_rule_alone() {
    let only = |config: SourceRulesConfig| rules(SourceRulesConfig { sources: vec!["s".into()], ..config });
    let idd = only(SourceRulesConfig { international_prefixes: vec!["011".into()], ..Default::default() });
    assert_eq!(idd.rewrite("01149309018200"), "+49309018200");
    assert_eq!(idd.rewrite("00493090182"), "00493090182", "00 is not this source's prefix");
    let cc = only(SourceRulesConfig { country_code_without_plus: true, ..Default::default() });
    assert_eq!(cc.rewrite("4930901820"), "+4930901820");
    assert_eq!(cc.rewrite("999123456789"), "999123456789", "no valid number with a +");
    let de = only(SourceRulesConfig { region: Some("DE".into()), ..Default::default() });
    assert_eq!(de.rewrite("030 901820"), "+4930901820");
    let ru = only(SourceRulesConfig {
        region: Some("RU".into()),
        national_prefix: Some("8".into()),
        ..Default::default()
    });
    assert_eq!(ru.rewrite("8 999 000 00 00"), "+79990000000");
}

#[test]
fn with_the_rules_national_and_bare_numbers_hash_like_e164() {
    let hasher = PartyHasher::new(b"cdrchain test consortium secret!", None).expect("a hasher");
    let r = gb_pbx();
    let e164 = hasher.digest("+442079460018").expect("a digest");
    for raw in ["020 7946 0018", "00442079460018", "442079460018", "sip:02079460018@pbx.example"] {
        assert_eq!(hasher.digest(&r.rewrite(raw)).expect("a digest"), e164, "{raw}");
        let (digest, as_written) = hasher.digest_flagged(raw).expect("recorded");
        assert_ne!(digest, e164, "{raw} without rules");
        // A digit user of a SIP URI stays a SIP URI without rules; plain digits are as written.
        assert_eq!(as_written, !raw.starts_with("sip:"), "{raw}");
    }
    assert!(matches!(hasher.normalize("020 7946 0018"), Ok(NormalizedParty::AsWritten(_))));
}

#[test]
fn bad_configurations_are_refused_with_the_reason() {
    let bad = |config: SourceRulesConfig| NumberRules::new(&[config]).expect_err("refused").to_string();
    let base = || SourceRulesConfig { sources: vec!["pbx".into()], ..Default::default() };
    assert!(bad(SourceRulesConfig { region: Some("UK".into()), ..base() }).contains("unknown region"));
    assert!(bad(SourceRulesConfig { international_prefixes: vec!["+".into()], ..base() }).contains("prefix"));
    assert!(bad(SourceRulesConfig { national_prefix: Some("0".into()), ..base() }).contains("needs a region"));
    assert!(bad(SourceRulesConfig { sources: vec![], ..base() }).contains("name no source"));
    let twice = NumberRules::new(&[base(), base()]).expect_err("refused");
    assert_eq!(twice, RulesError::Duplicate { name: "pbx".into() });
}

#[test]
fn a_source_without_rules_takes_the_fallback() {
    let rules = NumberRules::new(&[
        SourceRulesConfig { sources: vec!["pbx".into()], region: Some("GB".into()), ..Default::default() },
        SourceRulesConfig { sources: vec!["*".into()], region: Some("DE".into()), ..Default::default() },
    ])
    .expect("valid rules");
    assert_eq!(
        rules.for_source("pbx").map(|r| r.rewrite("020 7946 0018").into_owned()),
        Some("+442079460018".into())
    );
    assert_eq!(
        rules.for_source("other").map(|r| r.rewrite("030 901820").into_owned()),
        Some("+4930901820".into())
    );
    assert!(NumberRules::new(&[]).expect("no rules").for_source("pbx").is_none());
}

proptest! {
    /// Rules never panic, and what they rewrite is a `+` number the hasher reads or records.
    #[test]
    fn rewriting_never_panics_and_gives_a_plus_number(raw in "(sip:|tel:)?[0-9 +().-]{0,24}(@x\\.example)?") {
        let rewritten = gb_pbx().rewrite(&raw);
        if rewritten != raw {
            prop_assert!(rewritten.starts_with('+'), "{raw:?} -> {rewritten:?}");
            let hasher = PartyHasher::new(b"cdrchain test consortium secret!", None).expect("a hasher");
            prop_assert!(hasher.digest(&rewritten).is_ok());
        }
    }
}
