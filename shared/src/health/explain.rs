//! Explaining scores to people: what changed since yesterday ([`diff`]) and where the points
//! of today's score went ([`gaps`]). Pure functions of stored [`HealthScore`]s.

use serde::{Deserialize, Serialize};

use super::model::{Band, Factor};
use super::score::{Driver, HealthScore};

/// How many reasons a [`ScoreChange`] keeps: enough for an alert line, few enough to read.
pub const MAX_REASONS: usize = 3;

/// A factor whose points moved by less than this is not a reason (it would print as 0.0).
pub const MIN_MOVE: f64 = 0.05;

/// One factor's part in a change of score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub factor: Factor,
    /// Signed change of the factor's points (current - previous), rounded to 0.01.
    pub points: f64,
    pub value_before: Option<f64>,
    pub value_now: Option<f64>,
    pub missing_before: bool,
    pub missing_now: bool,
}

/// Day-over-day change of one account's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreChange {
    pub before: u8,
    pub now: u8,
    /// `now - before`.
    pub delta: i16,
    pub band_before: Band,
    pub band_now: Band,
    /// The two scores came from different model versions: part of the change is the model's.
    pub model_changed: bool,
    /// At most [`MAX_REASONS`] factors that moved at least [`MIN_MOVE`] points, largest move
    /// first; equal moves in `Factor` order.
    pub reasons: Vec<Reason>,
}

impl ScoreChange {
    pub fn band_changed(&self) -> bool {
        self.band_before != self.band_now
    }

    /// The band got worse (green to yellow or red, yellow to red).
    pub fn worsened(&self) -> bool {
        self.band_now < self.band_before
    }
}

fn points_of(d: Option<&Driver>) -> f64 {
    d.map_or(0.0, |d| d.points)
}

/// What moved between two scores of the same account. A factor absent from one side (a model
/// version without it) counts as 0 points there. Deterministic: moves are compared at 0.01
/// points, ties broken by `Factor` order.
pub fn diff(previous: &HealthScore, current: &HealthScore) -> ScoreChange {
    let mut reasons: Vec<Reason> = Factor::ALL
        .iter()
        .filter_map(|&factor| {
            let before = previous.driver(factor);
            let now = current.driver(factor);
            if before.is_none() && now.is_none() {
                return None;
            }
            let moved = ((points_of(now) - points_of(before)) * 100.0).round() / 100.0;
            (moved.abs() >= MIN_MOVE).then(|| Reason {
                factor,
                points: moved,
                value_before: before.and_then(|d| d.value),
                value_now: now.and_then(|d| d.value),
                missing_before: before.is_some_and(|d| d.missing),
                missing_now: now.is_some_and(|d| d.missing),
            })
        })
        .collect();
    // Stable sort: equal moves keep `Factor` order.
    reasons.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
    reasons.truncate(MAX_REASONS);
    ScoreChange {
        before: previous.score,
        now: current.score,
        delta: i16::from(current.score) - i16::from(previous.score),
        band_before: previous.band,
        band_now: current.band,
        model_changed: previous.model_version != current.model_version,
        reasons,
    }
}

/// Where a score lost points: weighted factors short of full marks (`weight x 100 - points`)
/// and fired risk signals (their penalty), largest first, at most `n`; equal gaps in `Factor`
/// order. Answers "why is this account 52 and not 100?".
pub fn gaps(score: &HealthScore, n: usize) -> Vec<(Factor, f64)> {
    let mut out: Vec<(Factor, f64)> = score
        .drivers
        .iter()
        .map(|d| {
            let lost = if d.factor.is_risk() {
                -d.points
            } else {
                d.weight * 100.0 - d.points
            };
            (d.factor, (lost * 100.0).round() / 100.0)
        })
        .filter(|(_, lost)| *lost >= MIN_MOVE)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::health::model::HealthModel;
    use crate::health::score::fixtures::{healthy_tokyo, utc};

    /// Golden A's score with some drivers' points replaced.
    fn with_points(base: &HealthScore, changes: &[(Factor, f64)]) -> HealthScore {
        let mut s = base.clone();
        for (f, p) in changes {
            if let Some(d) = s.drivers.iter_mut().find(|d| d.factor == *f) {
                d.points = *p;
            }
        }
        s
    }

    #[test]
    fn an_admin_change_overnight_is_the_one_reason_for_a_ten_point_drop() {
        let model = HealthModel::default();
        let yesterday_account = healthy_tokyo();
        let mut today_account = yesterday_account.clone();
        today_account.admin_changed_at = Some(today_account.now - Duration::hours(3));
        let before = yesterday_account.score(&model);
        let now = today_account.score(&model);
        let change = diff(&before, &now);
        assert_eq!((change.before, change.now, change.delta), (82, 72, -10));
        assert_eq!(
            (change.band_before, change.band_now),
            (Band::Green, Band::Green)
        );
        assert!(!change.band_changed() && !change.worsened() && !change.model_changed);
        assert_eq!(
            change.reasons,
            [Reason {
                factor: Factor::AdminChanged,
                points: -10.0,
                value_before: None,
                value_now: Some(0.0),
                missing_before: false,
                missing_now: false,
            }]
        );
    }

    #[test]
    fn reasons_are_the_largest_moves_first_ties_in_factor_order_at_most_three() {
        let base = healthy_tokyo().score(&HealthModel::default());
        // Moves: login_days +2, nps -2 (a tie: login_days comes first in Factor order),
        // reports +0.5, tenure +0.3 (fourth: dropped), dashboard-size noise on renewals
        // +0.04 (below MIN_MOVE: never a reason).
        let now = with_points(
            &base,
            &[
                (Factor::Nps, 13.5 - 2.0),
                (Factor::LoginDays, 10.0 + 2.0),
                (Factor::Reports, 2.5 + 0.5),
                (Factor::Tenure, 6.0 + 0.3),
                (Factor::Renewals, 6.0 + 0.04),
            ],
        );
        let change = diff(&base, &now);
        let got: Vec<(Factor, f64)> = change
            .reasons
            .iter()
            .map(|r| (r.factor, r.points))
            .collect();
        assert_eq!(
            got,
            [
                (Factor::LoginDays, 2.0),
                (Factor::Nps, -2.0),
                (Factor::Reports, 0.5)
            ]
        );
        // The same inputs in the other direction give the mirrored reasons, same order.
        let back = diff(&now, &base);
        let got: Vec<(Factor, f64)> = back.reasons.iter().map(|r| (r.factor, r.points)).collect();
        assert_eq!(
            got,
            [
                (Factor::LoginDays, -2.0),
                (Factor::Nps, 2.0),
                (Factor::Reports, -0.5)
            ]
        );
    }

    #[test]
    fn no_change_has_no_reason_and_a_new_model_version_is_flagged() {
        let base = healthy_tokyo().score(&HealthModel::default());
        let same = diff(&base, &base);
        assert_eq!(same.delta, 0);
        assert!(same.reasons.is_empty());
        let mut other = base.clone();
        other.model_version = "acme-2".into();
        assert!(diff(&base, &other).model_changed);
    }

    #[test]
    fn a_band_drop_is_reported_as_worsened() {
        let model = HealthModel::default();
        let before = healthy_tokyo().score(&model);
        let mut a = healthy_tokyo();
        a.nps.insert(
            0,
            crate::health::score::NpsResponse {
                score: 2,
                at: utc(2026, 6, 14, 0, 0),
                comment: Some("too slow".into()),
            },
        );
        a.admin_changed_at = Some(a.now - Duration::days(2));
        let change = diff(&before, &a.score(&model));
        assert_eq!(change.band_before, Band::Green);
        assert!(change.band_now < Band::Green && change.worsened());
        // nps 9 -> 2: 0.3 x 0.5 x (90 - 20) = -10.5, the largest move; then the admin change
        // (-10) and the detractor (-10) tie, in Factor order; nps_trend (-2.1) is fourth.
        let got: Vec<(Factor, f64)> = change
            .reasons
            .iter()
            .map(|r| (r.factor, r.points))
            .collect();
        assert_eq!(
            got,
            [
                (Factor::Nps, -10.5),
                (Factor::AdminChanged, -10.0),
                (Factor::NpsDetractor, -10.0)
            ]
        );
    }

    #[test]
    fn gaps_rank_where_the_points_were_lost() {
        let s = crate::health::score::fixtures::at_risk_new_york().score(&HealthModel::default());
        // Golden B: login_decline -10 and nps_detractor -10 (tie, Factor order), then nps:
        // 0.15 x 100 - 6 = 9, then login_days 0.125 x 100 - 5 = 7.5.
        assert_eq!(
            gaps(&s, 4),
            [
                (Factor::LoginDecline, 10.0),
                (Factor::NpsDetractor, 10.0),
                (Factor::Nps, 9.0),
                (Factor::LoginDays, 7.5),
            ]
        );
    }
}
