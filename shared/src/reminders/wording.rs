//! How much time is left, in the recipient's own terms (ja and en).
//!
//! Days are counted in the recipient's local calendar, not in 24 h blocks: on Saturday evening a
//! deadline on Monday morning is "2 days" away even when a DST change makes it 23 h or 26 h.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::Locale;

/// Above this, a same-day deadline reads better as a clock time than as a countdown.
const COUNTDOWN_LIMIT: Duration = Duration::hours(3);

fn is_ja(lang: Locale) -> bool {
    lang == Locale::Ja
}

/// e.g. en: "3 days" / "today at 18:00" / "in 2 hours" / "in 45 minutes" / "tomorrow at 09:00"; ja: "あと3日" / "本日18:00まで" / "あと2時間" / "あと45分" / "明日09:00まで".
///
/// ">= 2 local calendar days ahead" → days; "tomorrow" → tomorrow at HH:MM; today and more than
/// 3 h away → today at HH:MM; otherwise whole hours (rounded down) or minutes (at least 1);
/// at or past the due time → en "now" / ja "まもなく".
pub fn time_left(due_at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz, lang: Locale) -> String {
    let ja = is_ja(lang);
    let remaining = due_at.signed_duration_since(now);
    if remaining <= Duration::zero() {
        return if ja { "まもなく" } else { "now" }.to_string();
    }

    let due_local = due_at.with_timezone(&tz);
    let days = due_local
        .date_naive()
        .signed_duration_since(now.with_timezone(&tz).date_naive())
        .num_days();
    let clock = format!("{:02}:{:02}", due_local.hour(), due_local.minute());

    match days {
        d if d >= 2 => {
            if ja {
                format!("あと{d}日")
            } else {
                format!("{d} days")
            }
        }
        1 => {
            if ja {
                format!("明日{clock}まで")
            } else {
                format!("tomorrow at {clock}")
            }
        }
        0 if remaining > COUNTDOWN_LIMIT => {
            if ja {
                format!("本日{clock}まで")
            } else {
                format!("today at {clock}")
            }
        }
        // Today within 3 h (or, around an unusual fall-back at midnight, a local date that went
        // backwards): count down.
        _ => countdown(remaining, ja),
    }
}

fn countdown(remaining: Duration, ja: bool) -> String {
    let hours = remaining.num_hours();
    if hours >= 1 {
        return match (ja, hours) {
            (true, h) => format!("あと{h}時間"),
            (false, 1) => "in 1 hour".to_string(),
            (false, h) => format!("in {h} hours"),
        };
    }
    // Never say "0 minutes" while the deadline is still ahead.
    let minutes = remaining.num_minutes().max(1);
    match (ja, minutes) {
        (true, m) => format!("あと{m}分"),
        (false, 1) => "in 1 minute".to_string(),
        (false, m) => format!("in {m} minutes"),
    }
}

/// Due time formatted for the body in local time: en "Fri 20 Nov 2026, 18:00 (America/New_York)", ja "2026年11月20日(金) 18:00 (Asia/Tokyo)".
///
/// The zone name is spelled out so a recipient travelling or working across zones is never
/// left guessing which 18:00 is meant.
pub fn format_due(due_at: DateTime<Utc>, tz: Tz, lang: Locale) -> String {
    let local = due_at.with_timezone(&tz);
    let clock = format!("{:02}:{:02}", local.hour(), local.minute());
    if is_ja(lang) {
        format!(
            "{}年{}月{}日({}) {} ({})",
            local.year(),
            local.month(),
            local.day(),
            weekday_ja(local.weekday()),
            clock,
            tz.name()
        )
    } else {
        // chrono's %a/%b are English regardless of locale, which is exactly what en wants.
        format!(
            "{}, {} ({})",
            local.format("%a %-d %b %Y"),
            clock,
            tz.name()
        )
    }
}

fn weekday_ja(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "月",
        Weekday::Tue => "火",
        Weekday::Wed => "水",
        Weekday::Thu => "木",
        Weekday::Fri => "金",
        Weekday::Sat => "土",
        Weekday::Sun => "日",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::{America::New_York, Asia::Tokyo};

    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("test times are unambiguous")
            .with_timezone(&Utc)
    }

    /// (en, ja) for one moment.
    fn both(due: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> (String, String) {
        (
            time_left(due, now, tz, Locale::En),
            time_left(due, now, tz, Locale::Ja),
        )
    }

    fn pair(en: &str, ja: &str) -> (String, String) {
        (en.to_string(), ja.to_string())
    }

    #[test]
    fn time_left_in_tokyo_in_both_languages() {
        let due = local(Tokyo, 2026, 11, 20, 18, 0);
        let at = |d, h, m| local(Tokyo, 2026, 11, d, h, m);
        assert_eq!(both(due, at(17, 18, 0), Tokyo), pair("3 days", "あと3日"));
        assert_eq!(both(due, at(18, 23, 59), Tokyo), pair("2 days", "あと2日"));
        assert_eq!(
            both(due, at(19, 0, 1), Tokyo),
            pair("tomorrow at 18:00", "明日18:00まで")
        );
        assert_eq!(
            both(due, at(20, 9, 0), Tokyo),
            pair("today at 18:00", "本日18:00まで")
        );
        // Exactly 3 h is no longer "more than 3 h": count down.
        assert_eq!(
            both(due, at(20, 15, 0), Tokyo),
            pair("in 3 hours", "あと3時間")
        );
        assert_eq!(
            both(due, at(20, 15, 30), Tokyo),
            pair("in 2 hours", "あと2時間")
        );
        assert_eq!(
            both(due, at(20, 16, 59), Tokyo),
            pair("in 1 hour", "あと1時間")
        );
        assert_eq!(
            both(due, at(20, 17, 15), Tokyo),
            pair("in 45 minutes", "あと45分")
        );
        assert_eq!(
            both(due, due - Duration::seconds(30), Tokyo),
            pair("in 1 minute", "あと1分")
        );
        assert_eq!(both(due, due, Tokyo), pair("now", "まもなく"));
        assert_eq!(both(due, at(21, 0, 0), Tokyo), pair("now", "まもなく"));
    }

    #[test]
    fn time_left_in_new_york_in_both_languages() {
        let due = local(New_York, 2026, 6, 12, 9, 0);
        let at = |d, h, m| local(New_York, 2026, 6, d, h, m);
        assert_eq!(both(due, at(9, 9, 0), New_York), pair("3 days", "あと3日"));
        assert_eq!(
            both(due, at(11, 21, 0), New_York),
            pair("tomorrow at 09:00", "明日09:00まで")
        );
        assert_eq!(
            both(due, at(12, 8, 15), New_York),
            pair("in 45 minutes", "あと45分")
        );
    }

    #[test]
    fn time_left_counts_local_calendar_days_across_dst_start() {
        // 2026-03-08: New York skips 02:00-03:00. 23.5 h before a 01:00 due time on 03-09 is
        // still "tomorrow" in local dates; 22.75 h before 23:00 the same day is "today".
        let now = local(New_York, 2026, 3, 8, 0, 30);
        let due = local(New_York, 2026, 3, 9, 1, 0);
        assert_eq!(due - now, Duration::minutes(23 * 60 + 30));
        assert_eq!(
            both(due, now, New_York),
            pair("tomorrow at 01:00", "明日01:00まで")
        );
        let due = local(New_York, 2026, 3, 8, 23, 0);
        assert_eq!(
            both(due, local(New_York, 2026, 3, 8, 0, 15), New_York),
            pair("today at 23:00", "本日23:00まで")
        );
    }

    #[test]
    fn time_left_counts_local_calendar_days_across_dst_end() {
        // 2026-11-01: New York repeats 01:00-02:00. Sat 23:30 → Mon 00:30 is 26 h but two
        // calendar days.
        let now = local(New_York, 2026, 10, 31, 23, 30);
        let due = local(New_York, 2026, 11, 2, 0, 30);
        assert_eq!(due - now, Duration::hours(26));
        assert_eq!(both(due, now, New_York), pair("2 days", "あと2日"));
        // The countdown is real elapsed time: 00:30 EDT → 02:30 EST is 3 h, not 2.
        let now = local(New_York, 2026, 11, 1, 0, 30);
        let due = local(New_York, 2026, 11, 1, 2, 30);
        assert_eq!(both(due, now, New_York), pair("in 3 hours", "あと3時間"));
    }

    #[test]
    fn format_due_in_both_languages_and_zones() {
        let ny = local(New_York, 2026, 11, 20, 18, 0);
        assert_eq!(
            format_due(ny, New_York, Locale::En),
            "Fri 20 Nov 2026, 18:00 (America/New_York)"
        );
        assert_eq!(
            format_due(ny, New_York, Locale::Ja),
            "2026年11月20日(金) 18:00 (America/New_York)"
        );
        let tokyo = local(Tokyo, 2026, 11, 20, 18, 0);
        assert_eq!(
            format_due(tokyo, Tokyo, Locale::Ja),
            "2026年11月20日(金) 18:00 (Asia/Tokyo)"
        );
        assert_eq!(
            format_due(tokyo, Tokyo, Locale::En),
            "Fri 20 Nov 2026, 18:00 (Asia/Tokyo)"
        );
        // The same instant reads as a different local day in each zone; no zero padding.
        let instant = local(Tokyo, 2026, 1, 5, 9, 5);
        assert_eq!(
            format_due(instant, Tokyo, Locale::En),
            "Mon 5 Jan 2026, 09:05 (Asia/Tokyo)"
        );
        assert_eq!(
            format_due(instant, New_York, Locale::Ja),
            "2026年1月4日(日) 19:05 (America/New_York)"
        );
    }
}
