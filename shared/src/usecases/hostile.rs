//! Hostile HTTP API payloads at the ingest Lambda entry: a clean 400, never a panic inside the
//! request conversion; AWS's sample events at every function's entry: an answer or an error.

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::World;
use crate::channels::MemoryQueue;
use crate::ingest::lambda::Ingest;
use crate::registry;

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

/// `sam local generate-event` payloads, as `infra/sam-events.sh` makes them: the HTTP API
/// sample (`apigateway http-api-proxy`), the same with `--dns-suffix 'amazonaws.com:99999'` (the
/// domain name becomes the URL's host: a port no URL has) and with an `X-Forwarded-Proto` no
/// URL starts with (the script's edit), the `cloudwatch scheduled-event`, `sns notification`
/// and `sqs receive-message` samples.
const SAM_EVENTS: [(&str, &str); 6] = [
    (
        "http-api",
        include_str!("../../../tests/events/sam-http-api.json"),
    ),
    (
        "http-api-bad-port",
        include_str!("../../../tests/events/sam-http-api-bad-port.json"),
    ),
    (
        "http-api-bad-forwarded-proto",
        include_str!("../../../tests/events/sam-http-api-bad-forwarded-proto.json"),
    ),
    (
        "scheduled",
        include_str!("../../../tests/events/sam-scheduled.json"),
    ),
    ("sns", include_str!("../../../tests/events/sam-sns.json")),
    ("sqs", include_str!("../../../tests/events/sam-sqs.json")),
];

fn sam_event(name: &str) -> Value {
    let (_, text) = SAM_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a SAM sample event");
    serde_json::from_str(text).expect("SAM sample events are JSON")
}

#[tokio::test]
async fn a_sam_sample_whose_host_or_scheme_makes_no_url_is_a_400_not_a_panic() {
    for name in ["http-api-bad-port", "http-api-bad-forwarded-proto"] {
        let out = call(sam_event(name)).await;
        assert_eq!(out["statusCode"], 400, "{name}: {out}");
        assert!(
            out["body"]
                .as_str()
                .is_some_and(|b| b.contains("cannot make a URL")),
            "{name}: {out}"
        );
    }
    // SAM's own sample converts and is routed (to no route: it posts to /path/to/resource).
    let out = call(sam_event("http-api")).await;
    assert_eq!(out["statusCode"], 404, "{out}");
}

/// What each function's entry makes of each SAM sample, as the Lambda runtime calls it: ingest
/// and health take any JSON, reminders and milestones get what deserializes as a scheduled
/// event (anything else is the runtime's deserialization error, before the handler).
#[tokio::test]
async fn every_function_answers_every_sam_sample_or_fails_it_cleanly() {
    let deps = World::new()
        .deps
        .with_queue(Arc::new(MemoryQueue::default()));
    let ingest = Ingest::new(deps);
    let deps = &ingest.deps;
    let feature = |name| registry::find(name).expect("a registered function");
    let event = |name| LambdaEvent::new(sam_event(name), Context::default());
    let ok = |r: bool| if r { "answer" } else { "error" };
    let mut got = Vec::new();
    for (name, _) in SAM_EVENTS {
        let ingest_out = ingest.handle(event(name)).await;
        let health = registry::handle_any(feature("health"), deps, event(name)).await;
        let mut scheduled = Vec::new();
        for f in ["reminders", "milestones"] {
            let answered = match serde_json::from_value::<EventBridgeEvent<Value>>(sam_event(name))
            {
                Ok(e) => {
                    let e = LambdaEvent::new(e, Context::default());
                    registry::handle_scheduled(feature(f), deps, e)
                        .await
                        .is_ok()
                }
                Err(_) => false,
            };
            scheduled.push(ok(answered));
        }
        let status = ingest_out
            .as_ref()
            .ok()
            .and_then(|v| v["statusCode"].as_i64());
        got.push(format!(
            "{name}: ingest {}{} health {} reminders {} milestones {}",
            ok(ingest_out.is_ok()),
            status.map(|s| format!(" {s}")).unwrap_or_default(),
            ok(health.is_ok()),
            scheduled[0],
            scheduled[1],
        ));
    }
    assert_eq!(
        got,
        [
            "http-api: ingest answer 404 health error reminders error milestones error",
            "http-api-bad-port: ingest answer 400 health error reminders error milestones error",
            "http-api-bad-forwarded-proto: ingest answer 400 health error reminders error milestones error",
            "scheduled: ingest error health answer reminders answer milestones answer",
            "sns: ingest answer health answer reminders error milestones error",
            "sqs: ingest error health answer reminders error milestones error",
        ]
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
