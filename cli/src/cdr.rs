//! `cdrchain cdr get`: look up committed CDRs on a node, by id, call id or telephone number.

use anyhow::Context;
use cdrchain_node::rpc::api::{CdrApiClient, SystemApiClient};
use serde_json::Value;

use crate::party_secret::PartySecret;
use crate::rpc_client::RpcClient;

/// Most pages `--number` asks for: the node answers at most 1,000 records a page, and a page
/// may hold none of them for a partner's token while the party has more further back.
const MAX_PARTY_PAGES: usize = 1_000;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print one CDR by id (`operator:sequence`), every CDR with a call id, or the newest CDRs
    /// of a telephone number or SIP address.
    Get {
        /// `operator:sequence`, e.g. `alice:42`.
        #[arg(required_unless_present_any = ["call_id", "number"])]
        id: Option<String>,
        /// Look up by SIP Call-ID instead.
        #[arg(long, conflicts_with = "id")]
        call_id: Option<String>,
        /// Look up the CDRs a party took part in (caller or callee), newest first: a telephone
        /// number (`+442079460018`, or national with --default-region) or a SIP URI. It is
        /// hashed here with the consortium secret (--consortium-secret-file); only its keyed
        /// digest is sent.
        #[arg(long, conflicts_with_all = ["id", "call_id"])]
        number: Option<String>,
        /// With --number: how many CDRs at most.
        #[arg(long, default_value_t = 100, requires = "number")]
        limit: usize,
        #[command(flatten)]
        parties: PartySecret,
        /// The node's RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
        rpc: String,
        /// Bearer token (a `read` role is enough), when the node requires one.
        #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Get { id, call_id, number, limit, parties, rpc, token } = command;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let client = RpcClient::new(&rpc, token)?;
        let node = client.api();
        let result = match (&id, &call_id, &number) {
            (Some(id), _, _) => client.ask(node.cdr(id.clone())).await?.unwrap_or(Value::Null),
            (None, Some(call_id), _) => Value::Array(client.ask(node.by_call_id(call_id.clone())).await?),
            (None, None, Some(number)) => {
                let dev = client.ask(node.properties()).await.context("asking the node which chain")?.chain
                    == "dev";
                let hasher = parties
                    .hasher(dev, "a number is looked up by its digest keyed with the consortium secret")?;
                let party = hasher.normalize(number).with_context(|| format!("--number {number:?}"))?;
                eprintln!("looking up {} (its keyed digest only)", party.canonical());
                Value::Array(party_cdrs(&client, hasher.digest_normalized(&party).0.to_hex(), limit).await?)
            }
            (None, None, None) => anyhow::bail!("give an id, --call-id or --number"),
        };
        if result.is_null() || result.as_array().is_some_and(Vec::is_empty) {
            anyhow::bail!(
                "no committed CDR {}",
                id.or(call_id.map(|c| format!("with call id `{c}`")))
                    .or(number.map(|n| format!("of `{n}`")))
                    .unwrap_or_default()
            );
        }
        println!("{}", serde_json::to_string_pretty(&result)?);
        Ok(())
    })
}

/// Up to `limit` CDRs of the party `digest`, newest first, page after page: a page may be short
/// (the node's page limit, a partner token's filter) while the party has more.
async fn party_cdrs(client: &RpcClient, digest: String, limit: usize) -> anyhow::Result<Vec<Value>> {
    let node = client.api();
    let (mut cdrs, mut cursor) = (Vec::new(), None);
    for _ in 0..MAX_PARTY_PAGES {
        let wanted = limit.saturating_sub(cdrs.len());
        let page = client.ask(node.by_party(digest.clone(), cursor.take(), Some(wanted))).await?;
        if cdrs.is_empty() && page.indexed_through < page.head {
            eprintln!(
                "the node's party index is at block {} of {}: calls of later blocks are not found yet",
                page.indexed_through, page.head
            );
        }
        cdrs.extend(page.cdrs.into_iter().take(wanted));
        cursor = page.next_cursor;
        if cursor.is_none() || cdrs.len() >= limit {
            break;
        }
    }
    Ok(cdrs)
}
