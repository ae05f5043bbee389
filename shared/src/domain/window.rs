//! Send windows: when a customer may receive a non-urgent message. A daily job that plans a
//! milestone or a risk email at 03:00 must not wake anybody: such nudges wait for the
//! recipient's local business hours (default Monday-Friday, 09:00-18:00).

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

/// Local business hours: `[start_hour, end_hour)` on the enabled weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    /// Monday first.
    days: [bool; 7],
    start_hour: u32,
    end_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected business hours like \"mon-fri 09-18\" (days, then start-end hours), got {0:?}")]
pub struct BusinessHoursError(String);

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            days: [true, true, true, true, true, false, false],
            start_hour: 9,
            end_hour: 18,
        }
    }
}

impl BusinessHours {
    /// `start_hour < end_hour <= 24` and at least one day, else `None`.
    pub fn new(days: [bool; 7], start_hour: u32, end_hour: u32) -> Option<Self> {
        (start_hour < end_hour && end_hour <= 24 && days.iter().any(|d| *d)).then_some(
            BusinessHours {
                days,
                start_hour,
                end_hour,
            },
        )
    }

    fn open_on(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// Whether `at` falls inside the window in `tz`.
    pub fn contains(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz);
        self.open_on(local.weekday())
            && local.hour() >= self.start_hour
            && local.hour() < self.end_hour
    }

    /// `at` itself when it is inside the window, else the next time the window opens in `tz`.
    pub fn next_open(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.contains(at, tz) {
            return at;
        }
        let today = at.with_timezone(&tz).date_naive();
        // At most a week ahead: some day of the week is open (checked by `new`).
        for offset in 0..8 {
            let Some(day) = today.checked_add_signed(Duration::days(offset)) else {
                break;
            };
            if !self.open_on(day.weekday()) {
                continue;
            }
            if let Some(open) = local_time(day, self.start_hour, tz)
                && open > at
            {
                return open;
            }
        }
        at
    }
}

/// `hour`:00 on `day` in `tz`; in a spring-forward gap, the first instant after it.
fn local_time(day: NaiveDate, hour: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = day.and_hms_opt(hour.min(23), 0, 0)?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(naive + Duration::hours(h)))
                    .earliest()
            })
            .map(|t| {
                let t = t.with_timezone(&Utc);
                t - Duration::minutes(i64::from(t.with_timezone(&tz).minute()))
            }),
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl FromStr for BusinessHours {
    type Err = BusinessHoursError;

    /// `mon-fri 09-18`, `mon,wed,fri 10-16`, `mon-sun 0-24`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BusinessHoursError(s.to_string());
        let (days_s, hours_s) = s.trim().split_once(' ').ok_or_else(err)?;
        let day = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim()));
        let mut days = [false; 7];
        for part in days_s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a).ok_or_else(err)?, day(b).ok_or_else(err)?);
                    if a > b {
                        return Err(err());
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[day(part).ok_or_else(err)?] = true,
            }
        }
        let (a, b) = hours_s.trim().split_once('-').ok_or_else(err)?;
        let start: u32 = a.trim().parse().map_err(|_| err())?;
        let end: u32 = b.trim().parse().map_err(|_| err())?;
        BusinessHours::new(days, start, end).ok_or_else(err)
    }
}

impl fmt::Display for BusinessHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| *d)
            .collect();
        write!(
            f,
            "{} {:02}-{:02}",
            days.join(","),
            self.start_hour,
            self.end_hour
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Asia::Tokyo};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_3am_tokyo_plan_waits_for_9am_tokyo() {
        let w = BusinessHours::default();
        // Wednesday 2026-12-02 03:00 JST.
        let at = utc("2026-12-02T03:00:00+09:00");
        assert_eq!(w.next_open(at, Tokyo), utc("2026-12-02T09:00:00+09:00"));
    }

    #[test]
    fn inside_the_window_sends_at_once() {
        let w = BusinessHours::default();
        let at = utc("2026-12-02T17:59:00+09:00");
        assert!(w.contains(at, Tokyo));
        assert_eq!(w.next_open(at, Tokyo), at);
    }

    #[test]
    fn friday_evening_waits_for_monday_morning() {
        let w = BusinessHours::default();
        let at = utc("2026-12-04T18:00:00-05:00"); // Friday 18:00 New York
        assert!(!w.contains(at, New_York));
        assert_eq!(w.next_open(at, New_York), utc("2026-12-07T09:00:00-05:00"));
    }

    #[test]
    fn the_window_follows_dst_in_new_york() {
        let w = BusinessHours::default();
        // Saturday 2026-03-07; DST starts Sunday 03-08; Monday 09:00 is EDT (-04:00).
        let at = utc("2026-03-07T12:00:00-05:00");
        assert_eq!(w.next_open(at, New_York), utc("2026-03-09T09:00:00-04:00"));
        // Saturday 2026-10-31; DST ends Sunday 11-01; Monday 09:00 is EST (-05:00).
        let at = utc("2026-10-31T12:00:00-04:00");
        assert_eq!(w.next_open(at, New_York), utc("2026-11-02T09:00:00-05:00"));
    }

    #[test]
    fn same_instant_is_inside_for_one_zone_and_outside_for_another() {
        let w = BusinessHours::default();
        let at = utc("2026-12-02T01:00:00Z"); // 10:00 Tokyo, 20:00 New York (Tuesday)
        assert!(w.contains(at, Tokyo));
        assert!(!w.contains(at, New_York));
        assert_eq!(w.next_open(at, New_York), utc("2026-12-02T09:00:00-05:00"));
    }

    #[test]
    fn parses_and_prints_the_configuration_form() {
        let w: BusinessHours = "mon-fri 09-18".parse().unwrap();
        assert_eq!(w, BusinessHours::default());
        assert_eq!(w.to_string(), "mon,tue,wed,thu,fri 09-18");
        let w: BusinessHours = "sat,sun 10-16".parse().unwrap();
        assert!(!w.contains(utc("2026-12-02T12:00:00+09:00"), Tokyo));
        for bad in [
            "",
            "mon-fri",
            "fri-mon 9-18",
            "mon-fri 18-9",
            "mon-fri 9-25",
            "xyz 9-18",
        ] {
            assert!(bad.parse::<BusinessHours>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_always_open_window_never_defers() {
        let w: BusinessHours = "mon-sun 0-24".parse().unwrap();
        let at = utc("2026-12-06T03:00:00+09:00");
        assert_eq!(w.next_open(at, Tokyo), at);
    }
}
