//! How much time is left, in the recipient's own terms (ja and en).
//!
//! Days are counted in the recipient's local calendar, not in 24 h blocks: on Saturday evening a
//! deadline on Monday morning is "2 days" away even when a DST change makes it 23 h or 26 h.
//! `lang` is "ja" for Japanese; anything else is English.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// Above this, a same-day deadline reads better as a clock time than as a countdown.
const COUNTDOWN_LIMIT: Duration = Duration::hours(3);

fn is_ja(lang: &str) -> bool {
    lang == "ja"
}

/// e.g. en: "3 days" / "today at 18:00" / "in 2 hours" / "in 45 minutes" / "tomorrow at 09:00"; ja: "あと3日" / "本日18:00まで" / "あと2時間" / "あと45分" / "明日09:00まで".
///
/// ">= 2 local calendar days ahead" → days; "tomorrow" → tomorrow at HH:MM; today and more than
/// 3 h away → today at HH:MM; otherwise whole hours (rounded down) or minutes (at least 1);
/// at or past the due time → en "now" / ja "まもなく".
pub fn time_left(due_at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz, lang: &str) -> String {
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
pub fn format_due(due_at: DateTime<Utc>, tz: Tz, lang: &str) -> String {
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
