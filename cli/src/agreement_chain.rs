//! `cdrchain agreement propose|accept|show`: agreements on the chain, sealed to the pair, through
//! the operator's own node (which seals, opens and signs; issue #28).

use std::path::PathBuf;

use anyhow::{bail, Context};
use cdrchain_node::rpc::api::{AgreementApiClient, SystemApiClient};
use cdrchain_rating::Agreement;
use serde_json::Value;

use crate::rpc_client::{ReadRpc, RpcClient};

/// `agreement propose`: checks the document, works out the counterparty and the next version,
/// and has the node seal and sign it.
pub async fn propose(file: PathBuf, version: Option<u32>, rpc: ReadRpc) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let agreement = Agreement::from_json(&text).with_context(|| format!("{} is refused", file.display()))?;
    let client = rpc.client()?;
    let me = client.ask(client.api().properties()).await.context("asking the node who it is")?.operator;
    let counterparty = if agreement.a == me {
        agreement.b.clone()
    } else if agreement.b == me {
        agreement.a.clone()
    } else {
        bail!(
            "the agreement is between `{}` and `{}`, and this node's operator is `{me}`",
            agreement.a,
            agreement.b
        );
    };
    let version = match version {
        Some(version) => version,
        None => next_version(&client, &me, &counterparty).await?,
    };
    let answer = client
        .ask(client.api().agreement_propose(counterparty.clone(), version, text))
        .await
        .context("proposing the agreement")?;
    println!(
        "proposed agreement {} (version {version}) to `{counterparty}`, commitment {}",
        field(&answer, "agreement"),
        field(&answer, "commitment")
    );
    println!("`{counterparty}` accepts it with `cdrchain agreement accept {}`", field(&answer, "agreement"));
    Ok(())
}

/// One above the pair's accepted version (1 for a first agreement).
async fn next_version(client: &RpcClient, me: &str, counterparty: &str) -> anyhow::Result<u32> {
    let list = client
        .ask(client.api().agreement_list(me.to_string(), counterparty.to_string()))
        .await
        .context("reading the pair's agreements")?;
    let in_force = list["in_force"]["version"].as_u64().unwrap_or(0);
    u32::try_from(in_force + 1).context("the pair's versions are used up")
}

/// `agreement accept`: reads the opening through the node, checks the document names this pair
/// and passes every rule, then has the node sign the acceptance.
pub async fn accept(id: String, rpc: ReadRpc) -> anyhow::Result<()> {
    let client = rpc.client()?;
    let record = client.ask(client.api().agreement_get(id.clone())).await.context("reading the agreement")?;
    if record.is_null() {
        bail!("no agreement {id} on the chain (the proposal may not be committed yet)");
    }
    let Some(document) = record["opening"]["document"].as_str() else {
        bail!(
            "the node cannot open agreement {id}: {}",
            record["opening"]["error"].as_str().unwrap_or("it is not sealed to this node's operator")
        );
    };
    let agreement = Agreement::from_json(document).context("the proposed agreement is refused")?;
    let (a, b) = (field(&record, "a"), field(&record, "b"));
    if !((agreement.a == a && agreement.b == b) || (agreement.a == b && agreement.b == a)) {
        bail!(
            "the document is between `{}` and `{}`, but was proposed by `{a}` to `{b}`",
            agreement.a,
            agreement.b
        );
    }
    client.ask(client.api().agreement_accept(id.clone())).await.context("accepting the agreement")?;
    println!("accepted agreement {id} (version {}) of `{a}`", record["version"]);
    Ok(())
}

/// `agreement show ID` or `--a A --b B`.
pub async fn show(
    id: Option<String>,
    pair: Option<(String, String)>,
    json: bool,
    rpc: ReadRpc,
) -> anyhow::Result<()> {
    let client = rpc.client()?;
    if let Some(id) = id {
        let record =
            client.ask(client.api().agreement_get(id.clone())).await.context("reading the agreement")?;
        if json {
            println!("{}", serde_json::to_string_pretty(&record)?);
            return Ok(());
        }
        if record.is_null() {
            bail!("no agreement {id} on the chain");
        }
        print_record(&record);
        match record["opening"]["document"].as_str() {
            Some(document) => match Agreement::from_json(document) {
                Ok(agreement) => print_terms(&agreement),
                Err(e) => println!("  document: does not pass the rules: {e}"),
            },
            None => println!(
                "  document: sealed to the pair ({})",
                record["opening"]["error"].as_str().unwrap_or("this node or token cannot open it")
            ),
        }
        return Ok(());
    }
    let Some((a, b)) = pair else { bail!("name an agreement ID, or a pair with --a and --b") };
    let list =
        client.ask(client.api().agreement_list(a.clone(), b.clone())).await.context("reading the pair")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    match list["in_force"]["agreement"].as_str() {
        Some(id) => {
            println!("`{a}`–`{b}`: version {} in force (agreement {id})", list["in_force"]["version"])
        }
        None => println!("`{a}`–`{b}`: no agreement in force"),
    }
    for record in list["agreements"].as_array().into_iter().flatten() {
        print_record(record);
    }
    Ok(())
}

fn print_record(record: &Value) {
    let accepted =
        record["accepted_at"].as_u64().map_or("not accepted".to_string(), |h| format!("accepted at #{h}"));
    println!(
        "agreement {} version {}: `{}` → `{}`, proposed at #{}, {accepted}; commitment {}",
        field(record, "id"),
        record["version"],
        field(record, "a"),
        field(record, "b"),
        record["proposed_at"],
        field(record, "commitment")
    );
}

fn print_terms(agreement: &Agreement) {
    println!(
        "  between `{}` (a) and `{}` (b), in {}, time zone {}",
        agreement.a, agreement.b, agreement.currency, agreement.time_zone
    );
    print_tariffs(agreement);
}

/// One line per tariff: when it applies from, and each direction's rates and increments.
pub fn print_tariffs(agreement: &Agreement) {
    for tariff in &agreement.tariffs {
        println!(
            "  from {}: a→b {} rates ({}), b→a {} rates ({})",
            tariff.effective_from,
            tariff.a_to_b.rates.len(),
            tariff.a_to_b.increment,
            tariff.b_to_a.rates.len(),
            tariff.b_to_a.increment
        );
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or("?")
}
