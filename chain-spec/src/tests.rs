use super::*;

fn mutate(edit: impl FnOnce(&mut serde_json::Value)) -> Result<ChainSpec, SpecError> {
    let mut value = serde_json::to_value(ChainSpec::local()).unwrap();
    edit(&mut value);
    ChainSpec::from_json(&value.to_string(), "test.json")
}

#[test]
fn built_in_specs_are_valid_and_round_trip_through_json() {
    for spec in [ChainSpec::dev(), ChainSpec::local()] {
        spec.validate().unwrap();
        let again = ChainSpec::from_json(&spec.to_json(), "round-trip").unwrap();
        assert_eq!(again, spec);
        assert_eq!(again.genesis_hash(), spec.genesis_hash());
        assert!(spec.uses_dev_keys());
    }
    assert_eq!(ChainSpec::dev().authorities.len(), 1);
    let local = ChainSpec::local();
    let names: Vec<_> = local.authorities.iter().map(|a| a.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "charlie", "dave"]);
    assert_ne!(ChainSpec::dev().genesis_hash(), local.genesis_hash());
}

#[test]
fn load_reads_built_ins_and_files() {
    assert_eq!(ChainSpec::load("dev").unwrap(), ChainSpec::dev());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, ChainSpec::local().to_json()).unwrap();
    assert_eq!(ChainSpec::load(path.to_str().unwrap()).unwrap(), ChainSpec::local());
    let missing = ChainSpec::load(dir.path().join("nope.json").to_str().unwrap()).unwrap_err();
    assert!(matches!(missing, SpecError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("nope.json"));
}

#[test]
fn every_genesis_field_changes_the_hash_but_the_contract_address_does_not() {
    let base = ChainSpec::local();
    let mut other = base.clone();
    other.params.block_interval_ms += 1;
    assert_ne!(other.genesis_hash(), base.genesis_hash());
    let mut other = base.clone();
    other.name.push('!');
    assert_ne!(other.genesis_hash(), base.genesis_hash());
    let mut other = base.clone();
    other.authorities.reverse();
    assert_ne!(other.genesis_hash(), base.genesis_hash());
    let mut other = base.clone();
    other.params.checkpoint_contract = Some(EvmAddress([7; 20]));
    assert_eq!(other.genesis_hash(), base.genesis_hash());
}

#[test]
fn bad_specs_get_precise_errors() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "duplicate operator id",
            Box::new(|v| v["operators"][1]["id"] = "alice".into()),
            "share the id alice",
        ),
        (
            "duplicate key",
            Box::new(|v| v["operators"][1]["ed25519"] = v["operators"][0]["ed25519"].clone()),
            "share the ed25519 key",
        ),
        (
            "duplicate peer id",
            Box::new(|v| v["operators"][2]["peer_id"] = v["operators"][0]["peer_id"].clone()),
            "share the peer id",
        ),
        (
            "weak key",
            Box::new(|v| {
                v["operators"][0]["ed25519"] =
                    "0x0100000000000000000000000000000000000000000000000000000000000000".into()
            }),
            "operator `alice`: ed25519 key",
        ),
        ("short key", Box::new(|v| v["operators"][0]["ed25519"] = "0x1234".into()), "operators[0].ed25519"),
        (
            "bad peer id",
            Box::new(|v| v["operators"][3]["peer_id"] = "hello".into()),
            "operator `dave`: peer id `hello`",
        ),
        ("no authorities", Box::new(|v| v["authorities"] = serde_json::json!([])), "at least one authority"),
        (
            "unknown authority",
            Box::new(|v| v["authorities"][0] = "mallory".into()),
            "authority `mallory` is not a registered operator",
        ),
        (
            "duplicate authority",
            Box::new(|v| v["authorities"][1] = "alice".into()),
            "authority `alice` is listed twice",
        ),
        (
            "zero interval",
            Box::new(|v| v["params"]["block_interval_ms"] = 0.into()),
            "`block_interval_ms` must not be zero",
        ),
        (
            "zero checkpoint interval",
            Box::new(|v| v["params"]["checkpoint_interval"] = 0.into()),
            "`checkpoint_interval` must not be zero",
        ),
        (
            "huge block",
            Box::new(|v| v["params"]["max_block_bytes"] = 4_000_000_000u32.into()),
            "max_block_bytes",
        ),
        (
            "unknown field",
            Box::new(|v| v["params"]["blok_interval"] = 1.into()),
            "unknown field `blok_interval`",
        ),
        ("bad operator id", Box::new(|v| v["operators"][0]["id"] = "Alice".into()), "operators[0].id"),
        ("bad chain id", Box::new(|v| v["id"] = "My Chain".into()), "`id` `My Chain`"),
        ("empty name", Box::new(|v| v["name"] = " ".into()), "`name` is empty"),
        ("no operators", Box::new(|v| v["operators"] = serde_json::json!([])), "at least one operator"),
    ];
    for (what, edit, expected) in cases {
        let error = mutate(edit).expect_err(what).to_string();
        assert!(error.contains(expected), "{what}: `{error}` should contain `{expected}`");
    }
}

#[test]
fn malformed_json_names_line_and_column() {
    let error = ChainSpec::from_json("{\n  \"name\": 5\n}", "x.json").unwrap_err().to_string();
    assert!(error.contains("x.json") && error.contains("line 2"), "{error}");
    let error = ChainSpec::from_json(&(ChainSpec::dev().to_json() + "x"), "y.json").unwrap_err().to_string();
    assert!(error.contains("y.json"), "{error}");
}

#[test]
fn genesis_state_holds_operators_and_sequences() {
    use cdrchain_runtime::ids::Sequence;
    use cdrchain_runtime::state::StateKey;
    let spec = ChainSpec::local();
    let state = spec.genesis_state().unwrap();
    for operator in &spec.operators {
        let next: Sequence = state.typed(&StateKey::NextSequence(operator.id.clone())).unwrap();
        assert_eq!(next, Sequence(0));
        let record: OperatorRecord = state.typed(&StateKey::Operator(operator.id.clone())).unwrap();
        assert_eq!(record.signing_key, operator.ed25519);
    }
    assert_eq!(spec.authority_keys().len(), 4);
}

#[test]
fn block_limits_are_checked_against_the_minimum_and_the_ceiling() {
    let at = |bytes: u32| mutate(|v| v["params"]["max_block_bytes"] = bytes.into());
    at(MIN_BLOCK_BYTES).unwrap();
    let error = at(MIN_BLOCK_BYTES - 1).unwrap_err().to_string();
    assert!(error.contains("max_block_bytes") && error.contains(&MIN_BLOCK_BYTES.to_string()), "{error}");
    at(u32::try_from(MAX_BLOCK_BYTES_CEILING).unwrap()).unwrap();
    let error = at(u32::try_from(MAX_BLOCK_BYTES_CEILING + 1).unwrap()).unwrap_err().to_string();
    assert!(error.contains(&MAX_BLOCK_BYTES_CEILING.to_string()), "{error}");
}
