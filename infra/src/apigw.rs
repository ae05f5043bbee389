//! HTTP API (payload format 2.0) events, as API Gateway would deliver them to `ingest`: used by
//! the simulator, the tests and to write the sample events in `tests/events/`.

use chrono::{DateTime, Utc};
use nudge_shared::events::sign;
use serde_json::{Value, json};

/// An API Gateway v2 event for `method path` with `body`, received at `at`.
pub fn http_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &str,
    at: DateTime<Utc>,
) -> Value {
    let mut h = serde_json::Map::new();
    h.insert("host".into(), json!("nudge.example.test"));
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "queryStringParameters": query_map(query),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "nudge.example.test",
            "domainPrefix": "nudge",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "nudge-cli"
            },
            "requestId": format!("sim-{}", at.timestamp_millis()),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": at.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": at.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn query_map(query: &str) -> Value {
    let mut m = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

/// A signed `POST /events` request, received at `at` and signed at `at`.
pub fn signed_post_events(secret: &[u8], body: &str, at: DateTime<Utc>) -> Value {
    let sig = sign(secret, at.timestamp(), body.as_bytes());
    http_event(
        "POST",
        "/events",
        "",
        &[
            ("content-type", "application/json"),
            ("x-nudge-signature", &sig),
        ],
        body,
        at,
    )
}

/// Parses an HTTP API event into the `lambda_http::Request` the handler takes.
pub fn to_request(event: &Value) -> anyhow::Result<lambda_http::Request> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}
