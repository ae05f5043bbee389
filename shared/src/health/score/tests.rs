use chrono::{Duration, TimeZone};
use chrono_tz::{America::New_York, Asia::Tokyo};
use proptest::prelude::*;

use super::fixtures::*;
use super::*;
use crate::events::Tier;
use crate::health::model::{Band, Factor, Family, HealthModel, Phase, TierSource};

fn points(s: &HealthScore, f: Factor) -> f64 {
    s.driver(f).expect("every factor has a driver").points
}

fn driver(s: &HealthScore, f: Factor) -> &Driver {
    s.driver(f).expect("every factor has a driver")
}

/// The drivers' points add up to the score: each is rounded to 0.01 and the score to 1.
fn assert_drivers_sum_to_score(s: &HealthScore) {
    let sum: f64 = s.drivers.iter().map(|d| d.points).sum();
    let tolerance = 0.5 + 0.005 * s.drivers.len() as f64;
    assert!(
        (sum - f64::from(s.score)).abs() <= tolerance,
        "drivers sum to {sum}, score is {}",
        s.score
    );
    let families: f64 = s.families.iter().map(|f| f.points).sum();
    assert!((families - f64::from(s.score)).abs() <= 0.5 + 0.005 * 4.0);
}

fn assert_points(s: &HealthScore, expected: &[(Factor, f64)]) {
    for (f, want) in expected {
        let got = points(s, *f);
        assert!(
            (got - want).abs() < 0.006,
            "{f}: got {got} points, want {want}"
        );
    }
}

// ------------------------------------------------------------------------------ goldens --

#[test]
fn golden_a_healthy_premium_account_in_tokyo_scores_82_green() {
    let s = healthy_tokyo().score(&HealthModel::default());
    // Now = 2026-06-15 12:00 JST, so today = June 15 and age 1 = June 14. Default model.
    //
    // Contract (family weight 0.2, all four known):
    //   tenure          744 days / 365 -> capped 100   0.2 x 0.3 x 100 = 6.00
    //   renewals        2 / 2          -> 100          0.2 x 0.3 x 100 = 6.00
    //   days_to_renewal 351 / 90       -> capped 100   0.2 x 0.2 x 100 = 4.00
    //   plan            premium        -> 80           0.2 x 0.2 x 80  = 3.20   => 19.20
    // Usage (0.5, all known):
    //   login_days      8 days / 10    -> 80           0.5 x 0.25 x 80 = 10.00
    //   login_trend     16 / 20 logins -> 80           0.5 x 0.15 x 80 =  6.00
    //   active_contacts 4 / 5          -> 80           0.5 x 0.15 x 80 =  6.00
    //   feature_breadth 3 / 4 keys     -> 75           0.5 x 0.15 x 75 =  5.625
    //   feature_depth   30 / 40 uses   -> 75           0.5 x 0.10 x 75 =  3.75
    //   reports         2 / 4          -> 50           0.5 x 0.10 x 50 =  2.50
    //   onboarding      3 / 3 (first_report by flag) -> 100  0.5 x 0.1 x 100 = 5.00 => 38.875
    // Satisfaction (0.3, all known):
    //   nps             9              -> 90           0.3 x 0.5 x 90   = 13.50
    //   nps_trend       9 vs 8, +1     -> 110, cap 100 0.3 x 0.1 x 100  =  3.00
    //   open_tickets    load 1 (low) / 8     -> 87.5   0.3 x 0.2 x 87.5 =  5.25
    //   recent_tickets  load 1 + 2 (medium) / 12 -> 75 0.3 x 0.2 x 75   =  4.50  => 26.25
    // Blend = 19.2 + 38.875 + 26.25 = 84.325.
    // Risk: workflow unused for 14 days: 8 x 1/4 = -2. Logins fell 20% (< 30), no admin
    // change, 1 ticket in 7 days (< 3), NPS 9 (> 6).
    // Score = 84.325 - 2 = 82.325 -> 82, green (>= 70).
    assert_points(
        &s,
        &[
            (Factor::Tenure, 6.0),
            (Factor::Renewals, 6.0),
            (Factor::DaysToRenewal, 4.0),
            (Factor::Plan, 3.2),
            (Factor::LoginDays, 10.0),
            (Factor::LoginTrend, 6.0),
            (Factor::ActiveContacts, 6.0),
            (Factor::FeatureBreadth, 5.63),
            (Factor::FeatureDepth, 3.75),
            (Factor::Reports, 2.5),
            (Factor::Onboarding, 5.0),
            (Factor::Nps, 13.5),
            (Factor::NpsTrend, 3.0),
            (Factor::OpenTickets, 5.25),
            (Factor::RecentTickets, 4.5),
            (Factor::LoginDecline, 0.0),
            (Factor::KeyFeaturesUnused, -2.0),
            (Factor::AdminChanged, 0.0),
            (Factor::TicketSpike, 0.0),
            (Factor::NpsDetractor, 0.0),
        ],
    );
    assert_eq!(s.score, 82);
    assert_eq!(s.band, Band::Green);
    assert_eq!((s.tier, s.tier_source), (Tier::HighTouch, TierSource::Arr));
    assert_eq!(s.phase, Phase::Operation);
    assert!(s.active, "30 key-feature uses in 30 days");
    assert!(!s.provisional);
    assert_eq!(s.day, date(2026, 6, 15));
    assert_eq!(s.model_version, "default-1");
    assert!(s.drivers.iter().all(|d| !d.missing));
    let trend = driver(&s, Factor::LoginTrend);
    assert_eq!((trend.value, trend.versus), (Some(16.0), Some(20.0)));
    let decline = driver(&s, Factor::LoginDecline);
    assert_eq!((decline.value, decline.triggered), (Some(20.0), false));
    assert_eq!(driver(&s, Factor::KeyFeaturesUnused).value, Some(1.0));
    assert_drivers_sum_to_score(&s);
}

#[test]
fn golden_b_sliding_account_in_new_york_scores_16_red() {
    let s = at_risk_new_york().score(&HealthModel::default());
    // Now = 2026-06-14 23:00 EDT, so today = June 14. Plan "growth" is not in plan_scores.
    //
    // Contract (0.2); plan missing, so the known factor weights 0.3 + 0.3 + 0.2 = 0.8 share
    // the family: each gets 0.2 x w / 0.8.
    //   tenure          292 / 365 -> 80     0.2 x 0.3/0.8 x 80 = 6.00
    //   renewals        1 / 2     -> 50     0.2 x 0.3/0.8 x 50 = 3.75
    //   days_to_renewal 45 / 90   -> 50     0.2 x 0.2/0.8 x 50 = 2.50
    //   plan            missing             0                        => 12.25
    // Usage (0.5):
    //   login_days      4 / 10    -> 40     0.5 x 0.25 x 40  = 5.00
    //   login_trend     4 / 20    -> 20     0.5 x 0.15 x 20  = 1.50
    //   active_contacts 2 / 5     -> 40     0.5 x 0.15 x 40  = 3.00
    //   feature_breadth 2 / 4     -> 50     0.5 x 0.15 x 50  = 3.75
    //   feature_depth   10 / 40   -> 25     0.5 x 0.10 x 25  = 1.25
    //   reports         0 / 4     -> 0      0
    //   onboarding      3 / 3     -> 100    0.5 x 0.10 x 100 = 5.00          => 19.50
    // Satisfaction (0.3):
    //   nps             4         -> 40     0.3 x 0.5 x 40 = 6.00
    //   nps_trend       4 vs 7    -> 100 - 30 = 70   0.3 x 0.1 x 70 = 2.10
    //   open_tickets    high 4 + urgent 8 = 12 >= 8 -> 0
    //   recent_tickets  12 + low 1 + low 1 = 14 >= 12 -> 0                  =>  8.10
    // Blend = 12.25 + 19.5 + 8.1 = 39.85.
    // Risk: logins 4 vs 20 = -80% (>= 30): -10; key features unused for 14 days: integration
    // and workflow, 8 x 2/4 = -4; latest NPS 4 <= 6: -10. One ticket in 7 days: no spike.
    // Score = 39.85 - 24 = 15.85 -> 16, red (< 40).
    assert_points(
        &s,
        &[
            (Factor::Tenure, 6.0),
            (Factor::Renewals, 3.75),
            (Factor::DaysToRenewal, 2.5),
            (Factor::Plan, 0.0),
            (Factor::LoginDays, 5.0),
            (Factor::LoginTrend, 1.5),
            (Factor::ActiveContacts, 3.0),
            (Factor::FeatureBreadth, 3.75),
            (Factor::FeatureDepth, 1.25),
            (Factor::Reports, 0.0),
            (Factor::Onboarding, 5.0),
            (Factor::Nps, 6.0),
            (Factor::NpsTrend, 2.1),
            (Factor::OpenTickets, 0.0),
            (Factor::RecentTickets, 0.0),
            (Factor::LoginDecline, -10.0),
            (Factor::KeyFeaturesUnused, -4.0),
            (Factor::AdminChanged, 0.0),
            (Factor::TicketSpike, 0.0),
            (Factor::NpsDetractor, -10.0),
        ],
    );
    assert_eq!(s.score, 16);
    assert_eq!(s.band, Band::Red);
    assert_eq!(s.day, date(2026, 6, 14));
    assert_eq!(s.phase, Phase::PreRenewal);
    assert_eq!((s.tier, s.tier_source), (Tier::LowTouch, TierSource::Arr));
    let plan = driver(&s, Factor::Plan);
    assert!(plan.missing && plan.value.is_none() && plan.weight == 0.0);
    assert_eq!(driver(&s, Factor::Tenure).weight, 0.075);
    assert_eq!(driver(&s, Factor::LoginDecline).value, Some(80.0));
    assert_eq!(driver(&s, Factor::OpenTickets).value, Some(12.0));
    assert_eq!(driver(&s, Factor::RecentTickets).value, Some(14.0));
    assert_drivers_sum_to_score(&s);
}

#[test]
fn golden_c_week_old_account_without_satisfaction_data_scores_57_yellow() {
    let s = new_london().score(&starter_model());
    // Now = 2026-06-15 04:00 BST; first seen June 8 (local): 7 observed days. No NPS, no
    // ticket: the whole satisfaction family is missing, so contract and usage share the score
    // as 0.2/0.7 and 0.5/0.7. The trend window is not observed yet: usage's known factor
    // weights sum to 1 - 0.15 = 0.85. Targets are pro-rated to 7 observed days.
    //
    // Contract (0.2/0.7 = 0.2857):
    //   tenure          73 / 365 -> 20      0.2/0.7 x 0.3 x 20  = 1.71
    //   renewals        0 / 2    -> 0       0
    //   days_to_renewal 292 / 90 -> 100     0.2/0.7 x 0.2 x 100 = 5.71
    //   plan            starter  -> 40      0.2/0.7 x 0.2 x 40  = 2.29   (family mean 34)
    // Usage (0.5/0.7 = 0.7143, factor shares w / 0.85):
    //   login_days      5 / (10 x 7/14 = 5)       -> 100   0.7143 x 0.25/0.85 x 100 = 21.01
    //   login_trend     missing (needs 28 observed days)
    //   active_contacts 2 / (5 x 7/30 = 1.17)     -> 100   0.7143 x 0.15/0.85 x 100 = 12.61
    //   feature_breadth 1 / 4                     -> 25    0.7143 x 0.15/0.85 x 25  =  3.15
    //   feature_depth   7 / (40 x 7/30 = 9.33)    -> 75    0.7143 x 0.10/0.85 x 75  =  6.30
    //   reports         0 / 0.93                  -> 0     0
    //   onboarding      1 / 2 (starter's steps)   -> 50    0.7143 x 0.10/0.85 x 50  =  4.20
    //   (family mean 56.25 / 0.85 = 66.18)
    // Blend = (0.2 x 34 + 0.5 x 66.18) / 0.7 = 56.98. No risk signal can be judged yet
    // (decline and unused need observed windows, detractor needs an NPS).
    // Score = 56.98 -> 57, yellow.
    assert_points(
        &s,
        &[
            (Factor::Tenure, 1.71),
            (Factor::Renewals, 0.0),
            (Factor::DaysToRenewal, 5.71),
            (Factor::Plan, 2.29),
            (Factor::LoginDays, 21.01),
            (Factor::LoginTrend, 0.0),
            (Factor::ActiveContacts, 12.61),
            (Factor::FeatureBreadth, 3.15),
            (Factor::FeatureDepth, 6.30),
            (Factor::Reports, 0.0),
            (Factor::Onboarding, 4.20),
            (Factor::Nps, 0.0),
            (Factor::NpsTrend, 0.0),
            (Factor::OpenTickets, 0.0),
            (Factor::RecentTickets, 0.0),
        ],
    );
    assert_eq!(s.score, 57);
    assert_eq!(s.band, Band::Yellow);
    assert_eq!(s.phase, Phase::Onboarding);
    assert_eq!((s.tier, s.tier_source), (Tier::TechTouch, TierSource::Arr));
    assert!(s.provisional);
    assert!(s.active, "7 dashboard uses");
    let missing: Vec<Factor> = s
        .drivers
        .iter()
        .filter(|d| d.missing)
        .map(|d| d.factor)
        .collect();
    assert_eq!(
        missing,
        [
            Factor::LoginTrend,
            Factor::Nps,
            Factor::NpsTrend,
            Factor::OpenTickets,
            Factor::RecentTickets,
            Factor::LoginDecline,
            Factor::KeyFeaturesUnused,
            Factor::NpsDetractor,
        ]
    );
    let sat = s.family(Family::Satisfaction).expect("family");
    assert!(sat.missing && sat.weight == 0.0 && sat.points == 0.0);
    assert_eq!(driver(&s, Factor::LoginDays).versus, Some(5.0));
    assert!(s.drivers.iter().all(|d| !d.triggered));
    assert_drivers_sum_to_score(&s);
}

// ------------------------------------------------------------------------- risk signals --

#[test]
fn a_login_decline_past_the_threshold_fires_and_lowers_the_score() {
    let model = HealthModel::default();
    let base = healthy_tokyo();
    let mut declined = base.clone();
    // Previous window 40 logins instead of 20: 16 vs 40 = -60%.
    declined.usage = base
        .history()
        .logins(1..=8, 2)
        .logins(15..=24, 4)
        .contact(1, "u1")
        .contact(2, "u2")
        .contact(3, "u3")
        .contact(4, "u4")
        .feature(2, "report_builder", 10)
        .feature(2, "dashboard", 10)
        .feature(2, "integration", 10)
        .reports(3, 2)
        .build();
    let (before, after) = (base.score(&model), declined.score(&model));
    let d = driver(&after, Factor::LoginDecline);
    assert!(d.triggered);
    assert_eq!((d.value, d.points), (Some(60.0), -10.0));
    // The trend factor falls too: 16/40 = 40 -> 0.5 x 0.15 x 40 = 3 points instead of 6.
    assert_eq!(points(&after, Factor::LoginTrend), 3.0);
    // 82.325 - 3 - 10 = 69.325 -> 69.
    assert_eq!((before.score, after.score), (82, 69));
    assert_eq!(after.band, Band::Yellow);
}

#[test]
fn a_decline_below_the_threshold_does_not_fire() {
    let s = healthy_tokyo().score(&HealthModel::default());
    let d = driver(&s, Factor::LoginDecline);
    assert!(!d.triggered && !d.missing && d.points == 0.0);
}

#[test]
fn a_recent_admin_change_takes_its_penalty_off_and_expires_after_the_window() {
    let model = HealthModel::default();
    let base = healthy_tokyo();
    let mut changed = base.clone();
    changed.admin_changed_at = Some(base.now - Duration::days(5));
    let s = changed.score(&model);
    let d = driver(&s, Factor::AdminChanged);
    assert!(d.triggered);
    assert_eq!(
        (d.value, d.versus, d.points),
        (Some(5.0), Some(30.0), -10.0)
    );
    // 82.325 - 10 = 72.325 -> 72: nothing else moved.
    assert_eq!(s.score, 72);

    changed.admin_changed_at = Some(base.now - Duration::days(30));
    let s = changed.score(&model);
    assert!(!driver(&s, Factor::AdminChanged).triggered);
    assert_eq!(s.score, 82);
    changed.admin_changed_at = Some(base.now - Duration::days(30) + Duration::minutes(1));
    assert_eq!(changed.score(&model).score, 72);
}

#[test]
fn a_ticket_spike_fires_at_the_count_and_lowers_the_score() {
    let model = HealthModel::default();
    let base = healthy_tokyo();
    let mut spiked = base.clone();
    // Two more low tickets this week: 3 in 7 days (t1 on June 10 + these).
    spiked
        .recent
        .push(ticket("t2", Severity::Low, utc(2026, 6, 12, 0, 0)));
    spiked
        .recent
        .push(ticket("t3", Severity::Low, utc(2026, 6, 14, 0, 0)));
    let s = spiked.score(&model);
    let d = driver(&s, Factor::TicketSpike);
    assert!(d.triggered);
    assert_eq!((d.value, d.versus, d.points), (Some(3.0), Some(3.0), -8.0));
    // recent load 5 / 12 -> 58.33: 0.3 x 0.2 x 58.33 = 3.5 (was 4.5); 82.325 - 1 - 8 = 73.325.
    assert_eq!(points(&s, Factor::RecentTickets), 3.5);
    assert_eq!(s.score, 73);

    // Two in the week is not a spike.
    spiked.recent.pop();
    assert!(!driver(&spiked.score(&model), Factor::TicketSpike).triggered);
}

#[test]
fn a_detractor_answer_fires_and_lowers_the_score() {
    let model = HealthModel::default();
    let mut a = healthy_tokyo();
    a.nps.insert(0, nps(6, utc(2026, 6, 10, 0, 0)));
    let s = a.score(&model);
    let d = driver(&s, Factor::NpsDetractor);
    assert!(d.triggered);
    assert_eq!((d.value, d.versus, d.points), (Some(6.0), Some(6.0), -10.0));
    // nps 60: 0.15 x 60 = 9 (was 13.5); trend 6 vs 9 = 70: 2.1 (was 3);
    // 82.325 - 4.5 - 0.9 - 10 = 66.925 -> 67.
    assert_eq!(s.score, 67);

    // 7 is a passive, not a detractor.
    a.nps[0].score = 7;
    assert!(!driver(&a.score(&model), Factor::NpsDetractor).triggered);
}

#[test]
fn key_features_left_unused_for_the_window_cost_their_share_of_the_penalty() {
    let model = HealthModel::default();
    let base = healthy_tokyo();
    let mut stale = base.clone();
    // The same three features, last used 20 days ago instead of 2: breadth and depth over 30
    // days are unchanged, but all four keys are now unused for 14 days.
    stale.usage = base
        .history()
        .logins(1..=8, 2)
        .logins(15..=24, 2)
        .contact(1, "u1")
        .contact(2, "u2")
        .contact(3, "u3")
        .contact(4, "u4")
        .feature(20, "report_builder", 10)
        .feature(20, "dashboard", 10)
        .feature(20, "integration", 10)
        .reports(3, 2)
        .build();
    let s = stale.score(&model);
    let d = driver(&s, Factor::KeyFeaturesUnused);
    assert!(d.triggered);
    assert_eq!((d.value, d.versus, d.points), (Some(4.0), Some(4.0), -8.0));
    // 84.325 - 8 = 76.325 -> 76 (was 82 with one unused key: -2).
    assert_eq!(s.score, 76);

    // All four used this week: no penalty.
    let mut fresh = base.clone();
    fresh.usage = base
        .history()
        .logins(1..=8, 2)
        .logins(15..=24, 2)
        .feature(2, "report_builder", 10)
        .feature(2, "dashboard", 10)
        .feature(2, "integration", 5)
        .feature(2, "workflow", 5)
        .build();
    let d = driver(&fresh.score(&model), Factor::KeyFeaturesUnused).clone();
    assert!(!d.triggered && d.points == 0.0);
}

#[test]
fn penalties_larger_than_the_blend_are_scaled_so_the_score_stops_at_zero() {
    let model = HealthModel::default();
    let mut b = at_risk_new_york();
    b.admin_changed_at = Some(b.now - Duration::days(1));
    b.recent
        .push(ticket("x1", Severity::Low, utc(2026, 6, 13, 0, 0)));
    b.recent
        .push(ticket("x2", Severity::Low, utc(2026, 6, 14, 0, 0)));
    let s = b.score(&model);
    // Blend 39.85 (the extra low tickets do not move recent_tickets: already 0);
    // penalties 10 + 4 + 10 + 8 + 10 = 42 > 39.85: each x 39.85/42.
    assert_eq!(s.score, 0);
    assert_eq!(s.band, Band::Red);
    let scale = 39.85 / 42.0;
    assert!((points(&s, Factor::AdminChanged) + 10.0 * scale).abs() < 0.006);
    assert!((points(&s, Factor::KeyFeaturesUnused) + 4.0 * scale).abs() < 0.006);
    assert_drivers_sum_to_score(&s);
}

// -------------------------------------------------------------------- missing is neutral --

#[test]
fn a_missing_nps_is_excluded_and_its_weight_redistributed_within_satisfaction() {
    let model = HealthModel::default();
    let mut a = healthy_tokyo();
    a.nps.clear();
    let s = a.score(&model);
    for f in [Factor::Nps, Factor::NpsTrend, Factor::NpsDetractor] {
        let d = driver(&s, f);
        assert!(d.missing, "{f} is named missing");
        assert_eq!((d.points, d.value), (0.0, None));
    }
    // Satisfaction is judged on the tickets alone, each now 0.2 / 0.4 = half the family:
    //   open_tickets    0.3 x 0.5 x 87.5 = 13.125
    //   recent_tickets  0.3 x 0.5 x 75   = 11.25    => 24.375 = 0.3 x 81.25 (their mean)
    // Score = 19.2 + 38.875 + 24.375 - 2 = 80.45 -> 80.
    assert_eq!(points(&s, Factor::OpenTickets), 13.13);
    assert_eq!(points(&s, Factor::RecentTickets), 11.25);
    assert_eq!(s.score, 80);
    // Neutral: the family keeps its full weight and scores the mean of what is known.
    let sat = s.family(Family::Satisfaction).expect("family");
    assert!(!sat.missing);
    assert_eq!(sat.weight, 0.3);
    assert!((sat.points / sat.weight - 81.25).abs() < 0.05);
    // Not a silent zero: an NPS of 0 would score far lower.
    a.nps = vec![nps(0, utc(2026, 6, 1, 0, 0))];
    assert!(a.score(&model).score < 60);
}

#[test]
fn a_missing_factor_whose_family_mean_equals_it_leaves_the_score_unchanged() {
    // Redistribution means "judge the family on what is known": a factor that would have
    // scored exactly the family's mean changes nothing by going missing. Golden A's other
    // contract factors all score 100; a plan scoring 100 and a missing plan give the same.
    let mut model = HealthModel::default();
    model.plan_scores.insert("premium".into(), 100.0);
    let a = healthy_tokyo();
    let with_plan = a.score(&model);
    model.plan_scores.remove("premium");
    let without = a.score(&model);
    assert!(driver(&without, Factor::Plan).missing);
    assert_eq!(with_plan.score, without.score);
    let (c1, c2) = (
        with_plan.family(Family::Contract).expect("family").points,
        without.family(Family::Contract).expect("family").points,
    );
    assert_eq!((c1, c2), (20.0, 20.0));
}

#[test]
fn no_open_and_no_recent_ticket_means_no_support_signal_not_full_marks() {
    let mut a = healthy_tokyo();
    a.open.clear();
    a.recent.clear();
    let s = a.score(&HealthModel::default());
    assert!(driver(&s, Factor::OpenTickets).missing);
    assert!(driver(&s, Factor::RecentTickets).missing);
    // Satisfaction = NPS alone: (0.5 x 90 + 0.1 x 100) / 0.6 = 91.67, x 0.3 = 27.5.
    let sat = s.family(Family::Satisfaction).expect("family");
    assert!((sat.points - 27.5).abs() < 0.006);

    // A ticket opened long ago and closed is not "recent" either.
    a.recent = vec![ticket("old", Severity::High, utc(2026, 4, 1, 0, 0))];
    assert!(driver(&a.score(&HealthModel::default()), Factor::OpenTickets).missing);

    // One open ticket, none recent: both known (recent = 100, nothing new).
    a.open = vec![ticket("old", Severity::High, utc(2026, 4, 1, 0, 0))];
    let s = a.score(&HealthModel::default());
    assert_eq!(driver(&s, Factor::RecentTickets).subscore, Some(100.0));
    assert_eq!(driver(&s, Factor::OpenTickets).subscore, Some(50.0));
}

#[test]
fn an_nps_older_than_the_max_age_is_ignored() {
    let mut a = healthy_tokyo();
    a.nps = vec![nps(3, utc(2025, 6, 1, 0, 0))];
    let s = a.score(&HealthModel::default());
    assert!(driver(&s, Factor::Nps).missing);
    assert!(!driver(&s, Factor::NpsDetractor).triggered);
}

#[test]
fn the_newest_nps_is_found_by_time_whatever_the_order() {
    let mut a = healthy_tokyo();
    a.nps.reverse();
    let s = a.score(&HealthModel::default());
    let d = driver(&s, Factor::NpsTrend);
    assert_eq!((d.value, d.versus), (Some(9.0), Some(8.0)));
}

#[test]
fn onboarding_with_no_step_on_record_is_missing_after_the_onboarding_phase() {
    let mut a = healthy_tokyo();
    a.steps.clear();
    a.first_report = false;
    let s = a.score(&HealthModel::default());
    assert_eq!(s.phase, Phase::Operation);
    assert!(driver(&s, Factor::Onboarding).missing);

    // During onboarding, no step done is a real 0.
    let mut c = new_london();
    c.steps.clear();
    let s = c.score(&starter_model());
    assert_eq!(s.phase, Phase::Onboarding);
    let d = driver(&s, Factor::Onboarding);
    assert!(!d.missing);
    assert_eq!(d.subscore, Some(0.0));
}

#[test]
fn when_nothing_with_weight_is_known_every_factor_counts_neutral_50() {
    let mut model = HealthModel::default();
    model.weights.contract = 0.0;
    model.weights.usage = 0.0;
    model.weights.satisfaction = 1.0;
    let s = new_london().score(&starter_model_with(model));
    // Satisfaction carries every weight and the account has none of it: 50 x (0.5 + 0.1 +
    // 0.2 + 0.2) = 50.
    assert_eq!(s.score, 50);
    assert!(driver(&s, Factor::Nps).missing);
    assert_eq!(points(&s, Factor::Nps), 25.0);
    assert_drivers_sum_to_score(&s);
}

fn starter_model_with(mut model: HealthModel) -> HealthModel {
    model.onboarding_steps = starter_model().onboarding_steps;
    model
}

// ---------------------------------------------------------------- labels: band, tier, ... --

#[test]
fn provisional_until_nudge_has_known_the_account_for_14_days() {
    let model = HealthModel::default();
    let mut a = healthy_tokyo();
    a.first_seen = a.now - Duration::days(14) + Duration::minutes(1);
    assert!(a.score(&model).provisional);
    a.first_seen = a.now - Duration::days(14);
    assert!(!a.score(&model).provisional);
    assert!(new_london().score(&starter_model()).provisional);
}

#[test]
fn phase_is_pre_renewal_within_the_window_then_onboarding_then_operation() {
    let model = HealthModel::default();
    let today = date(2026, 6, 15);
    let p =
        |start: NaiveDate, renewal: NaiveDate| profile(Tokyo, "standard", 1.0, start, renewal, 0);
    // Renewal in exactly 90 days: pre-renewal; in 91: not.
    let long_ago = date(2024, 1, 1);
    assert_eq!(
        phase(&model, &p(long_ago, date(2026, 9, 13)), today, true),
        Phase::PreRenewal
    );
    assert_eq!(
        phase(&model, &p(long_ago, date(2026, 9, 14)), today, true),
        Phase::Operation
    );
    // Past due and not renewed: still pre-renewal.
    assert_eq!(
        phase(&model, &p(long_ago, date(2026, 6, 1)), today, true),
        Phase::PreRenewal
    );
    // Day 89 of the contract with steps open: onboarding; day 90: operation.
    let renewal = date(2027, 6, 1);
    assert_eq!(
        phase(&model, &p(date(2026, 3, 18), renewal), today, false),
        Phase::Onboarding
    );
    assert_eq!(
        phase(&model, &p(date(2026, 3, 17), renewal), today, false),
        Phase::Operation
    );
    // Onboarding finished early ends the phase.
    assert_eq!(
        phase(&model, &p(date(2026, 6, 1), renewal), today, true),
        Phase::Operation
    );
    // A short contract renewing during onboarding: the renewal wins.
    assert_eq!(
        phase(&model, &p(date(2026, 6, 1), date(2026, 8, 1)), today, false),
        Phase::PreRenewal
    );
}

#[test]
fn tier_follows_arr_unless_a_plan_rule_or_the_account_sets_it() {
    let mut model = HealthModel::default();
    let mut p = profile(
        Tokyo,
        "standard",
        50_000.0,
        date(2025, 1, 1),
        date(2026, 1, 1),
        0,
    );
    let tier = |m: &HealthModel, p: &AccountProfile| m.tier(p);
    assert_eq!(tier(&model, &p), (Tier::HighTouch, TierSource::Arr));
    p.arr = 49_999.99;
    assert_eq!(tier(&model, &p), (Tier::LowTouch, TierSource::Arr));
    p.arr = 10_000.0;
    assert_eq!(tier(&model, &p), (Tier::LowTouch, TierSource::Arr));
    p.arr = 9_999.0;
    assert_eq!(tier(&model, &p), (Tier::TechTouch, TierSource::Arr));
    model.tiers.plans.insert("Standard".into(), Tier::HighTouch);
    assert_eq!(tier(&model, &p), (Tier::HighTouch, TierSource::Plan));
    p.tier = Some(Tier::TechTouch);
    p.arr = 1_000_000.0;
    assert_eq!(tier(&model, &p), (Tier::TechTouch, TierSource::Account));

    let mut a = healthy_tokyo();
    a.profile.tier = Some(Tier::LowTouch);
    let s = a.score(&HealthModel::default());
    assert_eq!(
        (s.tier, s.tier_source),
        (Tier::LowTouch, TierSource::Account)
    );
}

#[test]
fn bands_cut_at_red_below_and_green_from() {
    let mut model = HealthModel::default();
    assert_eq!(model.band(0), Band::Red);
    assert_eq!(model.band(39), Band::Red);
    assert_eq!(model.band(40), Band::Yellow);
    assert_eq!(model.band(69), Band::Yellow);
    assert_eq!(model.band(70), Band::Green);
    assert_eq!(model.band(100), Band::Green);
    model.bands.red_below = 50.0;
    model.bands.green_from = 80.0;
    assert_eq!(model.band(49), Band::Red);
    assert_eq!(model.band(79), Band::Yellow);
    // Golden A (82) under these cut-offs is still green; golden C (57) yellow.
    assert_eq!(healthy_tokyo().score(&model).band, Band::Green);
    model.bands.green_from = 83.0;
    assert_eq!(healthy_tokyo().score(&model).band, Band::Yellow);
}

#[test]
fn active_needs_three_key_feature_uses_in_the_last_30_days() {
    let model = HealthModel::default();
    let mut a = healthy_tokyo();
    let today = a.today();
    let with = |uses: &[(i64, &str, u64)]| {
        let mut h = History::new(today);
        for (age, name, n) in uses {
            h = h.feature(*age, name, *n);
        }
        h.build()
    };
    a.usage = with(&[(1, "dashboard", 2), (30, "workflow", 1)]);
    assert!(a.score(&model).active, "2 + 1 within 30 days");
    a.usage = with(&[(1, "dashboard", 2), (31, "workflow", 1)]);
    assert!(!a.score(&model).active, "the third use is 31 days ago");
    a.usage = with(&[(1, "dashboard", 2), (1, "not_a_key_feature", 5)]);
    assert!(!a.score(&model).active, "only key features count");
    // Today's uses count from tomorrow.
    a.usage = with(&[(0, "dashboard", 3)]);
    assert!(!a.score(&model).active);
}

#[test]
fn plan_lookups_ignore_case_and_spaces() {
    let mut a = healthy_tokyo();
    a.profile.plan = " PREMIUM ".into();
    let s = a.score(&HealthModel::default());
    assert_eq!(driver(&s, Factor::Plan).subscore, Some(80.0));
    assert_eq!(s.score, 82);
}

// ------------------------------------------------------------------------- local days --

#[test]
fn local_day_is_the_accounts_calendar_day() {
    // 23:30 in Tokyo (UTC+9) is 14:30 UTC the same date.
    let tokyo = Tokyo.with_ymd_and_hms(2026, 3, 10, 23, 30, 0).unwrap();
    assert_eq!(
        local_day(tokyo.with_timezone(&Utc), Tokyo),
        date(2026, 3, 10)
    );
    // 23:30 EST in New York is 04:30 UTC the next date.
    let ny = New_York.with_ymd_and_hms(2026, 3, 7, 23, 30, 0).unwrap();
    assert_eq!(ny.with_timezone(&Utc), utc(2026, 3, 8, 4, 30));
    assert_eq!(
        local_day(ny.with_timezone(&Utc), New_York),
        date(2026, 3, 7)
    );
    // March 8 2026 springs forward (02:00 EST -> 03:00 EDT): 23:30 EDT = 03:30 UTC March 9.
    let spring = New_York.with_ymd_and_hms(2026, 3, 8, 23, 30, 0).unwrap();
    assert_eq!(spring.with_timezone(&Utc), utc(2026, 3, 9, 3, 30));
    assert_eq!(
        local_day(spring.with_timezone(&Utc), New_York),
        date(2026, 3, 8)
    );
    // November 1 2026 falls back: 23:30 EST = 04:30 UTC November 2.
    let fall = New_York.with_ymd_and_hms(2026, 11, 1, 23, 30, 0).unwrap();
    assert_eq!(
        local_day(fall.with_timezone(&Utc), New_York),
        date(2026, 11, 1)
    );
    // And 00:30 local is already the next day.
    let after = New_York.with_ymd_and_hms(2026, 3, 9, 0, 30, 0).unwrap();
    assert_eq!(
        local_day(after.with_timezone(&Utc), New_York),
        date(2026, 3, 9)
    );
}

#[test]
fn a_late_evening_login_counts_for_that_local_day_in_the_score() {
    // A New York account scored at 10:00 EDT on March 9, 2026 (the day after the DST change).
    // Its only login was at 23:30 EDT on March 8 = 03:30 UTC March 9: bucketed by local day it
    // is yesterday (counted); bucketed by UTC day it would be "today" (not counted yet).
    let model = HealthModel::default();
    let login = New_York
        .with_ymd_and_hms(2026, 3, 8, 23, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    let now = New_York
        .with_ymd_and_hms(2026, 3, 9, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let mut a = healthy_tokyo();
    a.profile.timezone = New_York;
    a.now = now;
    a.usage = vec![DayUsage {
        day: local_day(login, New_York),
        logins: 1,
        ..DayUsage::default()
    }];
    let s = a.score(&model);
    assert_eq!(driver(&s, Factor::LoginDays).value, Some(1.0));
    a.usage[0].day = login.date_naive();
    assert_eq!(driver(&a.score(&model), Factor::LoginDays).value, Some(0.0));
    // The same for Tokyo: 23:30 JST March 8 is 14:30 UTC March 8; scored March 9, 10:00 JST.
    let login = Tokyo
        .with_ymd_and_hms(2026, 3, 8, 23, 30, 0)
        .unwrap()
        .with_timezone(&Utc);
    a.profile.timezone = Tokyo;
    a.now = Tokyo
        .with_ymd_and_hms(2026, 3, 9, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    a.usage[0].day = local_day(login, Tokyo);
    assert_eq!(a.usage[0].day, date(2026, 3, 8));
    assert_eq!(driver(&a.score(&model), Factor::LoginDays).value, Some(1.0));
}

#[test]
fn usage_outside_the_history_today_and_the_future_is_ignored() {
    let model = HealthModel::default();
    let a = healthy_tokyo();
    let mut b = a.clone();
    b.usage = a.history().logins(0..=0, 50).logins(61..=70, 50).build();
    b.usage.push(DayUsage {
        day: date(2026, 6, 20),
        logins: 50,
        ..DayUsage::default()
    });
    let s = b.score(&model);
    assert_eq!(driver(&s, Factor::LoginDays).value, Some(0.0));
    assert!(
        driver(&s, Factor::LoginTrend).missing,
        "no login in either window"
    );
}

// -------------------------------------------------------------------------- invariants --

fn arb_account() -> impl Strategy<Value = Account> {
    (
        prop::collection::vec((1i64..=60, 0u64..6, 0u64..3, 0usize..5, 0u64..8), 0..40),
        0i64..400,
        prop::collection::vec((0u8..=10, 0i64..400), 0..4),
        prop::collection::vec((0usize..4, 0i64..40), 0..6),
        prop::option::of(0i64..60),
        0u32..4,
        0i64..900,
    )
        .prop_map(
            |(days, seen_ago, answers, tickets, admin, renewals, start_ago)| {
                let mut a = healthy_tokyo();
                let features = [
                    "report_builder",
                    "dashboard",
                    "integration",
                    "workflow",
                    "other",
                ];
                let mut h = a.history();
                for (age, logins, reports, f, uses) in days {
                    h = h
                        .logins(age..=age, logins)
                        .reports(age, reports)
                        .feature(age, features[f], uses)
                        .contact(age, features[f]);
                }
                a.usage = h.build();
                a.first_seen = a.now - Duration::days(seen_ago);
                a.nps = answers
                    .into_iter()
                    .map(|(s, ago)| nps(s, a.now - Duration::days(ago)))
                    .collect();
                let sev = [
                    Severity::Low,
                    Severity::Medium,
                    Severity::High,
                    Severity::Urgent,
                ];
                a.recent = tickets
                    .iter()
                    .map(|(s, ago)| ticket("t", sev[*s], a.now - Duration::days(*ago)))
                    .collect();
                a.open = a.recent.iter().take(2).cloned().collect();
                a.admin_changed_at = admin.map(|d| a.now - Duration::days(d));
                a.profile.renewals = renewals;
                a.profile.contract_start = a.today() - Duration::days(start_ago);
                a.profile.renewal_date = a.profile.contract_start + Duration::days(365);
                a
            },
        )
}

proptest! {
    #[test]
    fn contributions_always_sum_to_the_score_and_it_stays_in_0_to_100(a in arb_account()) {
        let s = a.score(&HealthModel::default());
        prop_assert!(s.score <= 100);
        let sum: f64 = s.drivers.iter().map(|d| d.points).sum();
        prop_assert!((sum - f64::from(s.score)).abs() <= 0.5 + 0.005 * s.drivers.len() as f64,
            "drivers {} vs score {}", sum, s.score);
        prop_assert_eq!(s.drivers.len(), Factor::ALL.len());
        let order: Vec<Factor> = s.drivers.iter().map(|d| d.factor).collect();
        prop_assert_eq!(order, Factor::ALL.to_vec());
        // Known weights add up to 1 (redistribution loses nothing), unless nothing is known.
        let w: f64 = s.drivers.iter().map(|d| d.weight).sum();
        prop_assert!((w - 1.0).abs() < 0.001, "weights sum to {}", w);
        prop_assert!(s.drivers.iter().all(|d| d.points <= 0.0 || !d.factor.is_risk()));
        prop_assert!(s.drivers.iter().all(|d| !d.missing || d.points == 0.0));
    }
}

#[test]
fn active_contacts_are_distinct_across_days_and_limited_to_the_usage_window() {
    let mut a = healthy_tokyo();
    a.usage = a
        .history()
        .contact(1, "carol")
        .contact(1, "alice")
        .contact(1, "bob")
        .contact(2, "bob")
        .contact(2, "dave")
        .contact(3, "alice")
        .contact(3, "erin")
        .contact(30, "frank")
        .contact(31, "zed")
        .build();
    let s = a.score(&HealthModel::default());
    // alice, bob, carol, dave, erin, frank; zed is 31 days ago.
    assert_eq!(driver(&s, Factor::ActiveContacts).value, Some(6.0));
}
