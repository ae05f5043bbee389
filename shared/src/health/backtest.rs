//! How well the red band predicts churn, from a history of daily bands and churn labels.
//!
//! Definitions (one horizon `h`, default [`DEFAULT_HORIZON_DAYS`]):
//! - a **churned** account is *flagged* when it was red on some day in `[churn - h, churn)`:
//!   the red came early enough to act and late enough to be about this churn;
//! - an account that did not churn is *flagged* when it was red on any day of the history
//!   (a false alarm: the CSM's time went there);
//! - **precision** = churned and flagged / flagged; **recall** = churned and flagged / churned;
//! - **lead time** of a caught churn = days from its first red day in the window to the churn
//!   date; the report gives the median (the mean of the two middle values for an even count).
//!
//! A churned account with no history in the window is a miss. Ratios with a zero denominator
//! are `None`, not 0: "no churn to catch" is not "caught none".

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::model::Band;

/// Three months: roughly one quarter of warning before a churn, the window in which a CSM can
/// still change the outcome.
pub const DEFAULT_HORIZON_DAYS: i64 = 90;

/// One account's band on one day (from stored `HealthScore`s: `day` and `band`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyBand {
    pub account: String,
    pub day: NaiveDate,
    pub band: Band,
}

/// An account's churn date (its `churned` event's local day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Churn {
    pub account: String,
    pub day: NaiveDate,
}

/// The outcome of [`backtest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    pub horizon_days: i64,
    /// Accounts in the history or the churn labels.
    pub accounts: usize,
    pub churned: usize,
    pub flagged: usize,
    /// Churned and flagged.
    pub caught: usize,
    /// Flagged but did not churn.
    pub false_alarms: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Lead time of each caught churn, in account order.
    pub lead_days: Vec<i64>,
    pub median_lead_days: Option<f64>,
}

fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2] as f64),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0),
    }
}

/// Precision, recall and lead time of the red band (module documentation). If an account has
/// several churn labels, the earliest counts.
pub fn backtest(history: &[DailyBand], churns: &[Churn], horizon_days: i64) -> BacktestReport {
    let mut churn_day: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for c in churns {
        churn_day
            .entry(c.account.as_str())
            .and_modify(|d| *d = (*d).min(c.day))
            .or_insert(c.day);
    }
    // Per account: the first red day that counts (in the window for churned accounts, any
    // for the others).
    let mut first_red: BTreeMap<&str, Option<NaiveDate>> = BTreeMap::new();
    for h in history {
        let slot = first_red.entry(h.account.as_str()).or_insert(None);
        if h.band != Band::Red {
            continue;
        }
        let counts = match churn_day.get(h.account.as_str()) {
            Some(&churn) => {
                let before = (churn - h.day).num_days();
                (1..=horizon_days).contains(&before)
            }
            None => true,
        };
        if counts && slot.is_none_or(|d| h.day < d) {
            *slot = Some(h.day);
        }
    }
    for account in churn_day.keys() {
        first_red.entry(account).or_insert(None);
    }

    let (mut flagged, mut caught, mut false_alarms) = (0, 0, 0);
    let mut lead_days = Vec::new();
    for (account, red) in &first_red {
        let Some(red) = red else { continue };
        flagged += 1;
        match churn_day.get(account) {
            Some(&churn) => {
                caught += 1;
                lead_days.push((churn - *red).num_days());
            }
            None => false_alarms += 1,
        }
    }
    let mut sorted = lead_days.clone();
    sorted.sort_unstable();
    let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    BacktestReport {
        horizon_days,
        accounts: first_red.len(),
        churned: churn_day.len(),
        flagged,
        caught,
        false_alarms,
        precision: ratio(caught, flagged),
        recall: ratio(caught, churn_day.len()),
        median_lead_days: median(&sorted),
        lead_days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date")
    }

    fn band(account: &str, day: NaiveDate, band: Band) -> DailyBand {
        DailyBand {
            account: account.into(),
            day,
            band,
        }
    }

    fn churn(account: &str, day: NaiveDate) -> Churn {
        Churn {
            account: account.into(),
            day,
        }
    }

    #[test]
    fn precision_recall_and_lead_time_of_a_labelled_history() {
        use Band::{Green, Red, Yellow};
        let history = vec![
            // a churns June 1: red April 1 (61 days before) and May 1: caught, lead 61.
            band("a", d(2026, 3, 1), Green),
            band("a", d(2026, 4, 1), Red),
            band("a", d(2026, 5, 1), Red),
            // b churns June 1: red only in December (182 days before, outside 90) and on the
            // churn day itself (too late): missed.
            band("b", d(2025, 12, 1), Red),
            band("b", d(2026, 5, 1), Yellow),
            band("b", d(2026, 6, 1), Red),
            // c never churns but was red once: a false alarm.
            band("c", d(2026, 3, 1), Red),
            band("c", d(2026, 4, 1), Green),
            // d never churns, never red.
            band("d", d(2026, 4, 1), Green),
            // e churns May 20: red on Feb 19, exactly 90 days before (counts), and May 10:
            // caught, lead 90 (from the first red in the window).
            band("e", d(2026, 5, 10), Red),
            band("e", d(2026, 2, 19), Red),
            band("e", d(2026, 2, 18), Red),
        ];
        // f churns with no history at all: missed.
        let churns = vec![
            churn("a", d(2026, 6, 1)),
            churn("b", d(2026, 6, 1)),
            churn("e", d(2026, 5, 20)),
            churn("f", d(2026, 4, 1)),
        ];
        let r = backtest(&history, &churns, DEFAULT_HORIZON_DAYS);
        // Flagged: a, c, e. Caught: a, e. Churned: a, b, e, f.
        // precision = 2 / 3, recall = 2 / 4, leads [61, 90] -> median 75.5.
        assert_eq!(r.accounts, 6);
        assert_eq!(r.churned, 4);
        assert_eq!(r.flagged, 3);
        assert_eq!(r.caught, 2);
        assert_eq!(r.false_alarms, 1);
        assert_eq!(r.precision, Some(2.0 / 3.0));
        assert_eq!(r.recall, Some(0.5));
        assert_eq!(r.lead_days, [61, 90]);
        assert_eq!(r.median_lead_days, Some(75.5));

        // A 60-day horizon loses a's April 1 red (61 days) and e's February ones: both are
        // still caught, later: a by May 1 (lead 31), e by May 10 (lead 10); median 20.5.
        let r = backtest(&history, &churns, 60);
        assert_eq!((r.caught, r.flagged), (2, 3));
        assert_eq!(r.lead_days, [31, 10]);
        assert_eq!(r.median_lead_days, Some(20.5));
    }

    #[test]
    fn nothing_to_measure_gives_no_ratio_rather_than_zero() {
        let r = backtest(&[], &[], DEFAULT_HORIZON_DAYS);
        assert_eq!(
            (r.precision, r.recall, r.median_lead_days),
            (None, None, None)
        );
        let r = backtest(
            &[band("a", d(2026, 1, 1), Band::Green)],
            &[],
            DEFAULT_HORIZON_DAYS,
        );
        assert_eq!((r.accounts, r.precision, r.recall), (1, None, None));
    }

    #[test]
    fn the_earliest_churn_label_of_an_account_counts() {
        let history = [band("a", d(2026, 1, 10), Band::Red)];
        let churns = [churn("a", d(2026, 6, 1)), churn("a", d(2026, 2, 1))];
        let r = backtest(&history, &churns, DEFAULT_HORIZON_DAYS);
        assert_eq!((r.churned, r.caught, r.lead_days.clone()), (1, 1, vec![22]));
    }
}
