//! `cdrchain authority show|propose|approve|join-request`: the authority set of a height and
//! the change in flight; changes proposed and approved through the operator's own node, which
//! signs them; the join request an operator makes with its keys (issue #27).

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_chain_spec::keys::KeyFile;
use cdrchain_chain_spec::ChainSpec;
use cdrchain_node::rpc::api::AuthorityApiClient;
use cdrchain_runtime::governance::{prove, AuthorityChange};
use cdrchain_runtime::ids::OperatorId;
use serde_json::Value;

use crate::rpc_client::RpcClient;

/// The node to ask, and the token it needs.
#[derive(Debug, clap::Args)]
pub struct Rpc {
    /// The node's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
    rpc: String,
    /// Bearer token (`read` to show; `admin` to propose and approve), when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

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
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Propose a change as the node's operator (an authority); proposing counts as its
    /// approval. More than two thirds of the authorities must approve; the change takes effect
    /// 4 blocks after the block that completes them. One change at a time.
    #[command(subcommand)]
    Propose(Propose),
    /// Approve the open proposal ID as the node's operator.
    Approve {
        /// The proposal id (`authority show` prints it).
        id: String,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Make the document an operator hands to an authority to be added: its keys, each with a
    /// proof of possession signed by that key for this chain (the secrets stay here).
    JoinRequest {
        /// The joining operator's id.
        #[arg(long)]
        operator: String,
        /// Its ed25519 signing key file (`cdrchain key generate`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Its node's libp2p ed25519 key file (default: the signing key's, as `cdrchain node` uses).
        #[arg(long, value_name = "FILE")]
        node_key: Option<PathBuf>,
        /// Its secp256k1 checkpoint key file (`cdrchain key generate --scheme secp256k1`).
        #[arg(long, value_name = "FILE")]
        evm_key: PathBuf,
        /// The chain spec (`dev`, `local` or a file): the proofs are bound to its genesis.
        #[arg(long)]
        chain: String,
        /// Where to write the request (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Propose {
    /// Add the operator of a join request (`authority join-request`).
    Add {
        /// The join request file.
        request: PathBuf,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Remove an authority: from the effective height its node's votes and transactions are
    /// refused (its records stay on the chain).
    Remove {
        /// The operator to remove.
        operator: String,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Rotate the node's own operator's keys: the node's current key signs the proposal, each new
    /// key proves possession, and the old EVM key hands over to the new one.
    RotateKey {
        /// The operator whose keys rotate (the node's own).
        #[arg(long)]
        operator: String,
        /// The new ed25519 signing key file.
        #[arg(long, value_name = "FILE")]
        new_key: Option<PathBuf>,
        /// The new secp256k1 checkpoint key file (needs --old-evm-key).
        #[arg(long, value_name = "FILE", requires = "old_evm_key")]
        new_evm_key: Option<PathBuf>,
        /// The current secp256k1 checkpoint key file; `dev:NAME` takes a dev account's (only on
        /// chains that use the dev keys).
        #[arg(long, value_name = "FILE|dev:NAME")]
        old_evm_key: Option<String>,
        /// The chain spec (`dev`, `local` or a file): the proofs are bound to its genesis.
        #[arg(long)]
        chain: String,
        #[command(flatten)]
        rpc: Rpc,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    match command {
        Command::Show { at, json, rpc } => runtime.block_on(show(at, json, rpc)),
        Command::Propose(propose) => {
            let (change, rpc) = change_of(propose)?;
            runtime.block_on(async {
                let client = RpcClient::new(&rpc.rpc, rpc.token)?;
                let answer = client.ask(client.api().authority_propose(change)).await.context("proposing")?;
                println!("proposed: proposal {}", answer["proposal"].as_str().unwrap_or("?"));
                println!("the other authorities approve it with `cdrchain authority approve ID`");
                Ok(())
            })
        }
        Command::Approve { id, rpc } => runtime.block_on(async {
            let client = RpcClient::new(&rpc.rpc, rpc.token)?;
            client.ask(client.api().authority_approve(id.clone())).await.context("approving")?;
            println!("approved proposal {id}");
            Ok(())
        }),
        Command::JoinRequest { operator, key, node_key, evm_key, chain, out } => {
            let spec = ChainSpec::load(&chain).with_context(|| format!("loading chain spec `{chain}`"))?;
            let id =
                OperatorId::new(operator.clone()).with_context(|| format!("operator id `{operator}`"))?;
            let signing = ed25519_file(&key)?;
            let network = match &node_key {
                Some(path) => ed25519_file(path)?,
                None => signing.clone(),
            };
            let evm = secp256k1_file(&evm_key)?;
            let request = prove::new_authority(&spec.genesis_hash(), &id, &signing, &network, &evm)
                .context("signing the proofs of possession")?;
            let text = serde_json::to_string_pretty(&AuthorityChange::Add(request))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text + "\n")
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote the join request of `{operator}` to {}", path.display());
                }
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}

async fn show(at: Option<u64>, json: bool, rpc: Rpc) -> anyhow::Result<()> {
    let client = RpcClient::new(&rpc.rpc, rpc.token)?;
    let set = client.ask(client.api().authority_set(at)).await.context("reading the authority set")?;
    let pending =
        client.ask(client.api().authority_pending()).await.context("reading the change in flight")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"set": set, "pending": pending}))?);
    } else {
        print!("{}", describe(&set, &pending));
    }
    Ok(())
}

/// The change a `propose` command asks for, as the node's RPC takes it.
fn change_of(propose: Propose) -> anyhow::Result<(Value, Rpc)> {
    match propose {
        Propose::Add { request, rpc } => {
            let text = std::fs::read_to_string(&request)
                .with_context(|| format!("reading {}", request.display()))?;
            let change: AuthorityChange = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a join request", request.display()))?;
            anyhow::ensure!(
                matches!(change, AuthorityChange::Add(_)),
                "{} is a `{}` change, not a join request",
                request.display(),
                change.kind()
            );
            Ok((serde_json::to_value(change)?, rpc))
        }
        Propose::Remove { operator, rpc } => {
            let id =
                OperatorId::new(operator.clone()).with_context(|| format!("operator id `{operator}`"))?;
            Ok((serde_json::to_value(AuthorityChange::Remove { id })?, rpc))
        }
        Propose::RotateKey { operator, new_key, new_evm_key, old_evm_key, chain, rpc } => {
            let spec = ChainSpec::load(&chain).with_context(|| format!("loading chain spec `{chain}`"))?;
            let id =
                OperatorId::new(operator.clone()).with_context(|| format!("operator id `{operator}`"))?;
            let signing = new_key.as_deref().map(ed25519_file).transpose()?;
            let evm = match (new_evm_key, old_evm_key) {
                (Some(new), Some(old)) => Some((secp256k1_arg(&old, &spec)?, secp256k1_file(&new)?)),
                (None, _) => None,
                (Some(_), None) => anyhow::bail!("--new-evm-key needs --old-evm-key: the old key hands over"),
            };
            anyhow::ensure!(
                signing.is_some() || evm.is_some(),
                "name a new key: --new-key and/or --new-evm-key"
            );
            let rotation = prove::rotation(
                &spec.genesis_hash(),
                &id,
                signing.as_ref(),
                evm.as_ref().map(|(o, n)| (o, n)),
            )
            .context("signing the proofs of possession")?;
            Ok((serde_json::to_value(AuthorityChange::RotateKeys(rotation))?, rpc))
        }
    }
}

fn ed25519_file(path: &std::path::Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let file = KeyFile::read(path).with_context(|| format!("reading key file {}", path.display()))?;
    Ok(file.ed25519_key(&path.display().to_string())?)
}

/// A secp256k1 key file, or `dev:NAME`: a dev account's key on a chain that uses them.
fn secp256k1_arg(arg: &str, spec: &ChainSpec) -> anyhow::Result<k256::ecdsa::SigningKey> {
    let Some(name) = arg.strip_prefix("dev:") else { return secp256k1_file(std::path::Path::new(arg)) };
    anyhow::ensure!(spec.uses_dev_keys(), "{arg}: dev keys are only for chains that use them (dev, local)");
    let name = cdrchain_chain_spec::DEV_ACCOUNT_NAMES
        .iter()
        .find(|n| **n == name)
        .with_context(|| format!("no dev account `{name}`"))?;
    Ok(cdrchain_chain_spec::DevAccount::derive(name).evm_key)
}

fn secp256k1_file(path: &std::path::Path) -> anyhow::Result<k256::ecdsa::SigningKey> {
    let file = KeyFile::read(path).with_context(|| format!("reading key file {}", path.display()))?;
    Ok(file.secp256k1_key(&path.display().to_string())?)
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
