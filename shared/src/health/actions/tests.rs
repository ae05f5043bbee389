//! The playbooks' decisions: which change acts, once, with what.

use chrono::{Duration, NaiveDate};
use serde_json::json;

use super::*;
use crate::domain::{NudgeKind, Tier};
use crate::health::model::{Playbook, TierSource};
use crate::health::score::fixtures::{date, profile, utc};
use crate::health::{Driver, Phase};

fn at() -> DateTime<Utc> {
    utc(2026, 11, 30, 18, 0)
}

fn today() -> NaiveDate {
    date(2026, 12, 1)
}

fn scored(score: u8, band: Band, tier: Tier) -> HealthScore {
    HealthScore {
        model_version: "default-1".into(),
        at: at(),
        day: today(),
        score,
        band,
        tier,
        tier_source: TierSource::Arr,
        phase: Phase::Operation,
        active: true,
        provisional: false,
        families: Vec::new(),
        drivers: vec![Driver {
            factor: Factor::LoginDecline,
            family: Factor::LoginDecline.family(),
            missing: false,
            triggered: true,
            value: Some(45.0),
            versus: Some(30.0),
            subscore: None,
            weight: 0.0,
            points: -10.0,
        }],
    }
}

fn pulse(band: Option<&str>, since: Option<NaiveDate>, previous: Option<&str>) -> HealthPulse {
    HealthPulse {
        band: band.map(str::to_string),
        since,
        previous_band: previous.map(str::to_string),
        upsell_for: None,
    }
}

fn acme(csm: bool) -> AccountProfile {
    let mut p = profile(
        chrono_tz::Asia::Tokyo,
        "standard",
        8_000.0,
        date(2025, 4, 1),
        date(2027, 4, 1),
        1,
    );
    p.csm = csm.then(|| crate::events::Csm {
        name: "Sato Hanako".into(),
        email: "sato@vendor.example".into(),
    });
    p
}

fn plan(
    model: &HealthModel,
    p: &HealthPulse,
    s: &HealthScore,
    profile: &AccountProfile,
) -> Vec<Nudge> {
    let (change, _) = band_change(p, s);
    let facts = Facts {
        account_id: "acme",
        profile,
        score: s,
        change: None,
        latest_nps: None,
        usage: &[],
        now: at(),
    };
    change
        .map(|c| band_nudges(model, &c, &facts))
        .unwrap_or_default()
}

fn kinds(nudges: &[Nudge]) -> Vec<(NudgeKind, Option<Stage>)> {
    nudges.iter().map(|n| (n.kind, n.stage)).collect()
}

#[test]
fn turning_red_alerts_the_csm_and_sends_a_signed_gentle_email_on_tech_touch() {
    let m = HealthModel::default();
    let s = scored(35, Band::Red, Tier::TechTouch);
    let out = plan(
        &m,
        &pulse(Some("yellow"), Some(date(2026, 11, 20)), Some("green")),
        &s,
        &acme(true),
    );
    assert_eq!(
        kinds(&out),
        [
            (NudgeKind::HealthAlert, Some(Stage::TurnsRed)),
            (NudgeKind::RiskNudge, Some(Stage::TurnsRed))
        ]
    );
    assert_eq!(out[0].nudge_id, "hp/turns_red/2026-12-01/health_alert");
    assert_eq!(out[0].vars["previous_band"], "yellow");
    assert_eq!(out[0].vars["drivers"][0]["factor"], "login_decline");
    assert_eq!(out[0].vars["next_step"], "login_decline");
    assert_eq!(out[1].vars["from_csm"], true, "red: signed by the CSM");
    assert_eq!(
        out[1].contact_id, None,
        "to the admin, whoever it is when it leaves"
    );
}

#[test]
fn a_yellow_risk_email_is_not_signed_by_the_csm() {
    let m = HealthModel::default();
    let s = scored(55, Band::Yellow, Tier::TechTouch);
    let out = plan(
        &m,
        &pulse(Some("green"), Some(date(2026, 11, 2)), None),
        &s,
        &acme(true),
    );
    assert_eq!(
        kinds(&out),
        [(NudgeKind::RiskNudge, Some(Stage::TurnsYellow))]
    );
    assert_eq!(out[0].vars["from_csm"], false);
}

#[test]
fn staying_red_repeats_nothing_and_writes_nothing() {
    let s = scored(30, Band::Red, Tier::TechTouch);
    let p = pulse(Some("red"), Some(date(2026, 11, 25)), Some("yellow"));
    assert_eq!(band_change(&p, &s), (None, None));
}

#[test]
fn a_rerun_of_the_same_day_finds_the_same_change_and_the_same_ids() {
    let m = HealthModel::default();
    let s = scored(35, Band::Red, Tier::TechTouch);
    let before = pulse(Some("green"), Some(date(2026, 10, 1)), None);
    let (_, written) = band_change(&before, &s);
    let after = written.expect("the change is recorded");
    assert_eq!(after, pulse(Some("red"), Some(today()), Some("green")));
    let first = plan(&m, &before, &s, &acme(false));
    let again = plan(&m, &after, &s, &acme(false));
    assert_eq!(first, again);
    assert_eq!(band_change(&after, &s).1, None, "nothing new to write");
}

#[test]
fn recovering_moves_the_pulse_but_acts_on_nothing() {
    let m = HealthModel::default();
    let s = scored(50, Band::Yellow, Tier::TechTouch);
    let p = pulse(Some("red"), Some(date(2026, 11, 1)), Some("yellow"));
    assert!(plan(&m, &p, &s, &acme(false)).is_empty());
    assert_eq!(
        band_change(&p, &s).1.and_then(|p| p.band),
        Some("yellow".into())
    );
}

#[test]
fn provisional_accounts_never_act_nor_move_the_pulse() {
    let mut s = scored(20, Band::Red, Tier::TechTouch);
    s.provisional = true;
    assert_eq!(band_change(&HealthPulse::default(), &s), (None, None));
    let mut green = scored(90, Band::Green, Tier::TechTouch);
    green.provisional = true;
    assert_eq!(
        upsell_due(
            &HealthModel::default(),
            &acme(false),
            &green,
            &HealthPulse::default()
        ),
        None
    );
}

#[test]
fn an_older_day_scored_again_never_acts() {
    let s = scored(20, Band::Red, Tier::TechTouch);
    let p = pulse(Some("green"), Some(today() + Duration::days(1)), None);
    assert_eq!(band_change(&p, &s), (None, None));
}

#[test]
fn the_first_real_score_in_red_is_a_turn_to_red() {
    let s = scored(20, Band::Red, Tier::HighTouch);
    let out = plan(
        &HealthModel::default(),
        &HealthPulse::default(),
        &s,
        &acme(false),
    );
    assert_eq!(
        kinds(&out),
        [(NudgeKind::HealthAlert, Some(Stage::TurnsRed))]
    );
    assert_eq!(out[0].vars["previous_band"], serde_json::Value::Null);
}

#[test]
fn person_led_tiers_get_the_alert_only_and_nothing_on_yellow() {
    let m = HealthModel::default();
    let p = pulse(Some("green"), Some(date(2026, 10, 1)), None);
    for tier in [Tier::LowTouch, Tier::HighTouch] {
        let red = plan(&m, &p, &scored(30, Band::Red, tier), &acme(true));
        assert_eq!(
            kinds(&red),
            [(NudgeKind::HealthAlert, Some(Stage::TurnsRed))]
        );
        assert!(plan(&m, &p, &scored(60, Band::Yellow, tier), &acme(true)).is_empty());
    }
}

#[test]
fn a_playbook_edit_changes_what_happens() {
    let mut m = HealthModel::default();
    m.playbooks.high_touch = Playbook {
        turns_red: vec![Action::HealthAlert],
        turns_yellow: vec![Action::HealthAlert],
        admin_changed: vec![],
        renewal_upsell: vec![],
    };
    let p = pulse(Some("green"), Some(date(2026, 10, 1)), None);
    let out = plan(
        &m,
        &p,
        &scored(60, Band::Yellow, Tier::HighTouch),
        &acme(false),
    );
    assert_eq!(
        kinds(&out),
        [(NudgeKind::HealthAlert, Some(Stage::TurnsYellow))]
    );
}

fn day(d: NaiveDate, feature: &str, n: u64) -> DayUsage {
    DayUsage {
        day: d,
        features: [(feature.to_string(), n)].into(),
        ..DayUsage::default()
    }
}

#[test]
fn the_stopped_feature_is_the_habit_that_was_lost() {
    let m = HealthModel::default();
    let t = today();
    let usage = [
        day(t - Duration::days(40), "dashboard", 3),
        day(t - Duration::days(30), "report_builder", 9),
        day(t - Duration::days(20), "dashboard", 2),
        day(t - Duration::days(3), "integration", 1),
    ];
    assert_eq!(
        stopped_feature(&m, "standard", &usage, t).as_deref(),
        Some("report_builder"),
        "9 uses before, none in the last 14 days"
    );
    // Nothing lost: the first key feature never tried is the way in.
    let usage = [
        day(t - Duration::days(2), "report_builder", 1),
        day(t - Duration::days(2), "dashboard", 1),
    ];
    assert_eq!(
        stopped_feature(&m, "standard", &usage, t).as_deref(),
        Some("integration")
    );
}

fn heavy_green(uses: f64) -> HealthScore {
    let mut s = scored(85, Band::Green, Tier::LowTouch);
    s.drivers = vec![Driver {
        factor: Factor::FeatureDepth,
        family: Factor::FeatureDepth.family(),
        missing: false,
        triggered: false,
        value: Some(uses),
        versus: Some(40.0),
        subscore: Some(100.0),
        weight: 0.05,
        points: 5.0,
    }];
    s
}

#[test]
fn the_upsell_is_due_once_per_renewal_for_heavy_green_accounts_near_renewal() {
    let m = HealthModel::default();
    let mut p = acme(false);
    p.renewal_date = today() + Duration::days(45);
    let none = HealthPulse::default();
    assert_eq!(
        upsell_due(&m, &p, &heavy_green(80.0), &none),
        Some(p.renewal_date)
    );
    assert_eq!(
        upsell_due(&m, &p, &heavy_green(20.0), &none),
        None,
        "not heavy use"
    );
    let offered = HealthPulse {
        upsell_for: Some(p.renewal_date),
        ..HealthPulse::default()
    };
    assert_eq!(
        upsell_due(&m, &p, &heavy_green(80.0), &offered),
        None,
        "once per renewal"
    );
    let mut next_cycle = p.clone();
    next_cycle.renewal_date = today() + Duration::days(30);
    assert!(upsell_due(&m, &next_cycle, &heavy_green(80.0), &offered).is_some());
    p.renewal_date = today() + Duration::days(90);
    assert_eq!(
        upsell_due(&m, &p, &heavy_green(80.0), &none),
        None,
        "too early"
    );
    let mut yellow = heavy_green(80.0);
    yellow.band = Band::Yellow;
    p.renewal_date = today() + Duration::days(10);
    assert_eq!(upsell_due(&m, &p, &yellow, &none), None, "not green");
}

#[test]
fn the_upsell_goes_to_the_admin_and_executives_never_to_plain_users() {
    let m = HealthModel::default();
    let mut p = acme(false);
    p.plan = "Premium".into();
    let s = heavy_green(80.0);
    let facts = Facts {
        account_id: "acme",
        profile: &p,
        score: &s,
        change: None,
        latest_nps: None,
        usage: &[],
        now: at(),
    };
    let contacts = [
        Member {
            contact_id: "u1",
            role: Role::User,
        },
        Member {
            contact_id: "boss",
            role: Role::Executive,
        },
        Member {
            contact_id: "adm",
            role: Role::Admin,
        },
        Member {
            contact_id: "adm-exec",
            role: Role::Executive,
        },
    ];
    let out = upsell_nudges(&m, &facts, date(2027, 1, 15), Some("adm-exec"), &contacts);
    let to: Vec<(Option<&str>, &serde_json::Value)> = out
        .iter()
        .map(|n| (n.contact_id.as_deref(), &n.vars["role"]))
        .collect();
    assert_eq!(
        to,
        [(None, &json!("admin")), (Some("boss"), &json!("executive"))]
    );
    assert!(
        out.iter()
            .all(|n| n.kind == NudgeKind::UpsellOffer && n.vars["premium"] == true)
    );
    assert_eq!(
        out[1].nudge_id,
        "hp/renewal_upsell/2027-01-15/upsell_offer/boss"
    );
}

#[test]
fn a_new_admin_is_welcomed_and_the_csm_told_once_per_admin() {
    let m = HealthModel::default();
    let out = admin_nudges(&m, "acme", &acme(false), "c-new", at());
    assert_eq!(
        kinds(&out),
        [
            (NudgeKind::AdminWelcome, Some(Stage::AdminChanged)),
            (NudgeKind::HealthAlert, Some(Stage::AdminChanged))
        ]
    );
    assert_eq!(out[0].contact_id.as_deref(), Some("c-new"));
    assert_eq!(out[0].nudge_id, "hp/admin_changed/c-new/admin_welcome");
    assert_eq!(out[0].vars["first_step"], "invite_users");
    assert_eq!(
        admin_nudges(&m, "acme", &acme(false), "c-new", at() + Duration::days(3))
            .iter()
            .map(|n| &n.nudge_id)
            .collect::<Vec<_>>(),
        out.iter().map(|n| &n.nudge_id).collect::<Vec<_>>()
    );
}
