//! `cdrchain gap declare`: declare a range of this node's own stream a gap (review M8), when
//! queued CDRs there can never be committed (damaged, or refused by the chain's rules).

use anyhow::Context;
use cdrchain_node::rpc::api::CdrApiClient;

use crate::rpc_client::RpcClient;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Declare sequences FROM..=TO of OPERATOR's stream a gap: the node's queued CDRs there are
    /// quarantined (kept in its database, and listed here) and a signed `SequenceGap` with the
    /// reason takes their place on the chain, so the CDRs behind them are committed again. FROM
    /// must be the chain's next sequence for OPERATOR, which must be the node's own operator.
    Declare {
        /// The node's operator.
        operator: String,
        /// The first sequence of the gap (the chain's next one for the operator).
        from: u64,
        /// The last sequence of the gap, inclusive.
        to: u64,
        /// Why: recorded on the chain with the gap, for every partner to read.
        #[arg(long)]
        reason: String,
        /// The node's RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
        rpc: String,
        /// Bearer token with the `admin` role, when the node requires one.
        #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Declare { operator, from, to, reason, rpc, token } = command;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let client = RpcClient::new(&rpc, token)?;
        let answer = client
            .ask(client.api().declare_gap(operator.clone(), from, to, reason))
            .await
            .context("declaring the gap")?;
        println!("declared {operator}:{from} to {operator}:{to} a gap; quarantined:");
        for item in answer["quarantined"].as_array().into_iter().flatten() {
            println!("  {}  {}", item["id"].as_str().unwrap_or("?"), item["what"].as_str().unwrap_or("?"));
        }
        println!("the batcher signs the gap once the chain reaches {operator}:{from}");
        Ok(())
    })
}
