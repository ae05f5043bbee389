//! The demo's HTML report: what was ingested, what is stored, and every delivery.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::simulate::SimulationReport;

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn field(v: &Value, k: &str) -> String {
    // Entries are rendered through their JSON form so the report shows what the log says.
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub fn html(title: &str, r: &SimulationReport) -> String {
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
    let mut s = String::new();
    s.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>");
    s.push_str(&escape(title));
    s.push_str("</title><style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}th{background:#f3f3f3}.blocked{color:#a40}.failed{color:#c00}</style></head><body>");
    s.push_str(&format!("<h1>{}</h1>", escape(title)));
    s.push_str("<h2>Ingest</h2><table>");
    for (k, v) in [
        ("events read", r.events_read),
        ("accepted", r.accepted),
        ("duplicates", r.duplicates),
        ("rejected", r.rejected.len()),
        ("after the window", r.events_outside_window),
        ("left for retry", r.retried),
    ] {
        s.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>"));
    }
    s.push_str("</table>");
    if !r.rejected.is_empty() {
        s.push_str("<h3>Rejected events</h3><table><tr><th>line</th><th>error</th></tr>");
        for (line, err) in &r.rejected {
            s.push_str(&format!("<tr><td>{line}</td><td>{}</td></tr>", escape(err)));
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Stored</h2><table>");
    for (k, v) in &r.stored {
        s.push_str(&format!("<tr><th>{}</th><td>{v}</td></tr>", escape(k)));
    }
    s.push_str("</table><h2>Scheduled runs</h2><table>");
    for (k, v) in &r.runs {
        s.push_str(&format!("<tr><th>{}</th><td>{v}</td></tr>", escape(k)));
    }
    s.push_str("</table><h2>Deliveries by kind</h2><table><tr><th>kind</th><th>status</th><th>count</th></tr>");
    for ((kind, status), n) in &by_kind {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
            escape(kind),
            escape(status)
        ));
    }
    s.push_str("</table><h2>Delivery log</h2><table><tr><th>at (UTC)</th><th>function</th><th>kind</th><th>stage</th><th>channel</th><th>account</th><th>contact</th><th>subject</th><th>locale</th><th>status</th><th>reason</th></tr>");
    for d in &deliveries {
        let status = field(d, "status");
        s.push_str(&format!("<tr class=\"{}\">", escape(&status)));
        for k in [
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
        ] {
            s.push_str(&format!("<td>{}</td>", escape(&field(d, k))));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></body></html>\n");
    s
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
        let r = SimulationReport {
            deliveries: vec![entry],
            ..Default::default()
        };
        let out = html("t", &r);
        assert!(out.contains("&lt;script&gt;"));
        assert!(!out.contains("<script>"));
    }
}
