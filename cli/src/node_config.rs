//! The node's configuration file (`cdrchain node --config FILE`, TOML): what does not fit a
//! flag. RPC tokens with roles (docs/security.md):
//!
//! ```toml
//! [[rpc_tokens]]
//! name = "switches"                          # for the logs; never the token
//! roles = ["ingest"]                         # ingest, read, admin
//! token_file = "/etc/cdrchain/ingest.token"  # the token itself, at least 16 bytes
//!
//! [[rpc_tokens]]
//! name = "partner-bob"
//! roles = ["read"]
//! party = "bob"                              # reads only the CDRs bob recorded or is party to
//! token_file = "/etc/cdrchain/bob.token"
//! ```
//!
//! And per-source number rules (`cdrchain_runtime::numbering`, docs/ingest.md):
//!
//! ```toml
//! # A PBX in London that writes 00 for international and 0 for national numbers.
//! [[number_rules]]
//! sources = ["pbx-lon-1"]
//! region = "GB"
//! international_prefixes = ["00"]
//! national_prefix = "0"
//!
//! # A carrier trunk that writes country codes without '+'.
//! [[number_rules]]
//! sources = ["sbc-carrier-a", "sbc-carrier-b"]
//! country_code_without_plus = true
//!
//! # Every other source: US dialling.
//! [[number_rules]]
//! sources = ["*"]
//! region = "US"
//! international_prefixes = ["011"]
//! ```

use std::path::Path;

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_node::rpc::access::{Grant, Role, Token};
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::numbering::{NumberRules, SourceRulesConfig};
use serde::Deserialize;

/// The most bytes of a configuration file read.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// The shortest RPC token accepted, in bytes: guessing it must be out of reach.
const MIN_TOKEN_BYTES: usize = 16;

/// One `[[rpc_tokens]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcTokenConfig {
    /// A name for the logs.
    pub name: String,
    /// What the token may do.
    pub roles: Vec<Role>,
    /// A file holding the token (surrounding whitespace ignored).
    pub token_file: PathBuf,
    /// A partner's token: reads only the CDRs this operator recorded or is a party to.
    #[serde(default)]
    pub party: Option<String>,
}

/// The file as written; unknown keys are refused, so a misspelt one is caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// How each source writes numbers.
    #[serde(default)]
    pub number_rules: Vec<SourceRulesConfig>,
    /// Bearer tokens with roles.
    #[serde(default)]
    pub rpc_tokens: Vec<RpcTokenConfig>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    if size > MAX_CONFIG_FILE_BYTES {
        anyhow::bail!(
            "{} is {size} bytes, more than the {MAX_CONFIG_FILE_BYTES} a configuration file may have",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid configuration file", path.display()))
}

/// The file at `path`, or an empty configuration without one.
pub fn load_or_default(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
    path.map_or_else(|| Ok(ConfigFile::default()), load)
}

/// The number rules of `file` (read from `path`), checked.
pub fn number_rules(file: &ConfigFile, path: Option<&Path>) -> anyhow::Result<NumberRules> {
    let shown = path.map_or_else(String::new, |p| p.display().to_string());
    let rules = NumberRules::new(&file.number_rules).with_context(|| format!("{shown}: number_rules"))?;
    if !file.number_rules.is_empty() {
        tracing::info!("number rules for {} source entries from {shown}", file.number_rules.len());
    }
    Ok(rules)
}

/// The RPC tokens of `file`, each read from its file and checked.
pub fn rpc_tokens(file: &ConfigFile) -> anyhow::Result<Vec<Token>> {
    let mut tokens: Vec<Token> = Vec::with_capacity(file.rpc_tokens.len());
    for entry in &file.rpc_tokens {
        let name = &entry.name;
        anyhow::ensure!(!entry.roles.is_empty(), "rpc token `{name}` has no roles (ingest, read, admin)");
        let text = std::fs::read_to_string(&entry.token_file)
            .with_context(|| format!("rpc token `{name}`: reading {}", entry.token_file.display()))?;
        let secret = text.trim().as_bytes().to_vec();
        anyhow::ensure!(
            secret.len() >= MIN_TOKEN_BYTES,
            "rpc token `{name}` ({}) is {} bytes, fewer than {MIN_TOKEN_BYTES}",
            entry.token_file.display(),
            secret.len()
        );
        if let Some(same) = tokens.iter().find(|t| t.secret == secret) {
            anyhow::bail!("rpc token `{name}` is the same as `{}`: give each its own", same.name);
        }
        let party = match &entry.party {
            Some(party) => {
                Some(OperatorId::new(party.clone()).with_context(|| format!("rpc token `{name}`: party"))?)
            }
            None => None,
        };
        tokens.push(Token {
            name: name.clone(),
            secret,
            grant: Grant::new(entry.roles.iter().copied(), party),
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_loads_and_applies() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.toml");
        let docs = include_str!("node_config.rs");
        // Every example of the module docs, one after the other.
        let mut example = String::new();
        let mut inside = false;
        for line in docs.lines().filter(|line| line.starts_with("//!")) {
            let text = line.trim_start_matches("//!").trim_start();
            match (inside, text.starts_with("```")) {
                (false, true) => inside = text.starts_with("```toml"),
                (true, true) => inside = false,
                (true, false) => example.push_str(&format!("{text}\n")),
                (false, false) => {}
            }
        }
        std::fs::write(&path, example.replace("/etc/cdrchain/", &format!("{}/", dir.path().display())))?;
        std::fs::write(dir.path().join("ingest.token"), "an ingest token of 32 bytes.....\n")?;
        std::fs::write(dir.path().join("bob.token"), "bob's partner token, 28 bytes")?;
        let file = load(&path)?;
        let rules = number_rules(&file, Some(&path))?;
        let tokens = rpc_tokens(&file)?;
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].secret, b"an ingest token of 32 bytes.....");
        assert_eq!(tokens[1].grant.party().map(|p| p.as_str()), Some("bob"));
        let rewrite = |source: &str, raw: &str| rules.for_source(source).map(|r| r.rewrite(raw).into_owned());
        assert_eq!(rewrite("pbx-lon-1", "020 7946 0018"), Some("+442079460018".into()));
        assert_eq!(rewrite("sbc-carrier-b", "4930901820"), Some("+4930901820".into()));
        assert_eq!(rewrite("anything", "011 44 20 7946 0018"), Some("+442079460018".into()));
        Ok(())
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "[[number_rules]]\nsources = [\"pbx\"]\nregoin = \"GB\"\n")?;
        let error = format!("{:#}", load(&path).expect_err("refused"));
        assert!(error.contains("regoin"), "{error}");
        Ok(())
    }
}
