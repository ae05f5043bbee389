//! Replaying an account's kept raw events into daily scores: the pure core of
//! `nudge model backtest --from --to`, which measures how well a (draft) model's red band
//! predicted churn by scoring every day of a past period with each model and handing the
//! bands to [`backtest`](super::backtest::backtest).
//!
//! # What a replayed day is
//!
//! For each account-local day `D` of `from..=to`, [`replay_account`] builds the state as of
//! the **end of `D`** (every event that happened before it) and scores it with
//! `now = D + 1 at 00:00 in the account's zone`, the first instant after `D`:
//!
//! - the score's "today" ([`local_day`] of `now`) is `D + 1`, so `D` itself is the newest
//!   complete day of the usage windows (`score.rs` never counts today's partial day), and
//!   `HealthScore::day` is `D + 1`: the day on whose morning the daily run would have made this
//!   score, so replayed bands line up with stored snapshots day for day;
//! - the daily run scores at 03:00 local; it sees the same usage (the three hours of `D + 1`
//!   are "today" and never count) and differs only by events of those three hours in the
//!   instant-based inputs (tickets, NPS, admin change, profile) and three hours of ageing of
//!   their windows. Midnight is chosen because it is exactly "the end of `D`": no event of
//!   `D + 1` leaks into day `D`'s score;
//! - a midnight skipped by a daylight-saving change (`America/Santiago` starts summer time at
//!   24:00) ends the day at the gap's end, the first instant of `D + 1` that exists.
//!
//! Days are in the zone of the latest `account_upserted` applied so far; a profile that
//! changes the zone takes effect from the day it arrives (the events before it keep the days
//! they were given). Days before the first profile are skipped: without a profile there is
//! neither a zone nor a score ([`HealthInputs`] needs one).
//!
//! # The state, event by event
//!
//! Mirrors what ingest keeps (`shared/src/ingest/mod.rs`, `shared/src/store/`), so a
//! replayed score is the one the daily run would have made from the stored state:
//! - **profile**: the latest `account_upserted`; a `contract_renewed` carrying a date moves
//!   `renewal_date` to the later of the two, as `AccountItem::into_record` does in
//!   `shared/src/store/dynamo/profiles.rs` (renewals are not counted there either);
//! - **usage** per local day, in the zone of the profile current when the event happened:
//!   logins, reports, feature uses, and as active contacts the `contact_id` of every event
//!   ingest rolls up (`add_usage` in `shared/src/ingest/mod.rs`: logins, features, reports,
//!   tickets, NPS answers). The health module may not import ingest
//!   (`shared/src/architecture.rs`), hence the copy in `ReplayState::add_usage`. Usage that
//!   happened before the first profile is held back and given its days when the profile (and
//!   so the zone) arrives;
//! - **onboarding**: the steps of `setup_step_completed`, and `first_report` once a report was
//!   created;
//! - **tickets** by `ticket_id`: `support_ticket_opened` opens one (again, if it was closed:
//!   a reopening is new support activity, so `opened_at` becomes the reopening), a second open
//!   of an open ticket only updates its severity; `support_ticket_closed` closes it and, when
//!   it carries a severity, records it as the ticket's final one; a close of a ticket never
//!   seen opened is ignored (its opening is older than the kept events: neither open nor
//!   recent). Open = opened and not closed by `now`; recent = every ticket still in the
//!   longest `recent_ticket_days` of the models (the score filters by its own window);
//! - **NPS** answers, kept for the longest `nps_max_age_days` of the models;
//! - **admin change**: the time of the latest `admin_changed`;
//! - **`first_seen`**: the time of the account's first kept event, of any type.
//!
//! One difference on purpose: ingest rolls usage up by UTC day (step 3 of the batch in
//! `shared/src/ingest/mod.rs`), while a `DayUsage` is a local day of the account (`score.rs`),
//! which is what a replay builds. For an account far from UTC, scores made from the stored
//! rollups can therefore differ from replayed ones by the usage near midnight.
//!
//! Events are replayed in `(occurred_at, event_id)` order whatever order they come in, so a
//! replay is deterministic; an event repeated with the same id and instant counts once (the
//! raw store keeps one copy per id).
//!
//! # Cost
//!
//! `O(n log n)` for the sort of `n` events, then every event is applied once in `O(log k)`
//! (`k`: features or contacts of its day) and every day costs one pruning pass plus one
//! [`score`] per model over at most [`HISTORY_DAYS`] + 1 usage days and the windowed tickets
//! and answers. So a replay is `O(n log n + days x models x window)`: linear in the history,
//! never quadratic. The usage kept is bounded by the history window ([`HISTORY_DAYS`] and a
//! spare day or two) however long the kept history is, and usage older than the first
//! score's window is not even bucketed.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::backtest::{Churn, DailyBand};
use super::model::{HISTORY_DAYS, HealthModel};
use super::score::{DayUsage, HealthInputs, HealthScore, NpsResponse, Ticket, local_day, score};
use crate::events::{AccountProfile, Event, EventPayload};

/// One model's replayed scores of one account, one per replayed day in day order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSeries {
    /// The model's `version` (also on every score; kept here for a series with no score).
    pub model_version: String,
    /// The score of each day `D` of the period from the first one with a profile on, in day
    /// order; `score.day` is `D + 1` (module documentation).
    pub scores: Vec<HealthScore>,
}

/// Replays one account's events over the local days `from..=to` and scores the end of each
/// day with every model. Returns one [`ScoreSeries`] per model, in the order of `models`.
///
/// `events` are the account's kept raw events, in any order, including those before `from`
/// (they build the state the period starts with). An account without any `account_upserted`
/// gets empty series. See the module documentation for the day, the "now" and the state.
pub fn replay_account(
    models: &[&HealthModel],
    events: &[Event],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<ScoreSeries> {
    let mut out: Vec<ScoreSeries> = models
        .iter()
        .map(|m| ScoreSeries {
            model_version: m.version.clone(),
            scores: Vec::new(),
        })
        .collect();
    let sorted = sorted_events(events);
    // Until the first profile is applied, days are that profile's days.
    let Some(first_tz) = sorted.iter().find_map(|(_, e)| match &e.payload {
        EventPayload::AccountUpserted(p) => Some(p.timezone),
        _ => None,
    }) else {
        return out;
    };
    let windows = Windows::of(models);
    let mut state = ReplayState {
        // The first score's "today" is `from + 1` and reads usage from `from + 1 -
        // HISTORY_DAYS` on: an event before UTC midnight two days earlier is on an older local
        // day in every zone (offsets are within 14 hours), so its usage is never read. Skipping
        // it keeps a replay of the last weeks of a long kept history cheap.
        usage_from: Utc
            .from_utc_datetime(&(from - Duration::days(HISTORY_DAYS + 2)).and_time(NaiveTime::MIN)),
        ..ReplayState::default()
    };
    let mut next = 0;
    for day in from.iter_days().take_while(|d| *d <= to) {
        let Some(after) = day.succ_opt() else { break };
        // Apply everything before the day's end; a profile may change the zone, and with it
        // the end.
        let mut end = start_of_day(state.tz().unwrap_or(first_tz), after);
        while let Some((at, e)) = sorted.get(next) {
            if *at >= end {
                break;
            }
            state.apply(*at, e);
            next += 1;
            if matches!(e.payload, EventPayload::AccountUpserted(_)) {
                end = start_of_day(state.tz().unwrap_or(first_tz), after);
            }
        }
        let (Some(tz), Some(first_seen)) = (state.tz(), state.first_seen) else {
            continue;
        };
        // A profile that moved the account east may have arrived after its new zone's
        // midnight: the day then ends with it, so no applied event is after "now".
        let now = start_of_day(tz, after).max(state.last_at);
        state.prune(now, &windows);
        let Some(profile) = state.profile.as_ref() else {
            continue;
        };
        let inputs = HealthInputs {
            profile,
            first_seen,
            usage: &state.usage,
            onboarding_steps_done: &state.steps,
            first_report: state.first_report,
            open_tickets: &state.open,
            recent_tickets: &state.recent,
            nps: &state.nps,
            admin_changed_at: state.admin_changed_at,
            now,
        };
        for (model, series) in models.iter().zip(out.iter_mut()) {
            series.scores.push(score(model, &inputs));
        }
    }
    out
}

/// When the account churned: the instant of its first `churned` event.
///
/// The first churn counts whatever follows it: a later `contract_renewed` (a win-back) does
/// not undo that the customer left, and the backtest asks whether red came before that.
/// `backtest()` (`shared/src/health/backtest.rs`) likewise keeps an account's earliest label.
pub fn churn_of(events: &[Event]) -> Option<DateTime<Utc>> {
    events
        .iter()
        .filter(|e| matches!(e.payload, EventPayload::Churned))
        .map(Event::occurred_at_utc)
        .min()
}

/// The churn label of an account for `backtest()`: the local day of [`churn_of`], in the zone
/// of the latest profile at or before the churn (the first profile's if none came before; UTC
/// for an account that never had one, which has no score to judge either).
pub fn churn_label(account: &str, events: &[Event]) -> Option<Churn> {
    let at = churn_of(events)?;
    let mut latest: Option<(DateTime<Utc>, &str, Tz)> = None;
    let mut first: Option<(DateTime<Utc>, &str, Tz)> = None;
    for e in events {
        let EventPayload::AccountUpserted(p) = &e.payload else {
            continue;
        };
        let key = (e.occurred_at_utc(), e.event_id.as_str(), p.timezone);
        if first.is_none_or(|f| (key.0, key.1) < (f.0, f.1)) {
            first = Some(key);
        }
        if key.0 <= at && latest.is_none_or(|l| (key.0, key.1) > (l.0, l.1)) {
            latest = Some(key);
        }
    }
    let tz = latest.or(first).map_or(Tz::UTC, |(_, _, tz)| tz);
    Some(Churn {
        account: account.to_string(),
        day: local_day(at, tz),
    })
}

/// The replayed scores of one account as `backtest()` rows: one per score, on `score.day` (the
/// day a stored snapshot of the same score would carry, module documentation).
pub fn daily_bands(account: &str, scores: &[HealthScore]) -> Vec<DailyBand> {
    scores
        .iter()
        .map(|s| DailyBand {
            account: account.to_string(),
            day: s.day,
            band: s.band,
        })
        .collect()
}

/// The events in replay order, `(occurred_at, event_id)`, each with its UTC instant; exact
/// repeats (same id, same instant) once.
fn sorted_events(events: &[Event]) -> Vec<(DateTime<Utc>, &Event)> {
    let mut sorted: Vec<(DateTime<Utc>, &Event)> =
        events.iter().map(|e| (e.occurred_at_utc(), e)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.event_id.cmp(&b.1.event_id)));
    sorted.dedup_by(|a, b| a.0 == b.0 && a.1.event_id == b.1.event_id);
    sorted
}

/// The first instant of local `day` in `tz`, in UTC.
fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // Midnight falls in a daylight-saving gap: the day starts where the gap ends, which is
        // midnight at the offset in force before the gap. One UTC day earlier is safely before
        // the change (offsets are within 14 hours) and months after the previous one.
        None => {
            let before = tz
                .offset_from_utc_datetime(&(midnight - Duration::days(1)))
                .fix();
            Utc.from_utc_datetime(
                &(midnight - Duration::seconds(i64::from(before.local_minus_utc()))),
            )
        }
    }
}

/// How long the windowed state must be kept: the longest window of any model.
struct Windows {
    recent_tickets: Duration,
    nps: Duration,
}

impl Windows {
    fn of(models: &[&HealthModel]) -> Self {
        let longest = |f: fn(&HealthModel) -> i64| {
            Duration::days(models.iter().map(|m| f(m)).max().unwrap_or(0))
        };
        Windows {
            recent_tickets: longest(|m| m.thresholds.recent_ticket_days),
            nps: longest(|m| m.thresholds.nps_max_age_days),
        }
    }
}

/// The account as of the last applied event (module documentation, "The state").
#[derive(Default)]
struct ReplayState<'e> {
    /// The latest profile, with `renewal_date` moved by `contract_renewed`.
    profile: Option<AccountProfile>,
    /// `renewal_date` of the latest profile as sent, before any renewal moved it.
    upserted_renewal_date: Option<NaiveDate>,
    /// The date of the latest `contract_renewed` that carried one.
    renewed_to: Option<NaiveDate>,
    first_seen: Option<DateTime<Utc>>,
    /// The instant of the last applied event.
    last_at: DateTime<Utc>,
    /// Usage before this instant is never read (see [`replay_account`]).
    usage_from: DateTime<Utc>,
    /// Local days in day order, about `HISTORY_DAYS` of them.
    usage: Vec<DayUsage>,
    /// Usage events before the first profile, waiting for a zone to give them their day.
    pending: Vec<(DateTime<Utc>, &'e Event)>,
    steps: BTreeSet<String>,
    first_report: bool,
    /// Open tickets.
    open: Vec<Ticket>,
    /// Tickets opened (or reopened) within the longest recent window, open or closed.
    recent: Vec<Ticket>,
    nps: Vec<NpsResponse>,
    admin_changed_at: Option<DateTime<Utc>>,
}

impl<'e> ReplayState<'e> {
    fn tz(&self) -> Option<Tz> {
        self.profile.as_ref().map(|p| p.timezone)
    }

    fn apply(&mut self, at: DateTime<Utc>, e: &'e Event) {
        self.first_seen.get_or_insert(at);
        self.last_at = at;
        self.add_usage(at, e);
        match &e.payload {
            EventPayload::AccountUpserted(p) => {
                let first = self.profile.is_none();
                let mut profile = p.clone();
                self.upserted_renewal_date = Some(p.renewal_date);
                if let Some(d) = self.renewed_to {
                    profile.renewal_date = profile.renewal_date.max(d);
                }
                self.profile = Some(profile);
                if first {
                    for (at, e) in std::mem::take(&mut self.pending) {
                        self.add_usage(at, e);
                    }
                }
            }
            EventPayload::ContractRenewed {
                renewal_date: Some(d),
            } => {
                self.renewed_to = Some(*d);
                if let (Some(p), Some(sent)) = (self.profile.as_mut(), self.upserted_renewal_date) {
                    p.renewal_date = sent.max(*d);
                }
            }
            EventPayload::SetupStepCompleted { step } if !self.steps.contains(step) => {
                self.steps.insert(step.clone());
            }
            EventPayload::ReportCreated => self.first_report = true,
            EventPayload::AdminChanged { .. } => self.admin_changed_at = Some(at),
            EventPayload::SupportTicketOpened {
                ticket_id,
                severity,
            } => {
                if let Some(t) = self.open.iter_mut().find(|t| t.id == *ticket_id) {
                    // Already open: only the severity is news.
                    t.severity = *severity;
                    if let Some(r) = self.recent.iter_mut().find(|r| r.id == *ticket_id) {
                        r.severity = *severity;
                    }
                    return;
                }
                let ticket = Ticket {
                    id: ticket_id.clone(),
                    severity: *severity,
                    opened_at: at,
                };
                match self.recent.iter_mut().find(|r| r.id == *ticket_id) {
                    Some(r) => *r = ticket.clone(),
                    None => self.recent.push(ticket.clone()),
                }
                self.open.push(ticket);
            }
            EventPayload::SupportTicketClosed {
                ticket_id,
                severity,
            } => {
                self.open.retain(|t| t.id != *ticket_id);
                if let (Some(r), Some(s)) = (
                    self.recent.iter_mut().find(|r| r.id == *ticket_id),
                    severity,
                ) {
                    r.severity = *s;
                }
            }
            EventPayload::NpsResponse { score, comment } => self.nps.push(NpsResponse {
                score: *score,
                at,
                comment: comment.clone(),
            }),
            _ => {}
        }
    }

    /// Adds a usage event to its local day (held back while there is no zone yet). The events
    /// and the contacts are those of `add_usage` in `shared/src/ingest/mod.rs`.
    fn add_usage(&mut self, at: DateTime<Utc>, e: &'e Event) {
        let is_usage = matches!(
            e.payload,
            EventPayload::Login
                | EventPayload::FeatureUsed { .. }
                | EventPayload::ReportCreated
                | EventPayload::SupportTicketOpened { .. }
                | EventPayload::SupportTicketClosed { .. }
                | EventPayload::NpsResponse { .. }
        );
        if !is_usage || at < self.usage_from {
            return;
        }
        let Some(tz) = self.tz() else {
            self.pending.push((at, e));
            return;
        };
        let day = self.day_mut(local_day(at, tz));
        match &e.payload {
            EventPayload::Login => day.logins += 1,
            EventPayload::ReportCreated => day.reports += 1,
            EventPayload::FeatureUsed { feature } => match day.features.get_mut(feature) {
                Some(n) => *n += 1,
                None => {
                    day.features.insert(feature.clone(), 1);
                }
            },
            _ => {}
        }
        if let Some(c) = &e.contact_id
            && !day.active_contacts.contains(c)
        {
            day.active_contacts.insert(c.clone());
        }
    }

    /// The usage of `day`, created in place. Events come in time order, so the day is nearly
    /// always the last one or a new last one; only a zone change moves a day backwards.
    fn day_mut(&mut self, day: NaiveDate) -> &mut DayUsage {
        let i = match self.usage.last() {
            Some(last) if last.day == day => self.usage.len() - 1,
            Some(last) if last.day > day => {
                match self.usage.binary_search_by(|u| u.day.cmp(&day)) {
                    Ok(i) => i,
                    Err(i) => {
                        self.usage.insert(i, empty_day(day));
                        i
                    }
                }
            }
            _ => {
                // A new newest day: no score from now on has a "today" before it, so days
                // older than its window (one spare for a zone moving west) are never read again.
                let keep_from = day - Duration::days(HISTORY_DAYS + 1);
                let old = self.usage.partition_point(|u| u.day < keep_from);
                self.usage.drain(..old);
                self.usage.push(empty_day(day));
                self.usage.len() - 1
            }
        };
        &mut self.usage[i]
    }

    /// Drops what no score at `now` or later reads: usage outside the history, tickets and
    /// answers older than the longest window of any model.
    fn prune(&mut self, now: DateTime<Utc>, windows: &Windows) {
        if let Some(tz) = self.tz() {
            let keep_from = local_day(now, tz) - Duration::days(HISTORY_DAYS);
            let old = self.usage.partition_point(|u| u.day < keep_from);
            self.usage.drain(..old);
        }
        let recent_from = now - windows.recent_tickets;
        self.recent.retain(|t| t.opened_at > recent_from);
        let nps_from = now - windows.nps;
        self.nps.retain(|r| r.at >= nps_from);
    }
}

fn empty_day(day: NaiveDate) -> DayUsage {
    DayUsage {
        day,
        ..DayUsage::default()
    }
}

#[cfg(test)]
mod tests;
