//! `cdrchain light-sync`: a light client for a partner without a validator (issue #27). From the
//! genesis spec alone it walks the chain's authority-set changes (each certified by the set
//! before it, and proving the next set under its block's state root), then checks the node's
//! head against the set it ends with, and prints that set. Nothing the node says is taken on
//! trust: a node that lies fails a named step.

use std::process::ExitCode;

use anyhow::Context;
use cdrchain_chain_spec::ChainSpec;
use cdrchain_node::rpc::api::{AuthorityApiClient, ChainApiClient};
use cdrchain_runtime::block::{CommitCertificate, Header};
use cdrchain_runtime::proof::sets::{follow, SetStep};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Any node of the chain: it needs no trust, everything it sends is checked.
    #[command(flatten)]
    pub node: crate::rpc_client::ReadRpc,
    /// The chain spec you trust (`dev`, `local` or a file): its genesis hash and authorities.
    #[arg(long, value_name = "SPEC")]
    pub chain: String,
}

/// Exit 0: the head is certified by the set the changes lead to; 1: a step or the head fails.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec =
        ChainSpec::load(&args.chain).with_context(|| format!("loading chain spec `{}`", args.chain))?;
    let genesis = spec.genesis_hash();
    let genesis_set = crate::proof::authorities(&spec)?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let (steps, block) = runtime.block_on(async {
        let node = args.node.client()?;
        let steps =
            node.ask(node.api().authority_set_changes()).await.context("asking for the set changes")?;
        let block = node.ask(node.api().block(None)).await.context("asking for the head")?;
        anyhow::Ok((steps, block))
    })?;
    let steps: Vec<SetStep> = serde_json::from_value(steps).context("the node's set changes do not read")?;
    println!("chain `{}` genesis {genesis}: {} authorities at genesis", spec.id, genesis_set.len());
    let set = match follow(&genesis, &genesis_set, &steps) {
        Ok(set) => set,
        Err(e) => {
            println!("FAIL  {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for step in &steps {
        println!(
            "ok    set {} approved in block #{} ({} signatures of set {})",
            step.set_id,
            step.header.number.0,
            step.certificate.signatures.len(),
            step.set_id - 1
        );
    }
    let Some(block) = block else {
        println!("the node has no block yet: the set in force is the genesis set");
        return Ok(ExitCode::SUCCESS);
    };
    let header: Header =
        serde_json::from_value(block["header"].clone()).context("the head's header does not read")?;
    let certificate: CommitCertificate = serde_json::from_value(block["certificate"].clone())
        .context("the head's certificate does not read")?;
    let head = header.number.0;
    if head < set.from.0 {
        println!("FAIL  the head #{head} is before set {} takes effect at #{}", set.id, set.from.0);
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = certificate.verify(&header, &genesis, &set.authorities) {
        println!("FAIL  head #{head} {}: not finalized by set {}: {e}", header.hash(), set.id);
        return Ok(ExitCode::from(1));
    }
    println!(
        "ok    head #{head} {} finalized by {} of the {} authorities of set {}",
        header.hash(),
        certificate.signatures.len(),
        set.authorities.len(),
        set.id
    );
    println!("authority set {} from height {} ({} authorities):", set.id, set.from.0, set.authorities.len());
    for (id, key) in &set.authorities {
        println!("  {id:<16} ed25519 {key}");
    }
    Ok(ExitCode::SUCCESS)
}
