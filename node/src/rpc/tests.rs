//! The method table against README.md, and the wire shape of a few methods, on a dev node's
//! RPC module (no server: calls go straight to the module).

use std::collections::BTreeSet;
use std::sync::Arc;

use cdrchain_chain_spec::ChainSpec;
use jsonrpsee::core::server::MethodsError;
use jsonrpsee::server::RpcModule;
use serde_json::{json, Value};

use super::{module, RpcContext};
use crate::chain::Chain;
use crate::metrics::Metrics;
use crate::validator::ConsensusStatus;

/// A dev chain's RPC module on a fresh database with ingest started (the ingest tests'
/// fixture); the database directory and the ingest stop signal live as long as it.
struct Fixture {
    module: RpcModule<()>,
    _ingest: crate::ingest::tests::Fixture,
}

fn dev_module() -> Fixture {
    let ingest = crate::ingest::tests::start(100, 1_000, 10_000);
    let chain = Arc::new(Chain::new(ingest.storage.clone(), ChainSpec::dev(), Arc::new(Metrics::new())));
    let ctx = RpcContext {
        chain,
        ingest: ingest.ingest.arc(),
        pool: ingest.pool.clone(),
        tokens: super::access::Tokens::default(),
        status: Arc::new(ConsensusStatus::default()),
        heavy: Default::default(),
        signer: (
            cdrchain_runtime::ids::OperatorId::new("alice").unwrap(),
            Arc::new(crate::keys::KeyRing::new(
                cdrchain_chain_spec::DevAccount::derive("alice").signing_key,
                None,
                None,
                None,
            )),
        ),
        anchor: None,
    };
    Fixture { module: module(Arc::new(ctx)).expect("the RPC methods register"), _ingest: ingest }
}

/// The RPC method names README.md documents: the backticked `namespace_method` names in the first
/// column of its method table (a Markdown table whose header's first cell is "method"). A name
/// may be followed by its parameters, `cdr_proof(id)`.
fn readme_methods(readme: &str, namespaces: &BTreeSet<&str>) -> BTreeSet<String> {
    let name_of = |code: &str| -> Option<String> {
        let name = code.split('(').next()?.trim();
        let (namespace, method) = name.split_once('_')?;
        let is_method = namespaces.contains(namespace)
            && method.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && method.chars().all(|c| c.is_ascii_alphanumeric());
        is_method.then(|| name.to_string())
    };
    let backticked =
        |text: &str| -> Vec<String> { text.split('`').skip(1).step_by(2).filter_map(name_of).collect() };
    let lines: Vec<&str> = readme.lines().collect();
    let table = lines.iter().position(|line| {
        line.trim_start().starts_with('|')
            && line.trim_start().trim_start_matches('|').trim().to_ascii_lowercase().starts_with("method")
    });
    let header =
        table.expect("README.md has no table of RPC methods (a header whose first cell is \"method\")");
    lines[header + 1..]
        .iter()
        .take_while(|line| line.trim_start().starts_with('|'))
        .filter_map(|row| row.trim_start().trim_start_matches('|').split('|').next())
        .flat_map(backticked)
        .collect()
}

#[tokio::test]
async fn every_method_is_in_the_readme_table_and_back() {
    let fixture = dev_module();
    let registered: BTreeSet<String> = fixture.module.method_names().map(str::to_string).collect();
    let namespaces: BTreeSet<&str> =
        registered.iter().filter_map(|m| m.split_once('_')).map(|(ns, _)| ns).collect();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let documented = readme_methods(&readme, &namespaces);
    // An unsubscribe method goes with its subscription: README need not list it.
    let implied = |name: &String| {
        name.split_once("_unsubscribe")
            .is_some_and(|(ns, rest)| registered.contains(&format!("{ns}_subscribe{rest}")))
    };
    let code: BTreeSet<String> = registered.iter().filter(|m| !implied(m)).cloned().collect();
    let documented: BTreeSet<String> = documented.into_iter().filter(|m| !implied(m)).collect();
    let undocumented: Vec<&String> = code.difference(&documented).collect();
    let unregistered: Vec<&String> = documented.difference(&code).collect();
    assert!(undocumented.is_empty(), "RPC methods missing from README.md's method table: {undocumented:?}");
    assert!(
        unregistered.is_empty(),
        "README.md documents RPC methods the node does not have: {unregistered:?}"
    );
    assert!(code.len() >= 20, "fewer methods than expected: {code:?}");
}

#[test]
fn readme_table_rows_name_the_methods() {
    let namespaces: BTreeSet<&str> = ["cdr", "chain"].into();
    let table = "intro\n\n| Method | Parameters | Who |\n| --- | --- | --- |\n\
                 | `cdr_get(id)` | id | anyone |\n| `chain_getHeader` | at? | anyone |\n\nafter `cdr_submit`\n";
    let expected: BTreeSet<String> = ["cdr_get".to_string(), "chain_getHeader".to_string()].into();
    assert_eq!(readme_methods(table, &namespaces), expected);
}

#[tokio::test]
async fn positional_parameters_and_result_shapes() {
    let fixture = dev_module();
    let module = &fixture.module;
    let health: Value = module.call("system_health", [(); 0]).await.unwrap();
    assert_eq!(
        health,
        json!({"peers": 0, "isSyncing": false, "shouldHavePeers": false, "best": 0, "finalized": 0})
    );
    let properties: Value = module.call("system_properties", [(); 0]).await.unwrap();
    assert_eq!(properties["operator"], "alice");
    assert_eq!(properties["chain"], "dev");
    // Trailing optional parameters may be left out, or given as null.
    let none: Value = module.call("chain_getHeader", [(); 0]).await.unwrap();
    let null: Value = module.call("chain_getHeader", [Value::Null]).await.unwrap();
    assert_eq!(none, null);
    let missing: Value = module.call("cdr_get", ["alice:0"]).await.unwrap();
    assert_eq!(missing, Value::Null);
    let status: Value = module.call("cdr_status", ["alice:0"]).await.unwrap();
    assert_eq!(status, json!({"status": "unknown"}));
    match module.call::<_, Value>("cdr_get", ["not an id"]).await {
        Err(MethodsError::JsonRpc(e)) => assert_eq!(e.code(), super::INVALID_PARAMS, "{e:?}"),
        other => panic!("a malformed id must be invalid params: {other:?}"),
    }
    let page: Value = module.call("cdr_query", ("alice", "bob", 0, 1_000)).await.unwrap();
    assert_eq!(page, json!({"cdrs": [], "next_cursor": null}));
    let set: Value = module.call("authority_set", [(); 0]).await.unwrap();
    assert_eq!(
        (set["id"].clone(), set["from"].clone(), set["quorum"].clone()),
        (json!(0), json!(1), json!(1))
    );
    assert_eq!(set["authorities"][0]["id"], "alice");
    let pending: Value = module.call("authority_pending", [(); 0]).await.unwrap();
    assert_eq!(pending, json!({"proposal": null, "scheduled": null}));
    match module.call::<_, Value>("authority_set", [0]).await {
        Err(MethodsError::JsonRpc(e)) => assert_eq!(e.code(), super::INVALID_PARAMS, "{e:?}"),
        other => panic!("height 0 must be invalid params: {other:?}"),
    }
    let check: Value = module.call("cdr_check", [[json!({"call_id": 1})]]).await.unwrap();
    assert_eq!(check["duplicates"], json!([]));
    assert_eq!(check["errors"][0]["index"], 0);
}

#[tokio::test]
async fn the_readme_says_who_may_call_each_method_as_the_access_table_does() {
    let fixture = dev_module();
    let registered: BTreeSet<String> = fixture.module.method_names().map(str::to_string).collect();
    for method in &registered {
        assert!(
            super::access::METHODS.iter().any(|(name, _)| name == method),
            "`{method}` is not in access::METHODS: it would be refused to all but admin"
        );
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut checked = 0;
    for row in readme.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').split('(').next().unwrap_or_default();
        if !registered.contains(name) {
            continue;
        }
        let who = cells.last().copied().unwrap_or_default();
        assert_eq!(who, super::access::need_of(name).who(), "README's \"who may call\" of `{name}`");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} README rows checked");
}
