//! Tests of the model: the default, its JSON, and every validation rule.

use serde_json::{Value, json};

use super::*;

/// The default model as JSON, with `value` put at `path`.
fn default_with(path: &[&str], value: Value) -> String {
    let mut doc = serde_json::to_value(HealthModel::default()).expect("serializes");
    let mut at = &mut doc;
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).expect("path exists");
    }
    at.as_object_mut()
        .expect("an object")
        .insert(path[path.len() - 1].to_string(), value);
    doc.to_string()
}

fn error_of(json: &str) -> String {
    HealthModel::parse(json)
        .expect_err("the model must be refused")
        .to_string()
}

#[test]
fn the_default_model_is_valid_and_versioned() {
    let m = HealthModel::default();
    assert_eq!(m.validate(), Ok(()));
    assert_eq!(m.version, "default-1");
}

#[test]
fn the_default_model_round_trips_through_json() {
    let json = serde_json::to_string(&HealthModel::default()).expect("serializes");
    assert_eq!(HealthModel::parse(&json), Ok(HealthModel::default()));
}

#[test]
fn the_json_in_the_module_documentation_is_the_default_model() {
    let src = include_str!("../model.rs");
    let start = src.find("//! ```json\n").expect("a json block") + "//! ```json\n".len();
    let end = start + src[start..].find("//! ```\n").expect("its end");
    let json: String = src[start..end]
        .lines()
        .map(|l| l.trim_start_matches("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(HealthModel::parse(&json), Ok(HealthModel::default()));
}

#[test]
fn a_weight_out_of_range_is_refused_with_its_path() {
    let json = default_with(&["weights", "usage"], json!(1.7));
    assert_eq!(
        error_of(&json),
        "weights.usage: must be between 0 and 1, got 1.7; weights: must sum to 1, got 2.2"
    );
    let json = default_with(&["factors", "satisfaction", "nps"], json!(-0.5));
    assert_eq!(
        error_of(&json),
        "factors.satisfaction.nps: must be between 0 and 1, got -0.5; \
         factors.satisfaction: must sum to 1, got 0"
    );
}

#[test]
fn family_and_factor_weights_must_sum_to_1() {
    let json = default_with(&["factors", "usage", "reports"], json!(0.0));
    assert_eq!(error_of(&json), "factors.usage: must sum to 1, got 0.9");
    let json = default_with(
        &["weights"],
        json!({"contract": 0.2, "usage": 0.5, "satisfaction": 0.2}),
    );
    assert_eq!(error_of(&json), "weights: must sum to 1, got 0.9");
    // Decimal noise is tolerated: 0.1 + 0.2 + 0.7 is not exactly 1 in binary.
    let json = default_with(
        &["weights"],
        json!({"contract": 0.1, "usage": 0.2, "satisfaction": 0.7}),
    );
    assert!(HealthModel::parse(&json).is_ok());
}

#[test]
fn band_cut_offs_must_be_ordered_and_within_0_to_100() {
    let json = default_with(&["bands"], json!({"red_below": 70, "green_from": 60}));
    assert_eq!(
        error_of(&json),
        "bands: red_below (70) must be below green_from (60)"
    );
    let json = default_with(&["bands"], json!({"red_below": 40, "green_from": 101}));
    assert_eq!(
        error_of(&json),
        "bands.green_from: must be between 0 and 100, got 101"
    );
    let json = default_with(&["bands"], json!({"red_below": 50, "green_from": 50}));
    assert_eq!(
        error_of(&json),
        "bands: red_below (50) must be below green_from (50)"
    );
}

#[test]
fn an_unknown_key_is_refused_and_named() {
    let mut doc = serde_json::to_value(HealthModel::default()).expect("serializes");
    doc.as_object_mut()
        .expect("object")
        .insert("wieghts".into(), json!({}));
    let e = error_of(&doc.to_string());
    assert!(
        e.starts_with("unknown field `wieghts`, expected one of `version`, `weights`"),
        "{e}"
    );
    // Nested too: a factor name that does not exist.
    let json = default_with(&["factors", "usage", "logins"], json!(0.1));
    let e = error_of(&json);
    assert!(
        e.starts_with("unknown field `logins`, expected one of `login_days`"),
        "{e}"
    );
    assert!(matches!(
        HealthModel::parse(&json),
        Err(ModelError::Json(_))
    ));
}

#[test]
fn a_missing_key_is_refused_and_named() {
    let mut doc = serde_json::to_value(HealthModel::default()).expect("serializes");
    doc.as_object_mut().expect("object").remove("bands");
    assert!(error_of(&doc.to_string()).starts_with("missing field `bands`"));
    assert_eq!(
        error_of(r#"{"version": 3}"#),
        "invalid type: integer `3`, expected a string at line 1 column 13"
    );
    assert!(error_of("{").starts_with("EOF while parsing"));
}

#[test]
fn thresholds_and_targets_must_be_positive() {
    let json = default_with(&["thresholds", "provisional_days"], json!(0));
    assert_eq!(
        error_of(&json),
        "thresholds.provisional_days: must be positive, got 0"
    );
    let json = default_with(&["thresholds", "pre_renewal_days"], json!(-30));
    assert_eq!(
        error_of(&json),
        "thresholds.pre_renewal_days: must be positive, got -30"
    );
    let json = default_with(&["targets", "reports"], json!(0));
    assert_eq!(error_of(&json), "targets.reports: must be positive, got 0");
    let json = default_with(&["thresholds", "login_decline_pct"], json!(0));
    assert_eq!(
        error_of(&json),
        "thresholds.login_decline_pct: must be above 0 and at most 100, got 0"
    );
    let json = default_with(&["thresholds", "detractor_max"], json!(11));
    assert_eq!(
        error_of(&json),
        "thresholds.detractor_max: must be between 0 and 10, got 11"
    );
    let json = default_with(&["penalties", "admin_changed"], json!(120));
    assert_eq!(
        error_of(&json),
        "penalties.admin_changed: must be between 0 and 100, got 120"
    );
}

#[test]
fn usage_windows_must_fit_in_the_history() {
    let json = default_with(&["thresholds", "usage_days"], json!(90));
    assert_eq!(
        error_of(&json),
        "thresholds.usage_days: must be between 1 and 60 (the usage history), got 90"
    );
    let json = default_with(&["thresholds", "trend_days"], json!(31));
    assert_eq!(
        error_of(&json),
        "thresholds.trend_days: must be between 1 and 30 (two windows must fit in the \
         usage history), got 31"
    );
    // Ten login days cannot be asked of a seven-day window.
    let json = default_with(&["thresholds", "trend_days"], json!(7));
    assert_eq!(
        error_of(&json),
        "targets.login_days: must not exceed thresholds.trend_days (7), got 10"
    );
}

#[test]
fn an_active_contacts_target_beyond_what_a_day_keeps_is_refused() {
    let json = default_with(&["targets", "active_contacts"], json!(101));
    assert_eq!(
        error_of(&json),
        "targets.active_contacts: must not exceed 100, got 101"
    );
    let json = default_with(&["targets", "active_contacts"], json!(100));
    assert!(HealthModel::parse(&json).is_ok());
}

#[test]
fn plan_lists_and_plan_names_are_checked() {
    let json = default_with(&["key_features", "default"], json!([]));
    assert_eq!(error_of(&json), "key_features.default: must not be empty");
    let json = default_with(
        &["onboarding_steps", "plans"],
        json!({"premium": ["invite_users", "invite_users"]}),
    );
    assert_eq!(
        error_of(&json),
        "onboarding_steps.plans.premium[1]: `invite_users` is listed twice"
    );
    let json = default_with(&["plan_scores"], json!({"Premium": 80, "premium": 90}));
    assert_eq!(
        error_of(&json),
        "plan_scores: plans `Premium` and `premium` are the same plan (names ignore case)"
    );
    let json = default_with(&["plan_scores"], json!({"premium": 120}));
    assert_eq!(
        error_of(&json),
        "plan_scores.premium: must be between 0 and 100, got 120"
    );
}

#[test]
fn tier_rules_must_be_ordered_and_accept_cs_spellings() {
    let json = default_with(
        &["tiers"],
        json!({"high_touch_from_arr": 50000, "low_touch_from_arr": 60000, "plans": {}}),
    );
    assert_eq!(
        error_of(&json),
        "tiers: low_touch_from_arr (60000) must not be above high_touch_from_arr (50000)"
    );
    let json = default_with(
        &["tiers"],
        json!({"high_touch_from_arr": 50000, "low_touch_from_arr": 10000,
               "plans": {"enterprise": "high-touch"}}),
    );
    let m = HealthModel::parse(&json).expect("valid");
    assert_eq!(m.tiers.plans.get("enterprise"), Some(&Tier::HighTouch));
}

#[test]
fn every_problem_is_reported_at_once_in_document_order() {
    let mut m = HealthModel {
        version: " ".into(),
        ..HealthModel::default()
    };
    m.bands.red_below = 80.0;
    m.thresholds.onboarding_days = 0;
    let Err(ModelError::Invalid(problems)) = m.validate() else {
        panic!("invalid");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["version", "bands", "thresholds.onboarding_days"]);
}

#[test]
fn lists_fall_back_to_the_default_for_unlisted_plans() {
    let mut m = HealthModel::default();
    m.key_features
        .plans
        .insert("premium".into(), vec!["sso".into()]);
    assert_eq!(m.key_features("Premium"), ["sso".to_string()]);
    assert_eq!(m.key_features("standard").len(), 4);
    assert_eq!(
        m.onboarding_steps("anything"),
        ["invite_users", "import_data", "first_report"]
    );
    assert_eq!(m.plan_score("FREE"), Some(20.0));
    assert_eq!(m.plan_score("growth"), None);
}

#[test]
fn factor_and_family_names_round_trip() {
    for f in Factor::ALL {
        assert_eq!(f.as_str().parse::<Factor>(), Ok(*f));
        assert_eq!(
            serde_json::to_value(f).expect("serializes"),
            json!(f.as_str())
        );
    }
    assert_eq!(Factor::DaysToRenewal.as_str(), "days_to_renewal");
    assert_eq!(Factor::NpsDetractor.family(), Family::Risk);
    assert_eq!(Family::ALL.len(), 4);
    assert!(Band::Red < Band::Yellow && Band::Yellow < Band::Green);
    assert_eq!(Phase::PreRenewal.as_str(), "pre_renewal");
}

#[test]
fn a_playbook_action_its_trigger_cannot_take_is_refused_with_its_path() {
    let json = default_with(
        &["playbooks", "high_touch", "turns_red"],
        json!(["health_alert", "admin_welcome", "health_alert"]),
    );
    assert_eq!(
        error_of(&json),
        "playbooks.high_touch.turns_red[1]: turns_red cannot take the action admin_welcome; \
         playbooks.high_touch.turns_red[2]: health_alert is listed twice"
    );
    let json = default_with(&["playbooks", "upsell", "within_days"], json!(0));
    assert_eq!(
        error_of(&json),
        "playbooks.upsell.within_days: must be between 1 and 366 (a renewal cycle), got 0"
    );
    let json = default_with(
        &["playbooks", "low_touch", "turns_red"],
        json!(["call_them"]),
    );
    assert!(
        error_of(&json).contains("unknown variant `call_them`"),
        "{}",
        error_of(&json)
    );
}
