//! Tests of `health`.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::TimeZone;

use super::*;

fn t(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// The SAT item as record_ticket / record_nps leave it (the attribute values they write).
fn sat(entries: Vec<(String, AttributeValue)>) -> Item {
    let mut item = Item::from([
        (PK.to_string(), s("ACCT#acme")),
        (SK.to_string(), s(schema::SAT_SK)),
    ]);
    item.extend(entries);
    item
}

fn open(id: &str, severity: Severity, at: DateTime<Utc>) -> (String, AttributeValue) {
    let v = attribute(
        "t",
        &TicketOpen {
            severity,
            opened_at: at,
        },
    )
    .unwrap();
    (format!("to_{id}"), v)
}

fn close(id: &str, at: DateTime<Utc>) -> (String, AttributeValue) {
    let v = attribute(
        "t",
        &TicketClose {
            closed_at: at,
            severity: None,
        },
    )
    .unwrap();
    (format!("tc_{id}"), v)
}

fn answer(id: &str, score: u8, at: DateTime<Utc>) -> (String, AttributeValue) {
    let v = attribute(
        "n",
        &NpsEntry::new(&NpsAnswer {
            score,
            at,
            comment: None,
        }),
    )
    .unwrap();
    (format!("n_{id}"), v)
}

#[test]
fn an_index_entry_round_trips_with_a_millisecond_first_seen() {
    let entry = IndexItem {
        account_id: "acme".into(),
        first_seen: t(20, 9),
    };
    let item = to_item("account index", &entry).unwrap();
    assert_eq!(
        item["first_seen"],
        AttributeValue::S("2026-11-20T09:00:00.000Z".into())
    );
    assert_eq!(item["account_id"], AttributeValue::S("acme".into()));
    assert_eq!(from_item::<IndexItem>("i", &item).unwrap(), entry);
}

#[test]
fn ticket_facts_and_nps_answers_are_small_maps_with_string_times() {
    let (name, v) = open("T-1", Severity::High, t(20, 9));
    assert_eq!(name, "to_T-1");
    let m = v.as_m().unwrap();
    assert_eq!(m["severity"], AttributeValue::S("high".into()));
    assert_eq!(
        m["opened_at"],
        AttributeValue::S("2026-11-20T09:00:00.000Z".into())
    );
    let (_, v) = close("T-1", t(21, 9));
    assert!(
        !v.as_m().unwrap().contains_key("severity"),
        "absent, not NULL"
    );
    let (name, v) = answer("e-9", 7, t(20, 9));
    assert_eq!(name, "n_e-9");
    assert_eq!(v.as_m().unwrap()["score"], AttributeValue::N("7".into()));
}

#[test]
fn a_closed_ticket_reads_with_its_close_whatever_order_they_arrived_in() {
    let item = sat(vec![
        close("T-1", t(21, 9)),
        open("T-1", Severity::Urgent, t(20, 9)),
        open("T-2", Severity::Low, t(22, 9)),
    ]);
    let s = satisfaction_from_item(&item, t(1, 0)).unwrap();
    assert_eq!(
        s.tickets,
        vec![
            TicketState {
                ticket_id: "T-1".into(),
                severity: Severity::Urgent,
                opened_at: t(20, 9),
                closed_at: Some(t(21, 9)),
            },
            TicketState {
                ticket_id: "T-2".into(),
                severity: Severity::Low,
                opened_at: t(22, 9),
                closed_at: None,
            },
        ]
    );
}

#[test]
fn old_closed_tickets_and_closes_without_an_open_are_left_out_but_old_open_ones_stay() {
    let item = sat(vec![
        open("old-closed", Severity::Low, t(1, 9)),
        close("old-closed", t(2, 9)),
        open("old-open", Severity::High, t(1, 9)),
        close("never-opened", t(20, 9)),
    ]);
    let s = satisfaction_from_item(&item, t(10, 0)).unwrap();
    let ids: Vec<&str> = s.tickets.iter().map(|t| t.ticket_id.as_str()).collect();
    assert_eq!(ids, vec!["old-open"]);
}

#[test]
fn the_ten_newest_nps_answers_are_read_newest_first() {
    let item = sat((1..=12)
        .map(|d| answer(&format!("e{d}"), (d % 11) as u8, t(d, 9)))
        .collect());
    let s = satisfaction_from_item(&item, t(1, 0)).unwrap();
    let days: Vec<DateTime<Utc>> = s.nps.iter().map(|a| a.at).collect();
    assert_eq!(days, (3..=12).rev().map(|d| t(d, 9)).collect::<Vec<_>>());
    assert_eq!(s.nps[0].score, 1, "e12: 12 % 11");
}

#[test]
fn a_long_nps_comment_is_kept_cut_to_its_limit() {
    let entry = NpsEntry::new(&NpsAnswer {
        score: 3,
        at: t(20, 9),
        comment: Some("遅い".repeat(NPS_COMMENT_CHARS)),
    });
    assert_eq!(
        entry.comment.map(|c| c.chars().count()),
        Some(NPS_COMMENT_CHARS)
    );
}

#[test]
fn a_corrupt_satisfaction_entry_is_an_error_naming_it() {
    let item = sat(vec![("to_T-1".into(), AttributeValue::S("open".into()))]);
    let err = satisfaction_from_item(&item, t(1, 0)).unwrap_err();
    assert!(err.to_string().contains("to_T-1"), "{err}");
}

#[test]
fn a_snapshot_round_trips_with_its_day_and_model_in_the_sort_key() {
    let snap = HealthSnapshot {
        account_id: "acme".into(),
        day: day(20),
        model_version: "2026-11#b".into(),
        shadow: true,
        score: 72,
        band: "yellow".into(),
        provisional: false,
        detail: r#"{"score":72}"#.into(),
    };
    let item = to_item("s", &SnapshotItem::new(&snap, 1_800_000_000)).unwrap();
    assert_eq!(
        item["sk"],
        AttributeValue::S("HEALTH#2026-11-20#2026-11#b".into())
    );
    assert_eq!(item[schema::TTL], AttributeValue::N("1800000000".into()));
    assert_eq!(item["shadow"], AttributeValue::Bool(true));
    assert!(!item.contains_key("account_id") && !item.contains_key("day"));
    let back = from_item::<SnapshotItem>("s", &item)
        .unwrap()
        .into_snapshot()
        .unwrap();
    assert_eq!(back, snap);
}

#[test]
fn a_snapshot_with_a_malformed_sort_key_is_corrupt() {
    let mut item = to_item(
        "s",
        &SnapshotItem::new(
            &HealthSnapshot {
                account_id: "acme".into(),
                day: day(20),
                model_version: "v1".into(),
                shadow: false,
                score: 1,
                band: "red".into(),
                provisional: true,
                detail: "{}".into(),
            },
            0,
        ),
    )
    .unwrap();
    item.insert("sk".into(), s("HEALTH#2026-11"));
    let err = from_item::<SnapshotItem>("s", &item)
        .unwrap()
        .into_snapshot()
        .unwrap_err();
    assert!(err.to_string().contains("corrupt health snapshot"), "{err}");
}

#[test]
fn models_and_the_selection_round_trip_and_an_empty_selection_stores_no_names() {
    let model = ModelItem {
        pk: "SYS".into(),
        sk: schema::model_sk("v1"),
        json: r#"{"version":"v1"}"#.into(),
        created_at: t(20, 9),
    };
    let item = to_item("m", &model).unwrap();
    assert_eq!(item["sk"], AttributeValue::S("MODEL#v1".into()));
    assert_eq!(from_item::<ModelItem>("m", &item).unwrap(), model);
    let sel = SelectionItem {
        pk: "SYS".into(),
        sk: schema::MODELS_SK.into(),
        active: Some("v1".into()),
        shadow: None,
    };
    let item = to_item("sel", &sel).unwrap();
    assert!(!item.contains_key("shadow"));
    assert_eq!(from_item::<SelectionItem>("sel", &item).unwrap(), sel);
}
