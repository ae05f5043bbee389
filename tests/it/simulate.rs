//! `nudge simulate`: same input, same delivery log, byte for byte; hostile lines are reported.

use nudge_infra::local::LocalStack;
use nudge_infra::simulate::{EventSource, SimulateOptions, simulate};

fn journey() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("nudge-journey-{}.jsonl", std::process::id()));
    let lines = [
        r#"{"event_id":"j1","account_id":"acme","type":"account_upserted","occurred_at":"2026-11-02T09:00:00+09:00","properties":{"name":"Acme <i>KK</i>","plan":"premium","industry":"manufacturing","tier":"tech_touch","csm":{"name":"Sato","email":"sato@vendor.example"},"timezone":"Asia/Tokyo","locale":"ja","contract_start":"2026-11-02","renewal_date":"2027-11-01","renewals":0,"arr":12000}}"#,
        r#"{"event_id":"j2","account_id":"acme","contact_id":"u1","type":"contact_upserted","occurred_at":"2026-11-02T09:05:00+09:00","properties":{"email":"u1@acme.example","name":"Taro","role":"admin","locale":"ja"}}"#,
        r#"{"event_id":"j3","account_id":"acme","contact_id":"u1","type":"deadline_set","occurred_at":"2026-11-02T10:00:00+09:00","properties":{"deadline_id":"trial","due_at":"2026-11-06T18:00:00+09:00","title":"Trial ends","link":"https://app.example/billing"}}"#,
        r#"{"event_id":"j4","account_id":"acme","contact_id":"u1","type":"login","occurred_at":"2026-11-03T09:00:00+09:00"}"#,
        r#"{"event_id":"j4","account_id":"acme","contact_id":"u1","type":"login","occurred_at":"2026-11-03T09:00:00+09:00"}"#,
        r#"{"event_id":"j5","account_id":"acme","type":"teleported","occurred_at":"2026-11-03T09:00:00+09:00"}"#,
        r#"this line is not JSON"#,
    ];
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

#[tokio::test]
async fn same_input_gives_the_same_delivery_log_byte_for_byte() {
    let stack = LocalStack::ensure_running().unwrap();
    let opts = SimulateOptions::new(
        EventSource::File(journey()),
        "2026-11-02T00:00:00Z".parse().unwrap(),
        "2026-11-06T12:00:00Z".parse().unwrap(),
    );
    let a = simulate(&stack, &opts).await.unwrap();
    let b = simulate(&stack, &opts).await.unwrap();
    assert_eq!(a.delivery_jsonl(), b.delivery_jsonl());
    assert_eq!(a.accepted, 4);
    assert_eq!(a.duplicates, 1);
    let lines: Vec<usize> = a.rejected.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![6, 7], "{:?}", a.rejected);
    assert!(a.rejected[0].1.contains("teleported"));
    assert_eq!(a.stored.get("raw events"), Some(&4));
    // The trial deadline (due 2026-11-06 18:00 Tokyo) went through all three stages.
    let stages: Vec<(String, String)> = a
        .deliveries
        .iter()
        .filter(|d| d.kind == nudge_shared::domain::NudgeKind::DeadlineReminder)
        .map(|d| {
            (
                d.at.to_rfc3339(),
                d.stage.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        vec![
            (
                "2026-11-03T09:00:00+00:00".to_string(),
                "t_minus_3d".to_string()
            ),
            (
                "2026-11-06T00:00:00+00:00".to_string(),
                "morning_of".to_string()
            ),
            ("2026-11-06T07:00:00+00:00".to_string(), "final".to_string()),
        ]
    );
    // The new customer's welcome reached its admin (a contact with the admin role) an hour
    // after Nudge first heard of the account, in Tokyo business hours.
    let line = a.delivery_jsonl().lines().next().unwrap().to_string();
    assert!(line.starts_with(r#"{"at":"2026-11-02T01:00:00Z","function":"milestones","kind":"onboarding_welcome","channel":"email""#), "{line}");
    assert!(
        a.delivery_jsonl()
            .contains(r#""kind":"deadline_reminder","stage":"t_minus_3d","channel":"email""#)
    );
}

#[tokio::test]
async fn an_empty_window_is_an_error_not_a_silent_success() {
    let stack = LocalStack::ensure_running().unwrap();
    let opts = SimulateOptions::new(
        EventSource::File(journey()),
        "2026-11-08T00:00:00Z".parse().unwrap(),
        "2026-11-01T00:00:00Z".parse().unwrap(),
    );
    let err = simulate(&stack, &opts).await.unwrap_err();
    assert!(err.to_string().contains("--to"));
}
