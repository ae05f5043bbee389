//! Tests of the onboarding KPIs over a hand-built cohort.

use chrono::TimeZone;
use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;
use chrono_tz::UTC;

use super::*;

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn settings() -> KpiSettings {
    KpiSettings::from_model(&HealthModel::default())
}

/// An account on the default plan, with nothing done.
fn account(id: &str, start: NaiveDate, tz: Tz) -> AccountInput {
    let model = HealthModel::default();
    AccountInput {
        account_id: id.into(),
        contract_start: start,
        tz,
        steps: model.onboarding_steps.default.clone(),
        key_features: model.key_features.default.clone(),
        firsts: BTreeMap::new(),
        feature_days: BTreeMap::new(),
        log: Vec::new(),
    }
}

fn first(a: &mut AccountInput, key: &str, at: DateTime<Utc>) {
    a.firsts.insert(key.into(), at);
}

fn uses(a: &mut AccountInput, day: NaiveDate, feature: &str, n: u64) {
    a.feature_days
        .entry(day)
        .or_default()
        .insert(feature.into(), n);
}

fn logged(a: &mut AccountInput, at: DateTime<Utc>, kind: NudgeKind, stage: Stage, s: LogStatus) {
    a.log.push(LoggedNudge {
        at,
        kind,
        stage: Some(stage),
        status: s,
    });
}

const FROM: (i32, u32, u32) = (2026, 11, 1);
const TO: (i32, u32, u32) = (2026, 11, 7);

fn at() -> DateTime<Utc> {
    utc(2026, 11, 30, 0)
}

/// Five accounts with contracts from 2026-11-01 to 11-07 and one from 10-31:
/// - `a1` (Tokyo, from 11-02): every step; the report at 11-05 03:00 UTC, 3.5 days after its
///   local midnight (11-01 15:00 UTC); 3 key-feature uses: active;
/// - `a2` (UTC, from 11-03): every step, `first_report` by the step not a report, at 11-10
///   00:00: 7.0 days; no report; 5 uses: active;
/// - `a3` (New York, from 11-04): one step; 10 uses of a feature that is not key;
/// - `a4` (UTC, from 11-05, a plan of two steps): report 11-06 12:00 (1.5 days), the other step
///   11-07 00:00: complete in 2.0; 2 key uses: not active;
/// - `a5` (UTC, from 11-07): a step after `at`; uses 31 days before and on `at`'s own day only;
/// - `out` (from 10-31): complete, active, milestones: left out.
fn cohort() -> Vec<AccountInput> {
    let mut a1 = account("a1", date(2026, 11, 2), Tokyo);
    first(&mut a1, "step_invite_users", utc(2026, 11, 2, 1));
    first(&mut a1, "step_import_data", utc(2026, 11, 3, 1));
    first(&mut a1, "report", utc(2026, 11, 5, 3));
    first(&mut a1, "feature_dashboard", utc(2026, 11, 3, 2));
    uses(&mut a1, date(2026, 11, 10), "dashboard", 2);
    uses(&mut a1, date(2026, 11, 12), "report_builder", 1);
    logged(
        &mut a1,
        utc(2026, 11, 3, 3),
        NudgeKind::Milestone,
        Stage::FirstFeatureUse,
        LogStatus::Sent,
    );
    logged(
        &mut a1,
        utc(2026, 11, 5, 3),
        NudgeKind::Milestone,
        Stage::OnboardingComplete,
        LogStatus::Sent,
    );
    logged(
        &mut a1,
        utc(2026, 11, 5, 3),
        NudgeKind::Milestone,
        Stage::OnboardingComplete,
        LogStatus::Sent,
    );
    logged(
        &mut a1,
        utc(2026, 11, 9, 0),
        NudgeKind::Milestone,
        Stage::WeekOne,
        LogStatus::Blocked,
    );

    let mut a2 = account("a2", date(2026, 11, 3), UTC);
    first(&mut a2, "step_invite_users", utc(2026, 11, 3, 12));
    first(&mut a2, "step_import_data", utc(2026, 11, 4, 12));
    first(&mut a2, "step_first_report", utc(2026, 11, 10, 0));
    uses(&mut a2, date(2026, 11, 20), "dashboard", 5);
    logged(
        &mut a2,
        utc(2026, 11, 10, 9),
        NudgeKind::Milestone,
        Stage::WeekOne,
        LogStatus::Sent,
    );
    logged(
        &mut a2,
        utc(2026, 11, 4, 9),
        NudgeKind::Milestone,
        Stage::FirstFeatureUse,
        LogStatus::Failed,
    );

    let mut a3 = account("a3", date(2026, 11, 4), New_York);
    first(&mut a3, "step_invite_users", utc(2026, 11, 5, 15));
    uses(&mut a3, date(2026, 11, 15), "export", 10);
    logged(
        &mut a3,
        utc(2026, 11, 11, 14),
        NudgeKind::OnboardingProgress,
        Stage::Behind,
        LogStatus::Sent,
    );

    let mut a4 = account("a4", date(2026, 11, 5), UTC);
    a4.steps = strings(&["invite_users", "first_report"]);
    first(&mut a4, "report", utc(2026, 11, 6, 12));
    first(&mut a4, "step_invite_users", utc(2026, 11, 7, 0));
    uses(&mut a4, date(2026, 11, 20), "workflow", 2);
    logged(
        &mut a4,
        utc(2026, 11, 7, 9),
        NudgeKind::Milestone,
        Stage::OnboardingComplete,
        LogStatus::Sent,
    );

    let mut a5 = account("a5", date(2026, 11, 7), UTC);
    first(&mut a5, "step_invite_users", utc(2026, 12, 5, 0));
    uses(&mut a5, date(2026, 10, 30), "dashboard", 5);
    uses(&mut a5, date(2026, 11, 30), "dashboard", 5);
    logged(
        &mut a5,
        utc(2026, 12, 1, 9),
        NudgeKind::Milestone,
        Stage::FirstReport,
        LogStatus::Sent,
    );

    let mut out = account("out", date(2026, 10, 31), UTC);
    for (k, d) in [
        ("step_invite_users", 1),
        ("step_import_data", 2),
        ("report", 3),
    ] {
        first(&mut out, k, utc(2026, 11, d, 0));
    }
    uses(&mut out, date(2026, 11, 20), "dashboard", 9);
    logged(
        &mut out,
        utc(2026, 11, 3, 9),
        NudgeKind::Milestone,
        Stage::OnboardingComplete,
        LogStatus::Sent,
    );

    vec![a1, a2, a3, a4, a5, out]
}

fn kpis(accounts: &[AccountInput]) -> OnboardingKpis {
    let (y, m, d) = FROM;
    let (ty, tm, td) = TO;
    onboarding_kpis(accounts, date(y, m, d), date(ty, tm, td), at(), &settings())
}

#[test]
fn the_cohort_is_the_contracts_within_the_dates_and_its_rates_count_as_of_at() {
    let k = kpis(&cohort());
    assert_eq!(k.cohort, 5, "`out` starts on 10-31, before --from");
    assert_eq!(k.completed, 3, "a1, a2 and a4");
    assert_eq!(k.completion_rate, 0.6);
    assert_eq!(
        k.active, 2,
        "a1 (3 uses) and a2; a3's feature is not key; a4 has 2"
    );
    assert_eq!(k.active_rate, 0.4);
    assert_eq!((k.active_uses, k.active_days), (3, 30));
}

#[test]
fn the_funnel_counts_each_step_over_the_accounts_whose_plan_has_it() {
    let k = kpis(&cohort());
    let rows: Vec<(&str, usize, usize)> = k
        .funnel
        .iter()
        .map(|r| (r.step.as_str(), r.done, r.of))
        .collect();
    // a5's step comes after `at`; a4's plan has no import_data; a2's first_report is the
    // step itself, a1's and a4's their report.
    assert_eq!(
        rows,
        [
            ("invite_users", 4, 5),
            ("import_data", 2, 4),
            ("first_report", 3, 5)
        ]
    );
    assert_eq!(k.funnel[1].rate, 0.5);
    assert_eq!(k.funnel[0].rate, 0.8);
}

#[test]
fn a_step_only_another_plan_has_follows_the_default_plans_steps() {
    let mut accounts = cohort();
    accounts[3].steps = strings(&["connect_sso", "invite_users", "first_report"]);
    let k = kpis(&accounts);
    let steps: Vec<&str> = k.funnel.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(
        steps,
        ["invite_users", "import_data", "first_report", "connect_sso"]
    );
    assert_eq!((k.funnel[3].done, k.funnel[3].of), (0, 1));
    assert_eq!(k.completed, 2, "a4 now has a step open");
}

#[test]
fn medians_are_taken_from_the_contracts_local_midnight_odd_and_even() {
    let k = kpis(&cohort());
    // Completion: a4 2.0, a1 3.5 (from Tokyo's midnight, 11-01 15:00 UTC), a2 7.0: odd.
    assert_eq!(k.median_days_to_complete, Some(3.5));
    // First value: the first report of a4 (1.5) and a1 (3.5): even, the mean of the two.
    assert_eq!(k.first_value, 2);
    assert_eq!(k.median_days_to_first_value, Some(2.5));

    assert_eq!(median(&[]), None);
    assert_eq!(median(&[4.0]), Some(4.0));
    assert_eq!(median(&[9.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(
        median(&[9.0, 1.0, 2.0, 1.5]),
        Some(1.8),
        "(1.5 + 2) / 2, one decimal"
    );
}

#[test]
fn milestones_count_sent_milestone_messages_by_stage_within_the_cohort_until_at() {
    let k = kpis(&cohort());
    let got: Vec<(Stage, usize, usize)> = k
        .milestones
        .iter()
        .map(|m| (m.stage, m.sent, m.accounts))
        .collect();
    // a1's week_one was blocked, a2's first_feature_use failed, a5's came after `at`, a3's is
    // another kind, `out` is not in the cohort; a1's completion went to two people.
    assert_eq!(
        got,
        [
            (Stage::WeekOne, 1, 1),
            (Stage::FirstFeatureUse, 1, 1),
            (Stage::FirstReport, 0, 0),
            (Stage::OnboardingComplete, 3, 2),
        ]
    );
}

#[test]
fn a_step_done_before_the_contract_started_counts_as_day_zero() {
    let mut a = account("early", date(2026, 11, 3), UTC);
    for k in ["step_invite_users", "step_import_data", "report"] {
        first(&mut a, k, utc(2026, 11, 1, 0));
    }
    let k = kpis(&[a]);
    assert_eq!(k.median_days_to_complete, Some(0.0));
    assert_eq!(k.median_days_to_first_value, Some(0.0));
}

#[test]
fn an_empty_cohort_gives_zeros_and_no_medians_never_nan() {
    for accounts in [Vec::new(), vec![cohort().remove(5)]] {
        let k = kpis(&accounts);
        assert_eq!(k.cohort, 0);
        assert_eq!((k.completion_rate, k.active_rate), (0.0, 0.0));
        assert_eq!(k.median_days_to_complete, None);
        assert_eq!(k.median_days_to_first_value, None);
        assert_eq!(k.funnel.len(), 3, "the default plan's steps, at 0 of 0");
        assert!(
            k.funnel
                .iter()
                .all(|r| r.done == 0 && r.of == 0 && r.rate == 0.0)
        );
        assert!(k.milestones.iter().all(|m| m.sent == 0 && m.accounts == 0));
        let json = serde_json::to_string(&k).expect("json");
        assert!(
            !json.contains("NaN") && json.contains("\"completion_rate\":0.0"),
            "{json}"
        );
        assert!(json.contains("\"median_days_to_complete\":null"), "{json}");
    }
}

#[test]
fn the_active_window_is_the_complete_local_days_before_at() {
    // 2026-11-30 00:00 UTC is still 11-29 in New York and already 11-30 in Tokyo.
    assert_eq!(
        active_window(at(), New_York, 30),
        (date(2026, 10, 30), date(2026, 11, 28))
    );
    assert_eq!(
        active_window(at(), Tokyo, 30),
        (date(2026, 10, 31), date(2026, 11, 29))
    );
    // 3 uses exactly on the window's edges count; a day more either way does not.
    let mut a = account("edge", date(2026, 11, 1), Tokyo);
    uses(&mut a, date(2026, 10, 31), "dashboard", 1);
    uses(&mut a, date(2026, 11, 29), "workflow", 2);
    assert_eq!(kpis(std::slice::from_ref(&a)).active, 1);
    a.feature_days.clear();
    uses(&mut a, date(2026, 10, 30), "dashboard", 1);
    uses(&mut a, date(2026, 11, 29), "workflow", 1);
    uses(&mut a, date(2026, 11, 30), "workflow", 1);
    assert_eq!(kpis(&[a]).active, 0);
}

#[test]
fn rollups_give_the_feature_counts_by_day() {
    let r = DayRollup {
        day: date(2026, 11, 2),
        features: [("dashboard".to_string(), 4)].into(),
        ..DayRollup::default()
    };
    let days = feature_days(vec![r]);
    assert_eq!(days[&date(2026, 11, 2)]["dashboard"], 4);
}
