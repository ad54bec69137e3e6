//! `cdrchain relay --metrics-file`: the anchor's state after each pass, as Prometheus text for
//! node_exporter's textfile collector (the relayer runs from cron and serves nothing). The RSK
//! anchor's lag is what it knows and the node does not: the checkpoint height the contract holds
//! against the node's latest checkpoint (`monitoring/`, alert `CdrchainAnchorBehind`).

use std::path::Path;

use anyhow::Context;

/// What a pass learnt of the anchor; unknown values stay out of the file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnchorStatus {
    /// The latest checkpoint height the contract holds.
    pub anchored: Option<u64>,
    /// The node's latest checkpoint height (0: none yet).
    pub node_checkpoint: Option<u64>,
    /// Blocks between checkpoints.
    pub interval: Option<u64>,
}

/// The file's text: the status, and when the pass ended (`now_s`, Unix seconds) and how.
pub fn render(status: &AnchorStatus, contract: &str, ok: bool, now_s: u64) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: Option<u64>| {
        if let Some(value) = value {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{contract=\"{contract}\"}} {value}\n"
            ));
        }
    };
    gauge(
        "cdrchain_relay_anchored_height",
        "The latest checkpoint height the CdrCheckpoint contract holds",
        status.anchored,
    );
    gauge(
        "cdrchain_relay_node_checkpoint_height",
        "The node's latest checkpoint height",
        status.node_checkpoint,
    );
    gauge("cdrchain_relay_checkpoint_interval_blocks", "Blocks between checkpoints", status.interval);
    gauge(
        "cdrchain_relay_last_pass_timestamp_seconds",
        "When the last relay pass ended (Unix seconds)",
        Some(now_s),
    );
    gauge(
        "cdrchain_relay_last_pass_success",
        "1 when the last relay pass succeeded (or had nothing to do), else 0",
        Some(u64::from(ok)),
    );
    out
}

/// Writes the file whole (a temporary file renamed over it), so that the collector never reads
/// half of it.
pub fn write(path: &Path, status: &AnchorStatus, contract: &str, ok: bool) -> anyhow::Result<()> {
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let partial = path.with_extension("prom.partial");
    std::fs::write(&partial, render(status, contract, ok, now_s))
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_what_the_pass_learnt() {
        let status = AnchorStatus { anchored: Some(8), node_checkpoint: Some(12), interval: Some(4) };
        let text = render(&status, "0xabc", true, 1_700_000_000);
        for line in [
            "cdrchain_relay_anchored_height{contract=\"0xabc\"} 8",
            "cdrchain_relay_node_checkpoint_height{contract=\"0xabc\"} 12",
            "cdrchain_relay_checkpoint_interval_blocks{contract=\"0xabc\"} 4",
            "cdrchain_relay_last_pass_timestamp_seconds{contract=\"0xabc\"} 1700000000",
            "cdrchain_relay_last_pass_success{contract=\"0xabc\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let failed = render(&AnchorStatus::default(), "0xabc", false, 1);
        assert!(!failed.contains("anchored_height"), "unknown values stay out: {failed}");
        assert!(failed.contains("cdrchain_relay_last_pass_success{contract=\"0xabc\"} 0"));
    }

    #[test]
    fn the_shipped_relay_rules_use_only_what_the_file_holds() {
        let status = AnchorStatus { anchored: Some(1), node_checkpoint: Some(1), interval: Some(1) };
        let text = render(&status, "0xabc", true, 1);
        let rules = include_str!("../../monitoring/cdrchain-relay-rules.yml");
        let used: std::collections::BTreeSet<&str> = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("cdrchain_relay_"))
            .collect();
        assert!(used.len() >= 4, "{used:?}");
        for name in used {
            assert!(
                text.contains(&format!("{name}{{")),
                "the rules use {name}, which the file does not hold"
            );
        }
    }
}
