use super::*;
use crate::events::{EventType, Role};
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The documented example event (ARCHITECTURE.md, "Ingest contract (v1)") with a given type,
/// contact and properties.
fn ev(ty: &str, contact: Option<&str>, props: Value) -> Value {
    let mut v = json!({
        "event_id": format!("evt-{ty}"),
        "account_id": "acme",
        "type": ty,
        "occurred_at": "2026-11-20T09:15:00+09:00",
        "properties": props,
    });
    if let (Some(c), Some(m)) = (contact, v.as_object_mut()) {
        m.insert("contact_id".into(), c.into());
    }
    v
}

fn account_props() -> Value {
    json!({
        "name": "Acme <Corp> & Sons", "plan": "premium", "industry": "manufacturing",
        "tier": "high-touch", "csm": {"name": "佐藤 花子", "email": "hanako.sato@nudge.example"},
        "timezone": "Asia/Tokyo", "locale": "ja-JP", "contract_start": "2026-04-01",
        "renewal_date": "2027-03-31", "renewals": 0, "arr": 1_200_000.5
    })
}

fn examples() -> Vec<Value> {
    vec![
        ev("account_upserted", None, account_props()),
        ev(
            "contact_upserted",
            Some("u-7"),
            json!({"email": "taro@acme.example", "phone": "+819012345678", "name": "山田 太郎",
                   "role": "admin", "timezone": "Asia/Tokyo", "locale": "ja"}),
        ),
        ev("login", Some("u-7"), json!({})),
        ev(
            "feature_used",
            Some("u-7"),
            json!({"feature": "report_builder"}),
        ),
        ev("report_created", Some("u-7"), json!({})),
        ev(
            "setup_step_completed",
            Some("u-7"),
            json!({"step": "invite_users"}),
        ),
        ev(
            "admin_changed",
            Some("u-8"),
            json!({"previous_contact_id": "u-7"}),
        ),
        ev(
            "support_ticket_opened",
            Some("u-7"),
            json!({"ticket_id": "T-1001", "severity": "high"}),
        ),
        ev(
            "support_ticket_closed",
            None,
            json!({"ticket_id": "T-1001", "severity": "high"}),
        ),
        ev(
            "nps_response",
            Some("u-7"),
            json!({"score": 9, "comment": "Great <b>tool</b>\nthanks"}),
        ),
        ev("customer_replied", Some("u-7"), json!({})),
        ev("automation_resumed", None, json!({})),
        ev(
            "deadline_set",
            Some("u-7"),
            json!({"deadline_id": "dl-42", "due_at": "2026-11-27T18:00:00+09:00",
                   "title": "Submit Q4 usage report", "kind": "report_submission",
                   "link": "https://app.acme.example/reports/q4"}),
        ),
        ev("deadline_completed", None, json!({"deadline_id": "dl-42"})),
        ev("deadline_cancelled", None, json!({"deadline_id": "dl-42"})),
        ev(
            "contract_renewed",
            None,
            json!({"renewal_date": "2028-03-31"}),
        ),
        ev("churned", None, json!({})),
        ev(
            "unsubscribed",
            Some("u-7"),
            json!({"category": "onboarding"}),
        ),
    ]
}

fn parse_ok(v: &Value) -> Event {
    match parse_event(v, now()) {
        Ok(e) => e,
        Err(e) => panic!("expected {v} to parse, got {e}"),
    }
}

fn parse_err(v: &Value) -> EventError {
    match parse_event(v, now()) {
        Ok(e) => panic!("expected {v} to be rejected, got {e:?}"),
        Err(e) => e,
    }
}

/// The error for an otherwise-valid event of `ty` with `props`.
fn prop_err(ty: &str, contact: Option<&str>, props: Value) -> EventError {
    parse_err(&ev(ty, contact, props))
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.into(), val);
    }
    v
}

fn with_prop(mut v: Value, key: &str, val: Value) -> Value {
    if let Some(m) = v.get_mut("properties").and_then(Value::as_object_mut) {
        m.insert(key.into(), val);
    }
    v
}

fn assert_err(e: &EventError, field: &str, contains: &str) {
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(contains), "expected {contains:?} in {e}");
}

#[test]
fn every_event_type_parses_from_a_realistic_example() {
    let parsed: Vec<Event> = examples().iter().map(parse_ok).collect();
    let types: Vec<EventType> = parsed.iter().map(Event::event_type).collect();
    assert_eq!(types, EventType::ALL.to_vec());
    for e in &parsed {
        assert_eq!(e.account_id, "acme");
        assert_eq!(
            e.occurred_at_utc().to_rfc3339(),
            "2026-11-20T00:15:00+00:00"
        );
    }
}

#[test]
fn design_example_parses_to_typed_values() {
    let body = br#"{"events": [
      {"event_id": "evt-123", "account_id": "acme", "contact_id": "u-7",
       "type": "feature_used", "occurred_at": "2026-11-20T09:15:00+09:00",
       "properties": {"feature": "report_builder"}}
    ]}"#;
    let batch = parse_batch(body, now()).map_err(|e| e.to_string());
    let Ok([Ok(e)]) = batch.as_deref() else {
        panic!("{batch:?}")
    };
    assert_eq!(e.event_id, "evt-123");
    assert_eq!(e.contact_id.as_deref(), Some("u-7"));
    assert_eq!(e.occurred_at.offset().local_minus_utc(), 9 * 3600);
    assert_eq!(
        e.payload,
        EventPayload::FeatureUsed {
            feature: "report_builder".into()
        }
    );
}

#[test]
fn account_profile_fields_are_typed_and_normalised() {
    let e = parse_ok(&examples()[0]);
    let EventPayload::AccountUpserted(a) = e.payload else {
        panic!("{e:?}")
    };
    assert_eq!(a.tier, Some(Tier::HighTouch));
    assert_eq!(a.locale, Locale::Ja);
    assert_eq!(a.timezone, chrono_tz::Asia::Tokyo);
    assert_eq!(a.renewal_date.to_string(), "2027-03-31");
    assert_eq!(a.renewals, 0);
    assert_eq!(a.arr, 1_200_000.5);
    assert_eq!(
        a.csm.map(|c| c.email).as_deref(),
        Some("hanako.sato@nudge.example")
    );
}

#[test]
fn to_wire_round_trips_every_event_type() {
    for v in examples() {
        let e = parse_ok(&v);
        let wire = e.to_wire();
        assert_eq!(parse_ok(&wire), e, "{wire}");
        // Stable: a second trip gives the same JSON.
        assert_eq!(parse_ok(&wire).to_wire(), wire);
    }
}

#[test]
fn to_wire_has_the_design_shape() {
    let e = parse_ok(&examples()[3]);
    assert_eq!(
        e.to_wire(),
        json!({"event_id": "evt-feature_used", "account_id": "acme", "contact_id": "u-7",
               "type": "feature_used", "occurred_at": "2026-11-20T09:15:00+09:00",
               "properties": {"feature": "report_builder"}})
    );
    let churned = parse_ok(&examples()[16]).to_wire();
    assert_eq!(churned.get("contact_id"), None);
    assert_eq!(churned["properties"], json!({}));
}

#[test]
fn to_wire_keeps_offset_and_subseconds() {
    let v = with(
        examples()[2].clone(),
        "occurred_at",
        json!("2026-11-19T18:15:00.123456-05:00"),
    );
    let wire = parse_ok(&v).to_wire();
    assert_eq!(wire["occurred_at"], "2026-11-19T18:15:00.123456-05:00");
}

#[test]
fn profile_serde_matches_wire_properties() {
    // The store may persist profiles with serde; that must be the same shape as the wire.
    for i in [0, 1, 12] {
        let e = parse_ok(&examples()[i]);
        let via_serde = match &e.payload {
            EventPayload::AccountUpserted(a) => serde_json::to_value(a),
            EventPayload::ContactUpserted(c) => serde_json::to_value(c),
            EventPayload::DeadlineSet(d) => serde_json::to_value(d),
            _ => unreachable!(),
        };
        assert_eq!(
            via_serde.ok(),
            Some(Value::Object(e.payload.properties())),
            "{i}"
        );
    }
    let a: Result<AccountProfile, _> = serde_json::from_value(account_props());
    assert!(a.is_ok(), "{a:?}");
}

#[test]
fn locale_tier_and_enums_accept_common_spellings() {
    for (s, want) in [
        ("ja", Locale::Ja),
        ("ja-JP", Locale::Ja),
        ("JA_jp", Locale::Ja),
        ("en-US", Locale::En),
        ("EN", Locale::En),
    ] {
        assert_eq!(s.parse(), Ok(want), "{s}");
    }
    for s in ["jp", "english", "", "-ja"] {
        assert!(s.parse::<Locale>().is_err(), "{s}");
    }
    assert_eq!("tech-touch".parse(), Ok(Tier::TechTouch));
    assert_eq!("low_touch".parse(), Ok(Tier::LowTouch));
    assert_eq!("Executive".parse(), Ok(Role::Executive));
    let e = prop_err(
        "support_ticket_opened",
        Some("u-7"),
        json!({"ticket_id": "T-1", "severity": "critical"}),
    );
    assert_err(
        &e,
        "properties.severity",
        "expected one of low, medium, high, urgent",
    );
    let e = prop_err(
        "contact_upserted",
        Some("u-7"),
        json!({"email": "a@b.co", "name": "A", "role": "boss"}),
    );
    assert_err(&e, "properties.role", "admin, executive, user");
}

#[test]
fn batch_keeps_valid_events_and_order_when_neighbours_are_invalid() {
    let events = vec![
        examples()[3].clone(),
        with(examples()[3].clone(), "type", json!("teleported")),
        examples()[9].clone(),
        with_prop(examples()[9].clone(), "score", json!("7")),
        json!("not an object"),
        examples()[2].clone(),
    ];
    let body = serde_json::to_vec(&json!({"events": events})).unwrap_or_default();
    let out = match parse_batch(&body, now()) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(out.len(), 6);
    let fields: Vec<Result<EventType, &str>> = out
        .iter()
        .map(|r| {
            r.as_ref()
                .map(Event::event_type)
                .map_err(|e| e.field.as_str())
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            Ok(EventType::FeatureUsed),
            Err("type"),
            Ok(EventType::NpsResponse),
            Err("properties.score"),
            Err("event"),
            Ok(EventType::Login),
        ]
    );
}

#[test]
fn empty_batch_is_accepted() {
    assert!(matches!(parse_batch(br#"{"events": []}"#, now()), Ok(v) if v.is_empty()));
}

#[test]
fn utf8_byte_order_mark_is_tolerated() {
    assert!(matches!(parse_batch(b"\xEF\xBB\xBF{\"events\": []}", now()), Ok(v) if v.is_empty()));
}

#[test]
fn oversize_body_is_rejected_before_json_parsing() {
    // Not JSON at all: if parsing came first this would be Malformed.
    let body = vec![b'x'; MAX_BODY_BYTES + 1];
    match parse_batch(&body, now()) {
        Err(e @ EnvelopeError::TooLarge { size, limit }) => {
            assert_eq!((size, limit), (MAX_BODY_BYTES + 1, MAX_BODY_BYTES));
            assert_eq!(e.status_code(), 413);
            assert!(e.to_string().contains("1048577 bytes"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn body_of_exactly_the_limit_is_parsed() {
    let mut body = br#"{"events": []}"#.to_vec();
    body.resize(MAX_BODY_BYTES, b' ');
    assert!(matches!(parse_batch(&body, now()), Ok(v) if v.is_empty()));
}

#[test]
fn batch_of_501_events_is_too_many_and_500_is_fine() {
    let one = examples()[2].clone();
    let body = |n: usize| {
        serde_json::to_vec(&json!({ "events": vec![one.clone(); n] })).unwrap_or_default()
    };
    match parse_batch(&body(501), now()) {
        Err(
            e @ EnvelopeError::TooManyEvents {
                count: 501,
                limit: 500,
            },
        ) => {
            assert_eq!(e.status_code(), 413);
            assert_eq!(e.to_string(), "batch has 501 events; the limit is 500");
        }
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    assert!(
        matches!(parse_batch(&body(500), now()), Ok(v) if v.len() == 500 && v.iter().all(Result::is_ok))
    );
}

#[test]
fn malformed_envelopes_have_clear_messages() {
    let cases: [(&[u8], &str); 8] = [
        (b"", "body is empty"),
        (b"  \n", "body is empty"),
        (b"events=1", "not valid JSON"),
        (br#"{"events": [}"#, "not valid JSON"),
        (
            br#"[{"event_id": "x"}]"#,
            "expected a JSON object like {\"events\": [...]}, got array",
        ),
        (br#"{"event": []}"#, "missing \"events\""),
        (
            br#"{"events": {"a": 1}}"#,
            "\"events\" must be an array, got object",
        ),
        (
            br#"{"events": null}"#,
            "\"events\" must be an array, got null",
        ),
    ];
    for (body, want) in cases {
        match parse_batch(body, now()) {
            Err(e @ EnvelopeError::Malformed(_)) => {
                assert_eq!(e.status_code(), 400);
                assert!(e.to_string().contains(want), "{e}");
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn unknown_type_lists_valid_types() {
    let e = parse_err(&with(examples()[2].clone(), "type", json!("logged_in")));
    assert_err(&e, "type", "unknown type \"logged_in\"");
    for t in EventType::ALL {
        assert!(e.message.contains(t.as_str()), "{e}");
    }
}

#[test]
fn missing_or_mistyped_top_level_fields_name_the_field() {
    let mut v = examples()[2].clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("type");
    }
    assert_eq!(parse_err(&v).to_string(), "type: required");
    let e = parse_err(&with(examples()[2].clone(), "type", json!(3)));
    assert_eq!(e.to_string(), "type: expected a string, got integer");
    let e = parse_err(&with(examples()[2].clone(), "event_id", Value::Null));
    assert_eq!(e.to_string(), "event_id: required");
    let e = parse_err(&with(examples()[2].clone(), "properties", json!([1])));
    assert_eq!(e.to_string(), "properties: expected an object, got array");
}

#[test]
fn absent_properties_are_empty_for_types_without_properties() {
    let mut v = examples()[2].clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("properties");
    }
    assert_eq!(parse_ok(&v).payload, EventPayload::Login);
    let mut v = examples()[3].clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("properties");
    }
    assert_eq!(parse_err(&v).to_string(), "properties.feature: required");
}

#[test]
fn unknown_extra_properties_are_ignored() {
    let v = with_prop(examples()[3].clone(), "browser", json!({"ua": "x"}));
    let v = with(v, "source", json!("segment"));
    assert!(parse_event(&v, now()).is_ok());
}

#[test]
fn contact_id_is_required_for_person_events() {
    for t in EventType::ALL
        .iter()
        .copied()
        .filter(EventType::requires_contact)
    {
        let i = EventType::ALL
            .iter()
            .position(|x| *x == t)
            .unwrap_or_default();
        let mut v = examples()[i].clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("contact_id");
        }
        let e = parse_err(&v);
        assert_eq!(e.field, "contact_id");
        assert_eq!(e.message, format!("required for {t} events"));
    }
}

#[test]
fn ids_are_restricted_to_safe_characters() {
    for bad in ["", "evt 1", "evt/1", "évt", "evt#1"] {
        let e = parse_err(&with(examples()[2].clone(), "event_id", json!(bad)));
        assert_eq!(e.field, "event_id", "{bad}");
    }
    let long = "a".repeat(129);
    let e = parse_err(&with(examples()[2].clone(), "account_id", json!(long)));
    assert_err(&e, "account_id", "is 129 characters; the limit is 128");
    let ok = "acme:eu-1@tenant_2.x-Y";
    assert!(parse_event(&with(examples()[2].clone(), "account_id", json!(ok)), now()).is_ok());
    let e = prop_err("deadline_completed", None, json!({"deadline_id": "dl 1"}));
    assert_err(&e, "properties.deadline_id", "contains ' '");
}

#[test]
fn slugs_must_be_lower_snake_case() {
    for bad in [
        "Report_Builder",
        "report-builder",
        "report builder",
        "",
        "ü",
    ] {
        let e = prop_err("feature_used", Some("u-7"), json!({ "feature": bad }));
        assert_eq!(e.field, "properties.feature", "{bad}");
    }
    let e = prop_err(
        "unsubscribed",
        Some("u-7"),
        json!({ "category": "a".repeat(65) }),
    );
    assert_err(&e, "properties.category", "unknown category");
    // A typo would silently unsubscribe from nothing.
    let e = prop_err(
        "unsubscribed",
        Some("u-7"),
        json!({ "category": "onbaording" }),
    );
    assert_err(
        &e,
        "properties.category",
        "valid categories: reminders, onboarding, success, all",
    );
    for ok in ["reminders", "onboarding", "success", "all"] {
        let v = ev("unsubscribed", Some("u-7"), json!({ "category": ok }));
        parse_ok(&v);
    }
    let e = prop_err("setup_step_completed", Some("u-7"), json!({ "step": 5 }));
    assert_eq!(
        e.to_string(),
        "properties.step: expected a string, got integer"
    );
}

#[test]
fn timestamp_without_offset_asks_for_one() {
    for s in [
        "2026-11-20T09:15:00",
        "2026-11-20 09:15:00",
        "2026-11-20T09:15:00.5",
    ] {
        let e = parse_err(&with(examples()[2].clone(), "occurred_at", json!(s)));
        assert_err(&e, "occurred_at", "an offset like +09:00 or Z is required");
    }
    let e = prop_err(
        "deadline_set",
        None,
        json!({"deadline_id": "d", "due_at": "2026-11-27T18:00:00", "title": "t"}),
    );
    assert_err(
        &e,
        "properties.due_at",
        "an offset like +09:00 or Z is required",
    );
    for s in [
        "yesterday",
        "2026-11-20",
        "1763600000",
        "2026-13-01T00:00:00Z",
    ] {
        let e = parse_err(&with(examples()[2].clone(), "occurred_at", json!(s)));
        assert_err(&e, "occurred_at", "expected an RFC 3339 timestamp");
    }
    let e = parse_err(&with(
        examples()[2].clone(),
        "occurred_at",
        json!(1_763_600_000),
    ));
    assert_eq!(e.to_string(), "occurred_at: expected a string, got integer");
}

#[test]
fn years_outside_2000_to_2100_are_rejected() {
    for (s, year) in [
        ("1900-01-01T00:00:00Z", "1900"),
        ("9999-12-31T23:59:59+09:00", "9999"),
    ] {
        let e = parse_err(&with(examples()[2].clone(), "occurred_at", json!(s)));
        assert_err(
            &e,
            "occurred_at",
            &format!("year {year} is outside 2000-2100"),
        );
    }
    let mut props = account_props();
    props["contract_start"] = json!("1999-12-31");
    let e = prop_err("account_upserted", None, props);
    assert_err(&e, "properties.contract_start", "year 1999");
    let e = prop_err(
        "deadline_set",
        None,
        json!({"deadline_id": "d", "due_at": "1970-01-01T00:00:00Z", "title": "t"}),
    );
    assert_err(&e, "properties.due_at", "year 1970");
}

#[test]
fn an_occurred_at_ahead_of_the_receive_time_is_rejected_beyond_minutes_of_skew() {
    // 23 hours ahead would make a day of real events look stale.
    for ahead in ["2026-11-20T23:00:00Z", "2026-11-20T00:15:01Z"] {
        let e = parse_err(&with(examples()[2].clone(), "occurred_at", json!(ahead)));
        assert_err(
            &e,
            "occurred_at",
            "more than 15 minutes after 2026-11-20T00:00:00Z",
        );
    }
    assert!(
        parse_event(
            &with(
                examples()[2].clone(),
                "occurred_at",
                json!("2026-11-20T00:15:00Z")
            ),
            now()
        )
        .is_ok()
    );
    // History is fine: backfills and the simulator replay old events.
    assert!(
        parse_event(
            &with(
                examples()[2].clone(),
                "occurred_at",
                json!("2001-01-01T00:00:00Z")
            ),
            now()
        )
        .is_ok()
    );
}

#[test]
fn due_at_more_than_five_years_ahead_is_rejected() {
    let d = |due: &str| json!({"deadline_id": "d", "due_at": due, "title": "t"});
    let e = prop_err("deadline_set", None, d("2031-11-20T00:00:01Z"));
    assert_err(&e, "properties.due_at", "more than 5 years");
    assert!(parse_event(&ev("deadline_set", None, d("2031-11-20T00:00:00Z")), now()).is_ok());
    // A deadline in the past is allowed (late-arriving data); reminders decide what to do.
    assert!(parse_event(&ev("deadline_set", None, d("2026-01-01T00:00:00Z")), now()).is_ok());
}

#[test]
fn dates_must_be_yyyy_mm_dd_and_renewal_not_before_start() {
    for bad in [
        "2026-4-1",
        "2026/04/01",
        "2026-02-30",
        "20260401",
        "2026-04-01T00:00:00Z",
    ] {
        let mut props = account_props();
        props["contract_start"] = json!(bad);
        let e = prop_err("account_upserted", None, props);
        assert_err(
            &e,
            "properties.contract_start",
            "expected a date YYYY-MM-DD",
        );
    }
    let mut props = account_props();
    props["renewal_date"] = json!("2026-03-31");
    let e = prop_err("account_upserted", None, props);
    assert_err(
        &e,
        "properties.renewal_date",
        "is before contract_start 2026-04-01",
    );
    let e = prop_err(
        "contract_renewed",
        None,
        json!({"renewal_date": "next year"}),
    );
    assert_eq!(e.field, "properties.renewal_date");
}

#[test]
fn ten_kb_name_is_rejected_naming_field_and_limit() {
    let mut props = account_props();
    props["name"] = json!("x".repeat(10 * 1024));
    let e = prop_err("account_upserted", None, props);
    assert_eq!(
        e.to_string(),
        "properties.name: is 10240 characters; the limit is 256"
    );
    let e = prop_err(
        "nps_response",
        Some("u-7"),
        json!({"score": 5, "comment": "y".repeat(10 * 1024)}),
    );
    assert_err(&e, "properties.comment", "the limit is 2000");
}

#[test]
fn limits_count_characters_not_bytes() {
    let mut props = account_props();
    props["name"] = json!("株".repeat(256));
    assert!(parse_event(&ev("account_upserted", None, props), now()).is_ok());
}

#[test]
fn html_in_text_is_accepted_verbatim() {
    let mut props = account_props();
    props["name"] = json!("<script>alert(1)</script> & \"Co\"");
    let e = parse_ok(&ev("account_upserted", None, props));
    let EventPayload::AccountUpserted(a) = e.payload else {
        panic!()
    };
    assert_eq!(a.name, "<script>alert(1)</script> & \"Co\"");
}

#[test]
fn control_characters_are_rejected_except_line_breaks_in_comments() {
    let mut props = account_props();
    props["name"] = json!("Acme\r\nBcc: evil@example.com");
    let e = prop_err("account_upserted", None, props);
    assert_err(&e, "properties.name", "U+000D");
    let d = json!({"deadline_id": "d", "due_at": "2026-11-27T18:00:00Z", "title": "a\tb"});
    assert_err(
        &prop_err("deadline_set", None, d),
        "properties.title",
        "U+0009",
    );
    let e = prop_err(
        "nps_response",
        Some("u-7"),
        json!({"score": 3, "comment": "bad\u{0007}bell"}),
    );
    assert_err(&e, "properties.comment", "U+0007");
    let ok = parse_ok(&ev(
        "nps_response",
        Some("u-7"),
        json!({"score": 3, "comment": "line 1\r\nline\t2\rend"}),
    ));
    assert_eq!(
        ok.payload,
        EventPayload::NpsResponse {
            score: 3,
            comment: Some("line 1\nline\t2\nend".into())
        }
    );
    let blank = parse_ok(&ev(
        "nps_response",
        Some("u-7"),
        json!({"score": 3, "comment": "  "}),
    ));
    assert_eq!(
        blank.payload,
        EventPayload::NpsResponse {
            score: 3,
            comment: None
        }
    );
}

#[test]
fn unknown_time_zone_suggests_an_iana_name() {
    let mut props = account_props();
    props["timezone"] = json!("Mars/Olympus");
    let e = prop_err("account_upserted", None, props);
    assert_eq!(
        e.to_string(),
        "properties.timezone: unknown time zone \"Mars/Olympus\"; use an IANA name like Asia/Tokyo"
    );
    let e = prop_err(
        "contact_upserted",
        Some("u-7"),
        json!({"email": "a@b.co", "name": "A", "role": "user", "timezone": "+09:00"}),
    );
    assert_err(&e, "properties.timezone", "unknown time zone \"+09:00\"");
}

#[test]
fn nps_score_must_be_an_integer_from_0_to_10() {
    let score = |s: Value| {
        parse_event(
            &ev("nps_response", Some("u-7"), json!({ "score": s })),
            now(),
        )
    };
    let cases = [
        (json!(7.5), "expected an integer 0-10, got 7.5"),
        (json!("7"), "expected an integer 0-10, got string"),
        (json!(-1), "expected an integer 0-10, got -1"),
        (json!(11), "expected an integer 0-10, got 11"),
        (json!(true), "expected an integer 0-10, got boolean"),
        (json!([7]), "expected an integer 0-10, got array"),
        (Value::Null, "required"),
    ];
    for (s, want) in cases {
        assert_eq!(
            score(s.clone()).map_err(|e| e.to_string()),
            Err(format!("properties.score: {want}")),
            "{s}"
        );
    }
    for s in [0u8, 10] {
        assert!(
            matches!(score(json!(s)), Ok(Event { payload: EventPayload::NpsResponse { score, .. }, .. }) if score == s)
        );
    }
}

#[test]
fn email_header_injection_attempts_are_rejected() {
    let bad = [
        "victim@example.com\r\nBcc: all@example.com",
        "victim@example.com\nBcc: all@example.com",
        "a@example.com, b@example.com",
        "a@example.com,b@example.com",
        "Evil <a@example.com>",
        "a@example.com;b@example.com",
        "\"a\"@example.com",
        "a b@example.com",
        "a@@example.com",
        "a@b@example.com",
        "@example.com",
        "a@",
        "a@localhost",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "taro@例え.jp",
        "",
    ];
    for email in bad {
        let e = prop_err(
            "contact_upserted",
            Some("u-7"),
            json!({"email": email, "name": "A", "role": "user"}),
        );
        assert_eq!(e.field, "properties.email", "{email:?}: {e}");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    let e = prop_err(
        "contact_upserted",
        Some("u-7"),
        json!({"email": long, "name": "A", "role": "user"}),
    );
    assert_err(&e, "properties.email", "the limit is 254");
    let mut props = account_props();
    props["csm"]["email"] = json!("csm@nudge.example\r\nX-Evil: 1");
    assert_eq!(
        prop_err("account_upserted", None, props).field,
        "properties.csm.email"
    );
    for ok in [
        "first.last+tag@sub.example.co.jp",
        "o'brien@example.ie",
        "x@a-b.io",
    ] {
        let v = ev(
            "contact_upserted",
            Some("u-7"),
            json!({"email": ok, "name": "A", "role": "user"}),
        );
        assert!(parse_event(&v, now()).is_ok(), "{ok}");
    }
}

#[test]
fn phone_must_be_e164() {
    for bad in [
        "09012345678",
        "+81 90 1234 5678",
        "+81-90-1234-5678",
        "+1234567",
        "+1234567890123456",
        "+",
    ] {
        let e = prop_err(
            "contact_upserted",
            Some("u-7"),
            json!({"email": "a@b.co", "name": "A", "role": "user", "phone": bad}),
        );
        assert_err(&e, "properties.phone", "E.164");
    }
}

#[test]
fn deadline_link_must_be_an_absolute_http_url() {
    for bad in [
        "javascript:alert(1)",
        "//evil.example",
        "ftp://x.example",
        "https://",
        "https://a.example/\"><script>",
        "https://a.example/a b",
    ] {
        let d = json!({"deadline_id": "d", "due_at": "2026-11-27T18:00:00Z", "title": "t", "link": bad});
        assert_eq!(
            prop_err("deadline_set", None, d).field,
            "properties.link",
            "{bad}"
        );
    }
}

#[test]
fn account_numbers_are_validated() {
    for (key, val, want) in [
        ("arr", json!(-1), "expected a number >= 0, got -1"),
        ("arr", json!("1000"), "expected a number >= 0, got string"),
        (
            "arr",
            json!(1e130),
            "expected 0 or a number from 1e-130 to below 1e126, got 1e+130",
        ),
        (
            "arr",
            json!(1e-140),
            "expected 0 or a number from 1e-130 to below 1e126, got 1e-140",
        ),
        (
            "renewals",
            json!(1.5),
            "expected a non-negative integer, got 1.5",
        ),
        (
            "renewals",
            json!(-2),
            "expected a non-negative integer, got -2",
        ),
        (
            "renewals",
            json!(5_000_000_000u64),
            "expected a non-negative integer",
        ),
    ] {
        let mut props = account_props();
        props[key] = val;
        assert_err(
            &prop_err("account_upserted", None, props),
            &format!("properties.{key}"),
            want,
        );
    }
    let mut props = account_props();
    props["csm"] = json!("Hanako");
    assert_err(
        &prop_err("account_upserted", None, props),
        "properties.csm",
        "expected an object with name and email",
    );
    let mut props = account_props();
    props["csm"] = json!({"name": "Hanako"});
    assert_eq!(
        prop_err("account_upserted", None, props).to_string(),
        "properties.csm.email: required"
    );
}

#[test]
fn long_bad_values_are_not_echoed_in_full() {
    let e = parse_err(&with(
        examples()[2].clone(),
        "type",
        json!("z".repeat(10_000)),
    ));
    assert!(e.message.len() < 1000, "{}", e.message.len());
}

// ---- hostile input ----

fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("event_id".to_string()),
        Just("account_id".to_string()),
        Just("contact_id".to_string()),
        Just("type".to_string()),
        Just("occurred_at".to_string()),
        Just("properties".to_string()),
        Just("events".to_string()),
        Just("score".to_string()),
        Just("csm".to_string()),
        Just("email".to_string()),
        Just("due_at".to_string()),
        ".{0,8}",
    ];
    let strings = prop_oneof![
        proptest::sample::select(EventType::ALL.to_vec()).prop_map(|t| t.as_str().to_string()),
        Just("2026-11-20T09:15:00+09:00".to_string()),
        Just("Asia/Tokyo".to_string()),
        Just("a@b.co".to_string()),
        Just("2026-04-01".to_string()),
        "\\PC{0,20}",
        ".{0,300}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u8..12).prop_map(Value::from),
        strings.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parse_batch_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_batch(&body, now());
    }

    #[test]
    fn parse_batch_never_panics_on_json_ish_strings(body in r#"[\[\]{}",:0-9a-z_ .\-+eE\\]{0,400}"#) {
        let _ = parse_batch(body.as_bytes(), now());
        let wrapped = format!("{{\"events\": [{body}]}}");
        let _ = parse_batch(wrapped.as_bytes(), now());
    }

    #[test]
    fn parse_event_never_panics_on_arbitrary_values(v in json_value()) {
        let _ = parse_event(&v, now());
    }

    /// Mutating one field of a valid event either still parses or fails naming a field; and
    /// whatever parses round-trips through the wire shape.
    #[test]
    fn mutated_valid_events_fail_cleanly_or_round_trip(
        i in 0usize..18,
        in_props in any::<bool>(),
        key in prop_oneof![
            Just("event_id"), Just("contact_id"), Just("occurred_at"), Just("type"),
            Just("score"), Just("email"), Just("due_at"), Just("timezone"), Just("name"),
            Just("comment"), Just("renewal_date"), Just("feature"), Just("csm"), Just("arr"),
        ],
        val in json_value(),
    ) {
        let base = examples()[i].clone();
        let v = if in_props { with_prop(base, key, val) } else { with(base, key, val) };
        match parse_event(&v, now()) {
            Ok(e) => prop_assert_eq!(parse_event(&e.to_wire(), now()), Ok(e)),
            Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty()),
        }
    }

    /// The body reader (borrowing from the bytes) and `parse_event` over a `serde_json::Value`
    /// give every event the same verdict, message for message.
    #[test]
    fn a_body_and_its_values_get_the_same_verdicts(
        mutations in proptest::collection::vec((0usize..18, any::<bool>(), prop_oneof![
            Just("event_id"), Just("occurred_at"), Just("type"), Just("score"), Just("email"),
            Just("comment"), Just("csm"), Just("arr"), Just("properties"),
        ], json_value()), 1..12),
    ) {
        let events: Vec<Value> = mutations
            .into_iter()
            .map(|(i, in_props, key, val)| {
                let base = examples()[i].clone();
                if in_props { with_prop(base, key, val) } else { with(base, key, val) }
            })
            .collect();
        let body = json!({ "events": events }).to_string();
        let from_body = parse_batch(body.as_bytes(), now()).map_err(|e| e.to_string());
        let from_values: Vec<_> = events.iter().map(|v| parse_event(v, now())).collect();
        prop_assert_eq!(from_body, Ok(from_values));
    }

    #[test]
    fn parse_event_never_panics_on_timestamps_and_dates(s in "[0-9T:+\\-Zz. ]{0,40}") {
        let _ = parse_event(&with(examples()[2].clone(), "occurred_at", json!(s)), now());
        let _ = parse_event(&ev("contract_renewed", None, json!({"renewal_date": s})), now());
    }
}
