//! The demo's HTML report: what was ingested, what is stored, and every delivery.

use std::collections::BTreeMap;

use minijinja::{Environment, context};
use serde::Serialize;
use serde_json::Value;

use crate::simulate::SimulationReport;

const TEMPLATE: &str = include_str!("report.html");

fn field(v: &Value, k: &str) -> String {
    // Entries are rendered through their JSON form so the report shows what the log says.
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The delivery log's columns, in the report's order.
const COLUMNS: [&str; 11] = [
    "at",
    "function",
    "kind",
    "stage",
    "channel",
    "account_id",
    "contact_id",
    "subject",
    "locale",
    "status",
    "reason",
];

#[derive(Serialize)]
struct Row {
    status: String,
    cells: Vec<String>,
}

/// Renders the report. Values are HTML-escaped by minijinja's auto-escape (the template's
/// name ends in `.html`), the same escaper as the email templates.
pub fn html(title: &str, r: &SimulationReport) -> Result<String, minijinja::Error> {
    let deliveries: Vec<Value> = r
        .deliveries
        .iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect();
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in &deliveries {
        *by_kind
            .entry((field(d, "kind"), field(d, "status")))
            .or_default() += 1;
    }
    let by_kind: Vec<(String, String, usize)> = by_kind
        .into_iter()
        .map(|((kind, status), n)| (kind, status, n))
        .collect();
    let rows: Vec<Row> = deliveries
        .iter()
        .map(|d| Row {
            status: field(d, "status"),
            cells: COLUMNS.iter().map(|k| field(d, k)).collect(),
        })
        .collect();
    let ingest = [
        ("events read", r.events_read),
        ("accepted", r.accepted),
        ("duplicates", r.duplicates),
        ("rejected", r.rejected.len()),
        ("after the window", r.events_outside_window),
        ("left for retry", r.retried),
    ];
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template("report.html", TEMPLATE)?;
    env.get_template("report.html")?.render(context! {
        title,
        ingest,
        rejected => r.rejected,
        stored => r.stored,
        runs => r.runs,
        by_kind,
        deliveries => rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_in_subjects_is_escaped() {
        let entry: nudge_shared::domain::DeliveryLogEntry =
            serde_json::from_value(serde_json::json!({
            "at": "2026-11-20T00:00:00Z", "function": "reminders", "kind": "deadline_reminder",
            "channel": "email", "account_id": "a", "to": "x@example.com",
            "subject": "<script>alert(1)</script>", "locale": "en", "status": "sent",
            "nudge_id": "n", "variant": "a"}))
            .unwrap();
        let mut r = SimulationReport {
            deliveries: vec![entry],
            ..Default::default()
        };
        // Maps render as rows (a simulation always has runs and stored items).
        r.runs.insert("reminders".into(), 96);
        r.stored.insert("nudges".into(), 3);
        let out = html("Acme & <b>Co</b>", &r).unwrap();
        assert!(out.contains("&lt;script&gt;"));
        assert!(!out.contains("<script>"));
        assert!(out.contains("<title>Acme &amp; &lt;b&gt;Co&lt;&#x2f;b&gt;</title>"));
        assert!(out.contains("<tr><th>events read</th><td>0</td></tr>"));
        assert!(
            out.contains("<tr><th>reminders</th><td>96</td></tr>"),
            "{out}"
        );
        assert!(out.contains("<tr><th>nudges</th><td>3</td></tr>"), "{out}");
        assert!(out.contains("<tr><td>deadline_reminder</td><td>sent</td><td>1</td></tr>"));
        assert!(out.contains("<tr class=\"sent\"><td>2026-11-20T00:00:00Z</td><td>reminders</td>"));
        assert!(!out.contains("Rejected events"));
        assert!(out.ends_with("</body></html>\n"));
    }
}
