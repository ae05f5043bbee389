//! EventBridge cron expressions: parsed once, matched against "now", and enumerated by
//! `nudge simulate` so scheduled functions fire on their production cadence.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use thiserror::Error;

/// An EventBridge cron expression: `cron(min hour day-of-month month day-of-week year)`, UTC.
/// Supports `*`, `?`, numbers, ranges `a-b`, steps `a/n` and `*/n`, lists and day names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Option<Vec<bool>>,
    months: Vec<bool>,
    weekdays: Option<Vec<bool>>,
    years: Option<Vec<bool>>,
}

#[derive(Debug, Error, PartialEq)]
#[error("invalid cron expression {expr:?}: {message}")]
pub struct CronError {
    pub expr: String,
    pub message: String,
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let err = |m: &str| CronError {
            expr: expr.to_string(),
            message: m.to_string(),
        };
        let inner = expr
            .trim()
            .strip_prefix("cron(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| err("expected cron(...)"))?;
        let f: Vec<&str> = inner.split_whitespace().collect();
        if f.len() != 6 {
            return Err(err(
                "expected 6 fields: minutes hours day-of-month month day-of-week year",
            ));
        }
        let field =
            |s: &str, lo: u32, hi: u32, names: &[&str]| -> Result<Option<Vec<bool>>, CronError> {
                if s == "?" {
                    return Ok(None);
                }
                let mut set = vec![false; hi as usize + 1];
                for part in s.split(',') {
                    let (range, step) = match part.split_once('/') {
                        Some((r, st)) => (r, st.parse::<u32>().map_err(|_| err("bad step"))?),
                        None => (part, 1),
                    };
                    if step == 0 {
                        return Err(err("step must be positive"));
                    }
                    let value = |v: &str| -> Result<u32, CronError> {
                        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                            return Ok(lo + i as u32);
                        }
                        let n: u32 = v.parse().map_err(|_| err(&format!("bad value {v:?}")))?;
                        if n < lo || n > hi {
                            return Err(err(&format!("value {n} out of range {lo}-{hi}")));
                        }
                        Ok(n)
                    };
                    let (a, b) = if range == "*" {
                        (lo, hi)
                    } else if let Some((a, b)) = range.split_once('-') {
                        (value(a)?, value(b)?)
                    } else {
                        let a = value(range)?;
                        (a, if part.contains('/') { hi } else { a })
                    };
                    let mut v = a;
                    while v <= b {
                        set[v as usize] = true;
                        v += step;
                    }
                }
                Ok(Some(set))
            };
        let req = |v: Option<Vec<bool>>| v.ok_or_else(|| err("`?` is only allowed in day fields"));
        let years = field(f[5], 1970, 2199, &[])?;
        let days = field(f[2], 1, 31, &[])?;
        let weekdays = field(
            f[4],
            1,
            7,
            &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        )?;
        if days.is_some() == weekdays.is_some() {
            return Err(err(
                "exactly one of day-of-month and day-of-week must be `?`",
            ));
        }
        Ok(Cron {
            minutes: req(field(f[0], 0, 59, &[])?)?,
            hours: req(field(f[1], 0, 23, &[])?)?,
            days,
            months: req(field(
                f[3],
                1,
                12,
                &[
                    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                    "DEC",
                ],
            )?)?,
            weekdays,
            years,
        })
    }

    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let at = |v: &Vec<bool>, i: u32| v.get(i as usize).copied().unwrap_or(false);
        at(&self.minutes, t.minute())
            && at(&self.hours, t.hour())
            && at(&self.months, t.month())
            && self.days.as_ref().is_none_or(|d| at(d, t.day()))
            && self
                .weekdays
                .as_ref()
                .is_none_or(|w| at(w, t.weekday().number_from_sunday()))
            && self
                .years
                .as_ref()
                .is_none_or(|y| u32::try_from(t.year()).is_ok_and(|yr| at(y, yr)))
    }

    /// Firing times in `[from, to]`, on whole minutes.
    pub fn fire_times(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut t = from
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(from);
        if t < from {
            t += Duration::minutes(1);
        }
        let mut out = Vec::new();
        while t <= to {
            if self.matches(t) {
                out.push(t);
            }
            t += Duration::minutes(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn every_fifteen_minutes_fires_four_times_an_hour() {
        let c = Cron::parse("cron(0/15 * * * ? *)").unwrap();
        assert_eq!(
            c.fire_times(t(9, 0), t(9, 59)),
            vec![t(9, 0), t(9, 15), t(9, 30), t(9, 45)]
        );
    }

    #[test]
    fn hourly_and_daily_expressions() {
        let hourly = Cron::parse("cron(5 * * * ? *)").unwrap();
        assert_eq!(hourly.fire_times(t(0, 0), t(2, 59)).len(), 3);
        let daily = Cron::parse("cron(0 21 * * ? *)").unwrap();
        assert_eq!(daily.fire_times(t(0, 0), t(23, 59)), vec![t(21, 0)]);
        let weekly = Cron::parse("cron(0 0 ? * MON *)").unwrap();
        // 2026-11-23 is a Monday.
        assert!(weekly.matches(t(0, 0)));
        assert!(!weekly.matches(t(0, 0) + Duration::days(1)));
    }

    #[test]
    fn malformed_expressions_are_rejected_with_a_reason() {
        for bad in [
            "rate(5 minutes)",
            "cron(* * * * *)",
            "cron(61 * * * ? *)",
            "cron(0 * * * * *)",
            "cron(0/0 * * * ? *)",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
