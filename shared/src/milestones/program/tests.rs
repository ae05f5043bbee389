//! Tests of the program's decisions.

use chrono::TimeZone;
use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;

use super::*;
use crate::domain::{Audience as To, Channel, Role};

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn steps() -> Vec<String> {
    ["invite_users", "import_data", "first_report"]
        .map(String::from)
        .to_vec()
}

fn progress(done: &[(&str, DateTime<Utc>)]) -> Progress {
    Progress {
        steps: steps(),
        done: done.iter().map(|(s, t)| (s.to_string(), *t)).collect(),
    }
}

#[test]
fn task_names_round_trip_and_nothing_else_parses() {
    for t in [Task::Welcome, Task::Check(7), Task::Check(28)] {
        assert_eq!(Task::parse(&t.name()), Some(t));
    }
    assert_eq!(Task::Check(7).name(), "check_07");
    for bad in [
        "check_08",
        "check_",
        "welcome ",
        "",
        "check_-7",
        "check_99999999999999999999",
    ] {
        assert_eq!(Task::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn week_one_starts_on_the_accounts_local_day_in_tokyo_and_new_york_across_dst() {
    // Tokyo has no DST: 7 days after 2026-03-02 starts at 00:00 JST = 15:00 UTC the day before.
    assert_eq!(
        local_day_start(date(2026, 3, 2), 7, Tokyo),
        utc(2026, 3, 8, 15)
    );
    // New York: the contract starts in EST; day 7 (2026-03-09) is after the switch to EDT on
    // 2026-03-08, so its midnight is 04:00 UTC, not 05:00.
    assert_eq!(
        local_day_start(date(2026, 3, 2), 0, New_York),
        utc(2026, 3, 2, 5)
    );
    assert_eq!(
        local_day_start(date(2026, 3, 2), 7, New_York),
        utc(2026, 3, 9, 4)
    );
    // Back to EST in November.
    assert_eq!(
        local_day_start(date(2026, 10, 26), 7, New_York),
        utc(2026, 11, 2, 5)
    );
}

#[test]
fn only_contracts_started_within_the_window_before_first_sight_are_new_customers() {
    let seen = utc(2026, 12, 10, 3); // 12:00 on 12-10 in Tokyo
    assert!(is_new_customer(date(2026, 12, 3), seen, Tokyo, 7));
    assert!(!is_new_customer(date(2026, 12, 2), seen, Tokyo, 7));
    assert!(
        is_new_customer(date(2027, 1, 1), seen, Tokyo, 7),
        "starts later"
    );
    // In New York it is still 12-09 at that instant.
    assert!(is_new_customer(date(2026, 12, 2), seen, New_York, 7));
}

#[test]
fn the_program_is_the_welcome_and_the_checks_still_ahead() {
    let start = date(2026, 12, 1);
    let before = utc(2026, 11, 20, 0);
    let tasks: Vec<Task> = program(start, Tokyo, before)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        tasks,
        [
            Task::Welcome,
            Task::Check(7),
            Task::Check(14),
            Task::Check(21),
            Task::Check(28)
        ]
    );
    assert_eq!(program(start, Tokyo, before)[0].1, utc(2026, 11, 30, 15));
    // Heard of on day 10: no welcome, no late checks.
    let late = utc(2026, 12, 10, 6);
    let tasks: Vec<Task> = program(start, Tokyo, late)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(tasks, [Task::Check(14), Task::Check(21), Task::Check(28)]);
    // Heard of on day 2: the welcome is due once its contacts have had an hour to arrive.
    let now = utc(2026, 12, 2, 6);
    assert_eq!(
        program(start, Tokyo, now)[0],
        (Task::Welcome, now + CONTACTS_GRACE)
    );
}

#[test]
fn standing_at_each_check_is_on_track_behind_stuck_or_complete() {
    let start = utc(2026, 11, 30, 15);
    let day = |n: i64| start + Duration::days(n);
    // Day 7 expects 1 of 3 steps.
    let one = progress(&[("invite_users", day(3))]);
    assert_eq!(standing(&one, 7, start, day(7)), Standing::OnTrack);
    assert_eq!(standing(&progress(&[]), 7, start, day(6)), Standing::Behind);
    assert_eq!(
        standing(&progress(&[]), 7, start, day(7)),
        Standing::Stuck,
        "no step in 7 days"
    );
    // Day 14 expects 2.
    let recent = progress(&[("invite_users", day(12))]);
    assert_eq!(standing(&recent, 14, start, day(14)), Standing::Behind);
    assert_eq!(standing(&one, 14, start, day(14)), Standing::Stuck);
    let two = progress(&[("invite_users", day(3)), ("import_data", day(10))]);
    assert_eq!(standing(&two, 14, start, day(14)), Standing::OnTrack);
    // Day 21 and 28 expect all 3.
    assert_eq!(standing(&two, 21, start, day(15)), Standing::Behind);
    let all = progress(&[
        ("invite_users", day(3)),
        ("import_data", day(10)),
        ("first_report", day(20)),
    ]);
    assert_eq!(standing(&all, 21, start, day(21)), Standing::Complete);
    assert_eq!(
        standing(&all, 28, start, day(40)),
        Standing::Complete,
        "complete stays complete"
    );
}

#[test]
fn the_first_report_completes_the_first_report_step() {
    let firsts = BTreeMap::from([
        ("step_invite_users".to_string(), utc(2026, 12, 2, 0)),
        ("report".to_string(), utc(2026, 12, 3, 0)),
        ("feature_dashboard".to_string(), utc(2026, 12, 3, 0)),
    ]);
    let p = Progress::from_firsts(&steps(), &firsts);
    assert_eq!(p.done.len(), 2);
    assert_eq!(
        p.next_step(),
        Some("import_data"),
        "the prerequisite chain: first open step"
    );
}

fn to<'a>(admin: Option<&'a str>, members: &'a [Member<'a>]) -> Audience<'a> {
    Audience {
        account_id: "acme",
        admin,
        members,
        now: utc(2026, 12, 7, 15),
    }
}

const TEAM: &[Member<'static>] = &[
    Member {
        contact_id: "adm",
        role: Role::Admin,
    },
    Member {
        contact_id: "boss",
        role: Role::Executive,
    },
    Member {
        contact_id: "u1",
        role: Role::User,
    },
];

fn ids(nudges: &[Nudge]) -> Vec<&str> {
    nudges.iter().map(|n| n.nudge_id.as_str()).collect()
}

#[test]
fn the_welcome_goes_to_the_admin_and_executives_and_without_an_admin_to_the_csm() {
    let p = progress(&[]);
    let out = welcome_nudges(&to(Some("adm"), TEAM), &p);
    assert_eq!(ids(&out), ["ob/welcome/admin", "ob/welcome/boss"]);
    assert_eq!(out[0].contact_id.as_deref(), Some("adm"));
    assert_eq!(out[0].vars["first_step"], "invite_users");
    assert_eq!(out[0].vars["step"], "invite_users", "the done link's step");
    assert_eq!(out[1].vars["role"], "executive");
    let out = welcome_nudges(&to(None, &[]), &p);
    assert_eq!(ids(&out), ["ob/welcome/no_admin"]);
    assert_eq!(
        (out[0].kind, out[0].stage),
        (NudgeKind::CsmTask, Some(Stage::NoAdmin))
    );
}

#[test]
fn the_admin_is_the_named_one_else_the_first_contact_with_the_admin_role() {
    assert_eq!(admin_of(Some("named"), TEAM), Some("named"));
    assert_eq!(admin_of(None, TEAM), Some("adm"));
    assert_eq!(admin_of(None, &TEAM[1..]), None);
}

#[test]
fn checks_congratulate_on_track_nudge_behind_and_alert_the_csm_when_stuck() {
    let p = progress(&[("invite_users", utc(2026, 12, 3, 0))]);
    let who = to(Some("adm"), TEAM);
    let on_track = check_nudges(&who, 7, Standing::OnTrack, &p);
    assert_eq!(ids(&on_track), ["ms/week_one/admin", "ms/week_one/boss"]);
    assert_eq!(on_track[1].vars["role"], "executive", "a progress summary");
    assert_eq!(on_track[0].vars["next_step"], "import_data");
    assert!(check_nudges(&who, 14, Standing::OnTrack, &p).is_empty());

    let behind = check_nudges(&who, 14, Standing::Behind, &p);
    assert_eq!(ids(&behind), ["ob/check_14/admin"]);
    assert_eq!(
        (behind[0].kind, behind[0].stage),
        (NudgeKind::OnboardingProgress, Some(Stage::Behind))
    );

    let stuck = check_nudges(&who, 21, Standing::Stuck, &p);
    assert_eq!(ids(&stuck), ["ob/check_21/admin", "ob/check_21/csm"]);
    assert_eq!(
        (stuck[0].audience(), stuck[0].channel()),
        (To::Customer, Channel::Email)
    );
    assert_eq!(
        (stuck[1].audience(), stuck[1].channel()),
        (To::Csm, Channel::Sns)
    );
    assert_eq!(stuck[1].kind, NudgeKind::OnboardingProgress);

    assert!(
        check_nudges(&who, 21, Standing::Complete, &p).is_empty(),
        "no more checks"
    );
}

#[test]
fn new_firsts_earn_one_congratulation_each_and_two_features_in_a_batch_share_one() {
    let who = to(Some("adm"), TEAM);
    let key = ["report_builder", "dashboard", "integration"]
        .map(String::from)
        .to_vec();
    let p = progress(&[]);
    let firsts = [
        First {
            key: "feature_dashboard",
            contact_id: Some("u1"),
        },
        First {
            key: "feature_report_builder",
            contact_id: Some("u1"),
        },
        First {
            key: "feature_chat",
            contact_id: Some("u1"),
        },
        First {
            key: "feature_integration",
            contact_id: Some("boss"),
        },
        First {
            key: "login",
            contact_id: Some("u1"),
        },
    ];
    let out = milestone_nudges(&who, &firsts, &key, &p, &p);
    assert_eq!(
        ids(&out),
        [
            "ms/first_feature_use/integration",
            "ms/first_feature_use/dashboard+report_builder"
        ]
    );
    assert_eq!(
        out[1].contact_id.as_deref(),
        Some("u1"),
        "to the contact who used it"
    );
    assert_eq!(
        out[1].vars["features"],
        json!(["dashboard", "report_builder"])
    );
    assert!(out.iter().all(|n| n.stage == Some(Stage::FirstFeatureUse)));
}

#[test]
fn the_report_that_completes_onboarding_is_celebrated_once_as_the_completion() {
    let who = to(Some("adm"), TEAM);
    let t = utc(2026, 12, 5, 0);
    let before = progress(&[("invite_users", t), ("import_data", t)]);
    let after = progress(&[("invite_users", t), ("import_data", t), ("first_report", t)]);
    let report = [First {
        key: "report",
        contact_id: Some("u1"),
    }];
    let out = milestone_nudges(&who, &report, &[], &before, &after);
    assert_eq!(
        ids(&out),
        [
            "ms/onboarding_complete/admin",
            "ms/onboarding_complete/boss"
        ]
    );
    // A first report that does not complete it is its own milestone, to whoever made it.
    let early = progress(&[("invite_users", t)]);
    let out = milestone_nudges(&who, &report, &[], &early, &early);
    assert_eq!(ids(&out), ["ms/first_report"]);
    assert_eq!(out[0].contact_id.as_deref(), Some("u1"));
}
