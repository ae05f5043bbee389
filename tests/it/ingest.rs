//! `ingest` end to end: the real HTTP handler against DynamoDB Local.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, NaiveDate};
use nudge_infra::apigw;
use nudge_shared::Deps;
use nudge_shared::deps::{Keys, SigningSecret, SigningSecrets};
use nudge_shared::events::Severity;
use nudge_shared::ingest::lambda::Ingest;
use nudge_shared::store::schema;
use nudge_shared::store::{
    EventStore, HealthStore, IndexedAccount, NpsAnswer, ProfileStore, TicketState,
};
use nudge_tests::{LOCAL_SECRET, TestEnv, at, local_link_keys};
use serde_json::{Value, json};

fn login(id: &str, account: &str, contact: &str, t: &str) -> Value {
    json!({"event_id": id, "account_id": account, "contact_id": contact, "type": "login", "occurred_at": t})
}

fn feature(id: &str, account: &str, contact: &str, f: &str, t: &str) -> Value {
    json!({"event_id": id, "account_id": account, "contact_id": contact, "type": "feature_used",
           "occurred_at": t, "properties": {"feature": f}})
}

fn account(id: &str, account: &str, name: &str, t: &str) -> Value {
    json!({"event_id": id, "account_id": account, "type": "account_upserted", "occurred_at": t,
      "properties": {"name": name, "plan": "premium", "industry": "retail", "tier": "tech_touch",
        "csm": {"name": "Sato", "email": "sato@vendor.example"}, "timezone": "America/New_York",
        "locale": "en", "contract_start": "2026-10-01", "renewal_date": "2027-09-30",
        "renewals": 0, "arr": 24000}})
}

fn batch(events: &[Value]) -> String {
    json!({ "events": events }).to_string()
}

async fn count_items(env: &TestEnv) -> usize {
    env.stack
        .dynamodb()
        .scan()
        .table_name(&env.table)
        .send()
        .await
        .expect("scan")
        .count() as usize
}

#[tokio::test]
async fn valid_batch_is_stored_with_rollups_firsts_and_profiles() {
    let env = TestEnv::new("valid_batch").await;
    let now = at("2026-11-20T15:00:00Z");
    let body = batch(&[
        account("e1", "acme", "Acme", "2026-11-20T10:00:00-05:00"),
        json!({"event_id": "e2", "account_id": "acme", "contact_id": "u1", "type": "contact_upserted",
               "occurred_at": "2026-11-20T10:00:00-05:00",
               "properties": {"email": "u1@acme.example", "name": "Ann", "role": "admin"}}),
        login("e3", "acme", "u1", "2026-11-20T10:01:00-05:00"),
        login("e4", "acme", "u2", "2026-11-20T10:02:00-05:00"),
        feature(
            "e5",
            "acme",
            "u1",
            "report_builder",
            "2026-11-20T10:03:00-05:00",
        ),
        feature(
            "e6",
            "acme",
            "u1",
            "report_builder",
            "2026-11-20T10:04:00-05:00",
        ),
        json!({"event_id": "e7", "account_id": "acme", "contact_id": "u1", "type": "report_created",
               "occurred_at": "2026-11-20T10:05:00-05:00"}),
        json!({"event_id": "e8", "account_id": "acme", "contact_id": "u2", "type": "nps_response",
               "occurred_at": "2026-11-20T10:06:00-05:00", "properties": {"score": 9}}),
    ]);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], 8);
    assert_eq!(out["duplicates"], 0);
    assert_eq!(out["rejected"], json!([]));
    assert_eq!(out["retry"], json!([]));

    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let rollups = env.store.rollups("acme", day, day).await.unwrap();
    assert_eq!(rollups.len(), 1);
    let r = &rollups[0];
    assert_eq!(r.logins, 2);
    assert_eq!(r.features.get("report_builder"), Some(&2));
    assert_eq!(r.reports, 1);
    assert_eq!((r.nps_sum, r.nps_count), (9, 1));
    assert_eq!(r.active_contacts.len(), 2);

    let firsts = env.store.firsts("acme").await.unwrap();
    assert_eq!(
        firsts.get("feature_report_builder"),
        Some(&at("2026-11-20T15:03:00Z"))
    );
    assert!(firsts.contains_key("report"));

    let acct = env.store.account("acme").await.unwrap().expect("account");
    assert_eq!(acct.profile.expect("profile").name, "Acme");
    let contact = env
        .store
        .contact("acme", "u1")
        .await
        .unwrap()
        .expect("contact");
    assert_eq!(contact.profile.expect("profile").email, "u1@acme.example");
    assert_eq!(env.store.raw_events("acme").await.unwrap().len(), 8);
}

#[tokio::test]
async fn duplicate_event_id_is_accepted_once_and_never_double_counted() {
    let env = TestEnv::new("duplicates").await;
    let now = at("2026-11-20T15:00:00Z");
    let body = batch(&[
        login("d1", "acme", "u1", "2026-11-20T10:01:00-05:00"),
        login("d2", "acme", "u1", "2026-11-20T10:02:00-05:00"),
    ]);
    let (_, first) = env.post_events(&body, now).await;
    assert_eq!(first["accepted"], 2);
    let (status, again) = env.post_events(&body, now + Duration::seconds(30)).await;
    assert_eq!(status, 200);
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 2);
    // The same id inside one batch is also a duplicate.
    let body = batch(&[
        login("d3", "acme", "u1", "2026-11-20T10:03:00-05:00"),
        login("d3", "acme", "u1", "2026-11-20T10:03:00-05:00"),
    ]);
    let (_, dup_in_batch) = env.post_events(&body, now).await;
    assert_eq!(dup_in_batch["accepted"], 1);
    assert_eq!(dup_in_batch["duplicates"], 1);
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let r = env.store.rollups("acme", day, day).await.unwrap();
    assert_eq!(r[0].logins, 3);
    // Event ids are per account: the same id for another account is a different event.
    let (_, other) = env
        .post_events(
            &batch(&[login("d1", "globex", "u9", "2026-11-20T10:01:00-05:00")]),
            now,
        )
        .await;
    assert_eq!(other["accepted"], 1);
}

#[tokio::test]
async fn batch_mixing_valid_and_invalid_events_stores_exactly_the_valid_ones() {
    let env = TestEnv::new("mixed").await;
    let now = at("2026-11-20T15:00:00Z");
    let body = batch(&[
        login("m1", "acme", "u1", "2026-11-20T10:01:00-05:00"),
        json!({"event_id": "m2", "account_id": "acme", "type": "teleported", "occurred_at": "2026-11-20T10:01:00-05:00"}),
        login("m3", "acme", "u1", "2026-11-20T10:01:00"),
        json!({"event_id": "m4", "account_id": "acme", "contact_id": "u1", "type": "nps_response",
               "occurred_at": "2026-11-20T10:06:00-05:00", "properties": {"score": "nine"}}),
        login("m5", "acme", "u1", "1899-11-20T10:01:00-05:00"),
        account(
            "m6",
            "acme",
            &"x".repeat(10 * 1024),
            "2026-11-20T10:00:00-05:00",
        ),
        json!("not an object"),
        login("m8", "acme", "u2", "2026-11-20T10:09:00-05:00"),
    ]);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], 2);
    let rejected = out["rejected"].as_array().unwrap();
    let idx: Vec<u64> = rejected
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![1, 2, 3, 4, 5, 6]);
    let err = |i: usize| rejected[i]["error"].as_str().unwrap().to_string();
    assert!(
        err(0).contains("login"),
        "unknown type lists valid ones: {}",
        err(0)
    );
    assert!(err(1).contains("occurred_at"), "{}", err(1));
    assert!(err(2).contains("score"), "{}", err(2));
    assert!(err(3).contains("occurred_at"), "{}", err(3));
    assert!(err(4).contains("name"), "{}", err(4));
    let raw = env.store.raw_events("acme").await.unwrap();
    let mut ids: Vec<String> = raw.into_iter().map(|r| r.event_id).collect();
    ids.sort();
    assert_eq!(ids, vec!["m1", "m8"]);
}

#[tokio::test]
async fn unsigned_badly_signed_and_replayed_requests_are_401_and_store_nothing() {
    let env = TestEnv::new("auth").await;
    let now = at("2026-11-20T15:00:00Z");
    let body = batch(&[login("a1", "acme", "u1", "2026-11-20T10:01:00-05:00")]);

    let unsigned = apigw::http_event(
        "POST",
        "/events",
        "",
        &[("content-type", "application/json")],
        &body,
        now,
    );
    let (status, out) = env.call(&unsigned).await;
    assert_eq!(status, 401, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("X-Nudge-Signature"),
        "{out}"
    );

    let wrong = apigw::signed_post_events(b"another-secret-of-sufficient-length", &body, now);
    assert_eq!(env.call(&wrong).await.0, 401);

    // Signed correctly, but six minutes before the request arrives: a replay.
    let mut replay = apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &body, now);
    replay["requestContext"]["timeEpoch"] = json!((now + Duration::minutes(6)).timestamp_millis());
    assert_eq!(env.call(&replay).await.0, 401);

    // The body altered after signing.
    let mut altered = apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &body, now);
    altered["body"] = json!(body.replace("u1", "u2"));
    assert_eq!(env.call(&altered).await.0, 401);

    assert_eq!(count_items(&env).await, 0);
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_clear_errors() {
    let env = TestEnv::new("limits").await;
    let now = at("2026-11-20T15:00:00Z");

    let huge = format!(
        "{{\"events\": [], \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let (status, out) = env.post_events(&huge, now).await;
    assert_eq!(status, 413, "{out}");
    assert!(out["error"].as_str().unwrap().contains("limit"));

    let many: Vec<Value> = (0..501)
        .map(|i| login(&format!("n{i}"), "acme", "u1", "2026-11-20T10:01:00-05:00"))
        .collect();
    let (status, out) = env.post_events(&batch(&many), now).await;
    assert_eq!(status, 413, "{out}");
    assert!(out["error"].as_str().unwrap().contains("500"));

    let (status, out) = env.post_events("{\"events\": [", now).await;
    assert_eq!(status, 400, "{out}");
    let (status, out) = env.post_events("[1,2,3]", now).await;
    assert_eq!(status, 400, "{out}");
    let (status, out) = env.post_events("{\"evnts\": []}", now).await;
    assert_eq!(status, 400);
    assert!(out["error"].as_str().unwrap().contains("events"), "{out}");

    let wrong_type = apigw::http_event(
        "POST",
        "/events",
        "",
        &[("content-type", "text/plain")],
        "{}",
        now,
    );
    assert_eq!(env.call(&wrong_type).await.0, 415);
    let get = apigw::http_event("GET", "/events", "", &[], "", now);
    assert_eq!(env.call(&get).await.0, 405);
    assert_eq!(count_items(&env).await, 0);
}

#[tokio::test]
async fn an_old_profile_event_arriving_late_does_not_overwrite_newer_data() {
    let env = TestEnv::new("lww").await;
    let now = at("2026-11-20T15:00:00Z");
    let (_, out) = env
        .post_events(
            &batch(&[account(
                "p2",
                "acme",
                "Acme New",
                "2026-11-20T10:00:00-05:00",
            )]),
            now,
        )
        .await;
    assert_eq!(out["accepted"], 1);
    let (_, out) = env
        .post_events(
            &batch(&[account(
                "p1",
                "acme",
                "Acme Old",
                "2026-11-19T10:00:00-05:00",
            )]),
            now,
        )
        .await;
    assert_eq!(out["accepted"], 1, "the late event is kept raw");
    let acct = env.store.account("acme").await.unwrap().unwrap();
    assert_eq!(acct.profile.unwrap().name, "Acme New");
}

#[tokio::test]
async fn reply_pauses_resume_restarts_and_unsubscribe_is_recorded() {
    let env = TestEnv::new("pause").await;
    let now = at("2026-11-20T15:00:00Z");
    let ev = |id: &str, ty: &str, t: &str| json!({"event_id": id, "account_id": "acme", "contact_id": "u1", "type": ty, "occurred_at": t});
    env.post_events(
        &batch(&[ev("r1", "customer_replied", "2026-11-20T10:00:00Z")]),
        now,
    )
    .await;
    assert!(env.store.account("acme").await.unwrap().unwrap().paused);
    env.post_events(
        &batch(&[ev("r2", "automation_resumed", "2026-11-20T11:00:00Z")]),
        now,
    )
    .await;
    assert!(!env.store.account("acme").await.unwrap().unwrap().paused);
    // A reply that happened before the resume, arriving late, does not pause again.
    env.post_events(
        &batch(&[ev("r0", "customer_replied", "2026-11-20T09:00:00Z")]),
        now,
    )
    .await;
    assert!(!env.store.account("acme").await.unwrap().unwrap().paused);

    let unsub = json!({"event_id": "u1", "account_id": "acme", "contact_id": "u1", "type": "unsubscribed",
        "occurred_at": "2026-11-20T12:00:00Z", "properties": {"category": "onboarding"}});
    let all = ev("u2", "unsubscribed", "2026-11-20T12:01:00Z");
    env.post_events(&batch(&[unsub, all]), now).await;
    let c = env.store.contact("acme", "u1").await.unwrap().unwrap();
    assert!(c.unsubscribed.contains("onboarding"));
    assert!(c.unsubscribed.contains("all"));
}

#[tokio::test]
async fn html_in_names_is_stored_verbatim_for_escaping_at_render_time() {
    let env = TestEnv::new("html").await;
    let now = at("2026-11-20T15:00:00Z");
    let name = "<script>alert('x')</script> & Co";
    let (_, out) = env
        .post_events(
            &batch(&[account("h1", "acme", name, "2026-11-20T10:00:00-05:00")]),
            now,
        )
        .await;
    assert_eq!(out["accepted"], 1);
    let acct = env.store.account("acme").await.unwrap().unwrap();
    assert_eq!(acct.profile.unwrap().name, name);
}

#[tokio::test]
async fn sample_event_fixture_works_through_the_lambda_entry() {
    let env = TestEnv::new("fixture").await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/events/ingest-post-events.json"
    ))
    .unwrap();
    // As `lambda_http` parses it (the same file `sam local invoke -e` and `cargo lambda invoke` take).
    let req = lambda_http::request::from_str(&text).expect("fixture parses as an HTTP API event");
    let resp = env.app.http(req).await;
    assert_eq!(resp.status(), 200);
    // And through the full Lambda entry (payload routed by shape, API Gateway v2 response).
    let payload: Value = serde_json::from_str(&text).unwrap();
    let out = env
        .app
        .handle(lambda_runtime::LambdaEvent::new(
            payload,
            lambda_runtime::Context::default(),
        ))
        .await
        .expect("handled");
    assert_eq!(out["statusCode"], 200);
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["duplicates"], 4,
        "second delivery of the same fixture: {body}"
    );
}

#[tokio::test]
async fn a_rollup_the_table_refuses_rejects_its_events_and_a_resend_after_the_fix_counts_them_once()
{
    let env = TestEnv::new("partial").await;
    let now = at("2026-11-20T15:00:00Z");
    // Sabotage one account's rollup item: `logins` as a string makes the ADD fail in DynamoDB.
    env.stack
        .dynamodb()
        .put_item()
        .table_name(&env.table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ACCT#bad".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("DAY#2026-11-20".into()),
        )
        .item(
            "logins",
            aws_sdk_dynamodb::types::AttributeValue::S("oops".into()),
        )
        .send()
        .await
        .unwrap();
    let body = batch(&[
        login("p1", "good", "u1", "2026-11-20T10:01:00-05:00"),
        login("p2", "bad", "u1", "2026-11-20T10:02:00-05:00"),
        login("p3", "bad", "u2", "2026-11-20T10:03:00-05:00"),
        login("p4", "good", "u2", "2026-11-20T10:04:00-05:00"),
    ]);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], 2);
    // A validation error never passes on a retry: rejected with the reason, not `retry`.
    assert_eq!(out["retry"], json!([]));
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{out}");
    assert_eq!(
        (&rejected[0]["index"], &rejected[1]["index"]),
        (&json!(1), &json!(2))
    );
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not stored: "),
        "{out}"
    );
    // Nothing of them was written (a login's record is created with its count), so the
    // resend is not a duplicate.
    assert!(env.store.raw_events("bad").await.unwrap().is_empty());
    assert_eq!(env.store.raw_events("good").await.unwrap().len(), 2);

    env.stack
        .dynamodb()
        .delete_item()
        .table_name(&env.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ACCT#bad".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("DAY#2026-11-20".into()),
        )
        .send()
        .await
        .unwrap();
    let (status, again) = env.post_events(&body, now).await;
    assert_eq!(status, 200);
    assert_eq!(again["accepted"], 2, "{again}");
    assert_eq!(again["duplicates"], 2);
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    assert_eq!(
        env.store.rollups("bad", day, day).await.unwrap()[0].logins,
        2
    );
    assert_eq!(
        env.store.rollups("good", day, day).await.unwrap()[0].logins,
        2
    );
}

#[tokio::test]
async fn logins_and_feature_uses_are_recorded_with_their_count_one_write_per_99_and_once() {
    let env = TestEnv::new("count-only").await;
    let now = at("2026-11-20T15:00:00Z");
    let events: Vec<Value> = (0..150)
        .map(|i| {
            let t = format!("2026-11-20T10:{:02}:{:02}Z", i / 60, i % 60);
            match i % 2 {
                0 => login(&format!("l{i}"), "acme", &format!("u{}", i % 7), &t),
                _ => feature(&format!("f{i}"), "acme", "u1", "export", &t),
            }
        })
        .collect();
    // Warm the container's zone and firsts so the batch below makes only its own writes.
    let (status, out) = env.post_events(&batch(&events[..2]), now).await;
    assert_eq!((status, &out["accepted"]), (200, &json!(2)), "{out}");
    let meter = env.store.meter();
    let before = meter.snapshot();
    let (status, out) = env.post_events(&batch(&events[2..]), now).await;
    let after = meter.snapshot();
    assert_eq!((status, &out["accepted"]), (200, &json!(148)), "{out}");
    // One (account, day): 148 events counted in two transactions (99 + 49), no other write.
    assert_eq!(after.requests - before.requests, 2);
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let r = &env.store.rollups("acme", day, day).await.unwrap()[0];
    assert_eq!((r.events, r.logins, r.features["export"]), (150, 75, 75));
    assert_eq!(r.active_contacts.len(), 7);
    let raw = env.store.raw_events("acme").await.unwrap();
    assert_eq!(raw.len(), 150);

    // The same body again: every event a duplicate, nothing counted twice.
    let (status, again) = env.post_events(&batch(&events), now).await;
    assert_eq!(
        (status, &again["duplicates"]),
        (200, &json!(150)),
        "{again}"
    );
    assert_eq!(again["accepted"], 0);
    let r = &env.store.rollups("acme", day, day).await.unwrap()[0];
    assert_eq!((r.events, r.logins, r.features["export"]), (150, 75, 75));
    assert_eq!(env.store.raw_events("acme").await.unwrap().len(), 150);
}

#[tokio::test]
async fn nothing_stored_because_the_table_is_unreachable_is_503_with_retry_after() {
    let env = TestEnv::new("unreachable").await;
    // The same handler, wired to a DynamoDB endpoint that refuses connections.
    let broken = nudge_tests::LocalStack {
        dynamodb_url: "http://127.0.0.1:9".into(),
        moto_url: env.stack.moto_url.clone(),
    };
    let (deps, _) = broken.deps(env.deps().config.clone());
    let app = nudge_shared::ingest::lambda::Ingest::new(deps);
    let body = batch(&[
        login("x1", "acme", "u1", "2026-11-20T10:01:00-05:00"),
        json!({"event_id": "x2", "account_id": "acme", "type": "teleported", "occurred_at": "2026-11-20T10:01:00-05:00"}),
        login("x3", "acme", "u1", "2026-11-20T10:02:00-05:00"),
    ]);
    let event =
        apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &body, at("2026-11-20T15:00:00Z"));
    let resp = app.http(apigw::to_request(&event).unwrap()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let out: Value = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    assert_eq!(out["retry"], json!([0, 2]));
    assert_eq!(out["rejected"][0]["index"], 1);
}

fn ticket(id: &str, kind: &str, ticket: &str, severity: Option<&str>, t: &str) -> Value {
    let mut properties = json!({"ticket_id": ticket});
    if let Some(s) = severity {
        properties["severity"] = json!(s);
    }
    json!({"event_id": id, "account_id": "acme", "type": kind, "occurred_at": t,
           "properties": properties})
}

fn nps(id: &str, account: &str, score: u8, comment: Option<&str>, t: &str) -> Value {
    let mut properties = json!({"score": score});
    if let Some(c) = comment {
        properties["comment"] = json!(c);
    }
    json!({"event_id": id, "account_id": account, "contact_id": "u1", "type": "nps_response",
           "occurred_at": t, "properties": properties})
}

#[tokio::test]
async fn profile_ticket_and_nps_events_keep_the_health_state_and_a_resend_changes_nothing() {
    let env = TestEnv::new("health_state").await;
    let now = at("2026-11-20T20:00:00Z");
    let body = batch(&[
        account("h1", "acme", "Acme", "2026-11-20T10:00:00-05:00"),
        // T-1's close arrives before its open, in the same batch.
        ticket(
            "h2",
            "support_ticket_closed",
            "T-1",
            None,
            "2026-11-20T11:00:00-05:00",
        ),
        ticket(
            "h3",
            "support_ticket_opened",
            "T-1",
            Some("high"),
            "2026-11-20T10:05:00-05:00",
        ),
        ticket(
            "h4",
            "support_ticket_opened",
            "T-2",
            Some("low"),
            "2026-11-20T11:30:00-05:00",
        ),
        nps(
            "h5",
            "acme",
            4,
            Some("Exports are slow"),
            "2026-11-20T12:00:00-05:00",
        ),
    ]);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!((status, &out["accepted"]), (200, &json!(5)), "{out}");
    let (_, again) = env.post_events(&body, now).await;
    assert_eq!(again["duplicates"], 5);

    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let record = env.store.health_record("acme", day, day).await.unwrap();
    assert_eq!(
        record.satisfaction.tickets,
        vec![
            TicketState {
                ticket_id: "T-1".into(),
                severity: Severity::High,
                opened_at: at("2026-11-20T15:05:00Z"),
                closed_at: Some(at("2026-11-20T16:00:00Z")),
            },
            TicketState {
                ticket_id: "T-2".into(),
                severity: Severity::Low,
                opened_at: at("2026-11-20T16:30:00Z"),
                closed_at: None,
            },
        ]
    );
    assert_eq!(
        record.satisfaction.nps,
        vec![NpsAnswer {
            score: 4,
            at: at("2026-11-20T17:00:00Z"),
            comment: Some("Exports are slow".into()),
        }]
    );
    let rollup = &record.days[0];
    assert_eq!(
        (
            rollup.tickets_opened,
            rollup.tickets_closed,
            rollup.nps_count
        ),
        (2, 1, 1)
    );

    let shards = env.deps().config.health_index_shards;
    let shard = schema::account_index_shard("acme", shards);
    let indexed = env.store.indexed_accounts(shard, shards).await.unwrap();
    assert_eq!(
        indexed,
        vec![IndexedAccount {
            account_id: "acme".into(),
            first_seen: at("2026-11-20T15:00:00Z"),
        }]
    );
}

#[tokio::test]
async fn a_satisfaction_write_the_table_refuses_rejects_the_event_with_the_reason() {
    let env = TestEnv::new("health_state_failure").await;
    let now = at("2026-11-20T20:00:00Z");
    // A satisfaction item a few bytes under the 400 KB item limit (409,600 bytes, names
    // included): adding an answer to it fails.
    env.stack
        .dynamodb()
        .put_item()
        .table_name(&env.table)
        .item("pk", AttributeValue::S("ACCT#full".into()))
        .item("sk", AttributeValue::S("SAT".into()))
        .item("pad", AttributeValue::S("x".repeat(409_575)))
        .send()
        .await
        .unwrap();
    let body = batch(&[
        nps("f1", "full", 9, None, "2026-11-20T12:00:00-05:00"),
        nps("f2", "fine", 9, None, "2026-11-20T12:00:00-05:00"),
    ]);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!((&out["accepted"], &out["retry"]), (&json!(1), &json!([])));
    assert_eq!(out["rejected"][0]["index"], 0, "{out}");
    assert!(
        out["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("size"),
        "{out}"
    );
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    assert!(
        env.store
            .rollups("full", day, day)
            .await
            .unwrap()
            .is_empty(),
        "no rollup for an event whose state effect failed"
    );
    let fine = env.store.health_record("fine", day, day).await.unwrap();
    assert_eq!(fine.satisfaction.nps.len(), 1);
}

#[tokio::test]
async fn a_resend_after_a_crash_past_the_raw_write_applies_its_effects_and_counts_once() {
    let env = TestEnv::new("crash_resend").await;
    let now = at("2026-11-20T15:00:00Z");
    let events = [
        login("c1", "acme", "u1", "2026-11-20T10:01:00-05:00"),
        login("c2", "acme", "u2", "2026-11-20T10:02:00-05:00"),
        json!({"event_id": "c3", "account_id": "acme", "contact_id": "u1", "type": "unsubscribed",
               "occurred_at": "2026-11-20T10:03:00-05:00"}),
    ];
    // Step 1 alone, as a function that crashed right after it leaves the table.
    let ttl = env.deps().config.raw_event_ttl_days;
    for e in &events {
        let event = nudge_shared::events::parse_event(e, now).unwrap();
        let raw = nudge_shared::ingest::raw_record(&event, now, ttl);
        env.store.insert_raw_event(&raw).await.unwrap();
    }
    let body = batch(&events);
    let (status, out) = env.post_events(&body, now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (&out["accepted"], &out["duplicates"]),
        (&json!(3), &json!(0)),
        "{out}"
    );
    let contact = env.store.contact("acme", "u1").await.unwrap().unwrap();
    assert!(contact.unsubscribed.contains("all"));
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let r = env.store.rollups("acme", day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].logins), (2, 2));

    // After success: plain duplicates, nothing counted again.
    let (_, again) = env.post_events(&body, now + Duration::seconds(30)).await;
    assert_eq!(
        (&again["accepted"], &again["duplicates"]),
        (&json!(0), &json!(3)),
        "{again}"
    );
    let r = env.store.rollups("acme", day, day).await.unwrap();
    assert_eq!((r[0].events, r[0].logins), (2, 2));
}

#[tokio::test]
async fn a_raw_record_from_before_states_is_a_plain_duplicate() {
    let env = TestEnv::new("legacy_raw").await;
    let now = at("2026-11-20T15:00:00Z");
    // A record as ingest wrote it before raw records had a state.
    env.stack
        .dynamodb()
        .put_item()
        .table_name(&env.table)
        .item("pk", AttributeValue::S("ACCT#acme".into()))
        .item("sk", AttributeValue::S("EVT#old1".into()))
        .item("type", AttributeValue::S("login".into()))
        .item(
            "occurred_at",
            AttributeValue::S("2026-11-20T15:01:00.000Z".into()),
        )
        .item(
            "received_at",
            AttributeValue::S("2026-11-20T15:01:00.000Z".into()),
        )
        .send()
        .await
        .unwrap();
    let body = batch(&[login("old1", "acme", "u1", "2026-11-20T10:01:00-05:00")]);
    let (_, out) = env.post_events(&body, now).await;
    assert_eq!(
        (&out["accepted"], &out["duplicates"]),
        (&json!(0), &json!(1)),
        "{out}"
    );
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    assert!(
        env.store
            .rollups("acme", day, day)
            .await
            .unwrap()
            .is_empty()
    );
}

/// POSTs a batch through another ingest container (its own caches) on the same table.
async fn post_through(
    app: &nudge_shared::ingest::lambda::Ingest,
    events: &[Value],
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let event = apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &batch(events), now);
    let resp = app.http(apigw::to_request(&event).unwrap()).await;
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    }
}

fn account_in(id: &str, account: &str, tz: &str, t: &str) -> Value {
    let mut e = self::account(id, account, "Acme", t);
    e["properties"]["timezone"] = json!(tz);
    e
}

/// Logins per rollup day of an account, as the table holds them.
async fn logins_by_day(env: &TestEnv, account: &str) -> Vec<(String, u64)> {
    let (from, to) = (
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    );
    env.store
        .rollups(account, from, to)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.day.to_string(), r.logins))
        .collect()
}

#[tokio::test]
async fn rollups_count_the_account_local_day_from_the_batch_a_profile_read_or_the_cache() {
    let env = TestEnv::new("local_day").await;
    let now = at("2026-11-21T06:00:00Z");
    // Tokyo: the profile comes in the same batch. 23:30 on the 20th in Tokyo is 14:30Z on the
    // 20th; 00:10 on the 21st is still the 20th in UTC. Times are sent in UTC on purpose: the
    // sender's offset does not decide the day, the profile's zone does.
    let (status, out) = env
        .post_events(
            &batch(&[
                login("k1", "tokyo", "u1", "2026-11-20T14:30:00Z"),
                login("k2", "tokyo", "u1", "2026-11-20T15:10:00Z"),
                account_in("k0", "tokyo", "Asia/Tokyo", "2026-11-01T00:00:00Z"),
                account_in("n0", "ny", "America/New_York", "2026-11-01T00:00:00Z"),
            ]),
            now,
        )
        .await;
    assert_eq!((status, &out["accepted"]), (200, &json!(4)), "{out}");
    assert_eq!(
        logins_by_day(&env, "tokyo").await,
        vec![("2026-11-20".into(), 1), ("2026-11-21".into(), 1)]
    );

    // New York, through a fresh container: its zone is read from the stored profile once.
    // 23:30 on the 20th in New York is 04:30Z on the 21st, 00:10 on the 21st is 05:10Z.
    let (deps, store) = env.stack.deps(env.deps().config.clone());
    let fresh = nudge_shared::ingest::lambda::Ingest::new(deps);
    let meter = store.meter();
    let before = meter.snapshot();
    let out = post_through(
        &fresh,
        &[
            login("n1", "ny", "u1", "2026-11-21T04:30:00Z"),
            login("n2", "ny", "u1", "2026-11-21T05:10:00Z"),
            // No profile yet: UTC days.
            login("b1", "bare", "u1", "2026-11-21T04:30:00Z"),
        ],
        now,
    )
    .await;
    let read = meter.snapshot();
    assert_eq!(out["accepted"], 3, "{out}");
    assert!(
        read.read_units > before.read_units,
        "the profiles were read"
    );
    // The same container again: both zones (and "no profile") are remembered.
    let out = post_through(
        &fresh,
        &[
            login("n3", "ny", "u2", "2026-11-21T04:45:00Z"),
            login("b2", "bare", "u2", "2026-11-21T04:45:00Z"),
        ],
        now,
    )
    .await;
    assert_eq!(out["accepted"], 2, "{out}");
    assert_eq!(
        meter.snapshot().read_units,
        read.read_units,
        "no read this time"
    );

    assert_eq!(
        logins_by_day(&env, "ny").await,
        vec![("2026-11-20".into(), 2), ("2026-11-21".into(), 1)]
    );
    assert_eq!(
        logins_by_day(&env, "bare").await,
        vec![("2026-11-21".into(), 2)]
    );
}

/// The ingest handler of a container that loaded `keys`, over the test's table.
fn ingest_with(env: &TestEnv, keys: Keys) -> Ingest {
    let d = env.deps();
    Ingest::new(Deps::new(
        d.config.clone(),
        d.store.clone(),
        d.mailer.clone(),
        d.notifier.clone(),
        keys,
    ))
}

async fn status_of(app: &Ingest, event: &Value) -> u16 {
    let req = apigw::to_request(event).expect("valid HTTP API event");
    app.http(req).await.status().as_u16()
}

#[tokio::test]
async fn after_a_rotation_requests_signed_with_the_previous_secret_are_still_accepted() {
    let env = TestEnv::new("rotation").await;
    let now = at("2026-11-20T15:00:00Z");
    const NEW: &str = "the-rotated-signing-secret-0123456789";
    // Secrets Manager after a rotation: AWSCURRENT = NEW, AWSPREVIOUS = the old secret.
    let rotated = ingest_with(
        &env,
        Keys {
            signing: SigningSecrets::new(
                SigningSecret::new(NEW.as_bytes().to_vec()),
                Some(SigningSecret::new(LOCAL_SECRET.as_bytes().to_vec())),
            ),
            links: local_link_keys(),
        },
    );
    for (i, secret) in [NEW, LOCAL_SECRET].into_iter().enumerate() {
        let body = batch(&[login(
            &format!("r{i}"),
            "acme",
            "u1",
            "2026-11-20T10:01:00-05:00",
        )]);
        let event = apigw::signed_post_events(secret.as_bytes(), &body, now);
        assert_eq!(status_of(&rotated, &event).await, 200, "signed with #{i}");
    }
    let body = batch(&[login("r2", "acme", "u1", "2026-11-20T10:02:00-05:00")]);
    let neither = apigw::signed_post_events(b"neither-the-current-nor-the-previous", &body, now);
    assert_eq!(status_of(&rotated, &neither).await, 401);
    // A container that loaded no previous secret refuses the old one.
    let current_only = ingest_with(
        &env,
        Keys {
            signing: SigningSecrets::new(SigningSecret::new(NEW.as_bytes().to_vec()), None),
            links: local_link_keys(),
        },
    );
    let old = apigw::signed_post_events(LOCAL_SECRET.as_bytes(), &body, now);
    assert_eq!(status_of(&current_only, &old).await, 401);
    let stored = env.store.raw_events("acme").await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[tokio::test]
async fn write_cost_per_event_is_printed_for_usage_and_state_events() {
    let env = TestEnv::new("ingest_cost").await;
    let now = at("2026-11-20T15:00:00Z");
    let (deps, store) = env.stack.deps(env.deps().config.clone());
    let app = nudge_shared::ingest::lambda::Ingest::new(deps);
    let meter = store.meter();
    post_through(
        &app,
        &[account("a0", "acme", "Acme", "2026-11-01T00:00:00Z")],
        now,
    )
    .await;
    let logins: Vec<Value> = (0..100)
        .map(|i| {
            login(
                &format!("l{i}"),
                "acme",
                &format!("u{}", i % 10),
                "2026-11-20T10:00:00Z",
            )
        })
        .collect();
    let unsubscribes: Vec<Value> = (0..100)
        .map(|i| {
            json!({"event_id": format!("s{i}"), "account_id": "acme", "contact_id": format!("u{i}"),
                   "type": "unsubscribed", "occurred_at": "2026-11-20T10:00:00Z"})
        })
        .collect();
    for (what, events) in [("login", &logins), ("unsubscribed", &unsubscribes)] {
        for round in ["new", "duplicate"] {
            let before = meter.snapshot();
            let out = post_through(&app, events, now).await;
            assert!(
                out["retry"] == json!([]) && out["rejected"] == json!([]),
                "{out}"
            );
            let after = meter.snapshot();
            let per = |x: f64| x / events.len() as f64;
            println!(
                "ingest cost, 100 {what} events ({round}): {:.2} WCU, {:.2} RCU, {:.2} requests per event",
                per(after.write_units - before.write_units),
                per(after.read_units - before.read_units),
                per((after.requests - before.requests) as f64),
            );
        }
    }
}

#[tokio::test]
async fn an_arr_beyond_what_the_table_stores_is_rejected_naming_the_field() {
    let env = TestEnv::new("arr_range").await;
    let now = at("2026-11-20T15:00:00Z");
    let mut huge = account("r1", "acme", "Acme", "2026-11-20T10:00:00-05:00");
    huge["properties"]["arr"] = json!(1e130);
    let fine = account("r2", "globex", "Globex", "2026-11-20T10:00:00-05:00");
    let (status, out) = env.post_events(&batch(&[huge, fine]), now).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (&out["accepted"], &out["retry"]),
        (&json!(1), &json!([])),
        "{out}"
    );
    assert_eq!(out["rejected"][0]["index"], 0, "{out}");
    assert!(
        out["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("properties.arr: "),
        "{out}"
    );
}
