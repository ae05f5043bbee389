//! Hostile HTTP API payloads at the ingest Lambda entry: a clean 400, never a panic inside the
//! request conversion.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::World;
use crate::ingest::lambda::Ingest;

fn api_event(raw_query: &str, body: &str, base64: bool) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "GET /unsubscribe",
        "rawPath": "/unsubscribe",
        "rawQueryString": raw_query,
        "headers": {"host": "nudge.example.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "nudge.example.test",
            "http": {"method": "GET", "path": "/unsubscribe", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r1", "routeKey": "GET /unsubscribe", "stage": "$default",
            "time": "20/Nov/2026:00:15:00 +0000", "timeEpoch": 1795133700000_i64
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}

async fn call(payload: Value) -> Value {
    let ingest = Ingest::new(World::new().deps);
    let event = LambdaEvent::new(payload, Context::default());
    ingest.handle(event).await.expect("an HTTP answer")
}

#[tokio::test]
async fn a_quote_or_control_byte_in_the_query_string_is_a_400_not_a_panic() {
    for raw in ["token=\"x\"", "token=a\u{1}b", "token=a b", "t=<script>"] {
        let out = call(api_event(raw, "", false)).await;
        assert_eq!(out["statusCode"], 400, "{raw:?}: {out}");
        assert!(
            out["body"]
                .as_str()
                .is_some_and(|b| b.contains("query string")),
            "{out}"
        );
    }
    // A well-formed query still reaches the route (an unknown token: its own polite answer).
    let ok = call(api_event("token=abc", "", false)).await;
    assert_ne!(ok["statusCode"], 500, "{ok}");
}

#[tokio::test]
async fn a_body_flagged_base64_that_is_not_base64_is_a_400_not_a_panic() {
    let out = call(api_event("", "%%% not base64 %%%", true)).await;
    assert_eq!(out["statusCode"], 400, "{out}");
    assert!(
        out["body"].as_str().is_some_and(|b| b.contains("base64")),
        "{out}"
    );
}

#[tokio::test]
async fn an_arr_beyond_what_the_table_stores_is_rejected_naming_the_field_not_retried() {
    let w = World::new();
    let now = super::utc("2026-11-20T15:00:00Z");
    let event = json!({"event_id": "a1", "account_id": "acme", "type": "account_upserted",
        "occurred_at": "2026-11-20T10:00:00Z",
        "properties": {"name": "Acme", "plan": "pro", "industry": "retail",
            "timezone": "UTC", "locale": "en", "contract_start": "2026-01-01",
            "renewal_date": "2027-01-01", "renewals": 0, "arr": 1e130}});
    let parsed = vec![crate::events::parse_event(&event, now)];
    let out =
        crate::ingest::ingest_batch(&w.deps, &crate::ingest::IngestCache::default(), parsed, now)
            .await;
    assert!(out.retry.is_empty(), "{out:?}");
    assert_eq!(out.rejected.len(), 1, "{out:?}");
    assert!(
        out.rejected[0].error.starts_with("properties.arr: "),
        "{out:?}"
    );
}
