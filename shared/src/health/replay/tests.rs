//! Tests of `replay`.

use chrono::{Datelike, FixedOffset, Weekday};

use super::*;
use crate::events::Severity;
use crate::health::backtest::{DEFAULT_HORIZON_DAYS, backtest};
use crate::health::model::{Band, Bands, Factor};
use crate::health::score::fixtures::{date, profile};

fn at(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).expect("valid test time")
}

fn ev(id: &str, when: &str, contact: Option<&str>, payload: EventPayload) -> Event {
    Event {
        event_id: id.into(),
        account_id: "acme".into(),
        contact_id: contact.map(str::to_string),
        occurred_at: at(when),
        payload,
    }
}

fn upsert(id: &str, when: &str, p: AccountProfile) -> Event {
    ev(id, when, None, EventPayload::AccountUpserted(p))
}

fn login(id: &str, when: &str, contact: &str) -> Event {
    ev(id, when, Some(contact), EventPayload::Login)
}

fn feature(id: &str, when: &str, contact: &str, name: &str) -> Event {
    let payload = EventPayload::FeatureUsed {
        feature: name.into(),
    };
    ev(id, when, Some(contact), payload)
}

fn values(series: &ScoreSeries, factor: Factor) -> Vec<Option<f64>> {
    series
        .scores
        .iter()
        .map(|s| s.driver(factor).and_then(|d| d.value))
        .collect()
}

fn triggered(series: &ScoreSeries, factor: Factor) -> Vec<bool> {
    series
        .scores
        .iter()
        .map(|s| s.driver(factor).is_some_and(|d| d.triggered))
        .collect()
}

fn draft_model() -> HealthModel {
    HealthModel {
        version: "draft-2".into(),
        bands: Bands {
            red_below: 60.0,
            green_from: 85.0,
        },
        ..HealthModel::default()
    }
}

/// Ten days of a premium account in Tokyo whose profile arrives on March 3 (a login of
/// March 2 came first).
fn tokyo_history() -> Vec<Event> {
    let tokyo = profile(
        chrono_tz::Asia::Tokyo,
        "premium",
        60_000.0,
        date(2025, 6, 1),
        date(2027, 6, 1),
        1,
    );
    vec![
        login("e00", "2026-03-02T15:00:00+09:00", "u1"),
        upsert("e01", "2026-03-03T10:00:00+09:00", tokyo),
        login("e02", "2026-03-03T11:00:00+09:00", "u1"),
        feature("e03", "2026-03-04T09:00:00+09:00", "u2", "dashboard"),
        ev(
            "e04",
            "2026-03-04T14:00:00+09:00",
            Some("u1"),
            EventPayload::SupportTicketOpened {
                ticket_id: "t1".into(),
                severity: Severity::High,
            },
        ),
        // 23:30 in Tokyo: March 5 there (14:30 UTC).
        login("e05", "2026-03-05T23:30:00+09:00", "u2"),
        // 08:30 on March 6 in Tokyo, sent with a UTC offset: still March 5 in UTC.
        login("e06", "2026-03-05T23:30:00+00:00", "u1"),
        ev(
            "e07",
            "2026-03-06T12:00:00+09:00",
            Some("u3"),
            EventPayload::AdminChanged {
                previous_contact_id: Some("u1".into()),
            },
        ),
        ev(
            "e08",
            "2026-03-07T11:00:00+09:00",
            Some("u1"),
            EventPayload::SupportTicketClosed {
                ticket_id: "t1".into(),
                severity: None,
            },
        ),
        ev(
            "e09",
            "2026-03-08T20:00:00+09:00",
            Some("u2"),
            EventPayload::NpsResponse {
                score: 3,
                comment: Some("slow".into()),
            },
        ),
    ]
}

fn replay_tokyo(models: &[&HealthModel]) -> Vec<ScoreSeries> {
    replay_account(
        models,
        &tokyo_history(),
        date(2026, 3, 1),
        date(2026, 3, 10),
    )
}

#[test]
fn each_day_from_the_first_profile_on_gets_one_score_made_at_the_next_local_midnight() {
    let model = HealthModel::default();
    let series = replay_tokyo(&[&model]);
    assert_eq!(series.len(), 1);
    let s = &series[0];
    assert_eq!(s.model_version, "default-1");
    // March 1 and 2 come before the profile: skipped. March 3 to 10: eight scores, each
    // the one the daily run of the next day would make (module documentation).
    let days: Vec<NaiveDate> = s.scores.iter().map(|x| x.day).collect();
    let expected: Vec<NaiveDate> = (4..=11).map(|d| date(2026, 3, d)).collect();
    assert_eq!(days, expected);
    // "now" is 00:00 in Tokyo of score.day, 15:00 UTC the day before.
    let first = &s.scores[0];
    assert_eq!(
        first.at,
        at("2026-03-04T00:00:00+09:00").with_timezone(&Utc)
    );
    assert_eq!(first.at, at("2026-03-03T15:00:00Z").with_timezone(&Utc));
    // first_seen is the March 2 login, before the profile: under 14 days, provisional.
    assert!(s.scores.iter().all(|x| x.provisional));
}

#[test]
fn logins_count_on_their_local_day_including_one_at_23_30_and_one_before_the_profile() {
    let model = HealthModel::default();
    let s = &replay_tokyo(&[&model])[0];
    // Login days in the 14 complete days before score.day, for D = March 3 ..= 10:
    // March 2 (before the profile, given its Tokyo day once the zone is known) and 3;
    // March 5 from the 23:30 login on D = March 5 itself; March 6 from the 08:30 login sent
    // as 23:30 UTC on March 5. Bucketed by UTC day, D = March 5 would show 3 days only
    // with both March 5 logins and the March 6 one would never add a fourth.
    let login_days: Vec<Option<f64>> = [2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0]
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(values(s, Factor::LoginDays), login_days);
    // The feature of March 4 is in the usage window from D = March 4 on.
    let breadth: Vec<Option<f64>> = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(values(s, Factor::FeatureBreadth), breadth);
    // Active contacts: u1 (March 2), u2 from its feature use of March 4. u3 only changed
    // the admin, which is not usage: never active.
    let contacts: Vec<Option<f64>> = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(values(s, Factor::ActiveContacts), contacts);
}

#[test]
fn a_ticket_is_open_until_the_day_it_closes_then_only_recent() {
    let model = HealthModel::default();
    let s = &replay_tokyo(&[&model])[0];
    // D = March 3: no ticket yet (no support signal: missing). Opened March 4 (high = 4),
    // closed March 7: open in the scores of D = 4, 5, 6; from D = 7 (the daily run of
    // March 8) not open any more, still recent.
    let open: Vec<(Option<f64>, bool)> = s
        .scores
        .iter()
        .map(|x| {
            let d = x.driver(Factor::OpenTickets).expect("driver");
            (d.value, d.missing)
        })
        .collect();
    let mut expected = vec![(Some(0.0), true)];
    expected.extend([(Some(4.0), false); 3]);
    expected.extend([(Some(0.0), false); 4]);
    assert_eq!(open, expected);
    let recent = values(s, Factor::RecentTickets);
    assert_eq!(recent[1..], [Some(4.0); 7]);
}

#[test]
fn the_admin_change_and_the_detractor_answer_fire_from_their_day_on() {
    let model = HealthModel::default();
    let s = &replay_tokyo(&[&model])[0];
    let on_from = |first: usize| (0..8).map(|i| i >= first).collect::<Vec<bool>>();
    // Admin changed on March 6 (index 3), the NPS 3 came on March 8 (index 5).
    assert_eq!(triggered(s, Factor::AdminChanged), on_from(3));
    assert_eq!(triggered(s, Factor::NpsDetractor), on_from(5));
    assert_eq!(values(s, Factor::Nps)[5..], [Some(3.0); 3]);
}

#[test]
fn two_models_give_two_series_over_the_same_days() {
    let (default, draft) = (HealthModel::default(), draft_model());
    let series = replay_tokyo(&[&default, &draft]);
    assert_eq!(series.len(), 2);
    assert_eq!(
        (
            series[0].model_version.as_str(),
            series[1].model_version.as_str()
        ),
        ("default-1", "draft-2")
    );
    for (a, b) in series[0].scores.iter().zip(&series[1].scores) {
        // Same weights, so the same number; only the band cut-offs differ.
        assert_eq!((a.day, a.score), (b.day, b.score));
        assert_eq!(b.band, draft.band(b.score));
        assert_eq!(a.model_version, "default-1");
        assert_eq!(b.model_version, "draft-2");
    }
    assert_eq!(series[0].scores.len(), 8);
    assert_eq!(series[1].scores.len(), 8);
    // The draft's stricter bands see the same days differently at least once.
    let bands = |s: &ScoreSeries| s.scores.iter().map(|x| x.band).collect::<Vec<_>>();
    assert_ne!(bands(&series[0]), bands(&series[1]));
}

#[test]
fn replaying_twice_or_in_another_order_gives_identical_scores() {
    let model = HealthModel::default();
    let events = tokyo_history();
    let (from, to) = (date(2026, 3, 1), date(2026, 3, 10));
    let once = replay_account(&[&model], &events, from, to);
    assert_eq!(once, replay_account(&[&model], &events, from, to));
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(once, replay_account(&[&model], &reversed, from, to));
    // A repeated event (same id, same instant) counts once.
    let mut doubled = events.clone();
    doubled.extend(events.iter().cloned());
    assert_eq!(once, replay_account(&[&model], &doubled, from, to));
}

#[test]
fn an_account_without_a_profile_or_an_empty_period_has_no_scores() {
    let model = HealthModel::default();
    let no_profile = vec![login("l1", "2026-03-02T10:00:00+09:00", "u1")];
    let series = replay_account(&[&model], &no_profile, date(2026, 3, 1), date(2026, 3, 9));
    assert_eq!(series.len(), 1);
    assert!(series[0].scores.is_empty());
    let backwards = replay_account(
        &[&model],
        &tokyo_history(),
        date(2026, 3, 10),
        date(2026, 3, 1),
    );
    assert!(backwards[0].scores.is_empty());
}

#[test]
fn a_midnight_skipped_by_daylight_saving_ends_the_day_at_the_gap() {
    // Chile starts summer time at 24:00 on 2 September 2023: 00:00 to 01:00 on 3
    // September does not exist in America/Santiago; the day starts at 01:00 -03, 04:00 UTC.
    let santiago = chrono_tz::America::Santiago;
    assert!(
        santiago
            .from_local_datetime(&date(2023, 9, 3).and_time(NaiveTime::MIN))
            .earliest()
            .is_none()
    );
    let start = start_of_day(santiago, date(2023, 9, 3));
    assert_eq!(start, at("2023-09-03T04:00:00Z").with_timezone(&Utc));
    assert_eq!(local_day(start, santiago), date(2023, 9, 3));
    assert_eq!(
        local_day(start - Duration::seconds(1), santiago),
        date(2023, 9, 2)
    );
    // An ordinary midnight.
    assert_eq!(
        start_of_day(chrono_tz::Asia::Tokyo, date(2026, 3, 4)),
        at("2026-03-03T15:00:00Z").with_timezone(&Utc)
    );
}

#[test]
fn the_first_churn_counts_even_when_a_renewal_follows() {
    let berlin = profile(
        chrono_tz::Europe::Berlin,
        "standard",
        20_000.0,
        date(2025, 4, 1),
        date(2026, 4, 1),
        0,
    );
    let events = vec![
        upsert("p1", "2026-01-01T09:00:00+01:00", berlin),
        ev(
            "c2",
            "2026-03-25T10:00:00+01:00",
            None,
            EventPayload::Churned,
        ),
        // 23:30 UTC on March 19 is 00:30 on March 20 in Berlin.
        ev("c1", "2026-03-19T23:30:00Z", None, EventPayload::Churned),
        ev(
            "r1",
            "2026-04-10T10:00:00+02:00",
            None,
            EventPayload::ContractRenewed {
                renewal_date: Some(date(2027, 4, 1)),
            },
        ),
    ];
    assert_eq!(
        churn_of(&events),
        Some(at("2026-03-19T23:30:00Z").with_timezone(&Utc))
    );
    assert_eq!(
        churn_label("acme", &events),
        Some(Churn {
            account: "acme".into(),
            day: date(2026, 3, 20),
        })
    );
    assert_eq!(churn_of(&events[..1]), None);
}

/// Activity of `contacts` on every `every`-th day from `first` to `last` (inclusive): a
/// login each and one use of each of `features`, plus a report on those days that are
/// Mondays.
fn activity(
    prefix: &str,
    first: NaiveDate,
    last: NaiveDate,
    every: usize,
    contacts: &[&str],
    features: &[&str],
) -> Vec<Event> {
    let mut out = Vec::new();
    for (n, day) in first.iter_days().take_while(|d| *d <= last).enumerate() {
        if !n.is_multiple_of(every) {
            continue;
        }
        let when = format!("{day}T10:00:00+01:00");
        for c in contacts {
            out.push(login(&format!("{prefix}-l-{day}-{c}"), &when, c));
            for f in features {
                out.push(feature(&format!("{prefix}-f-{day}-{c}-{f}"), &when, c, f));
            }
        }
        if day.weekday() == Weekday::Mon {
            let id = format!("{prefix}-r-{day}");
            out.push(ev(
                &id,
                &when,
                Some(contacts[0]),
                EventPayload::ReportCreated,
            ));
        }
    }
    out
}

fn nps_answer(id: &str, when: &str, score: u8) -> Event {
    let payload = EventPayload::NpsResponse {
        score,
        comment: None,
    };
    ev(id, when, Some("u1"), payload)
}

const KEYS: [&str; 4] = ["report_builder", "dashboard", "integration", "workflow"];

/// Busy until January, thinning in February, silent from February 20, a detractor answer
/// on February 25, churned on March 20.
fn sliding_account() -> Vec<Event> {
    let p = profile(
        chrono_tz::Europe::Berlin,
        "standard",
        20_000.0,
        date(2025, 4, 1),
        date(2026, 4, 1),
        0,
    );
    let mut events = vec![upsert("a-p", "2025-10-01T09:00:00+01:00", p)];
    let contacts = ["u1", "u2", "u3"];
    events.extend(activity(
        "a1",
        date(2025, 10, 1),
        date(2026, 1, 31),
        1,
        &contacts,
        &KEYS,
    ));
    events.extend(activity(
        "a2",
        date(2026, 2, 1),
        date(2026, 2, 19),
        4,
        &["u1"],
        &[],
    ));
    events.push(nps_answer("a-n1", "2025-11-10T10:00:00+01:00", 8));
    events.push(nps_answer("a-n2", "2026-02-25T10:00:00+01:00", 3));
    events.push(ev(
        "a-c",
        "2026-03-20T16:00:00+01:00",
        None,
        EventPayload::Churned,
    ));
    events
}

/// Never uses the product and answered 2: red all along, and never churns.
fn idle_account() -> Vec<Event> {
    let p = profile(
        chrono_tz::Europe::Berlin,
        "standard",
        20_000.0,
        date(2025, 4, 1),
        date(2026, 9, 1),
        0,
    );
    vec![
        upsert("b-p", "2025-10-01T09:00:00+01:00", p),
        nps_answer("b-n", "2025-12-01T10:00:00+01:00", 2),
    ]
}

/// Busy and happy to the end, then churns on March 15 without warning.
fn surprise_account() -> Vec<Event> {
    let p = profile(
        chrono_tz::Europe::Berlin,
        "enterprise",
        80_000.0,
        date(2022, 1, 1),
        date(2027, 1, 1),
        3,
    );
    let mut events = vec![upsert("c-p", "2025-10-01T09:00:00+01:00", p)];
    events.extend(activity(
        "c1",
        date(2025, 10, 1),
        date(2026, 3, 14),
        1,
        &["u1", "u2", "u3", "u4", "u5"],
        &KEYS,
    ));
    events.push(nps_answer("c-n", "2026-01-15T10:00:00+01:00", 10));
    events.push(ev(
        "c-c",
        "2026-03-15T10:00:00+01:00",
        None,
        EventPayload::Churned,
    ));
    events
}

#[test]
fn a_churned_account_with_declining_usage_is_red_before_it_churns() {
    let model = HealthModel::default();
    let events = sliding_account();
    let s = &replay_account(&[&model], &events, date(2026, 1, 1), date(2026, 3, 31))[0];
    assert_eq!(s.scores.len(), 90);
    let churn = churn_label("a", &events).expect("churned").day;
    assert_eq!(churn, date(2026, 3, 20));
    let band_on = |day: NaiveDate| {
        s.scores
            .iter()
            .find(|x| x.day == day)
            .map(|x| x.band)
            .expect("scored day")
    };
    // Busy in January: not red; silent and unhappy for weeks before the churn: red.
    assert_ne!(band_on(date(2026, 1, 15)), Band::Red);
    assert_eq!(band_on(date(2026, 3, 10)), Band::Red);
    assert_eq!(band_on(date(2026, 3, 19)), Band::Red);
}

#[test]
fn backtest_of_three_replayed_accounts_gives_the_hand_computed_precision_and_recall() {
    let model = HealthModel::default();
    let (from, to) = (date(2026, 1, 1), date(2026, 3, 31));
    let accounts = [
        ("a", sliding_account()),
        ("b", idle_account()),
        ("c", surprise_account()),
    ];
    let mut history = Vec::new();
    let mut churns = Vec::new();
    for (account, events) in &accounts {
        let series = replay_account(&[&model], events, from, to);
        history.extend(daily_bands(account, &series[0].scores));
        churns.extend(churn_label(account, events));
    }
    assert!(
        !history
            .iter()
            .any(|h| h.account == "c" && h.band == Band::Red)
    );
    let r = backtest(&history, &churns, DEFAULT_HORIZON_DAYS);
    // a churned and was red in the 90 days before: caught. b was red and never churned: a
    // false alarm. c churned green: missed. Flagged {a, b}, churned {a, c}, caught {a}:
    // precision 1/2, recall 1/2.
    assert_eq!((r.accounts, r.churned, r.flagged), (3, 2, 2));
    assert_eq!((r.caught, r.false_alarms), (1, 1));
    assert_eq!(r.precision, Some(0.5));
    assert_eq!(r.recall, Some(0.5));
    // a's lead time is from its first red day of the window to March 20.
    let first_red = history
        .iter()
        .filter(|h| h.account == "a" && h.band == Band::Red)
        .map(|h| h.day)
        .min()
        .expect("a was red");
    assert_eq!(r.lead_days, [(date(2026, 3, 20) - first_red).num_days()]);
}
