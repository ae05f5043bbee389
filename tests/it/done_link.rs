//! "I've done this" links through the real ingest handler: `GET /steps/done` asks and changes
//! nothing, `POST` records `setup_step_completed` once through the `POST /events` write path and
//! names the next onboarding step, in the contact's language; forged, altered and reused links
//! change nothing and say so.

use base64::Engine;
use chrono::{DateTime, Utc};
use nudge_infra::apigw;
use nudge_shared::delivery::done_link::{self, DoneTarget};
use nudge_shared::delivery::unsubscribe;
use nudge_shared::domain::{Nudge, NudgeKind};
use nudge_shared::store::{EventStore, HealthStore, ModelSelection, NudgeStore, RawEvent};
use nudge_tests::{TestEnv, at, local_link_keys, mail, sweep};
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded";

fn t0() -> DateTime<Utc> {
    // Friday 09:00 in Tokyo: customer emails may go out.
    at("2026-11-20T00:00:00Z")
}

fn addr(env: &TestEnv, who: &str) -> String {
    format!("{who}.{}@example.test", env.table)
}

/// `acme` (Japanese account, Tokyo) with a Japanese contact `u-ja`, an English one `u-en`
/// and one without a locale, `u-none` (the account's language applies).
async fn seed(env: &TestEnv) {
    let t = "2026-11-01T00:00:00Z";
    let contact = |id: &str, locale: Option<&str>| {
        let mut props = json!({"email": addr(env, id), "name": id, "role": "admin"});
        if let Some(l) = locale {
            props["locale"] = json!(l);
        }
        json!({"event_id": format!("c-{id}"), "account_id": "acme", "contact_id": id,
               "type": "contact_upserted", "occurred_at": t, "properties": props})
    };
    let events = json!({"events": [
        {"event_id": "acct", "account_id": "acme", "type": "account_upserted", "occurred_at": t,
         "properties": {"name": "Acme", "plan": "pro", "industry": "retail",
            "timezone": "Asia/Tokyo", "locale": "ja", "contract_start": "2026-10-01",
            "renewal_date": "2027-09-30", "renewals": 0, "arr": 12000}},
        contact("u-ja", Some("ja")),
        contact("u-en", Some("en")),
        contact("u-none", None),
    ]});
    let (status, out) = env.post_events(&events.to_string(), at(t)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["accepted"], 4, "{out}");
}

fn token(contact: &str, step: &str, nudge: &str) -> String {
    done_link::sign(
        &local_link_keys(),
        &DoneTarget {
            account_id: "acme".into(),
            contact_id: contact.into(),
            step: step.into(),
            nudge_id: nudge.into(),
        },
    )
    .unwrap()
}

fn query(token: &str) -> String {
    format!("t={token}")
}

async fn get(env: &TestEnv, token: &str) -> (u16, String) {
    let event = apigw::http_event("GET", "/steps/done", &query(token), &[], "", t0());
    page(env.call(&event).await)
}

/// What the confirmation page's form sends: the token in the form body.
async fn post(env: &TestEnv, token: &str) -> (u16, String) {
    let event = apigw::http_event(
        "POST",
        "/steps/done",
        "",
        &[("content-type", FORM)],
        &query(token),
        t0(),
    );
    page(env.call(&event).await)
}

fn page((status, body): (u16, Value)) -> (u16, String) {
    (status, body.as_str().unwrap_or_default().to_string())
}

async fn steps_done(env: &TestEnv) -> Vec<String> {
    env.store
        .firsts("acme")
        .await
        .unwrap()
        .into_keys()
        .filter(|k| k.starts_with("step_"))
        .collect()
}

async fn done_events(env: &TestEnv) -> Vec<RawEvent> {
    env.store
        .raw_events("acme")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "setup_step_completed")
        .collect()
}

#[tokio::test]
async fn get_shows_a_form_with_the_token_and_records_nothing() {
    let env = TestEnv::new("done_get").await;
    seed(&env).await;
    let tok = token("u-en", "import_data", "ob:1");
    let (status, html) = get(&env, &tok).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.starts_with("<!doctype html><html lang=\"en\">"),
        "{html}"
    );
    assert!(
        html.contains("<p>Mark “Import data” as done?</p>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<form method=\"post\"><input type=\"hidden\" name=\"t\" value=\"{tok}\">"
        )),
        "{html}"
    );
    let (_, ja) = get(&env, &token("u-ja", "import_data", "ob:1")).await;
    assert!(
        ja.contains("<p>「データの取り込み」を完了として記録しますか？</p>"),
        "{ja}"
    );
    assert!(steps_done(&env).await.is_empty());
    assert!(done_events(&env).await.is_empty());
}

#[tokio::test]
async fn post_records_the_step_and_names_the_next_one_in_the_contacts_language() {
    let env = TestEnv::new("done_post").await;
    seed(&env).await;

    let ja_token = token("u-ja", "import_data", "ob:1");
    let (status, ja) = post(&env, &ja_token).await;
    assert_eq!(status, 200, "{ja}");
    assert!(ja.starts_with("<!doctype html><html lang=\"ja\">"), "{ja}");
    assert!(ja.contains("<title>おつかれさまでした</title>"), "{ja}");
    assert!(
        ja.contains("「データの取り込み」の完了を記録しました。"),
        "{ja}"
    );
    // The default plan list: invite_users, import_data, first_report.
    assert!(
        ja.contains("<p>次のステップ: <strong>メンバーの招待</strong></p>"),
        "{ja}"
    );
    assert_eq!(steps_done(&env).await, ["step_import_data"]);
    let raws = done_events(&env).await;
    assert_eq!(raws.len(), 1);
    assert_eq!(raws[0].contact_id.as_deref(), Some("u-ja"));
    assert!(
        raws[0].event_id.starts_with("done-"),
        "{}",
        raws[0].event_id
    );
    let body: Value = serde_json::from_str(&raws[0].body).unwrap();
    assert_eq!(body["properties"], json!({"step": "import_data"}));
    assert_eq!(raws[0].occurred_at, t0(), "the request's receive time");

    let (status, en) = post(&env, &token("u-en", "invite_users", "ob:2")).await;
    assert_eq!(status, 200, "{en}");
    assert!(en.starts_with("<!doctype html><html lang=\"en\">"), "{en}");
    assert!(
        en.contains("<p>Congratulations: “Invite users” is recorded as done.</p>"),
        "{en}"
    );
    assert!(
        en.contains("<p>Next step: <strong>First report</strong></p>"),
        "{en}"
    );

    // A contact without a locale reads the account's language.
    let (_, none) = post(&env, &token("u-none", "first_report", "ob:3")).await;
    assert!(
        none.starts_with("<!doctype html><html lang=\"ja\">"),
        "{none}"
    );
    assert!(
        none.contains("「最初のレポート作成」の完了を記録しました。"),
        "{none}"
    );
    assert!(!none.contains("次のステップ"), "every step is done: {none}");
    assert_eq!(done_events(&env).await.len(), 3);
}

#[tokio::test]
async fn a_reused_link_says_already_recorded_and_stores_one_event() {
    let env = TestEnv::new("done_reused").await;
    seed(&env).await;
    let tok = token("u-en", "import_data", "ob:1");
    let (status, first) = post(&env, &tok).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("<title>Well done!</title>"), "{first}");
    let recorded_at = env.store.firsts("acme").await.unwrap()["step_import_data"];

    let (status, again) = post(&env, &tok).await;
    assert_eq!(status, 200, "{again}");
    assert!(again.contains("<title>Already recorded</title>"), "{again}");
    assert!(
        again.contains("“Import data” was already recorded as done."),
        "{again}"
    );
    assert!(
        again.contains("<p>Next step: <strong>Invite users</strong></p>"),
        "still shows the next step: {again}"
    );
    assert_eq!(done_events(&env).await.len(), 1, "one raw event only");
    assert_eq!(
        env.store.firsts("acme").await.unwrap()["step_import_data"],
        recorded_at
    );
}

#[tokio::test]
async fn forged_altered_and_foreign_tokens_get_the_invalid_page_and_store_nothing() {
    let env = TestEnv::new("done_forged").await;
    seed(&env).await;
    let tok = token("u-en", "import_data", "ob:1");
    let parts: Vec<&str> = tok.split('.').collect();
    let (kid, payload, sig) = (parts[0], parts[1], parts[2]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let other_contact = b64.encode(br#"["acme","u-ja","import_data","ob:1"]"#);
    let other_step = b64.encode(br#"["acme","u-en","first_report","ob:1"]"#);
    let mut flipped = sig.to_string();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    flipped.replace_range(0..1, first);
    let bad = [
        format!("{kid}.{other_contact}.{sig}"),
        format!("{kid}.{other_step}.{sig}"),
        format!("{kid}.{payload}.{flipped}"),
        format!("v2.{payload}.{sig}"),
        format!("{payload}.{sig}"),
        tok[..tok.len() - 3].to_string(),
        unsubscribe::sign(&local_link_keys(), "acme", "u-en", "onboarding").unwrap(),
        "garbage".to_string(),
        String::new(),
    ];
    for t in &bad {
        for (status, html) in [get(&env, t).await, post(&env, t).await] {
            assert_eq!(status, 400, "{t}: {html}");
            assert!(
                html.contains("This link is not valid. Nothing was recorded.")
                    && html.contains("このリンクは無効です。"),
                "{t}: {html}"
            );
        }
    }
    assert!(steps_done(&env).await.is_empty());
    assert!(done_events(&env).await.is_empty());
}

#[tokio::test]
async fn a_step_name_with_html_is_escaped_in_the_page() {
    let env = TestEnv::new("done_escape").await;
    seed(&env).await;
    // Model step names are free text (only steps named as slugs can be recorded, but any can
    // be listed): a plan whose next step reads as markup.
    let mut model = nudge_shared::health::HealthModel {
        version: "escape-1".into(),
        ..Default::default()
    };
    model.onboarding_steps.default =
        vec!["import_data".into(), "<img src=x onerror=alert(1)>".into()];
    let json = serde_json::to_string(&model).unwrap();
    env.store.put_model("escape-1", &json, t0()).await.unwrap();
    env.store
        .select_models(&ModelSelection {
            active: Some("escape-1".into()),
            shadow: None,
        })
        .await
        .unwrap();
    let (status, html) = post(&env, &token("u-en", "import_data", "ob:1")).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("Next step: <strong>&lt;img src=x onerror=alert(1)&gt;</strong>"),
        "{html}"
    );
}

#[tokio::test]
async fn only_get_and_post_on_steps_done_are_served() {
    let env = TestEnv::new("done_routes").await;
    seed(&env).await;
    let tok = token("u-en", "import_data", "ob:1");
    for method in ["PUT", "DELETE", "HEAD"] {
        let event = apigw::http_event(method, "/steps/done", &query(&tok), &[], "", t0());
        let req = apigw::to_request(&event).unwrap();
        let resp = env.app.http(req).await;
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "GET, POST", "{method}");
    }
    // `/done` alone (and under another parent) is no route.
    for path in ["/done", "/other/done"] {
        let event = apigw::http_event("GET", path, &query(&tok), &[], "", t0());
        assert_eq!(env.call(&event).await.0, 404, "{path}");
    }
    // A stage prefix is fine; the token may also come from the query of a POST.
    let event = apigw::http_event(
        "POST",
        "/prod/steps/done",
        &query(&tok),
        &[("content-type", FORM)],
        "",
        t0(),
    );
    let (status, html) = page(env.call(&event).await);
    assert_eq!(status, 200, "{html}");
    // A body that is not a form, or too large, is refused before anything is read.
    let event = apigw::http_event(
        "POST",
        "/steps/done",
        "",
        &[("content-type", "application/json")],
        &json!({ "t": tok }).to_string(),
        t0(),
    );
    assert_eq!(env.call(&event).await.0, 415);
    let huge = format!("t={tok}&pad={}", "x".repeat(10_000));
    let event = apigw::http_event(
        "POST",
        "/steps/done",
        "",
        &[("content-type", FORM)],
        &huge,
        t0(),
    );
    assert_eq!(env.call(&event).await.0, 413);
    assert_eq!(done_events(&env).await.len(), 1);
}

#[tokio::test]
async fn the_welcome_email_carries_a_done_link_that_records_its_step() {
    let env = TestEnv::new("done_email").await;
    seed(&env).await;
    let n = Nudge::new(
        "hp/admin_changed/u-en/admin_welcome",
        "acme",
        Some("u-en".into()),
        NudgeKind::OnboardingWelcome,
        t0(),
        "health",
        t0(),
    )
    .with_vars(json!({ "first_step": "import_data", "step": "import_data" }));
    assert!(
        env.store
            .put_nudge(&n, env.deps().config.due_shards)
            .await
            .unwrap()
    );
    sweep(env.deps(), t0(), "s1").await.unwrap();
    let raws = env.raw_to(&addr(&env, "u-en")).await;
    assert_eq!(raws.len(), 1, "the welcome email went out");
    let text = mail::part(&raws[0], "text/plain");
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("https://nudge.example.test/steps/done?t="))
        .unwrap_or_else(|| panic!("no done link in {text}"));
    let tok = url.split_once("?t=").unwrap().1;
    let target = done_link::verify(&local_link_keys(), tok).unwrap();
    assert_eq!(target.contact_id, "u-en");
    assert_eq!(target.nudge_id, n.nudge_id);

    let (status, _) = get(&env, tok).await;
    assert_eq!(status, 200);
    assert!(steps_done(&env).await.is_empty(), "GET changes nothing");
    let (status, html) = post(&env, tok).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(steps_done(&env).await, ["step_import_data"]);
}

#[tokio::test]
async fn a_store_failure_asks_to_retry_and_the_retry_records_the_step() {
    let env = TestEnv::new("done_retry").await;
    seed(&env).await;
    // The same handler, wired to a DynamoDB endpoint that refuses connections.
    let broken = nudge_tests::LocalStack {
        dynamodb_url: "http://127.0.0.1:9".into(),
        moto_url: env.stack.moto_url.clone(),
    };
    let (deps, _) = broken.deps(env.deps().config.clone());
    let app = nudge_shared::ingest::lambda::Ingest::new(deps);
    let tok = token("u-en", "import_data", "ob:1");
    let event = apigw::http_event(
        "POST",
        "/steps/done",
        "",
        &[("content-type", FORM)],
        &query(&tok),
        t0(),
    );
    let resp = app.http(apigw::to_request(&event).unwrap()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "30");
    let html = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    assert!(html.contains("Please try again in a minute."), "{html}");

    // Pressing the button again once the store answers: recorded, not "already recorded".
    let (status, html) = post(&env, &tok).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<title>Well done!</title>"), "{html}");
    assert_eq!(steps_done(&env).await, ["step_import_data"]);
}
