//! The consortium secret and region a command hashes parties with, as the node hashes them:
//! the arguments `cdr get --number`, `reconcile` and `statement compare` share.

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_runtime::party::PartyHasher;

/// Parties hashed with a memo of this many identities: an export names the same numbers often.
const MEMO_PARTIES: usize = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct PartySecret {
    /// The consortium secret parties are hashed with (the one the node uses);
    /// CDRCHAIN_CONSORTIUM_SECRET may hold the secret itself. Not needed on the dev chain.
    #[arg(long, env = "CDRCHAIN_CONSORTIUM_SECRET_FILE", value_name = "FILE")]
    pub consortium_secret_file: Option<PathBuf>,
    /// The region for national numbers, as the node's --default-region (e.g. GB).
    #[arg(long, value_name = "CC")]
    pub default_region: Option<String>,
}

impl PartySecret {
    /// The node's hasher: the secret given, else on a dev chain (`dev_chain`) its public one.
    /// `why` says in the error what the secret is needed for.
    pub fn hasher(&self, dev_chain: bool, why: &str) -> anyhow::Result<PartyHasher> {
        let secret = crate::node::consortium_secret(self.consortium_secret_file.as_deref(), dev_chain)?
            .with_context(|| {
                format!(
                    "{why}: give --consortium-secret-file (or CDRCHAIN_CONSORTIUM_SECRET_FILE / \
                     CDRCHAIN_CONSORTIUM_SECRET), the one your node uses"
                )
            })?;
        Ok(PartyHasher::new(&secret, self.default_region.as_deref())
            .context("setting up party hashing")?
            .with_memo(MEMO_PARTIES))
    }
}
