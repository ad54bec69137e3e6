//! `cdrchain cdr get`: look up committed CDRs on a node.

use anyhow::Context;
use cdrchain_node::rpc::api::CdrApiClient;
use serde_json::Value;

use crate::rpc_client::RpcClient;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print one CDR by id (`operator:sequence`) or every CDR with a call id.
    Get {
        /// `operator:sequence`, e.g. `alice:42`.
        #[arg(required_unless_present = "call_id")]
        id: Option<String>,
        /// Look up by SIP Call-ID instead.
        #[arg(long, conflicts_with = "id")]
        call_id: Option<String>,
        /// The node's RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
        rpc: String,
        /// Bearer token (a `read` role is enough), when the node requires one.
        #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Get { id, call_id, rpc, token } = command;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let client = RpcClient::new(&rpc, token)?;
        let node = client.api();
        let result = match (&id, &call_id) {
            (Some(id), _) => client.ask(node.cdr(id.clone())).await?.unwrap_or(Value::Null),
            (None, Some(call_id)) => Value::Array(client.ask(node.by_call_id(call_id.clone())).await?),
            (None, None) => anyhow::bail!("give an id or --call-id"),
        };
        if result.is_null() || result.as_array().is_some_and(Vec::is_empty) {
            anyhow::bail!(
                "no committed CDR {}",
                id.or(call_id.map(|c| format!("with call id `{c}`"))).unwrap_or_default()
            );
        }
        println!("{}", serde_json::to_string_pretty(&result)?);
        Ok(())
    })
}
