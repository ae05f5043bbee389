use chrono::Duration;

use super::*;
use crate::events::{AccountProfile, Locale};
use crate::health::model::TierSource;
use crate::health::score::Driver;
use crate::health::score::fixtures::{date, utc};
use crate::store::{AccountRecord, NpsAnswer, Satisfaction};

fn now() -> DateTime<Utc> {
    utc(2026, 6, 15, 3, 0)
}

fn days_ago(d: i64) -> DateTime<Utc> {
    now() - Duration::days(d)
}

/// A score that lost `lost` points on each factor (risk signals: their penalty).
fn scored(band: Band, score: u8, lost: &[(Factor, f64)]) -> HealthScore {
    HealthScore {
        model_version: "default-1".into(),
        at: now(),
        day: date(2026, 6, 15),
        score,
        band,
        tier: Tier::LowTouch,
        tier_source: TierSource::Arr,
        phase: Phase::Operation,
        active: true,
        provisional: false,
        families: Vec::new(),
        drivers: lost
            .iter()
            .map(|&(factor, pts)| Driver {
                factor,
                family: factor.family(),
                missing: false,
                triggered: factor.is_risk(),
                value: None,
                versus: None,
                subscore: None,
                weight: if factor.is_risk() { 0.0 } else { 0.1 },
                points: if factor.is_risk() { -pts } else { 10.0 - pts },
            })
            .collect(),
    }
}

/// A green account with onboarding long done and no NPS: listed by nothing.
fn account(id: &str, arr: f64) -> PriorityInput {
    let tier = if arr >= 50_000.0 {
        Tier::HighTouch
    } else if arr >= 10_000.0 {
        Tier::LowTouch
    } else {
        Tier::TechTouch
    };
    PriorityInput {
        account_id: id.into(),
        name: format!("{id} Inc"),
        arr,
        tier,
        score: Some(scored(Band::Green, 80, &[])),
        nps: Vec::new(),
        onboarding: OnboardingProgress {
            phase: Phase::Operation,
            steps_done: 3,
            steps_total: 3,
            next_open: None,
            last_step_at: Some(days_ago(300)),
            since: days_ago(400),
        },
    }
}

impl PriorityInput {
    fn band(mut self, band: Band, score: u8, lost: &[(Factor, f64)]) -> Self {
        self.score = Some(scored(band, score, lost));
        self
    }

    fn nps(mut self, score: u8, age_days: i64, comment: Option<&str>) -> Self {
        self.nps.push(NpsResponse {
            score,
            at: days_ago(age_days),
            comment: comment.map(str::to_string),
        });
        self
    }

    /// Onboarding phase with `done` of 3 steps, the last one `last_days` ago (`None`: no
    /// step yet), started `since_days` ago.
    fn onboarding(mut self, done: usize, last_days: Option<i64>, since_days: i64) -> Self {
        self.onboarding = OnboardingProgress {
            phase: Phase::Onboarding,
            steps_done: done,
            steps_total: 3,
            next_open: Some(["invite_users", "import_data", "first_report"][done.min(2)].into()),
            last_step_at: last_days.map(days_ago),
            since: days_ago(since_days),
        };
        self
    }
}

fn ids(rows: &[PriorityRow]) -> Vec<(&str, PriorityReason)> {
    rows.iter()
        .map(|r| (r.account_id.as_str(), r.reason))
        .collect()
}

/// Nine accounts; the comments say which group each one belongs to.
fn portfolio() -> Vec<PriorityInput> {
    vec![
        // Red, low NPS and stalled onboarding at once: listed once, in the first group.
        account("whale", 200_000.0)
            .band(Band::Red, 31, &[(Factor::LoginDecline, 10.0)])
            .nps(8, 60, None)
            .nps(3, 10, Some("Exports keep failing"))
            .onboarding(1, Some(20), 60),
        // A detractor answer older than `nps_max_age_days` (365) says nothing today.
        account("harbor", 150_000.0)
            .band(Band::Green, 85, &[])
            .nps(1, 400, Some("old news")),
        // Green but its NPS fell 3 points.
        account("drift", 80_000.0)
            .band(Band::Green, 75, &[])
            .nps(10, 90, None)
            .nps(7, 5, None),
        // Two red accounts with the same ARR: by account id.
        account("cobalt", 60_000.0).band(Band::Red, 30, &[(Factor::LoginDecline, 10.0)]),
        account("anchor", 60_000.0).band(
            Band::Red,
            28,
            &[(Factor::LoginDays, 4.0), (Factor::AdminChanged, 10.0)],
        ),
        // A detractor on a tech-touch account: not an NPS row, but red.
        account("pebble", 4_000.0)
            .band(Band::Red, 35, &[(Factor::NpsDetractor, 10.0)])
            .nps(2, 3, Some("too pricey")),
        // One step done, none for 10 days.
        account("sprout", 20_000.0)
            .band(Band::Yellow, 55, &[])
            .onboarding(1, Some(10), 30),
        // Started 3 days ago with no step yet: not stalled.
        account("seedling", 30_000.0)
            .band(Band::Yellow, 50, &[])
            .onboarding(0, None, 3),
        // Green with a promoter's answer.
        account("evergreen", 90_000.0)
            .band(Band::Green, 88, &[])
            .nps(9, 20, Some("love it")),
    ]
}

#[test]
fn the_queue_lists_nps_then_red_then_stalled_onboarding_each_by_arr() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    assert_eq!(
        ids(&rows),
        [
            ("whale", PriorityReason::LowNps),
            ("drift", PriorityReason::FallingNps),
            ("anchor", PriorityReason::Red),
            ("cobalt", PriorityReason::Red),
            ("pebble", PriorityReason::Red),
            ("sprout", PriorityReason::StalledOnboarding),
        ]
    );
}

#[test]
fn an_account_in_several_groups_is_listed_once_in_the_first() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    let whale: Vec<&PriorityRow> = rows.iter().filter(|r| r.account_id == "whale").collect();
    assert_eq!(whale.len(), 1);
    let w = whale[0];
    assert_eq!(w.reason, PriorityReason::LowNps);
    assert_eq!(w.detail, "NPS 3 (was 8) · ARR 200,000");
    assert_eq!(w.nps_comment.as_deref(), Some("Exports keep failing"));
    assert_eq!((w.band, w.score), (Some(Band::Red), Some(31)));
    assert!(
        w.next_step.contains("about their comment"),
        "{}",
        w.next_step
    );
}

#[test]
fn equal_arr_is_ordered_by_account_id_whatever_the_input_order() {
    let model = HealthModel::default();
    let mut accounts = portfolio();
    let forward = rank(&model, &accounts, now());
    accounts.reverse();
    assert_eq!(rank(&model, &accounts, now()), forward);
}

#[test]
fn nps_older_than_the_model_allows_is_ignored() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    assert!(!rows.iter().any(|r| r.account_id == "harbor"));
    // The same answer within the window lists it.
    let recent = account("harbor", 150_000.0).nps(1, 300, Some("slow exports"));
    let rows = rank(&HealthModel::default(), &[recent], now());
    assert_eq!(ids(&rows), [("harbor", PriorityReason::LowNps)]);
    assert_eq!(rows[0].detail, "NPS 1 · ARR 150,000");
}

#[test]
fn an_old_answer_is_not_the_previous_one_either() {
    // 10 a year and a half ago, 7 now: no trend inside the window, and 7 is no detractor.
    let a = account("drift", 80_000.0)
        .nps(10, 500, None)
        .nps(7, 5, None);
    assert!(rank(&HealthModel::default(), &[a], now()).is_empty());
}

#[test]
fn healthy_accounts_with_good_nps_are_not_listed() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    for quiet in ["evergreen", "seedling", "harbor"] {
        assert!(
            !rows.iter().any(|r| r.account_id == quiet),
            "{quiet}: {rows:?}"
        );
    }
}

#[test]
fn falling_takes_a_drop_of_two_points() {
    let model = HealthModel::default();
    let one = account("a", 80_000.0).nps(9, 30, None).nps(8, 1, None);
    let two = account("b", 80_000.0).nps(9, 30, None).nps(7, 1, None);
    let rows = rank(&model, &[one, two], now());
    assert_eq!(ids(&rows), [("b", PriorityReason::FallingNps)]);
    assert_eq!(rows[0].detail, "NPS 7 (was 9) · ARR 80,000");
    assert_eq!(rows[0].nps_comment, None);
}

#[test]
fn nps_rows_need_a_lot_at_stake_a_high_touch_tier_or_arr_from_low_touch() {
    let model = HealthModel::default();
    // 4,000 is tech touch by ARR; a CS decision of high touch puts it in the NPS group.
    let small = account("small", 4_000.0).nps(2, 1, None);
    let mut owned = account("owned", 4_000.0).nps(2, 1, None);
    owned.tier = Tier::HighTouch;
    let edge = account("edge", model.tiers.low_touch_from_arr).nps(2, 1, None);
    let rows = rank(&model, &[small, owned, edge], now());
    assert_eq!(
        ids(&rows),
        [
            ("edge", PriorityReason::LowNps),
            ("owned", PriorityReason::LowNps)
        ]
    );
}

#[test]
fn a_provisional_score_is_listed_and_says_so() {
    let mut a = account("newco", 20_000.0).band(Band::Red, 20, &[(Factor::Reports, 6.0)]);
    if let Some(s) = a.score.as_mut() {
        s.provisional = true;
    }
    let rows = rank(&HealthModel::default(), &[a], now());
    assert_eq!(ids(&rows), [("newco", PriorityReason::Red)]);
    assert!(rows[0].provisional);
    assert_eq!(
        rows[0].detail,
        "score 20 (red) · lost most on reports (-6.0 points) · ARR 20,000 · provisional"
    );
}

#[test]
fn a_red_accounts_next_step_follows_the_factor_that_cost_the_most() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    let step = |id: &str| {
        rows.iter()
            .find(|r| r.account_id == id)
            .map(|r| r.next_step.clone())
            .unwrap_or_default()
    };
    assert!(step("cobalt").starts_with("ask the admin what changed in their team's week"));
    assert!(step("anchor").starts_with("introduce yourself to the new admin"));
    assert!(step("pebble").contains("last NPS answer"));
    // Every factor has its own wording.
    for f in Factor::ALL {
        assert!(!red_step(Some(*f)).is_empty());
    }
}

#[test]
fn a_stalled_onboarding_names_the_next_open_step() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    let sprout = rows
        .iter()
        .find(|r| r.account_id == "sprout")
        .expect("listed");
    assert_eq!(
        sprout.detail,
        "onboarding 1 of 3 steps · no step for 10 days · ARR 20,000"
    );
    assert!(
        sprout.next_step.contains("\"import data\" step"),
        "{}",
        sprout.next_step
    );
    // No step at all, 8 days after the start: stalled too.
    let late = account("late", 15_000.0).onboarding(0, None, 8);
    let rows = rank(&HealthModel::default(), &[late], now());
    assert_eq!(
        rows[0].detail,
        "onboarding 0 of 3 steps · no step yet, 8 days in · ARR 15,000"
    );
    assert!(
        rows[0].next_step.contains("kickoff"),
        "{}",
        rows[0].next_step
    );
}

#[test]
fn an_account_without_a_score_yet_can_still_be_listed() {
    let mut a = account("fresh", 70_000.0).nps(4, 2, Some("setup is confusing"));
    a.score = None;
    let rows = rank(&HealthModel::default(), &[a], now());
    assert_eq!(ids(&rows), [("fresh", PriorityReason::LowNps)]);
    assert_eq!((rows[0].band, rows[0].score), (None, None));
}

#[test]
fn rows_serialize_with_snake_case_reasons() {
    let rows = rank(&HealthModel::default(), &portfolio(), now());
    let json = serde_json::to_value(&rows).expect("serializes");
    assert_eq!(json[0]["reason"], "low_nps");
    assert_eq!(json[0]["band"], "red");
    assert_eq!(json[0]["nps_comment"], "Exports keep failing");
    assert_eq!(json[1]["reason"], "falling_nps");
    assert_eq!(json[5]["reason"], "stalled_onboarding");
}

#[test]
fn arr_is_shown_whole_with_thousands_separators() {
    assert_eq!(arr_text(120_000.0), "120,000");
    assert_eq!(arr_text(999.6), "1,000");
    assert_eq!(arr_text(1_234_567.0), "1,234,567");
    assert_eq!(arr_text(0.0), "0");
    assert_eq!(arr_text(-4_500.0), "-4,500");
}

fn record(plan: &str, firsts: &[(&str, DateTime<Utc>)], nps: Vec<NpsAnswer>) -> HealthRecord {
    HealthRecord {
        account: Some(AccountRecord {
            account_id: "acme".into(),
            profile: Some(AccountProfile {
                name: "Acme".into(),
                plan: plan.into(),
                industry: "retail".into(),
                tier: None,
                csm: None,
                timezone: chrono_tz::Asia::Tokyo,
                locale: Locale::En,
                contract_start: date(2026, 5, 1),
                renewal_date: date(2027, 5, 1),
                renewals: 0,
                arr: 24_000.0,
            }),
            profile_at: None,
            paused: false,
            paused_at: None,
            paused_until: None,
            pause_reason: None,
            admin_contact_id: None,
            admin_changed_at: None,
            churned_at: None,
            renewed_at: None,
        }),
        days: Vec::new(),
        firsts: firsts.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
        satisfaction: Satisfaction {
            tickets: Vec::new(),
            nps,
        },
        pulse: Default::default(),
    }
}

#[test]
fn a_stored_record_gives_steps_their_times_the_phase_and_the_nps_answers() {
    let model = HealthModel::default();
    let r = record(
        "premium",
        &[
            ("step_invite_users", days_ago(20)),
            ("report", days_ago(12)),
            ("step_unknown", days_ago(1)),
            ("login", days_ago(1)),
        ],
        vec![NpsAnswer {
            score: 5,
            at: days_ago(2),
            comment: Some("hm".into()),
        }],
    );
    let input =
        PriorityInput::from_record(&model, &r, days_ago(60), None, now()).expect("has a profile");
    assert_eq!(
        (input.account_id.as_str(), input.name.as_str()),
        ("acme", "Acme")
    );
    assert_eq!(input.tier, Tier::LowTouch);
    let o = &input.onboarding;
    // invite_users and first_report (by the first report) are done; a step not in the plan
    // does not count.
    assert_eq!((o.steps_done, o.steps_total), (2, 3));
    assert_eq!(o.next_open.as_deref(), Some("import_data"));
    assert_eq!(o.last_step_at, Some(days_ago(12)));
    assert_eq!(o.phase, Phase::Onboarding);
    // Nudge saw it before the contract started: the contract start is when it could begin.
    assert_eq!(o.since, utc(2026, 5, 1, 0, 0));
    assert_eq!(input.nps.len(), 1);
    // Seen only after the contract started: the clock starts when Nudge could see steps.
    let late = PriorityInput::from_record(&model, &r, days_ago(10), None, now());
    assert_eq!(late.map(|i| i.onboarding.since), Some(days_ago(10)));

    let rows = rank(&model, &[input], now());
    assert_eq!(ids(&rows), [("acme", PriorityReason::LowNps)]);

    let mut no_profile = r.clone();
    if let Some(a) = no_profile.account.as_mut() {
        a.profile = None;
    }
    assert!(PriorityInput::from_record(&model, &no_profile, days_ago(40), None, now()).is_none());
}
