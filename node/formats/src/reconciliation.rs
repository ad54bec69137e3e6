//! A reconciliation report as CSV: one row per difference, the evidence a billing engineer
//! attaches (`cdrchain reconcile --csv`, the portal's download).

use cdrchain_runtime::reconcile::Report;

/// The CSV's columns.
pub const COLUMNS: [&str; 7] = ["kind", "line", "chain_id", "call_id", "field", "mine", "chain"];

/// Every difference of `report`, one per row: a mismatched call once per differing field, then
/// the calls missing on the chain (with the file's line), then those missing in the file (with
/// the chain's id).
pub fn report_csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for m in &report.mismatched {
        for d in &m.differences {
            writer.write_record([
                "mismatched",
                &m.line.to_string(),
                &m.id,
                &m.call_id,
                &d.field,
                &d.mine,
                &d.chain,
            ])?;
        }
    }
    for u in &report.missing_on_chain {
        let line = u.line.map(|l| l.to_string()).unwrap_or_default();
        writer.write_record(["missing-on-chain", &line, "", &u.call_id, "", "", ""])?;
    }
    for u in &report.missing_in_file {
        writer.write_record([
            "missing-in-file",
            "",
            u.id.as_deref().unwrap_or_default(),
            &u.call_id,
            "",
            "",
            "",
        ])?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
