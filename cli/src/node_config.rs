//! The node's configuration file (`cdrchain node --config FILE`, TOML): what does not fit a
//! flag. Today: per-source number rules (`cdrchain_runtime::numbering`, docs/ingest.md):
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

use anyhow::Context;
use cdrchain_runtime::numbering::{NumberRules, SourceRulesConfig};
use serde::Deserialize;

/// The most bytes of a configuration file read.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The file as written; unknown keys are refused, so a misspelt one is caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// How each source writes numbers.
    #[serde(default)]
    pub number_rules: Vec<SourceRulesConfig>,
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

/// The number rules of the file at `path`, checked; none without a file.
pub fn number_rules(path: Option<&Path>) -> anyhow::Result<NumberRules> {
    let Some(path) = path else { return Ok(NumberRules::default()) };
    let file = load(path)?;
    let rules =
        NumberRules::new(&file.number_rules).with_context(|| format!("{}: number_rules", path.display()))?;
    tracing::info!("number rules for {} source entries from {}", file.number_rules.len(), path.display());
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_loads_and_applies() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.toml");
        let docs = include_str!("node_config.rs");
        let example: String = docs
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
            .collect();
        std::fs::write(&path, example)?;
        let rules = number_rules(Some(&path))?;
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
        let error = format!("{:#}", number_rules(Some(&path)).expect_err("refused"));
        assert!(error.contains("regoin"), "{error}");
        Ok(())
    }
}
