//! `cdrchain export-blocks` / `import-blocks`: a chain's blocks and commit certificates as a
//! SCALE stream. File layout: the magic `CDRCHAIN-BLOCKS-1\n`, the 32-byte genesis hash, then per
//! block a little-endian u32 length and `SCALE((Block, CommitCertificate))`. Import verifies every
//! block (`apply_block` and the certificate against the authority set) before it commits it.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use cdrchain_chain_spec::ChainSpec;
use cdrchain_node::chain::Chain;
use cdrchain_node::config::database_path;
use cdrchain_node::metrics::Metrics;
use cdrchain_runtime::block::{Block, CommitCertificate, MAX_BLOCK_BYTES_CEILING};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_storage::Storage;
use parity_scale_codec::Encode;

const MAGIC: &[u8] = b"CDRCHAIN-BLOCKS-1\n";

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Which chain: `dev`, `local`, or a spec file.
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: String,
    /// The node's base path (the node must not be running).
    #[arg(long, value_name = "DIR")]
    pub base_path: PathBuf,
    /// The export file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// First height to export.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last height to export (default: the head).
    #[arg(long)]
    pub to: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Which chain: `dev`, `local`, or a spec file.
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: String,
    /// The base path to import into (the node must not be running).
    #[arg(long, value_name = "DIR")]
    pub base_path: PathBuf,
    /// The export file to read.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
}

fn open(chain: &str, base_path: &std::path::Path) -> anyhow::Result<(ChainSpec, Storage)> {
    let spec = ChainSpec::load(chain).with_context(|| format!("loading chain spec `{chain}`"))?;
    let path = database_path(base_path, &spec.id);
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    let genesis = spec.genesis_state()?;
    let storage = Storage::open(&path, spec.genesis_hash(), &genesis)
        .with_context(|| format!("opening the database at {} (is a node running on it?)", path.display()))?;
    Ok((spec, storage))
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let (spec, storage) = open(&args.chain, &args.base_path)?;
    let head = storage.head().map_or(0, |h| h.header.number.0);
    let to = args.to.unwrap_or(head).min(head);
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    out.write_all(MAGIC)?;
    out.write_all(&spec.genesis_hash().0)?;
    let mut count = 0u64;
    for height in args.from.max(1)..=to {
        let block = storage.block(Height(height))?.with_context(|| format!("block {height} is missing"))?;
        let certificate = storage
            .certificate(Height(height))?
            .with_context(|| format!("certificate of block {height} is missing"))?;
        let bytes = (block, certificate).encode();
        let len = u32::try_from(bytes.len()).context("block too large to export")?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&bytes)?;
        count += 1;
    }
    out.flush()?;
    out.get_ref().sync_all().with_context(|| format!("syncing {}", args.out.display()))?;
    println!(
        "exported {count} blocks (#{}..#{to}) of chain `{}` to {}",
        args.from.max(1),
        spec.id,
        args.out.display()
    );
    Ok(())
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let (spec, storage) = open(&args.chain, &args.base_path)?;
    let file =
        std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let mut input = BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    input.read_exact(&mut magic).context("reading the file header")?;
    if magic != MAGIC {
        bail!("{} is not a cdrchain block export", args.input.display());
    }
    let mut genesis = [0u8; 32];
    input.read_exact(&mut genesis).context("reading the genesis hash")?;
    if genesis != spec.genesis_hash().0 {
        bail!(
            "{} holds blocks of the chain with genesis 0x{}, not of `{}` (genesis {})",
            args.input.display(),
            genesis.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            spec.id,
            spec.genesis_hash()
        );
    }
    let chain = Chain::new(Arc::new(storage), spec.clone(), Arc::new(Metrics::new()));
    // Import commits no ingest queue of ours: use an operator id no batch can have.
    let nobody = OperatorId::new("import").context("operator id")?;
    let (mut imported, mut skipped) = (0u64, 0u64);
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).context("reading the export"),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_BLOCK_BYTES_CEILING + 64 * 1024 {
            bail!("record of {len} bytes after block {imported}: larger than any block may be");
        }
        let mut bytes = vec![0u8; len];
        input.read_exact(&mut bytes).context("the export ends in the middle of a block")?;
        let (block, certificate): (Block, CommitCertificate) =
            decode_exact(&bytes).map_err(|e| anyhow::anyhow!("block record does not decode: {e}"))?;
        let height = block.header.number.0;
        let head = chain.storage.head().map_or(0, |h| h.header.number.0);
        if height <= head {
            let ours = chain.storage.header(block.header.number)?.map(|h| h.hash());
            if ours != Some(block.hash()) {
                bail!("block {height} in the file differs from block {height} in the database");
            }
            skipped += 1;
            continue;
        }
        chain.import(&block, &certificate, &nobody).with_context(|| format!("importing block {height}"))?;
        imported += 1;
    }
    chain.storage.flush()?;
    let head = chain.storage.head();
    println!(
        "imported {imported} blocks ({skipped} already present); head #{} {}",
        head.as_ref().map_or(0, |h| h.header.number.0),
        head.map(|h| h.hash.to_string()).unwrap_or_default()
    );
    Ok(())
}
