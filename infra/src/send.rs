//! `nudge send-events`: signs and POSTs events to a deployed or local ingest endpoint, in
//! batches within the contract's limits, retrying what the server asks to retry.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nudge_shared::events::{MAX_BODY_BYTES, MAX_EVENTS, SIGNATURE_HEADER, sign};
use serde_json::Value;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendSummary {
    pub batches: usize,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<String>,
    /// Events still not stored after all retries.
    pub unsent: usize,
}

/// Reads events from a JSON-lines file or a `{"events": [...]}` document.
pub fn read_events(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text)
        && let Some(Value::Array(events)) = o.get("events")
    {
        return Ok(events.clone());
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))
        })
        .collect()
}

/// Splits events into batches of at most 500 events and (with the envelope) 1 MiB.
pub fn batches(events: &[Value]) -> Result<Vec<Vec<Value>>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut size = 16;
    for (i, e) in events.iter().enumerate() {
        let len = e.to_string().len() + 1;
        if len + 16 > MAX_BODY_BYTES {
            bail!("event {i} alone is larger than the 1 MiB request limit");
        }
        if cur.len() == MAX_EVENTS || size + len > MAX_BODY_BYTES {
            out.push(std::mem::take(&mut cur));
            size = 16;
        }
        size += len;
        cur.push(e.clone());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

pub async fn send_events(url: &str, secret: &[u8], events: &[Value]) -> Result<SendSummary> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut summary = SendSummary::default();
    for batch in batches(events)? {
        summary.batches += 1;
        let mut pending = batch;
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let body = serde_json::json!({ "events": pending }).to_string();
            // The CLI is the client: signing with the wall clock is what a real sender does.
            let sig = sign(secret, chrono::Utc::now().timestamp(), body.as_bytes());
            let resp = client
                .post(url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, sig)
                .body(body)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            let text = resp.text().await.unwrap_or_default();
            let out: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200 | 503 => {
                    let n = |k: &str| out.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
                    summary.accepted += n("accepted");
                    summary.duplicates += n("duplicates");
                    for r in out
                        .get("rejected")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        summary.rejected.push(r.to_string());
                    }
                    let retry: Vec<usize> = out
                        .get("retry")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_u64().map(|i| i as usize))
                        .collect();
                    pending = retry
                        .iter()
                        .filter_map(|i| pending.get(*i).cloned())
                        .collect();
                    if !pending.is_empty() {
                        if attempt >= 5 {
                            summary.unsent += pending.len();
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(retry_after.min(30) * attempt))
                            .await;
                    }
                }
                _ => {
                    let msg = out.get("error").and_then(Value::as_str).unwrap_or(&text);
                    bail!("{url} answered HTTP {status}: {msg}");
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_respect_the_event_limit() {
        let events: Vec<Value> = (0..1201).map(|i| json!({"event_id": i})).collect();
        let b = batches(&events).unwrap();
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 201]
        );
    }

    #[test]
    fn batches_respect_the_size_limit() {
        let big = "x".repeat(300 * 1024);
        let events: Vec<Value> = (0..7).map(|_| json!({"p": big})).collect();
        let b = batches(&events).unwrap();
        assert!(b.len() >= 3);
        for batch in &b {
            assert!(json!({"events": batch}).to_string().len() <= MAX_BODY_BYTES);
        }
    }
}
