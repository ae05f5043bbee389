//! On-call operations on the table: `nudge log` (the delivery log as stored), `nudge pause` and
//! `nudge resume` (the pause a customer reply sets, by hand), `nudge erase-contact` (one
//! person's data, on request). Each returns its output as text; the CLI prints it, the
//! integration tests read it.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use nudge_shared::domain::log::rfc3339_seconds;
use nudge_shared::domain::{DeliveryLogEntry, NudgeKind};
use nudge_shared::store::{AccountChange, AccountRecord, Applied, ContactErasure, Store};
use serde_json::json;

/// What `nudge log` shows.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// One account (a key range with `since`); `None`: every account (a table scan).
    pub account: Option<String>,
    pub kind: Option<NudgeKind>,
    /// Entries at or after this time (whole seconds, as the log keeps them).
    pub since: Option<DateTime<Utc>>,
    /// The most recent `limit` entries of what matched; `None`: all of them.
    pub limit: Option<usize>,
}

/// `--since`: RFC 3339 or a date (its UTC midnight), cut to whole seconds so the key range
/// (milliseconds) and the entries' `at` (seconds) agree on what is "at or after".
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc).trunc_subsecs(0));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!(
                "expected RFC 3339 (2026-11-20T09:00:00+09:00) or a date (2026-11-20), got {s:?}"
            )
        })
}

/// The matching entries, oldest first.
pub async fn log_entries(store: &dyn Store, q: &LogQuery) -> Result<Vec<DeliveryLogEntry>> {
    let mut entries = match (&q.account, q.since) {
        (Some(a), Some(since)) => store.delivery_log_since(a, since).await?,
        (Some(a), None) => store.delivery_log(a).await?,
        (None, _) => store.all_delivery_log().await?,
    };
    entries.retain(|e| {
        q.kind.is_none_or(|k| e.kind == k) && q.since.is_none_or(|since| e.at >= since)
    });
    if let Some(n) = q.limit {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    Ok(entries)
}

/// JSON lines, each entry exactly as stored (recipients included: this is for scripts).
pub fn log_json(entries: &[DeliveryLogEntry]) -> Result<String> {
    let mut out = String::new();
    for e in entries {
        writeln!(out, "{}", serde_json::to_string(e)?)?;
    }
    Ok(out)
}

/// A table for people; addresses masked (`a***@example.com`), topics by name.
pub fn log_table(entries: &[DeliveryLogEntry]) -> String {
    if entries.is_empty() {
        return "no delivery log entries match\n".into();
    }
    let header = [
        "AT", "ACCOUNT", "KIND", "STAGE", "STATUS", "REASON", "TO", "SUBJECT",
    ];
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|e| {
            [
                rfc3339_seconds::format(&e.at),
                e.account_id.clone(),
                e.kind.as_str().to_string(),
                e.stage.map(|s| s.as_str()).unwrap_or("-").to_string(),
                e.status.as_str().to_string(),
                e.reason.clone().unwrap_or_else(|| "-".into()),
                mask_recipient(&e.to),
                shorten(&e.subject, 60),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            // The last column is not padded (subjects vary in width, Japanese ones too).
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                write!(l, "{c}{}  ", " ".repeat(pad)).ok();
            }
        }
        l.trim_end().to_string()
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// `ann@example.com` -> `a***@example.com`; an SNS topic ARN -> `topic:<name>`; empty -> `-`.
pub fn mask_recipient(to: &str) -> String {
    if to.is_empty() {
        return "-".into();
    }
    if let Some(topic) = to.strip_prefix("arn:") {
        return format!("topic:{}", topic.rsplit(':').next().unwrap_or(topic));
    }
    match to.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        // Not an address: nothing personal in it to hide, but never print more than a hint.
        None => shorten(to, 12),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// What `nudge pause` and `nudge resume` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseChange {
    pub account_id: String,
    pub before: PauseState,
    pub after: PauseState,
    /// False when there was nothing to change (resuming an account that was not paused).
    pub changed: bool,
}

/// An account's pause, as the send policy sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseState {
    pub paused: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl PauseState {
    fn of(a: &AccountRecord, now: DateTime<Utc>) -> PauseState {
        let paused = a.is_paused(now);
        PauseState {
            paused,
            since: a.paused_at.filter(|_| paused),
            until: a.paused_until.filter(|_| paused),
            reason: a.pause_reason.clone().filter(|_| paused),
        }
    }

    fn describe(&self) -> String {
        if !self.paused {
            return "running".into();
        }
        let mut s = "paused".to_string();
        if let Some(t) = self.since {
            write!(s, " since {}", rfc3339_seconds::format(&t)).ok();
        }
        match self.until {
            Some(t) => write!(s, " until {}", rfc3339_seconds::format(&t)).ok(),
            None => write!(s, " until resumed").ok(),
        };
        match &self.reason {
            Some(r) => write!(s, " ({r})").ok(),
            // Only a customer's reply pauses without a reason (`nudge pause` always has one).
            None => write!(s, " (the customer replied)").ok(),
        };
        s
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "paused": self.paused,
            "since": self.since.map(|t| rfc3339_seconds::format(&t)),
            "until": self.until.map(|t| rfc3339_seconds::format(&t)),
            "reason": self.reason,
        })
    }
}

impl PauseChange {
    /// What changed, for people.
    pub fn text(&self, target: &str) -> String {
        let verb = if self.after.paused {
            "paused"
        } else {
            "resumed"
        };
        if !self.changed {
            return format!(
                "{} was not paused: nothing changed ({target})\n",
                self.account_id
            );
        }
        let mut out = format!("{verb} {} ({target})\n", self.account_id);
        writeln!(out, "  before: {}", self.before.describe()).ok();
        writeln!(out, "  now:    {}", self.after.describe()).ok();
        if self.after.paused {
            // What a pause means in practice: blocked messages are not sent later.
            out.push_str(
                "  customer messages that fall due meanwhile are blocked (delivery log: \
                 account_paused) and not sent later; CSM alerts and tasks still go\n",
            );
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "account_id": self.account_id,
            "changed": self.changed,
            "before": self.before.json(),
            "after": self.after.json(),
        })
    }
}

/// The reason `nudge pause` records when none is given (a reason is what tells an operator's
/// pause from a customer's reply).
pub const DEFAULT_PAUSE_REASON: &str = "paused by an operator";

/// Pauses customer automation for `account_id` as a customer reply does, optionally until a
/// time and with a reason; replaces any pause in force. Written with the pause's own
/// last-writer-wins clock at `now`.
pub async fn pause(
    store: &dyn Store,
    account_id: &str,
    until: Option<DateTime<Utc>>,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<PauseChange> {
    let before = known_account(store, account_id).await?;
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_PAUSE_REASON);
    let change = AccountChange::Paused {
        until,
        reason: Some(reason.to_string()),
    };
    write_change(store, account_id, &change, now).await?;
    let after = known_account(store, account_id).await?;
    Ok(PauseChange {
        account_id: account_id.to_string(),
        before: PauseState::of(&before, now),
        after: PauseState::of(&after, now),
        changed: true,
    })
}

/// Resumes automation for `account_id` as `automation_resumed` does. Nothing is written when it
/// is not paused (an expired `--until` counts as not paused).
pub async fn resume(
    store: &dyn Store,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<PauseChange> {
    let before = known_account(store, account_id).await?;
    let was = PauseState::of(&before, now);
    if !before.paused {
        return Ok(PauseChange {
            account_id: account_id.to_string(),
            after: was.clone(),
            before: was,
            changed: false,
        });
    }
    write_change(store, account_id, &AccountChange::Resumed, now).await?;
    let after = known_account(store, account_id).await?;
    Ok(PauseChange {
        account_id: account_id.to_string(),
        before: was,
        after: PauseState::of(&after, now),
        changed: true,
    })
}

/// What `nudge erase-contact` changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasedContact {
    pub account_id: String,
    pub contact_id: String,
    pub erasure: ContactErasure,
    /// The address was suppressed (bounce, complaint): that entry stays, as a hash.
    pub suppression_kept: bool,
}

impl ErasedContact {
    /// What changed, for people.
    pub fn text(&self, target: &str) -> String {
        let e = &self.erasure;
        let mut out = format!(
            "erased contact {} of {} ({target})
",
            self.contact_id, self.account_id
        );
        writeln!(
            out,
            "  contact item deleted (profile, unsubscribes, cap state)"
        )
        .ok();
        writeln!(out, "  pending nudges cancelled:      {}", e.cancelled).ok();
        writeln!(
            out,
            "  nudges with variables removed: {}",
            e.nudges_redacted
        )
        .ok();
        writeln!(
            out,
            "  log entries redacted:          {}",
            e.log_entries_redacted
        )
        .ok();
        writeln!(
            out,
            "  cap reservations removed:      {}",
            e.cap_reservations
        )
        .ok();
        writeln!(
            out,
            "  raw events redacted:           {}",
            e.raw_events_redacted
        )
        .ok();
        writeln!(
            out,
            "  deadlines redacted:            {}",
            e.deadlines_redacted
        )
        .ok();
        writeln!(
            out,
            "  NPS comments removed:          {}",
            e.comments_removed
        )
        .ok();
        if e.in_flight > 0 {
            writeln!(
                out,
                "  nudges being sent right now:   {} (they finish; check `nudge log`)",
                e.in_flight
            )
            .ok();
        }
        let suppression = if self.suppression_kept {
            "kept (hashed address only)"
        } else {
            "none"
        };
        writeln!(out, "  suppression: {suppression}").ok();
        out
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "account_id": self.account_id,
            "contact_id": self.contact_id,
            "contact_deleted": true,
            "cancelled": self.erasure.cancelled,
            "nudges_redacted": self.erasure.nudges_redacted,
            "in_flight": self.erasure.in_flight,
            "log_entries_redacted": self.erasure.log_entries_redacted,
            "cap_reservations": self.erasure.cap_reservations,
            "raw_events_redacted": self.erasure.raw_events_redacted,
            "deadlines_redacted": self.erasure.deadlines_redacted,
            "comments_removed": self.erasure.comments_removed,
            "suppression_kept": self.suppression_kept,
        })
    }
}

/// Erases one contact's personal data (`ErasureStore::erase_contact`); an unknown contact is
/// an error and changes nothing.
pub async fn erase_contact(
    store: &dyn Store,
    account_id: &str,
    contact_id: &str,
    now: DateTime<Utc>,
) -> Result<ErasedContact> {
    let unknown = || {
        anyhow::anyhow!(
            "unknown contact {contact_id:?} of account {account_id:?}: the table has no such \
             contact (check the ids and --table; an erased contact is gone)"
        )
    };
    let contact = store
        .contact(account_id, contact_id)
        .await
        .with_context(|| format!("reading contact {contact_id} of {account_id}"))?
        .ok_or_else(unknown)?;
    // Read before the profile (and the address with it) is gone.
    let suppression_kept = match contact.profile.as_ref().map(|p| p.email.as_str()) {
        Some(email) => store
            .suppression(email)
            .await
            .context("reading the address's suppression")?
            .is_some_and(|s| s.reason.is_some()),
        None => false,
    };
    let erasure = store
        .erase_contact(account_id, contact_id, now)
        .await
        .with_context(|| format!("erasing contact {contact_id} of {account_id}"))?
        .ok_or_else(unknown)?;
    Ok(ErasedContact {
        account_id: account_id.to_string(),
        contact_id: contact_id.to_string(),
        erasure,
        suppression_kept,
    })
}

async fn known_account(store: &dyn Store, account_id: &str) -> Result<AccountRecord> {
    store
        .account(account_id)
        .await
        .with_context(|| format!("reading account {account_id}"))?
        .with_context(|| {
            format!(
                "unknown account {account_id:?}: the table has no profile for it (check the id \
                 and --table; `nudge log` shows the accounts messages went to)"
            )
        })
}

async fn write_change(
    store: &dyn Store,
    account_id: &str,
    change: &AccountChange,
    now: DateTime<Utc>,
) -> Result<()> {
    match store
        .change_account(account_id, change, now)
        .await
        .with_context(|| format!("writing the pause of {account_id}"))?
    {
        Applied::Applied => Ok(()),
        // The pause clock is the events' `occurred_at`, which may run up to 15 minutes ahead.
        Applied::Stale => bail!(
            "nothing changed: a pause or resume of {account_id} stamped later than now is \
             stored (an event from a sender whose clock runs ahead); try again in a few minutes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use nudge_shared::domain::{Channel, LogStatus, Stage};

    #[test]
    fn addresses_are_masked_and_topics_shown_by_name() {
        assert_eq!(mask_recipient("ann@example.com"), "a***@example.com");
        assert_eq!(mask_recipient("田中@example.jp"), "田***@example.jp");
        assert_eq!(
            mask_recipient("arn:aws:sns:us-east-1:123456789012:nudge-csm-alerts"),
            "topic:nudge-csm-alerts"
        );
        assert_eq!(mask_recipient(""), "-");
    }

    #[test]
    fn since_takes_a_timestamp_or_a_date_in_whole_seconds() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        assert_eq!(parse_since("2026-11-20"), Ok(t));
        assert_eq!(parse_since("2026-11-20T09:00:00.750+09:00"), Ok(t));
        let e = parse_since("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("yesterday"), "{e}");
    }

    #[test]
    fn the_table_hides_addresses_and_keeps_one_row_per_entry() {
        let e = DeliveryLogEntry {
            at: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            function: "reminders".into(),
            kind: NudgeKind::DeadlineReminder,
            stage: Some(Stage::Final),
            channel: Channel::Email,
            account_id: "acme".into(),
            contact_id: Some("u-7".into()),
            to: "tanaka@acme.example".into(),
            subject: "Trial ends in 2 hours".into(),
            locale: "en".into(),
            status: LogStatus::Blocked,
            reason: Some("account_paused".into()),
            nudge_id: "dl/trial/1/final".into(),
            variant: "a".into(),
            provider_message_id: None,
        };
        let table = log_table(std::slice::from_ref(&e));
        assert!(!table.contains("tanaka@"), "{table}");
        let row = table.lines().nth(1).unwrap_or_default();
        for cell in [
            "2026-11-20T00:00:00Z",
            "acme",
            "deadline_reminder",
            "final",
            "blocked",
            "account_paused",
            "t***@acme.example",
            "Trial ends in 2 hours",
        ] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
        assert!(
            log_json(&[e])
                .unwrap()
                .contains("\"to\":\"tanaka@acme.example\"")
        );
        assert_eq!(log_table(&[]), "no delivery log entries match\n");
    }
}
