//! `cdrchain authority show`: the authority set of a height and the change in flight, from a
//! node (issue #27; proposing and approving changes follow).

use anyhow::Context;
use cdrchain_node::rpc::api::AuthorityApiClient;
use serde_json::Value;

use crate::rpc_client::RpcClient;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The set that certifies a height (default: the next) with each authority's keys, and the
    /// open proposal and the scheduled change, if any.
    Show {
        /// The height whose set to show (default: the node's next height).
        #[arg(long)]
        at: Option<u64>,
        /// Print the node's JSON answers as they are.
        #[arg(long)]
        json: bool,
        /// The node's RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
        rpc: String,
        /// Bearer token with the `read` role, when the node requires one.
        #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Show { at, json, rpc, token } = command;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let client = RpcClient::new(&rpc, token)?;
        let set = client.ask(client.api().authority_set(at)).await.context("reading the authority set")?;
        let pending =
            client.ask(client.api().authority_pending()).await.context("reading the change in flight")?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"set": set, "pending": pending}))?
            );
            return Ok(());
        }
        print!("{}", describe(&set, &pending));
        Ok(())
    })
}

/// The set and the change in flight as an operator reads them.
fn describe(set: &Value, pending: &Value) -> String {
    let mut out = format!(
        "authority set {} from height {} ({} authorities, quorum {})\n",
        set["id"],
        set["from"],
        set["authorities"].as_array().map_or(0, Vec::len),
        set["quorum"]
    );
    for member in set["authorities"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<16} ed25519 {}  evm {}\n",
            member["id"].as_str().unwrap_or("?"),
            member["ed25519"].as_str().unwrap_or("?"),
            member["evm_address"].as_str().unwrap_or("?")
        ));
    }
    match &pending["proposal"] {
        Value::Null => out.push_str("no open proposal\n"),
        proposal => out.push_str(&format!(
            "open proposal {}: {} `{}` by {}, approved by {} (expires at {} ms)\n",
            proposal["id"].as_str().unwrap_or("?"),
            proposal["change"]["kind"].as_str().unwrap_or("?"),
            subject(&proposal["change"]),
            proposal["proposer"].as_str().unwrap_or("?"),
            proposal["approvals"].as_array().map_or(String::new(), |a| {
                a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
            }),
            proposal["expires_at_ms"]
        )),
    }
    match &pending["scheduled"] {
        Value::Null => out.push_str("no scheduled change\n"),
        scheduled => out.push_str(&format!(
            "scheduled: {} `{}`, approved at {}, in force from height {}\n",
            scheduled["change"]["kind"].as_str().unwrap_or("?"),
            subject(&scheduled["change"]),
            scheduled["approved_at"],
            scheduled["set"]["from"]
        )),
    }
    out
}

fn subject(change: &Value) -> &str {
    change["id"].as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_set_and_a_pending_change_read_as_sentences() {
        let set = json!({"id": 1, "from": 7, "quorum": 3, "authorities": [
            {"id": "alice", "ed25519": "0xaa", "evm_address": "0x01"},
            {"id": "bob", "ed25519": "0xbb", "evm_address": "0x02"},
        ]});
        let pending = json!({
            "proposal": {"id": "0x99", "proposer": "alice", "change": {"kind": "remove", "id": "dave"},
                         "approvals": ["alice", "bob"], "expires_at_ms": 5},
            "scheduled": null,
        });
        let text = super::describe(&set, &pending);
        assert!(text.starts_with("authority set 1 from height 7 (2 authorities, quorum 3)\n"), "{text}");
        assert!(text.contains("  bob              ed25519 0xbb  evm 0x02\n"), "{text}");
        assert!(
            text.contains("open proposal 0x99: remove `dave` by alice, approved by alice, bob"),
            "{text}"
        );
        assert!(text.ends_with("no scheduled change\n"), "{text}");
    }
}
